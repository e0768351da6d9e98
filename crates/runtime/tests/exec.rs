//! `exec` as runc's: `--env K=V` replaces a K of the process, `--ignore-paused` execs into a
//! paused container (the process runs once it is resumed), `--cgroup` places the process in an
//! existing sub-cgroup of the container's, per controller or in every hierarchy; the process
//! gets the container's oomScoreAdj, and HOME when its environment has none.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{can_run, TestContainer};
use serde_json::json;

fn running(name: &str) -> TestContainer {
    let mut c = TestContainer::new(name);
    c.config["process"]["env"] = json!(["PATH=/bin", "X=from-spec", "Y=kept"]);
    c.set_args(&["sleep", "100"]);
    c.create();
    c.ok(&["start", &c.id]);
    c
}

#[test]
fn exec_env_replaces_a_variable_of_the_process() {
    if !can_run() {
        return;
    }
    let c = running("execenv");
    // The environment as execve got it (a shell would hide duplicates; getenv takes the first).
    let environ = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[&c.id, "cat", "/proc/self/environ"]);
        c.ok(&all)
            .split('\0')
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(
        environ(&["--env", "X=from-exec", "--env", "Z=new"]),
        ["PATH=/bin", "X=from-exec", "Y=kept", "Z=new", "HOME=/root"]
    );
    // The last of two wins, as runc's init sets them one by one.
    assert_eq!(
        environ(&["-e", "X=1", "-e", "X=2"]),
        ["PATH=/bin", "X=2", "Y=kept", "HOME=/root"]
    );
    // HOME as runc's init sets it when the environment has none: the user's home in the
    // container's /etc/passwd, else "/"; one that is set stays.
    assert_eq!(
        environ(&["--user", "1000"]),
        ["PATH=/bin", "X=from-spec", "Y=kept", "HOME=/"]
    );
    assert_eq!(
        environ(&["-e", "HOME=/mine"]),
        ["PATH=/bin", "X=from-spec", "Y=kept", "HOME=/mine"]
    );
    let init = c.ok(&["exec", &c.id, "cat", "/proc/1/environ"]);
    assert!(init.split('\0').any(|e| e == "HOME=/root"), "{init:?}");
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused_and_runs_on_resume() {
    if !can_run() {
        return;
    }
    let c = running("execpaused");
    c.ok(&["pause", &c.id]);
    let out = c.runtime(&["exec", &c.id, "true"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "exec failed: cannot exec in a paused container (use --ignore-paused to override)"
    ));
    let mut exec = c
        .command(&["exec", "--ignore-paused", &c.id, "sh", "-c", "echo ran"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        exec.try_wait().unwrap().is_none(),
        "the process ran in a frozen container"
    );
    // The exec does not hold the container while its process is frozen: resume can reach it.
    let started = Instant::now();
    assert_eq!(c.status(), "paused");
    c.ok(&["resume", &c.id]);
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = exec.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    assert_eq!(c.status(), "running");
}

/// The host directory of the container's cgroup in each hierarchy its first process is in:
/// (controllers as /proc/PID/cgroup names them, directory).
fn cgroup_dirs(pid: i64) -> Vec<(String, PathBuf)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts: Vec<(String, Vec<String>, PathBuf)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let options = right.nth(1)?.split(',').map(String::from).collect();
            let mount_point = PathBuf::from(left.split(' ').nth(4)?);
            fstype
                .starts_with("cgroup")
                .then_some((fstype, options, mount_point))
        })
        .collect();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    own.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let (_, _, mount) = mounts.iter().find(|(fstype, options, _)| {
                if controllers.is_empty() {
                    fstype == "cgroup2"
                } else {
                    fstype == "cgroup"
                        && controllers
                            .split(',')
                            .all(|c| options.iter().any(|o| o == c))
                }
            })?;
            Some((
                controllers.to_string(),
                mount.join(path.trim_start_matches('/')),
            ))
        })
        .collect()
}

