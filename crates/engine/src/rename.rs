//! `rename`: a container's name changed under the one name rule, in one write transaction
//! with the check that no other container has it.

use crate::options::check_name;
use crate::store::{self, Record};
use crate::{Engine, EngineError};

impl Engine {
    /// Gives the container `reference` the name `new`; a name in use is an error.
    pub fn rename(&mut self, reference: &str, new: &str) -> Result<Record, EngineError> {
        let new = new.strip_prefix('/').unwrap_or(new);
        check_name(new)?;
        let record = self.find(reference)?;
        if record.name == new {
            return Err(EngineError::Invalid(format!(
                "renaming a container with the same name as its current name ({new})"
            )));
        }
        store::rename(&mut self.conn, &record.id, new)?;
        // A running container's peers know it by its new name, as docker's DNS does.
        crate::names::publish(&self.root, &mut self.conn, &record)?;
        Ok(record)
    }
}
