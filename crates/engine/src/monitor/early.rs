//! A monitor forked before its container exists (`hull run`): the `hull` command forks it
//! first, so that its start runs while the command writes the container, instead of after. The
//! command writes the container's row already naming this monitor as its owner (state
//! `starting`, [`Engine::create_for`](crate::Engine::create_for)), then its bundle, and sends
//! it the row on a socket: the monitor neither claims the row nor opens hull.db (which parses
//! the whole schema) before it makes the container; it opens it while the container's process
//! sets up. It starts on another CPU than the command ([`hull_sys::apart`]), so the two run at
//! once. A command that ends (or fails, or is killed) first closes the socket, and the monitor
//! leaves without having made anything: a row that names it is then one whose monitor died,
//! which the next command records as exited and cleans up (`Engine::reconcile`).
//!
//! In that wait it also makes the container's network namespace (about a millisecond of kernel
//! work that the container's process would otherwise do on the run's path), held by its
//! descriptor only: nothing names it, so it ends with the monitor, even killed, until the
//! container's process joins it at its create and holds it from then on. Only while the
//! command is not done yet: a monitor that is late already (a loaded host) would delay the
//! container by what it saves it. Without one the container's process makes its own, as
//! it would have.

use std::fs::File;
use std::io::BufReader;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::unistd::{fork, pipe2, ForkResult};

use super::{Monitor, Reporter};
use crate::attach::Attach;
use crate::error::EngineError;
use crate::store::Record;
use hull_sys::apart::Apart;

use super::root::StarterMount;

/// The longest message: the container's row, as JSON (a few KB), or its config.json (~10 KB).
const MAX_GO: usize = 256 * 1024;

/// The first byte of a message to the monitor: the container's config.json, which the monitor
/// reads and checks while it waits ([`Early::send_config`]), or its row ([`Early::start`]).
const CONFIG: u8 = b'C';
const ROW: u8 = b'R';

/// The starter's handle on a monitor that waits for its container.
#[derive(Debug)]
pub struct Early {
    pid: i32,
    go: OwnedFd,
    reports: File,
}

impl Early {
    /// Forks the monitor of the container this command is about to create under `root`, with
    /// `attach` (the monitor's end of a foreground `run`'s socket pair) if any, making its
    /// network namespace ahead when `netns` (it will have one of its own). The caller must
    /// have no hull.db connection open (the child opens its own; SQLite's per-process lock
    /// state must not be shared through a fork) and be single-threaded.
    pub fn fork(root: &Path, attach: Option<Attach>, netns: bool) -> Result<Early, EngineError> {
        super::single_threaded("(not yet created)")?;
        let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
        let (go, wait) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(EngineError::sys("socketpair"))?;
        let apart = Apart::before_fork();
        // SAFETY: this process is single-threaded (checked above), so the child gets a
        // consistent copy of its memory and may run Rust code; it leaves with _exit, never
        // returning into the caller's frames.
        match unsafe { fork() }.map_err(EngineError::sys("fork of the monitor"))? {
            ForkResult::Parent { child } => {
                if let Some(apart) = &apart {
                    apart.move_child(child);
                }
                Ok(Early {
                    pid: child.as_raw(),
                    go,
                    reports: File::from(read),
                })
            }
            ForkResult::Child => {
                drop((read, go));
                let code = child_main(root, write, wait, attach, (netns, apart));
                // SAFETY: leaving without running the starter's exit handlers or destructors of
                // the copies of its objects.
                unsafe { libc::_exit(code) }
            }
        }
    }

    /// The monitor's pid and start time, as its container's row names it
    /// ([`Engine::create_for`](crate::Engine::create_for)).
    pub fn identity(&self) -> Result<(i32, u64), EngineError> {
        // Without its start time the row would name a monitor every command finds dead.
        let start = hull_sys::procfs::start_time(self.pid).ok_or_else(|| EngineError::Monitor {
            id: "(not yet created)".into(),
            message: format!("cannot read the start time of its monitor {}", self.pid),
        })?;
        Ok((self.pid, start))
    }

