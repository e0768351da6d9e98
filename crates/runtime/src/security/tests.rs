//! The security plan applied for real: a child of the test (made by std's fork + pre_exec)
//! applies a plan, execs busybox, and the test reads back what the kernel says.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output, Stdio};

use super::{
    known_capabilities, seccomp_features, set_oom_score_adj, PlanOptions, SecurityError,
    SecurityPlan,
};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use oci_spec::runtime::{Linux, Process};
use serde_json::{json, Value};

const BUSYBOX: &str = "/bin/busybox";

fn have_busybox() -> bool {
    if std::path::Path::new(BUSYBOX).exists() {
        return true;
    }
    hull_testkit::skip(format!("{BUSYBOX} (busybox-static) is missing"));
    false
}

/// A `process` object: `extra` merged over a root user with no capabilities.
fn process(extra: Value) -> Process {
    let mut p = json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"]});
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    serde_json::from_value(p).expect("process json")
}

fn linux(v: Value) -> Linux {
    serde_json::from_value(v).expect("linux json")
}

fn plan(p: Value, l: Option<Value>) -> Result<SecurityPlan, SecurityError> {
    let l = l.map(linux);
    SecurityPlan::new(&process(p), l.as_ref(), PlanOptions::default())
}

/// Writes `msg` to stderr and exits: all a forked child of a threaded process may do.
fn die(msg: &str, code: i32) -> ! {
    // SAFETY: write(2) and _exit(2) are async-signal-safe; msg outlives the call.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(code)
    }
}

/// Runs busybox `args` in a child that applied `plan` first; `on_listener` gets the seccomp
/// listener in the child.
fn command(
    plan: SecurityPlan,
    args: &[&str],
    on_listener: impl Fn(OwnedFd) + Send + Sync + 'static,
) -> Command {
    let mut cmd = Command::new(BUSYBOX);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec; it only applies the plan
    // (syscalls and small allocations, fork-safe with glibc's malloc) or exits.
    unsafe {
        cmd.pre_exec(move || {
            match plan.apply() {
                Ok(Some(fd)) => on_listener(fd),
                Ok(None) => {}
                Err(e) => die(&format!("APPLY: {e}\n"), 97),
            }
            Ok(())
        });
    }
    cmd
}

fn run(plan: SecurityPlan, args: &[&str]) -> Output {
    command(plan, args, |_| die("APPLY: unexpected listener\n", 98))
        .output()
        .expect("spawn busybox")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "child failed: {:?}, stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_string()
}

#[test]
fn user_capabilities_and_no_new_privs() {
    if !have_busybox() {
        return;
    }
    let caps = json!(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
    let p = plan(
        json!({
            "user": {"uid": 1000, "gid": 1001, "umask": 0o027, "additionalGids": [10, 20]},
            "noNewPrivileges": true,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
                "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps
            }
        }),
        None,
    )
    .expect("plan");
    let out = stdout(&run(
        p,
        &[
            "sh",
            "-c",
            "cat /proc/self/status; stat -L -c %u /proc/self/fd/1; umask",
        ],
    ));
    let want = format!("{:016x}", (1u64 << 0) | (1 << 10));
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status_field(&out, set), want, "{set}");
    }
    assert_eq!(status_field(&out, "CapBnd"), format!("{:016x}", 0x421u64));
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&out, "Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field(&out, "Groups"), "10 20");
    // The stdout pipe the test made as root now belongs to the container user.
    let tail: Vec<&str> = out.lines().rev().take(2).collect();
    assert_eq!(tail, ["0027", "1000"]);
}

#[test]
fn root_gets_only_its_bounding_set() {
    if !have_busybox() {
        return;
    }
    let p = plan(json!({"capabilities": {"bounding": ["CAP_CHOWN"]}}), None).expect("plan");
    let out = stdout(&run(p, &["cat", "/proc/self/status"]));
    // Root regains its bounding set at execve; nothing else may come back.
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000001");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000001");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    assert_eq!(status_field(&out, "Groups"), "");
}

