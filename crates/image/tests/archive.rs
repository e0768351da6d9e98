//! The descriptor-based archiver and the confined unpacker together, as `cp` and `commit` use
//! them: a tree round-trips (files, dirs, symlinks, hard links, fifos, modes, owners), `cp`'s
//! unpacking gives every entry the owner asked for and leaves `.wh.` names alone, and a layer
//! turns overlay whiteouts into OCI ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hull_image::archive::TarWriter;
use hull_image::unpack::{unpack_at, UnpackOptions};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

fn tmp(tag: &str) -> PathBuf {
    let t = std::env::temp_dir().join(format!("hull-archive-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    t
}

fn open(p: &Path, flags: OFlag) -> OwnedFd {
    nix::fcntl::open(p, flags | OFlag::O_CLOEXEC, Mode::empty()).unwrap()
}

fn archive(top: &Path, name: Option<&str>, layer: bool) -> Vec<u8> {
    let fd = open(top, OFlag::O_PATH | OFlag::O_NOFOLLOW);
    let mut w = if layer {
        TarWriter::layer(Vec::new())
    } else {
        TarWriter::new(Vec::new())
    };
    w.append_top(&fd, name.map(Path::new)).unwrap();
    w.finish().unwrap()
}

fn names(tar: &[u8]) -> Vec<String> {
    let mut n: Vec<String> = tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn a_tree_round_trips_with_the_owner_asked_for() {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip!("needs root (chown, mknod)");
    }
    let t = tmp("trip");
    let src = t.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), "data\n").unwrap();
    std::fs::set_permissions(src.join("sub/f"), std::fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::chown(src.join("sub/f"), Some(1234), Some(5678)).unwrap();
    std::fs::hard_link(src.join("sub/f"), src.join("hard")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("abs")).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(src.join(".wh.kept"), "a file, not a whiteout\n").unwrap();

    let tar = archive(&src, Some("copy"), false);
    assert_eq!(
        names(&tar),
        [
            "copy",
            "copy/.wh.kept",
            "copy/abs",
            "copy/fifo",
            "copy/hard",
            "copy/sub",
            "copy/sub/f"
        ]
    );
    let dest = t.join("dest");
    std::fs::create_dir(&dest).unwrap();
    let opts = UnpackOptions {
        whiteouts: false,
        owner: Some((7, 8)),
        ..Default::default()
    };
    unpack_at(
        &tar[..],
        open(&dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY),
        &opts,
    )
    .unwrap();
    let f = std::fs::metadata(dest.join("copy/sub/f")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (7, 8, 0o751));
    assert_eq!(
        std::fs::read_to_string(dest.join("copy/sub/f")).unwrap(),
        "data\n"
    );
    assert_eq!(
        std::fs::metadata(dest.join("copy/hard")).unwrap().ino(),
        f.ino()
    );
    assert_eq!(
        std::fs::read_link(dest.join("copy/abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(dest.join("copy/fifo"))
            .unwrap()
            .file_type()
    ));
    assert!(
        dest.join("copy/.wh.kept").is_file(),
        "a .wh. name is a plain file for cp"
    );

    // Without an owner given, the archive's (-a).
    let kept = t.join("kept");
    std::fs::create_dir(&kept).unwrap();
    let opts = UnpackOptions {
        whiteouts: false,
        ..Default::default()
    };
    unpack_at(
        &tar[..],
        open(&kept, OFlag::O_RDONLY | OFlag::O_DIRECTORY),
        &opts,
    )
    .unwrap();
    let f = std::fs::metadata(kept.join("copy/sub/f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (1234, 5678));

    // A directory's contents alone (`cp dir/.`), and a single file under a new name.
    assert_eq!(names(&archive(&src.join("sub"), None, false)), ["f"]);
    assert_eq!(
        names(&archive(&src.join("sub/f"), Some("renamed"), false)),
        ["renamed"]
    );
    std::fs::remove_dir_all(&t).unwrap();
}

#[test]
fn a_layer_carries_oci_whiteouts() {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip!("needs root (whiteout devices, trusted xattrs)");
    }
    let t = tmp("layer");
    let upper = t.join("upper");
    std::fs::create_dir_all(upper.join("opaque")).unwrap();
    std::fs::write(upper.join("opaque/new"), "n\n").unwrap();
    nix::sys::stat::mknod(
        &upper.join("gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        Mode::empty(),
        0,
    )
    .unwrap();
    let c = std::ffi::CString::new(upper.join("opaque").to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and a value slice of the length given.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(r, 0);
    let tar = archive(&upper, None, true);
    assert_eq!(
        names(&tar),
        [".wh.gone", "opaque", "opaque/.wh..wh..opq", "opaque/new"]
    );
    // Overlay's own xattrs do not travel.
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                assert!(!x.unwrap().key().unwrap().contains("trusted.overlay"));
            }
        }
    }
    std::fs::remove_dir_all(&t).unwrap();
}
