//! hull.db's WAL is emptied by `checkpoint` once long, also when the connection that
//! checkpoints is not the one that wrote it: each hull process opens the file alone, and the
//! next one reads the whole WAL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::TempRoot;

fn wal_len(root: &std::path::Path) -> u64 {
    let wal = hull_db::path(root).with_extension("db-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[test]
fn checkpoint_by_a_later_process_empties_a_long_wal() {
    let root = TempRoot::new("wal");
    {
        let mut conn = hull_db::open(root.path()).unwrap();
        let tx = hull_db::write_tx(&mut conn).unwrap();
        for i in 0..400 {
            let chain = format!("{i:04}{}", "x".repeat(2000));
            tx.execute(
                "INSERT INTO image_layers (chain_id, diff_id, parent, tar_size) VALUES (?1, ?1, NULL, 1)",
                [&chain],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let long = wal_len(root.path());
    assert!(long >= 512 * 1024, "the test's WAL is only {long} bytes");
    // As the next hull process: its connection rebuilt the WAL index when it opened.
    let conn = hull_db::open(root.path()).unwrap();
    hull_db::checkpoint(&conn);
    assert_eq!(wal_len(root.path()), 0, "the WAL was {long} bytes");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM image_layers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 400);
    drop(conn);
    // The next writer starts the log from its beginning.
    let conn = hull_db::open(root.path()).unwrap();
    conn.execute(
        "INSERT INTO image_layers (chain_id, diff_id, parent, tar_size) VALUES ('a', 'a', NULL, 1)",
        [],
    )
    .unwrap();
    let after = wal_len(root.path());
    assert!(after < 64 * 1024, "the WAL is {after} bytes after one row");
}
