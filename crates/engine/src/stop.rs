//! `stop`: each container's stop signal, then SIGKILL to every process of those still running
//! after the timeout. Several containers are stopped together, as docker and podman do: all
//! are signalled first and share one timeout, so stopping 100 containers that ignore SIGTERM
//! takes one timeout, not a hundred.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::control::wait_monitor;
use crate::options::UserStop;
use crate::store::{self, Record};
use crate::vm::control::signal_any;
use crate::{Engine, EngineError};

/// docker's wait before SIGKILL for a container made without `--stop-timeout`.
pub const DEFAULT_TIMEOUT: i64 = 10;

/// The wait before SIGKILL of a timeout in seconds as docker takes it (`stop -t`,
/// `--stop-timeout`): a negative one waits until the container exits, never killing it.
pub fn stop_wait(secs: i64) -> Duration {
    u64::try_from(secs).map_or(Duration::MAX, Duration::from_secs)
}

/// How long a container's monitor gets to record the exit after SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(30);

impl Engine {
    /// Stops one container; returns once its monitor has recorded the exit and cleaned up.
    /// Stopping a container that is not running is no error.
    pub fn stop(
        &mut self,
        reference: &str,
        timeout: Option<Duration>,
    ) -> Result<Record, EngineError> {
        let mut results = self.stop_many(&[reference], timeout)?;
        results
            .pop()
            .unwrap_or_else(|| Err(EngineError::NoSuchContainer(reference.to_string())))
    }

    /// Stops several containers together; one result per reference, in their order (an
    /// unknown reference does not keep the others from stopping). Without a `timeout`, each
    /// waits its own `--stop-timeout` (docker's 10 s when it has none); `Duration::MAX` waits
    /// until they exit ([`stop_wait`]).
    pub fn stop_many(
        &mut self,
        references: &[&str],
        timeout: Option<Duration>,
    ) -> Result<Vec<Result<Record, EngineError>>, EngineError> {
        let mut results = Vec::with_capacity(references.len());
        for reference in references {
            results.push(self.signal_stop(reference));
        }
        let signalled = Instant::now();
        let mut late = Vec::new();
        for record in results.iter().flatten() {
            let wait = timeout.unwrap_or_else(|| {
                stop_wait(record.settings.stop_timeout.unwrap_or(DEFAULT_TIMEOUT))
            });
            let deadline = signalled.checked_add(wait);
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if !wait_monitor(record, left) {
                late.push(record);
            }
        }
        for record in &late {
            let vm = record.settings.vm.is_some();
            let _ = signal_any(&self.root, &record.id, vm, Signal::SIGKILL, true);
        }
        for record in &late {
            wait_monitor(record, AFTER_KILL);
        }
        self.reconcile()?;
        Ok(results)
    }

    /// Marks the container stopped by the user (so that its monitor does not start it again,
    /// also while it waits to) and sends its stop signal.
    fn signal_stop(&mut self, reference: &str) -> Result<Record, EngineError> {
        let record = self.find(reference)?;
        if !record.state.is_live() {
            return Ok(record);
        }
        store::note_user_stop(&mut self.conn, &record.id, UserStop::STOPPED)?;
        let signal =
            hull_runtime::parse_signal(&record.settings.stop_signal).unwrap_or(Signal::SIGTERM);
        let vm = record.settings.vm.is_some();
        let _ = signal_any(&self.root, &record.id, vm, signal, false);
        self.thaw_after_signal(&record);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_timeout_never_kills() {
        assert_eq!(stop_wait(0), Duration::ZERO);
        assert_eq!(stop_wait(7), Duration::from_secs(7));
        assert_eq!(stop_wait(-1), Duration::MAX);
        assert!(Instant::now().checked_add(stop_wait(-1)).is_none());
    }
}
