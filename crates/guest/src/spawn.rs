//! Starting one process the way the host's spec says: its root (chroot), cwd, environment,
//! rlimits, groups, user, capabilities, no_new_privs, seccomp (worked out in `security`), and
//! stdio on pipes or on a new pty that becomes its controlling terminal. What the serving loop
//! needs of a process is in `Proc`.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use hull_vmproto::{ExitStatus, ProcessSpec};
use nix::unistd::Pid;

use crate::security::{self, CapMasks};
use crate::setup::cstring;

/// One process the host started. On a terminal, stdin and stdout are the pty master (two
/// descriptors of it) and there is no stderr.
#[derive(Debug)]
pub struct Proc {
    pub pid: Pid,
    pub stdin: Option<File>,
    pub stdin_buf: Vec<u8>,
    pub stdin_close: bool,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// The pty master, for window sizes.
    pub pty: Option<File>,
    pub status: Option<ExitStatus>,
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// The resource of an OCI rlimit type.
fn rlimit_resource(kind: &str) -> anyhow::Result<libc::__rlimit_resource_t> {
    Ok(match kind {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        other => anyhow::bail!("unknown rlimit type {other:?}"),
    })
}

/// The pty master and the three stdio ends of its slave.
fn terminal_stdio() -> anyhow::Result<(File, [Stdio; 3])> {
    let pty = nix::pty::openpty(None, None).context("cannot open a pseudo-terminal")?;
    let slave = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
    let stdio = [
        slave(&pty.slave)?,
        slave(&pty.slave)?,
        Stdio::from(pty.slave),
    ];
    Ok((File::from(pty.master), stdio))
}

/// Starts `spec` inside `root`, with its user, groups, cwd and environment, on pipes or (with
/// `terminal`) on a new pty that becomes its controlling terminal.
pub fn spawn(root: &Path, spec: &ProcessSpec) -> anyhow::Result<Proc> {
    let (prog, args) = spec.args.split_first().context("the process has no args")?;
    let ids = security::ids_in(root, spec)?;
    let caps = match &spec.capabilities {
        Some(c) => Some(CapMasks::new(c, security::last_cap()?)?),
        None => None,
    };
    let seccomp = security::seccomp_program(spec)?;
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear();
    for e in &spec.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        cmd.env(k, v);
    }
    // docker's HOME: the user's from /etc/passwd unless the spec sets one.
    if let Some(home) = ids
        .home
        .filter(|_| !spec.env.iter().any(|e| e.starts_with("HOME=")))
    {
        cmd.env("HOME", home);
    }
    let pty = if spec.terminal {
        let (master, [i, o, e]) = terminal_stdio()?;
        cmd.stdin(i).stdout(o).stderr(e);
        Some(master)
    } else {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        None
    };
    let terminal = spec.terminal;
    let rlimits = spec
        .rlimits
        .iter()
        .map(|r| Ok((rlimit_resource(&r.kind)?, r.soft, r.hard)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let no_new_privs = spec.no_new_privileges;
    let chroot = (root != Path::new("/"))
        .then(|| cstring(&root.to_string_lossy()))
        .transpose()?;
    let cwd = cstring(&spec.cwd)?;
    let (uid, gid, groups) = (ids.uid, ids.gid, ids.groups);
    let hook = move || -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY: plain system calls between fork and exec, on C strings and a slice owned by
        // this closure.
        unsafe {
            if terminal {
                // A session of its own, with the pty (already its stdin) as controlling tty.
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                check(libc::ioctl(0, libc::TIOCSCTTY, 0))?;
            }
            if let Some(dir) = &chroot {
                check(libc::chroot(dir.as_ptr()))?;
            }
            check(libc::chdir(cwd.as_ptr()))?;
            for (resource, soft, hard) in &rlimits {
                let lim = libc::rlimit {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                };
                check(libc::setrlimit(*resource, &lim))?;
            }
            // runc's order: without no_new_privs the filter goes on while the process may
            // still load one (CAP_SYS_ADMIN), so it must allow what follows; with it, last.
            if let Some((program, flags)) = seccomp.as_ref().filter(|_| !no_new_privs) {
                security::load_seccomp(program, *flags)?;
            }
            if let Some(m) = &caps {
                security::before_user(m)?;
            }
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
            if let Some(m) = &caps {
                security::after_user(m)?;
            }
            if no_new_privs {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
                if let Some((program, flags)) = &seccomp {
                    security::load_seccomp(program, *flags)?;
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls.
    unsafe { cmd.pre_exec(hook) };
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {prog:?}"))?;
    // The parent's copies of the slave went with `cmd`'s Stdio when it was spawned.
    drop(cmd);
    let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
    let (stdin, stdout, stderr) = match &pty {
        Some(m) => (Some(m.try_clone()?), Some(m.try_clone()?), None),
        None => (
            child.stdin.take().map(|s| File::from(OwnedFd::from(s))),
            child.stdout.take().map(|s| File::from(OwnedFd::from(s))),
            child.stderr.take().map(|s| File::from(OwnedFd::from(s))),
        ),
    };
    if let Some(s) = &stdin {
        set_nonblocking(s.as_fd())?;
    }
    Ok(Proc {
        pid,
        stdin,
        stdin_buf: Vec::new(),
        stdin_close: false,
        stdout,
        stderr,
        pty,
        status: None,
    })
}

/// The shell's code for a process that could not be started: 127 when not found, else 126.
pub fn spawn_failure_code(e: &anyhow::Error) -> i32 {
    let not_found = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == ErrorKind::NotFound);
    if not_found {
        127
    } else {
        126
    }
}
