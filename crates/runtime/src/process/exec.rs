//! `exec`: a new process in a running container. The runtime joins the container's pid namespace
//! for its children, clones once, and the child joins the other namespaces of the container's
//! first process, enters its cgroup, and locks itself down with the container's seccomp profile
//! before execve.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::sched::{setns, CloneFlags, CpuSet};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{setsid, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::container::Container;
use crate::namespaces::{clone_flag, proc_name};
use crate::process::error::{io, sys, ProcessError};
use crate::process::handoff::{self, required, route_console};
use crate::process::placing::Placing;
use crate::process::program::Program;
use crate::process::stdio::{Console, Stdio};
use crate::security::{PlanOptions, SecurityPlan};
use crate::state::Status;
use crate::sync::{Channel, Message};
use crate::sys::clone::Forked;

/// A new process in a running container.
#[derive(Debug)]
pub struct ExecOptions {
    /// The whole process, as config.json's `process` object.
    pub process: Process,
    /// Stdio of a process without a terminal.
    pub stdio: Stdio,
    /// Where the pty master goes when `process.terminal` is set; None refuses a terminal.
    pub console: Option<Console>,
    /// Write the pid of the process here (by rename).
    pub pid_file: Option<PathBuf>,
    /// Pass the caller's descriptors 3 .. 3+N on to the process.
    pub preserve_fds: u16,
    /// Exec in a paused container too (runc's `--ignore-paused`): the process joins the frozen
    /// cgroup and is frozen with the rest, so the exec returns once the container is resumed.
    pub ignore_paused: bool,
    /// runc's `--cgroup`: existing cgroups under the container's that the process joins
    /// instead of the container's own, each `CONTROLLER[,CONTROLLER...]:PATH`, or one `PATH`
    /// for every hierarchy.
    pub sub_cgroups: Vec<String>,
}

impl ExecOptions {
    /// `process`, with the caller's stdio and no terminal.
    pub fn new(process: Process) -> ExecOptions {
        ExecOptions {
            process,
            stdio: Stdio::Inherit,
            console: None,
            pid_file: None,
            preserve_fds: 0,
            ignore_paused: false,
            sub_cgroups: Vec::new(),
        }
    }
}

/// A process started in a container.
#[derive(Debug)]
pub struct Executed {
    /// In the caller's pid namespace.
    pub pid: i32,
    /// The pty master, for a terminal with [`Console::Return`].
    pub console: Option<OwnedFd>,
}

/// Namespaces of the container's first process, opened before the clone.
struct Target {
    pid_ns: Option<File>,
    /// In join order: user first (it grants the rights for the rest), mount last.
    others: Vec<(LinuxNamespaceType, File)>,
    cgroup_ns: Option<File>,
    /// The first process's root, when the container has no mount namespace to give it (its
    /// rootfs is a chroot in the caller's).
    root: Option<File>,
}

