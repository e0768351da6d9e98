//! Pull and push against a real registry (Debian's docker-registry on loopback), images put
//! there by skopeo and made by umoci, hull's pushes read back by skopeo, and bad input
//! (500s, cut streams, corrupt blobs, non-JSON manifests, unknown media types).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::registry::{skopeo, tool, Fault, Proxy, Registry};
use common::{TarBuilder, TestDir};
use hull_image::registry::{self, Quiet, RegistryOptions};
use hull_image::{sources, ImageStore};

/// `push` as the CLI does by default (uncompressed layers gzipped), without progress.
fn push(
    s: &ImageStore,
    image: &str,
    dest: Option<&str>,
    opts: &RegistryOptions,
) -> Result<registry::PushReport, registry::RegistryError> {
    registry::push(
        s,
        image,
        dest,
        opts,
        registry::PushCompression::Gzip,
        &Quiet,
    )
}

fn insecure() -> RegistryOptions {
    RegistryOptions {
        insecure: true,
        ..Default::default()
    }
}

/// A registry with `hull/base:1` (two layers) pushed by skopeo; None (with a printed reason)
/// when the tools are missing.
fn setup(t: &TestDir) -> Option<(Registry, ImageStore)> {
    if tool("skopeo").is_none() {
        hull_testkit::skip("skopeo is not installed (apt-get install skopeo)");
        return None;
    }
    let reg = match Registry::start(&t.path) {
        Ok(r) => r,
        Err(e) => {
            hull_testkit::skip(e);
            return None;
        }
    };
    let mut s = ImageStore::open(&t.join("src-root")).unwrap();
    let l1 = TarBuilder::new()
        .dir("etc/")
        .file("etc/os-release", b"ID=hull\n")
        .finish();
    // Compressed, so that skopeo copies it as is (it compresses plain tar layers).
    sources::import_tar(&mut s, &mut &common::gzip(&l1)[..], Some("base:0")).unwrap();
    let up = t.join("upper");
    std::fs::create_dir_all(up.join("usr/bin")).unwrap();
    std::fs::write(up.join("usr/bin/tool"), vec![42u8; 300_000]).unwrap();
    sources::commit(&mut s, &up, Some("base:0"), Some("base:1")).unwrap();
    let archive = t.join("base.tar");
    common::save_oci(&s, &["base:1".into()], &archive).unwrap();
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", archive.display()),
        &format!("docker://{}/hull/base:1", reg.addr()),
    ]);
    Some((reg, s))
}

#[test]
fn pull_skopeo_pushed_image_and_skip_present_layers() {
    let t = TestDir::new("pull");
    let Some((reg, src)) = setup(&t) else { return };
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let name = format!("{}/hull/base:1", reg.addr());
    let r = registry::pull(&mut s, &name, &insecure(), &Quiet).unwrap();
    assert_eq!(r.downloaded, 2);
    assert_eq!(
        r.manifest,
        src.resolve("base:1").unwrap(),
        "skopeo kept the manifest as is"
    );
    let rootfs = s.rootfs_for(&name).unwrap();
    assert_eq!(rootfs.lowers.len(), 2);
    assert_eq!(
        std::fs::read(rootfs.lowers[0].join("usr/bin/tool"))
            .unwrap()
            .len(),
        300_000
    );
    assert!(rootfs.lowers[1].join("etc/os-release").exists());
    let again = registry::pull(&mut s, &name, &insecure(), &Quiet).unwrap();
    assert_eq!((again.downloaded, again.skipped), (0, 2));
    // zstd layers: imported as such, pushed by skopeo unchanged, pulled back.
    let mut src2 = ImageStore::open(&t.join("zsrc")).unwrap();
    let ztar = TarBuilder::new()
        .file("z/data", &vec![7u8; 200_000])
        .finish();
    let zst = zstd::encode_all(&ztar[..], 3).unwrap();
    sources::import_tar(&mut src2, &mut &zst[..], Some("zimg:1")).unwrap();
    let zarch = t.join("z.tar");
    common::save_oci(&src2, &["zimg:1".into()], &zarch).unwrap();
    let zname = format!("{}/hull/zimg:1", reg.addr());
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", zarch.display()),
        &format!("docker://{zname}"),
    ]);
    let mut sz = ImageStore::open(&t.join("root-zstd")).unwrap();
    let z = registry::pull(&mut sz, &zname, &insecure(), &Quiet).unwrap();
    let zm = sz.manifest(&z.manifest).unwrap();
    assert!(
        zm.layers.iter().all(|l| l.media_type.ends_with("+zstd")),
        "{zm:?}"
    );
    let zr = sz.rootfs_for(&zname).unwrap();
    assert_eq!(
        std::fs::read(zr.lowers[0].join("z/data")).unwrap().len(),
        200_000
    );
    // By digest too.
    let by_digest = format!("{}/hull/base@{}", reg.addr(), r.manifest);
    assert_eq!(
        registry::pull(&mut s, &by_digest, &insecure(), &Quiet)
            .unwrap()
            .manifest,
        r.manifest
    );
}

