//! Where the tests that boot hull-guest find what it boots with: the initramfs that
//! scripts/build-guest-initramfs.sh builds into the target dir, and Debian's cloud kernel that
//! scripts/qemu-guest-lib.sh unpacks into the qemu cache.

use std::path::{Path, PathBuf};

/// hull-guest's initramfs: `HULL_GUEST_INITRAMFS`, else the build script's output in this
/// build's target dir.
pub fn initramfs() -> PathBuf {
    std::env::var_os("HULL_GUEST_INITRAMFS").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
                PathBuf::from,
            );
            target.join("hull-guest-initramfs/initramfs.cpio.gz")
        },
        PathBuf::from,
    )
}

/// Debian's cloud kernel (a bzImage) in the qemu cache (`HULL_QEMU_CACHE`, default
/// /var/cache/hull-qemu), if it was unpacked there.
pub fn kernel() -> Option<PathBuf> {
    let cache = std::env::var("HULL_QEMU_CACHE").unwrap_or_else(|_| "/var/cache/hull-qemu".into());
    std::fs::read_dir(Path::new(&cache).join("x/boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}
