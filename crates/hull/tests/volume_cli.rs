//! Volumes, `--mount` and `--tmpfs` end to end, as a user runs them, as root: each test has its
//! own `--root` with a busybox image (and, where it needs one, an image with content and a
//! `Volumes` entry, loaded from a docker archive), and checks on its way out that nothing is
//! left (mounts, runtime state, monitors, container dirs, rows, volumes).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{busybox_tar, Root};

fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h
}

fn file(b: &mut tar::Builder<std::fs::File>, name: &str, text: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(text.len() as u64);
    b.append_data(&mut h, name, text.as_bytes()).unwrap();
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A docker archive of `voltest:1`: busybox, then a layer with /srv/data/seed.txt and
/// /vdata/anon.txt; its config declares `Volumes: {"/vdata": {}}`.
fn voltest_archive(dir: &Path) -> PathBuf {
    let base = busybox_tar(dir);
    let extra = dir.join("layer2.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&extra).unwrap());
        for d in ["srv/", "srv/data/", "vdata/"] {
            b.append_data(&mut dir_header(), d, std::io::empty())
                .unwrap();
        }
        file(&mut b, "srv/data/seed.txt", "from image\n");
        file(&mut b, "vdata/anon.txt", "anonymous seed\n");
        b.finish().unwrap();
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["sh"], "Volumes": {"/vdata": {}}},
        "rootfs": {"type": "layers", "diff_ids": [
            format!("sha256:{}", sha256(&base)),
            format!("sha256:{}", sha256(&extra)),
        ]},
    });
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["voltest:1"],
        "Layers": ["layer1.tar", "layer2.tar"],
    }]);
    let out = dir.join("voltest.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
    file(&mut b, "config.json", &config.to_string());
    file(&mut b, "manifest.json", &manifest.to_string());
    b.append_path_with_name(&base, "layer1.tar").unwrap();
    b.append_path_with_name(&extra, "layer2.tar").unwrap();
    b.finish().unwrap();
    out
}

/// Loads the image with content and a `Volumes` entry into `r`.
fn load_voltest(r: &Root) {
    let archive = voltest_archive(&r.path);
    r.ok(&["load", "-i", archive.to_str().unwrap()]);
}

const NONET: [&str; 2] = ["--network", "none"];

fn run(r: &Root, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(&NONET);
    args.extend_from_slice(extra);
    r.hull(&args)
}

fn run_ok(r: &Root, extra: &[&str]) -> String {
    let o = run(r, extra);
    assert!(
        o.status.success(),
        "run {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn named_volume_outlives_its_container_and_read_only_refuses_writes() {
    let r = root!("named");
    assert_eq!(
        r.ok(&["volume", "create", "--label", "team=a", "keep1"])
            .trim(),
        "keep1"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["volume", "inspect", "keep1"])).unwrap();
    assert_eq!(doc[0]["Labels"]["team"], "a");
    assert_eq!(doc[0]["Driver"], "local");
    let mountpoint = r.path.join("volumes/keep1/_data");
    assert_eq!(doc[0]["Mountpoint"], mountpoint.to_str().unwrap());
    // -v of a volume that does not exist makes it, as docker does.
    run_ok(
        &r,
        &[
            "--name",
            "w",
            "-v",
            "made1:/d",
            "busybox",
            "sh",
            "-c",
            "echo hi > /d/f",
        ],
    );
    assert_eq!(r.volumes(), ["keep1", "made1"]);
    assert_eq!(
        run_ok(&r, &["-v", "made1:/data", "busybox", "cat", "/data/f"]),
        "hi\n"
    );
    // A container removed with rm (not --rm) also leaves its named volume.
    r.ok(&[
        "run",
        "--name",
        "x",
        "--network",
        "none",
        "--mount",
        "type=volume,src=keep1,dst=/k",
        "busybox",
        "sh",
        "-c",
        "echo kept > /k/g",
    ]);
    r.ok(&["rm", "-v", "x"]);
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("g")).unwrap(),
        "kept\n"
    );
    // Read-only: -v :ro and --mount readonly.
    for spec in [
        vec!["-v", "keep1:/k:ro"],
        vec!["--mount", "type=volume,source=keep1,target=/k,readonly"],
        vec!["--mount", "type=bind,src=PATH,dst=/k,ro=true"],
    ] {
        let spec: Vec<String> = spec
            .iter()
            .map(|s| s.replace("PATH", mountpoint.to_str().unwrap()))
            .collect();
        let mut args: Vec<&str> = spec.iter().map(String::as_str).collect();
        args.extend(["busybox", "sh", "-c", "cat /k/g && echo no > /k/g"]);
        let o = run(&r, &args);
        assert_eq!(o.status.code(), Some(1), "{spec:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "kept\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("Read-only file system"), "{spec:?}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("g")).unwrap(),
        "kept\n"
    );
    r.ok(&["volume", "rm", "keep1", "made1"]);
    r.assert_clean();
}

