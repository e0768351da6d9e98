//! hull-db: the one owner of the engine's SQLite file, `<root>/hull.db`. It opens the file the
//! way many hull processes (the CLI, hull-cni, monitors) can share it at once, and brings it to
//! the schema this binary knows by applying every subsystem's migrations, in one order, under
//! one `PRAGMA user_version`. The subsystems (hull-image, hull-net, the engine) keep only their
//! queries and write their own `<subsystem>_` tables.
//!
//! A crate of its own, not a module of hull-sys: hull-runtime depends on hull-sys and is a
//! small static binary that must not compile SQLite.

mod migrations;
mod open;
mod wal;

use std::path::{Path, PathBuf};

pub use migrations::schema_version;
pub use open::{keep_small, open, open_existing, write_tx};
pub use wal::checkpoint;

/// The database's file name under an engine root.
pub const FILE_NAME: &str = "hull.db";

/// The database file of the engine root `root`.
pub fn path(root: &Path) -> PathBuf {
    root.join(FILE_NAME)
}

/// Errors of opening hull.db and bringing its schema up to date.
///
/// The causes are part of each message rather than error sources, so a chain printed with
/// `{:#}` names each cause once.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: cannot create its directory or make it private: {err}")]
    Dir { path: String, err: std::io::Error },
    #[error("database {path}: {err}")]
    Open { path: String, err: rusqlite::Error },
    #[error("database {path}: migration {number} ({subsystem}) failed: {err}")]
    Migrate {
        path: String,
        number: usize,
        subsystem: &'static str,
        err: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, but this hull knows versions up to {known}: \
         it was written by a newer hull"
    )]
    UnknownVersion {
        path: String,
        found: i64,
        known: usize,
    },
}
