//! Every subsystem's schema, as one append-only list of migrations applied in order;
//! `PRAGMA user_version` is the number applied.
//!
//! One list rather than one per subsystem: any hull process that opens the file brings every
//! table to this binary's schema, so no process ever meets a database whose subsystems sit at
//! versions it did not test together, and a later subsystem's tables can reference an
//! earlier one's.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::DbError;

/// One schema change, owned by one subsystem (whose tables are all prefixed `<subsystem>_`).
#[derive(Debug)]
pub(crate) struct Migration {
    pub subsystem: &'static str,
    pub sql: &'static str,
}

/// Append only: a released entry never changes, since databases record how many they have
/// applied, not which.
const MIGRATIONS: &[Migration] = &[
    Migration {
        subsystem: "image",
        sql: include_str!("migrations/0001_image.sql"),
    },
    Migration {
        subsystem: "net",
        sql: include_str!("migrations/0002_net.sql"),
    },
    Migration {
        subsystem: "engine",
        sql: include_str!("migrations/0003_engine.sql"),
    },
    Migration {
        subsystem: "engine",
        sql: include_str!("migrations/0004_volumes.sql"),
    },
    Migration {
        subsystem: "image",
        sql: include_str!("migrations/0005_image_mounts.sql"),
    },
    Migration {
        subsystem: "net",
        sql: include_str!("migrations/0006_net_names.sql"),
    },
];

/// The schema version this binary brings databases to: the number of migrations it knows.
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    apply(conn, path, MIGRATIONS)
}

fn apply(conn: &mut Connection, path: &Path, list: &[Migration]) -> Result<(), DbError> {
    let shown = || path.display().to_string();
    let open_err = |err| DbError::Open { path: shown(), err };
    // The common case, a database already up to date, takes no write lock.
    if applied(conn, path, list)? == list.len() {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let done = applied(&tx, path, list)?;
    for (i, m) in list.iter().enumerate().skip(done) {
        tx.execute_batch(m.sql).map_err(|err| DbError::Migrate {
            path: shown(),
            number: i + 1,
            subsystem: m.subsystem,
            err,
        })?;
    }
    if done < list.len() {
        // The list is a few dozen entries: the count always fits.
        let version = i64::try_from(list.len()).unwrap_or(i64::MAX);
        tx.pragma_update(None, "user_version", version)
            .map_err(open_err)?;
    }
    tx.commit().map_err(open_err)
}

/// How many of `list` the database has applied; one newer than `list` is refused.
fn applied(conn: &Connection, path: &Path, list: &[Migration]) -> Result<usize, DbError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|err| DbError::Open {
            path: path.display().to_string(),
            err,
        })?;
    match usize::try_from(found) {
        Ok(n) if n <= list.len() => Ok(n),
        _ => Err(DbError::UnknownVersion {
            path: path.display().to_string(),
            found,
            known: list.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Migration = Migration {
        subsystem: "a",
        sql: "CREATE TABLE a_t (x INTEGER);",
    };
    const B: Migration = Migration {
        subsystem: "b",
        sql: "INSERT INTO a_t VALUES (1); CREATE TABLE b_t (y INTEGER);",
    };
    const BAD: Migration = Migration {
        subsystem: "c",
        sql: "CREATE TABLE c_t (z INTEGER); INSERT INTO nowhere VALUES (1);",
    };

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn applies_only_what_the_db_lacks_in_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new("mem");
        apply(&mut conn, path, &[A]).unwrap();
        assert_eq!(version(&conn), 1);
        apply(&mut conn, path, &[A, B]).unwrap();
        assert_eq!(version(&conn), 2);
        // A ran once (else CREATE TABLE a_t would have failed), B once.
        apply(&mut conn, path, &[A, B]).unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM a_t"), 1);
    }

    #[test]
    fn a_failed_migration_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new("/x/hull.db");
        apply(&mut conn, path, &[A]).unwrap();
        let err = apply(&mut conn, path, &[A, B, BAD]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("database /x/hull.db: migration 3 (c) failed: "),
            "{msg}"
        );
        assert_eq!(version(&conn), 1);
        assert_eq!(count(&conn, "SELECT count(*) FROM a_t"), 0);
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM sqlite_master WHERE name IN ('b_t', 'c_t')"
            ),
            0
        );
    }

    #[test]
    fn more_applied_than_known_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new("/x/hull.db");
        apply(&mut conn, path, &[A, B]).unwrap();
        let err = apply(&mut conn, path, &[A]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "database /x/hull.db has schema version 2, but this hull knows versions up to 1: \
             it was written by a newer hull"
        );
    }

    #[test]
    fn every_table_belongs_to_its_subsystem() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (i, m) in MIGRATIONS.iter().enumerate() {
            apply(&mut conn, Path::new("mem"), &MIGRATIONS[..=i]).unwrap();
            let mut st = conn
                .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
                .unwrap();
            let names: Vec<String> = st
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let prefixes: Vec<String> = MIGRATIONS[..=i]
                .iter()
                .map(|m| format!("{}_", m.subsystem))
                .collect();
            for n in names {
                assert!(
                    prefixes.iter().any(|p| n.starts_with(p.as_str())) || n.starts_with("sqlite_"),
                    "table {n} (after {}) has no subsystem prefix",
                    m.subsystem
                );
            }
        }
    }
}
