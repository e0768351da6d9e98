//! Shared test helpers: unique temp dirs that check no mount under them leaked, and a small
//! tar builder for hand-made (and hostile) layers.

#![allow(dead_code)]

pub mod registry;

use std::path::{Path, PathBuf};

pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("hull-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    /// Mount points under this dir (there must be none when a test ends).
    pub fn mounts(&self) -> Vec<PathBuf> {
        hull_image::overlay::mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&self.path))
            .collect()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let leaked = self.mounts();
        for mp in &leaked {
            let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.path);
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!("mounts leaked under {}: {leaked:?}", self.path.display());
        }
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Builds tars entry by entry, including entries the `tar` crate's safe helpers refuse.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        // Written raw so that "../" and absolute paths survive.
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        h
    }

    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        let h = Self::header(path, tar::EntryType::Regular, 0o644, data.len() as u64);
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(path, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(mut self, path: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Directory, 0o755, 0);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    fn link(mut self, path: &str, target: &str, kind: tar::EntryType) -> Self {
        let mut h = Self::header(path, kind, 0o777, 0);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.link(path, target, tar::EntryType::Symlink)
    }

    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.link(path, target, tar::EntryType::Link)
    }

    pub fn node(mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(path, kind, 0o600, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn xattr_file(mut self, path: &str, key: &str, value: &[u8]) -> Self {
        let k = format!("SCHILY.xattr.{key}");
        self.b.append_pax_extensions([(k.as_str(), value)]).unwrap();
        self.file(path, b"x")
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// `save` of `images` as an OCI layout tar at `out`.
pub fn save_oci(
    s: &hull_image::ImageStore,
    images: &[String],
    out: &std::path::Path,
) -> Result<(), hull_image::sources::SourceError> {
    hull_image::sources::save(s, images, out, hull_image::sources::SaveFormat::OciArchive)
}
