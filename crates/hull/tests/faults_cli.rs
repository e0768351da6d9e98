//! The engine under faults and load: many `hull run -d` at once, a foreground `hull run` killed
//! at several moments, a container's init or monitor killed. After each, the next `hull`
//! command shows a consistent state, removes what is left, and log lines already written stay.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn sigkill(pid: i64) {
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGKILL).unwrap();
}

/// Waits until `pid` is gone or a zombie.
fn wait_gone(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(Instant::now() < deadline, "{pid} did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn detach_sh(r: &mut common::Root, script: &str) -> String {
    r.detach(&["--network", "none", "busybox", "sh", "-c", script])
}

/// Polls `hull logs` until `enough` holds, returning the last output.
fn logs_until(r: &common::Root, id: &str, enough: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = r.ok(&["logs", id]);
        if enough(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "logs never had enough: {out}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn twenty_parallel_detached_runs_none_lost() {
    let mut r = root!("par20");
    let path = r.path.clone();
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let name = format!("par{i}");
                let o = common::hull(
                    &path,
                    &[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        "none",
                        "busybox",
                        "sleep",
                        "600",
                    ],
                );
                (name, o)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for run in runs {
        let (name, o) = run.join().unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(id.len(), 64, "{name}: {id}");
        ids.push(id);
    }
    r.ids.extend(ids.iter().cloned());
    let mut listed: Vec<String> = r
        .ok(&["ps", "-q", "--no-trunc"])
        .lines()
        .map(String::from)
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids, "every run is listed as running, once");
    for id in &ids {
        let pid = r.inspect(id)["State"]["Pid"].as_i64().unwrap();
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "{id}: pid {pid}"
        );
    }
    // Removed in parallel as well.
    let removals: Vec<_> = ids
        .chunks(5)
        .map(|chunk| {
            let mut args = vec!["rm".to_string(), "-f".to_string()];
            args.extend(chunk.iter().cloned());
            let path = path.clone();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                common::hull(&path, &args)
            })
        })
        .collect();
    for rm in removals {
        let o = rm.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    r.assert_clean();
}

#[test]
fn foreground_run_killed_at_any_moment_leaves_a_consistent_state() {
    let mut r = root!("fgkill");
    for delay_ms in [0u64, 3, 8, 15, 30, 60, 120] {
        let mut child = r
            .cmd(&[
                "run",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "echo started; sleep 600",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        // What the next command sees is a container in a known state (its monitor outlives the
        // killed command and goes on starting it), or none at all.
        for id in r.ok(&["ps", "-a", "-q", "--no-trunc"]).lines() {
            r.ids.push(id.to_string());
            let state = r.inspect(id)["State"]["Status"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                ["created", "starting", "running", "exited"].contains(&state.as_str()),
                "after {delay_ms} ms: {id} is {state:?}"
            );
            // Also one still starting when the `rm -f` came, its process not yet there to
            // kill: its monitor kills it once started, so the removal does not wait out the
            // monitor's 30 s teardown limit (as it did).
            let asked = Instant::now();
            r.ok(&["rm", "-f", id]);
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "after {delay_ms} ms: rm -f {id} ({state}) took {:?}",
                asked.elapsed()
            );
        }
        common::assert_engine_clean(&r.path);
    }
    r.assert_clean();
}

/// Processes named `comm` whose command line names `text`.
fn named_processes(comm: &str, text: &str) -> Vec<i64> {
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let (Ok(pid), Ok(name), Ok(cmdline)) = (
            p.file_name().to_string_lossy().parse::<i64>(),
            std::fs::read_to_string(p.path().join("comm")),
            std::fs::read(p.path().join("cmdline")),
        ) else {
            continue;
        };
        if name.trim_end() == comm && String::from_utf8_lossy(&cmdline).contains(text) {
            found.push(pid);
        }
    }
    found
}

