//! Each limit is shown enforced by the kernel on this host, not only written to a file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{res, skip_unless_root, CgGuard, Sh};
use serde_json::json;

fn cpu_ns(cg: &hull_cgroups::Cgroup) -> u64 {
    cg.stats().expect("stats").cpu.usage.total
}

#[test]
fn cpu_quota_half_a_cpu() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    // High shares so other work on this shared 2-core host does not starve the measured loop.
    let r = res(json!({"cpu": {"quota": 50000, "period": 100000, "shares": 262144}}));
    let cg = CgGuard::create("cpu-quota", Some(&r));
    let mut sh = Sh::spawn("while :; do :; done");
    cg.0.add_process(sh.pid()).unwrap();
    sh.go();
    std::thread::sleep(Duration::from_millis(300));
    let (t0, u0) = (Instant::now(), cpu_ns(&cg.0));
    std::thread::sleep(Duration::from_secs(2));
    let (dt, du) = (t0.elapsed(), cpu_ns(&cg.0) - u0);
    let cpus = du as f64 / dt.as_nanos() as f64;
    eprintln!("cpu quota 0.5: measured {cpus:.3} CPU over {dt:?}");
    assert!((0.40..=0.60).contains(&cpus), "measured {cpus:.3} CPU");
    let st = cg.0.stats().unwrap();
    assert!(st.cpu.throttling.throttled_periods > 0, "{:?}", st.cpu);
    drop(sh);
    cg.finish();
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let mib = 1024 * 1024;
    let r = res(json!({"memory": {"limit": 32 * mib, "swap": 32 * mib}}));
    let cg = CgGuard::create("memory-oom", Some(&r));
    let mut oom = cg.0.oom_events().unwrap();
    assert_eq!(oom.read().unwrap(), 0);
    // dd's 64 MiB buffer is filled by reading /dev/zero into it: 64 MiB of touched anonymous memory.
    let mut sh = Sh::spawn("exec /bin/busybox dd if=/dev/zero of=/dev/null bs=64M count=1");
    cg.0.add_process(sh.pid()).unwrap();
    sh.go();
    let status = sh.wait();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "dd was not OOM-killed: {status:?}"
    );
    // The fd is readable and the kill counted.
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&oom),
        nix::poll::PollFlags::POLLIN,
    )];
    let n = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(2000u16)).unwrap();
    assert_eq!(n, 1, "OOM fd not readable");
    assert!(oom.read().unwrap() >= 1);
    assert_eq!(oom.read().unwrap(), 0, "a kill must be reported once");
    let st = cg.0.stats().unwrap();
    assert_eq!(st.memory.usage.limit, 32 * mib);
    // The peak reached the limit (failcnt is no longer kept by v1 on recent kernels).
    assert_eq!(st.memory.usage.max, 32 * mib, "{:?}", st.memory.usage);
    drop(oom);
    drop(sh);
    cg.finish();
}

#[test]
fn pids_limit_tenth_fork_fails_with_eagain() {
    if skip_unless_root() {
        return;
    }
    let r = res(json!({"pids": {"limit": 10}}));
    let cg = CgGuard::create("pids", Some(&r));
    let (go_r, go_w) = nix::unistd::pipe().unwrap();
    let (res_r, res_w) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only calls async-signal-safe functions (read, fork, pause, kill, waitpid,
    // write, _exit) on memory allocated before the fork.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&go_r, &mut b);
            let mut kids = [0i32; 16];
            let mut n = 0usize;
            let mut errno = 0;
            while n < kids.len() {
                // SAFETY: fork in a single-threaded child; grandchildren only pause().
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    loop {
                        // SAFETY: pause has no preconditions.
                        unsafe { libc::pause() };
                    }
                }
                if pid < 0 {
                    errno = nix::errno::Errno::last_raw();
                    break;
                }
                kids[n] = pid;
                n += 1;
            }
            for k in &kids[..n] {
                // SAFETY: kill/waitpid on our own children.
                unsafe {
                    libc::kill(*k, libc::SIGKILL);
                    libc::waitpid(*k, std::ptr::null_mut(), 0);
                }
            }
            let out = [
                u8::try_from(n).unwrap_or(255),
                u8::try_from(errno).unwrap_or(255),
            ];
            let _ = nix::unistd::write(&res_w, &out);
            // SAFETY: _exit skips the parent's atexit handlers, as a forked child must.
            unsafe { libc::_exit(0) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop((go_r, res_w));
            cg.0.add_process(child.as_raw()).unwrap();
            nix::unistd::write(&go_w, b"g").unwrap();
            let mut out = [0u8; 2];
            let mut file = std::fs::File::from(res_r);
            std::io::Read::read_exact(&mut file, &mut out).unwrap();
            nix::sys::wait::waitpid(child, None).unwrap();
            // The child itself is task 1: 9 forks fill the limit, the 10th (11th task) fails.
            assert_eq!(out[0], 9, "forks that succeeded under pids.max=10");
            assert_eq!(i32::from(out[1]), libc::EAGAIN, "errno of the failing fork");
        }
    }
    assert_eq!(cg.0.stats().unwrap().pids.limit, 10);
    cg.finish();
}