#[test]
fn insecure_only_for_loopback() {
    let t = TestDir::new("insecure");
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let err = registry::pull(&mut s, "registry.example:5000/a:1", &insecure(), &Quiet).unwrap_err();
    assert!(
        err.to_string().contains("only allowed for a loopback"),
        "{err}"
    );
}

#[test]
fn push_is_read_back_by_skopeo() {
    let t = TestDir::new("push");
    let Some((reg, s)) = setup(&t) else { return };
    let dest = format!("{}/hull/pushed:2", reg.addr());
    let d = push(&s, "base:1", Some(&dest), &insecure()).unwrap().digest;
    let info = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["Digest"].as_str(), Some(d.to_string().as_str()));
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(2));
    // skopeo copies it to an OCI dir, and hull loads that back unchanged.
    let oci = t.join("oci");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("oci:{}:v2", oci.display()),
    ]);
    let mut s2 = ImageStore::open(&t.join("root2")).unwrap();
    let loaded = sources::load(&mut s2, &oci, Some("back:2")).unwrap();
    assert_eq!(loaded[0].0, d);
    // skopeo's oci-archive (a tar of a layout) and docker-archive load too.
    let archive = t.join("oci.tar");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("oci-archive:{}:v3", archive.display()),
    ]);
    let mut s3 = ImageStore::open(&t.join("root3")).unwrap();
    let loaded = sources::load(&mut s3, &archive, Some("arch:3")).unwrap();
    assert_eq!(loaded[0].0, d);
    let docker = t.join("docker.tar");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("docker-archive:{}:hull/fromdocker:4", docker.display()),
    ]);
    let loaded = sources::load(&mut s3, &docker, None).unwrap();
    assert_eq!(loaded[0].1, vec!["docker.io/hull/fromdocker:4".to_string()]);
    let a = s3.rootfs_for("arch:3").unwrap();
    let b = s3.rootfs_for("hull/fromdocker:4").unwrap();
    assert_eq!(a.id, b.id, "same config through both archive formats");
    assert_eq!(a.lowers, b.lowers, "and the same unpacked layers, shared");
}

#[test]
fn umoci_image_through_the_registry() {
    let t = TestDir::new("umoci");
    if tool("umoci").is_none() {
        hull_testkit::skip!("umoci is not installed (apt-get install umoci)");
    }
    let Some((reg, _)) = setup(&t) else { return };
    let layout = t.join("umoci-layout");
    let bundle = t.join("bundle");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("umoci")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let img = format!("{}:t1", layout.display());
    run(&["init", "--layout", layout.to_str().unwrap()]);
    run(&["new", "--image", &img]);
    run(&["unpack", "--image", &img, bundle.to_str().unwrap()]);
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(bundle.join("rootfs/etc/made-by"), b"umoci\n").unwrap();
    run(&["repack", "--image", &img, bundle.to_str().unwrap()]);
    // Straight from the layout ...
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let loaded = sources::load(&mut s, &layout, None).unwrap();
    assert_eq!(loaded[0].1, vec!["localhost/umoci-layout:t1".to_string()]);
    let r = s.rootfs_for("localhost/umoci-layout:t1").unwrap();
    assert_eq!(
        std::fs::read(r.lowers[0].join("etc/made-by")).unwrap(),
        b"umoci\n"
    );
    // ... and through the registry.
    let dest = format!("{}/hull/umoci:t1", reg.addr());
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{img}"),
        &format!("docker://{dest}"),
    ]);
    let mut s2 = ImageStore::open(&t.join("root2")).unwrap();
    let p = registry::pull(&mut s2, &dest, &insecure(), &Quiet).unwrap();
    assert_eq!(p.manifest, loaded[0].0);
}

