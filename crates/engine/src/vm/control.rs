//! How `hull` commands reach a running VM-isolated container: its monitor listens on
//! `containers/<id>/vm/ctl.sock` and passes a line `signal N` to the guest agent as a signal
//! for the container's main process. SIGKILL of every process (`stop` after its timeout,
//! `rm -f`) kills the VMM itself, which nothing in the guest can delay.

use std::io::Write;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::error::EngineError;

/// The control socket's name in the VM's directory.
pub const SOCKET: &str = "ctl.sock";

/// A control request, one line on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Signal(i32),
    /// An exec session: hull-vmproto frames follow, both ways (`monitor/vm_control.rs`).
    Exec,
}

impl Request {
    pub fn encode(self) -> String {
        match self {
            Request::Signal(n) => format!("signal {n}\n"),
            Request::Exec => "exec\n".into(),
        }
    }

    pub fn decode(line: &str) -> Option<Request> {
        let line = line.trim_end();
        if line == "exec" {
            return Some(Request::Exec);
        }
        let (verb, arg) = line.split_once(' ')?;
        match verb {
            "signal" => arg.parse().ok().map(Request::Signal),
            _ => None,
        }
    }
}

/// Sends `signal` to VM container `id`'s main process (`all` with SIGKILL: the whole VM).
pub fn signal(root: &Path, id: &str, signal: Signal, all: bool) -> Result<(), EngineError> {
    if all && signal == Signal::SIGKILL {
        if let Some(pid) = super::vmm_pid(root, id) {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)
                .map_err(EngineError::sys("kill of the VMM"))?;
        }
        return Ok(());
    }
    let mut conn = super::connect_in(&super::dir(root, id), SOCKET)?;
    conn.write_all(Request::Signal(signal as i32).encode().as_bytes())
        .map_err(EngineError::io("writing to the VM's control socket"))
}

/// Sends `signal` to container `id`'s process (`all`: every process of it), through the
/// runtime for a container and through its monitor for a VM. An error when it is not there.
pub fn signal_any(
    root: &Path,
    id: &str,
    is_vm: bool,
    sig: Signal,
    all: bool,
) -> Result<(), EngineError> {
    if is_vm {
        return signal(root, id, sig, all);
    }
    hull_runtime::Runtime::new(crate::paths::runtime_root(root))
        .open(id)?
        .kill(sig, all)?;
    Ok(())
}

/// The error of an operation that needs the container's processes on the host.
pub fn refuse_vm(record: &crate::Record, op: &'static str) -> Result<(), EngineError> {
    if record.settings.vm.is_some() {
        return Err(EngineError::Invalid(format!(
            "{op} is not supported for a container run with --isolation vm yet"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [Request::Signal(15), Request::Exec] {
            assert_eq!(Request::decode(&r.encode()), Some(r));
        }
        assert_eq!(Request::decode("signal x\n"), None);
        assert_eq!(Request::decode("exec 1\n"), None);
    }
}
