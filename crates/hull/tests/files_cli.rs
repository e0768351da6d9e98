//! `hull cp`, `diff` and `commit` end to end, as root: copies both ways for running, created
//! and exited containers (files, dirs, tar streams), container symlinks that point at the
//! host's root never reaching host files, the changes `diff` lists, and a committed image
//! run again. Each test checks that nothing is left (no mount made for a stopped container).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::code;

/// Polls until `cmd` run in the container succeeds.
fn wait_exec(r: &common::Root, id: &str, cmd: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut args = vec!["exec", id];
    args.extend_from_slice(cmd);
    while !r.hull(&args).status.success() {
        assert!(Instant::now() < deadline, "{cmd:?} never succeeded");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A detached container that runs `sh -c SCRIPT`, touches /done, and sleeps; once /done exists.
fn script(r: &mut common::Root, script: &str) -> String {
    let line = format!("{script}; touch /done; sleep 1000");
    let id = r.detach(&["--network", "none", "busybox", "sh", "-c", &line]);
    wait_exec(r, &id, &["test", "-e", "/done"]);
    id
}

/// A failing `cp`: docker's status 1 and one line.
fn cp_fails(r: &common::Root, args: &[&str]) -> String {
    let mut all = vec!["cp"];
    all.extend_from_slice(args);
    let o = r.hull(&all);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(code(&o), Some(1), "cp {args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    err
}

/// No mount anywhere is of this container's overlay (`hull-<id>`), attached or not listed.
fn no_overlay_of(id: &str) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("hull-{id}")),
        "overlay of {id} left"
    );
}

