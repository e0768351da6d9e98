//! `exec`: another process in a running container, with the container's own process settings
//! (environment, capabilities, rlimits) and the caller's overrides, run in the foreground from
//! the `hull` process itself (single-threaded, as the runtime facade requires).

use std::fs::File;
use std::os::fd::AsFd;

use hull_runtime::{ExecOptions, Runtime, Stdio};

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
}

impl Engine {
    /// Runs `req` in the container to its exit; its exit status (128+N for signal N).
    pub fn exec(&self, reference: &str, req: &ExecRequest) -> Result<i32, EngineError> {
        let record = self.find(reference)?;
        if record.state != State::Running {
            return Err(EngineError::NotRunning(record.id));
        }
        if req.command.is_empty() {
            return Err(EngineError::Invalid("exec needs a command".into()));
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
        process.set_env(Some(env));
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
        let stdin = if req.interactive {
            std::io::stdin().as_fd().try_clone_to_owned()
        } else {
            File::open("/dev/null").map(Into::into)
        }
        .map_err(EngineError::io("stdin"))?;
        let dup = |fd: std::os::fd::BorrowedFd<'_>| {
            fd.try_clone_to_owned().map_err(EngineError::io("stdio"))
        };
        let mut opts = ExecOptions::new(process);
        opts.stdio = Stdio::Fds {
            stdin,
            stdout: dup(std::io::stdout().as_fd())?,
            stderr: dup(std::io::stderr().as_fd())?,
        };
        container
            .exec_to_exit(opts)
            .map_err(EngineError::from_runtime)
    }
}
