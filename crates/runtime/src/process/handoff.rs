//! Descriptors a container process hands to the runtime during setup: its pty master goes on
//! to the console socket (or stays with the caller, for a foreground run), its seccomp listener
//! to the agent at listenerPath.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Process;

use crate::process::error::ProcessError;
use crate::security::SecurityPlan;
use crate::sync::{Channel, Message};

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

/// In the container process: makes its pty (the slave on stdio, and on /dev/console for a
/// container's first process) and sends the master to the runtime.
pub fn send_terminal(
    channel: &Channel,
    process: &Process,
    mount_console: bool,
) -> Result<(), ProcessError> {
    let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
    let size = process
        .console_size()
        .as_ref()
        .map(|b| (clamp(b.height()), clamp(b.width())));
    let master = crate::console::setup_pty(size, mount_console)?;
    channel.send_with_fd(&Message::Console, Some(master.as_fd()))?;
    Ok(())
}

/// In the container process: the security settings, last before execve; a seccomp listener goes
/// to the runtime for the agent.
pub fn lock_down(security: &SecurityPlan, channel: &Channel) -> Result<(), ProcessError> {
    if let Some(listener) = security.apply()? {
        channel.send_with_fd(&Message::SeccompListener, Some(listener.as_fd()))?;
    }
    Ok(())
}
