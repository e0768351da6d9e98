//! `exec`: another process in a running container, with the container's own process settings
//! (environment, capabilities, rlimits) and the caller's overrides, run from the `hull` process
//! itself (single-threaded, as the runtime facade requires): in the foreground, with a pty whose
//! master the runtime relays to this terminal with `-t`, or left running with `-d`.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use hull_runtime::{Console, ExecOptions, Runtime, Stdio};

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
            return container
                .exec_to_exit(opts)
                .map_err(EngineError::from_runtime);
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
