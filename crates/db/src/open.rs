//! Opening hull.db: the connection settings every hull process uses, and the retry of the
//! SQLITE_BUSY that connection setup can meet while another process creates or recovers the
//! file.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::{migrations, DbError};

/// How long a statement waits for another process's lock, and how long opening retries.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens (creating it and its directory if needed) `<root>/hull.db`, and applies the schema
/// migrations it lacks.
///
/// Setting up a connection can meet SQLITE_BUSY that SQLite's busy handler does not wait out
/// (another process switching a new database to WAL, or recovering its WAL index): those are
/// retried with a short backoff for as long as the busy timeout would have waited.
pub fn open(root: &Path) -> Result<Connection, DbError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match open_once(root) {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// hull.db of `root` if it exists; otherwise an empty database of the same schema in memory,
/// so a read-only command on a root that was never used sees nothing, and creates nothing.
pub fn open_existing(root: &Path) -> Result<Connection, DbError> {
    let path = crate::path(root);
    if path.exists() {
        return open(root);
    }
    let open_err = |err| DbError::Open {
        path: path.display().to_string(),
        err,
    };
    let mut conn = Connection::open_in_memory().map_err(open_err)?;
    migrations::migrate(&mut conn, &path)?;
    Ok(conn)
}

fn is_busy(err: &DbError) -> bool {
    let (DbError::Open { err, .. } | DbError::Migrate { err, .. }) = err else {
        return false;
    };
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The page cache of a long-lived connection ([`keep_small`]): the engine's tables of a few
/// hundred containers fit.
const LONG_LIVED_CACHE_KIB: i64 = 128;

fn open_once(root: &Path) -> Result<Connection, DbError> {
    let path = crate::path(root);
    let shown = || path.display().to_string();
    std::fs::create_dir_all(root).map_err(|err| DbError::Dir { path: shown(), err })?;
    let open_err = |err| DbError::Open { path: shown(), err };
    let mut conn = Connection::open(&path).map_err(open_err)?;
    // Many hull processes (and hull-cni invocations) write at once: wait, don't fail.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    // Most hull processes are short-lived (each hull-cni call, each CLI command):
    // checkpointing (and fsyncing) on every close would dominate their run time; SQLite's
    // auto-checkpoint and `checkpoint` keep the WAL bounded.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(open_err)?;
    // The first writer after a checkpoint truncates the WAL to what it writes, so the file's
    // size is what the next connection has to read (see `checkpoint`).
    conn.pragma_update(None, "journal_size_limit", 0)
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    migrations::migrate(&mut conn, &path)?;
    Ok(conn)
}

/// Bounds the page cache of a connection a process keeps for long (a container's monitor lives
/// as long as its container, one per container): SQLite's default lets each one hold ~2 MB of
/// pages it read once, e.g. while checkpointing, for the rest of its life.
///
/// It also turns off the connection's lookaside allocator, a 120 KB block of small-allocation
/// slots per connection (it only saves malloc calls, and a monitor makes few).
pub fn keep_small(conn: &Connection) -> Result<(), DbError> {
    // SAFETY: the handle is this live connection's; LOOKASIDE with a NULL buffer and no slots
    // frees and disables it (SQLITE_BUSY, ignored, while slots are in use: it then stays).
    unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0,
            0,
        );
    }
    conn.pragma_update(None, "cache_size", -LONG_LIVED_CACHE_KIB)
        .map_err(|err| DbError::Open {
            path: conn.path().unwrap_or_default().to_string(),
            err,
        })
}

/// Starts a write transaction that takes the write lock at once, so two processes never
/// both read "free" and then both write.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}
