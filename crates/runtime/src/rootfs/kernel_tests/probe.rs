//! Stands in for the process code in the rootfs tests: in a child forked from the test (so
//! single-threaded), builds the container's root file system of a bundle in private namespaces
//! and execs its process.
//!
//! Flags: [--no-pivot] [--userns-devices] [--userns] [--only-unified] [--fake-cgroup DIR:CTRL,CTRL]
//! --userns runs the container in a user namespace mapping 0..65536 to host 100000..165536,
//! with the idmapped trees opened before, in the host user namespace, as the process code does.
//! --only-unified shows the container only the cgroup2 hierarchy (a pure v2 host);
//! --fake-cgroup shows, instead of the host's, one v1 hierarchy whose "mount point" is the
//! plain directory DIR.
//! HULL_PROBE_TIMING=1 prints the time of each phase to stderr.
//! Exit 2 with "error: ..." when RootfsPlan::new refuses the config, 3 when a later phase fails.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{execvpe, fork, ForkResult};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::rootfs::{CgroupMount, RootfsError, RootfsOptions, RootfsPlan};

/// Runs the probe on `bundle` with `flags`; its output as a command's.
pub fn run(bundle: &Path, flags: &[&str]) -> Output {
    let bundle = bundle.to_path_buf();
    let args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let timing = std::env::var_os("HULL_PROBE_TIMING").is_some();
    let mut cmd = Command::new("/bin/busybox");
    // SAFETY: the closure runs in the child forked from the (multi-threaded) test and never
    // returns: it uses no lock another thread could hold (no std stdio, no environment), only
    // syscalls (close_range takes integers only) and glibc's fork-safe malloc, and leaves with
    // _exit.
    unsafe {
        cmd.pre_exec(move || {
            // Without std's exec-status pipe, spawn returns at once and the output is drained
            // while the probe runs.
            libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0);
            probe(&bundle, &args, timing)
        });
    }
    cmd.output().expect("fork the probe")
}

