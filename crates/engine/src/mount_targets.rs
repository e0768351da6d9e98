//! The shared bottom layer of every container's root: the mount points of what the runtime
//! mounts in every container, empty: /proc, /sys, /dev, and the files its own /etc/hosts,
//! /etc/hostname and /etc/resolv.conf are bind-mounted on (docker's "init layer", made once per
//! engine root rather than once per container). Without it the runtime makes the mount points
//! an image lacks in the container's upper dir at each start (and copies /etc up): inodes
//! allocated, and freed again by `--rm`, per container (half a millisecond each on an ext4
//! mounted `discard` without a journal). It lies under the image's layers, so an image's own
//! files win; the container never writes to it (those paths are mounted over).

use std::path::{Path, PathBuf};

use crate::error::EngineError;

/// The directories of the layer.
const DIRS: [&str; 4] = ["proc", "sys", "dev", "etc"];

/// The files of the layer, under `etc/` (made last: their presence says the layer is whole).
const FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// The layer's directory under engine root `root` (whether made yet or not).
pub(crate) fn path(root: &Path) -> PathBuf {
    root.join("mount-targets")
}

/// The layer, made first if missing: built aside and renamed into place, so that concurrent
/// starts never see half of it, and one that lost the race drops its copy.
pub(crate) fn layer(root: &Path) -> Result<PathBuf, EngineError> {
    let layer = path(root);
    if whole(&layer) {
        return Ok(layer);
    }
    let aside = root.join(format!(".mount-targets.{}", std::process::id()));
    let made = (|| {
        let _ = std::fs::remove_dir_all(&aside);
        for dir in DIRS {
            std::fs::create_dir_all(aside.join(dir))?;
        }
        let etc = aside.join("etc");
        for name in FILES {
            std::fs::File::create(etc.join(name))?;
        }
        std::fs::rename(&aside, &layer)
    })();
    if let Err(err) = made {
        let _ = std::fs::remove_dir_all(&aside);
        if !whole(&layer) {
            return Err(EngineError::io(format!("making {}", layer.display()))(err));
        }
    }
    Ok(layer)
}

fn whole(layer: &Path) -> bool {
    let etc = layer.join("etc");
    DIRS.iter().all(|d| layer.join(d).is_dir()) && FILES.iter().all(|f| etc.join(f).is_file())
}

/// `lowers` (an image's layers, top-most first) with the layer below them.
pub(crate) fn under(root: &Path, lowers: &[PathBuf]) -> Result<Vec<PathBuf>, EngineError> {
    let mut all = lowers.to_vec();
    all.push(layer(root)?);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_with_empty_files_and_reused() {
        let root = std::env::temp_dir().join(format!("hull-mount-targets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let layer = layer(&root).unwrap();
        for name in FILES {
            let meta = std::fs::metadata(layer.join("etc").join(name)).unwrap();
            assert!(meta.is_file() && meta.len() == 0, "{name}");
        }
        assert!(whole(&layer));
        let again = under(&root, &[PathBuf::from("/image")]).unwrap();
        assert_eq!(again, vec![PathBuf::from("/image"), layer.clone()]);
        // Nothing left aside.
        let names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("mount-targets")]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
