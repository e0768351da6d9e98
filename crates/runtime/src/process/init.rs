//! The container's first process, from the clone to the execve of the user's program: it finishes
//! its namespaces, builds its root file system, runs the container's own hooks, locks itself down,
//! and waits on the exec FIFO until `start`.

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
use crate::rootfs::RootfsPlan;
use crate::security::SecurityPlan;
use crate::sync::{Channel, Message, SyncError};
use crate::sys;

/// Everything the child needs, prepared by the runtime before the clone.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub namespaces: &'a NamespacePlan,
    pub rootfs: &'a RootfsPlan,
    pub security: &'a SecurityPlan,
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
    enter_namespaces(ctx)?;
    let state_json = build_root(ctx)?;
    let process = ctx
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| ProcessError::Invalid("process is required".into()))?;
    if process.terminal().unwrap_or(false) {
        handoff::send_terminal(ctx.channel, process, true)?;
    }
    ctx.rootfs.finalize()?;
    let program = Program::prepare(process, ctx.preserve_fds)?;
    handoff::lock_down(ctx.security, ctx.channel)?;
    ctx.channel.send(&Message::Ready)?;
    wait_for_start(ctx.fifo)?;
    let hooks = ctx.spec.hooks().as_ref();
    if let Some(list) = hooks.and_then(|h| h.start_container().as_ref()) {
        hooks::run("startContainer", list, state_json.as_bytes())?;
    }
    Ok(program.exec(&ctx.sigmask)?)
}

/// Joins and creates namespaces, with the runtime mapping ids and placing the process in its
/// cgroup in between; forks once more when a pid namespace applies only to children.
fn enter_namespaces(ctx: &InitContext) -> Result<(), ProcessError> {
    let ns = ctx.namespaces;
    if ns.needs_intermediate() {
        ns.join_and_unshare()?;
    }
    ctx.channel.send(&Message::Created)?;
    ctx.channel.expect_proceed()?;
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
    set_names(ctx.spec)
}

/// Mounts, the runtime's hooks, the container's createContainer hooks, pivot_root. Returns the
/// state JSON the runtime sent for the container's own hooks.
fn build_root(ctx: &InitContext) -> Result<String, ProcessError> {
    ctx.rootfs.prepare()?;
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
        hooks::run("createContainer", list, state_json.as_bytes())?;
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
