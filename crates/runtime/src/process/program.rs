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
        let env = dedup_env(process.env().as_deref().unwrap_or_default());
        let env = super::home::with_home(env, || super::home::home_of(process.user().uid()));
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

/// `env` with each name once, as runc's init sets it (Go's Setenv, one entry at a time): the
/// last value of a name, at the place of its first entry. `exec --env K=V` thus replaces a K of
/// the process spec. An entry without `=` is a name without a value.
pub fn dedup_env(env: &[String]) -> Vec<String> {
    let name = |entry: &str| entry.split_once('=').map_or(entry, |(n, _)| n).to_string();
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    let mut index = std::collections::HashMap::with_capacity(env.len());
    for entry in env {
        match index.entry(name(entry)) {
            std::collections::hash_map::Entry::Occupied(at) => out[*at.get()] = entry.clone(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push(entry.clone());
            }
        }
    }
    out
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::dedup_env;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_last_value_of_a_name_wins_at_its_first_place() {
        assert_eq!(
            dedup_env(&strings(&[
                "PATH=/bin",
                "X=1",
                "TERM=xterm",
                "X=2",
                "Y=",
                "X=3"
            ])),
            strings(&["PATH=/bin", "X=3", "TERM=xterm", "Y="])
        );
        // A value may hold '='; only the name before the first one counts.
        assert_eq!(dedup_env(&strings(&["A=b=c", "A=d"])), strings(&["A=d"]));
        assert_eq!(
            dedup_env(&strings(&["NOVALUE", "NOVALUE"])),
            strings(&["NOVALUE"])
        );
        assert!(dedup_env(&[]).is_empty());
    }
}
