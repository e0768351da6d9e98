//! The container's first process, from the clone to the execve of the user's program: it finishes
//! its namespaces, builds its root file system, runs the container's own hooks, locks itself down,
//! and waits on the exec FIFO until `start`. A failure after that (a startContainer hook, the
//! execve) goes back to `start` through the FIFO: the runtime that created the process is gone.

use std::convert::Infallible;
use std::os::fd::{OwnedFd, RawFd};

use nix::sys::signal::SigSet;
use nix::unistd::{
    close, fork, read, sethostname, setresgid, setresuid, setsid, ForkResult, Gid, Uid,
};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::hooks;
use crate::namespaces::NamespacePlan;
use crate::process::error::{sys, ProcessError};
use crate::process::handoff;
use crate::process::program::Program;
use crate::process::stdio::Stdio;
use crate::rootfs::{Prepared, RootfsPlan};
use crate::security::SecurityPlan;
use crate::state::Status;
use crate::sync::{Channel, Message, SyncError};
use crate::sys;

/// Everything the child needs, prepared by the runtime before the clone.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub namespaces: &'a NamespacePlan,
    pub rootfs: &'a RootfsPlan,
    /// None without a `process`: such a container waits for a `start` that refuses it.
    pub security: Option<&'a SecurityPlan>,
    pub channel: &'a Channel,
    /// Descriptors of the runtime's that the child must not hold (the other end of the channel,
    /// the state lock).
    pub close: Vec<RawFd>,
    /// The exec FIFO, opened read-write so that opening it never blocks; `start` writes one byte.
    pub fifo: &'a OwnedFd,
    pub stdio: &'a Stdio,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    pub sigmask: SigSet,
    /// The cgroup whose v1 dirs this process moves itself into once the runtime has made them
    /// (its `Proceed`); None when the runtime moves it.
    pub joins_cgroup: Option<&'a hull_cgroups::Cgroup>,
    /// This process's CPUs before the runtime moved it off its own (`Proceed` says it did).
    pub apart: Option<&'a hull_sys::apart::Apart>,
}

/// Runs in the cloned child; never returns.
pub fn run(ctx: InitContext) -> ! {
    let err = match setup(&ctx) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    let _ = ctx.channel.send(&Message::Error(err.to_string()));
    // SAFETY: _exit ends this child without running the runtime's atexit handlers or flushing
    // buffers it shares, by copy, with its parent.
    unsafe { libc::_exit(1) }
}

fn setup(ctx: &InitContext) -> Result<Infallible, ProcessError> {
    // Until the runtime has put this process in the container's cgroup, nothing else leads a
    // `delete` to it: it dies with the runtime. (A runtime killed before this line closes the
    // channel, and the first message ends this process as well.)
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    // Not dumpable while it holds host resources: other processes of the container cannot ptrace
    // it or open its /proc files (runc's CVE-2016-9962). execve resets this.
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))?;
    for fd in &ctx.close {
        let _ = close(*fd);
    }
    ctx.stdio.install()?;
    let early = enter_namespaces(ctx)?;
    let env = process_env(ctx.spec);
    let state_json = build_root(ctx, &env, early)?;
    let process = ctx.spec.process().as_ref();
    if let Some(process) = process.filter(|p| p.terminal().unwrap_or(false)) {
        handoff::send_terminal(ctx.channel, process, true)?;
    }
    if let Some(process) = process {
        make_cwd(process)?;
    }
    ctx.rootfs.finalize()?;
    let program = match (process, ctx.security) {
        (Some(process), Some(security)) => {
            let program = Program::prepare(process, ctx.preserve_fds)?;
            handoff::lock_down(security, ctx.channel)?;
            Some(program)
        }
        _ => None,
    };
    ctx.channel.send(&Message::Ready)?;
    wait_for_start(ctx.fifo)?;
    let err = match start_program(ctx, program.as_ref(), &state_json, &env) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    report_to_start(ctx.fifo, &err);
    Err(err)
}

/// As runc's init: a cwd the root file system lacks is made (0755), as root and before the
/// root goes read-only. Inside the container's root, so the path resolves there.
fn make_cwd(process: &oci_spec::runtime::Process) -> Result<(), ProcessError> {
    use std::os::unix::fs::DirBuilderExt;
    let cwd = process.cwd();
    if cwd.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .map_err(crate::process::error::io(format!(
            "process.cwd {}: creating it",
            cwd.display()
        )))
}

/// After `start`: the startContainer hooks, then the program.
fn start_program(
    ctx: &InitContext,
    program: Option<&Program>,
    state_json: &str,
    env: &[String],
) -> Result<Infallible, ProcessError> {
    // `start` refuses a config without a process before it writes to the FIFO.
    let program =
        program.ok_or_else(|| ProcessError::Invalid("config.json has no process".into()))?;
    let hooks = ctx.spec.hooks().as_ref();
    if let Some(list) = hooks.and_then(|h| h.start_container().as_ref()) {
        // The spec's status for this point: the program has not run yet.
        let state = with_status(state_json, Status::Created);
        let in_container = hooks::Context {
            env: Some(env),
            cwd: None,
        };
        hooks::run("startContainer", list, state.as_bytes(), &in_container)?;
    }
    Ok(program.exec(&ctx.sigmask)?)
}

