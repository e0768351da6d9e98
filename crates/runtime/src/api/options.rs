//! What a caller says about a container to create or a process to exec: the OCI bundle or
//! process, and the runtime's own choices runc takes as flags.

use std::path::PathBuf;

use oci_spec::runtime::Process;

use crate::process::{Console, Stdio};

/// A container to create from an OCI bundle.
#[derive(Debug)]
pub struct CreateOptions {
    /// The container id (runc's rule: letters, digits, `_+-.`).
    pub id: String,
    /// The directory holding config.json.
    pub bundle: PathBuf,
    /// Stdio of a process without a terminal.
    pub stdio: Stdio,
    /// Where the pty master goes when config.json asks for a terminal. None refuses a terminal;
    /// a socket with a process that has no terminal is refused too, as runc does.
    pub console: Option<Console>,
    /// Write the pid of the container's process here (by rename).
    pub pid_file: Option<PathBuf>,
    /// MS_MOVE + chroot instead of pivot_root (a rootfs on a ramdisk).
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one.
    pub no_new_keyring: bool,
    /// Pass the caller's descriptors 3 .. 3+N on to the process.
    pub preserve_fds: u16,
}

impl CreateOptions {
    /// A container `id` from `bundle`, with inherited stdio and no terminal.
    pub fn new(id: impl Into<String>, bundle: impl Into<PathBuf>) -> CreateOptions {
        CreateOptions {
            id: id.into(),
            bundle: bundle.into(),
            stdio: Stdio::Inherit,
            console: None,
            pid_file: None,
            no_pivot: false,
            no_new_keyring: false,
            preserve_fds: 0,
        }
    }
}

/// A new process in a running container.
#[derive(Debug)]
pub struct ExecOptions {
    /// The whole process, as config.json's `process` object.
    pub process: Process,
    /// Stdio of a process without a terminal.
    pub stdio: Stdio,
    /// Where the pty master goes when `process.terminal` is set; None refuses a terminal.
    pub console: Option<Console>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u16,
}

impl ExecOptions {
    pub fn new(process: Process) -> ExecOptions {
        ExecOptions {
            process,
            stdio: Stdio::Inherit,
            console: None,
            pid_file: None,
            preserve_fds: 0,
        }
    }
}
