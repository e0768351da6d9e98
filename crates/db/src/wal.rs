//! Keeping hull.db's write-ahead log short, so that each new hull process, which rebuilds the
//! WAL index from every frame since the last checkpoint when it opens the file, starts fast.

use std::time::Duration;

use rusqlite::Connection;

/// WAL size from which [`checkpoint`] folds it into the database: about 128 frames of 4 KiB
/// pages, which a new connection reads in ~0.2 ms.
const CHECKPOINT_FROM_BYTES: u64 = 512 * 1024;

/// When the WAL has grown past [`CHECKPOINT_FROM_BYTES`], copies it into the database file
/// and empties it, without waiting for readers or writers. Meant for moments a process would
/// otherwise wait idle (hull-net runs it while the kernel removes a veth). Checkpointing only
/// past a size keeps its fsyncs off most runs. Best effort: when it cannot finish, the WAL is
/// only longer, and SQLite's auto-checkpoint still bounds it.
///
/// A TRUNCATE checkpoint, not a PASSIVE one: after a PASSIVE one only the next writer that
/// still sees the checkpoint's mark in the WAL index restarts the log, and each hull process
/// is usually the only one with the file open, so the next one rebuilds that index from the
/// log and loses the mark: the WAL then grew by every run (to MiBs, each read whole by the
/// next process) until SQLite's own auto-checkpoint. With no busy wait, TRUNCATE does what
/// PASSIVE does when another process holds a lock.
pub fn checkpoint(conn: &Connection) {
    let long = conn
        .path()
        .and_then(|db| std::fs::metadata(format!("{db}-wal")).ok())
        .is_some_and(|m| m.len() >= CHECKPOINT_FROM_BYTES);
    if long && conn.busy_timeout(Duration::ZERO).is_ok() {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let _ = crate::open::wait_when_busy(conn);
    }
}