/// A `run --network none` held up pulling its image from a registry that never answers (kept
/// until dropped).
fn held_up_run(r: &common::Root) -> (std::net::TcpListener, std::process::Child) {
    let registry = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let image = format!("127.0.0.1:{}/hangs", registry.local_addr().unwrap().port());
    let child = r
        .cmd(&["run", "--rm", "--network", "none", &image, "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (registry, child)
}

#[test]
fn run_killed_before_its_container_exists_leaves_no_monitor() {
    // `run` forks its monitor before it makes the container; here the command is held up
    // pulling a missing image from a registry that never answers, and killed there.
    let r = root!("earlykill");
    let (registry, mut child) = held_up_run(&r);
    let root = r.path.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while named_processes("hull", &format!("{root}\0pull")).is_empty() {
        assert!(Instant::now() < deadline, "the pull never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let monitors = named_processes("hull-monitor", &root);
    assert_eq!(monitors.len(), 1, "one monitor waiting: {monitors:?}");
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "", "no container yet");
    let _ = child.kill();
    child.wait().unwrap();
    wait_gone(monitors[0]);
    // The pull (a child of the killed command) fails once the registry goes.
    drop(registry);
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
    common::assert_engine_clean(&r.path);
    r.assert_clean();
}

#[test]
fn killed_init_exits_137_and_keeps_its_logs() {
    let mut r = root!("initkill");
    let id = detach_sh(&mut r, "for i in 1 2 3; do echo line$i; done; sleep 600");
    logs_until(&r, &id, |out| out.contains("line3"));
    let pid = r.inspect(&id)["State"]["Pid"].as_i64().unwrap();
    sigkill(pid);
    assert_eq!(r.ok(&["wait", &id]).trim(), "137");
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert_eq!(r.ok(&["logs", &id]), "line1\nline2\nline3\n");
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn killed_monitor_loses_no_written_log_line() {
    let mut r = root!("monlogs");
    let id = detach_sh(
        &mut r,
        "i=0; while true; do echo n$i; i=$((i+1)); sleep 0.01; done",
    );
    let before = logs_until(&r, &id, |out| out.lines().count() >= 20);
    let monitor = r.inspect(&id)["State"]["MonitorPid"].as_i64().unwrap();
    sigkill(monitor);
    wait_gone(monitor);
    let after = r.ok(&["logs", &id]);
    assert!(
        after.starts_with(&before),
        "lines read before the kill are gone:\nbefore: {before}\nafter: {after}"
    );
    // Numbered without a gap: nothing in the middle was dropped either.
    for (n, line) in after.lines().enumerate() {
        assert_eq!(line, format!("n{n}"), "{after}");
    }
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited"), "{ps}");
    r.ok(&["rm", &id]);
    r.assert_clean();
}

/// Runs hull with its stdout's reader already gone; it must end as 128 + SIGPIPE. Its stderr.
fn with_closed_stdout(r: &common::Root, args: &[&str]) -> String {
    let mut child = r
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGPIPE),
        "{args:?}: {:?}",
        out.status
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_closed_stdout_ends_hull_quietly_and_the_monitor_lives_on() {
    let mut r = root!("sigpipe");
    let id = detach_sh(&mut r, "seq 1 20000; sleep 600");
    logs_until(&r, &id, |out| out.ends_with("20000\n"));
    // `hull logs ID | head -1`: the reader is gone before hull writes.
    let stderr = with_closed_stdout(&r, &["logs", &id]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // `hull ps -a | head -0`: a table printed with println!.
    let stderr = with_closed_stdout(&r, &["ps", "-a"]);
    assert!(stderr.is_empty(), "{stderr}");
    let monitor = r.inspect(&id)["State"]["MonitorPid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{monitor}")).exists());
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

/// The network namespace behind `link` (`net:[INODE]`) that any process's namespace or open
/// descriptor still refers to: the pids that do (none once the kernel may free it, since
/// hull never bind-mounts one of a container).
fn holders_of(link: &str) -> Vec<String> {
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let pid = p.file_name().to_string_lossy().to_string();
        if pid.parse::<i64>().is_err() {
            continue;
        }
        let ns = std::fs::read_link(p.path().join("ns/net")).ok();
        let fds = std::fs::read_dir(p.path().join("fd"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok());
        if ns
            .into_iter()
            .chain(fds)
            .any(|l| l.to_string_lossy() == link)
        {
            found.push(pid);
        }
    }
    found
}

/// The network namespace a process holds open, if any.
fn held_netns(pid: i64) -> Option<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|l| l.to_string_lossy().to_string())
        .find(|l| l.starts_with("net:["))
}

#[test]
fn the_network_namespace_made_ahead_goes_with_a_killed_monitor_and_with_the_container() {
    // The monitor `run` forks first makes the container's namespace while the command is held
    // up (here pulling from a registry that never answers), holding it by descriptor only.
    let r = root!("earlynetns");
    let (registry, mut child) = held_up_run(&r);
    let root = r.path.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (monitor, netns) = loop {
        let found = named_processes("hull-monitor", &root)
            .into_iter()
            .find_map(|pid| held_netns(pid).map(|ns| (pid, ns)));
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no monitor holding a namespace");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_ne!(
        Some(&netns),
        std::fs::read_link("/proc/self/ns/net")
            .ok()
            .map(|l| l.to_string_lossy().to_string())
            .as_ref(),
        "not the host's"
    );
    sigkill(monitor);
    wait_gone(monitor);
    assert_eq!(
        holders_of(&netns),
        Vec::<String>::new(),
        "{netns} still held"
    );
    let _ = child.kill();
    child.wait().unwrap();
    drop(registry);
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
    // A container joins the one made for it, and nothing holds it after its exit.
    let inside = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    let inside = inside.trim();
    assert!(inside.starts_with("net:["), "{inside}");
    assert_eq!(
        holders_of(inside),
        Vec::<String>::new(),
        "{inside} still held"
    );
    common::assert_engine_clean(&r.path);
    r.assert_clean();
}
