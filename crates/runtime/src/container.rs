//! Operations on a container that exists: its status, `start`, `kill`, `pause`/`resume` and
//! `delete`, each under the container's lock.

use std::time::{Duration, Instant};

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{write, Pid};
use oci_spec::runtime::Spec;

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
    #[error("cannot {op} a container that is {status}")]
    InvalidState { op: &'static str, status: Status },
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped { id: String, status: Status },
    #[error("container not running")]
    NotRunning,
    #[error("{what}: {source}")]
    Sys { what: &'static str, source: Errno },
}

/// A locked container and its recorded state.
pub struct Container {
    pub dir: ContainerDir,
    pub state: ContainerState,
}

impl Container {
    pub fn load(store: &Store, id: &str) -> Result<Container, ContainerError> {
        let dir = store.open(id)?;
        let state = dir.load()?;
        Ok(Container { dir, state })
    }

    pub fn from_parts(dir: ContainerDir, state: ContainerState) -> Container {
        Container { dir, state }
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

    /// Lets the waiting process go on to execve, then runs the poststart hooks.
    pub fn start(&self) -> Result<(), ContainerError> {
        let status = self.status();
        if status != Status::Created {
            return Err(ContainerError::InvalidState {
                op: "start",
                status,
            });
        }
        let fifo = self.dir.fifo_path();
        // Non-blocking: if the process died, there is no reader and this fails with ENXIO
        // instead of hanging.
        let fd = open(
            &fifo,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENXIO => ContainerError::NotRunning,
            source => ContainerError::Sys {
                what: "opening exec.fifo",
                source,
            },
        })?;
        write(&fd, b"0").map_err(|source| ContainerError::Sys {
            what: "writing exec.fifo",
            source,
        })?;
        let _ = std::fs::remove_file(&fifo);
        wait_until_executed(&fd);
        drop(fd);
        let spec = self.config()?;
        if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()) {
            let state = self.oci_state(Status::Running).to_json()?;
            hooks::run("poststart", list, &state)?;
        }
        Ok(())
    }

    /// Sends `signal` to the first process, or with `all` to every process of the container.
    pub fn kill(&self, signal: Signal, all: bool) -> Result<(), ContainerError> {
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
        kill(self.pid(), signal).map_err(|source| ContainerError::Sys {
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
            status => Err(ContainerError::InvalidState {
                op: "pause",
                status,
            }),
        }
    }

    pub fn resume(&self) -> Result<(), ContainerError> {
        match self.status() {
            Status::Paused => Ok(self.state.cgroup.thaw()?),
            status => Err(ContainerError::InvalidState {
                op: "resume",
                status,
            }),
        }
    }

    /// Removes a stopped container (or, with `force`, kills it first): its processes, cgroup,
    /// state directory, then the poststop hooks.
    pub fn delete(self, force: bool) -> Result<(), ContainerError> {
        let status = self.status();
        match status {
            Status::Stopped | Status::Created => {}
            _ if force => {}
            _ => {
                return Err(ContainerError::NotStopped {
                    id: self.state.id.clone(),
                    status,
                })
            }
        }
        // Even a stopped container may have processes in its cgroup: children its first process
        // left, or, when the runtime died during `create` (no pid recorded), the process that was
        // being set up.
        self.kill_all_and_wait()?;
        self.state.cgroup.remove()?;
        if let Some(shared) = &self.state.shared_rootfs {
            shared.release()?;
        }
        let spec = self.config().ok();
        let state_json = self.oci_state(Status::Stopped).to_json()?;
        self.dir.remove()?;
        if let Some(list) = spec
            .as_ref()
            .and_then(|s| s.hooks().as_ref())
            .and_then(|h| h.poststop().as_ref())
        {
            // The container is gone whatever the hooks do; their failure is still reported.
            hooks::run("poststop", list, &state_json)?;
        }
        Ok(())
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
