//! hull-engine: containers from images, as podman's libpod makes them without a daemon. Every
//! `hull` command is a short-lived process over this library; each running container has its own
//! small monitor process ([`monitor`]) that outlives the command; hull.db holds their state.
//!
//! Data flows one way: the engine asks hull-image for a root (an overlay of the image's layers
//! with an upper dir per container), hull-net for a network (a veth on a bridge, or none),
//! and hull-runtime's facade for the container itself (which makes its cgroups).
//!
//! ```no_run
//! # fn main() -> Result<(), hull_engine::EngineError> {
//! use hull_engine::{Engine, RunOptions};
//! let mut engine = Engine::open(std::path::Path::new("/var/lib/hull"))?;
//! let opts = RunOptions { command: vec!["echo".into(), "hi".into()], rm: true, ..Default::default() };
//! let created = engine.create("busybox", &opts)?;
//! let mut monitor = engine.start(&created.record.id, None)?;
//! let _ = monitor.next_report(); // Started, Failed or Exited
//! # Ok(())
//! # }
//! ```

pub mod attach;
pub mod bundle;
mod commit;
mod control;
pub mod cp;
mod create;
mod df;
mod diff;
mod error;
mod exec;
pub mod filter;
mod info;
pub mod kernel;
pub mod log_opts;
pub mod log_read;
pub mod logs;
pub mod monitor;
mod mount_targets;
mod names;
pub mod options;
pub mod paths;
mod pause;
mod prune;
mod publish;
mod rename;
pub mod reset;
pub mod run_flags;
mod seccomp_cache;
mod spare;
mod stats;
mod stop;
pub mod store;
pub mod times;
mod top;
pub mod vm;
pub mod vm_jail;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_sys::procfs;
use rusqlite::Connection;

pub use attach::{Attach, Attached};
pub use commit::CommitOptions;
pub use cp::{CopyOptions, HostEnd};
pub use create::Created;
pub use df::DiskRow;
pub use diff::Change;
pub use error::{EngineError, EXIT_CANNOT_INVOKE, EXIT_ENGINE, EXIT_NOT_FOUND};
pub use exec::ExecRequest;
pub use log_read::LogQuery;
pub use monitor::{Monitor, Report};
pub use options::{Network, PullPolicy, RestartPolicy, RunOptions, Settings};
pub use prune::Pruned;
pub use stats::{cpu_percent, StatsSample};
pub use stop::stop_wait;
pub use store::{Record, State};
pub use top::Top;
pub use volumes::{MountSpec, VolumeRecord};

/// How long a command waits for a monitor's teardown of its exited container: more than it
/// ever takes (a runtime delete that kills stragglers, an unmount, a network detach).
const TEARDOWN_WAIT: Duration = Duration::from_secs(30);

/// The engine bound to one root (`--root`, default /var/lib/hull).
#[derive(Debug)]
pub struct Engine {
    root: PathBuf,
    conn: Connection,
    /// hull.db, kept open but unused while a `run` waits on the monitor it handed its
    /// container to ([`Engine::start_early`]): the monitor then opens it beside a live
    /// connection, which spares it rebuilding the WAL index from the whole log as a first
    /// opener does (~0.2 ms on its path). [`Engine::reopen`] takes it back.
    kept: Option<Connection>,
    /// Whether [`Engine::images`] has made the image store's directories in this process.
    store_ready: std::cell::Cell<bool>,
}

impl Engine {
    /// Opens the engine's state under `root`, and settles containers whose monitor died
    /// (killed, out of memory, a reboot): they are torn down and shown as exited.
    pub fn open(root: &Path) -> Result<Engine, EngineError> {
        let conn = hull_db::open(root)?;
        let mut engine = Engine {
            root: root.to_path_buf(),
            conn,
            kept: None,
            store_ready: std::cell::Cell::new(false),
        };
        engine.reconcile()?;
        Ok(engine)
    }

    /// The engine for a read-only command: on a root that was never used, an empty one that
    /// creates nothing (docker's `ps` on a fresh host prints an empty table).
    pub fn open_existing(root: &Path) -> Result<Engine, EngineError> {
        if hull_db::path(root).exists() {
            return Engine::open(root);
        }
        Ok(Engine {
            root: root.to_path_buf(),
            conn: hull_db::open_existing(root)?,
            kept: None,
            store_ready: std::cell::Cell::new(false),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image store of this root, or `None` on a root that was never used (opened by
    /// [`Engine::open_existing`]): opening the store makes its directories, which a read-only
    /// command must not.
    pub fn image_store(&self) -> Result<Option<hull_image::ImageStore>, EngineError> {
        if !hull_db::path(&self.root).exists() {
            return Ok(None);
        }
        Ok(Some(hull_image::ImageStore::open(&self.root)?))
    }

    /// The image store of this root on the engine's own connection (each open of hull.db
    /// parses its whole schema; `run` would otherwise open it twice). Makes the store's
    /// directories once per engine: for the engine of a command that writes ([`Engine::open`]).
    pub fn images(&self) -> Result<hull_image::ImageStore<&Connection>, EngineError> {
        if self.store_ready.get() {
            return Ok(hull_image::ImageStore::prepared(&self.root, &self.conn));
        }
        let store = hull_image::ImageStore::with_conn(&self.root, &self.conn)?;
        self.store_ready.set(true);
        Ok(store)
    }

    /// Every container, oldest first; as [`Engine::find`], after the teardowns under way.
    pub fn list(&self) -> Result<Vec<Record>, EngineError> {
        let all = store::list(&self.conn)?;
        let busy: Vec<&Record> = all.iter().filter(|r| tearing_down(r)).collect();
        if busy.is_empty() {
            return Ok(all);
        }
        for r in busy {
            control::wait_monitor(r, TEARDOWN_WAIT);
        }
        store::list(&self.conn)
    }

    /// Waits for the teardowns under way (exited containers whose monitor still removes
    /// what they held: their anonymous volumes, their hold on the image).
    pub fn settle(&self) -> Result<(), EngineError> {
        self.list().map(drop)
    }

    /// A container by id, name or unique id prefix. One that exited while its monitor still
    /// takes it down is waited for, so no command races that teardown (and a removed `--rm`
    /// container is gone, its name free).
    pub fn find(&self, reference: &str) -> Result<Record, EngineError> {
        let record = store::find(&self.conn, reference)?;
        if !tearing_down(&record) {
            return Ok(record);
        }
        control::wait_monitor(&record, TEARDOWN_WAIT);
        match store::get(&self.conn, &record.id)? {
            Some(now) => Ok(now),
            None => Err(EngineError::NoSuchContainer(reference.to_string())),
        }
    }
}

/// An exited container whose monitor is still taking it down.
pub(crate) fn tearing_down(record: &Record) -> bool {
    record.state == State::Exited && record.monitor_pid.is_some()
}
