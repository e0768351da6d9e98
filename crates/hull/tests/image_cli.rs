//! The `hull` image commands as a user runs them: import, images, tag, image mount (a real
//! read-only overlay), save, load, rmi, prune, system df; pull and push against a real
//! loopback docker-registry when it is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("hull-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// Mount points under this dir (there must be none when a test ends).
    fn mounts(&self) -> Vec<PathBuf> {
        hull_image::overlay::mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&self.0))
            .collect()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let leaked = self.mounts();
        for mp in &leaked {
            let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.0);
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!("mounts leaked: {leaked:?}");
        }
    }
}

fn hull(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hull"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let o = hull(root, args);
    assert!(
        o.status.success(),
        "hull {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fail(root: &Path, args: &[&str]) -> String {
    let o = hull(root, args);
    assert!(!o.status.success(), "hull {args:?} should fail");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one-line error expected: {err}"
    );
    err
}

fn rootfs_tgz(dir: &Path) -> PathBuf {
    let path = dir.join("rootfs.tar.gz");
    let f = std::fs::File::create(&path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    b.append_data(&mut h, "etc/", std::io::empty()).unwrap();
    let data = b"hull-test\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "etc/hostname", &data[..]).unwrap();
    b.into_inner().unwrap().finish().unwrap();
    path
}

/// A test's dir, the root in it, and a small rootfs tarball.
fn fresh(tag: &str) -> (Dir, PathBuf, PathBuf) {
    let d = Dir::new(tag);
    let root = d.0.join("root");
    let tgz = rootfs_tgz(&d.0);
    (d, root, tgz)
}

/// A test's dir, root and tarball, with the tarball imported as test/img:1 (and its id);
/// `None`, after a skip that says why, when not root.
fn with_test_img(tag: &str) -> Option<(Dir, PathBuf, PathBuf, String)> {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip("unpacking layers and image mounts need root");
        return None;
    }
    let (d, root, tgz) = fresh(tag);
    let id = ok(&root, &["import", tgz.to_str().unwrap(), "test/img:1"])
        .trim()
        .to_string();
    Some((d, root, tgz, id))
}

