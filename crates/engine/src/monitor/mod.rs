//! The per-container monitor (podman's conmon): one small single-threaded process per running
//! container that outlives the `hull` command. It is forked, not exec'd: the `hull` process
//! that starts it is single-threaded (checked; nothing on the run path starts a thread), so the
//! child may go on running Rust code, and it skips loading and relocating a second copy of the
//! `hull` binary. It reports to its starter over a pipe: started, failed, exited. It holds the
//! container's stdio (pipes, or a pty's master with `-t`) and serves it to attach clients
//! ([`crate::attach`]) while writing the log.

mod early;
mod memory;
mod relay;
mod root;
mod run;
pub(crate) mod teardown;
pub mod vm;
pub mod vm_control;
mod vm_net;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, setsid, ForkResult, Pid};

pub use early::Early;

use crate::attach::Attach;
use crate::error::EngineError;
use crate::procfs;

/// A line the monitor sends its starter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The container's process runs (its pid on the host).
    Started(i32),
    /// It could not be started; the code is docker's (125, 126, 127).
    Failed { code: i32, message: String },
    /// It exited with this status (128+N for signal N), and its monitor cleaned up.
    Exited(i32),
}

impl Report {
    fn encode(&self) -> String {
        match self {
            Report::Started(pid) => format!("started {pid}\n"),
            Report::Failed { code, message } => {
                format!("failed {code} {}\n", message.replace('\n', " "))
            }
            Report::Exited(code) => format!("exited {code}\n"),
        }
    }

    fn decode(line: &str) -> Option<Report> {
        let mut words = line.trim_end().splitn(3, ' ');
        let kind = words.next()?;
        let n: i32 = words.next()?.parse().ok()?;
        match kind {
            "started" => Some(Report::Started(n)),
            "exited" => Some(Report::Exited(n)),
            "failed" => Some(Report::Failed {
                code: n,
                message: words.next().unwrap_or_default().to_string(),
            }),
            _ => None,
        }
    }
}

/// The monitor's side of the report pipe; writes to a starter that is gone are dropped.
#[derive(Debug)]
pub(crate) struct Reporter {
    to: Option<File>,
    /// The container's mount namespace, held until the exit is reported: its init's exit
    /// would otherwise tear the namespace down (an RCU grace period in namespace_unlock)
    /// before its parent, this monitor, can reap it; held, the teardown comes with this
    /// drop, after the starter has heard of the exit.
    mnt_ns: Option<OwnedFd>,
}

impl Reporter {
    pub(crate) fn send(&mut self, report: &Report) {
        if let Some(f) = self.to.as_mut() {
            if f.write_all(report.encode().as_bytes()).is_err() {
                self.to = None;
            }
        }
    }

    /// Closes the pipe: the starter reads its end. The container's mount namespace goes
    /// after it.
    pub(crate) fn close(&mut self) {
        self.to = None;
        self.mnt_ns = None;
    }

    /// Holds the mount namespace of `pid` (a child of this monitor, so not a reused pid)
    /// until [`Reporter::close`]; nothing when nobody waits for the exit report. Best effort:
    /// without it the exit waits as it would have.
    pub(crate) fn hold_mount_ns(&mut self, pid: i32) {
        if self.to.is_some() {
            self.mnt_ns = File::open(format!("/proc/{pid}/ns/mnt"))
                .ok()
                .map(OwnedFd::from);
        }
    }
}

/// The starter's side: the monitor's pid and its reports.
#[derive(Debug)]
pub struct Monitor {
    pub pid: i32,
    reports: BufReader<File>,
}

impl Monitor {
    /// The next report; None once the monitor has exited without another.
    pub fn next_report(&mut self) -> Option<Report> {
        let mut line = String::new();
        match self.reports.read_line(&mut line) {
            Ok(n) if n > 0 => Report::decode(&line),
            _ => None,
        }
    }

