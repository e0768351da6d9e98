//! Spare container directories under `<root>/spare/`: what a removed container's directory is
//! made of, emptied, kept for the next container instead of freed and allocated again. Each
//! new inode a container start allocates costs it more than the rest of its syscalls on an
//! ext4 without a journal (the allocator skips every inode of the group freed in the last
//! minute, reading each: 0.1-0.25 ms per directory after a few hundred `run --rm`), and each
//! one freed is a synchronous discard on a filesystem mounted `discard`.
//!
//! A spare is the container directory itself, the overlay's `work` (emptied: the kernel fills
//! it at each mount) and `merged` (an empty mount point), and the bundle's `config.json`,
//! `hostname`, `hosts` and `resolv.conf`, truncated (rewritten in place at the next create).
//! Not the upper dir: its root is the container's `/`, whose mode, owner, times and extended
//! attributes the container may have changed; it is made anew. Anything else (logs, the attach
//! socket) is deleted. A spare enters `spare/` by one rename once whole, and leaves it by one
//! rename to `containers/<id>`, so no container ever sees another's files, and a process killed
//! midway leaves a directory in `trash/` that the next emptying deals with.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hull_sys::remove::remove_entry;

/// At most this many spares are kept: enough for the starts that run at once.
const MAX_SPARES: usize = 4;

/// Entries of a container directory that a spare keeps, truncated.
const FILES: [&str; 4] = ["config.json", "hostname", "hosts", "resolv.conf"];

/// Entries that a spare keeps, emptied.
const DIRS: [&str; 2] = ["work", "merged"];

fn spare_dir(root: &Path) -> PathBuf {
    root.join("spare")
}

/// Makes `dir` (a removed container's directory, out of `containers/`, unmounted) a spare when
/// fewer than [`MAX_SPARES`] are kept; false when it was not (it may be partly emptied then).
pub(crate) fn recycle(root: &Path, dir: &Path) -> bool {
    let spares = spare_dir(root);
    let kept = std::fs::read_dir(&spares).map_or(0, |d| d.count());
    if kept >= MAX_SPARES || !empty_all_but_the_skeleton(dir).unwrap_or(false) {
        return false;
    }
    let Some(name) = dir.file_name() else {
        return false;
    };
    std::fs::create_dir_all(&spares).is_ok() && std::fs::rename(dir, spares.join(name)).is_ok()
}

/// Leaves in `dir` only [`DIRS`] (empty) and [`FILES`] (truncated); false when one of them
/// cannot be kept (a mount point, a symlink, a file where a dir belongs).
fn empty_all_but_the_skeleton(dir: &Path) -> std::io::Result<bool> {
    let dev = std::fs::metadata(dir)?.dev();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        if DIRS.contains(&name) {
            // A mount still on it is another device: never empty what it shows.
            if !kind.is_dir() || std::fs::metadata(&path)?.dev() != dev {
                return Ok(false);
            }
            for child in std::fs::read_dir(&path)? {
                remove_entry(&child?.path())?;
            }
        } else if FILES.contains(&name)
            && kind.is_file()
            // Linked elsewhere too (a runtime's state, left behind, holding config.json): deleted
            // as any other file rather than truncated under that state.
            && std::fs::metadata(&path)?.nlink() == 1
        {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(0)?;
        } else {
            remove_entry(&path)?;
        }
    }
    Ok(true)
}

/// Moves a spare to `dir` (which must not exist); false when there is none to take.
pub(crate) fn take(root: &Path, dir: &Path) -> bool {
    let Ok(spares) = std::fs::read_dir(spare_dir(root)) else {
        return false;
    };
    for entry in spares.filter_map(Result::ok) {
        match std::fs::rename(entry.path(), dir) {
            Ok(()) => return true,
            // Another start took this one first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("hull-spare-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("trash")).unwrap();
        root
    }

    fn removed_container(root: &Path, id: &str) -> PathBuf {
        let dir = root.join("trash").join(id);
        for d in ["upper/etc", "work/work", "merged"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("upper/etc/secret"), "x").unwrap();
        std::fs::write(dir.join("config.json"), "{\"old\": true}").unwrap();
        std::fs::write(dir.join("hosts"), "10.0.0.1 old").unwrap();
        std::fs::write(dir.join("ctr.log"), "old log").unwrap();
        dir
    }

    #[test]
    fn a_spare_keeps_its_skeleton_empty_and_nothing_of_its_container() {
        let root = scratch("skeleton");
        let dir = removed_container(&root, "c1");
        let config_inode = std::fs::metadata(dir.join("config.json")).unwrap().ino();
        assert!(recycle(&root, &dir));
        assert!(!dir.exists());
        let next = root.join("containers").join("c2");
        std::fs::create_dir_all(root.join("containers")).unwrap();
        assert!(take(&root, &next));
        let mut names: Vec<_> = std::fs::read_dir(&next)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["config.json", "hosts", "merged", "work"]);
        assert_eq!(std::fs::read(next.join("config.json")).unwrap(), b"");
        assert_eq!(std::fs::read(next.join("hosts")).unwrap(), b"");
        assert_eq!(std::fs::read_dir(next.join("work")).unwrap().count(), 0);
        // The same inode: nothing allocated.
        let again = std::fs::metadata(next.join("config.json")).unwrap().ino();
        assert_eq!(again, config_inode);
        // None left to take.
        assert!(!take(&root, &root.join("containers").join("c3")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_config_linked_elsewhere_is_not_truncated_under_it() {
        let root = scratch("linked");
        let dir = removed_container(&root, "c1");
        let state = root.join("state-config.json");
        std::fs::hard_link(dir.join("config.json"), &state).unwrap();
        assert!(recycle(&root, &dir));
        assert_eq!(std::fs::read(&state).unwrap(), b"{\"old\": true}");
        let spare = spare_dir(&root).join("c1");
        assert!(!spare.join("config.json").exists());
        assert_eq!(std::fs::read(spare.join("hosts")).unwrap(), b"");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_pool_is_bounded_and_odd_dirs_are_not_kept() {
        let root = scratch("bounded");
        for n in 0..MAX_SPARES + 2 {
            let dir = removed_container(&root, &format!("c{n}"));
            assert_eq!(recycle(&root, &dir), n < MAX_SPARES, "{n}");
        }
        assert_eq!(
            std::fs::read_dir(spare_dir(&root)).unwrap().count(),
            MAX_SPARES
        );
        // `merged` a file: not a skeleton this can keep.
        let root2 = scratch("odd");
        let dir = root2.join("trash").join("odd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("merged"), "").unwrap();
        assert!(!recycle(&root2, &dir));
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&root2).unwrap();
    }
}
