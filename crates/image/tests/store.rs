//! The image store end to end on a real filesystem: import, image mounts (real overlayfs),
//! commit, save/load, docker archives, removal, and crash leftovers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};

use common::{exists, is_root, TarBuilder, TestDir};
use hull_image::overlay::{self, MountApi, Overlay};
use hull_image::sources;
use hull_image::ImageStore;

fn busybox_rootfs() -> Vec<u8> {
    let bb = std::fs::read("/bin/busybox").unwrap_or_else(|_| b"#!/bin/sh\n".to_vec());
    TarBuilder::new()
        .dir("bin/")
        .file_owned("bin/busybox", &bb, 0o755, 0, 0)
        .symlink("bin/sh", "busybox")
        .dir("etc/")
        .file("etc/hostname", b"base\n")
        .file("etc/remove-me", b"x\n")
        .dir("var/")
        .dir("var/cache/")
        .file("var/cache/old", b"old\n")
        .finish()
}

fn store_with_base(t: &TestDir) -> ImageStore {
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let tar = busybox_rootfs();
    sources::import_tar(&mut s, &mut &tar[..], Some("base:1")).unwrap();
    s
}

#[test]
fn import_then_mount_read_only() {
    if !is_root() {
        hull_testkit::skip!("overlay mounts need root");
    }
    let t = TestDir::new("importmount");
    let mut s = store_with_base(&t);
    let list = s.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].names, vec!["docker.io/library/base:1".to_string()]);
    let rootfs = s.rootfs_for("base:1").unwrap();
    assert_eq!(rootfs.lowers.len(), 1);
    let mnt = s.mount_image("base:1").unwrap();
    assert_eq!(std::fs::read(mnt.join("etc/hostname")).unwrap(), b"base\n");
    let err = std::fs::write(mnt.join("etc/new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let opts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = opts
        .lines()
        .find(|l| l.contains(mnt.to_str().unwrap()))
        .unwrap();
    assert!(
        line.contains("nosuid") && line.contains("nodev"),
        "image mounts are inert: {line}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(t.join("root/layers"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "layers are private to root");
    // Mounting twice (by id prefix) returns the same mount, counted twice: the first
    // unmount keeps it, the second unmounts.
    assert_eq!(s.mount_image(&list[0].id.to_string()[7..19]).unwrap(), mnt);
    let err = s.remove("base:1", false).unwrap_err();
    assert!(err.to_string().contains("image mount"), "{err}");
    assert_eq!(s.unmount_image("base:1", false).unwrap(), Some(1));
    assert!(overlay::is_mounted(&mnt));
    assert_eq!(s.unmount_image("base:1", false).unwrap(), Some(0));
    assert!(!overlay::is_mounted(&mnt));
    assert_eq!(s.unmount_image("base:1", false).unwrap(), None);
    assert!(t.mounts().is_empty());
}

/// A container root as the engine makes one: the image's layers under a fresh upper dir.
fn container_overlay(s: &ImageStore, t: &TestDir, image: &str, name: &str) -> (PathBuf, PathBuf) {
    let rootfs = s.rootfs_for(image).unwrap();
    let base = t.join(name);
    let merged =
        overlay::mount_container(&rootfs.lowers, &base, &format!("test-{name}"), false).unwrap();
    let src = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        src.contains(&format!(" hull-test-{name} ")),
        "mount source names the container"
    );
    (merged, base)
}

#[test]
fn a_volatile_root_is_not_synced_and_mounts_again() {
    if !is_root() {
        hull_testkit::skip!("overlay mounts need root");
    }
    let t = TestDir::new("volatile");
    let s = store_with_base(&t);
    let rootfs = s.rootfs_for("base:1").unwrap();
    let base = t.join("v1");
    let merged = overlay::mount_container(&rootfs.lowers, &base, "test-v1", true).unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(" hull-test-v1 "))
        .expect("the root is mounted");
    assert!(line.contains("volatile"), "mounted volatile: {line}");
    std::fs::write(merged.join("etc/added"), b"new\n").unwrap();
    assert!(overlay::unmount_container(&base).unwrap());
    // overlayfs leaves a mark that refuses the next mount of the work dir; hull clears it.
    assert!(base.join("work/work/incompat/volatile").exists());
    for volatile in [true, false] {
        let merged = overlay::mount_container(&rootfs.lowers, &base, "test-v1", volatile).unwrap();
        assert_eq!(
            std::fs::read_to_string(merged.join("etc/added")).unwrap(),
            "new\n"
        );
        assert!(overlay::unmount_container(&base).unwrap());
    }
    assert!(t.mounts().is_empty());
}

