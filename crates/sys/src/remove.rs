//! Removing one directory entry whatever it is: a file, a symlink (not followed) or a directory
//! with everything under it.

use std::path::Path;

/// Removes what `path` names; NotFound is the caller's to judge (a concurrent remover).
pub fn remove_entry(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_trees_and_symlinks_go_and_a_link_target_stays() {
        let base = std::env::temp_dir().join(format!("hull-remove-entry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("tree/sub")).unwrap();
        std::fs::write(base.join("tree/sub/f"), "x").unwrap();
        std::fs::write(base.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("tree"), base.join("link")).unwrap();
        remove_entry(&base.join("link")).unwrap();
        assert!(base.join("tree/sub/f").exists());
        remove_entry(&base.join("tree")).unwrap();
        remove_entry(&base.join("file")).unwrap();
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
        let gone = remove_entry(&base.join("file")).unwrap_err();
        assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_dir(&base).unwrap();
    }
}
