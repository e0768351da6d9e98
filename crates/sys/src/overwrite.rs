//! Rewriting a small file in place: the one rule for files that a container sees through a bind
//! mount (its /etc/hosts, hostname, resolv.conf), which must keep their inode.

use std::io::Write;
use std::path::Path;

/// Whether [`overwrite`] makes a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Create,
    /// A file that is gone belongs to a container being removed: do not bring it back.
    Fail,
}

/// Writes `text` over the file at `path`, keeping its inode, without opening it with O_TRUNC:
/// ext4 takes a truncation on open as a program replacing a file's contents and, at close,
/// allocates the new data's blocks and starts writing them out at once (its auto_da_alloc), on
/// a container's start; an `--rm` container's removal then frees those blocks (with a
/// synchronous discard on a file system mounted `discard` without a journal). The file is cut
/// to the new length after the write instead, and only when it was longer: ext4 walks the
/// file's extents at every truncation, to the same length too, and the files written on a
/// container's start (a spare's emptied ones) are usually empty. A file that stays small and
/// short-lived never gets blocks.
pub fn overwrite(path: &Path, text: &[u8], missing: Missing) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(missing == Missing::Create)
        .truncate(false)
        .open(path)?;
    let was = file.metadata()?.len();
    file.write_all(text)?;
    let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
    if was > len {
        file.set_len(len)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn keeps_the_inode_cuts_to_length_and_makes_only_when_asked() {
        let dir = std::env::temp_dir().join(format!("hull-overwrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        assert!(overwrite(&path, b"x", Missing::Fail).is_err());
        overwrite(&path, b"a long first text\n", Missing::Create).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        overwrite(&path, b"short\n", Missing::Fail).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\n");
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
