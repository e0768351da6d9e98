//! A container that exists, as the facade hands it out: held under its lock while the value lives
//! (so commands on one id never interleave), released by `wait`, `watch` or a drop so that others
//! can reach the container while it runs.

use std::os::fd::OwnedFd;

use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use super::{single_threaded, Error};
use crate::oci_state::OciState;
use crate::process::foreground::{self, Foreground, Input, Waited};
use crate::process::{ExecOptions, Executed};
use crate::state::Status;

/// A container, locked for the caller until dropped.
pub struct Container {
    pub(super) inner: crate::container::Container,
    pub(super) warnings: super::Warnings,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.inner.state.id)
            .field("pid", &self.inner.state.pid)
            .finish_non_exhaustive()
    }
}

/// A container just created: its process waits for [`Container::start`].
#[derive(Debug)]
pub struct Created {
    pub container: Container,
    /// The pty master, when the process has a terminal and the caller asked for
    /// [`Console::Return`](crate::Console::Return).
    pub console: Option<OwnedFd>,
    /// What config.json asked for that was skipped, as runc skips it (unknown syscall names...).
    pub warnings: Vec<String>,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.inner.state.id
    }

    /// The container's first process, in the caller's pid namespace.
    pub fn pid(&self) -> i32 {
        self.inner.state.pid
    }

    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// The runtime-spec state, as `state` prints it and hooks read it.
    pub fn state(&self) -> OciState<'_> {
        self.inner.oci_state(self.inner.status())
    }

    /// The config.json the container was created from.
    pub fn config(&self) -> Result<Spec, Error> {
        Ok(self.inner.config()?)
    }

    /// Lets the created process go on to execve; returns once it has and the poststart hooks
    /// ran (their failures are warnings). A failing startContainer hook, or an execve that
    /// fails, is the error, and the container is stopped. A config without `process` cannot
    /// start.
    pub fn start(&self) -> Result<(), Error> {
        for warning in self.inner.start()? {
            self.warnings.emit(&warning);
        }
        Ok(())
    }

    /// Sends `signal` to the first process, or with `all` to every process of the container.
    pub fn kill(&self, signal: Signal, all: bool) -> Result<(), Error> {
        Ok(self.inner.kill(signal, all)?)
    }

    pub fn pause(&self) -> Result<(), Error> {
        Ok(self.inner.pause()?)
    }

    pub fn resume(&self) -> Result<(), Error> {
        Ok(self.inner.resume()?)
    }

    /// Removes a stopped container (with `force`, one in any state, killed first; without,
    /// one not stopped is an error): processes, cgroup, state, then the poststop hooks (their
    /// failures are warnings).
    pub fn delete(self, force: bool) -> Result<(), Error> {
        for warning in self.inner.delete(force)? {
            self.warnings.emit(&warning);
        }
        Ok(())
    }

    /// runc's `update`: new limits for the container's cgroup, kept in its saved config too. A
    /// field left out or zero keeps the limit in force; device rules are not updated. Refused
    /// for a stopped container. Returns the fields skipped because the kernel dropped them.
    pub fn update(&self, resources: &LinuxResources) -> Result<Vec<String>, Error> {
        Ok(self.inner.update(resources)?)
    }

    /// Pids of every process in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        Ok(self.inner.state.cgroup.pids()?)
    }

    /// Starts a new process in the container and returns at its execve. When the container
    /// has its own pid namespace, the caller's later children are born in it too (exec joins
    /// it for its clone, and a process cannot leave): exec from a process that ends after, as
    /// the hull-runtime binary does.
    pub fn exec(&self, opts: ExecOptions) -> Result<Executed, Error> {
        single_threaded("exec in a container")?;
        let sigmask = SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty());
        Ok(crate::process::exec::exec(&self.inner, &opts, sigmask)?)
    }

    /// `exec` in the foreground: forwards the caller's signals to the process, relays a returned
    /// terminal to the caller's stdin and stdout, and returns its exit status (128+N for a
    /// signal). The container's lock is released while the process runs.
    pub fn exec_to_exit(self, opts: ExecOptions) -> Result<i32, Error> {
        match self.exec_attached(opts, Input::All)? {
            Waited::Exited(code) => Ok(code),
            // Without keys the relay never detaches; should it, the process is left running.
            Waited::Detached(_) => Ok(0),
        }
    }

    /// [`Container::exec_to_exit`] with a returned terminal fed `input` of the caller's stdin.
    /// With [`Input::Keys`] it also ends when the caller types its detach keys: the process runs
    /// on, and the caller gets the terminal's master, to hold open for as long as the process
    /// should live.
    pub fn exec_attached(self, opts: ExecOptions, input: Input<'_>) -> Result<Waited, Error> {
        single_threaded("exec in a container")?;
        let foreground = Foreground::new()?;
        let executed = crate::process::exec::exec(&self.inner, &opts, foreground.original_mask)?;
        drop(self);
        Ok(foreground.wait_or_detach(Pid::from_raw(executed.pid), executed.console, input)?)
    }

    /// Releases the lock and waits until the container's first process has exited. Its exit
    /// status (128+N for a signal) when the caller is its parent or subreaper, else None.
    pub fn wait(self) -> Result<Option<i32>, Error> {
        let (pid, start) = (self.inner.pid(), self.inner.state.pid_start);
        drop(self);
        Ok(foreground::wait_exit(pid, start)?)
    }

    /// Releases the lock, keeping what `events` reads while the container runs.
    pub fn watch(self) -> Watch {
        let state = self.inner.state;
        Watch {
            id: state.id,
            pid: state.pid,
            pid_start: state.pid_start,
            cgroup: state.cgroup,
        }
    }
}

/// A container observed without its lock: its resource use and OOM kills while it lives.
#[derive(Debug)]
pub struct Watch {
    id: String,
    pid: i32,
    pid_start: u64,
    cgroup: hull_cgroups::Cgroup,
}

impl Watch {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True until the container's first process has exited.
    pub fn is_alive(&self) -> bool {
        crate::procfs::is_alive(self.pid, self.pid_start)
    }

    pub fn stats(&self) -> Result<hull_cgroups::Stats, Error> {
        Ok(self.cgroup.stats()?)
    }

    pub fn oom_events(&self) -> Result<hull_cgroups::OomEvents, Error> {
        Ok(self.cgroup.oom_events()?)
    }

    /// [`Container::wait`] for a container watched: no need to open it again (and read its
    /// state) to wait for the process it watches.
    pub fn wait(self) -> Result<Option<i32>, Error> {
        Ok(foreground::wait_exit(
            Pid::from_raw(self.pid),
            self.pid_start,
        )?)
    }
}
