//! `create` killed with SIGKILL at any moment, then `delete -f`: no cgroup, process, mount or
//! state of the container may be left. Its own test binary, because the test makes itself a child
//! subreaper (so that a process the killed `create` left is re-parented to it, and seen).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{can_run, leaked_cgroups, TestContainer};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

#[test]
fn create_killed_at_any_moment_then_delete_force_leaves_nothing() {
    if !can_run() {
        return;
    }
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let mut c = TestContainer::new("killed");
    c.set_args(&["sleep", "1000"]);
    c.write_config();
    // 0..=30 ms, then as many at random in between, from a seed printed for a rerun.
    let mut delays: Vec<Duration> = (0..=30).map(Duration::from_millis).collect();
    let mut seed = std::env::var("HULL_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) | 1);
    eprintln!("random delays from HULL_KILL_SEED={seed}");
    for _ in 0..30 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        delays.push(Duration::from_micros(seed % 30_000));
    }
    let mut failures = Vec::new();
    let mut mid_create = 0;
    for (n, delay) in delays.iter().enumerate() {
        let id = format!("{}-k{n:02}", c.id);
        match kill_create_then_delete(&c, &id, *delay) {
            Ok(true) => mid_create += 1,
            Ok(false) => {}
            Err(left) => failures.push(format!("killed after {delay:?}: {left}")),
        }
    }
    eprintln!(
        "{mid_create} of {} creates killed before they returned",
        delays.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What is left of container `id` after its `create` was killed at `delay` and `delete -f` ran;
/// Ok(whether the kill came before `create` returned).
fn kill_create_then_delete(c: &TestContainer, id: &str, delay: Duration) -> Result<bool, String> {
    let mut create = c
        .command(&["create", "--bundle", c.bundle.to_str().unwrap(), id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = kill(
        Pid::from_raw(i32::try_from(create.id()).unwrap()),
        Signal::SIGKILL,
    );
    let killed = create
        .wait()
        .is_ok_and(|s| std::os::unix::process::ExitStatusExt::signal(&s).is_some());
    let out = c.runtime(&["delete", "-f", id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut left = Vec::new();
    if !out.status.success() && !stderr.contains("container does not exist") {
        left.push(format!("delete -f failed: {}", stderr.trim()));
    }
    let procs = processes_left(id);
    if !procs.is_empty() {
        left.push(format!("processes {procs:?}"));
        for pid in procs {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let cgroups = leaked_cgroups(id);
    if !cgroups.is_empty() {
        left.push(format!("{} cgroups {cgroups:?}", cgroups.len()));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let bundle = c.bundle.to_str().unwrap();
    if let Some(m) = mounts
        .lines()
        .find(|l| l.contains(id) || l.contains(bundle))
    {
        left.push(format!("mount {m}"));
    }
    if c.root.join(id).exists() {
        left.push("state dir".into());
    }
    if left.is_empty() {
        return Ok(killed);
    }
    // Not to leak into the next round or the host: clean what this round left.
    let _ = c.runtime(&["delete", "-f", id]);
    for cg in leaked_cgroups(id).iter().rev() {
        let _ = std::fs::remove_dir(cg);
    }
    let _ = std::fs::remove_dir_all(c.root.join(id));
    Err(left.join("; "))
}

/// Live processes of container `id`: in a cgroup named after it, or orphans of the killed
/// `create` (re-parented to this subreaper). Zombies are reaped: they are gone, and a dying
/// process is given a moment to become one.
fn processes_left(id: &str) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
        let me = std::process::id().to_string();
        let left: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let dir = Path::new("/proc").join(pid.to_string());
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
                let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                    return false;
                };
                let mut fields = rest.split(' ');
                let state = fields.next().unwrap_or("Z");
                let ppid = fields.next().unwrap_or("");
                let cgroup = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
                state != "Z" && (ppid == me || cgroup.contains(id))
            })
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
