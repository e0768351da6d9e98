//! The last step of every process hull starts in a container: find the program the way the
//! container's PATH says, restore the signal mask, and execve it with the container's environment.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::execve;
use oci_spec::runtime::Process;

use crate::process::error::{sys, ProcessError};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {0:?}: argument or environment contains a NUL byte")]
    Nul(String),
    /// Found before `start`, as runc does: after it, an execve failure has no one to tell.
    #[error("exec: {0:?}: no such file or directory")]
    Missing(String),
    #[error("exec: {0:?}: permission denied")]
    NotExecutable(String),
    #[error("exec {path}: {source}")]
    Exec {
        path: String,
        source: nix::errno::Errno,
    },
}

/// A program ready to replace the calling process.
pub struct Program {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Program {
    /// Resolves `args[0]` against the PATH of `env` (glibc's execvpe would use the runtime's own
    /// PATH instead, which is not the container's).
    pub fn resolve(args: &[String], env: &[String]) -> Result<Program, ProgramError> {
        let name = args.first().cloned().unwrap_or_default();
        let path = if name.contains('/') {
            let path = PathBuf::from(&name);
            match std::fs::metadata(&path) {
                Err(_) => return Err(ProgramError::Missing(name)),
                Ok(_) if !is_executable(&path) => return Err(ProgramError::NotExecutable(name)),
                Ok(_) => path,
            }
        } else {
            let search = env
                .iter()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or(DEFAULT_PATH);
            search
                .split(':')
                .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(&name))
                .find(|candidate| is_executable(candidate))
                .ok_or_else(|| ProgramError::NotFound(name.clone()))?
        };
        let cstring = |s: &[u8]| CString::new(s).map_err(|_| ProgramError::Nul(name.clone()));
        Ok(Program {
            path: cstring(path.as_os_str().as_bytes())?,
            argv: args
                .iter()
                .map(|a| cstring(a.as_bytes()))
                .collect::<Result<_, _>>()?,
            envp: env
                .iter()
                .map(|e| cstring(e.as_bytes()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// In the container process, after its root is final: changes to the process's cwd, resolves
    /// its program, and leaves open only stdio and the `preserve_fds` descriptors after them.
    pub fn prepare(process: &Process, preserve_fds: i32) -> Result<Program, ProcessError> {
        nix::unistd::chdir(process.cwd())
            .map_err(sys(format!("chdir to cwd {:?}", process.cwd())))?;
        let env = process.env().clone().unwrap_or_default();
        let program = Program::resolve(&process.args().clone().unwrap_or_default(), &env)?;
        hull_sys::fd::cloexec_from(3 + preserve_fds).map_err(sys("close_range"))?;
        for fd in 3..3 + preserve_fds {
            hull_sys::fd::clear_cloexec(fd).map_err(sys(format!("preserving fd {fd}")))?;
        }
        Ok(program)
    }

    /// Restores `sigmask` (the runtime blocks signals while it forwards them) and SIGPIPE's
    /// default action, and executes.
    pub fn exec(&self, sigmask: &SigSet) -> Result<Infallible, ProgramError> {
        // Rust's start-up code ignores SIGPIPE in the runtime, and an ignored signal stays ignored
        // across execve: without this, `yes | head` in the container would never end by SIGPIPE,
        // unlike under runc.
        // SAFETY: SIG_DFL installs no handler; this single-threaded process executes next.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(sigmask), None);
        execve(&self.path, &self.argv, &self.envp).map_err(|source| ProgramError::Exec {
            path: self.path.to_string_lossy().into_owned(),
            source,
        })
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
