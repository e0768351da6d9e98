//! The `net_` tables in the engine's SQLite file (<root>/hull.db): opening it the way many
//! hull processes can share it (WAL, busy timeout, IMMEDIATE transactions), and the schema,
//! created by this crate's own migration so it coexists with other crates' tables.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("metadata database: {0}")]
    Sql(#[from] rusqlite::Error),
}

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS net_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS net_networks (
    name        TEXT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    bridge      TEXT NOT NULL UNIQUE,
    subnet      TEXT NOT NULL,
    gateway     TEXT NOT NULL,
    range_start INTEGER NOT NULL,
    range_end   INTEGER NOT NULL,
    internal    INTEGER NOT NULL,
    masquerade  INTEGER NOT NULL,
    mtu         INTEGER NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS net_leases (
    network      TEXT NOT NULL REFERENCES net_networks(name),
    ip           INTEGER NOT NULL,
    container_id TEXT NOT NULL,
    ifname       TEXT NOT NULL,
    PRIMARY KEY (network, ip),
    UNIQUE (container_id, ifname, network)
);
CREATE TABLE IF NOT EXISTS net_attachments (
    container_id TEXT NOT NULL,
    ifname       TEXT NOT NULL,
    network      TEXT NOT NULL,
    netns_path   TEXT NOT NULL,
    netns_dev    INTEGER NOT NULL,
    netns_ino    INTEGER NOT NULL,
    host_veth    TEXT NOT NULL UNIQUE,
    ip           INTEGER NOT NULL,
    prefix       INTEGER NOT NULL,
    gateway      INTEGER,
    mac          TEXT NOT NULL DEFAULT '',
    created      INTEGER NOT NULL,
    PRIMARY KEY (container_id, ifname)
);
CREATE TABLE IF NOT EXISTS net_ports (
    proto          TEXT NOT NULL,
    host_ip        TEXT NOT NULL,
    host_port      INTEGER NOT NULL,
    container_ip   TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_id   TEXT NOT NULL,
    ifname         TEXT NOT NULL,
    PRIMARY KEY (proto, host_ip, host_port)
);
";

/// Opens (creating if needed) `<root>/hull.db` and applies the `net_` schema.
///
/// Setting up a connection can meet SQLITE_BUSY that SQLite's busy handler does not wait out
/// (another process switching a new database to WAL, or recovering its WAL index): those are
/// retried with a short backoff for as long as the busy timeout would have waited.
pub fn open(root: &Path) -> Result<Connection, DbError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(1);
    loop {
        match open_once(root) {
            Err(DbError::Open { source, .. })
                if is_busy(&source) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn open_once(root: &Path) -> Result<Connection, DbError> {
    std::fs::create_dir_all(root).map_err(|source| DbError::Dir {
        path: root.display().to_string(),
        source,
    })?;
    let path = root.join("hull.db");
    let open_err = |source| DbError::Open {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open(&path).map_err(open_err)?;
    // Many hull processes (and hull-cni invocations) write at once: wait, don't fail.
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    // Each hull-cni call is a short-lived process: checkpointing (and fsyncing) on every
    // close would dominate its run time; SQLite's auto-checkpoint keeps the WAL bounded.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(open_err)?;
    // The first writer after a checkpoint truncates the WAL to what it writes, so the file's
    // size is what the next connection has to read (see `checkpoint`).
    conn.pragma_update(None, "journal_size_limit", 0)
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    migrate(&conn).map_err(open_err)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    let current: Option<i64> = conn
        .query_row("SELECT version FROM net_schema LIMIT 1", [], |r| r.get(0))
        .ok();
    if current == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {SCHEMA}
         DELETE FROM net_schema; INSERT INTO net_schema VALUES ({SCHEMA_VERSION}); COMMIT;"
    ))
}

/// Starts a write transaction that takes the write lock at once, so two processes never
/// both read "free" and then both write.
pub fn write_tx(conn: &mut Connection) -> Result<Transaction<'_>, DbError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// WAL size from which [`checkpoint`] folds it into the database: about 128 frames of 4 KiB
/// pages, which a new connection reads in ~0.2 ms.
const CHECKPOINT_FROM_BYTES: u64 = 512 * 1024;

/// When the WAL has grown past [`CHECKPOINT_FROM_BYTES`], copies it into the database file
/// without waiting for readers or writers (a PASSIVE checkpoint). Every hull-cni process
/// opens the database afresh and must read the whole WAL to rebuild its index, so a short
/// WAL keeps starts cheap; checkpointing only past a size keeps its fsyncs, and the one the
/// next writer does when it restarts the WAL, off most runs. Best effort: when it cannot
/// finish, the WAL is only longer, and SQLite's auto-checkpoint still bounds it.
pub fn checkpoint(conn: &Connection) {
    let long = conn
        .path()
        .and_then(|db| std::fs::metadata(format!("{db}-wal")).ok())
        .is_some_and(|m| m.len() >= CHECKPOINT_FROM_BYTES);
    if long {
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

/// Seconds since the epoch, for `created` columns.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