#[test]
fn commit_turns_an_upper_dir_into_a_layer() {
    if !is_root() {
        hull_testkit::skip!("overlay mounts need root");
    }
    let t = TestDir::new("commit");
    let mut s = store_with_base(&t);
    let (merged, base) = container_overlay(&s, &t, "base:1", "c1");
    let m = &merged;
    std::fs::write(m.join("etc/added"), b"new\n").unwrap();
    std::fs::remove_file(m.join("etc/remove-me")).unwrap();
    std::fs::remove_dir_all(m.join("var/cache")).unwrap();
    std::fs::create_dir(m.join("var/cache")).unwrap();
    std::fs::write(m.join("var/cache/fresh"), b"f\n").unwrap();
    std::fs::hard_link(m.join("etc/added"), m.join("etc/added-link")).unwrap();
    let c = std::ffi::CString::new(m.join("etc/added").to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and value slice.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"user.hull".as_ptr(),
            b"v".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(r, 0, "setxattr on the overlay");
    assert!(overlay::unmount_container(&base).unwrap());
    let id = sources::commit(&mut s, &base.join("upper"), Some("base:1"), Some("derived")).unwrap();
    let rootfs = s.rootfs_for("derived").unwrap();
    assert_eq!(rootfs.id, id, "the image id is the config digest");
    assert_eq!(rootfs.lowers.len(), 2);
    use std::os::unix::fs::MetadataExt;
    let top = &rootfs.lowers[0];
    assert_eq!(
        std::fs::metadata(top.join("etc/added")).unwrap().ino(),
        std::fs::metadata(top.join("etc/added-link")).unwrap().ino(),
        "hard links survive a commit"
    );
    let c = std::ffi::CString::new(top.join("etc/added").to_str().unwrap()).unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: valid C strings and a writable buffer.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"user.hull".as_ptr(),
            buf.as_mut_ptr().cast(),
            8,
        )
    };
    assert_eq!(n, 1, "xattrs survive a commit");
    // The committed layer carries OCI whiteouts back as overlay whiteouts.
    let mnt = s.mount_image("derived").unwrap();
    let check = || -> Result<(), String> {
        if std::fs::read(mnt.join("etc/added")).ok().as_deref() != Some(&b"new\n"[..]) {
            return Err("added file missing".into());
        }
        if exists(&mnt.join("etc/remove-me")) {
            return Err("deleted file visible".into());
        }
        if exists(&mnt.join("var/cache/old")) {
            return Err("opaque dir shows lower content".into());
        }
        if !exists(&mnt.join("var/cache/fresh")) || !exists(&mnt.join("bin/sh")) {
            return Err("content missing".into());
        }
        Ok(())
    };
    let res = check();
    s.unmount_image("derived", false).unwrap();
    res.unwrap();
    assert!(t.mounts().is_empty());
}

