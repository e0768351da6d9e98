//! Hands a seccomp user-notification listener to the agent at `linux.seccomp.listenerPath`:
//! the runtime-spec "container process state" as JSON, with the fd in SCM_RIGHTS.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::{json, Value};

use super::error::SecurityError;

/// Connects to `listener_path` and sends `{ociVersion, fds: ["seccompFd"], pid, metadata,
/// state}` with `listener` attached. `state` is the container's OCI state JSON.
pub fn send_seccomp_listener(
    listener_path: &Path,
    listener: BorrowedFd<'_>,
    pid: i32,
    metadata: Option<&str>,
    state: &Value,
) -> Result<(), SecurityError> {
    let fail = |source: std::io::Error| SecurityError::SeccompListener {
        path: listener_path.to_path_buf(),
        source,
    };
    let version = state
        .get("ociVersion")
        .cloned()
        .unwrap_or_else(|| json!("1.2.0"));
    let message = json!({
        "ociVersion": version,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or_default(),
        "state": state,
    })
    .to_string();
    let mut stream = UnixStream::connect(listener_path).map_err(fail)?;
    let fds = [listener.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let bytes = message.as_bytes();
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| fail(e.into()))?;
    // A stream may take a long state in pieces; the fd went with the first one.
    stream.write_all(&bytes[sent..]).map_err(fail)
}