#[test]
fn image_content_is_copied_into_new_volumes() {
    let r = root!("copy");
    load_voltest(&r);
    // A new named volume gets the image's content at its path.
    let seed = || {
        let args = [
            "-v",
            "seeded:/srv/data",
            "voltest:1",
            "cat",
            "/srv/data/seed.txt",
        ];
        run_ok(&r, &args)
    };
    assert_eq!(seed(), "from image\n");
    // Several runs making one volume at once: one fills it, each sees it whole.
    let runs: Vec<_> = (0..6)
        .map(|_| {
            common::cmd(
                &r.path,
                &[
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "-v",
                    "par:/srv/data",
                    "voltest:1",
                    "cat",
                    "/srv/data/seed.txt",
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in runs {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "from image\n");
    }
    let par: Vec<_> = std::fs::read_dir(r.path.join("volumes/par"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(par, ["_data"], "fill dirs left");
    r.ok(&["volume", "rm", "par"]);
    let seeded = r.path.join("volumes/seeded/_data/seed.txt");
    assert_eq!(std::fs::read_to_string(&seeded).unwrap(), "from image\n");
    // Not into one that has content already.
    std::fs::write(&seeded, "changed\n").unwrap();
    assert_eq!(seed(), "changed\n");
    // The image's Volumes entry: an anonymous volume, filled, removed by --rm ...
    assert_eq!(
        run_ok(&r, &["voltest:1", "cat", "/vdata/anon.txt"]),
        "anonymous seed\n"
    );
    assert_eq!(r.volumes(), ["seeded"]);
    // ... and by rm -v, while rm alone leaves it (for volume prune).
    for rm in [vec!["rm", "-v", "a"], vec!["rm", "a"]] {
        r.ok(&[
            "create",
            "--name",
            "a",
            "--network",
            "none",
            "voltest:1",
            "true",
        ]);
        let vols = r.volumes();
        assert_eq!(vols.len(), 2, "{vols:?}");
        let anon = vols.iter().find(|v| *v != "seeded").unwrap().clone();
        assert_eq!(anon.len(), 64);
        let doc: serde_json::Value =
            serde_json::from_str(&r.ok(&["volume", "inspect", &anon])).unwrap();
        assert_eq!(doc[0]["Anonymous"], true);
        r.ok(&rm.iter().map(|s| &**s).collect::<Vec<_>>());
        if rm.len() == 3 {
            assert_eq!(r.volumes(), ["seeded"]);
        } else {
            assert_eq!(r.volumes().len(), 2);
        }
    }
    let pruned = r.ok(&["volume", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Volumes:\n"), "{pruned}");
    assert_eq!(r.volumes(), ["seeded"]);
    r.ok(&["volume", "rm", "seeded"]);
    r.assert_clean();
}

#[test]
fn in_use_volume_is_refused_and_prune_takes_only_unused_ones() {
    let r = root!("inuse");
    r.ok(&[
        "create",
        "--name",
        "user",
        "--network",
        "none",
        "-v",
        "used1:/u",
        "busybox",
        "true",
    ]);
    let o = r.hull(&["volume", "rm", "used1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("volume is in use"), "{err}");
    assert_eq!(r.volumes(), ["used1"]);
    r.ok(&["volume", "create", "idle1"]);
    // An anonymous volume whose container is gone (rm without -v).
    r.ok(&[
        "create",
        "--name",
        "gone",
        "--network",
        "none",
        "-v",
        "/anon",
        "busybox",
        "true",
    ]);
    r.ok(&["rm", "gone"]);
    assert_eq!(r.volumes().len(), 3);
    // Without -a: only anonymous ones.
    r.ok(&["volume", "prune", "-f"]);
    assert_eq!(r.volumes(), ["idle1", "used1"]);
    // With -a: every unused one, never one in use.
    let out = r.ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("idle1") && !out.contains("used1"), "{out}");
    assert_eq!(r.volumes(), ["used1"]);
    // rm -f of a volume that does not exist is no error; of one in use, still refused.
    r.ok(&["volume", "rm", "-f", "nosuch"]);
    assert_eq!(
        r.hull(&["volume", "rm", "-f", "used1"]).status.code(),
        Some(1)
    );
    let doc: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "user"])).unwrap();
    let mounts = doc[0]["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], "used1");
    assert_eq!(mounts[0]["Destination"], "/u");
    assert_eq!(mounts[0]["RW"], true);
    r.ok(&["rm", "user"]);
    r.ok(&["volume", "rm", "used1"]);
    r.assert_clean();
}

#[test]
fn bind_sources_and_bad_mounts() {
    let r = root!("bind");
    let missing = r.path.join("nope");
    let err = r.bad(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        &format!("type=bind,src={},dst=/d", missing.display()),
        "busybox",
        "true",
    ]);
    assert!(err.contains("bind source path does not exist"), "{err}");
    assert!(!missing.exists());
    // -v makes a missing host path, as docker does.
    let made = r.path.join("made");
    run_ok(
        &r,
        &[
            "-v",
            &format!("{}:/d", made.display()),
            "busybox",
            "sh",
            "-c",
            "echo x > /d/f",
        ],
    );
    assert_eq!(std::fs::read_to_string(made.join("f")).unwrap(), "x\n");
    for bad in [
        vec!["-v", "./rel:/d"],
        vec!["-v", "vol1:rel"],
        vec!["-v", "vol1:/d:zz"],
        vec!["--mount", "type=nfs,dst=/d"],
        vec!["--mount", "type=volume,dst=/d,bogus=1"],
        vec!["--mount", "type=tmpfs,src=x,dst=/d"],
        vec!["--tmpfs", "/t:size=lots"],
        vec!["-v", "vol1:/d", "--tmpfs", "/d"],
    ] {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(bad.iter().copied());
        args.extend(["busybox", "true"]);
        r.bad(&args);
    }
    assert_eq!(r.volumes(), Vec::<String>::new());
    r.assert_clean();
}

#[test]
fn tmpfs_has_the_size_asked() {
    let r = root!("tmpfs");
    let out = run_ok(
        &r,
        &[
            "--tmpfs",
            "/t:size=8m,mode=1777",
            "--mount",
            "type=tmpfs,dst=/t2,tmpfs-size=4m",
            "busybox",
            "sh",
            "-c",
            "grep ' /t' /proc/mounts; stat -c %a /t",
        ],
    );
    let line = |dest: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(1) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} not mounted: {out}"))
            .to_string()
    };
    let t = line("/t");
    assert!(t.starts_with("tmpfs /t tmpfs "), "{t}");
    assert!(t.contains("size=8192k") && t.contains("noexec"), "{t}");
    assert!(line("/t2").contains("size=4096k"), "{out}");
    assert_eq!(out.lines().last(), Some("1777"));
    r.assert_clean();
}