#[test]
fn image_commands_end_to_end() {
    let Some((d, root, _, id)) = with_test_img("e2e") else {
        return;
    };
    let id = id.as_str();
    assert!(id.starts_with("sha256:"));
    let table = ok(&root, &["images"]);
    assert!(table.lines().next().unwrap().starts_with("REPOSITORY"));
    assert!(
        table.contains("test/img") && table.contains(" 1 "),
        "{table}"
    );
    ok(&root, &["tag", "test/img:1", "localhost/other:2"]);
    let rows: Vec<serde_json::Value> = ok(&root, &["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&root, &["image", "inspect", "test/img:1"])).unwrap();
    assert_eq!(inspect[0]["Os"], "linux");

    let mnt = PathBuf::from(ok(&root, &["image", "mount", "test/img:1"]).trim());
    assert_eq!(
        std::fs::read(mnt.join("etc/hostname")).unwrap(),
        b"hull-test\n"
    );
    assert!(
        std::fs::write(mnt.join("x"), b"").is_err(),
        "image mount is read-only"
    );
    ok(&root, &["image", "unmount", "test/img:1"]);
    assert!(d.mounts().is_empty());
    fail(&root, &["image", "unmount", "test/img:1"]);

    let out = d.0.join("saved.tar");
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci-archive",
            "test/img:1",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let root2 = d.0.join("root2");
    let loaded = ok(&root2, &["load", "-i", out.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: test/img:1"), "{loaded}");

    // docker's form: one object a line, Images first.
    let df = ok(&root, &["system", "df", "--format", "json"]);
    let images: serde_json::Value = serde_json::from_str(df.lines().next().unwrap()).unwrap();
    assert_eq!(images["Type"], "Images", "{df}");
    assert_eq!(images["TotalCount"], "1", "{df}");
    assert_ne!(images["Size"], "0B", "{df}");

    let err = fail(&root, &["rmi", "nope:1"]);
    assert!(err.contains("\"nope:1\" not found"), "{err}");
    let err = fail(&root, &["rmi", id]);
    assert!(err.contains("must be forced"), "{err}");
    let r = ok(&root, &["rmi", "localhost/other:2"]);
    assert!(
        r.contains("Untagged: localhost/other:2") && !r.contains("Deleted"),
        "{r}"
    );
    let r = ok(&root, &["rmi", "test/img:1"]);
    assert!(r.contains("Deleted: sha256:"), "{r}");
    assert_eq!(ok(&root, &["images", "-q"]).trim(), "");
    assert_eq!(std::fs::read_dir(root.join("layers")).unwrap().count(), 0);
    ok(&root2, &["image", "prune", "-a"]);
    assert_eq!(
        std::fs::read_dir(root2.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

/// Every file under `dir` (the database and the lock aside, which exist from the first
/// command on), for before/after comparisons.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("hull.db") || name == "image.lock" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `skopeo inspect ARGS` as JSON.
fn skopeo_inspect(args: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A tar whose entries are (name, kind, data or link target).
fn tar_of(path: &Path, entries: &[(&str, tar::EntryType, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        if *kind == tar::EntryType::Regular {
            h.set_size(data.len() as u64);
            // Names with ".." are set raw: the tar crate refuses them in set_path.
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        } else {
            h.set_size(0);
            let target = std::str::from_utf8(data).unwrap();
            b.append_link(&mut h, name, target).unwrap();
        }
    }
    b.finish().unwrap();
}

#[test]
fn one_image_id_everywhere() {
    let Some((d, root, tgz, id)) = with_test_img("ids") else {
        return;
    };
    assert_eq!(ok(&root, &["images", "-q", "--no-trunc"]).trim(), id);
    assert_eq!(ok(&root, &["images", "-q"]).trim(), &id[7..19]);
    // The docker archive stores the layer uncompressed: loaded back into the same root it
    // is a second manifest of the same config, which stays one image with one id.
    let archive = d.0.join("d.tar");
    ok(
        &root,
        &["save", "test/img:1", "-o", archive.to_str().unwrap()],
    );
    let loaded = ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: test/img:1\n");
    ok(&root, &["tag", "test/img:1", "other:2"]);
    let ids = ok(
        &root,
        &[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ],
    );
    assert_eq!(ids, format!("{id} other:2\n{id} test/img:1\n"));
    for r in [&id[..], &id[7..], &id[7..13], "other:2"] {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&root, &["image", "inspect", r])).unwrap();
        assert_eq!(v[0]["Id"], id.as_str(), "inspect {r}");
    }
    let err = fail(&root, &["rmi", &id[7..19]]);
    assert!(err.contains("must be forced"), "{err}");
    assert_eq!(ok(&root, &["rmi", "other:2"]), "Untagged: other:2\n");
    assert_eq!(
        ok(&root, &["rmi", &id[7..19]]),
        format!("Untagged: test/img:1\nDeleted: {id}\n")
    );
    assert_eq!(ok(&root, &["images", "-q"]), "");
    assert_eq!(files(&root.join("layers")), Vec::<PathBuf>::new());
    assert_eq!(files(&root.join("blobs")), vec![root.join("blobs/sha256")]);
    // An unnamed load says the id.
    let out = d.0.join("oci.tar");
    let id2 = ok(&root, &["import", tgz.to_str().unwrap()]);
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci-archive",
            id2.trim(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let root2 = d.0.join("root2");
    let loaded = ok(&root2, &["load", "-i", out.to_str().unwrap()]);
    assert_eq!(loaded, format!("Loaded image ID: {}", id2));
}

#[test]
fn failed_import_or_load_stores_nothing() {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip!("unpacking layers needs root");
    }
    let (d, root, tgz) = fresh("atomic");
    ok(&root, &["import", tgz.to_str().unwrap(), "base:1"]);
    let before = files(&root);
    let outside = d.0.join("escaped");
    let corrupt = d.0.join("corrupt.tar.gz");
    std::fs::write(&corrupt, b"\x1f\x8b\x08\x00not really deflate at all").unwrap();
    let dotdot = d.0.join("dotdot.tar");
    let escape = format!("../../../../../../..{}", outside.display());
    tar_of(
        &dotdot,
        &[
            ("etc/ok", tar::EntryType::Regular, b"fine"),
            (&escape, tar::EntryType::Regular, b"out"),
        ],
    );
    let symlink = d.0.join("symlink.tar");
    let target = d.0.display().to_string();
    tar_of(
        &symlink,
        &[
            ("etc/ok", tar::EntryType::Regular, b"fine"),
            ("lnk", tar::EntryType::Symlink, target.as_bytes()),
            ("lnk/escaped", tar::EntryType::Regular, b"out"),
        ],
    );
    let hardlink = d.0.join("hardlink.tar");
    tar_of(
        &hardlink,
        &[
            ("etc/ok", tar::EntryType::Regular, b"fine"),
            ("hl", tar::EntryType::Link, b"../../../../../etc/passwd"),
        ],
    );
    for bad in [&corrupt, &dotdot, &symlink, &hardlink] {
        let err = fail(&root, &["import", bad.to_str().unwrap(), "bad:1"]);
        assert!(err.contains(bad.to_str().unwrap()), "{err}");
        assert_eq!(
            files(&root),
            before,
            "import of {} left files",
            bad.display()
        );
        assert!(!outside.exists() && !d.0.join("escaped").exists());
    }
    // A bad name is refused before anything is unpacked.
    let err = fail(&root, &["import", tgz.to_str().unwrap(), "Bad:Name"]);
    assert!(err.contains("Bad:Name"), "{err}");
    assert_eq!(files(&root), before, "an import with a bad name left files");
    // A docker archive whose layer is not what its config says: the config and the layer
    // are stored before the check fails, and removed after.
    let layer = d.0.join("layer.tar");
    tar_of(&layer, &[("etc/x", tar::EntryType::Regular, b"x")]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        "0".repeat(64)
    );
    let manifest = r#"[{"Config":"config.json","RepoTags":["liar:1"],"Layers":["layer.tar"]}]"#;
    let archive = d.0.join("liar.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    for (name, data) in [
        ("manifest.json", manifest.as_bytes().to_vec()),
        ("config.json", config.into_bytes()),
        ("layer.tar", std::fs::read(&layer).unwrap()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
    fail(&root, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(files(&root), before, "a rejected load left files");
    let out = hull(&root, &["images", "--format", "{{.Repository}}"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "base\n");
}

#[test]
fn image_mount_is_counted_across_processes() {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip!("image mounts need root");
    }
    let (d, root, tgz) = fresh("mountcount");
    ok(&root, &["import", tgz.to_str().unwrap(), "m:1"]);
    let a = ok(&root, &["image", "mount", "m:1"]);
    let b = ok(&root, &["image", "mount", "m:1"]);
    assert_eq!(a, b);
    let mnt = PathBuf::from(a.trim());
    ok(&root, &["image", "unmount", "m:1"]);
    assert_eq!(
        d.mounts(),
        vec![mnt.clone()],
        "one mount is left: still mounted"
    );
    assert_eq!(
        std::fs::read(mnt.join("etc/hostname")).unwrap(),
        b"hull-test\n"
    );
    fail(&root, &["rmi", "m:1"]);
    ok(&root, &["image", "prune", "-a"]);
    assert_eq!(
        std::fs::read(mnt.join("etc/hostname")).unwrap(),
        b"hull-test\n",
        "prune spares a mounted image"
    );
    ok(&root, &["image", "unmount", "m:1"]);
    assert!(d.mounts().is_empty(), "the last unmount unmounts");
    let err = fail(&root, &["image", "unmount", "m:1"]);
    assert!(err.contains("not mounted"), "{err}");
    // --force drops every count at once.
    ok(&root, &["image", "mount", "m:1"]);
    ok(&root, &["image", "mount", "m:1"]);
    ok(&root, &["image", "unmount", "--force", "m:1"]);
    assert!(d.mounts().is_empty());
    ok(&root, &["rmi", "m:1"]);
}

#[test]
fn images_arguments_filters_and_formats() {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip!("unpacking layers needs root");
    }
    let (d, root, tgz) = fresh("list");
    ok(&root, &["import", tgz.to_str().unwrap(), "app:v1"]);
    // Configs have one-second times: the next images are younger.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let plain = d.0.join("plain.tar");
    tar_of(
        &plain,
        &[("etc/other", tar::EntryType::Regular, &[7u8; 4321])],
    );
    ok(
        &root,
        &[
            "import",
            plain.to_str().unwrap(),
            "localhost:5000/team/tool:2",
        ],
    );
    let other = d.0.join("other.tar");
    tar_of(&other, &[("etc/third", tar::EntryType::Regular, b"3")]);
    let dangling = ok(&root, &["import", other.to_str().unwrap()]);
    let names = |args: &[&str]| {
        let mut a = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        a.extend_from_slice(args);
        ok(&root, &a)
    };
    assert_eq!(names(&["app"]), "app:v1\n");
    assert_eq!(
        ok(
            &root,
            &[
                "images",
                "--format",
                "table {{.Repository}}\\t{{.Tag}}",
                "app"
            ]
        ),
        "REPOSITORY   TAG\napp          v1\n"
    );
    assert_eq!(names(&["app:v2"]), "");
    assert_eq!(
        names(&["--filter", "reference=localhost:5000/*/*"]),
        "localhost:5000/team/tool:2\n"
    );
    assert_eq!(names(&["--filter", "dangling=true"]), "<none>:<none>\n");
    assert_eq!(
        names(&["app", "--filter", "reference=*/team/tool"]),
        "localhost:5000/team/tool:2\napp:v1\n",
        "references are alternatives"
    );
    assert_eq!(
        names(&["--filter", "dangling=false", "--filter", "since=app:v1"]),
        "localhost:5000/team/tool:2\n"
    );
    assert_eq!(
        names(&["--filter", "reference=app", "--filter", "since=app:v1"]),
        ""
    );
    assert_eq!(
        names(&["--filter", "before=localhost:5000/team/tool:2"]),
        "app:v1\n"
    );
    assert_eq!(names(&["--filter", "label=maintainer"]), "");
    let err = fail(&root, &["images", "--filter", "color=red"]);
    assert!(err.contains("color"), "{err}");
    assert_eq!(
        ok(
            &root,
            &["images", "-q", "--filter", "dangling=true", "--no-trunc"]
        ),
        dangling
    );
    let digests = ok(&root, &["images", "--digests", "app"]);
    let digest = ok(&root, &["images", "--format", "{{.Digest}}", "app"]);
    assert!(
        digests.lines().next().unwrap().contains("TAG   DIGEST   "),
        "{digests}"
    );
    assert!(
        digests.contains(&format!("v1    {}", digest.trim())),
        "{digests}"
    );
    let table = ok(&root, &["images", "app"]);
    let row = table.lines().nth(1).unwrap();
    let cols: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cols.len(), 5, "{table}");
    assert!(cols[3].ends_with(" ago"), "{table}");
    // The layer is a 2560-byte tar: docker prints three significant digits.
    assert_eq!(cols[4], "2.56kB", "{table}");
    let json: serde_json::Value =
        serde_json::from_str(ok(&root, &["images", "--format", "json", "app"]).trim()).unwrap();
    assert_eq!(json["Repository"], "app");
    assert_eq!(json["Size"], "2.56kB");
}

/// `save`'s default is the archive `docker load` reads. Its checks are made here as docker
/// makes them (manifest.json names the config and the layers, each layer tar hashes to its
/// diff id in the config, repositories names the top layer), and skopeo reads it as
/// `docker-archive:` (a private dockerd, as crates/runtime/tests/dropin.rs starts, is more than
/// this check needs).
#[test]
fn save_writes_a_docker_archive() {
    let Some((d, root, _, id)) = with_test_img("dsave") else {
        return;
    };
    let id = id.as_str();
    let archive = d.0.join("d.tar");
    ok(
        &root,
        &["save", "test/img:1", "-o", archive.to_str().unwrap()],
    );
    let mut members = std::collections::HashMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        members.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 1);
    let entry = &manifest[0];
    assert_eq!(entry["RepoTags"], serde_json::json!(["test/img:1"]));
    let config_bytes = &members[entry["Config"].as_str().unwrap()];
    assert_eq!(hull_image::Digest::of(config_bytes).to_string(), id);
    let config: serde_json::Value = serde_json::from_slice(config_bytes).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = entry["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    for (l, diff) in layers.iter().zip(diff_ids) {
        let data = &members[l.as_str().unwrap()];
        assert_eq!(
            &hull_image::Digest::of(data).to_string(),
            diff.as_str().unwrap(),
            "layer {l} is the uncompressed tar its diff id names"
        );
    }
    let repos: serde_json::Value = serde_json::from_slice(&members["repositories"]).unwrap();
    let top = diff_ids.last().unwrap().as_str().unwrap();
    assert_eq!(repos["test/img"]["1"], top.trim_start_matches("sha256:"));
    // hull loads it back as the same image.
    let root2 = d.0.join("root2");
    assert_eq!(
        ok(&root2, &["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: test/img:1\n"
    );
    assert_eq!(ok(&root2, &["images", "-q", "--no-trunc"]).trim(), id);
    if !Path::new("/usr/bin/skopeo").exists() {
        hull_testkit::skip!("skopeo is not installed: the archive was checked by hand only");
    }
    let v = skopeo_inspect(&[&format!("docker-archive:{}", archive.display())]);
    assert_eq!(v["Layers"][0], diff_ids[0]);
    // As an OCI layout dir, which skopeo reads and hull loads back.
    let dir = d.0.join("layout");
    let save_dir = [
        "save",
        "--format",
        "oci-dir",
        "test/img:1",
        "-o",
        dir.to_str().unwrap(),
    ];
    ok(&root, &save_dir);
    let err = fail(&root, &save_dir);
    assert!(err.contains("exists"), "{err}");
    let root3 = d.0.join("root3");
    assert_eq!(
        ok(&root3, &["load", "-i", dir.to_str().unwrap()]),
        "Loaded image: test/img:1\n"
    );
    assert_eq!(ok(&root3, &["images", "-q", "--no-trunc"]).trim(), id);
    let st = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}", dir.display()))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // A copy reads every blob and checks it against its digest.
    let oci = d.0.join("oci");
    let st = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("oci:{}:x", oci.display()))
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn bad_input_is_one_clear_line() {
    let d = Dir::new("bad");
    let root = d.0.join("root");
    let junk = d.0.join("junk.tar");
    std::fs::write(&junk, b"this is not an archive").unwrap();
    let err = fail(&root, &["load", "-i", junk.to_str().unwrap()]);
    assert!(err.contains("junk.tar"), "{err}");
    let err = fail(&root, &["images", "--format", "yaml"]);
    assert!(err.contains("--format"), "{err}");
    let err = fail(&root, &["pull", "--insecure", "registry.example/x:1"]);
    assert!(err.contains("loopback"), "{err}");
    let err = fail(&root, &["image", "mount", "missing"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn pull_and_push_with_a_loopback_registry() {
    let Some(bin) = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        hull_testkit::skip!("docker-registry is not installed (apt-get install docker-registry)");
    };
    let d = Dir::new("reg");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.0.join("reg.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            d.0.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin)
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let res = std::panic::catch_unwind(|| {
        assert!(started, "docker-registry did not start");
        let root = d.0.join("root");
        let tgz = rootfs_tgz(&d.0);
        let id = ok(&root, &["import", tgz.to_str().unwrap(), "base:1"]);
        let id = id.trim();
        let reg = format!("127.0.0.1:{port}");
        let dest = format!("{reg}/hull/base:1");
        let pushed = ok(&root, &["push", "--insecure", "-q", "base:1", &dest]);
        assert!(pushed.starts_with("1: digest: sha256:"), "{pushed}");
        let root2 = d.0.join("root2");
        assert_eq!(ok(&root2, &["pull", "--insecure", "-q", &dest]).trim(), id);
        let again = ok(&root2, &["pull", "--insecure", &dest]);
        let digest = pushed.split_whitespace().nth(2).unwrap();
        assert_eq!(
            again,
            format!("Digest: {digest}\nStatus: Image is up to date for {dest}\n{id}\n")
        );
        // Without --insecure the https attempt meets a plain-http registry: say so.
        let err = fail(&root2, &["pull", "-q", &dest]);
        assert!(err.contains("add --insecure"), "{err}");
        // A plain (uncompressed) layer goes gzip by default, zstd when asked; either way
        // the image id is the same after a pull.
        let plain = d.0.join("plain.tar");
        tar_of(&plain, &[("etc/p", tar::EntryType::Regular, &[1u8; 5000])]);
        let pid = ok(&root, &["import", plain.to_str().unwrap(), "plain:1"]);
        let layer_type = |r: &str| -> String {
            let v = skopeo_inspect(&["--raw", "--tls-verify=false", &format!("docker://{r}")]);
            v["layers"][0]["mediaType"].as_str().unwrap().to_string()
        };
        for (flags, tag, want) in [
            (&[][..], "gz", "application/vnd.oci.image.layer.v1.tar+gzip"),
            (
                &["--compression-format", "zstd"][..],
                "zst",
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ] {
            let r = format!("{reg}/hull/plain:{tag}");
            let mut args = vec!["push", "--insecure", "-q"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["plain:1", &r]);
            ok(&root, &args);
            assert_eq!(layer_type(&r), want, "{flags:?}");
            let got = ok(&root2, &["pull", "--insecure", &r]);
            assert!(
                got.contains(&format!("Status: Downloaded newer image for {r}\n")),
                "{got}"
            );
            assert!(got.ends_with(&pid), "{got} vs {pid}");
        }
        let err = fail(
            &root,
            &[
                "push",
                "--insecure",
                "--compression-format",
                "lz4",
                "plain:1",
                &dest,
            ],
        );
        assert!(err.contains("lz4"), "{err}");
        let err = fail(
            &root2,
            &[
                "pull",
                "--insecure",
                "-q",
                &format!("127.0.0.1:{port}/hull/nothing:1"),
            ],
        );
        assert!(err.contains("hull/nothing"), "{err}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}