    /// Sends the monitor the text of its container's config.json, as soon as it is made and
    /// before the row exists: the monitor, idle until then, has the runtime read and check it
    /// (`hull_runtime::Config`), off the path between the row and the container's process.
    /// The bundle's file must get exactly this text. Best effort: a config too long for one
    /// message, or a monitor gone, leaves the reading to the runtime's create.
    pub(crate) fn send_config(&self, text: &[u8]) {
        if text.len() >= MAX_GO {
            return;
        }
        let mut message = Vec::with_capacity(text.len() + 1);
        message.push(CONFIG);
        message.extend_from_slice(text);
        while let Err(Errno::EINTR) = send(self.go.as_raw_fd(), &message, MsgFlags::MSG_NOSIGNAL) {}
    }

    /// Hands the monitor its container (created for it: its row, which names the monitor, and
    /// bundle written), then mounts its root while the monitor prepares the rest
    /// ([`super::root`]).
    pub(crate) fn start(self, root: &Path, record: &Record) -> Result<Monitor, EngineError> {
        let id = record.id.as_str();
        let mut message = vec![ROW];
        serde_json::to_writer(&mut message, record)
            .map_err(|e| EngineError::Invalid(format!("encoding a container record: {e}")))?;
        let sent = loop {
            match send(self.go.as_raw_fd(), &message, MsgFlags::MSG_NOSIGNAL) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        sent.map_err(|e| EngineError::Monitor {
            id: id.to_string(),
            message: format!("cannot hand it to the monitor forked for it: {e}"),
        })?;
        if super::root::by_starter(record) {
            super::root::mount_and_tell(root, record, &self.go);
        }
        Ok(Monitor {
            pid: self.pid,
            reports: BufReader::new(self.reports),
        })
    }
}

fn child_main(
    root: &Path,
    report: OwnedFd,
    wait: OwnedFd,
    attach: Option<Attach>,
    (netns, apart): (bool, Option<Apart>),
) -> i32 {
    let mut keep = vec![wait.as_raw_fd()];
    keep.extend(attach.as_ref().map(|a| a.conn.as_raw_fd()));
    super::leave_starter(report, &keep, |reporter: &mut Reporter| {
        // While the command writes the container: its network namespace (unless the row came
        // already: the container's process then makes it), then what creating it will read of
        // the host.
        let netns = (netns && !row_pending(&wait))
            .then(hull_net::netns::unnamed)
            .and_then(Result::ok);
        hull_runtime::read_host_ahead();
        // The starter moved this process right after the fork; what the container inherits
        // is the caller's affinity.
        let restored = apart.as_ref().is_some_and(Apart::restore_if_moved);
        let mut buf = vec![0u8; MAX_GO];
        let mut config = None;
        let record = loop {
            let n = loop {
                match recv(wait.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                    Err(Errno::EINTR) => continue,
                    other => break other.unwrap_or(0),
                }
            };
            match buf.get(..n).and_then(<[u8]>::split_first) {
                // A config that does not parse is left to the create, which reports it.
                Some((&CONFIG, text)) => config = hull_runtime::Config::parse(text.to_vec()).ok(),
                Some((&ROW, row)) => break serde_json::from_slice::<Record>(row).ok(),
                _ => break None,
            }
        };
        // Nothing (the starter is gone or gave up) or garbage: leave, having made nothing (a
        // row that names this monitor is then one of a dead monitor, for the next command).
        let Some(record) = record else {
            return 0;
        };
        drop(buf);
        let starter = super::root::by_starter(&record).then(|| StarterMount::new(wait));
        // Else the starter's move came after that look, and before it sent the record.
        if let (Some(apart), false) = (&apart, restored) {
            apart.restore();
        }
        // hull.db is opened when first needed: while the container's process sets up.
        let db = super::run::Db::later(root);
        super::run::main(
            root,
            &record.id.clone(),
            Ok(db),
            Some(record),
            reporter,
            super::run::Ahead {
                attach,
                netns,
                root: starter,
                config,
            },
        )
    })
}

/// Whether the starter has sent the row (or is gone) already: a look that does not wait.
fn row_pending(wait: &OwnedFd) -> bool {
    let mut first = [0u8; 1];
    match recv(
        wait.as_raw_fd(),
        &mut first,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => true,
        Ok(_) => first[0] != CONFIG,
        Err(_) => false,
    }
}
