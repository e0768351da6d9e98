//! Layer unpacking on a real filesystem: every entry kind, whiteouts, and hostile layers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use common::{exists, gzip, is_root, TarBuilder, TestDir};
use hull_image::unpack::{unpack, unpack_file, Compression, UnpackError, UnpackOptions};

/// Unpacks `tar` both ways (streamed, and from a file with in-kernel copies) into
/// `layer` and `layer-file`; both must agree. Returns the streamed result.
fn run(t: &TestDir, tar: &[u8]) -> Result<hull_image::unpack::UnpackStats, UnpackError> {
    let dest = t.join("layer");
    std::fs::create_dir_all(&dest).unwrap();
    let streamed = unpack(tar, &dest, &UnpackOptions::default());
    let file = t.join("layer.tar");
    std::fs::write(&file, tar).unwrap();
    let dest2 = t.join("layer-file");
    std::fs::create_dir_all(&dest2).unwrap();
    let f = std::fs::File::open(&file).unwrap();
    let from_file = unpack_file(&f, &dest2, &UnpackOptions::default());
    match (&streamed, &from_file) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.diff_id, b.diff_id);
            assert_eq!(tree(&dest), tree(&dest2), "both paths write the same tree");
        }
        (
            Err(UnpackError::Rejected { entry: a, .. }),
            Err(UnpackError::Rejected { entry: b, .. }),
        ) => {
            assert_eq!(a, b)
        }
        (Err(_), Err(_)) => {}
        _ => panic!("stream and file paths disagree: {streamed:?} vs {from_file:?}"),
    }
    streamed
}