    /// The report pipe, to poll together with other descriptors.
    pub fn fd(&self) -> RawFd {
        self.reports.get_ref().as_raw_fd()
    }
}

/// Forks the monitor of container `id` under engine root `root`.
pub fn spawn(root: &Path, id: &str, attach: Option<Attach>) -> Result<Monitor, EngineError> {
    single_threaded(id)?;
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
    // The heap this command freed (what it parsed to create the container) goes back to the
    // kernel first: otherwise the fork hands it to the monitor, which keeps it for as long as
    // the container runs (a monitor per container: its memory is the engine's cost).
    // SAFETY: malloc_trim only returns free memory of this process's allocator to the kernel.
    unsafe { libc::malloc_trim(0) };
    // SAFETY: this process is single-threaded (checked above), so the child gets a consistent
    // copy of its memory and may run Rust code; it leaves with _exit, never returning into the
    // caller's frames.
    match unsafe { fork() }.map_err(EngineError::sys("fork of the monitor"))? {
        ForkResult::Parent { child } => {
            drop(write);
            drop(attach);
            Ok(Monitor {
                pid: child.as_raw(),
                reports: BufReader::new(File::from(read)),
            })
        }
        ForkResult::Child => {
            drop(read);
            let keep: Vec<RawFd> = attach.iter().map(|a| a.conn.as_raw_fd()).collect();
            let code = leave_starter(write, &keep, |reporter| {
                let db = run::open_db(root).map(|conn| run::Db::opened(root, conn));
                run::main(
                    root,
                    id,
                    db,
                    None,
                    reporter,
                    run::Ahead {
                        attach,
                        ..run::Ahead::default()
                    },
                )
            });
            // SAFETY: leaving without running the starter's exit handlers or destructors of the
            // copies of its objects (its database connection among them).
            unsafe { libc::_exit(code) }
        }
    }
}

/// Refuses to fork the monitor of `id` from a process with threads: a forked child of a
/// multi-threaded process may find locks held forever.
fn single_threaded(id: &str) -> Result<(), EngineError> {
    let threads = procfs::thread_count().unwrap_or(1);
    if threads > 1 {
        return Err(EngineError::Monitor {
            id: id.to_string(),
            message: format!(
                "cannot fork it from a process with {threads} threads: a forked child of a \
                 multi-threaded process may find locks held forever"
            ),
        });
    }
    Ok(())
}

/// The forked monitor's first steps, out of its starter's way, then `body`: its exit status.
/// It keeps `report` (its reports) and `keep`.
fn leave_starter(report: OwnedFd, keep: &[RawFd], body: impl FnOnce(&mut Reporter) -> i32) -> i32 {
    // Its own session: the terminal's ^C goes to the `hull` command, which forwards it to the
    // container, and never straight to the monitor.
    let _ = setsid();
    // Named for ps(1); and out of the starter's working directory, which it must not keep busy.
    let _ = nix::sys::prctl::set_name(c"hull-monitor");
    let _ = nix::unistd::chdir("/");
    let mut all = keep.to_vec();
    all.push(report.as_raw_fd());
    close_inherited(&all);
    let mut reporter = Reporter {
        to: Some(File::from(report)),
        mnt_ns: None,
    };
    body(&mut reporter)
}

/// Points 0, 1 and 2 at /dev/null and closes every other descriptor the starter had (its
/// database, its caller's pipes) but `keep`, so the monitor holds nothing it does not own.
pub(crate) fn close_inherited(keep: &[RawFd]) {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto a standard descriptor this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    hull_sys::fd::close_all_but(keep);
}

/// The pid of this process.
pub(crate) fn own_pid() -> i32 {
    Pid::this().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for r in [
            Report::Started(42),
            Report::Exited(137),
            Report::Failed {
                code: 127,
                message: "exec: \"x\": not found".into(),
            },
        ] {
            assert_eq!(Report::decode(&r.encode()), Some(r));
        }
    }
}
