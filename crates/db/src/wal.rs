//! Keeping hull.db's write-ahead log short, so that each new hull process, which rebuilds the
//! WAL index from every frame since the last checkpoint when it opens the file, starts fast.

use rusqlite::Connection;

/// WAL size from which [`checkpoint`] folds it into the database: about 128 frames of 4 KiB
/// pages, which a new connection reads in ~0.2 ms.
const CHECKPOINT_FROM_BYTES: u64 = 512 * 1024;

/// When the WAL has grown past [`CHECKPOINT_FROM_BYTES`], copies it into the database file
/// without waiting for readers or writers (a PASSIVE checkpoint). Meant for moments a process
/// would otherwise wait idle (hull-net runs it while the kernel removes a veth). Checkpointing
/// only past a size keeps its fsyncs, and the one the next writer does when it restarts the
/// WAL, off most runs. Best effort: when it cannot finish, the WAL is only longer, and
/// SQLite's auto-checkpoint still bounds it.
pub fn checkpoint(conn: &Connection) {
    let long = conn
        .path()
        .and_then(|db| std::fs::metadata(format!("{db}-wal")).ok())
        .is_some_and(|m| m.len() >= CHECKPOINT_FROM_BYTES);
    if long {
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}
