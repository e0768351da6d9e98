//! Operations on a container that exists: its status, `start`, `kill`, `pause`/`resume` and
//! `delete`, each under the container's lock. Refusals read as runc's (callers match on them).

use std::time::{Duration, Instant};

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use hull_sys::pidfd::PidFd;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{write, Pid};
use oci_spec::runtime::{Hooks, Spec};

use crate::hooks;
use crate::oci_state::{OciState, OCI_VERSION};
use crate::procfs;
use crate::state::{ContainerDir, ContainerState, StateError, Status, Store};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroup(#[from] hull_cgroups::CgroupError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error("cannot start an already running container")]
    AlreadyRunning,
    #[error("cannot start a container that has stopped")]
    HasStopped,
    #[error("cannot start a container in the {0} state")]
    CannotStart(Status),
    /// The spec requires `process` for start only: create took the config without one.
    #[error("cannot start container {0}: its config.json has no process")]
    NoProcess(String),
    /// A startContainer hook failed, or the program could not be executed: the container
    /// process reported it and exited.
    #[error("{0}")]
    StartFailed(String),
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped { id: String, status: Status },
    #[error("container not running")]
    NotRunning,
    #[error("container not paused")]
    NotPaused,
    #[error("{what}: {source}")]
    Sys { what: &'static str, source: Errno },
}

/// A locked container and its recorded state.
pub struct Container {
    pub dir: ContainerDir,
    pub state: ContainerState,
    /// config.json as parsed by the create in this process, if it was.
    config: Option<Spec>,
    /// The exec FIFO's write end when that create let the process go on at once
    /// (`CreateOptions::start_when_created`): `start` waits on it instead of writing.
    started: Option<OwnedFd>,
}

impl Container {
    pub fn load(store: &Store, id: &str) -> Result<Container, ContainerError> {
        let dir = store.open(id)?;
        let state = dir.load()?;
        Ok(Container {
            dir,
            state,
            config: None,
            started: None,
        })
    }

    pub fn from_parts(dir: ContainerDir, state: ContainerState) -> Container {
        Container {
            dir,
            state,
            config: None,
            started: None,
        }
    }

    /// With the config the caller created it from, which `start` then uses instead of
    /// parsing config.json again (a large part of `run`'s time between create and start).
    pub fn with_config(mut self, spec: Spec) -> Container {
        self.config = Some(spec);
        self
    }

    /// With the exec FIFO a create that let the process go on at once wrote the start into.
    pub fn with_start_sent(mut self, fifo: Option<OwnedFd>) -> Container {
        self.started = fifo;
        self
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.state.pid)
    }

    pub fn is_alive(&self) -> bool {
        procfs::is_alive(self.state.pid, self.state.pid_start)
    }

    pub fn status(&self) -> Status {
        if !self.is_alive() {
            return Status::Stopped;
        }
        if self.dir.fifo_path().exists() {
            return Status::Created;
        }
        if self.state.cgroup.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.state.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.pid
            },
            status,
            bundle: &self.state.bundle,
            rootfs: &self.state.rootfs,
            created: &self.state.created,
            owner: "",
            annotations: &self.state.annotations,
        }
    }

    pub fn config(&self) -> Result<Spec, ContainerError> {
        Ok(self.dir.load_config()?)
    }

    /// Lets the waiting process go on to execve, then runs the poststart hooks; their failures
    /// are returned as warnings. If the process reports a failure instead (a startContainer
    /// hook, its execve), the container is stopped and that is the error.
    pub fn start(&self) -> Result<Vec<String>, ContainerError> {
        // One this process created (and has held locked since) is still created unless its
        // process died, which the fifo's open finds: its status (/proc, the fifo, the
        // freezer) is read only to name a refusal, off `run`'s path between the process
        // being ready and its execve.
        let created_here = self.config.is_some();
        if !created_here {
            self.refuse_start_unless_created()?;
        }
        // The Spec create parsed in this process, else only what start needs of config.json.
        let (has_process, poststart) = match &self.config {
            Some(spec) => (
                spec.process().is_some(),
                spec.hooks().as_ref().and_then(|h| h.poststart().clone()),
            ),
            None => {
                let lifecycle = self.dir.load_lifecycle()?;
                let poststart = lifecycle.hooks.as_ref().and_then(|h| h.poststart().clone());
                (lifecycle.has_process(), poststart)
            }
        };
        if !has_process {
            return Err(ContainerError::NoProcess(self.state.id.clone()));
        }
        let fifo = self.dir.fifo_path();
        let opened;
        let fd = match &self.started {
            // The process may have executed already: its read end is gone, the wait ends at
            // once. A second start finds the FIFO removed by the first, and is refused as runc
            // refuses it.
            Some(fd) => {
                if std::fs::remove_file(&fifo).is_err() {
                    self.refuse_start_unless_created()?;
                }
                fd
            }
            None => {
                opened = self.send_start(&fifo, created_here)?;
                &opened
            }
        };
        let _ = std::fs::remove_file(&fifo);
        wait_until_executed(fd);
        let failure = read_failure(fd);
        if let Some(msg) = failure {
            // The spec: stop the container. Its process has exited; anything it left goes too.
            self.kill_all_and_wait()?;
            return Err(ContainerError::StartFailed(msg));
        }
        let mut warnings = Vec::new();
        if let Some(list) = &poststart {
            // runtime-spec 1.0.2 to 1.2.1: "the runtime MUST log a warning, but the remaining
            // hooks and lifecycle continue as if the hook had succeeded". (1.3.0 makes it an
            // error that stops the container, as runc does.)
            let state = self.oci_state(Status::Running).to_json()?;
            let failed = hooks::run_all("poststart", list, &state, &hooks::Context::default());
            warnings.extend(failed.iter().map(ToString::to_string));
        }
        Ok(warnings)
    }

    /// Opens the exec FIFO's write end and writes the start into it.
    fn send_start(&self, fifo: &Path, created_here: bool) -> Result<OwnedFd, ContainerError> {
        // Non-blocking: if the process died, there is no reader and this fails with ENXIO
        // instead of hanging.
        let fd = match open(
            fifo,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                if created_here {
                    self.refuse_start_unless_created()?;
                }
                return Err(match e {
                    Errno::ENXIO => ContainerError::NotRunning,
                    source => ContainerError::Sys {
                        what: "opening exec.fifo",
                        source,
                    },
                });
            }
        };
        write(&fd, crate::sync::START_BYTE).map_err(|source| ContainerError::Sys {
            what: "writing exec.fifo",
            source,
        })?;
        Ok(fd)
    }

    /// runc's refusals to start a container that is not in the created state.
    fn refuse_start_unless_created(&self) -> Result<(), ContainerError> {
        match self.status() {
            Status::Created => Ok(()),
            Status::Running => Err(ContainerError::AlreadyRunning),
            Status::Stopped => Err(ContainerError::HasStopped),
            status => Err(ContainerError::CannotStart(status)),
        }
    }

    /// Sends `signal` to the first process, or with `all` to every process of the container.
    pub fn kill(&self, signal: Signal, all: bool) -> Result<(), ContainerError> {
        // Opened before the liveness check, the pidfd pins the process that check sees: a pid
        // recycled after it cannot receive the signal.
        let pidfd = PidFd::open(self.pid()).ok();
        let status = self.status();
        if status == Status::Stopped && !all {
            return Err(ContainerError::NotRunning);
        }
        if all {
            for pid in self.state.cgroup.pids()? {
                let _ = kill(Pid::from_raw(pid), signal);
            }
            // A frozen process acts on SIGKILL only once thawed.
            if status == Status::Paused && signal == Signal::SIGKILL {
                self.state.cgroup.thaw()?;
            }
            return Ok(());
        }
        let pidfd = pidfd.ok_or(ContainerError::NotRunning)?;
        pidfd
            .send_signal(signal)
            .map_err(|source| ContainerError::Sys {
                what: "kill",
                source,
            })?;
        if status == Status::Paused && signal == Signal::SIGKILL {
            self.state.cgroup.thaw()?;
        }
        Ok(())
    }

    pub fn pause(&self) -> Result<(), ContainerError> {
        match self.status() {
            Status::Running | Status::Created => Ok(self.state.cgroup.freeze()?),
            _ => Err(ContainerError::NotRunning),
        }
    }

    pub fn resume(&self) -> Result<(), ContainerError> {
        match self.status() {
            Status::Paused => Ok(self.state.cgroup.thaw()?),
            _ => Err(ContainerError::NotPaused),
        }
    }

    /// Removes a stopped container (or, with `force`, one in any state, killed first): its
    /// processes, cgroup, state directory, then the poststop hooks, whose failures are returned
    /// as warnings. The spec: deleting a container that is not stopped is an error, `created`
    /// included (runc deletes a created one).
    pub fn delete(self, force: bool) -> Result<Vec<String>, ContainerError> {
        let status = self.status();
        if status != Status::Stopped && !force {
            return Err(ContainerError::NotStopped {
                id: self.state.id.clone(),
                status,
            });
        }
        // Even a stopped container may have processes in its cgroup: children its first process
        // left, or, when the runtime died during `create` (no pid recorded), the process that was
        // being set up.
        self.kill_all_and_wait()?;
        self.state.cgroup.remove()?;
        if let Some(shared) = &self.state.shared_rootfs {
            shared.release()?;
        }
        let hooks = self.dir.load_lifecycle().ok().and_then(|c| c.hooks);
        let state_json = self.oci_state(Status::Stopped).to_json()?;
        self.dir.remove()?;
        Ok(run_poststop(hooks.as_ref(), &state_json))
    }

    fn kill_all_and_wait(&self) -> Result<(), ContainerError> {
        if self.is_alive() {
            let _ = kill(self.pid(), Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pause = Duration::from_micros(100);
        loop {
            let pids = self.state.cgroup.pids().unwrap_or_default();
            if pids.is_empty() && !self.is_alive() {
                break;
            }
            // Again each round: a process caught mid-setup may fork after the first kill.
            let _ = self.kill(Signal::SIGKILL, true);
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// Runs every poststop hook of `hooks`; their failures, as warnings (the spec: "the runtime MUST
/// log a warning, but the remaining hooks and lifecycle continue as if the hook had succeeded").
pub fn run_poststop(hooks: Option<&Hooks>, state_json: &[u8]) -> Vec<String> {
    let Some(list) = hooks.and_then(|h| h.poststop().as_ref()) else {
        return Vec::new();
    };
    hooks::run_all("poststop", list, state_json, &hooks::Context::default())
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// What the container process wrote into the FIFO before it exited instead of executing its
/// program (see `init`), read through a new read end of the same pipe: its buffer outlives the
/// process while this write end is open. None once it executed.
fn read_failure(fifo: &OwnedFd) -> Option<String> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let reader = open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = vec![0u8; crate::sync::FIFO_REPORT_MAX];
    let len = loop {
        match nix::unistd::read(&reader, &mut buf) {
            Err(Errno::EINTR) => continue,
            Ok(len) if len > 0 => break len,
            _ => return None,
        }
    };
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// The process holds the FIFO's read end until its execve (close-on-exec) or its death: the write
/// end reports POLLERR once no reader is left. So `start` returns, and poststart hooks run, only
/// after the user's program has replaced the runtime's code (or failed to).
fn wait_until_executed(fifo: &OwnedFd) {
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Parses a signal the way runc does: a name with or without "SIG", or a number.
pub fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}
