//! `hull run` and the container commands end to end, as a user runs them, as root: each test
//! has its own `--root` with a busybox image imported from Debian's busybox-static, and checks
//! on its way out that nothing of its containers is left (mounts, runtime state, monitors,
//! cgroups, veths, rows).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[macro_use]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::code;

#[test]
fn foreground_output_and_exit_codes() {
    let r = root!("fg");
    let run = |cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none", "busybox"];
        args.extend_from_slice(cmd);
        let o = r.hull(&args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        (code(&o), out, err)
    };
    assert_eq!(
        run(&["echo", "hello from hull"]),
        (Some(0), "hello from hull\n".into(), String::new())
    );
    assert_eq!(
        run(&["sh", "-c", "echo oops >&2; exit 3"]),
        (Some(3), String::new(), "oops\n".into())
    );
    let (status, _, err) = run(&["no-such-command"]);
    assert_eq!(status, Some(127), "{err}");
    assert!(err.contains("no-such-command"), "{err}");
    let (status, _, err) = run(&["/etc/passwd"]);
    assert_eq!(status, Some(126), "{err}");
    r.assert_clean();
}

#[test]
fn killed_by_signal_is_128_plus_n() {
    let mut r = root!("sig");
    // SIGKILL from outside (the container's init ignores it from inside its own namespace).
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    r.ok(&["kill", "-s", "KILL", &id]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "137");
    // A foreground run forwards the signals it gets. (The container's init gets only those it
    // handles, as any pid namespace's init: SIGKILL from `hull kill` ends it regardless.)
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            "--name",
            "fg",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    out.read_exact(&mut ready).unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!((status.code(), rest.as_str()), (Some(7), "got TERM\n"));
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            "--name",
            "fg2",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo ready; sleep 1000",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
    r.ok(&["kill", "fg2"]);
    assert_eq!(child.wait().unwrap().code(), Some(137));
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn detached_logs_stop_rm() {
    let mut r = root!("detach");
    let id = r.detach(&[
        "--name",
        "web",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let ps = r.ok(&["ps"]);
    assert!(
        ps.contains(&id[..12]) && ps.contains("Up") && ps.contains("web"),
        "{ps}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !r.ok(&["logs", "web"]).contains("out") {
        assert!(Instant::now() < deadline, "no output logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = r.hull(&["logs", &id[..8]]);
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // exec runs in it with the container's settings and the caller's overrides.
    let out = r.ok(&[
        "exec",
        "-e",
        "X=5",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "web",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u) $HOSTNAME",
    ]);
    assert_eq!(out, format!("5 /tmp 65534 {}\n", &id[..12]));
    assert_eq!(
        code(&r.hull(&["exec", "web", "sh", "-c", "exit 4"])),
        Some(4)
    );
    assert_eq!(
        code(&r.hull(&["exec", "web", "no-such-command"])),
        Some(127)
    );
    // A running container is not removed without -f.
    let o = r.hull(&["rm", "web"]);
    assert_eq!(code(&o), Some(125));
    r.ok(&["stop", "web"]);
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (0)"), "{ps}");
    assert_eq!(r.ok(&["logs", "web"]), "out\nbye\n");
    let line =
        std::fs::read_to_string(r.path.join("containers").join(&id).join("ctr.log")).unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.ok(&["ps", "-q"]), "");
    r.ok(&["rm", "web"]);
    // logs -f follows until the container ends.
    let id = r.detach(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.2; done",
    ]);
    assert_eq!(r.ok(&["logs", "-f", &id]), "1\n2\n3\n");
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn rm_flag_leaves_nothing() {
    let mut r = root!("rm");
    r.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
    let run = |cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none", "busybox"];
        args.extend_from_slice(cmd);
        r.ok(&args)
    };
    // The monitor reports the exit before it takes the container down; a command that comes
    // next finds the container gone, its name free.
    for _ in 0..3 {
        r.ok(&[
            "run",
            "--rm",
            "--name",
            "again",
            "--network",
            "none",
            "busybox",
            "true",
        ]);
        assert_eq!(r.ok(&["ps", "-a", "-q"]), "", "--rm container still listed");
    }
    // --network none still has its loopback up, as docker's (IFF_UP | IFF_LOOPBACK).
    assert_eq!(run(&["cat", "/sys/class/net/lo/flags"]).trim(), "0x9");
    // A root deleted with its container is mounted volatile: its unmount waits for no sync.
    let info = run(&["cat", "/proc/self/mountinfo"]);
    let root_mount = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("the root in mountinfo");
    assert!(root_mount.contains("volatile"), "{root_mount}");
    let id = r.detach(&["--rm", "--network", "none", "busybox", "sleep", "1000"]);
    r.ok(&["stop", "-t", "1", &id]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !r.ok(&["ps", "-a", "-q"]).is_empty() {
        assert!(Instant::now() < deadline, "--rm container still listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    r.assert_clean();
}

/// The monitor leaves the starter's working directory: a relative `--root` still names the
/// same engine root for it (not one under /).
/// The monitor starts on another CPU than `hull` (monitor/apart.rs) and takes its CPUs back
/// before it creates the container: the container runs on the CPUs its caller may use.
#[test]
fn the_container_gets_the_callers_cpus() {
    let r = root!("cpus");
    let allowed = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
            .unwrap()
    };
    let run_on = |cpus: Option<&str>| {
        let mut c = match cpus {
            Some(list) => {
                let mut c = std::process::Command::new("taskset");
                c.args(["-c", list, env!("CARGO_BIN_EXE_hull")]);
                c
            }
            None => std::process::Command::new(env!("CARGO_BIN_EXE_hull")),
        };
        c.arg("--root").arg(&r.path).args([
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "cat",
            "/proc/self/status",
        ]);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        allowed(&String::from_utf8_lossy(&o.stdout))
    };
    let own = allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    for _ in 0..3 {
        assert_eq!(run_on(None), own);
    }
    let cpus = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let mine: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&c| cpus.is_set(c).unwrap())
        .collect();
    // One CPU (nothing to move the monitor to) and two of them.
    assert_eq!(run_on(Some(&mine[0].to_string())), mine[0].to_string());
    if let [a, b, ..] = mine[..] {
        let two = format!("{a},{b}");
        let shown = run_on(Some(&two));
        assert!(
            shown == two || shown == format!("{a}-{b}"),
            "{shown} for {two}"
        );
    }
    r.assert_clean();
}

#[test]
fn relative_root_is_the_monitors_root_too() {
    let r = root!("relroot");
    let (dir, name) = (r.path.parent().unwrap(), r.path.file_name().unwrap());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hull"))
        .current_dir(dir)
        .arg("--root")
        .arg(name)
        .args(["run", "--rm", "--network", "none", "busybox", "echo", "hi"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    assert!(!Path::new("/").join(name).exists(), "a root made under /");
    // The leak check waits for the processes whose command line names the absolute root;
    // these name it relative: `ps` waits for the monitor's teardown instead.
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
    r.assert_clean();
}

/// Right after a foreground `run --rm` returns, its monitor still takes the container down;
/// `ps` waits for it and never lists the container (CI once saw the row between the moment it
/// stopped naming its monitor and its deletion).
#[test]
fn a_removed_container_is_never_listed() {
    let r = root!("rmlisted");
    for _ in 0..8 {
        r.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
        assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
    }
    r.assert_clean();
}

/// The root holds every container's config.json (its environment, secrets included) and its
/// merged root (the image's setuid binaries): only root may enter it, also one made open
/// before (this one by the test, 0755), as docker's and podman's data roots.
#[test]
fn the_root_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let r = root!("private");
    let mode = std::fs::metadata(&r.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    let id = r.ok(&[
        "create",
        "--network",
        "none",
        "-e",
        "SECRET=s3",
        "busybox",
        "true",
    ]);
    let config = r
        .path
        .join("containers")
        .join(id.trim())
        .join("config.json");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("SECRET=s3"));
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "cat",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success(), "nobody read {}", config.display());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    r.ok(&["rm", id.trim()]);
    r.assert_clean();
}

#[test]
fn env_workdir_user_hostname() {
    let r = root!("env");
    let envfile = r.path.join("env");
    std::fs::write(&envfile, "# comment\nFROM_FILE=f\nB=from-file\n").unwrap();
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "A=1",
        "--env-file",
        envfile.to_str().unwrap(),
        "-e",
        "B=2",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $A $B $FROM_FILE $(pwd) $(id -u):$(id -g) $(hostname) $(cat /etc/hostname) $HOME",
    ]);
    assert_eq!(out, "1 2 f /tmp 65534:65534 box box /nonexistent\n");
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "123:456",
        "--entrypoint",
        "/bin/id",
        "busybox",
    ]);
    assert!(out.starts_with("uid=123 gid=456"), "{out}");
    // -v: a read-only bind and a writable one (its missing host directory made, as docker does).
    let ro = r.path.join("vol-ro");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("in"), "from host\n").unwrap();
    let rw = r.path.join("vol-rw/new");
    let (vro, vrw) = (
        format!("{}:/ro:ro", ro.display()),
        format!("{}:/rw", rw.display()),
    );
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &vro,
        "-v",
        &vrw,
        "busybox",
        "sh",
        "-c",
        "cat /ro/in; touch /ro/x 2>/dev/null || echo ro refused; echo written > /rw/out",
    ]);
    assert_eq!(out, "from host\nro refused\n");
    assert_eq!(
        std::fs::read_to_string(rw.join("out")).unwrap(),
        "written\n"
    );
    // podman's defaults: its capability set and masked paths.
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "grep CapBnd /proc/self/status; cat /proc/kcore | wc -c",
    ]);
    assert!(out.contains("00000000800405fb"), "{out}");
    assert!(out.ends_with("0\n"), "{out}");
    r.assert_clean();
}