/// Every path under `root` with its type, mode, owner, size and link target.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let link = std::fs::read_link(&p)
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let size = if md.is_file() { md.len() } else { 0 };
        // Parent dirs without an entry of their own and whiteout nodes are made by the unpacker:
        // their mtime is the clock's, which differs between the two unpacks across a second
        // boundary. Directory mtimes from entries are checked by every_entry_kind.
        let made_here = md.is_dir() || (md.file_type().is_char_device() && md.rdev() == 0);
        let mtime = if made_here { 0 } else { md.mtime() };
        out.push(format!(
            "{rel} {:o} {}:{} {size} {link} {mtime}",
            md.mode(),
            md.uid(),
            md.gid(),
        ));
        if md.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_entry_kind() {
    if !is_root() {
        hull_testkit::skip!("needs root for ownership and device nodes");
    }
    let t = TestDir::new("kinds");
    let tar = TarBuilder::new()
        .dir("etc/")
        .file_owned("bin/su", b"#!/bin/sh\n", 0o4755, 1234, 5678)
        .file("etc/hosts", b"127.0.0.1 localhost\n")
        .symlink("etc/link", "/etc/hosts")
        .hardlink("etc/hosts2", "etc/hosts")
        .node("dev/null", tar::EntryType::Char, 1, 3)
        .node("run/fifo", tar::EntryType::Fifo, 0, 0)
        .xattr_file("etc/attr", "user.hull", b"v1")
        .finish();
    let stats = run(&t, &gzip(&tar)).unwrap();
    assert_eq!(stats.compression, Compression::Gzip);
    assert_eq!(stats.diff_id, hull_image::Digest::of(&tar));
    let l = t.join("layer");
    let su = std::fs::metadata(l.join("bin/su")).unwrap();
    assert_eq!(
        su.permissions().mode() & 0o7777,
        0o4755,
        "setuid kept after chown"
    );
    assert_eq!((su.uid(), su.gid()), (1234, 5678));
    assert_eq!(su.mtime(), 1_600_000_000);
    assert_eq!(
        std::fs::read_link(l.join("etc/link")).unwrap().to_str(),
        Some("/etc/hosts")
    );
    let h1 = std::fs::metadata(l.join("etc/hosts")).unwrap();
    let h2 = std::fs::metadata(l.join("etc/hosts2")).unwrap();
    assert_eq!(h1.ino(), h2.ino());
    let null = std::fs::metadata(l.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(std::fs::metadata(l.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let v = xattr(&l.join("etc/attr"), "user.hull");
    assert_eq!(v.as_deref(), Some(&b"v1"[..]));
    // Directory mtimes are set after their children were written.
    assert_eq!(
        std::fs::metadata(l.join("etc")).unwrap().mtime(),
        1_600_000_000
    );
}

fn xattr(p: &std::path::Path, key: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let k = std::ffi::CString::new(key).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: valid C strings and a writable buffer of the given length.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..usize::try_from(n).unwrap()].to_vec())
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !is_root() {
        hull_testkit::skip!("needs root for whiteout device nodes and trusted xattrs");
    }
    let t = TestDir::new("wh");
    let tar = TarBuilder::new()
        .dir("etc/")
        .file("etc/.wh.passwd", b"")
        .dir("var/cache/")
        .file("var/cache/.wh..wh..opq", b"")
        .finish();
    run(&t, &zstd::encode_all(&tar[..], 1).unwrap()).unwrap();
    let l = t.join("layer");
    let wh = std::fs::symlink_metadata(l.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!exists(&l.join("etc/.wh.passwd")));
    assert_eq!(
        xattr(&l.join("var/cache"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!exists(&l.join("var/cache/.wh..wh..opq")));
}

fn rejected(r: Result<hull_image::unpack::UnpackStats, UnpackError>, entry: &str) {
    match r {
        Err(UnpackError::Rejected { entry: e, .. }) => assert_eq!(e, entry),
        other => panic!("expected entry {entry:?} to be rejected, got {other:?}"),
    }
}

#[test]
fn dotdot_paths_are_rejected_by_name() {
    let t = TestDir::new("dotdot");
    let tar = TarBuilder::new().file("a/../../escaped", b"x").finish();
    rejected(run(&t, &tar), "a/../../escaped");
    assert!(!exists(&t.path.join("escaped")));
    assert!(!exists(&std::env::temp_dir().join("escaped")));
}

#[test]
fn absolute_paths_stay_inside() {
    let t = TestDir::new("abs");
    let outside = t.join("outside");
    let abs = format!("{}/file", outside.display());
    let tar = TarBuilder::new().file(&abs, b"x").finish();
    run(&t, &tar).unwrap();
    assert!(!exists(&outside.join("file")), "wrote outside the layer");
    assert!(exists(&t.join("layer").join(abs.trim_start_matches('/'))));
}

#[test]
fn symlinked_parent_cannot_escape() {
    let t = TestDir::new("symparent");
    let outside = t.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // "esc" points at a real directory outside; writing "esc/pwned" must not land there.
    let tar = TarBuilder::new()
        .symlink("esc", outside.to_str().unwrap())
        .symlink("up", "../../../../../../../../")
        .file("esc/pwned", b"x")
        .file("up/pwned2", b"x")
        .finish();
    let r = run(&t, &tar);
    assert!(
        !exists(&outside.join("pwned")),
        "file written through a symlink outside: {r:?}"
    );
    assert!(!exists(&t.path.join("pwned2")));
    assert!(!exists(std::path::Path::new("/pwned2")));
    // "up" resolves to the layer root itself, so its file lands at the top of the layer.
    if r.is_ok() {
        assert!(exists(&t.join("layer/pwned2")));
    }
}

#[test]
fn file_replacing_a_symlink_does_not_write_through_it() {
    let t = TestDir::new("symfile");
    let victim = t.join("victim");
    std::fs::write(&victim, b"original").unwrap();
    let tar = TarBuilder::new()
        .symlink("evil", victim.to_str().unwrap())
        .file("evil", b"overwritten")
        .finish();
    run(&t, &tar).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"original");
    assert_eq!(std::fs::read(t.join("layer/evil")).unwrap(), b"overwritten");
}

#[test]
fn hard_links_out_of_the_layer_are_rejected() {
    let t = TestDir::new("hardout");
    let secret = t.join("secret");
    std::fs::write(&secret, b"s").unwrap();
    let tar = TarBuilder::new().hardlink("h", "../secret").finish();
    rejected(run(&t, &tar), "h");
    let t2 = TestDir::new("hardabs");
    let secret2 = t2.join("secret");
    std::fs::write(&secret2, b"s").unwrap();
    let tar = TarBuilder::new()
        .hardlink("h", secret2.to_str().unwrap())
        .finish();
    rejected(run(&t2, &tar), "h");
    assert_eq!(std::fs::metadata(&secret2).unwrap().nlink(), 1);
    // Through a symlink to the outside: resolved inside the layer, where nothing is.
    let t3 = TestDir::new("hardsym");
    let secret3 = t3.join("secret");
    std::fs::write(&secret3, b"s").unwrap();
    let tar = TarBuilder::new()
        .symlink("d", t3.path.to_str().unwrap())
        .hardlink("h", "d/secret")
        .finish();
    rejected(run(&t3, &tar), "h");
    assert_eq!(std::fs::metadata(&secret3).unwrap().nlink(), 1);
}

#[test]
fn devices_refused_when_not_allowed() {
    let t = TestDir::new("nodev");
    let dest = t.join("layer");
    std::fs::create_dir_all(&dest).unwrap();
    let tar = TarBuilder::new()
        .node("dev/sda", tar::EntryType::Block, 8, 0)
        .finish();
    let r = unpack(
        &tar[..],
        &dest,
        &UnpackOptions {
            allow_devices: false,
            ..Default::default()
        },
    );
    rejected(r, "dev/sda");
}

#[test]
fn overlay_xattrs_in_layers_are_rejected() {
    let t = TestDir::new("ovlx");
    let tar = TarBuilder::new()
        .xattr_file("f", "trusted.overlay.redirect", b"/etc")
        .finish();
    rejected(run(&t, &tar), "f");
}

#[test]
fn truncated_layer_is_an_error() {
    let t = TestDir::new("trunc");
    let tar = TarBuilder::new().file("big", &vec![7u8; 100_000]).finish();
    let gz = gzip(&tar);
    let r = run(&t, &gz[..gz.len() / 2]);
    assert!(
        matches!(
            r,
            Err(UnpackError::Read(_)) | Err(UnpackError::Entry { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn pax_ids_and_long_names() {
    if !is_root() {
        hull_testkit::skip!("needs root to chown");
    }
    let t = TestDir::new("pax");
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("{}/file", "d".repeat(150));
    b.append_pax_extensions([("uid", &b"3000000"[..]), ("gid", &b"3000001"[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o640);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, &long, &b"hi"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    run(&t, &tar).unwrap();
    let md = std::fs::metadata(t.join("layer").join(&long)).unwrap();
    assert_eq!((md.uid(), md.gid()), (3_000_000, 3_000_001));
    assert_eq!(md.permissions().mode() & 0o777, 0o640);
}