#[test]
fn many_lowers_beyond_the_option_size_limit() {
    if !is_root() {
        hull_testkit::skip!("overlay mounts need root");
    }
    let t = TestDir::new("manylowers");
    // 120 lowers with ~200-byte paths: ~24 KiB of lowerdir, far over one page.
    let long = "l".repeat(180);
    let mut lowers = Vec::new();
    for i in 0..120 {
        let d = t.join(&format!("{long}{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
        lowers.push(d);
    }
    lowers.reverse();
    let target = t.join("merged");
    std::fs::create_dir_all(&target).unwrap();
    let ov = Overlay {
        lowers: lowers.clone(),
        upper: None,
        source: "hull-test-many".into(),
        target: target.clone(),
        readonly: true,
        inert: true,
        volatile: false,
    };
    assert_eq!(overlay::mount(&ov, MountApi::New).unwrap(), MountApi::New);
    let ok = (0..120).all(|i| exists(&target.join(format!("f{i}"))));
    overlay::unmount(&target).unwrap();
    assert!(ok, "a lower is missing from the merged view");
    // mount(2) cannot take that many options, and says so.
    let err = overlay::mount(&ov, MountApi::Legacy).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    // With short relative names it fits: 60 lowers through the fallback path.
    let short: Vec<PathBuf> = (0..60)
        .map(|i| {
            let d = t.join(&format!("s/{i:02}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("g{i}")), b"").unwrap();
            d
        })
        .collect();
    let ov = Overlay {
        lowers: short,
        ..ov
    };
    assert_eq!(
        overlay::mount(&ov, MountApi::Legacy).unwrap(),
        MountApi::Legacy
    );
    let ok = exists(&target.join("g0")) && exists(&target.join("g59"));
    overlay::unmount(&target).unwrap();
    assert!(ok);
    assert!(t.mounts().is_empty());
}

#[test]
fn save_then_load_round_trips() {
    let t = TestDir::new("saveload");
    let s = store_with_base(&t);
    let id = s.resolve("base:1").unwrap();
    let out = t.join("base.tar");
    common::save_oci(&s, &["base:1".to_string()], &out).unwrap();
    let mut s2 = ImageStore::open(&t.join("root2")).unwrap();
    let loaded = sources::load(&mut s2, &out, None).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].0, id, "same manifest digest after a round trip");
    assert_eq!(s2.resolve("docker.io/library/base:1").unwrap(), id);
    let r = s2.rootfs_for("base:1").unwrap();
    assert_eq!(
        std::fs::read(r.lowers[0].join("etc/hostname")).unwrap(),
        b"base\n"
    );
}

/// A docker-archive tar with two images sharing their first layer, laid out as `docker save`.
fn docker_archive(path: &Path) {
    let l1 = TarBuilder::new().file("a", b"shared\n").finish();
    let l2 = TarBuilder::new().file("b", b"second\n").finish();
    let d1 = hull_image::Digest::of(&l1);
    let d2 = hull_image::Digest::of(&l2);
    let cfg = |ids: &[&hull_image::Digest]| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()}
        }))
        .unwrap()
    };
    let c1 = cfg(&[&d1]);
    let c2 = cfg(&[&d1, &d2]);
    let h1 = hull_image::Digest::of(&c1);
    let h2 = hull_image::Digest::of(&c2);
    let manifest = serde_json::json!([
        {"Config": format!("{}.json", h1.hex()), "RepoTags": ["one:latest"], "Layers": [format!("{}/layer.tar", d1.hex())]},
        {"Config": format!("{}.json", h2.hex()), "RepoTags": ["two:latest", "two:alias"],
         "Layers": [format!("{}/layer.tar", d1.hex()), format!("{}/layer.tar", d2.hex())]},
    ]);
    let tar = TarBuilder::new()
        .file("manifest.json", &serde_json::to_vec(&manifest).unwrap())
        .file(&format!("{}.json", h1.hex()), &c1)
        .file(&format!("{}.json", h2.hex()), &c2)
        .file(&format!("{}/layer.tar", d1.hex()), &l1)
        .file(&format!("{}/layer.tar", d2.hex()), &l2)
        .finish();
    std::fs::write(path, tar).unwrap();
}

