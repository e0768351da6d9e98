//! What hull-net's queries share about the engine's SQLite file (<root>/hull.db): their error
//! and the time they record. hull-db opens the file and its migrations create the `net_`
//! tables.

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Open(#[from] hull_db::DbError),
    #[error("metadata database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Seconds since the epoch, for `created` columns.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
