//! Directories of regenerable cache entries, one file each (the runtime's compiled seccomp
//! filters, the engine's seccomp sections): kept to a bounded number of files, so that a cache
//! keyed by what varies (profiles, capability sets, versions after upgrades) cannot grow
//! without end.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Removes the least recently written files of `dir` until fewer than `max` are left: room for
/// one more. Best effort: an entry that cannot be read or removed stays.
pub fn make_room(dir: &Path, max: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(i64, i64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.mtime(), meta.mtime_nsec(), e.path()))
        })
        .collect();
    if files.len() < max {
        return;
    }
    files.sort();
    for (_, _, path) in &files[..=files.len() - max] {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_until_one_more_fits() {
        let dir = std::env::temp_dir().join(format!("hull-cache-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = std::time::SystemTime::now();
        for i in 0..6u64 {
            let path = dir.join(format!("e{i}"));
            std::fs::write(&path, b"x").unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(now - std::time::Duration::from_secs(100 - i))
                .unwrap();
        }
        make_room(&dir, 8);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 6);
        make_room(&dir, 4);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["e3", "e4", "e5"]);
        make_room(&dir.join("missing"), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
