//! `exec`: another process in a running container, with the container's own process settings
//! (environment, capabilities, rlimits) and the caller's overrides, run from the `hull` process
//! itself (single-threaded, as the runtime facade requires): in the foreground, with a pty whose
//! master the runtime relays to this terminal with `-t`, or left running with `-d`. With `-it`
//! the detach keys leave the process running, its terminal held by a small child of this
//! command.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use hull_runtime::{Console, ExecOptions, Input, Runtime, Stdio, Waited};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, setsid, ForkResult};

use crate::attach::keys::DetachKeys;
use crate::bundle::user;
use crate::store::State;
use crate::{paths, Engine, EngineError};

/// What `hull exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// `-e K=V`, added to the container's environment.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `-i`: the process reads the caller's stdin.
    pub interactive: bool,
    /// `-t`: the process gets a terminal.
    pub tty: bool,
    /// `-d`: started and left running; its output is dropped, as docker's.
    pub detach: bool,
    /// With `-it`: the keys that leave the process running and end this command.
    pub keys: DetachKeys,
}

impl Engine {
    /// Runs `req` in the container to its exit; its exit status (128+N for signal N), or 0 once
    /// a detached one has started.
    pub fn exec(&self, reference: &str, req: &ExecRequest) -> Result<i32, EngineError> {
        let record = self.find(reference)?;
        if record.state != State::Running {
            return Err(EngineError::NotRunning(record.id));
        }
        if req.detach && req.tty {
            return Err(EngineError::Unsupported(
                "exec -d with -t (a terminal nobody holds)",
            ));
        }
        if req.command.is_empty() {
            return Err(EngineError::Invalid("exec needs a command".into()));
        }
        if record.settings.vm.is_some() {
            return crate::vm::exec::run(&self.root, &record, req);
        }
        let container = Runtime::new(paths::runtime_root(&self.root)).open(&record.id)?;
        let spec = container.config()?;
        let mut process = spec
            .process()
            .clone()
            .ok_or_else(|| EngineError::Invalid("the container's config has no process".into()))?;
        process.set_args(Some(req.command.clone()));
        let mut env = process.env().clone().unwrap_or_default();
        for entry in &req.env {
            let key = entry.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(entry.clone());
        }
        if let Some(w) = &req.workdir {
            process.set_cwd(w.into());
        }
        if let Some(u) = &req.user {
            let merged = paths::container_dir(&self.root, &record.id).join("merged");
            let read = |f: &str| std::fs::read_to_string(merged.join(f)).unwrap_or_default();
            let resolved = user::resolve(u, &read("etc/passwd"), &read("etc/group"))?;
            let mut pu = process.user().clone();
            pu.set_uid(resolved.uid);
            pu.set_gid(resolved.gid);
            pu.set_additional_gids(Some(resolved.additional_gids));
            process.set_user(pu);
        }
        // The container's own process may have a terminal; this one has one only with -t.
        process.set_terminal(Some(req.tty));
        process.set_console_size(None);
        if req.tty {
            if !env.iter().any(|e| e.starts_with("TERM=")) {
                env.push("TERM=xterm".into());
            }
            let size = hull_sys::pty::window_size(std::io::stdin().as_fd())
                .or_else(|| hull_sys::pty::window_size(std::io::stdout().as_fd()));
            process.set_console_size(size.and_then(|(rows, cols)| {
                oci_spec::runtime::BoxBuilder::default()
                    .height(rows)
                    .width(cols)
                    .build()
                    .ok()
            }));
        }
        process.set_env(Some(env));
        let mut opts = ExecOptions::new(process);
        if req.tty {
            // The runtime relays the master to this process's terminal, in raw mode.
            opts.console = Some(Console::Return);
            let mut keys = req.keys.clone();
            let mut spot = |input: &[u8]| keys.feed(input);
            // Without -i this command's stdin is not the process's, as docker's.
            let input = if req.interactive {
                Input::Keys(&mut spot)
            } else {
                Input::Closed
            };
            return match container
                .exec_attached(opts, input)
                .map_err(EngineError::from_runtime)?
            {
                Waited::Exited(code) => Ok(code),
                Waited::Detached(master) => hold_terminal(master).map(|()| 0),
            };
        }
        let stdin = if req.interactive && !req.detach {
            std::io::stdin().as_fd().try_clone_to_owned()
        } else {
            File::open("/dev/null").map(Into::into)
        }
        .map_err(EngineError::io("stdin"))?;
        let dup = |fd: std::os::fd::BorrowedFd<'_>| {
            fd.try_clone_to_owned().map_err(EngineError::io("stdio"))
        };
        opts.stdio = if req.detach {
            let null = || {
                File::options()
                    .write(true)
                    .open("/dev/null")
                    .map(OwnedFd::from)
                    .map_err(EngineError::io("/dev/null"))
            };
            Stdio::Fds {
                stdin,
                stdout: null()?,
                stderr: null()?,
            }
        } else {
            Stdio::Fds {
                stdin,
                stdout: dup(std::io::stdout().as_fd())?,
                stderr: dup(std::io::stderr().as_fd())?,
            }
        };
        if req.detach {
            container.exec(opts).map_err(EngineError::from_runtime)?;
            return Ok(0);
        }
        container
            .exec_to_exit(opts)
            .map_err(EngineError::from_runtime)
    }
}

/// After a detach, keeps the process's terminal open (its last close would hang the process
/// up, as closing a terminal window does) and drains its output, which nobody reads any more
/// (docker drops it too): in a child of its own session that outlives this command and exits
/// once the process and its children have closed the terminal.
fn hold_terminal(master: OwnedFd) -> Result<(), EngineError> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
    // SAFETY: the runtime facade ran the exec only because this process is single-threaded, so
    // the child gets a consistent copy of its memory; it leaves with _exit, never returning
    // into the caller's frames.
    match unsafe { fork() }.map_err(EngineError::sys("fork of the exec's terminal holder"))? {
        ForkResult::Parent { .. } => {
            // This command may lead the user's terminal session: its exit hangs up the
            // session's processes, which the child must have left first. It has once the
            // pipe's write end is closed (EOF).
            drop(write);
            let _ = nix::unistd::read(read.as_fd(), &mut [0u8; 1]);
            Ok(())
        }
        ForkResult::Child => {
            let _ = setsid();
            drop(write);
            let _ = nix::sys::prctl::set_name(c"hull-exec-tty");
            let _ = nix::unistd::chdir("/");
            crate::monitor::close_inherited(&[master.as_raw_fd()]);
            let mut buf = [0u8; 4096];
            loop {
                match nix::unistd::read(master.as_fd(), &mut buf) {
                    Ok(0) => break,
                    Ok(_) | Err(Errno::EINTR) => {}
                    // EIO: every holder of the terminal's other end is gone.
                    Err(_) => break,
                }
            }
            // SAFETY: leaving without running destructors of the copies of the command's
            // objects (its database connection among them).
            unsafe { libc::_exit(0) }
        }
    }
}