/// No image recorded, no temp file; layers that completed are recorded (a retry reuses them).
fn assert_clean(s: &ImageStore, root: &std::path::Path) {
    assert!(s.list().unwrap().is_empty(), "an image was recorded");
    assert_eq!(
        std::fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "temp files left"
    );
    for e in std::fs::read_dir(root.join("layers")).unwrap() {
        let chain = format!("sha256:{}", e.unwrap().file_name().to_string_lossy());
        assert!(
            s.db().has_layer(&chain).unwrap(),
            "unrecorded layer dir {chain}"
        );
    }
}

#[test]
fn bad_registry_responses_leave_nothing_and_retry_works() {
    let t = TestDir::new("faults");
    let Some((reg, src)) = setup(&t) else { return };
    let proxy = Proxy::start(reg.port);
    let root = t.join("root");
    let mut s = ImageStore::open(&root).unwrap();
    let name = format!("{}/hull/base:1", proxy.addr());
    let m = src.manifest(&src.resolve("base:1").unwrap()).unwrap();
    let big = m.layers[1].digest.clone();
    let try_pull = |s: &mut ImageStore| registry::pull(s, &name, &insecure(), &Quiet);

    proxy.set(Fault::Status500(big.clone()));
    let err = try_pull(&mut s).unwrap_err().to_string();
    assert!(err.contains(&big) && err.contains("500"), "{err}");
    assert_clean(&s, &root);

    proxy.set(Fault::Cut(big.clone(), 2000));
    let err = try_pull(&mut s).unwrap_err().to_string();
    assert!(err.contains(&big), "{err}");
    assert_clean(&s, &root);

    proxy.set(Fault::Body(
        "/manifests/".into(),
        b"<html>not json".to_vec(),
        "application/vnd.oci.image.manifest.v1+json".into(),
    ));
    let err = try_pull(&mut s).unwrap_err().to_string();
    assert!(err.contains("not valid JSON"), "{err}");
    assert_clean(&s, &root);

    let mut odd: serde_json::Value = serde_json::to_value(&m).unwrap();
    odd["layers"][0]["mediaType"] = "application/x-hull-unknown".into();
    proxy.set(Fault::Body(
        "/manifests/".into(),
        serde_json::to_vec(&odd).unwrap(),
        "application/vnd.oci.image.manifest.v1+json".into(),
    ));
    let err = try_pull(&mut s).unwrap_err().to_string();
    assert!(
        err.contains("unsupported media type") && err.contains("application/x-hull-unknown"),
        "{err}"
    );
    assert_clean(&s, &root);

    // A blob corrupted inside the registry's own storage.
    proxy.set(Fault::None);
    let file = reg.blob_file(&big);
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 0x55;
    std::fs::write(&file, &bad).unwrap();
    let err = try_pull(&mut s).unwrap_err().to_string();
    assert!(
        err.contains(&big) && err.to_lowercase().contains("digest"),
        "{err}"
    );
    assert_clean(&s, &root);

    std::fs::write(&file, &good).unwrap();
    let r = try_pull(&mut s).unwrap();
    assert_eq!(r.manifest, src.resolve("base:1").unwrap());
}

#[test]
fn basic_auth_from_a_docker_config_file() {
    let t = TestDir::new("auth");
    let reg = match Registry::start_with_auth(&t.path, "hull", "s3cret") {
        Ok(r) => r,
        Err(e) => {
            hull_testkit::skip!("{e}");
        }
    };
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let l = TarBuilder::new().file("f", b"x").finish();
    sources::import_tar(&mut s, &mut &l[..], Some("a:1")).unwrap();
    let dest = format!("{}/hull/auth:1", reg.addr());
    // Anonymous: refused, and the error says so.
    let err = push(&s, "a:1", Some(&dest), &insecure())
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("auth") || err.contains("401"),
        "{err}"
    );
    // Wrong password, then the right one from a config.json ("auth" is base64 user:password).
    let cfg = t.join("config.json");
    let write_cfg = |pw: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("hull:{pw}"));
        std::fs::write(
            &cfg,
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr()),
        )
        .unwrap();
    };
    let opts = RegistryOptions {
        insecure: true,
        auth_file: Some(cfg.clone()),
        jobs: None,
    };
    write_cfg("wrong");
    assert!(push(&s, "a:1", Some(&dest), &opts).is_err());
    write_cfg("s3cret");
    let d = push(&s, "a:1", Some(&dest), &opts).unwrap().digest;
    let mut s2 = ImageStore::open(&t.join("root2")).unwrap();
    assert!(
        registry::pull(&mut s2, &dest, &insecure(), &Quiet).is_err(),
        "anonymous pull must fail"
    );
    assert_eq!(
        registry::pull(&mut s2, &dest, &opts, &Quiet)
            .unwrap()
            .manifest,
        d
    );
}

