//! The container commands beyond the lifecycle, end to end as a user runs them, as root:
//! `pause`/`unpause` (the freezer), `top`, `stats`, `rename`, `restart`, `container prune` and
//! `port` with `-p`/`-P`; each checked for its real effect in the kernel, and for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{code, Root};

/// Polls `check` every 50 ms for up to `secs` seconds.
fn until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A command that fails with 125 and says one line containing `words`.
fn refused(r: &Root, args: &[&str], words: &str) {
    let o = r.hull(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), Some(125), "hull {args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(words), "hull {args:?}: {err}");
}

fn pid(r: &Root, id: &str) -> i32 {
    i32::try_from(r.inspect(id)["State"]["Pid"].as_i64().unwrap()).unwrap()
}

fn state_letter(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

/// The counter a container writes to its /tmp/n, read from its overlay's upper dir.
fn counter(r: &Root, id: &str) -> Option<u64> {
    let path = r.path.join("containers").join(id).join("upper/tmp/n");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

const COUNTING: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; done";

#[test]
fn pause_freezes_and_stop_kill_rm_still_work() {
    let mut r = root!("pause");
    let id = r.detach(&["--network", "none", "busybox", "sh", "-c", COUNTING]);
    until(10, "the counter runs", || counter(&r, &id).is_some());
    let before = counter(&r, &id);
    r.ok(&["pause", &id]);
    let ps = r.ok(&["ps"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    let paused = r.ok(&["ps", "--filter", "status=paused", "-q"]);
    assert_eq!(paused.trim(), &id[..12]);
    // Frozen by the freezer: v1 leaves its tasks in D (uninterruptible), v2 in S; either way
    // the counter stands still.
    let letter = state_letter(pid(&r, &id));
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(
        letter,
        if v2 { 'S' } else { 'D' },
        "state of a paused process"
    );
    // Frozen maybe between the shell's truncate and its write: the file's text, whatever it is,
    // stays as it is.
    let raw = || std::fs::read(r.path.join("containers").join(&id).join("upper/tmp/n")).ok();
    let a = raw();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(raw(), a, "the counter moved while paused");
    let info: serde_json::Value =
        serde_json::from_str(&r.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(info["ContainersPaused"], 1, "{info:#}");
    let state = &r.inspect(&id)["State"];
    assert!(
        state["Paused"] == true && state["Status"] == "paused",
        "{state:#}"
    );
    refused(&r, &["pause", &id], "already paused");
    r.ok(&["unpause", &id]);
    // A read may meet the shell between its truncate and its write (None): poll.
    until(10, "the counter moves again", || counter(&r, &id) > before);
    refused(&r, &["unpause", &id], "not paused");
    // stop thaws after its signal (as docker), so the stop signal and SIGKILL both land.
    r.ok(&["pause", &id]);
    r.ok(&["stop", "-t", "1", &id]);
    assert_eq!(r.inspect(&id)["State"]["Status"], "exited");
    let killed = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    r.ok(&["pause", &killed]);
    r.ok(&["kill", &killed]);
    assert_eq!(r.ok(&["wait", &killed]).trim(), "137");
    let removed = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    r.ok(&["pause", &removed]);
    r.ok(&["rm", "-f", &removed]);
    refused(&r, &["pause", &id], "not running");
    refused(&r, &["pause", "nosuch"], "no such container");
    r.ok(&["rm", &id, &killed]);
    r.assert_clean();
}

#[test]
fn top_lists_a_process_started_by_exec() {
    let mut r = root!("top");
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    let mut exec = r.cmd(&["exec", &id, "sleep", "777"]).spawn().unwrap();
    let mut out = String::new();
    until(10, "top shows the exec'd sleep", || {
        out = r.ok(&["top", &id]);
        out.contains("sleep 777")
    });
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let row = out.lines().find(|l| l.contains("sleep 1000")).unwrap();
    assert!(row.starts_with("root "), "{row}");
    assert_eq!(
        row.split_whitespace().nth(1).unwrap(),
        pid(&r, &id).to_string()
    );
    // ps options go to the host's ps; the rows are still the container's only.
    let custom = r.ok(&["top", &id, "-o", "pid,args"]);
    let lines: Vec<&str> = custom.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert_eq!(lines.len(), 3, "{custom}");
    refused(&r, &["top", "nosuch"], "no such container");
    r.ok(&["rm", "-f", &id]);
    let _ = exec.wait();
    r.assert_clean();
}

#[test]
fn stats_shows_the_memory_limit_and_pids() {
    let mut r = root!("stats");
    let id = r.detach(&[
        "--network",
        "none",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "sleep 1000 & sleep 1000 & wait",
    ]);
    let mut doc = serde_json::Value::Null;
    until(10, "three processes", || {
        let out = r.ok(&["stats", "--no-stream", "--format", "json", &id]);
        doc = serde_json::from_str(out.trim()).unwrap();
        doc["PIDs"] == "3"
    });
    let mem = doc["MemUsage"].as_str().unwrap();
    assert!(mem.ends_with(" / 64MiB"), "{doc}");
    assert!(doc["CPUPerc"].as_str().unwrap().ends_with('%'), "{doc}");
    assert_eq!(doc["ID"], &id[..12]);
    assert_eq!(doc["NetIO"], "0B / 0B", "--network none has only lo: {doc}");
    let table = r.ok(&["stats", "--no-stream"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("CONTAINER ID") && header.contains("MEM USAGE / LIMIT"),
        "{table}"
    );
    assert!(
        table.contains(&id[..12]) && table.contains("64MiB"),
        "{table}"
    );
    // A busy loop's CPU % (two samples a second apart) is well above nothing.
    let busy = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let out = r.ok(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", &busy]);
    let cpu: f64 = out.trim().trim_end_matches('%').parse().unwrap();
    assert!(cpu > 5.0, "{out}");
    r.ok(&["rm", "-f", &busy]);
    refused(&r, &["stats", "--no-stream", "nosuch"], "no such container");
    // Without --no-stream it goes on, a table a second, until interrupted.
    let mut stream = r
        .cmd(&["stats", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2600));
    stream.kill().unwrap();
    let out = stream.wait_with_output().unwrap();
    let tables = String::from_utf8_lossy(&out.stdout)
        .matches("CONTAINER ID")
        .count();
    assert!(tables >= 2, "{tables} tables in 2.6 s");
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

#[test]
fn rename_then_find_by_the_new_name_only() {
    let mut r = root!("rename");
    let a = r.detach(&[
        "--name",
        "old",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let b = r.detach(&[
        "--name",
        "other",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(r.ok(&["rename", "old", "new"]), "");
    assert_eq!(r.inspect("new")["Id"], a.as_str());
    refused(&r, &["logs", "old"], "no such container");
    refused(&r, &["rename", "new", "other"], "already in use");
    refused(&r, &["rename", "new", "a b"], "invalid container name");
    refused(&r, &["rename", "nosuch", "x"], "no such container");
    assert_eq!(r.inspect("other")["Id"], b.as_str());
    r.ok(&["rm", "-f", "new", "other"]);
    r.assert_clean();
}

#[test]
fn restart_gives_a_new_process_and_keeps_the_logs() {
    let mut r = root!("restart");
    let id = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    until(10, "first start logged", || {
        r.ok(&["logs", &id]) == "started\n"
    });
    let first = pid(&r, &id);
    assert_eq!(r.ok(&["restart", "-t", "1", &id]).trim(), id);
    let second = pid(&r, &id);
    assert_ne!(first, second);
    assert_eq!(r.inspect(&id)["State"]["Status"], "running");
    until(10, "both starts logged", || {
        r.ok(&["logs", &id]) == "started\nstarted\n"
    });
    // A stopped container is started by restart too.
    r.ok(&["stop", "-t", "1", &id]);
    r.ok(&["restart", &id]);
    assert_eq!(r.inspect(&id)["State"]["Status"], "running");
    refused(&r, &["restart", "nosuch"], "no such container");
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

#[test]
fn prune_removes_only_stopped_containers() {
    let mut r = root!("prune");
    let running = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    let exited = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "head -c 300000 /dev/zero > /big",
    ]);
    assert_eq!(r.ok(&["wait", &exited]).trim(), "0");
    let created = r
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    // Without -f, and no terminal to ask on: refused, nothing removed.
    refused(&r, &["container", "prune"], "-f");
    let kept = r
        .ok(&[
            "create",
            "--network",
            "none",
            "--label",
            "keep=1",
            "busybox",
            "true",
        ])
        .trim()
        .to_string();
    let out = r.ok(&["container", "prune", "-f", "--filter", "label=keep"]);
    assert!(out.contains(&kept), "{out}");
    assert!(!out.contains(&exited), "{out}");
    let out = r.ok(&["container", "prune", "-f"]);
    assert!(out.contains(&exited) && out.contains(&created), "{out}");
    assert!(!out.contains(&running), "{out}");
    let size = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap();
    // The exited one's 300 kB file went with it.
    assert!(size.ends_with("kB") || size.ends_with("MB"), "{out}");
    let left = r.ok(&["ps", "-a", "-q", "--no-trunc"]);
    assert_eq!(left.trim(), running);
    // until=: only containers created before that time.
    let young = r
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    let out = r.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert!(!out.contains(&young), "{out}");
    let out = r.ok(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "until=2099-01-01T00:00:00Z",
    ]);
    assert!(out.contains(&young), "{out}");
    refused(
        &r,
        &["container", "prune", "-f", "--filter", "colour=red"],
        "invalid filter",
    );
    r.ok(&["rm", "-f", &running]);
    r.assert_clean();
}

/// A free port on 127.0.0.1, as the kernel hands one out.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn port_shows_what_p_and_publish_all_published() {
    let mut r = root!("port");
    let net = format!("portb{}", std::process::id() % 100_000);
    let subnet = format!("10.252.{}.0/24", std::process::id() % 250);
    r.ok(&["network", "create", "--subnet", &subnet, &net]);
    let host = free_port();
    let mapping = format!("127.0.0.1:{host}:81");
    let id = r.detach(&[
        "--network",
        &net,
        "-P",
        "--expose",
        "8080",
        "--expose",
        "53/udp",
        "-p",
        &mapping,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/tmp",
    ]);
    let all = r.ok(&["port", &id]);
    assert!(
        all.contains(&format!("81/tcp -> 127.0.0.1:{host}")),
        "{all}"
    );
    assert!(all.contains("8080/tcp -> 0.0.0.0:"), "{all}");
    assert!(all.contains("53/udp -> 0.0.0.0:"), "{all}");
    let one = r.ok(&["port", &id, "8080/tcp"]);
    let published: u16 = one
        .trim()
        .strip_prefix("0.0.0.0:")
        .unwrap()
        .parse()
        .unwrap();
    assert!(published > 0 && published != host);
    // The port -P chose reaches the container's httpd.
    let mut reply = String::new();
    until(10, "httpd answers on the published port", || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", published)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        reply.clear();
        let _ = s.read_to_string(&mut reply);
        reply.starts_with("HTTP/1")
    });
    // That request crossed the container's eth0: its netns's counters show it.
    let stats: serde_json::Value = serde_json::from_str(
        r.ok(&["stats", "--no-stream", "--format", "json", &id])
            .trim(),
    )
    .unwrap();
    let (rx, tx) = stats["NetIO"].as_str().unwrap().split_once(" / ").unwrap();
    assert!(rx != "0B" && tx != "0B", "{stats}");
    assert!(r.inspect(&id)["Config"]["ExposedPorts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "8080/tcp"));
    refused(&r, &["port", &id, "9999"], "no public port '9999/tcp'");
    refused(
        &r,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "-P",
            "--expose",
            "80",
            "busybox",
            "true",
        ],
        "-P needs a bridge network",
    );
    refused(
        &r,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--expose",
            "0",
            "busybox",
            "true",
        ],
        "invalid --expose",
    );
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}
