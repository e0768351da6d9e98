//! `pause` and `unpause`: the container's cgroup frozen and thawed through the runtime facade
//! (the freezer). Paused is not a row state: the freezer is the one record of it, so a
//! container never looks paused when its cgroup is not frozen, or the reverse.

use hull_runtime::{Runtime, Status};

use crate::store::{Record, State};
use crate::{paths, Engine, EngineError};

impl Engine {
    /// Freezes every process of a running container.
    pub fn pause(&mut self, reference: &str) -> Result<Record, EngineError> {
        let record = self.find(reference)?;
        let container = self.running_container(&record)?;
        if container.status() == Status::Paused {
            return Err(EngineError::Invalid(format!(
                "container {} is already paused",
                record.id
            )));
        }
        container.pause()?;
        Ok(record)
    }

    /// Thaws a paused container.
    pub fn unpause(&mut self, reference: &str) -> Result<Record, EngineError> {
        let record = self.find(reference)?;
        let container = self.running_container(&record)?;
        if container.status() != Status::Paused {
            return Err(EngineError::Invalid(format!(
                "container {} is not paused",
                record.id
            )));
        }
        container.resume()?;
        Ok(record)
    }

    /// Whether the container's processes are frozen.
    pub fn is_paused(&self, record: &Record) -> bool {
        record.state == State::Running
            && Runtime::new(paths::runtime_root(&self.root))
                .open(&record.id)
                .is_ok_and(|c| c.status() == Status::Paused)
    }

    /// Thaws the container if it is paused, so that a signal just sent reaches it (docker
    /// unpauses after sending the stop signal).
    pub(crate) fn thaw_after_signal(&self, record: &Record) {
        if let Ok(c) = Runtime::new(paths::runtime_root(&self.root)).open(&record.id) {
            if c.status() == Status::Paused {
                let _ = c.resume();
            }
        }
    }

    /// The runtime's container of a record that is running.
    fn running_container(&self, record: &Record) -> Result<hull_runtime::Container, EngineError> {
        crate::vm::control::refuse_vm(record, "pause")?;
        if record.state != State::Running {
            return Err(EngineError::NotRunning(record.id.clone()));
        }
        Runtime::new(paths::runtime_root(&self.root))
            .open(&record.id)
            .map_err(|_| EngineError::NotRunning(record.id.clone()))
    }
}
