//! The test's images, made locally (no test reaches a registry): one docker-archive holding a
//! busybox-static image for the containers and a pause image for the sandboxes (busybox's
//! `sleep`, a static binary that waits for the SIGKILL containerd stops sandboxes with), both
//! on the same one layer.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

pub use hull_testkit::rootfs::BUSYBOX;
pub const APP_IMAGE: &str = "localhost/hull-cri-busybox:test";
pub const PAUSE_IMAGE: &str = "localhost/hull-cri-pause:test";

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the docker-archive under `dir` and returns its path.
pub fn archive(dir: &Path) -> PathBuf {
    let work = dir.join("image");
    let rootfs = work.join("rootfs");
    hull_testkit::rootfs::busybox(&rootfs).unwrap();
    let out_dir = work.join("archive");
    std::fs::create_dir_all(&out_dir).unwrap();
    let layer = out_dir.join("layer.tar");
    let out = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
    let diff_id = format!("sha256:{}", sha256_hex(&std::fs::read(&layer).unwrap()));
    let mut manifest = Vec::new();
    for (tag, cmd) in [
        (APP_IMAGE, json!(["/bin/sh"])),
        (PAUSE_IMAGE, json!(["/bin/sleep", "2147483647"])),
    ] {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Env": ["PATH=/bin"], "Cmd": cmd },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        });
        let bytes = serde_json::to_vec(&config).unwrap();
        let name = format!("{}.json", sha256_hex(&bytes));
        std::fs::write(out_dir.join(&name), bytes).unwrap();
        manifest.push(json!({ "Config": name, "RepoTags": [tag], "Layers": ["layer.tar"] }));
    }
    std::fs::write(
        out_dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let tarball = dir.join("images.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&out_dir)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
    let _ = std::fs::remove_dir_all(&work);
    tarball
}
