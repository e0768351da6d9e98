//! `container prune` and the engine's parts of `system prune`: containers that are not running
//! (and pass the filters), and the networks no container names.

use hull_image::store::du;

use crate::filter::{Filters, Seen};
use crate::{paths, Engine, EngineError};

/// What a prune removed, and the bytes freed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub removed: Vec<String>,
    pub bytes: u64,
}

impl Engine {
    /// Removes every container that is not running and passes `filters` (created ones too, as
    /// docker's prune does).
    pub fn prune_containers(&mut self, filters: &Filters) -> Result<Pruned, EngineError> {
        let mut pruned = Pruned::default();
        for r in self.list()? {
            if r.state.is_live() || !filters.matches(&r, Seen { paused: false }) {
                continue;
            }
            let size = du(&paths::container_dir(&self.root, &r.id));
            match self.remove(&r.id, false) {
                Ok(_) => {
                    pruned.bytes += size;
                    pruned.removed.push(r.id);
                }
                // Started or removed by another command meanwhile.
                Err(EngineError::Running(_) | EngineError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(pruned)
    }

    /// Removes the networks that no container names (the default network stays).
    pub fn prune_networks(&mut self) -> Result<Pruned, EngineError> {
        let used: Vec<String> = self
            .list()?
            .into_iter()
            .map(|r| r.settings.network.name().to_string())
            .collect();
        let mut net = hull_net::engine::Net::open(&self.root)?;
        let mut pruned = Pruned::default();
        for n in net.networks()? {
            if n.name == hull_net::network::DEFAULT_NETWORK || used.contains(&n.name) {
                continue;
            }
            // One in use by a container outside the engine (a CNI user) stays.
            if net.remove_network(&n.name).is_ok() {
                pruned.removed.push(n.name);
            }
        }
        Ok(pruned)
    }
}