/// `sigmask`: the signal mask the program starts with.
pub fn exec(
    container: &Container,
    opts: &ExecOptions,
    sigmask: SigSet,
) -> Result<Executed, ProcessError> {
    // runc's words. (Under the container's lock: only this process could change the status.)
    let status = container.status();
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => {
            return Err(ProcessError::Invalid(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ))
        }
        status => {
            return Err(ProcessError::Invalid(format!(
                "cannot exec in a {status} container"
            )))
        }
    }
    let cgroups = cgroup_targets(&container.state.cgroup, &opts.sub_cgroups)?;
    let spec = container.dir.load_config()?;
    let terminal = opts.process.terminal().unwrap_or(false);
    crate::process::stdio::check(terminal, &opts.stdio, opts.console.as_ref())?;
    let target = open_namespaces(&spec, container.state.pid)?;
    let user_ns = target
        .others
        .iter()
        .any(|(k, _)| *k == LinuxNamespaceType::User);
    let security = SecurityPlan::new(
        &opts.process,
        spec.linux().as_ref(),
        PlanOptions {
            in_user_namespace: user_ns,
            extra_caps: Vec::new(),
            seccomp_cache: container.dir.seccomp_cache(),
        },
    )?;
    let affinity = match opts.process.exec_cpu_affinity() {
        Some(a) => crate::security::parse_exec_cpu_affinity(a)?,
        None => (None, None),
    };
    let program_args = opts.process.args().clone().unwrap_or_default();
    if program_args.is_empty() {
        return Err(ProcessError::Invalid("exec: args must not be empty".into()));
    }
    if let Some(pid_ns) = &target.pid_ns {
        // Only this process's future children enter it; the runtime itself stays where it is.
        setns(pid_ns.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(sys("joining the pid namespace"))?;
    }
    let paused = status == Status::Paused;
    let cgroup = &container.state.cgroup;
    // The process moves itself into the container's cgroups, as `create`'s does
    // (`crate::process::placing`), first thing, while it still sees the host's cgroup mounts;
    // not into sub-cgroups (runc's --cgroup), nor into a frozen container (it would freeze
    // before it could report, this runtime waiting for it under the container's lock), nor
    // with an initial CPU affinity (set before any cgroup join, the cgroup's cpuset after).
    let mut placing = if opts.sub_cgroups.is_empty() && !paused && affinity.0.is_none() {
        Placing::Itself { born_in_v2: false }
    } else {
        Placing::ByRuntime
    };
    let v2_dir = match placing {
        Placing::Itself { .. } => cgroup.open_v2_dir()?,
        Placing::ByRuntime => None,
    };
    let (parent, child) = Channel::pair()?;
    let forked = placing.clone_process(CloneFlags::empty(), v2_dir.as_ref().map(AsFd::as_fd));
    drop(v2_dir);
    let pid = match forked.map_err(sys("clone"))? {
        Forked::Child => child_main(
            Child {
                target: &target,
                process: &opts.process,
                security: &security,
                channel: &child,
                affinity: &affinity,
                close: [parent.raw_fd(), container.dir.lock_fd()],
                sigmask,
                joins_cgroup: placing.joined_by_child(cgroup),
            },
            opts,
        ),
        Forked::Parent(pid) => pid,
    };
    drop(child);
    match guide(
        container,
        &spec,
        &parent,
        pid,
        opts,
        (placing, &cgroups),
        paused,
    ) {
        Ok(console) => {
            if let Some(path) = &opts.pid_file {
                crate::process::create::write_pid_file(path, pid.as_raw())?;
            }
            Ok(Executed {
                pid: pid.as_raw(),
                console,
            })
        }
        Err(err) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(err)
        }
    }
}

fn open_namespaces(spec: &Spec, pid: i32) -> Result<Target, ProcessError> {
    let mut target = Target {
        pid_ns: None,
        others: Vec::new(),
        cgroup_ns: None,
        root: None,
    };
    let private: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|list| list.iter().map(|ns| ns.typ()).collect())
        .unwrap_or_default();
    let order = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Mount,
    ];
    for kind in order.into_iter().filter(|k| private.contains(k)) {
        let path = crate::procfs::ns_path(pid, proc_name(kind));
        let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
        match kind {
            LinuxNamespaceType::Pid => target.pid_ns = Some(file),
            LinuxNamespaceType::Cgroup => target.cgroup_ns = Some(file),
            _ => target.others.push((kind, file)),
        }
    }
    if !private.contains(&LinuxNamespaceType::Mount) {
        let path = PathBuf::from(format!("/proc/{pid}/root"));
        let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
        target.root = Some(file);
    }
    Ok(target)
}

