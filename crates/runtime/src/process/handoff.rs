//! Descriptors a container process hands to the runtime during setup: its pty master goes on
//! to the console socket (or stays with the caller, for a foreground run), its seccomp listener
//! to the agent at listenerPath.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::process::error::ProcessError;

/// The descriptor that must come with a message.
pub fn required(fd: Option<OwnedFd>, what: &str) -> Result<OwnedFd, ProcessError> {
    fd.ok_or_else(|| ProcessError::Invalid(format!("{what} missing from the message")))
}

/// Sends the pty master to `console_socket`, or returns it when there is none (the caller relays
/// the terminal itself).
pub fn route_console(
    console_socket: Option<&Path>,
    fd: Option<OwnedFd>,
) -> Result<Option<OwnedFd>, ProcessError> {
    let master = required(fd, "pty master")?;
    match console_socket {
        Some(path) => {
            crate::console::send_to_socket(path, master.as_fd())?;
            Ok(None)
        }
        None => Ok(Some(master)),
    }
}