#[test]
fn cp_both_ways_with_a_running_container() {
    let mut r = root!("cp-run");
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    let host = r.path.join("host");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("file"), "a file\n").unwrap();
    std::fs::write(host.join("dir/sub/inner"), "inner\n").unwrap();
    std::os::unix::fs::symlink("inner", host.join("dir/sub/link")).unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    let ctr = |p: &str| format!("{id}:{p}");

    // A file into a dir keeps its name; to a new path takes that name.
    r.ok(&["cp", &h("file"), &ctr("/tmp/")]);
    r.ok(&["cp", &h("file"), &ctr("/tmp/renamed")]);
    assert_eq!(
        r.ok(&["exec", &id, "cat", "/tmp/file", "/tmp/renamed"]),
        "a file\na file\n"
    );
    // Owned by the container's root without -a.
    assert_eq!(
        r.ok(&["exec", &id, "stat", "-c", "%u:%g", "/tmp/file"]),
        "0:0\n"
    );
    // A dir into an existing dir goes inside it; with /. its contents do.
    r.ok(&["cp", &h("dir"), &ctr("/tmp")]);
    r.ok(&["exec", &id, "mkdir", "/tmp/flat"]);
    r.ok(&["cp", &format!("{}/.", h("dir")), &ctr("/tmp/flat")]);
    assert_eq!(
        r.ok(&[
            "exec",
            &id,
            "cat",
            "/tmp/dir/sub/inner",
            "/tmp/flat/sub/link"
        ]),
        "inner\ninner\n"
    );
    assert_eq!(
        r.ok(&["exec", &id, "readlink", "/tmp/dir/sub/link"]),
        "inner\n"
    );

    // Out of the container: a file, a dir to a new path, a tar stream.
    r.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo from ctr > /tmp/out; chown 65534:65534 /tmp/out",
    ]);
    r.ok(&["cp", &ctr("/tmp/out"), &h("")]);
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap(),
        "from ctr\n"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(host.join("out")).unwrap().uid(),
        0,
        "the caller's without -a"
    );
    r.ok(&["cp", "-a", &ctr("/tmp/out"), &h("out-a")]);
    assert_eq!(
        std::fs::metadata(host.join("out-a")).unwrap().uid(),
        65534,
        "kept with -a"
    );
    r.ok(&["cp", &ctr("/tmp/dir"), &h("back")]);
    assert_eq!(
        std::fs::read_to_string(host.join("back/sub/inner")).unwrap(),
        "inner\n"
    );
    let o = r.cmd(&["cp", &ctr("/tmp/dir"), "-"]).output().unwrap();
    assert!(o.status.success());
    let mut names: Vec<String> = tar::Archive::new(&o.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["dir", "dir/sub", "dir/sub/inner", "dir/sub/link"]);

    // A tar stream in: unpacked into the (existing) directory.
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_size(7);
    hd.set_mode(0o644);
    b.append_data(&mut hd, "streamed", &b"stream\n"[..])
        .unwrap();
    let tar = b.into_inner().unwrap();
    let mut child = r
        .cmd(&["cp", "-", &ctr("/tmp")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(r.ok(&["exec", &id, "cat", "/tmp/streamed"]), "stream\n");

    // Missing paths: one line, status 1, as docker's.
    let err = cp_fails(&r, &[&ctr("/no/such"), &h("x")]);
    assert!(err.contains("Could not find the file /no/such"), "{err}");
    cp_fails(&r, &[&h("missing"), &ctr("/tmp")]);
    cp_fails(&r, &[&h("file"), &ctr("/no/such/dir/")]);
    cp_fails(&r, &[&h("dir"), &ctr("/tmp/file")]);
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

#[test]
fn container_symlinks_never_reach_the_host() {
    let mut r = root!("cp-evil");
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    // A host file at a path the container does not have, and links to the host's root.
    let secret = r.path.join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let secret = secret.to_str().unwrap().to_string();
    r.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ln -s / /evil; ln -s ../../../../../.. /tmp/up; echo ctr > /tmp/mine",
    ]);
    let out = r.path.join("got");
    for via in [format!("/evil{secret}"), format!("/tmp/up{secret}")] {
        let err = cp_fails(&r, &[&format!("{id}:{via}"), out.to_str().unwrap()]);
        assert!(err.contains("Could not find"), "{via}: {err}");
        assert!(!out.exists(), "{via} read a host file");
    }
    // -L follows a link, inside the container's root only.
    r.ok(&["exec", &id, "ln", "-s", "/tmp/up/tmp/mine", "/tmp/deep"]);
    r.ok(&[
        "cp",
        "-L",
        &format!("{id}:/tmp/deep"),
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "ctr\n");
    // Writes through the links land inside the container, or nowhere.
    let host_dir = r.path.to_str().unwrap().to_string();
    let planted = r.path.join("planted");
    for via in [
        format!("/evil{host_dir}/planted"),
        format!("/tmp/up{host_dir}/planted"),
    ] {
        cp_fails(&r, &[&secret, &format!("{id}:{via}")]);
        assert!(!planted.exists(), "{via} wrote a host file");
    }
    r.ok(&["cp", &secret, &format!("{id}:/evil/tmp/via-link")]);
    assert_eq!(
        r.ok(&["exec", &id, "cat", "/tmp/via-link"]),
        "host secret\n"
    );
    // The same for a stopped container (its own overlay view).
    r.ok(&["stop", "-t", "0", &id]);
    let err = cp_fails(&r, &[&format!("{id}:/evil{secret}"), out.to_str().unwrap()]);
    assert!(err.contains("Could not find"), "{err}");
    cp_fails(&r, &[&secret, &format!("{id}:/tmp/up{host_dir}/planted")]);
    assert!(!planted.exists());
    no_overlay_of(&id);
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn cp_with_created_and_exited_containers() {
    let mut r = root!("cp-stopped");
    // Its volumes are part of the view, as docker mounts them for a copy: an anonymous
    // volume and a read-only host dir.
    let host_dir = r.path.join("hostdir");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("h"), "on the host\n").unwrap();
    let bind = format!("{}:/hd:ro", host_dir.display());
    let id = r
        .ok(&[
            "create",
            "--network",
            "none",
            "-v",
            "/data",
            "-v",
            &bind,
            "busybox",
            "cat",
            "/etc/motd",
            "/data/v",
            "/hd/h",
        ])
        .trim()
        .to_string();
    r.ids.push(id.clone());
    let motd = r.path.join("motd");
    std::fs::write(&motd, "copied before start\n").unwrap();
    r.ok(&["cp", motd.to_str().unwrap(), &format!("{id}:/etc/motd")]);
    r.ok(&["cp", motd.to_str().unwrap(), &format!("{id}:/data/v")]);
    let err = cp_fails(&r, &[motd.to_str().unwrap(), &format!("{id}:/hd/")]);
    assert!(err.contains("Read-only"), "{err}");
    assert!(!host_dir.join("motd").exists());
    let got = r.path.join("got");
    r.ok(&["cp", &format!("{id}:/hd/h"), got.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "on the host\n");
    no_overlay_of(&id);
    r.ok(&["start", &id]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "0");
    assert_eq!(
        r.ok(&["logs", &id]),
        "copied before start\ncopied before start\non the host\n"
    );
    // Exited: out again, a dir too.
    let back = r.path.join("back");
    r.ok(&["cp", &format!("{id}:/etc"), back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(back.join("motd")).unwrap(),
        "copied before start\n"
    );
    assert!(
        back.join("passwd").is_file(),
        "the image's files are in the view"
    );
    no_overlay_of(&id);
    r.ok(&["rm", "-v", &id]);
    r.assert_clean();
}

/// `cp` into a container while it starts: the copy lands in the root the container sees, or
/// fails with one line; never in a second overlay of its upper dir whose files the container's
/// own overlay does not show (it looks each name up while the copy writes them), nor on the
/// host.
#[test]
fn cp_racing_start_lands_in_the_container_or_fails() {
    let mut r = root!("cp-race");
    let src = r.path.join("data");
    std::fs::create_dir_all(&src).unwrap();
    // Large enough that the copy lasts while the container starts.
    for i in 0..200 {
        std::fs::write(
            src.join(format!("f{i}")),
            format!("{i:07}\n").repeat(1 << 15),
        )
        .unwrap();
    }
    let host_twin = Path::new("/").join(format!("hull-cp-race-{}", std::process::id()));
    let target = host_twin.to_str().unwrap().to_string();
    let each = format!("i=0; while [ $i -lt 200 ]; do cat {target}/f$i; i=$((i+1)); done");
    let watch = format!("while :; do ({each}) >/dev/null 2>&1; done");
    let (mut landed, mut refused) = (0, 0);
    for round in 0..8 {
        let id = r.create(&["--network", "none", "busybox", "sh", "-c", &watch]);
        let dest = format!("{id}:{target}");
        // Each first in turn, the other at once or later into it.
        let (copy_first, later) = (round % 2 == 0, Duration::from_millis(round / 2 * 30));
        let (started, copied) = std::thread::scope(|s| {
            let copy = s.spawn(|| {
                if !copy_first {
                    std::thread::sleep(later);
                }
                r.hull(&["cp", src.to_str().unwrap(), &dest])
            });
            if copy_first {
                std::thread::sleep(later);
            }
            let started = r.hull(&["start", &id]);
            (started, copy.join().unwrap())
        });
        let err = String::from_utf8_lossy(&started.stderr);
        assert_eq!(code(&started), Some(0), "start beside a cp: {err}");
        assert!(!host_twin.exists(), "the copy reached the host's /");
        if code(&copied) == Some(0) {
            landed += 1;
            let lines = r.ok(&["exec", &id, "sh", "-c", &format!("({each}) | wc -l")]);
            assert_eq!(
                lines.trim(),
                "6553600",
                "round {round}: the container sees {lines}"
            );
        } else {
            refused += 1;
            let err = String::from_utf8_lossy(&copied.stderr);
            assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
        }
        r.ok(&["rm", "-f", &id]);
        no_overlay_of(&id);
    }
    println!("{landed} copies landed, {refused} refused");
    r.assert_clean();
}

#[test]
fn diff_lists_added_changed_and_deleted() {
    let mut r = root!("diff");
    let id = script(
        &mut r,
        "echo x >> /etc/passwd; rm /etc/group; mkdir -p /newdir/sub; echo n > /newdir/sub/f",
    );
    let diff = r.ok(&["diff", &id]);
    assert_eq!(
        diff,
        "A /done\nC /etc\nD /etc/group\nC /etc/passwd\nA /newdir\nA /newdir/sub\nA /newdir/sub/f\n"
    );
    // The same from the stopped container.
    r.ok(&["stop", "-t", "0", &id]);
    assert_eq!(r.ok(&["diff", &id]), diff);
    // Nothing changed: nothing listed (the runtime's mount points are not changes).
    let fresh = r
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    assert_eq!(r.ok(&["diff", &fresh]), "");
    r.ok(&["start", &fresh]);
    assert_eq!(r.ok(&["wait", &fresh]).trim(), "0");
    assert_eq!(r.ok(&["diff", &fresh]), "");
    // Nor made: the mount points of its /etc files are in the layer under the image's.
    let upper = r.path.join("containers").join(&fresh).join("upper");
    let made: Vec<_> = std::fs::read_dir(&upper).unwrap().collect();
    assert!(
        made.is_empty(),
        "the start wrote to the upper dir: {made:?}"
    );
    // A directory of the image removed and made again is opaque: what the image had in it
    // is deleted, whatever is in it now is new.
    let base = script(&mut r, "mkdir /data; echo a > /data/a; echo b > /data/b");
    r.ok(&["commit", &base, "withdata:1"]);
    r.ok(&["rm", "-f", &base]);
    let mut args = vec!["run", "-d", "--network", "none", "withdata:1", "sh", "-c"];
    // The image has /done (from `script`): the end is marked on /dev/shm, a tmpfs no diff sees.
    args.push(
        "rm -rf /data; mkdir /data; echo c > /data/c; touch /done; touch /dev/shm/end; sleep 1000",
    );
    let opaque = r.ok(&args).trim().to_string();
    r.ids.push(opaque.clone());
    wait_exec(&r, &opaque, &["test", "-e", "/dev/shm/end"]);
    assert_eq!(
        r.ok(&["diff", &opaque]),
        "C /data\nD /data/a\nD /data/b\nA /data/c\nC /done\n"
    );
    r.ok(&["rm", "-f", &id, &fresh, &opaque]);
    r.ok(&["rmi", "withdata:1"]);
    r.assert_clean();
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn commit_then_run_the_new_image() {
    let mut r = root!("commit");
    let id = script(&mut r, "echo committed > /hello; rm /etc/group");
    let image = r
        .ok(&[
            "commit",
            "-m",
            "a message",
            "-a",
            "me",
            "-c",
            "CMD cat /hello",
            "-c",
            "ENV K=V",
            &id,
            "snap:1",
        ])
        .trim()
        .to_string();
    assert!(image.starts_with("sha256:") && image.len() == 71, "{image}");
    // Without pausing, and without a name: an id all the same.
    let unnamed = r.ok(&["commit", "--pause=false", &id]);
    assert!(unnamed.trim().starts_with("sha256:"), "{unnamed}");
    // The container ran on, unpaused.
    assert_eq!(r.ok(&["exec", &id, "cat", "/hello"]), "committed\n");
    let listed = r.ok(&["images", "-q"]);
    assert!(listed.contains(&image["sha256:".len()..][..12]), "{listed}");
    assert_eq!(
        r.ok(&["run", "--rm", "--network", "none", "snap:1"]),
        "committed\n"
    );
    let o = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "snap:1",
        "sh",
        "-c",
        "echo $K; ls /etc/group 2>&1 || true",
    ]);
    assert!(o.starts_with("V\n") && o.contains("No such file"), "{o}");
    let doc: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "snap:1"])).unwrap();
    assert_eq!(
        doc[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "cat /hello"])
    );

    // Failures store nothing.
    let (blobs, layers) = (
        count(&r.path.join("blobs/sha256")),
        count(&r.path.join("layers")),
    );
    let o = r.hull(&["commit", "no-such-container"]);
    assert_eq!(code(&o), Some(125));
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count(), 1);
    let o = r.hull(&["commit", "-c", "RUN rm -rf /", &id, "bad:1"]);
    assert_eq!(code(&o), Some(125));
    let o = r.hull(&["commit", &id, "Not A Valid:Name"]);
    assert_eq!(
        code(&o),
        Some(125),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        count(&r.path.join("blobs/sha256")),
        blobs,
        "a failed commit left blobs"
    );
    assert_eq!(
        count(&r.path.join("layers")),
        layers,
        "a failed commit left a layer"
    );
    r.ok(&["rm", "-f", &id]);
    r.ok(&["rmi", "snap:1"]);
    r.assert_clean();
}