#[test]
fn cpuset_sets_cpus_allowed_list() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = if n > 1 { "1" } else { "0" };
    let r = res(json!({"cpu": {"cpus": cpu, "mems": "0"}}));
    let cg = CgGuard::create("cpuset", Some(&r));
    let mut sh = Sh::spawn("grep Cpus_allowed_list /proc/self/status");
    cg.0.add_process(sh.pid()).unwrap();
    sh.go();
    let line = sh.line();
    assert_eq!(line.split_whitespace().nth(1), Some(cpu), "{line}");
    drop(sh);
    cg.finish();
}

#[test]
fn devices_deny_and_allow() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let mut rules = hull_cgroups::default_device_rules();
    // The defaults allow /dev/zero; a later rule takes read/write away again (the last match wins).
    // Not "m": the defaults' "c *:* m" is a wildcard v1 cannot punch a hole in (runc refuses too).
    rules.push(
        serde_json::from_value(
            json!({"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rw"}),
        )
        .unwrap(),
    );
    let r = res(json!({ "devices": rules }));
    let cg = CgGuard::create("devices", Some(&r));
    assert_eq!(
        probe_devices(&cg.0),
        ["null-ok", "zero-denied", "urandom-ok"]
    );
    // An update swaps which device is denied (on v1 by writing only the difference).
    let mut rules = hull_cgroups::default_device_rules();
    rules.push(
        serde_json::from_value(
            json!({"allow": false, "type": "c", "major": 1, "minor": 9, "access": "rw"}),
        )
        .unwrap(),
    );
    cg.0.update(&res(json!({ "devices": rules }))).unwrap();
    assert_eq!(
        probe_devices(&cg.0),
        ["null-ok", "zero-ok", "urandom-denied"]
    );
    cg.finish();
}

fn probe_devices(cg: &hull_cgroups::Cgroup) -> Vec<String> {
    let mut sh = Sh::spawn(
        "echo x > /dev/null && echo null-ok; \
         /bin/busybox head -c1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied; \
         /bin/busybox head -c1 /dev/urandom >/dev/null 2>&1 && echo urandom-ok || echo urandom-denied",
    );
    cg.add_process(sh.pid()).unwrap();
    sh.go();
    let out = sh.rest();
    sh.wait();
    out.lines().map(str::to_string).collect()
}

fn counter(path: &std::path::Path) -> u64 {
    // The shell rewrites the file; retry the moment it is empty.
    for _ in 0..100 {
        if let Ok(v) = std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("counter file {} never readable", path.display());
}

#[test]
fn freezer_stops_a_counter_until_thawed() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let cg = CgGuard::create("freezer", None);
    let dir =
        std::env::temp_dir().join(format!("{}{}-freezer", common::PREFIX, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("counter");
    let mut sh = Sh::spawn(&format!(
        "i=0; while :; do i=$((i+1)); echo $i > {}.tmp; mv {0}.tmp {0}; done",
        file.display()
    ));
    cg.0.add_process(sh.pid()).unwrap();
    sh.go();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!cg.0.is_frozen().unwrap());
    cg.0.freeze().unwrap();
    assert!(cg.0.is_frozen().unwrap());
    let a = counter(&file);
    std::thread::sleep(Duration::from_millis(500));
    let b = counter(&file);
    assert_eq!(a, b, "counter advanced while frozen");
    cg.0.thaw().unwrap();
    assert!(!cg.0.is_frozen().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let c = counter(&file);
    assert!(c > b, "counter did not advance after thaw ({b} -> {c})");
    drop(sh);
    // The shell's in-flight `mv` children too, before their dir goes.
    common::kill_all(&cg.0);
    let _ = std::fs::remove_dir_all(&dir);
    cg.finish();
}
