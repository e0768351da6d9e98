//! `--device HOST[:CTR[:PERMS]]`: host device nodes, found by stat as docker finds them.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::invalid;
use crate::error::EngineError;

/// A host device node: its kind, numbers and mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Stats `path` (following links, as docker does for /dev/disk/by-id names).
pub fn device_node(path: &Path) -> Result<DeviceNode, EngineError> {
    let meta =
        std::fs::metadata(path).map_err(|e| invalid(format!("device {}: {e}", path.display())))?;
    let kind = if meta.file_type().is_char_device() {
        'c'
    } else if meta.file_type().is_block_device() {
        'b'
    } else {
        return Err(invalid(format!("{} is not a device node", path.display())));
    };
    let rdev = meta.rdev();
    Ok(DeviceNode {
        kind,
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// `--device HOST[:CTR[:PERMS]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub host_path: String,
    pub container_path: String,
    /// `rwm` or a subset.
    pub access: String,
    pub node: DeviceNode,
}

/// Every device node under `dir`, recursively, symlinks skipped.
pub fn nodes_under(dir: &Path) -> Vec<(PathBuf, DeviceNode)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(nodes_under(&path)),
            Ok(t) if t.is_char_device() || t.is_block_device() => {
                if let Ok(node) = device_node(&path) {
                    out.push((path, node));
                }
            }
            _ => {}
        }
    }
    out
}

/// `--device HOST[:CTR[:PERMS]]`; a directory (as /dev/snd) gives every node under it, at the
/// same place under CTR, as docker does.
pub fn parse_device(text: &str) -> Result<Vec<DeviceSpec>, EngineError> {
    let bad = |why: &str| invalid(format!("invalid --device {text:?}: {why}"));
    let mut parts = text.split(':');
    let host = parts.next().unwrap_or_default();
    let mut ctr = parts.next().unwrap_or(host);
    let mut access = parts.next().unwrap_or("rwm");
    // `HOST:PERMS`, as docker reads a second field of only r, w and m.
    if parts.next().is_some() {
        return Err(bad("use HOST[:CONTAINER[:PERMISSIONS]]"));
    }
    if !ctr.starts_with('/') && is_access(ctr) && text.split(':').count() == 2 {
        access = ctr;
        ctr = host;
    }
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad("the paths must be absolute"));
    }
    if !is_access(access) {
        return Err(bad("permissions are a combination of r, w and m"));
    }
    if Path::new(host).is_dir() {
        let nodes = nodes_under(Path::new(host));
        if nodes.is_empty() {
            return Err(bad("the directory has no device nodes"));
        }
        return Ok(nodes
            .into_iter()
            .filter_map(|(path, node)| {
                let rel = path.strip_prefix(host).ok()?;
                Some(DeviceSpec {
                    host_path: path.to_str()?.to_string(),
                    container_path: Path::new(ctr).join(rel).to_str()?.to_string(),
                    access: access.to_string(),
                    node,
                })
            })
            .collect());
    }
    Ok(vec![DeviceSpec {
        host_path: host.to_string(),
        container_path: ctr.to_string(),
        access: access.to_string(),
        node: device_node(Path::new(host))?,
    }])
}

fn is_access(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        let d = parse_device("/dev/null:/dev/mynull:r").unwrap().remove(0);
        assert_eq!((d.node.kind, d.node.major, d.node.minor), ('c', 1, 3));
        assert_eq!(
            (d.container_path.as_str(), d.access.as_str()),
            ("/dev/mynull", "r")
        );
        let d = parse_device("/dev/null:rw").unwrap().remove(0);
        assert_eq!(
            (d.container_path.as_str(), d.access.as_str()),
            ("/dev/null", "rw")
        );
        assert!(parse_device("/etc/passwd").is_err());
        assert!(parse_device("/dev/null:/x:q").is_err());
    }
}