#[test]
fn index_resolved_for_the_host_platform() {
    let t = TestDir::new("index");
    let Some((reg, src)) = setup(&t) else { return };
    // An OCI layout whose index.json names an image index with an amd64 and an arm64 entry.
    let dir = t.join("multi");
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = t.join("base.tar");
    common::save_oci(&src, &["base:1".into()], &tarball).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let manifest = src.resolve("base:1").unwrap();
    let size = src.blobs().read(&manifest).unwrap().len();
    let host = hull_image::manifest::host_platform();
    let other = if host.architecture == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    // The other platform's entry points at a blob that does not exist: choosing it would fail.
    let missing = hull_image::Digest::of(b"not here");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": missing.to_string(), "size": 8,
             "platform": {"architecture": other, "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.to_string(), "size": size,
             "platform": {"architecture": host.architecture, "os": "linux"}},
        ]
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let idx = hull_image::Digest::of(&bytes);
    std::fs::write(dir.join("blobs/sha256").join(idx.hex()), &bytes).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx.to_string(), "size": bytes.len(),
         "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let loaded = sources::load(&mut s, &dir, None).unwrap();
    assert_eq!(
        loaded[0].0, manifest,
        "the layout's index resolved to the host's manifest"
    );
    // Through the registry: the other platform's entry is a real image (base:0) this time,
    // and the index is pushed with a raw HTTP PUT.
    let dest = format!("{}/hull/base", reg.addr());
    let other_manifest = push(&src, "base:0", Some(&format!("{dest}:0")), &insecure())
        .unwrap()
        .digest;
    let other_size = src.blobs().read(&other_manifest).unwrap().len();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_manifest.to_string(),
             "size": other_size, "platform": {"architecture": other, "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.to_string(),
             "size": size, "platform": {"architecture": host.architecture, "os": "linux"}}]});
    let bytes = serde_json::to_vec(&index).unwrap();
    let mut conn = std::net::TcpStream::connect(reg.addr()).unwrap();
    use std::io::{Read, Write};
    write!(
        conn,
        "PUT /v2/hull/base/manifests/multi HTTP/1.1\r\nHost: {}\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reg.addr(),
        bytes.len()
    )
    .unwrap();
    conn.write_all(&bytes).unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let mut s2 = ImageStore::open(&t.join("root2")).unwrap();
    let p = registry::pull(&mut s2, &format!("{dest}:multi"), &insecure(), &Quiet).unwrap();
    assert_eq!(p.manifest, manifest);
    assert!(s2.rootfs_for(&format!("{dest}:multi")).is_ok());
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    let t = TestDir::new("bearer");
    let (reg, _tokens) = match Registry::start_with_token(&t.path, "hull", "t0ken-pw") {
        Ok(r) => r,
        Err(e) => {
            hull_testkit::skip!("{e}");
        }
    };
    let mut s = ImageStore::open(&t.join("root")).unwrap();
    let l = TarBuilder::new().file("f", b"bearer").finish();
    sources::import_tar(&mut s, &mut &l[..], Some("b:1")).unwrap();
    let dest = format!("{}/hull/bearer:1", reg.addr());
    let err = push(&s, "b:1", Some(&dest), &insecure())
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("auth") || err.contains("401"),
        "{err}"
    );
    let cfg = t.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"{}":{{"username":"hull","password":"t0ken-pw"}}}}}}"#,
            reg.addr()
        ),
    )
    .unwrap();
    let opts = RegistryOptions {
        insecure: true,
        auth_file: Some(cfg),
        jobs: None,
    };
    let d = push(&s, "b:1", Some(&dest), &opts).unwrap().digest;
    let mut s2 = ImageStore::open(&t.join("root2")).unwrap();
    assert!(
        registry::pull(&mut s2, &dest, &insecure(), &Quiet).is_err(),
        "anonymous pull must fail"
    );
    assert_eq!(
        registry::pull(&mut s2, &dest, &opts, &Quiet)
            .unwrap()
            .manifest,
        d
    );
}