#[test]
fn exec_lands_in_every_cgroup_of_the_container_also_at_its_pids_limit() {
    if !can_run() {
        return;
    }
    // One process allowed, and the container's sleep is it: a fork into the cgroup is refused
    // from here on, a move into it is not, and runc's exec starts by a move.
    let mut c = TestContainer::new("execpidsfull");
    c.config["process"]["env"] = json!(["PATH=/bin"]);
    c.config["linux"]["resources"] = json!({ "pids": { "limit": 1 } });
    c.set_args(&["sleep", "100"]);
    c.create();
    c.ok(&["start", &c.id]);
    for _ in 0..2 {
        // Inside the container's cgroup namespace its own cgroup is "/", in every hierarchy;
        // a process left outside would see a path up ("/..").
        let out = c.ok(&["exec", &c.id, "cat", "/proc/self/cgroup"]);
        assert!(!out.is_empty());
        assert!(out.lines().all(|l| l.ends_with(":/")), "{out}");
    }
    // The limit still holds for what the exec'd process forks.
    let out = c.runtime(&["exec", &c.id, "sh", "-c", "true & wait"]);
    assert!(!out.status.success());
}

#[test]
fn exec_cgroup_joins_a_sub_cgroup_per_controller_or_everywhere() {
    if !can_run() {
        return;
    }
    let c = running("execcgroup");
    let pid = c.state()["pid"].as_i64().unwrap();
    let dirs = cgroup_dirs(pid);
    let (pids_name, pids_dir) = dirs
        .iter()
        .find(|(name, _)| name.split(',').any(|n| n == "pids"))
        .or_else(|| dirs.iter().find(|(name, _)| name.is_empty()))
        .expect("a pids cgroup")
        .clone();
    // The container has its own cgroup namespace: inside, its cgroup is "/".
    let controller = if pids_name.is_empty() { "" } else { "pids" };
    std::fs::create_dir(pids_dir.join("sub")).unwrap();
    let arg = if controller.is_empty() {
        "sub".to_string()
    } else {
        "pids:sub".to_string()
    };
    let out = c.ok(&["exec", "--cgroup", &arg, &c.id, "cat", "/proc/self/cgroup"]);
    let line = out
        .lines()
        .find(|l| l.split(':').nth(1) == Some(pids_name.as_str()))
        .unwrap();
    assert!(line.ends_with(":/sub"), "{out}");
    if !controller.is_empty() {
        // The other hierarchies keep the container's own cgroup.
        assert!(
            out.lines()
                .filter(|l| l.split(':').nth(1) != Some(pids_name.as_str()))
                .all(|l| l.ends_with(":/")),
            "{out}"
        );
        // One path alone: the sub-cgroup in every hierarchy.
        for (name, dir) in &dirs {
            if name != &pids_name {
                std::fs::create_dir(dir.join("sub")).unwrap();
            }
            // A v1 cpuset starts with no cpus or mems, and takes no process so: the caller's
            // to set up, as under runc.
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(value) = std::fs::read_to_string(dir.join(file)) {
                    std::fs::write(dir.join("sub").join(file), value.trim()).unwrap();
                }
            }
        }
        let out = c.ok(&["exec", "--cgroup", "sub", &c.id, "cat", "/proc/self/cgroup"]);
        assert!(out.lines().all(|l| l.ends_with(":/sub")), "{out}");
    }
    // runc's refusals, with exec's exit status.
    for (arg, said) in [
        ("../escape", "is not a sub cgroup path"),
        ("pids:no-such-sub", "joining cgroup"),
        (
            "no-such-controller:x",
            "unknown controller no-such-controller",
        ),
    ] {
        if arg.starts_with("pids") && controller.is_empty() {
            continue;
        }
        let out = c.runtime(&["exec", "--cgroup", arg, &c.id, "true"]);
        assert_eq!(out.status.code(), Some(255), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("exec failed: ") && err.contains(said),
            "{arg}: {err}"
        );
    }
    // The sub-cgroups go with the container's (the drop checks that none is left).
}

/// runc gives an exec'd process the container's `process.oomScoreAdj` (containerd's CRI sets
/// kubelet's score there), not the runtime caller's.
#[test]
fn exec_gets_the_containers_oom_score_adj() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("execoom");
    // Raising it needs no privilege, so the check holds on hosts without CAP_SYS_RESOURCE.
    c.config["process"]["oomScoreAdj"] = json!(700);
    c.set_args(&["sleep", "100"]);
    c.create();
    c.ok(&["start", &c.id]);
    let score = |args: &[&str]| {
        c.ok(&[&["exec"], args].concat())
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(score(&[&c.id, "cat", "/proc/1/oom_score_adj"]), "700");
    assert_eq!(score(&[&c.id, "cat", "/proc/self/oom_score_adj"]), "700");
}
