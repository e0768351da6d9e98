//! The container's names on its user network (hull-net's `names`): once its network is attached
//! and its hosts file written, its name and short id go into the hosts files of the others on
//! the network, and theirs into its own. On the default network no names are given, as on
//! docker's default bridge and podman's default network.

use std::path::Path;

use hull_net::engine::Net;
use rusqlite::Connection;

use crate::error::EngineError;
use crate::options::Network;
use crate::paths;
use crate::store::Record;

/// Publishes the container's names, when it is on a user network.
pub(super) fn publish(
    root: &Path,
    conn: &mut Connection,
    record: &Record,
) -> Result<(), EngineError> {
    if !matches!(record.settings.network, Network::Named(_)) {
        return Ok(());
    }
    let id = record.id.as_str();
    let mut names = vec![record.name.clone()];
    // docker's other name of a container on a user network: its short id (its default hostname).
    if let Some(short) = id.get(..12).filter(|s| *s != record.name) {
        names.push(short.to_string());
    }
    let hosts = paths::etc_dir(root, id).join("hosts");
    Ok(Net::with_conn(conn).publish_names(id, &names, &hosts)?)
}