#[test]
fn docker_archive_with_several_images() {
    let t = TestDir::new("docker");
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let path = t.join("archive.tar");
    docker_archive(&path);
    let loaded = sources::load(&mut s, &path, None).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(s.resolve("two:alias").unwrap(), s.resolve("two").unwrap());
    let one = s.rootfs_for("one").unwrap();
    let two = s.rootfs_for("two").unwrap();
    assert_eq!(two.lowers.len(), 2);
    assert_eq!(
        one.lowers[0], two.lowers[1],
        "the shared layer is unpacked once"
    );
    let du = s.disk_usage().unwrap();
    assert_eq!(du.layers, 2);
    // `system df` and `images` measure an image alike; the shared layer counts once in all.
    let list = s.list().unwrap();
    for u in &du.per_image {
        let name = format!("docker.io/library/{}", u.image);
        let i = list.iter().find(|i| i.names.contains(&name)).unwrap();
        assert_eq!(u.size, i.size, "{}", u.image);
    }
    let shared = du.per_image.iter().map(|u| u.shared).max().unwrap();
    assert!(shared > 0);
    assert_eq!(
        du.images_bytes,
        du.per_image.iter().map(|u| u.size).sum::<u64>() - shared
    );
    // Removing by one of two names only untags; refusing while held; prune reclaims.
    let r = s.remove("two:alias", false).unwrap();
    assert_eq!(r.untagged.len(), 1);
    assert!(r.deleted.is_empty());
    let held = s.acquire("two", "ctr1").unwrap();
    assert_eq!(held.lowers, two.lowers);
    let err = s.remove("two", false).unwrap_err();
    assert!(err.to_string().contains("in use by ctr1"), "{err}");
    s.release("ctr1").unwrap();
    s.remove("two", false).unwrap();
    assert!(
        !two.lowers[0].exists(),
        "the unshared layer is removed with its image"
    );
    assert!(
        one.lowers[0].exists(),
        "the shared layer stays for the other image"
    );
    s.remove("one", false).unwrap();
    assert!(!one.lowers[0].exists());
    assert_eq!(
        std::fs::read_dir(t.join("root/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn corrupt_blob_leaves_nothing_and_retry_works() {
    let t = TestDir::new("corrupt");
    let s = store_with_base(&t);
    let out = t.join("layout");
    let tarball = t.join("base.tar");
    common::save_oci(&s, &["base:1".to_string()], &tarball).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let m = s.manifest(&s.resolve("base:1").unwrap()).unwrap();
    let layer = out.join("blobs/sha256").join(&m.layers[0].digest[7..]);
    let good = std::fs::read(&layer).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&layer, &bad).unwrap();
    let root2 = t.join("root2");
    let mut s2 = ImageStore::open(&root2).unwrap();
    let err = sources::load(&mut s2, &out, Some("copy:1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("digest mismatch") && err.contains(&m.layers[0].digest),
        "{err}"
    );
    assert!(s2.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(root2.join("tmp")).unwrap().count(),
        0,
        "temp files left"
    );
    assert_eq!(std::fs::read_dir(root2.join("layers")).unwrap().count(), 0);
    // Truncated: same clear error, then a retry with the good blob works.
    std::fs::write(&layer, &good[..good.len() / 3]).unwrap();
    assert!(sources::load(&mut s2, &out, Some("copy:1")).is_err());
    std::fs::write(&layer, &good).unwrap();
    sources::load(&mut s2, &out, Some("copy:1")).unwrap();
    assert!(s2.rootfs_for("copy:1").is_ok());
}

#[test]
fn leftovers_of_dead_processes_are_removed() {
    let t = TestDir::new("leftover");
    let root = t.join("root");
    drop(ImageStore::open(&root).unwrap());
    // pid 0x7ffffffe is above pid_max: never alive.
    let dead = root.join("tmp/2147483646-layer-1-0");
    std::fs::create_dir_all(dead.join("usr/bin")).unwrap();
    std::fs::write(root.join("tmp/2147483646-blob-2-0"), b"partial").unwrap();
    let live = root.join(format!("tmp/{}-blob-3-0", std::process::id()));
    std::fs::write(&live, b"in progress").unwrap();
    drop(ImageStore::open(&root).unwrap());
    assert!(!dead.exists());
    assert!(!root.join("tmp/2147483646-blob-2-0").exists());
    assert!(live.exists(), "a live process's temp file was removed");
}

#[test]
fn full_disk_leaves_nothing_and_retry_works() {
    if !is_root() {
        hull_testkit::skip!("mounting a small tmpfs needs root");
    }
    let t = TestDir::new("fulldisk");
    let small = t.join("small");
    std::fs::create_dir_all(&small).unwrap();
    nix::mount::mount(
        Some("hull-test-fulldisk"),
        &small,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        // Room for hull.db with every subsystem's tables and its WAL (a few hundred KiB), and
        // for the small image; not for the big one.
        Some("size=2m"),
    )
    .unwrap();
    let res = std::panic::catch_unwind(|| {
        let root = small.join("root");
        let mut s = ImageStore::open(&root).unwrap();
        let tar = TarBuilder::new().file("big", &vec![1u8; 6 << 20]).finish();
        let err = sources::import_tar(&mut s, &mut &tar[..], Some("big:1")).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert!(s.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(root.join("tmp")).unwrap().count(),
            0,
            "temp files left"
        );
        assert_eq!(std::fs::read_dir(root.join("layers")).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_dir(root.join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        let small_tar = TarBuilder::new().file("small", b"fits").finish();
        sources::import_tar(&mut s, &mut &small_tar[..], Some("small:1")).unwrap();
    });
    nix::mount::umount2(&small, nix::mount::MntFlags::empty()).unwrap();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

/// Importers racing for one layer: each keeps the dir the first renamed into place, whether
/// or not it is recorded yet (CI once saw the third of them find the second's replacement).
#[test]
fn concurrent_imports_of_one_layer() {
    let t = TestDir::new("concurrent");
    let tar = busybox_rootfs();
    for round in 0..3 {
        let root = t.join(&format!("root{round}"));
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let root = root.clone();
                let tar = tar.clone();
                std::thread::spawn(move || {
                    let mut s = ImageStore::open(&root).unwrap();
                    sources::import_tar(&mut s, &mut &tar[..], Some(&format!("c:{i}"))).unwrap()
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let s = ImageStore::open(&root).unwrap();
        let names: usize = s.list().unwrap().iter().map(|i| i.names.len()).sum();
        assert_eq!(names, 6);
        assert_eq!(
            std::fs::read_dir(root.join("layers")).unwrap().count(),
            1,
            "one shared layer"
        );
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }
}

#[test]
fn unrecorded_leftovers_are_not_trusted() {
    let t = TestDir::new("unrecorded");
    let s = store_with_base(&t);
    let out = t.join("base.tar");
    common::save_oci(&s, &["base:1".to_string()], &out).unwrap();
    let m = s.manifest(&s.resolve("base:1").unwrap()).unwrap();
    let blob = &m.layers[0].digest[7..];
    let lower = s.rootfs_for("base:1").unwrap().lowers[0].clone();
    let chain = lower.file_name().unwrap().to_owned();
    // What a power loss between rename and flush could leave: names without their data.
    let root2 = t.join("root2");
    drop(ImageStore::open(&root2).unwrap());
    std::fs::create_dir_all(root2.join("layers").join(&chain).join("etc")).unwrap();
    std::fs::write(root2.join("layers").join(&chain).join("etc/hostname"), b"").unwrap();
    std::fs::write(root2.join("blobs/sha256").join(blob), b"truncated").unwrap();
    // Within one boot a layer dir in place is whole: only one left before this boot is not.
    drop(ImageStore::open(&root2).unwrap());
    assert!(
        root2.join("layers").join(&chain).is_dir(),
        "kept in its boot"
    );
    std::fs::write(root2.join("boot-id"), "an earlier boot\n").unwrap();
    let mut s2 = ImageStore::open(&root2).unwrap();
    assert!(
        !root2.join("layers").join(&chain).exists(),
        "removed after a boot"
    );
    sources::load(&mut s2, &out, None).unwrap();
    let r = s2.rootfs_for("base:1").unwrap();
    assert_eq!(
        std::fs::read(r.lowers[0].join("etc/hostname")).unwrap(),
        b"base\n"
    );
    let data = std::fs::read(root2.join("blobs/sha256").join(blob)).unwrap();
    assert_eq!(
        hull_image::Digest::of(&data).to_string(),
        m.layers[0].digest
    );
}

/// One image loaded from two sources (its gzip layer imported, then its docker archive with
/// the layer uncompressed) is two manifests of one config: one image for `images`, `system
/// df` and `rmi` by id.
#[test]
fn two_manifests_of_one_config_are_one_image() {
    if !is_root() {
        hull_testkit::skip!("unpacking layers needs root");
    }
    let t = TestDir::new("onecfg");
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let tgz = common::gzip(&busybox_rootfs());
    sources::import_tar(&mut s, &mut &tgz[..], Some("base:1")).unwrap();
    let archive = t.join("d.tar");
    let docker = sources::SaveFormat::DockerArchive;
    sources::save(&s, &["base:1".to_string()], &archive, docker).unwrap();
    sources::load(&mut s, &archive, None).unwrap();
    assert_eq!(s.db().images().unwrap().len(), 2, "two manifests");
    let list = s.list().unwrap();
    assert_eq!(list.len(), 1);
    let du = s.disk_usage().unwrap();
    assert_eq!((du.images, du.per_image.len()), (1, 1));
    assert_eq!(du.per_image[0].shared, 0, "not shared with itself");
    assert_eq!(du.per_image[0].size, list[0].size);
    let id = list[0].id.to_string();
    let r = s.remove(&id[7..19], false).unwrap();
    assert_eq!(r.deleted, vec![id]);
    assert!(s.db().images().unwrap().is_empty(), "both manifests went");
}

/// Mounts the erofs image `file` (the kernel reads a regular file since 6.12) read-only.
fn mount_erofs(file: &Path, target: &Path) -> bool {
    std::fs::create_dir_all(target).unwrap();
    nix::mount::mount(
        Some(file),
        target,
        Some("erofs"),
        nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .is_ok()
}

#[test]
fn layers_as_shared_erofs_images() {
    if !is_root() {
        hull_testkit::skip!("overlay mounts need root");
    }
    if std::process::Command::new(hull_image::store::MKFS_EROFS)
        .arg("--help")
        .output()
        .is_err()
    {
        hull_testkit::skip!("no mkfs.erofs (Debian's erofs-utils)");
    }
    let t = TestDir::new("erofs");
    let mut s = store_with_base(&t);
    // A second layer that deletes a file and makes a dir opaque, as a VM's disks must show.
    let (merged, base) = container_overlay(&s, &t, "base:1", "e1");
    std::fs::write(merged.join("etc/added"), b"new\n").unwrap();
    std::fs::remove_file(merged.join("etc/remove-me")).unwrap();
    std::fs::remove_dir_all(merged.join("var/cache")).unwrap();
    std::fs::create_dir(merged.join("var/cache")).unwrap();
    assert!(overlay::unmount_container(&base).unwrap());
    sources::commit(&mut s, &base.join("upper"), Some("base:1"), Some("derived")).unwrap();

    let disks = s.layer_disks("derived").unwrap();
    let lowers = s.rootfs_for("derived").unwrap().lowers;
    assert_eq!(disks.len(), 2);
    for (disk, dir) in disks.iter().zip(&lowers) {
        assert_eq!(
            disk.file_name().unwrap().to_str().unwrap(),
            format!("{}.erofs", dir.file_name().unwrap().to_str().unwrap()),
            "each layer's image beside its dir, top first"
        );
        let sb = std::fs::read(disk).unwrap();
        assert_eq!(sb[1024..1028], 0xe0f5_e1e2u32.to_le_bytes(), "erofs magic");
    }
    // Made once: the base image's layer is the same file, not a second copy.
    use std::os::unix::fs::MetadataExt;
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let again = s.layer_disks("base:1").unwrap();
    assert_eq!(inode(&again[0]), inode(&disks[1]));
    assert!(
        std::fs::read_dir(t.join("root/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no temp file left"
    );

    // Stacked with overlayfs as the guest stacks them, the images show the image's content.
    let (top, bottom, view) = (t.join("top"), t.join("bottom"), t.join("view"));
    assert!(mount_erofs(&disks[0], &top) && mount_erofs(&disks[1], &bottom));
    std::fs::create_dir_all(&view).unwrap();
    let ov = Overlay {
        lowers: vec![top.clone(), bottom.clone()],
        upper: None,
        source: "hull-test-erofs".into(),
        target: view.clone(),
        readonly: true,
        inert: true,
        volatile: false,
    };
    overlay::mount(&ov, MountApi::New).unwrap();
    let seen = (
        std::fs::read(view.join("etc/added")).ok(),
        exists(&view.join("etc/remove-me")),
        exists(&view.join("var/cache/old")),
        exists(&view.join("bin/busybox")),
    );
    for m in [&view, &top, &bottom] {
        overlay::unmount(m).unwrap();
    }
    assert_eq!(seen, (Some(b"new\n".to_vec()), false, false, true));

    // The images go with their layers.
    s.remove("derived", false).unwrap();
    s.remove("base:1", false).unwrap();
    let left: Vec<_> = std::fs::read_dir(t.join("root/layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "layers left: {left:?}");
}
