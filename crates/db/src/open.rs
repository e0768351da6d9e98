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

/// The first wait for another process's lock, doubled at each retry up to [`LONGEST_PAUSE`].
/// Locks here are held for well under a millisecond (one container's rows), and two hull
/// processes of one `run` (the command and its monitor) open the file at the same moment:
/// SQLite's own busy handler sleeps 1, 2, 5, 10 ms..., so a first collision would cost the
/// run a millisecond of sleep for a lock freed a few microseconds later.
const FIRST_PAUSE: Duration = Duration::from_micros(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(10);

/// The pause before retry `n` (0-based) of one wait.
fn pause(n: u32) -> Duration {
    FIRST_PAUSE
        .checked_mul(1u32 << n.min(20))
        .map_or(LONGEST_PAUSE, |p| p.min(LONGEST_PAUSE))
}

/// How long the pauses before retry `n` add up to.
fn waited(n: u32) -> Duration {
    (0..n).map(pause).sum()
}

/// SQLite's busy handler: `n` is how many times it was called for this wait already.
fn on_busy(n: i32) -> bool {
    let n = u32::try_from(n).unwrap_or(0);
    if waited(n) >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(pause(n));
    true
}

extern "C" fn busy_callback(_: *mut std::ffi::c_void, n: std::ffi::c_int) -> std::ffi::c_int {
    std::ffi::c_int::from(on_busy(n))
}

/// Makes `conn` wait out another process's lock (short pauses first) for up to
/// [`BUSY_TIMEOUT`]. (rusqlite's `busy_handler` wants the connection mutably, which the
/// checkpoint's callers lend only shared.)
pub(crate) fn wait_when_busy(conn: &Connection) -> rusqlite::Result<()> {
    // SAFETY: the handle is this live connection's; the callback is a plain function that
    // keeps no pointer and cannot unwind.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_busy_handler(
            conn.handle(),
            Some(busy_callback),
            std::ptr::null_mut(),
        )
    };
    match rc {
        rusqlite::ffi::SQLITE_OK => Ok(()),
        rc => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            None,
        )),
    }
}

/// Opens (creating it and its directory if needed) `<root>/hull.db`, and applies the schema
/// migrations it lacks.
///
/// Setting up a connection can meet SQLITE_BUSY that SQLite's busy handler does not wait out
/// (another process switching a new database to WAL, or recovering its WAL index): those are
/// retried with a short backoff for as long as the busy timeout would have waited.
pub fn open(root: &Path) -> Result<Connection, DbError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut n = 0;
    loop {
        match open_once(root) {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause(n));
                n += 1;
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
    make_root_private(root).map_err(|err| DbError::Dir { path: shown(), err })?;
    let open_err = |err| DbError::Open { path: shown(), err };
    let mut conn = Connection::open(&path).map_err(open_err)?;
    // Many hull processes (and hull-cni invocations) write at once: wait, don't fail.
    wait_when_busy(&conn).map_err(open_err)?;
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

/// Makes `root` (if needed) and keeps it private: beside hull.db it holds every container's
/// config.json (its environment, secrets included) and merged root (the setuid binaries of its
/// image), reachable by path from any /proc/self/mountinfo. Only root may enter it, as docker's
/// 0710 and podman's 0700 data roots; checked at every open, so a root made open before (by
/// an older hull, or by hand) is closed too. Not a directory others share (sticky, as /tmp,
/// or /): closing it would break them. One stat on every open but the first: hull.db is
/// opened by every hull process, on the path of every container start.
fn make_root_private(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mode = match std::fs::metadata(root) {
        Ok(meta) => meta.permissions().mode(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Its parents as any directory; the root itself private from its first moment.
            if let Some(parent) = root.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(root) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::metadata(root)?.permissions().mode()
                }
                made => return made,
            }
        }
        Err(e) => return Err(e),
    };
    let open = mode & 0o077 != 0;
    if open && mode & 0o1000 == 0 && std::fs::canonicalize(root)? != Path::new("/") {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A root made open before is closed at the next open; a directory others share is not.
    #[test]
    fn a_root_is_made_private_but_a_shared_one_is_left() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("hull-db-private-{}", std::process::id()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let (made, open, shared) = (
            base.join("made/root"),
            base.join("open"),
            base.join("shared"),
        );
        for (dir, bits) in [(&open, 0o755), (&shared, 0o1777)] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(bits)).unwrap();
        }
        for dir in [&made, &open, &shared] {
            make_root_private(dir).unwrap();
        }
        assert_eq!(mode(&made), 0o700);
        assert_eq!(mode(&open), 0o700);
        assert_eq!(mode(&shared), 0o1777);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn pauses_start_short_and_add_up_to_the_timeout() {
        assert_eq!(pause(0), FIRST_PAUSE);
        assert_eq!(pause(1), FIRST_PAUSE * 2);
        assert_eq!(pause(40), LONGEST_PAUSE);
        assert!(waited(5) < Duration::from_millis(1));
        let last = (0..).find(|&n| waited(n) >= BUSY_TIMEOUT).unwrap();
        assert!(waited(last) < BUSY_TIMEOUT + LONGEST_PAUSE);
        assert!(on_busy(0));
        assert!(!on_busy(i32::try_from(last).unwrap()));
    }
}