fn probe(bundle: &Path, args: &[String], timing: bool) -> ! {
    let spec = match Spec::load(bundle.join("config.json")) {
        Ok(s) => s,
        Err(e) => fail(2, &format!("config.json: {e}")),
    };
    let namespaces: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .filter(|n| n.path().is_none())
        .map(|n| n.typ())
        .collect();
    let opts = RootfsOptions {
        no_pivot: args.iter().any(|a| a == "--no-pivot"),
        user_namespace: args
            .iter()
            .any(|a| a == "--userns-devices" || a == "--userns"),
        cgroup_namespace: namespaces.contains(&LinuxNamespaceType::Cgroup),
        cgroups: cgroups(args),
        ..RootfsOptions::default()
    };
    let plan = RootfsPlan::new(&spec, bundle, opts).unwrap_or_else(|e| fail(2, &e.to_string()));
    let mut flags = CloneFlags::CLONE_NEWNS;
    for (t, f) in [
        (LinuxNamespaceType::Pid, CloneFlags::CLONE_NEWPID),
        (LinuxNamespaceType::Ipc, CloneFlags::CLONE_NEWIPC),
        (LinuxNamespaceType::Uts, CloneFlags::CLONE_NEWUTS),
        (LinuxNamespaceType::Network, CloneFlags::CLONE_NEWNET),
        (LinuxNamespaceType::Cgroup, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if namespaces.contains(&t) {
            flags |= f;
        }
    }
    if args.iter().any(|a| a == "--userns") {
        plan.open_idmap_sources()
            .unwrap_or_else(|e| fail(3, &format!("open_idmap_sources: {e}")));
        in_user_namespace(|| start(&plan, &spec, flags, timing));
    }
    start(&plan, &spec, flags, timing)
}

/// Unshare the namespaces, fork the container process (pid 1 of a new pid namespace) and exit
/// with its status.
fn start(plan: &RootfsPlan, spec: &Spec, flags: CloneFlags, timing: bool) -> ! {
    unshare(flags).unwrap_or_else(|e| fail(3, &format!("unshare: {e}")));
    // SAFETY: this process is single-threaded (a forked child of the test).
    match unsafe { fork() }.unwrap_or_else(|e| fail(3, &format!("fork: {e}"))) {
        ForkResult::Child => container(plan, spec, timing),
        ForkResult::Parent { child } => wait_exit(child),
    }
}

fn wait_exit(child: nix::unistd::Pid) -> ! {
    match waitpid(child, None) {
        Ok(WaitStatus::Exited(_, code)) => leave(code),
        other => fail(3, &format!("container process: {other:?}")),
    }
}

/// Run `f` in a child that is root of a new user namespace (0..65536 -> 100000..).
fn in_user_namespace(f: impl FnOnce()) -> ! {
    let (ready_r, ready_w) = nix::unistd::pipe().expect("pipe");
    let (go_r, go_w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: this process is single-threaded (a forked child of the test).
    match unsafe { fork() }.unwrap_or_else(|e| fail(3, &format!("fork: {e}"))) {
        ForkResult::Child => {
            drop((ready_r, go_w));
            unshare(CloneFlags::CLONE_NEWUSER)
                .unwrap_or_else(|e| fail(3, &format!("unshare user: {e}")));
            nix::unistd::write(&ready_w, b"1").expect("write");
            let mut b = [0u8; 1];
            nix::unistd::read(&go_r, &mut b).expect("read");
            let root_g = nix::unistd::Gid::from_raw(0);
            let root_u = nix::unistd::Uid::from_raw(0);
            nix::unistd::setresgid(root_g, root_g, root_g).expect("setresgid");
            nix::unistd::setresuid(root_u, root_u, root_u).expect("setresuid");
            f();
            unreachable!("the container process exits")
        }
        ForkResult::Parent { child } => {
            drop((ready_w, go_r));
            let mut b = [0u8; 1];
            nix::unistd::read(&ready_r, &mut b).expect("read");
            for map in ["uid_map", "gid_map"] {
                std::fs::write(format!("/proc/{child}/{map}"), "0 100000 65536\n")
                    .unwrap_or_else(|e| fail(3, &format!("write {map}: {e}")));
            }
            nix::unistd::write(&go_w, b"1").expect("write");
            wait_exit(child)
        }
    }
}

fn container(plan: &RootfsPlan, spec: &Spec, timing: bool) -> ! {
    let step = |name: &str, r: Result<(), RootfsError>| {
        if let Err(e) = r {
            fail(3, &format!("{name}: {e}"));
        }
    };
    let t0 = std::time::Instant::now();
    step("prepare", plan.prepare(None));
    let t1 = std::time::Instant::now();
    step("pivot", plan.pivot());
    let t2 = std::time::Instant::now();
    step("finalize", plan.finalize());
    if timing {
        let us = |a: std::time::Instant, b: std::time::Instant| (b - a).as_micros();
        let t3 = std::time::Instant::now();
        write_stderr(&format!(
            "prepare {}us pivot {}us finalize {}us\n",
            us(t0, t1),
            us(t1, t2),
            us(t2, t3)
        ));
    }
    let process = spec.process().as_ref().expect("process");
    let args: Vec<CString> = process
        .args()
        .iter()
        .flatten()
        .map(|a| CString::new(a.as_str()).expect("arg"))
        .collect();
    let env: Vec<CString> = process
        .env()
        .iter()
        .flatten()
        .map(|a| CString::new(a.as_str()).expect("env"))
        .collect();
    let _ = std::env::set_current_dir(process.cwd());
    let e = execvpe(&args[0], &args, &env).unwrap_err();
    fail(3, &format!("exec {:?}: {e}", args[0]))
}

fn fail(code: i32, msg: &str) -> ! {
    write_stderr(&format!("error: {msg}\n"));
    leave(code)
}

/// Straight to fd 2: std's stderr is behind a lock, and captured per test thread.
fn write_stderr(text: &str) {
    // SAFETY: write(2) reads `text`, which outlives the call.
    unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
}

/// _exit: a forked child of the test must not run the test process's exit handlers.
fn leave(code: i32) -> ! {
    // SAFETY: _exit ends this process at once; nothing of it is needed after.
    unsafe { libc::_exit(code) }
}

fn cgroups(args: &[String]) -> Vec<CgroupMount> {
    let mut all = host_cgroups();
    if args.iter().any(|a| a == "--only-unified") {
        all.retain(|c| c.version == 2);
    }
    if let Some(i) = args.iter().position(|a| a == "--fake-cgroup") {
        let (dir, ctrl) = args[i + 1].split_once(':').expect("DIR:CTRL");
        all.clear();
        all.push(CgroupMount {
            version: 1,
            controllers: ctrl.split(',').map(str::to_string).collect(),
            mount_point: PathBuf::from(dir),
            path: PathBuf::from("/"),
        });
    }
    all
}

/// The hierarchies this process is in, as the process code would get them from hull-cgroups:
/// the container is shown the probe's own cgroups, so the test creates none.
fn host_cgroups() -> Vec<CgroupMount> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let info = hull_sys::mountinfo::read_self().unwrap_or_default();
    let mut out = Vec::new();
    for m in hull_sys::mountinfo::parse(&info).filter_map(Result::ok) {
        let mount_point = m.mount_point().into_owned();
        if !mount_point.starts_with("/sys/fs/cgroup") {
            continue;
        }
        let (version, controllers): (u8, Vec<String>) = match m.fs_type {
            "cgroup2" => (2, Vec::new()),
            "cgroup" => (
                1,
                m.super_opts()
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro") && !o.contains("release_agent") && *o != "xattr"
                    })
                    .map(str::to_string)
                    .collect(),
            ),
            _ => continue,
        };
        let path = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, p) = (f.next()?, f.next()?, f.next()?);
            let set: Vec<&str> = ctrl.split(',').filter(|c| !c.is_empty()).collect();
            let mut want: Vec<&str> = controllers.iter().map(String::as_str).collect();
            let mut have = set.clone();
            want.sort_unstable();
            have.sort_unstable();
            (want == have).then(|| PathBuf::from(p))
        });
        if let Some(path) = path {
            out.push(CgroupMount {
                version,
                controllers,
                mount_point,
                path,
            });
        }
    }
    out
}
