//! `hull logs` end to end: `--tail`, `--since`, `--until` and `-t` on lines written at known
//! times, the rotated files beside the log read oldest first, `-f`, and bad values.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::code;

/// A log line as the monitor writes it.
fn entry(text: &str, stream: &str, time: &str) -> String {
    format!("{{\"log\":\"{text}\\n\",\"stream\":\"{stream}\",\"time\":\"{time}\"}}\n")
}

#[test]
fn tail_since_until_timestamps() {
    let mut r = root!("logs");
    let id = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1.5; echo two; sleep 1.5; echo three >&2; exec sleep 1000",
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !String::from_utf8_lossy(&r.hull(&["logs", &id]).stderr).contains("three") {
        assert!(Instant::now() < deadline, "three never logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    // -t: each line after its RFC 3339 stamp, nanoseconds and Z, as docker prints them.
    let stamped = r.ok(&["logs", "-t", &id]);
    let times: Vec<&str> = stamped
        .lines()
        .map(|l| l.split_once(' ').unwrap().0)
        .collect();
    assert_eq!(times.len(), 2, "{stamped}");
    for t in &times {
        assert!(
            t.len() == 30 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
    assert!(
        stamped.lines().next().unwrap().ends_with(" one"),
        "{stamped}"
    );
    let (t1, t2) = (times[0], times[1]);
    // --since the second line's time: it and the later stderr line.
    let o = r.hull(&["logs", "--since", t2, &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "two\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "three\n");
    // --until the first line's time: that line only.
    let o = r.hull(&["logs", "--until", t1, &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    // Unix seconds: a second before the second line, to after it.
    let secs = |t: &str| -> f64 {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", t, "+%s.%N"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let from = format!("{:.3}", secs(t2) - 0.5);
    let to = format!("{:.3}", secs(t2) + 0.5);
    let o = r.hull(&["logs", "--since", &from, "--until", &to, &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "two\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    // A duration before now: all three lines are younger than an hour, none is in the future.
    let o = r.hull(&["logs", "--since", "1h", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\ntwo\n");
    let o = r.hull(&["logs", "--until", "1h", &id]);
    assert_eq!(code(&o), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    // As docker's: a negative duration is after now.
    let o = r.hull(&["logs", "--until=-1h", &id]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "one
two
"
    );
    // --tail counts lines of both streams.
    let o = r.hull(&["logs", "--tail", "2", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "two\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "three\n");
    let o = r.hull(&["logs", "-n", "0", &id]);
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    assert_eq!(r.ok(&["logs", "--tail", "all", &id]), "one\ntwo\n");
    for bad in [
        vec!["logs", "--since", "10x", id.as_str()],
        vec!["logs", "--until", "yesterday", id.as_str()],
        vec!["logs", "--tail", "some", id.as_str()],
        vec!["logs", "nosuch"],
    ] {
        let o = r.hull(&bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), Some(125), "{bad:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

#[test]
fn rotated_files_are_read_oldest_first_and_followed() {
    let mut r = root!("logrot");
    let id = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo current; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let log = r.path.join("containers").join(&id).join("ctr.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.ok(&["logs", &id]) != "current\n" {
        assert!(Instant::now() < deadline, "no output logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    // What rotation leaves beside the log: .1 the newest rotated file, .2 an older one.
    let rotated = |n: u32| format!("{}.{n}", log.display());
    std::fs::write(
        rotated(2),
        entry("oldest", "stdout", "2026-01-01T00:00:01.000000000Z"),
    )
    .unwrap();
    std::fs::write(
        rotated(1),
        entry("older", "stderr", "2026-01-01T00:00:02.000000000Z")
            + &entry("old", "stdout", "2026-01-01T00:00:03.000000000Z"),
    )
    .unwrap();
    let o = r.hull(&["logs", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "oldest\nold\ncurrent\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "older\n");
    assert_eq!(r.ok(&["logs", "--tail", "2", &id]), "old\ncurrent\n");
    assert_eq!(
        r.ok(&["logs", "--until", "2026-01-01T00:00:02Z", &id]),
        "oldest\n"
    );
    // -f prints all of it, then what the container writes until it stops.
    let follower = r
        .cmd(&["logs", "-f", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    r.ok(&["stop", &id]);
    let out = follower.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "oldest\nold\ncurrent\nbye\n"
    );
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn a_silent_container_has_no_log_file_and_a_follower_gets_its_first_line() {
    let mut r = root!("logs-lazy");
    let id = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "sleep 3; echo late",
    ]);
    // Nothing printed yet: no file made for it, and `logs` shows an empty log.
    let log = r.path.join("containers").join(&id).join("ctr.log");
    assert!(!log.exists(), "ctr.log made before any output");
    assert_eq!(r.ok(&["logs", &id]), "");
    // A follower started before the first line sees it once the file appears.
    assert_eq!(r.ok(&["logs", "-f", &id]), "late\n");
    assert!(log.exists());
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}