/// Where the process goes in each of the container's hierarchies: its own cgroup, or the
/// sub-cgroup `--cgroup` names there. runc's rules: one PATH alone applies to every hierarchy;
/// else each names its controllers, each controller at most once; PATH is taken relative to the
/// container's cgroup and must stay under it.
fn cgroup_targets(
    cgroup: &hull_cgroups::Cgroup,
    args: &[String],
) -> Result<Vec<PathBuf>, ProcessError> {
    let bad = |arg: &str, why: &str| {
        ProcessError::Invalid(format!("invalid --cgroup argument: {arg}{why}"))
    };
    let hierarchies = cgroup.hierarchies();
    let mut targets: Vec<PathBuf> = hierarchies.iter().map(|h| h.path.clone()).collect();
    let mut given: Vec<Option<(&str, PathBuf)>> = vec![None; hierarchies.len()];
    let mut seen = std::collections::HashSet::new();
    for arg in args {
        let (controllers, sub) = match arg.split_once(':') {
            Some((_, rest)) if rest.contains(':') => return Err(bad(arg, "")),
            Some((controllers, sub)) => (Some(controllers), sub),
            None if args.len() != 1 => return Err(bad(arg, " (missing <controller>: prefix)")),
            None => (None, arg.as_str()),
        };
        let sub = sub_path(sub).ok_or_else(|| {
            ProcessError::Invalid(format!("--cgroup: {sub} is not a sub cgroup path"))
        })?;
        let Some(controllers) = controllers else {
            for target in &mut targets {
                *target = target.join(&sub);
            }
            continue;
        };
        for controller in controllers.split(',') {
            if controller.is_empty() {
                return Err(bad(arg, " (empty <controller> prefix)"));
            }
            if !seen.insert(controller) {
                return Err(ProcessError::Invalid(format!(
                    "invalid --cgroup argument(s): controller {controller} specified multiple times"
                )));
            }
            let at = hierarchies
                .iter()
                .position(|h| h.controllers.iter().any(|c| c == controller))
                .ok_or_else(|| {
                    ProcessError::Invalid(format!(
                        "--cgroup: unknown controller {controller} in the container's cgroups"
                    ))
                })?;
            // Controllers mounted together (cpu,cpuacct) are one cgroup: one path for both.
            if let Some((name, other)) = &given[at] {
                if *other != sub {
                    return Err(ProcessError::Invalid(format!(
                        "--cgroup: controllers {name} and {controller} share a hierarchy but were given different paths"
                    )));
                }
            }
            given[at] = Some((controller, sub.clone()));
            targets[at] = hierarchies[at].path.join(&sub);
        }
    }
    Ok(targets)
}

/// `sub` as a path relative to the container's cgroup, cleaned as Go's path.Join does; None
/// if it leaves it.
fn sub_path(sub: &str) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for part in Path::new(sub).components() {
        match part {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                if !clean.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(clean)
}

/// Places the child in its cgroups, passes its terminal and seccomp listener on, and waits
/// until it has executed (its end of the channel closes on exec) or failed.
fn guide(
    container: &Container,
    spec: &Spec,
    channel: &Channel,
    pid: Pid,
    opts: &ExecOptions,
    (placing, cgroups): (Placing, &[PathBuf]),
    paused: bool,
) -> Result<Option<OwnedFd>, ProcessError> {
    match channel.recv()?.0 {
        Message::Created => {}
        Message::Error(msg) => return Err(ProcessError::Child(msg)),
        got => {
            return Err(crate::sync::SyncError::Unexpected {
                expected: "Created",
                got,
            }
            .into())
        }
    }
    if opts.sub_cgroups.is_empty() {
        placing.place(&container.state.cgroup, pid.as_raw())?;
    } else {
        for path in cgroups {
            std::fs::write(path.join("cgroup.procs"), pid.to_string())
                .map_err(io(format!("joining cgroup {}", path.display())))?;
        }
    }
    // As runc: an exec'd process gets the container's oomScoreAdj, not the one of whoever
    // runs the runtime (containerd's shim, whose score kubelet's is not).
    if let Some(score) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        crate::security::set_oom_score_adj(pid.as_raw(), score)?;
    }
    channel.send(&Message::Proceed)?;
    if paused {
        // `--ignore-paused`: the process is frozen with the container from its cgroup join on,
        // until a `resume`, which needs the container's lock. runc's exec waits for it too.
        return container
            .dir
            .without_lock(|| await_exec(container, spec, channel, pid, opts))?;
    }
    await_exec(container, spec, channel, pid, opts)
}

