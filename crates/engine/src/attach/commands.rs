//! The engine's attach commands: staying with a container a starter attached to (`run` in the
//! foreground, `start -a`), and `attach` to a running one.

use std::os::fd::OwnedFd;

use crate::vm::control::signal_any;

use super::client::{self, Ended, SessionOptions, Signals};
use crate::monitor::{Monitor, Report};
use crate::store::State;
use crate::{Engine, EngineError};

/// How an attached command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The container exited with this status (and, for a starter, its monitor cleaned up).
    Exited(i32),
    /// The user detached; the container runs on.
    Detached,
}

impl Engine {
    /// Stays with a container whose monitor was given the other end of `conn`: its output here,
    /// this process's input and signals there, until it exits (then its status, once its
    /// monitor has cleaned up) or the user detaches. `vm`: the container is VM-isolated (its
    /// signals go through its VM's control socket); the caller knows, since hull.db is closed
    /// by now.
    pub fn wait_attached(
        &self,
        mut monitor: Monitor,
        id: &str,
        vm: bool,
        conn: OwnedFd,
        mut opts: SessionOptions,
    ) -> Result<Attached, EngineError> {
        // Blocked here, after the fork: the monitor (and so the container) keeps the mask it had.
        let signals = Signals::block()?;
        let gone = || EngineError::Monitor {
            id: id.to_string(),
            message: "exited without reporting the container's status".into(),
        };
        if let Some(end) = ended_by(monitor.next_report(), gone) {
            return end;
        }
        let root = self.root.clone();
        let mut forward = |signal| {
            let _ = signal_any(&root, id, vm, signal, false);
        };
        if client::session(&conn, &mut opts, &signals, &mut forward)? == Ended::Detached {
            return Ok(Attached::Detached);
        }
        drop(conn);
        loop {
            if let Some(end) = ended_by(monitor.next_report(), gone) {
                return end;
            }
        }
    }

    /// docker's `attach`: the running container's output (from now on) here, and with `stdin`
    /// this process's input there (when it was made with `-i`), until it exits or the user
    /// detaches.
    pub fn attach(
        &mut self,
        reference: &str,
        stdin: bool,
        keys: super::keys::DetachKeys,
        sig_proxy: bool,
    ) -> Result<Attached, EngineError> {
        let record = self.find(reference)?;
        if record.state == State::Restarting {
            return Err(EngineError::Invalid(format!(
                "you cannot attach to a restarting container {}, wait until it is running",
                record.id
            )));
        }
        if record.state != State::Running {
            return Err(EngineError::Invalid(format!(
                "you cannot attach to a stopped container {}, start it first",
                record.id
            )));
        }
        let conn = super::connect_socket(&self.root, &record.id)?;
        let signals = Signals::block()?;
        let mut opts = SessionOptions {
            stdin: stdin && record.settings.interactive,
            tty: record.settings.tty,
            keys,
            sig_proxy,
        };
        let vm = record.settings.vm.is_some();
        let mut forward = |signal| {
            let _ = signal_any(&self.root, &record.id, vm, signal, false);
        };
        match client::session(&conn, &mut opts, &signals, &mut forward)? {
            Ended::Detached => Ok(Attached::Detached),
            Ended::Exited(code) => Ok(Attached::Exited(code)),
            // The monitor went first: hull.db has the status.
            Ended::Closed => {
                drop(signals);
                self.wait(&record.id).map(Attached::Exited)
            }
        }
    }
}

/// How the monitor's `report` ends an exec session: None while it only says the process started;
/// `gone` is the error for a monitor that ended without a word.
fn ended_by(
    report: Option<Report>,
    gone: impl Fn() -> EngineError,
) -> Option<Result<Attached, EngineError>> {
    match report {
        Some(Report::Started(_)) => None,
        Some(Report::Exited(code)) => Some(Ok(Attached::Exited(code))),
        Some(Report::Failed { code, message }) => Some(Err(EngineError::Exec { code, message })),
        None => Some(Err(gone())),
    }
}
