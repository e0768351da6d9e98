//! `--restart` and `--pull` of `hull run`/`create` end to end, as a user runs them, as root:
//! a private `--root` per test with a busybox image, checked on the way out for leftovers; the
//! pull tests against a real docker-registry on 127.0.0.1 when it is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;
#[allow(dead_code)] // this file uses the plain registry only
#[path = "../../image/tests/common/registry.rs"]
mod registry;

use std::time::{Duration, Instant};

use common::{code, Root};

/// Waits until `check` holds of the container's inspect document, up to `secs` seconds.
fn until(r: &Root, id: &str, secs: u64, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let doc = r.inspect(id);
        if check(&doc) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {doc:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(doc: &serde_json::Value) -> &str {
    doc["State"]["Status"].as_str().unwrap_or_default()
}

#[test]
fn on_failure_runs_n_plus_one_times_then_stays_exited() {
    let mut r = root!("onfail");
    let id = r.detach(&[
        "--restart",
        "on-failure:2",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "3");
    let doc = r.inspect(&id);
    assert_eq!(status(&doc), "exited", "{doc:#}");
    assert_eq!(doc["RestartCount"], 2, "{doc:#}");
    assert_eq!(doc["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(doc["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    // Three runs, each one line in the same log; and no fourth after a while.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.ok(&["logs", &id]), "run\nrun\nrun\n");
    assert_eq!(status(&r.inspect(&id)), "exited");
    // Exit 0 is no failure: no restart.
    let ok = r.detach(&[
        "--restart",
        "on-failure",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    assert_eq!(r.ok(&["wait", &ok]).trim(), "0");
    assert_eq!(r.inspect(&ok)["RestartCount"], 0);
    // A foreground run ends with the first exit, its status; the monitor goes on with the policy.
    let o = r.hull(&[
        "run",
        "--name",
        "fg",
        "--restart",
        "on-failure:1",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo fg; exit 4",
    ]);
    assert_eq!(
        (code(&o), String::from_utf8_lossy(&o.stdout).into_owned()),
        (Some(4), "fg\n".to_string())
    );
    let fg = r.inspect("fg")["Id"].as_str().unwrap().to_string();
    r.ids.push(fg.clone());
    assert_eq!(r.ok(&["wait", &fg]).trim(), "4");
    assert_eq!(r.inspect(&fg)["RestartCount"], 1);
    assert_eq!(r.ok(&["logs", &fg]), "fg\nfg\n");
    r.ok(&["rm", &id, &ok, &fg]);
    r.assert_clean();
}

#[test]
fn always_restarts_after_exit_0_until_stopped() {
    let mut r = root!("always");
    // A network of this test's own (the default one's bridge would outlive the test).
    let subnet = format!("10.237.{}.0/24", std::process::id() % 200 + 20);
    r.ok(&["network", "create", "rsttest", "--subnet", &subnet]);
    let id = r.detach(&[
        "--restart",
        "always",
        "--network",
        "rsttest",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 1",
    ]);
    until(&r, &id, 20, "no restarts", |d| {
        d["RestartCount"].as_u64() >= Some(2)
    });
    // The container's address stays its own across restarts, as its upper dir does.
    let ip = |d: &serde_json::Value| d["NetworkSettings"][0]["ip"].clone();
    until(&r, &id, 20, "not running", |d| status(d) == "running");
    let first = ip(&r.inspect(&id));
    assert!(first.is_string(), "{first}");
    r.ok(&["exec", &id, "sh", "-c", "echo kept > /kept"]);
    let before = r.inspect(&id)["RestartCount"].as_u64().unwrap();
    until(&r, &id, 20, "no restart", |d| {
        d["RestartCount"].as_u64() > Some(before) && status(d) == "running"
    });
    assert_eq!(ip(&r.inspect(&id)), first);
    assert_eq!(r.ok(&["exec", &id, "cat", "/kept"]), "kept\n");
    // ps shows it, as "Restarting (0) ..." while its monitor waits out the delay.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = r.ok(&["ps"]);
        assert!(ps.contains(&id[..12]), "{ps}");
        if ps.contains("Restarting (0)") {
            break;
        }
        assert!(Instant::now() < deadline, "never seen restarting: {ps}");
        std::thread::sleep(Duration::from_millis(20));
    }
    r.ok(&["stop", "-t", "1", &id]);
    let doc = r.inspect(&id);
    assert_eq!(status(&doc), "exited", "{doc:#}");
    let count = doc["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(1));
    let doc = r.inspect(&id);
    assert_eq!((status(&doc), &doc["RestartCount"]), ("exited", &count));
    assert_eq!(r.ok(&["ps", "-q"]), "");
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn a_container_process_killed_from_outside_is_restarted() {
    let mut r = root!("killed");
    let id = r.detach(&[
        "--restart",
        "unless-stopped",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let doc = r.inspect(&id);
    let pid = doc["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0, "{doc:#}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    until(&r, &id, 20, "not restarted", |d| {
        d["RestartCount"] == 1 && status(d) == "running" && d["State"]["Pid"].as_i64() != Some(pid)
    });
    // `hull kill` by the user ends the policy.
    r.ok(&["kill", &id]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "137");
    std::thread::sleep(Duration::from_millis(500));
    let doc = r.inspect(&id);
    assert_eq!((status(&doc), &doc["RestartCount"]), ("exited", &1.into()));
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn bad_restart_and_pull_flags_are_one_line_125() {
    let r = root!("badflags");
    let err = r.bad(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(err.contains("--restart") && err.contains("--rm"), "{err}");
    let err = r.bad(&["run", "--restart", "sometimes", "busybox", "true"]);
    assert!(err.contains("sometimes"), "{err}");
    let err = r.bad(&["run", "--restart", "always:3", "busybox", "true"]);
    assert!(err.contains("on-failure"), "{err}");
    let err = r.bad(&["run", "--pull", "never", "nothing-here:1", "true"]);
    assert!(err.contains("nothing-here:1"), "{err}");
    let err = r.bad(&["create", "--pull", "never", "nothing-here:1"]);
    assert!(err.contains("nothing-here:1"), "{err}");
    let err = r.bad(&["run", "--pull", "sometimes", "busybox", "true"]);
    assert!(err.contains("sometimes"), "{err}");
    // An image in the store needs no pull, also with never.
    let out = r.ok(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "busybox",
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n");
    r.assert_clean();
}

#[test]
fn run_pulls_a_missing_image_from_a_loopback_registry() {
    let r = root!("pull");
    let reg = match registry::Registry::start(&r.path) {
        Ok(reg) => reg,
        Err(why) => hull_testkit::skip!("{why}"),
    };
    let image = format!("127.0.0.1:{}/hull/busybox:1", reg.port);
    r.ok(&["tag", "busybox", &image]);
    r.ok(&["push", "--insecure", "-q", &image]);
    r.ok(&["rmi", &image]);
    // A second root that has never seen the image: run pulls it, with the pull's output on
    // stderr and only the container's on stdout.
    let fresh = root!("pull2");
    let o = fresh.hull(&["run", "--rm", "--network", "none", &image, "echo", "pulled"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "pulled\n");
    let images = fresh.ok(&["images"]);
    assert!(images.contains("hull/busybox"), "{images}");
    // Present now: the default (missing) does not pull again.
    let o = fresh.hull(&["run", "--rm", "--network", "none", &image, "true"]);
    assert_eq!(
        (code(&o), String::from_utf8_lossy(&o.stderr).into_owned()),
        (Some(0), String::new())
    );
    // A missing image the registry does not have either: the pull's one line, 125, nothing left.
    let gone = format!("127.0.0.1:{}/hull/nothing:1", reg.port);
    let o = fresh.hull(&["run", "--rm", &gone, "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), Some(125), "{err}");
    assert!(err.contains("hull/nothing"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(fresh.ok(&["ps", "-a", "-q"]), "");
    drop(reg);
    fresh.assert_clean();
    r.assert_clean();
}