/// Takes the terminal and seccomp listener as they come, until the process has executed.
fn await_exec(
    container: &Container,
    spec: &Spec,
    channel: &Channel,
    pid: Pid,
    opts: &ExecOptions,
) -> Result<Option<OwnedFd>, ProcessError> {
    let mut console = None;
    loop {
        let (message, fd) = match channel.recv() {
            Err(crate::sync::SyncError::Closed) => return Ok(console),
            other => other?,
        };
        match message {
            Message::Console => {
                console = route_console(Console::socket(opts.console.as_ref()), fd)?
            }
            Message::SeccompListener => {
                let listener = required(fd, "seccomp listener")?;
                let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
                if let Some(path) = seccomp.and_then(|s| s.listener_path().as_ref()) {
                    let state = serde_json::to_value(container.oci_state(Status::Running))
                        .map_err(crate::state::encode("OCI state"))?;
                    crate::security::send_seccomp_listener(
                        path,
                        listener.as_fd(),
                        pid.as_raw(),
                        seccomp.and_then(|s| s.listener_metadata().as_deref()),
                        &state,
                    )?;
                }
            }
            // Ready comes right before execve; the close of the channel confirms it.
            Message::Ready => {}
            Message::Error(msg) => return Err(ProcessError::Child(msg)),
            got => {
                return Err(crate::sync::SyncError::Unexpected {
                    expected: "Ready",
                    got,
                }
                .into())
            }
        }
    }
}

/// What the cloned child works with.
struct Child<'a> {
    target: &'a Target,
    process: &'a Process,
    security: &'a SecurityPlan,
    channel: &'a Channel,
    /// execCPUAffinity: (initial, before the cgroup join; final, after it).
    affinity: &'a (Option<CpuSet>, Option<CpuSet>),
    /// The runtime's descriptors the child must not keep (its channel end, the state lock).
    close: [RawFd; 2],
    sigmask: SigSet,
    /// The container's cgroup, when the child moves itself into its v1 dirs.
    joins_cgroup: Option<&'a hull_cgroups::Cgroup>,
}

fn child_main(child: Child, opts: &ExecOptions) -> ! {
    for fd in child.close {
        let _ = nix::unistd::close(fd);
    }
    let err = match child_setup(&child, opts) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    let _ = child.channel.send(&Message::Error(err.to_string()));
    // SAFETY: _exit leaves this child without running handlers it shares, by copy, with the runtime.
    unsafe { libc::_exit(127) }
}