#[test]
fn rlimits_are_set() {
    if !have_busybox() {
        return;
    }
    let p = plan(
        json!({"rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]}),
        None,
    )
    .expect("plan");
    let out = stdout(&run(p, &["sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -c"]));
    assert_eq!(out, "100\n200\n0\n");
}

#[test]
fn rlimit_above_host_hard_limit_is_a_clear_error() {
    let (_, host_hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).expect("rlimit");
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let eff = u64::from_str_radix(&status_field(&status, "CapEff"), 16).expect("hex");
    if eff & (1 << 24) != 0 || host_hard == u64::MAX {
        hull_testkit::skip!("this process may raise RLIMIT_NOFILE");
    }
    let err = plan(
        json!({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}]}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("process.rlimits: RLIMIT_NOFILE hard limit 1048576 is above this host's hard limit {host_hard}, and raising it needs CAP_SYS_RESOURCE, which this process lacks")
    );
}

fn seccomp(rules: Value) -> Option<Value> {
    Some(json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}}))
}

#[test]
fn seccomp_errno_blocks_mkdir_with_the_configured_errno() {
    if !have_busybox() {
        return;
    }
    // Every filter flag but WAIT_KILLABLE_RECV (which needs a listener; see the notify test).
    let p = plan(
        json!({}),
        Some(json!({"seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [{
                "names": ["mkdir", "mkdirat", "hull_no_such_syscall"],
                "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV
            }]
        }})),
    )
    .expect("plan");
    assert_eq!(p.ignored_syscalls(), ["hull_no_such_syscall"]);
    let out = run(p, &["mkdir", "/tmp/hull-seccomp-never"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Invalid cross-device link"), "{err}");
    assert!(!std::path::Path::new("/tmp/hull-seccomp-never").exists());
}

#[test]
fn seccomp_args_masked_eq_and_or_on_one_argument() {
    if !have_busybox() {
        return;
    }
    let o_creat = u64::try_from(libc::O_CREAT).expect("flag");
    // openat(..., flags & O_CREAT == O_CREAT) fails EACCES; plain opens still work. Two
    // conditions on one argument mean either (runc's rule).
    let p = plan(
        json!({}),
        seccomp(json!([{
            "names": ["openat", "open"],
            "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES,
            "args": [
                {"index": 2, "value": o_creat, "valueTwo": o_creat, "op": "SCMP_CMP_MASKED_EQ"}
            ]
        }, {
            "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOTSUP
        }])),
    )
    .expect("plan");
    let dir = std::env::temp_dir().join(format!("hull-seccomp-args-{}", std::process::id()));
    let file = dir.join("f");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let script = format!(
        "cat /proc/self/comm; touch {} || echo touch-failed; mkdir {}/d || echo mkdir-failed",
        file.display(),
        dir.display()
    );
    let out = run(p, &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(text.starts_with("cat\n"), "{text} / {err}");
    assert!(text.contains("touch-failed"), "{text} / {err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(text.contains("mkdir-failed"), "{text} / {err}");
    assert!(err.contains("not supported"), "{err}");
}

#[test]
fn seccomp_kill_trap_trace_log_actions() {
    if !have_busybox() {
        return;
    }
    for (action, want_signal) in [
        ("SCMP_ACT_KILL", Some(libc::SIGSYS)),
        ("SCMP_ACT_KILL_PROCESS", Some(libc::SIGSYS)),
        ("SCMP_ACT_KILL_THREAD", Some(libc::SIGSYS)),
        ("SCMP_ACT_TRAP", Some(libc::SIGSYS)),
        ("SCMP_ACT_LOG", None),
    ] {
        let p = plan(
            json!({}),
            seccomp(json!([{"names": ["uname"], "action": action}])),
        )
        .expect("plan");
        let out = run(p, &["uname", "-s"]);
        match want_signal {
            Some(sig) => assert_eq!(out.status.signal(), Some(sig), "{action}: {:?}", out.status),
            None => assert_eq!(stdout(&out), "Linux\n", "{action}"),
        }
    }
    // TRACE with no tracer attached: the kernel fails the call with ENOSYS.
    let p = plan(
        json!({}),
        seccomp(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE"}])),
    )
    .expect("plan");
    let out = run(p, &["mkdir", "/tmp/hull-trace-never"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Function not implemented"), "{err}");
}

#[test]
fn seccomp_default_errno_with_allow_list() {
    if !have_busybox() {
        return;
    }
    // Everything busybox echo needs is allowed; getpid (not needed by echo) is not.
    let allow: &[&str] = &[
        "execve",
        "brk",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "mprotect",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "write",
        "exit_group",
        "exit",
        "readlink",
        "uname",
        "getrandom",
        "futex",
        "rt_sigprocmask",
        "rt_sigaction",
        "ioctl",
        "mmap",
        "munmap",
        "fstat",
        "newfstatat",
        "getppid",
        "getpid",
        "setgroups",
        "setresuid",
        "setresgid",
        "capset",
        "capget",
        "prctl",
        "umask",
        "close",
        "fcntl",
        "read",
    ];
    let p = plan(
        json!({}),
        Some(json!({"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENOTSUP,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}]
        }})),
    )
    .expect("plan");
    assert_eq!(stdout(&run(p, &["echo", "hello"])), "hello\n");
    let p = plan(
        json!({}),
        Some(json!({"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENOTSUP,
            "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}]
        }})),
    )
    .expect("plan");
    let out = run(p, &["mkdir", "/tmp/hull-never-2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not supported"), "{err}");
}

/// `busybox echo ok` under `plan`, with `checks` run in the child between applying the plan
/// and the exec (they end the child with `die` when one fails); asserts the output.
fn echo_ok_after(plan: SecurityPlan, checks: fn()) {
    let mut cmd = Command::new(BUSYBOX);
    cmd.args(["echo", "ok"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: runs in the forked child before exec; see `command`.
    unsafe {
        cmd.pre_exec(move || {
            if let Err(e) = plan.apply() {
                die(&format!("APPLY: {e}\n"), 97);
            }
            checks();
            Ok(())
        });
    }
    let out = cmd.output().expect("spawn");
    assert_eq!(
        stdout(&out),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn seccomp_syscalls_newer_than_the_profile_get_enosys() {
    if !have_busybox() {
        return;
    }
    let allow: &[&str] = &[
        "execve",
        "brk",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "mprotect",
        "write",
        "exit_group",
        "exit",
        "uname",
        "getrandom",
        "futex",
        "rt_sigprocmask",
        "rt_sigaction",
        "ioctl",
        "mmap",
        "munmap",
        "fstat",
        "newfstatat",
        "getpid",
        "setgroups",
        "setresuid",
        "setresgid",
        "capset",
        "prctl",
        "umask",
        "close",
        "fcntl",
        "read",
        "fchown",
    ];
    let profile = plan(
        json!({}),
        Some(json!({"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}]
        }})),
    )
    .expect("plan");
    echo_ok_after(profile, || {
        let errno = |nr: libc::c_long| {
            // SAFETY: neither call reads memory: 1000 is unassigned, getcwd gets a NULL buffer
            // and is refused by the filter before the kernel looks at it.
            let rc = unsafe { libc::syscall(nr, 0usize, 0usize) };
            (rc == -1)
                .then(|| std::io::Error::last_os_error().raw_os_error())
                .flatten()
        };
        // 1000 is above every syscall the profile names: ENOSYS. getcwd is known and not
        // allowed: the default action's EPERM.
        if errno(1000) != Some(libc::ENOSYS) {
            die("syscall 1000 did not fail with ENOSYS\n", 91);
        }
        if errno(libc::SYS_getcwd) != Some(libc::EPERM) {
            die("getcwd did not fail with EPERM\n", 92);
        }
    });
}

fn send_fd(sock: RawFd, fd: OwnedFd) {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    if sendmsg::<()>(sock, &[IoSlice::new(b"fd")], &cmsg, MsgFlags::empty(), None).is_err() {
        die("APPLY: sendmsg failed\n", 96);
    }
}

fn recv_fd(sock: RawFd) -> OwnedFd {
    let mut buf = [0u8; 2];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS gave this process a new fd that nothing else owns.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}

/// Sends the listener as the runtime does to `listenerPath`, and receives it as an agent would.
fn relay_through_agent_socket(listener: OwnedFd, pid: u32) -> OwnedFd {
    let path = std::env::temp_dir().join(format!("hull-agent-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let agent = std::os::unix::net::UnixListener::bind(&path).expect("bind agent socket");
    let state = json!({"ociVersion": "1.2.0", "id": "hull-test", "status": "creating", "pid": pid, "bundle": "/"});
    super::send_seccomp_listener(
        &path,
        std::os::fd::AsFd::as_fd(&listener),
        i32::try_from(pid).expect("pid"),
        Some("meta"),
        &state,
    )
    .expect("send to agent");
    drop(listener);
    let (conn, _) = agent.accept().expect("accept");
    std::fs::remove_file(&path).expect("remove agent socket");
    let mut buf = vec![0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut fd = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS gave this process a new fd that nothing else owns.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let len = msg.bytes;
    let body: Value = serde_json::from_slice(&buf[..len]).expect("state json");
    assert_eq!(body["fds"], json!(["seccompFd"]));
    assert_eq!(body["metadata"], "meta");
    assert_eq!(body["pid"], pid);
    assert_eq!(body["state"]["id"], "hull-test");
    fd.expect("listener fd")
}

#[test]
fn seccomp_notify_yields_a_working_listener() {
    if !have_busybox() {
        return;
    }
    let rules = json!({"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/hull-test-agent.sock", "listenerMetadata": "meta",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }});
    let p = plan(json!({"noNewPrivileges": true}), Some(rules)).expect("plan");
    assert_eq!(
        p.seccomp_listener_path().map(|p| p.display().to_string()),
        Some("/run/hull-test-agent.sock".into())
    );
    assert_eq!(p.seccomp_listener_metadata(), Some("meta"));
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let theirs_raw = theirs.as_raw_fd();
    let child = command(p, &["mkdir", "/tmp/hull-notify-never"], move |fd| {
        send_fd(theirs_raw, fd)
    })
    .spawn()
    .expect("spawn");
    drop(theirs);
    let listener = relay_through_agent_socket(recv_fd(ours.as_raw_fd()), child.id());
    let req = libseccomp::ScmpNotifReq::receive(listener.as_raw_fd()).expect("notification");
    let name = req.data.syscall.get_name().expect("syscall name");
    assert!(name.starts_with("mkdir"), "{name}");
    assert_eq!(req.pid, child.id());
    libseccomp::ScmpNotifResp::new_error(
        req.id,
        -libc::EROFS,
        libseccomp::ScmpNotifRespFlags::empty(),
    )
    .respond(listener.as_raw_fd())
    .expect("respond");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Read-only file system"), "{err}");
}

#[test]
fn personality_linux32_and_flags() {
    if !have_busybox() {
        return;
    }
    let p = plan(
        json!({}),
        Some(json!({"personality": {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}})),
    )
    .expect("plan");
    let out = stdout(&run(
        p,
        &["sh", "-c", "uname -m; cat /proc/self/personality"],
    ));
    let mut lines = out.lines();
    assert!(matches!(lines.next(), Some("i686" | "i386")), "{out}");
    assert_eq!(lines.next(), Some("00040008"));
}

#[test]
fn scheduler_and_io_priority_read_back() {
    if !have_busybox() {
        return;
    }
    for (sched, want_policy, want_nice, want_prio, want_flags) in [
        (json!({"policy": "SCHED_BATCH", "nice": 7}), 3, 7, 0, 0),
        (
            json!({"policy": "SCHED_FIFO", "priority": 1, "flags": ["SCHED_RESET_ON_FORK"]}),
            1,
            0,
            1,
            1,
        ),
    ] {
        let p = plan(
            json!({"scheduler": sched, "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6}}),
            None,
        )
        .expect("plan");
        let mut child = command(p, &["sleep", "30"], |_| die("listener\n", 98))
            .spawn()
            .expect("spawn");
        let pid = i32::try_from(child.id()).expect("pid");
        let attr = crate::sys::sched::sched_getattr(pid);
        let io = crate::sys::ioprio::ioprio_get(pid);
        child.kill().expect("kill");
        child.wait().expect("wait");
        let attr = attr.expect("sched_getattr");
        assert_eq!(attr.sched_policy, want_policy);
        assert_eq!(attr.sched_nice, want_nice);
        assert_eq!(attr.sched_priority, want_prio);
        assert_eq!(attr.sched_flags & 1, want_flags);
        assert_eq!(io.expect("ioprio_get"), (2, 6));
    }
}

#[test]
fn scheduler_deadline_reads_back() {
    if !have_busybox() {
        return;
    }
    let sched = json!({"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 10_000_000, "period": 100_000_000});
    let p = plan(json!({"scheduler": sched}), None).expect("plan");
    let mut child = command(p, &["sleep", "30"], |_| die("listener\n", 98))
        .spawn()
        .expect("spawn");
    let pid = i32::try_from(child.id()).expect("pid");
    let attr = crate::sys::sched::sched_getattr(pid);
    child.kill().expect("kill");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("APPLY: process.scheduler") {
        // Admission control (bandwidth, an affinity narrower than the root domain) may refuse.
        hull_testkit::skip!("this host refused SCHED_DEADLINE: {err}");
    }
    let attr = attr.expect("sched_getattr");
    assert_eq!(attr.sched_policy, 6);
    assert_eq!(
        (attr.sched_runtime, attr.sched_deadline, attr.sched_period),
        (1_000_000, 10_000_000, 100_000_000)
    );
}

#[test]
fn oom_score_adj_raise_and_refused_lowering() {
    if !have_busybox() {
        return;
    }
    let mut child = Command::new(BUSYBOX)
        .args(["sleep", "30"])
        .spawn()
        .expect("spawn");
    let pid = i32::try_from(child.id()).expect("pid");
    let raised = set_oom_score_adj(pid, 500);
    let read = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"));
    let lowered = set_oom_score_adj(pid, -500);
    child.kill().expect("kill");
    child.wait().expect("wait");
    raised.expect("raise");
    assert_eq!(read.expect("read").trim(), "500");
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let eff = u64::from_str_radix(&status_field(&status, "CapEff"), 16).expect("hex");
    if eff & (1 << 24) != 0 {
        hull_testkit::skip!("this process has CAP_SYS_RESOURCE, lowering is allowed");
    }
    assert_eq!(
        lowered.unwrap_err().to_string(),
        "process.oomScoreAdj: lowering it to -500 (now 500) needs CAP_SYS_RESOURCE, which this process lacks"
    );
}

#[test]
fn capability_outside_bounding_set_is_named() {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let bnd = u64::from_str_radix(&status_field(&status, "CapBnd"), 16).expect("hex");
    if bnd & (1 << 24) != 0 {
        hull_testkit::skip!("CAP_SYS_RESOURCE is in this host's bounding set");
    }
    let err = plan(
        json!({"capabilities": {"effective": ["CAP_SYS_RESOURCE"], "permitted": ["CAP_SYS_RESOURCE"]}}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "process.capabilities.effective: CAP_SYS_RESOURCE is not in this host's capability bounding set, so no process here can hold it"
    );
    let opts = PlanOptions {
        extra_caps: vec!["sys_resource".into()],
        ..Default::default()
    };
    let err = SecurityPlan::new(&process(json!({})), None, opts).unwrap_err();
    assert!(
        err.to_string().starts_with("exec --cap: CAP_SYS_RESOURCE"),
        "{err}"
    );
}

#[test]
fn capability_consistency_errors() {
    let err = plan(
        json!({"capabilities": {"effective": ["CAP_KILL"], "permitted": []}}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "process.capabilities.effective: CAP_KILL must also be in permitted"
    );
    let p = plan(
        json!({"capabilities": {"permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]}}),
        None,
    )
    .expect("runc accepts an unraisable ambient capability with a warning");
    assert_eq!(
        p.warnings(),
        ["process.capabilities.ambient: skipping CAP_KILL (not in both permitted and inheritable, so the kernel cannot raise them)"]
    );
    let err = plan(
        json!({"capabilities": {"bounding": ["CAP_CHOWN"], "inheritable": ["CAP_KILL"]}}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "process.capabilities.inheritable: CAP_KILL must also be in bounding"
    );
}

#[test]
fn unknown_names_fail_while_parsing_and_name_the_value() {
    // Unknown enum values are rejected by the config types themselves; the message names them.
    let cases = [
        (
            json!({"capabilities": {"bounding": ["CAP_FLY"]}}),
            None,
            "CAP_FLY",
        ),
        (
            json!({}),
            seccomp(json!([{"names": ["x"], "action": "SCMP_ACT_SHRUG"}])),
            "SCMP_ACT_SHRUG",
        ),
        (
            json!({}),
            seccomp(
                json!([{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]),
            ),
            "SCMP_CMP_ABOUT",
        ),
        (
            json!({}),
            Some(
                json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}}),
            ),
            "SCMP_ARCH_Z80",
        ),
        (
            json!({}),
            Some(
                json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}}),
            ),
            "SECCOMP_FILTER_FLAG_FAST",
        ),
        (
            json!({"rlimits": [{"type": "RLIMIT_FUN", "soft": 1, "hard": 1}]}),
            None,
            "RLIMIT_FUN",
        ),
    ];
    for (p, l, bad) in cases {
        let mut proc_json = json!({"cwd": "/", "user": {"uid": 0, "gid": 0}});
        if let (Some(o), Value::Object(extra)) = (proc_json.as_object_mut(), p) {
            o.extend(extra);
        }
        let perr = serde_json::from_value::<Process>(proc_json).err();
        let lerr = l.and_then(|l| serde_json::from_value::<Linux>(l).err());
        let msg = perr.or(lerr).map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains(bad), "{bad}: {msg:?}");
    }
}

#[test]
fn seccomp_config_errors_name_the_field() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath: is required by SCMP_ACT_NOTIFY",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0]: SCMP_ACT_NOTIFY cannot be used for \"write\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}),
            "linux.seccomp.syscalls[0]: errno 1 is only meaningful with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_KILL",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0]: index 6 is not below 6",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0]: valueTwo is only used by SCMP_CMP_MASKED_EQ, not SCMP_CMP_EQ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}),
            "linux.seccomp.defaultAction: errno 5000 is above the largest errno 4095",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}),
            "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY rule",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]}),
            "linux.seccomp.architectures[1]: SCMP_ARCH_S390X cannot be added to a filter on this host",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names: is empty",
        ),
    ];
    for (s, want) in cases {
        let err = plan(json!({}), Some(json!({"seccomp": s}))).unwrap_err();
        assert!(err.to_string().starts_with(want), "{err} / want {want}");
    }
}

#[test]
fn features_list_what_is_implemented() {
    let f = seccomp_features();
    assert_eq!(f["enabled"], true);
    assert_eq!(f["actions"].as_array().map(Vec::len), Some(9));
    assert_eq!(f["operators"].as_array().map(Vec::len), Some(7));
    let archs = f["archs"].as_array().expect("archs");
    assert!(archs.contains(&json!("SCMP_ARCH_X86_64")), "{archs:?}");
    assert_eq!(f["knownFlags"].as_array().map(Vec::len), Some(4));
    let supported = f["supportedFlags"].as_array().expect("supported");
    assert!(
        supported.contains(&json!("SECCOMP_FILTER_FLAG_LOG")),
        "{supported:?}"
    );
    assert!(known_capabilities().contains(&"CAP_CHECKPOINT_RESTORE".to_string()));
}

#[test]
fn grantable_capabilities_are_known_sorted_and_in_the_bounding_set() {
    let grantable = super::grantable_capabilities();
    let known = known_capabilities();
    assert!(!grantable.is_empty());
    assert!(grantable.iter().all(|c| known.contains(c)), "{grantable:?}");
    assert!(grantable.windows(2).all(|w| w[0] < w[1]), "{grantable:?}");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    let in_bounding = known
        .iter()
        .filter(|name| {
            let cap: caps::Capability = name.parse().unwrap();
            bounding & (1u64 << cap.index()) != 0
        })
        .count();
    assert_eq!(grantable.len(), in_bounding);
}

/// In the forked child: a new user namespace mapping root to root, setgroups denied (the
/// rootless layout), as a runtime sets it up before applying the plan.
fn enter_user_namespace() {
    let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok()
        && std::fs::write("/proc/self/setgroups", "deny").is_ok()
        && std::fs::write("/proc/self/uid_map", "0 0 1").is_ok()
        && std::fs::write("/proc/self/gid_map", "0 0 1").is_ok();
    if !ok {
        die("USERNS: setup failed\n", 95);
    }
}

#[test]
fn user_namespace_with_setgroups_denied() {
    if !have_busybox() {
        return;
    }
    let maps = json!({
        "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]
    });
    let opts = || PlanOptions {
        in_user_namespace: true,
        ..Default::default()
    };
    let l = linux(maps);
    let mk = |groups: Value| {
        let p = process(json!({
            "user": {"uid": 0, "gid": 0, "additionalGids": groups},
            "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}
        }));
        SecurityPlan::new(&p, Some(&l), opts()).expect("plan")
    };
    let spawn = |plan: SecurityPlan| {
        let mut cmd = Command::new(BUSYBOX);
        cmd.args(["cat", "/proc/self/status"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: runs in the forked child before exec; see `command`.
        unsafe {
            cmd.pre_exec(move || {
                enter_user_namespace();
                if let Err(e) = plan.apply() {
                    die(&format!("APPLY: {e}\n"), 97);
                }
                Ok(())
            });
        }
        cmd.output().expect("spawn")
    };
    let out = spawn(mk(json!([])));
    if out.status.code() == Some(95) {
        hull_testkit::skip!("cannot create a user namespace here");
    }
    let status = stdout(&out);
    assert_eq!(status_field(&status, "CapBnd"), "0000000000000001");
    assert_eq!(status_field(&status, "Uid"), "0\t0\t0\t0");
    let out = spawn(mk(json!([0])));
    assert_eq!(out.status.code(), Some(97));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "APPLY: process.user: additionalGids: setgroups is denied in this user namespace (/proc/self/setgroups is \"deny\")\n"
    );
    // An id outside the mappings fails in the runtime, before any process exists.
    let p = process(json!({"user": {"uid": 1000, "gid": 0}}));
    let err = SecurityPlan::new(&p, Some(&l), opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "process.user: uid 1000 is not mapped by linux.uidMappings"
    );
}

/// podman's default profile (containers/common format) as the OCI object podman would pass for
/// a process without capabilities on x86-64.
fn podman_default_profile() -> Option<Value> {
    let path = "/usr/share/containers/seccomp.json";
    let Ok(text) = std::fs::read_to_string(path) else {
        hull_testkit::skip(format!("{path} (podman's containers-common) is missing"));
        return None;
    };
    let profile: Value = serde_json::from_str(&text).expect("profile json");
    let native = ["amd64", "x32", "x86"];
    let empty = |v: &Value| v.as_object().is_none_or(|o| o.is_empty());
    let applies = |s: &Value| {
        let inc = &s["includes"];
        let arch_ok = inc["arches"]
            .as_array()
            .is_none_or(|a| a.iter().any(|x| native.contains(&x.as_str().unwrap_or(""))));
        (empty(inc) || (inc.get("caps").is_none() && arch_ok)) && s["excludes"]["arches"].is_null()
    };
    let syscalls: Vec<Value> = profile["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|s| applies(s))
        .map(|s| {
            let mut rule = json!({"names": s["names"], "action": s["action"]});
            for key in ["args", "errnoRet"] {
                if !s[key].is_null() && s[key] != json!([]) {
                    rule[key] = s[key].clone();
                }
            }
            rule
        })
        .collect();
    Some(json!({
        "defaultAction": profile["defaultAction"],
        "defaultErrnoRet": profile["defaultErrnoRet"],
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls
    }))
}

#[test]
fn podman_default_profile_compiles_and_blocks() {
    if !have_busybox() || cfg!(not(target_arch = "x86_64")) {
        return;
    }
    let Some(profile) = podman_default_profile() else {
        return;
    };
    // The process holds CAP_SYS_CHROOT but gets the profile of a process without it, whose
    // chroot rule returns EPERM: only the filter can make chroot fail here.
    let chroot = json!(["CAP_SYS_CHROOT"]);
    let process = json!({"noNewPrivileges": true, "capabilities": {"bounding": chroot, "effective": chroot, "permitted": chroot}});
    let started = std::time::Instant::now();
    let p = plan(process.clone(), Some(json!({"seccomp": profile}))).expect("plan");
    eprintln!("compiling podman's profile took {:?}", started.elapsed());
    let script = "echo ok; chroot / /bin/busybox echo chrooted";
    let out = run(p, &["sh", "-c", script]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    // The control: the same process without the filter may chroot.
    let out = run(plan(process, None).expect("plan"), &["sh", "-c", script]);
    assert_eq!(stdout(&out), "ok\nchrooted\n");
}

/// Where the kernel has no x32 (this host's), podman's default profile is compiled without its
/// x32 section (a third of the instructions) and the filter answers x32 syscalls ENOSYS, as
/// the kernel would; native syscalls are judged as before.
#[test]
fn x32_left_out_where_the_kernel_has_none() {
    if !have_busybox() || cfg!(not(target_arch = "x86_64")) {
        return;
    }
    let Some(profile) = podman_default_profile() else {
        return;
    };
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(profile.clone()).unwrap();
    let here = super::seccomp::SeccompPlan::new(&s, None, true).unwrap();
    let elsewhere = super::seccomp::SeccompPlan::new(&s, None, false).unwrap();
    if super::seccomp_x32::kernel_runs_x32() {
        eprintln!("this kernel runs x32 syscalls: the filter keeps its x32 section");
        assert_eq!(here.instructions(), elsewhere.instructions());
        return;
    }
    assert!(
        here.instructions() * 4 < elsewhere.instructions() * 3,
        "{} instructions here, {} for another kernel",
        here.instructions(),
        elsewhere.instructions()
    );
    let p = plan(json!({}), Some(json!({"seccomp": profile}))).expect("plan");
    echo_ok_after(p, || {
        let errno = || std::io::Error::last_os_error().raw_os_error();
        // SAFETY: getpid, natively and through the x32 entry, and chroot of a static path:
        // nothing of this process's memory is written.
        unsafe {
            if libc::syscall(0x4000_0000 | libc::SYS_getpid) != -1 || errno() != Some(libc::ENOSYS)
            {
                die("an x32 getpid did not fail with ENOSYS\n", 91);
            }
            if libc::syscall(libc::SYS_getpid) != libc::c_long::from(libc::getpid()) {
                die("getpid failed\n", 92);
            }
            // A native syscall the profile refuses still gets its errno: EPERM for chroot.
            if libc::chroot(c"/".as_ptr()) != -1 || errno() != Some(libc::EPERM) {
                die("chroot did not fail with EPERM\n", 93);
            }
        }
    });
}

#[test]
fn runc_spec_default_config_applies() {
    if !have_busybox() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hull-runc-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let made = Command::new("runc").arg("spec").current_dir(&dir).status();
    let config = std::fs::read_to_string(dir.join("config.json"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let (Ok(s), Ok(config)) = (made, config) else {
        hull_testkit::skip!("runc is missing (its `runc spec` is the reference config)");
    };
    assert!(s.success());
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&config).expect("config.json");
    let p = SecurityPlan::new(
        spec.process().as_ref().expect("process"),
        spec.linux().as_ref(),
        PlanOptions::default(),
    )
    .expect("plan");
    assert_eq!(p.warnings().len(), 1, "{:?}", p.warnings());
    let out = stdout(&run(p, &["sh", "-c", "cat /proc/self/status; ulimit -n"]));
    let caps = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    assert_eq!(status_field(&out, "CapBnd"), caps);
    assert_eq!(status_field(&out, "CapEff"), caps);
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(out.lines().last(), Some("1024"));
}