#[test]
fn published_port_from_loopback() {
    let mut r = root!("port");
    // A network of this test's own, so nothing is shared with other tests or the host.
    let subnet = format!("10.239.{}.0/24", std::process::id() % 200 + 20);
    r.ok(&["network", "create", "ctrtest", "--subnet", &subnet]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("127.0.0.1:{port}:8080");
    let id = r.detach(&[
        "--network",
        "ctrtest",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "echo hello-from-nc > /tmp/msg; nc -l -p 8080 < /tmp/msg",
    ]);
    // While it serves (nc exits after one connection, and the network goes with it).
    let v = r.inspect(&id);
    assert_eq!(v["NetworkSettings"][0]["network"], "ctrtest");
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if !text.is_empty() {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "port {port} never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(got, "hello-from-nc\n");
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let r = root!("bad");
    // --pull never: tests reach no registry but one of their own on 127.0.0.1 (restart_cli.rs
    // has the failed pull of an unknown image).
    assert!(r
        .bad(&["run", "--rm", "--pull", "never", "no-such-image", "true"])
        .contains("no-such-image"));
    assert!(r
        .bad(&["run", "--bogus-flag", "busybox", "true"])
        .contains("--bogus-flag"));
    assert!(r
        .bad(&["run", "--memory", "lots", "busybox", "true"])
        .contains("memory"));
    assert!(r
        .bad(&["run", "--log-opt", "compress=true", "busybox", "true"])
        .contains("compress"));
    assert!(r
        .bad(&["run", "--detach-keys", "alt-x", "busybox", "true"])
        .contains("alt-x"));
    assert!(r
        .bad(&["run", "--network", "container:x", "busybox", "true"])
        .contains("container:"));
    let id = r.ok(&[
        "create",
        "--name",
        "taken",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let o = r.hull(&["run", "--name", "taken", "busybox", "true"]);
    assert_eq!(code(&o), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already in use") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert_eq!(r.ok(&["ps", "-a", "-q", "--no-trunc"]), id);
    // The created container runs on start.
    r.ok(&["start", "taken"]);
    assert_eq!(r.ok(&["wait", "taken"]).trim(), "0");
    r.ok(&["rm", "taken"]);
    r.assert_clean();
}

#[test]
fn killed_monitor_is_found_and_cleaned() {
    let mut r = root!("monkill");
    let id = r.detach(&["--network", "none", "busybox", "sleep", "1000"]);
    let v = r.inspect(&id);
    let monitor = v["State"]["MonitorPid"].as_i64().unwrap();
    let pid = v["State"]["Pid"].as_i64().unwrap();
    assert!(monitor > 0 && pid > 0);
    // The monitor holds the container's mount namespace (so that its teardown comes after the
    // exit is reported); its kill frees it with its other descriptors.
    let mnt_ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let held = std::fs::read_dir(format!("/proc/{monitor}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target == mnt_ns);
    assert!(held, "monitor {monitor} holds no descriptor of {mnt_ns:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(monitor).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{monitor}/cmdline")).exists()
        && !std::fs::read_to_string(format!("/proc/{monitor}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert!(r.inspect(&id)["State"]["Error"]
        .as_str()
        .unwrap()
        .contains("monitor died"));
    // The container's process went with the teardown.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "container process {pid} still runs"
    );
    r.ok(&["rm", &id]);
    r.assert_clean();
}

#[test]
fn memory_cpus_pids_limits_reach_the_cgroups() {
    let mut r = root!("limits");
    let id = r.detach(&[
        "--network",
        "none",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid = r.inspect(&id)["State"]["Pid"].as_i64().unwrap();
    // The container's cgroup in each v1 hierarchy, as its process sees it from the host.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = |controller: &str| -> Option<PathBuf> {
        cgroups.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, p) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then(|| {
                let mount = if ctrls.contains(',') {
                    ctrls.replace("cpu,cpuacct", "cpu")
                } else {
                    ctrls.to_string()
                };
                Path::new("/sys/fs/cgroup")
                    .join(mount)
                    .join(p.trim_start_matches('/'))
            })
        })
    };
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    };
    match (path("memory"), path("pids"), path("cpu")) {
        (Some(mem), Some(pids), Some(cpu)) => {
            assert_eq!(
                read(mem.join("memory.limit_in_bytes")),
                (64u64 << 20).to_string()
            );
            assert_eq!(read(pids.join("pids.max")), "50");
            assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        }
        _ => {
            r.ok(&["rm", "-f", &id]);
            hull_testkit::skip!(
                "no cgroup v1 memory, pids and cpu hierarchies to read limits from"
            );
        }
    }
    r.ok(&["rm", "-f", &id]);
    r.assert_clean();
}

#[test]
fn stop_of_several_shares_one_timeout_and_goes_past_an_unknown_one() {
    let mut r = root!("stopmany");
    // PID 1 of a pid namespace ignores SIGTERM without a handler: each needs the SIGKILL.
    let ids: Vec<String> = (0..3)
        .map(|_| r.detach(&["--network", "none", "busybox", "sleep", "600"]))
        .collect();
    let started = Instant::now();
    let out = r
        .cmd(&[
            "stop",
            "-t",
            "2",
            &ids[0],
            "no-such-container",
            &ids[1],
            &ids[2],
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-container"), "{stderr}");
    // Stopped one after another they would take at least 6 s.
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    for id in &ids {
        assert_eq!(r.inspect(id)["State"]["Status"], "exited");
    }
    r.ok(&["rm", &ids[0], &ids[1], &ids[2]]);
    r.assert_clean();
}