/// Tells `start`, which waits for the FIFO's last reader to go, why this process exits
/// instead of executing its program: the message stays in the pipe for it to read.
fn report_to_start(fifo: &OwnedFd, err: &ProcessError) {
    let text = err.to_string();
    let mut end = text.len().min(crate::sync::FIFO_REPORT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let _ = nix::unistd::write(fifo, &text.as_bytes()[..end]);
}

/// The environment a hook run in the container gets when it has none of its own: the
/// process's, as runc's init has it (each name once, the last value winning).
fn process_env(spec: &Spec) -> Vec<String> {
    let env = spec.process().as_ref().and_then(|p| p.env().as_deref());
    crate::process::program::dedup_env(env.unwrap_or_default())
}

/// `state_json` with another status.
fn with_status(state_json: &str, status: Status) -> String {
    match serde_json::from_str::<serde_json::Value>(state_json) {
        Ok(mut value) => {
            value["status"] = serde_json::Value::String(status.to_string());
            value.to_string()
        }
        Err(_) => state_json.to_string(),
    }
}

/// Joins and creates namespaces, with the runtime mapping ids and placing the process in its
/// cgroup in between; forks once more when a pid namespace applies only to children. A process
/// that joins its cgroups itself starts its root meanwhile (returned): it is in all its
/// namespaces but cgroup and time, which mounts do not depend on, and would wait idle while the
/// runtime makes the cgroup dirs.
fn enter_namespaces(ctx: &InitContext) -> Result<Option<Prepared>, ProcessError> {
    let ns = ctx.namespaces;
    if ns.needs_intermediate() {
        ns.join_and_unshare()?;
    }
    ns.unshare_deferred()?;
    let early = match ctx.joins_cgroup {
        Some(_) => ctx.rootfs.prepare_before_cgroups()?,
        None => None,
    };
    // Before the cgroup join, which sets the CPUs of a cpuset on top of these.
    let restored = ctx
        .apart
        .is_some_and(hull_sys::apart::Apart::restore_if_moved);
    ctx.channel.send(&Message::Created)?;
    ctx.channel.expect_proceed()?;
    if let (Some(apart), false) = (ctx.apart, restored) {
        apart.restore();
    }
    if let Some(cgroup) = ctx.joins_cgroup {
        cgroup.join_v1()?;
    }
    // In the cgroup now, where `delete` finds it; the runtime's normal exit after `create` must
    // not kill it.
    nix::sys::prctl::set_pdeathsig(None).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    if ns.needs_intermediate() && ns.intermediate_forks() {
        // SAFETY: this process is single-threaded (it is a fresh clone of a single-threaded runtime).
        match unsafe { fork() }.map_err(sys("fork into the pid namespace"))? {
            ForkResult::Parent { child } => {
                let _ = ctx.channel.send(&Message::Pid(child.as_raw()));
                // SAFETY: as in `run`, leave without running shared exit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Child => {}
        }
    }
    let time_offsets = ns.open_time_offsets()?;
    if ns.is_new(LinuxNamespaceType::User) {
        // The creator of a user namespace has all capabilities in it but no mapped ids: become
        // root of it, as the rest of the setup expects.
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(sys("setresgid(0)"))?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(sys("setresuid(0)"))?;
    }
    ns.finish(time_offsets)?;
    setsid().map_err(sys("setsid"))?;
    if !ctx.no_new_keyring {
        match sys::keyring::join_new_session_keyring(&format!("_ses.{}", ctx.id)) {
            // Kernels without keyrings, or user namespaces over quota: runc carries on too.
            Ok(()) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EDQUOT) => {}
            Err(err) => return Err(sys("joining a new session keyring")(err)),
        }
    }
    set_names(ctx.spec)?;
    Ok(early)
}

/// Mounts, the runtime's hooks, the container's createContainer hooks, pivot_root. Returns the
/// state JSON the runtime sent for the container's own hooks.
fn build_root(
    ctx: &InitContext,
    env: &[String],
    early: Option<Prepared>,
) -> Result<String, ProcessError> {
    ctx.rootfs.prepare(early)?;
    if !hooks::setup_sync(ctx.spec) {
        // No hook needs this point or the state (the runtime knows it too and does not wait).
        ctx.rootfs.pivot()?;
        return Ok(String::new());
    }
    ctx.channel.send(&Message::CreateRuntimeHooks)?;
    let state_json = match ctx.channel.recv()?.0 {
        Message::ProceedWithState(json) => json,
        got => {
            return Err(SyncError::Unexpected {
                expected: "ProceedWithState",
                got,
            }
            .into())
        }
    };
    let hooks = ctx.spec.hooks().as_ref();
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        // runc's init runs them in the root file system, before pivot_root.
        let in_container = hooks::Context {
            env: Some(env),
            cwd: Some(ctx.rootfs.rootfs()),
        };
        hooks::run(
            "createContainer",
            list,
            state_json.as_bytes(),
            &in_container,
        )?;
    }
    ctx.rootfs.pivot()?;
    Ok(state_json)
}

fn set_names(spec: &Spec) -> Result<(), ProcessError> {
    if let Some(name) = spec.hostname() {
        sethostname(name).map_err(sys("sethostname"))?;
    }
    if let Some(name) = spec.domainname() {
        sys::uts::set_domainname(name).map_err(sys("setdomainname"))?;
    }
    Ok(())
}

/// Blocks until `start` writes its byte into the FIFO.
fn wait_for_start(fifo: &OwnedFd) -> Result<(), ProcessError> {
    let mut byte = [0u8; 1];
    loop {
        match read(fifo, &mut byte) {
            Ok(1) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {
                return Err(ProcessError::Invalid(
                    "exec fifo closed before start".into(),
                ))
            }
            Err(err) => return Err(sys("reading the exec fifo")(err)),
        }
    }
}
