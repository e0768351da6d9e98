//! Eight processes open one new hull.db at once (racing to create it, switch it to WAL and
//! migrate it) and write to it in a loop, reopening it as they go: none may fail, and every
//! row must be there. The processes are this test binary run again, told by the environment
//! which child it is.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::TempRoot;

const PROCESSES: usize = 8;
const OPENS: usize = 10;
const ROWS_PER_OPEN: usize = 5;
const ROUNDS: usize = 20;
const TEST: &str = "eight_processes_open_and_write_at_once";

fn now_ms() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    u64::try_from(ms).unwrap()
}

/// What one child does: wait for the common start, then open and write.
fn child(root: &str, index: &str, start_ms: u64) {
    let root = std::path::Path::new(root);
    if let Some(wait) = start_ms.checked_sub(now_ms()) {
        std::thread::sleep(Duration::from_millis(wait));
    }
    for open in 0..OPENS {
        let mut conn = hull_db::open(root).unwrap_or_else(|e| panic!("child {index}: {e}"));
        for row in 0..ROWS_PER_OPEN {
            let chain = format!("p{index}-{open}-{row}");
            // Alternate single statements and IMMEDIATE transactions, as the crates do.
            if row % 2 == 0 {
                conn.execute(
                    "INSERT INTO image_layers (chain_id, diff_id, parent, tar_size) VALUES (?1, ?1, NULL, 1)",
                    [&chain],
                )
                .unwrap_or_else(|e| panic!("child {index}: {e}"));
            } else {
                let tx =
                    hull_db::write_tx(&mut conn).unwrap_or_else(|e| panic!("child {index}: {e}"));
                tx.execute(
                    "INSERT INTO image_layers (chain_id, diff_id, parent, tar_size) VALUES (?1, ?1, NULL, 1)",
                    [&chain],
                )
                .unwrap_or_else(|e| panic!("child {index}: {e}"));
                tx.commit().unwrap_or_else(|e| panic!("child {index}: {e}"));
            }
        }
        hull_db::checkpoint(&conn);
    }
}

#[test]
fn eight_processes_open_and_write_at_once() {
    if let (Ok(root), Ok(index), Ok(start)) = (
        std::env::var("HULL_DB_CHILD_ROOT"),
        std::env::var("HULL_DB_CHILD_INDEX"),
        std::env::var("HULL_DB_CHILD_START_MS"),
    ) {
        child(&root, &index, start.parse().unwrap());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for round in 0..ROUNDS {
        let root = TempRoot::new(&format!("procs{round}"));
        // Late enough that every child is running and waiting when it comes.
        let start = now_ms() + 200;
        let children: Vec<_> = (0..PROCESSES)
            .map(|i| {
                Command::new(&exe)
                    .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                    .env("HULL_DB_CHILD_ROOT", root.path())
                    .env("HULL_DB_CHILD_INDEX", i.to_string())
                    .env("HULL_DB_CHILD_START_MS", start.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut failed = Vec::new();
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            if !out.status.success() {
                failed.push(format!(
                    "child {i}: {}\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        assert!(failed.is_empty(), "round {round}:\n{}", failed.join("\n"));
        let conn = hull_db::open(root.path()).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM image_layers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            usize::try_from(rows).unwrap(),
            PROCESSES * OPENS * ROWS_PER_OPEN
        );
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(usize::try_from(version).unwrap(), hull_db::schema_version());
    }
}
