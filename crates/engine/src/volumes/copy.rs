//! Filling a new volume with the image's content at its mount point, as docker copies it: the
//! merged view of the image's layers (top-most first; overlay whiteouts hide, an opaque
//! directory hides what is below it), read straight from the layer directories, so no mount
//! is made for it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A whiteout: a character device 0:0.
pub(crate) fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

pub(crate) fn is_opaque(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: `c` is a valid NUL-terminated path and `buf` a writable buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// The layer directories that make up directory `rel` of the image, top-most first; empty when
/// the image has no directory there.
pub(crate) fn layers_of(lowers: &[PathBuf], rel: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = lowers.to_vec();
    for comp in rel.components() {
        let std::path::Component::Normal(name) = comp else {
            continue;
        };
        dirs = below(&dirs, name.as_ref());
        if dirs.is_empty() {
            break;
        }
    }
    dirs
}

/// Of the directories `dirs` (top-most first), the entries `name` that are directories and
/// visible in the merged view.
fn below(dirs: &[PathBuf], name: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dirs {
        let p = d.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_dir() {
            // A whiteout or a file hides every lower entry of that name.
            break;
        }
        let opaque = is_opaque(&p);
        out.push(p);
        if opaque {
            break;
        }
    }
    out
}

/// Copies the image's directory `target` (absolute in the container) into `dest`, and gives
/// `dest` that directory's owner and mode. Nothing when the image has no directory there.
pub(crate) fn image_path(lowers: &[PathBuf], target: &str, dest: &Path) -> io::Result<()> {
    let rel = Path::new(target.trim_start_matches('/'));
    let dirs = layers_of(lowers, rel);
    let Some(top) = dirs.first() else {
        return Ok(());
    };
    let meta = std::fs::metadata(top)?;
    merge(&dirs, dest)?;
    std::os::unix::fs::chown(dest, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
}

/// Copies the merged view of `dirs` (one directory in several layers) into `dest`.
fn merge(dirs: &[PathBuf], dest: &Path) -> io::Result<()> {
    let mut seen: std::collections::BTreeSet<std::ffi::OsString> = Default::default();
    for (i, dir) in dirs.iter().enumerate() {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !seen.insert(name.clone()) {
                continue;
            }
            let src = entry.path();
            let meta = std::fs::symlink_metadata(&src)?;
            if is_whiteout(&meta) {
                continue;
            }
            let to = dest.join(&name);
            let ft = meta.file_type();
            if ft.is_dir() {
                std::fs::create_dir(&to)?;
                let sub = below(&dirs[i..], Path::new(&name));
                merge(&sub, &to)?;
                std::fs::set_permissions(
                    &to,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )?;
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&src)?, &to)?;
            } else if ft.is_file() {
                std::fs::copy(&src, &to)?;
            } else {
                // Devices, fifos and sockets: a volume holds data, not nodes.
                continue;
            }
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
            if ft.is_file() {
                // chown clears set-id bits: the mode again.
                std::fs::set_permissions(
                    &to,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_view_of_layers() {
        let t = std::env::temp_dir().join(format!("hull-vol-copy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let (top, low) = (t.join("top"), t.join("low"));
        std::fs::create_dir_all(top.join("data/sub")).unwrap();
        std::fs::create_dir_all(low.join("data/sub")).unwrap();
        std::fs::write(low.join("data/a"), "low a").unwrap();
        std::fs::write(low.join("data/b"), "low b").unwrap();
        std::fs::write(low.join("data/sub/c"), "low c").unwrap();
        std::fs::write(top.join("data/a"), "top a").unwrap();
        std::fs::write(top.join("data/sub/d"), "top d").unwrap();
        let dest = t.join("dest");
        std::fs::create_dir(&dest).unwrap();
        image_path(&[top.clone(), low.clone()], "/data", &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "top a");
        assert_eq!(std::fs::read_to_string(dest.join("b")).unwrap(), "low b");
        assert_eq!(
            std::fs::read_to_string(dest.join("sub/c")).unwrap(),
            "low c"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("sub/d")).unwrap(),
            "top d"
        );
        let empty = t.join("empty");
        std::fs::create_dir(&empty).unwrap();
        image_path(&[top, low], "/nothing", &empty).unwrap();
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&t);
    }
}
