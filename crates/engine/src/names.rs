//! The container's names on its user network (hull-net's `names`): once its monitor has attached
//! its network and written its hosts file, its name, short id and `--network-alias`es go into the hosts files of the
//! others on the network, and theirs into its own; a `rename` publishes the new name. On the
//! default network no names are given, as on docker's default bridge and podman's default
//! network.

use std::path::Path;

use hull_net::engine::Net;
use rusqlite::Connection;

use crate::error::EngineError;
use crate::options::Network;
use crate::paths;
use crate::store::{self, Record};

/// Publishes the container's names, when it is on a user network (none while it is not running:
/// it has no attachment).
pub(crate) fn publish(
    root: &Path,
    conn: &mut Connection,
    record: &Record,
) -> Result<(), EngineError> {
    if !matches!(record.settings.network, Network::Named(_)) {
        return Ok(());
    }
    let id = record.id.as_str();
    // Read now: a restarted container's record is from its first start.
    let Some(name) = store::name(conn, id)? else {
        return Ok(());
    };
    let mut names = vec![name];
    // docker's other name of a container on a user network: its short id (its default hostname).
    if let Some(short) = id.get(..12).filter(|s| *s != names[0]) {
        names.push(short.to_string());
    }
    for alias in &record.settings.etc.network_aliases {
        if !names.contains(alias) {
            names.push(alias.clone());
        }
    }
    let hosts = paths::etc_dir(root, id).join("hosts");
    Ok(Net::with_conn(conn).publish_names(id, &names, &hosts)?)
}
