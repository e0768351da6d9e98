//! Handing a container's seccomp user-notification fd to the agent at `listenerPath`, with the
//! container process state the runtime spec defines for it.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("seccomp listener {path}: {source}")]
pub struct ListenerError {
    path: String,
    source: std::io::Error,
}

/// Connects to `path` and sends the state with the listener fd as SCM_RIGHTS.
pub fn send(
    path: &Path,
    metadata: Option<&str>,
    pid: i32,
    state: &serde_json::Value,
    listener: BorrowedFd,
) -> Result<(), ListenerError> {
    let err = |source| ListenerError {
        path: path.display().to_string(),
        source,
    };
    let message = json!({
        "ociVersion": crate::oci_state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or_default(),
        "state": state,
    });
    let bytes = serde_json::to_vec(&message).expect("json serializes");
    let stream = UnixStream::connect(path).map_err(err)?;
    let fds = [listener.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| err(e.into()))?;
    Ok(())
}
