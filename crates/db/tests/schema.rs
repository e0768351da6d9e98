//! Opening hull.db: a fresh file, one made before hull-db kept a schema version, and one made
//! by a newer hull.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::TempRoot;
use rusqlite::Connection;

fn tables(conn: &Connection) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_version(conn: &Connection) -> usize {
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    usize::try_from(v).unwrap()
}

const ALL_TABLES: [&str; 12] = [
    "engine_containers",
    "engine_volumes",
    "image_holders",
    "image_layers",
    "image_manifest_layers",
    "image_manifests",
    "image_mounts",
    "image_tags",
    "net_attachments",
    "net_leases",
    "net_networks",
    "net_ports",
];

#[test]
fn fresh_db_gets_every_table_and_the_settings() {
    let root = TempRoot::new("fresh");
    let conn = hull_db::open(&root.path().join("a/b")).unwrap();
    assert_eq!(tables(&conn), ALL_TABLES);
    assert_eq!(user_version(&conn), hull_db::schema_version());
    assert_eq!(hull_db::schema_version(), 6);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let limit: i64 = conn
        .pragma_query_value(None, "journal_size_limit", |r| r.get(0))
        .unwrap();
    assert_eq!(limit, 0);
    drop(conn);
    // A second open finds it up to date and changes nothing.
    let conn = hull_db::open(&root.path().join("a/b")).unwrap();
    assert_eq!(tables(&conn), ALL_TABLES);
    assert_eq!(user_version(&conn), hull_db::schema_version());
}

#[test]
fn db_of_the_previous_code_upgrades_keeping_its_rows() {
    let root = TempRoot::new("upgrade");
    std::fs::create_dir_all(root.path()).unwrap();
    {
        let old = Connection::open(hull_db::path(root.path())).unwrap();
        old.pragma_update(None, "journal_mode", "WAL").unwrap();
        old.execute_batch(include_str!("fixtures/old-schema.sql"))
            .unwrap();
        old.execute_batch(
            "INSERT INTO image_manifests VALUES ('sha256:m', 'sha256:c', 'oci', 10, NULL, 1);
             INSERT INTO image_manifest_layers VALUES ('sha256:m', 0, 'sha256:b', 'tar', 5, 'sha256:d', 'sha256:d');
             INSERT INTO image_layers VALUES ('sha256:d', 'sha256:d', NULL, 5);
             INSERT INTO image_tags VALUES ('busybox:latest', 'sha256:m');
             INSERT INTO image_holders VALUES ('sha256:m', 'ctr1');
             INSERT INTO net_networks VALUES ('hull', 'id1', 'hull0', '10.88.0.0/16', '10.88.0.1', 2, 65534, 0, 1, 1500, 1);
             INSERT INTO net_leases VALUES ('hull', 3, 'ctr1', 'eth0');
             INSERT INTO net_attachments VALUES ('ctr1', 'eth0', 'hull', '/proc/1/ns/net', 4, 5, 'hullv1', 3, 16, 1, 'aa:bb', 1);
             INSERT INTO net_ports VALUES ('tcp', '0.0.0.0', 8080, '10.88.0.3', 80, 'ctr1', 'eth0');",
        )
        .unwrap();
        assert_eq!(user_version(&old), 0);
    }
    let conn = hull_db::open(root.path()).unwrap();
    assert_eq!(user_version(&conn), hull_db::schema_version());
    // net_schema, hull-net's own marker, is replaced by user_version.
    assert_eq!(tables(&conn), ALL_TABLES);
    // The old schema had no engine tables nor image mount counts: they are new and empty.
    for table in ALL_TABLES
        .iter()
        .filter(|t| !t.starts_with("engine_") && **t != "image_mounts")
    {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "{table} lost its row");
    }
    let tag: String = conn
        .query_row("SELECT manifest FROM image_tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tag, "sha256:m");
    let mac: String = conn
        .query_row("SELECT mac FROM net_attachments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mac, "aa:bb");
}

#[test]
fn db_of_a_newer_hull_is_refused() {
    let root = TempRoot::new("newer");
    let conn = hull_db::open(root.path()).unwrap();
    let newer = i64::try_from(hull_db::schema_version()).unwrap() + 1;
    conn.pragma_update(None, "user_version", newer).unwrap();
    drop(conn);
    let err = hull_db::open(root.path()).unwrap_err();
    let msg = err.to_string();
    let path = hull_db::path(root.path()).display().to_string();
    assert!(
        matches!(err, hull_db::DbError::UnknownVersion { found, .. } if found == newer),
        "{msg}"
    );
    assert!(msg.contains(&path), "{msg}");
    assert!(msg.contains(&format!("schema version {newer}")), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    // Refused without a change: the file still says what the newer hull wrote.
    let conn = Connection::open(hull_db::path(root.path())).unwrap();
    assert_eq!(i64::try_from(user_version(&conn)).unwrap(), newer);
}

#[test]
fn negative_user_version_is_refused() {
    let root = TempRoot::new("negative");
    drop(hull_db::open(root.path()).unwrap());
    let conn = Connection::open(hull_db::path(root.path())).unwrap();
    conn.pragma_update(None, "user_version", -1).unwrap();
    drop(conn);
    let err = hull_db::open(root.path()).unwrap_err();
    assert!(
        matches!(err, hull_db::DbError::UnknownVersion { found: -1, .. }),
        "{err}"
    );
}

#[test]
fn unwritable_directory_names_the_db() {
    let root = TempRoot::new("notdir");
    std::fs::create_dir_all(root.path()).unwrap();
    let file = root.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = hull_db::open(&file.join("root")).unwrap_err();
    assert!(matches!(err, hull_db::DbError::Dir { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{}/root/hull.db", file.display())),
        "{err}"
    );
}