fn child_setup(
    child: &Child,
    opts: &ExecOptions,
) -> Result<std::convert::Infallible, ProcessError> {
    let Child {
        target,
        process,
        security,
        channel,
        affinity,
        ..
    } = *child;
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))?;
    opts.stdio.install()?;
    if let Some(cgroup) = child.joins_cgroup {
        cgroup.join_v1()?;
    }
    for (kind, file) in &target.others {
        setns(file.as_fd(), clone_flag(*kind))
            .map_err(sys(format!("joining the {} namespace", proc_name(*kind))))?;
    }
    if let Some(root) = &target.root {
        nix::unistd::fchdir(root).map_err(sys("chdir to the container's root"))?;
        nix::unistd::chroot(".").map_err(sys("chroot to the container's root"))?;
    }
    if let Some(cpus) = &affinity.0 {
        crate::security::set_cpu_affinity(0, cpus)?;
    }
    channel.send(&Message::Created)?;
    channel.expect_proceed()?;
    // The cgroup's cpuset may have changed the affinity: the final one comes after the join.
    if let Some(cpus) = &affinity.1 {
        crate::security::set_cpu_affinity(0, cpus)?;
    }
    if let Some(cgroup_ns) = &target.cgroup_ns {
        setns(cgroup_ns.as_fd(), CloneFlags::CLONE_NEWCGROUP)
            .map_err(sys("joining the cgroup namespace"))?;
    }
    if process.terminal().unwrap_or(false) {
        setsid().map_err(sys("setsid"))?;
        handoff::send_terminal(channel, process, false)?;
    }
    let program = Program::prepare(process, i32::from(opts.preserve_fds))?;
    handoff::lock_down(security, channel)?;
    channel.send(&Message::Ready)?;
    Ok(program.exec(&child.sigmask)?)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::{cgroup_targets, sub_path};

    /// A container's cgroup on a hybrid host: cpu,cpuacct and pids hierarchies, and cgroup2.
    fn hybrid() -> hull_cgroups::Cgroup {
        let dir = |controllers: &[&str], version: u8, mount: &str| {
            json!({
                "version": version,
                "controllers": controllers,
                "mount_point": mount,
                "base": mount,
                "path": format!("{mount}/c1"),
            })
        };
        serde_json::from_value(json!({
            "layout": "Hybrid",
            "dirs": [
                dir(&["cpu", "cpuacct"], 1, "/sys/fs/cgroup/cpu,cpuacct"),
                dir(&["pids"], 1, "/sys/fs/cgroup/pids"),
                dir(&[], 2, "/sys/fs/cgroup/unified"),
            ],
            "v2_controllers": [],
        }))
        .unwrap()
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn no_argument_is_the_containers_own_cgroup() {
        assert_eq!(
            cgroup_targets(&hybrid(), &[]).unwrap(),
            paths(&[
                "/sys/fs/cgroup/cpu,cpuacct/c1",
                "/sys/fs/cgroup/pids/c1",
                "/sys/fs/cgroup/unified/c1"
            ])
        );
    }

    #[test]
    fn a_path_alone_applies_to_every_hierarchy() {
        assert_eq!(
            cgroup_targets(&hybrid(), &args(&["/sub/x"])).unwrap(),
            paths(&[
                "/sys/fs/cgroup/cpu,cpuacct/c1/sub/x",
                "/sys/fs/cgroup/pids/c1/sub/x",
                "/sys/fs/cgroup/unified/c1/sub/x"
            ])
        );
    }

    #[test]
    fn controllers_name_their_hierarchies_the_rest_stay() {
        assert_eq!(
            cgroup_targets(&hybrid(), &args(&["pids:p", "cpu,cpuacct:c"])).unwrap(),
            paths(&[
                "/sys/fs/cgroup/cpu,cpuacct/c1/c",
                "/sys/fs/cgroup/pids/c1/p",
                "/sys/fs/cgroup/unified/c1"
            ])
        );
    }

    #[test]
    fn runcs_refusals() {
        let err = |list: &[&str]| {
            cgroup_targets(&hybrid(), &args(list))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["a", "b"]).contains("missing <controller>: prefix"));
        assert!(err(&[":x"]).contains("empty <controller> prefix"));
        assert!(err(&["pids:a:b"]).contains("invalid --cgroup argument"));
        assert!(err(&["pids:a", "pids:b"]).contains("specified multiple times"));
        assert!(err(&["cpu,cpuacct:c", "cpu:c"]).contains("specified multiple times"));
        assert!(err(&["cpu:a", "cpuacct:b"]).contains("share a hierarchy"));
        assert!(err(&["memory:a"]).contains("unknown controller memory"));
        assert!(err(&["../escape"]).contains("is not a sub cgroup path"));
        assert!(err(&["pids:a/../../b"]).contains("is not a sub cgroup path"));
    }

    #[test]
    fn sub_paths_are_cleaned_like_go_path_join() {
        assert_eq!(sub_path("a/./b/../c"), Some(PathBuf::from("a/c")));
        assert_eq!(sub_path("/abs"), Some(PathBuf::from("abs")));
        assert_eq!(sub_path(".."), None);
        assert_eq!(sub_path(""), Some(PathBuf::new()));
    }
}
