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

#[test]
fn image_commands_end_to_end() {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip!("image mounts need root");
    }
    let d = Dir::new("e2e");
    let root = d.0.join("root");
    let tgz = rootfs_tgz(&d.0);
    let digest = ok(&root, &["import", tgz.to_str().unwrap(), "test/img:1"]);
    assert!(digest.trim().starts_with("sha256:"));
    let table = ok(&root, &["images"]);
    assert!(table.lines().next().unwrap().starts_with("REPOSITORY"));
    assert!(
        table.contains("test/img") && table.contains(" 1 "),
        "{table}"
    );
    ok(&root, &["tag", "test/img:1", "localhost/other:2"]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&root, &["images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["names"].as_array().unwrap().len(), 2);
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
    ok(&root, &["save", "test/img:1", "-o", out.to_str().unwrap()]);
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
    let err = fail(&root, &["rmi", digest.trim()]);
    assert!(err.contains("several names"), "{err}");
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
        ok(&root, &["import", tgz.to_str().unwrap(), "base:1"]);
        let dest = format!("127.0.0.1:{port}/hull/base:1");
        let pushed = ok(&root, &["push", "--insecure", "-q", "base:1", &dest]);
        let root2 = d.0.join("root2");
        let pulled = ok(&root2, &["pull", "--insecure", "-q", &dest]);
        assert_eq!(pulled.trim(), pushed.trim());
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
