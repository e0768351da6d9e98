//! The engine's rows in hull.db (`engine_containers`): one per container, written before any
//! kernel object of it exists; each change of state is one statement, guarded by the state it
//! expects, so two hull processes never both move one container.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::options::{Settings, UserStop};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Bundle written, nothing running (`create`).
    Created,
    /// A monitor owns it and is making its kernel objects.
    Starting,
    Running,
    /// Its process exited; its monitor waits out the restart policy's delay to start it again.
    Restarting,
    /// Its process exited and its kernel objects are gone (or being removed by its monitor).
    Exited,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Starting => "starting",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Exited => "exited",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "created" => State::Created,
            "starting" => State::Starting,
            "running" => State::Running,
            "restarting" => State::Restarting,
            _ => State::Exited,
        }
    }

    /// A monitor is responsible for the container.
    pub fn is_live(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Restarting)
    }
}

/// One container, as stored (and as a starter hands it to the early monitor it names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub command: Vec<String>,
    pub created: String,
    pub state: State,
    pub settings: Settings,
    pub monitor_pid: Option<i32>,
    pub monitor_start: Option<u64>,
    pub pid: Option<i32>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, name, image, image_id, command, created, state, settings, monitor_pid, \
                       monitor_start, pid, started, finished, exit_code, reason";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Record> {
    let json_err = |i, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let command: String = r.get(4)?;
    let settings: String = r.get(7)?;
    let state: String = r.get(6)?;
    let monitor_start: Option<i64> = r.get(9)?;
    Ok(Record {
        id: r.get(0)?,
        name: r.get(1)?,
        image: r.get(2)?,
        image_id: r.get(3)?,
        command: serde_json::from_str(&command).map_err(|e| json_err(4, e))?,
        created: r.get(5)?,
        state: State::parse(&state),
        settings: serde_json::from_str(&settings).map_err(|e| json_err(7, e))?,
        monitor_pid: r.get(8)?,
        monitor_start: monitor_start.and_then(|s| u64::try_from(s).ok()),
        pid: r.get(10)?,
        started: r.get(11)?,
        finished: r.get(12)?,
        exit_code: r.get(13)?,
        reason: r.get(14)?,
    })
}

fn encode<T: Serialize>(v: &T) -> Result<String, EngineError> {
    serde_json::to_string(v)
        .map_err(|e| EngineError::Invalid(format!("encoding a container record: {e}")))
}

/// Adds a new container, with what `also` writes in the same transaction; a name already taken
/// is refused.
pub fn insert(
    conn: &mut Connection,
    r: &Record,
    also: impl FnOnce(&Connection) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let tx = hull_db::write_tx(conn)?;
    let taken: Option<String> = tx
        .query_row(
            "SELECT id FROM engine_containers WHERE name = ?1",
            [&r.name],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(id) = taken {
        return Err(EngineError::NameInUse {
            name: r.name.clone(),
            id,
        });
    }
    tx.execute(
        &format!("INSERT INTO engine_containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, NULL, NULL, NULL, NULL)"),
        params![
            r.id,
            r.name,
            r.image,
            r.image_id,
            encode(&r.command)?,
            r.created,
            r.state.as_str(),
            encode(&r.settings)?,
            r.monitor_pid,
            r.monitor_start.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        ],
    )?;
    also(&tx)?;
    tx.commit()?;
    Ok(())
}

/// Renames a container; a name another container has is refused.
pub fn rename(conn: &mut Connection, id: &str, name: &str) -> Result<(), EngineError> {
    let tx = hull_db::write_tx(conn)?;
    let taken: Option<String> = tx
        .query_row(
            "SELECT id FROM engine_containers WHERE name = ?1 AND id != ?2",
            params![name, id],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(other) = taken {
        return Err(EngineError::NameInUse {
            name: name.to_string(),
            id: other,
        });
    }
    if tx.execute(
        "UPDATE engine_containers SET name = ?2 WHERE id = ?1",
        params![id, name],
    )? == 0
    {
        return Err(EngineError::NoSuchContainer(id.to_string()));
    }
    tx.commit()?;
    Ok(())
}

/// The container's name now (a `rename` may have changed it since a record was read).
pub fn name(conn: &Connection, id: &str) -> Result<Option<String>, EngineError> {
    Ok(conn
        .query_row(
            "SELECT name FROM engine_containers WHERE id = ?1",
            [id],
            |row| row.get(0),
        )
        .optional()?)
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Record>, EngineError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM engine_containers WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// All containers, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<Record>, EngineError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM engine_containers ORDER BY created, id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What [`watched`] returns of a container: enough to check its monitor.
#[derive(Debug)]
pub struct Watched {
    pub id: String,
    pub state: State,
    pub monitor_pid: Option<i32>,
    pub monitor_start: Option<u64>,
}

/// The containers a monitor is responsible for: live ones, and exited ones whose monitor is
/// still named (taking them down), oldest first. Only these columns, of only these rows: every
/// command that writes checks them when it opens the engine, and decoding every row's
/// settings made each `run` slower with each container kept.
pub fn watched(conn: &Connection) -> Result<Vec<Watched>, EngineError> {
    let mut stmt = conn.prepare(
        "SELECT id, state, monitor_pid, monitor_start FROM engine_containers \
         WHERE state != 'created' \
         AND (state IN ('starting', 'running', 'restarting') OR monitor_pid IS NOT NULL) \
         ORDER BY created, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let state: String = r.get(1)?;
        let monitor_start: Option<i64> = r.get(3)?;
        Ok(Watched {
            id: r.get(0)?,
            state: State::parse(&state),
            monitor_pid: r.get(2)?,
            monitor_start: monitor_start.and_then(|s| u64::try_from(s).ok()),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A container by full id, name, or unique id prefix.
pub fn find(conn: &Connection, reference: &str) -> Result<Record, EngineError> {
    if let Some(r) = get(conn, reference)? {
        return Ok(r);
    }
    if let Some(r) = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM engine_containers WHERE name = ?1"),
            [reference],
            from_row,
        )
        .optional()?
    {
        return Ok(r);
    }
    let is_hex = !reference.is_empty() && reference.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM engine_containers WHERE substr(id, 1, ?2) = ?1 LIMIT 2"
        ))?;
        let found: Vec<Record> = stmt
            .query_map(
                params![
                    reference,
                    i64::try_from(reference.len()).unwrap_or(i64::MAX)
                ],
                from_row,
            )?
            .collect::<Result<_, _>>()?;
        match found.len() {
            1 => {
                return found
                    .into_iter()
                    .next()
                    .ok_or_else(|| EngineError::NoSuchContainer(reference.into()))
            }
            0 => {}
            _ => return Err(EngineError::Ambiguous(reference.to_string())),
        }
    }
    Err(EngineError::NoSuchContainer(reference.to_string()))
}

/// A monitor takes the container (created or exited) over: intent, before it makes anything.
/// A start by the user begins the restart policy afresh (no restarts, no user stop). The row
/// as it is now; or the state that forbids it (None: there is no such container).
pub fn claim(
    conn: &mut Connection,
    id: &str,
    monitor_pid: i32,
    monitor_start: u64,
) -> Result<Result<Record, Option<State>>, EngineError> {
    let start = i64::try_from(monitor_start).unwrap_or(i64::MAX);
    let tx = hull_db::write_tx(conn)?;
    let Some(mut record) = get(&tx, id)? else {
        return Ok(Err(None));
    };
    if !matches!(record.state, State::Created | State::Exited) {
        return Ok(Err(Some(record.state)));
    }
    record.settings.restart_count = 0;
    record.settings.user_stop = Default::default();
    tx.execute(
        "UPDATE engine_containers SET state = 'starting', monitor_pid = ?2, monitor_start = ?3,
           pid = NULL, exit_code = NULL, finished = NULL, reason = NULL, settings = ?4
         WHERE id = ?1 AND state IN ('created', 'exited')",
        params![id, monitor_pid, start, encode(&record.settings)?],
    )?;
    tx.commit()?;
    record.state = State::Starting;
    record.monitor_pid = Some(monitor_pid);
    record.monitor_start = Some(monitor_start);
    record.pid = None;
    record.exit_code = None;
    record.finished = None;
    record.reason = None;
    Ok(Ok(record))
}

/// Records what a user did to a container (stop, kill), for its monitor's restart policy; the
/// flags only add up until the next start. Returns the row as it is now.
pub fn note_user_stop(
    conn: &mut Connection,
    id: &str,
    stop: UserStop,
) -> Result<Option<Record>, EngineError> {
    let tx = hull_db::write_tx(conn)?;
    let Some(mut record) = get(&tx, id)? else {
        return Ok(None);
    };
    let was = record.settings.user_stop;
    record.settings.user_stop = UserStop {
        cancelled: was.cancelled || stop.cancelled,
        signalled: was.signalled || stop.signalled,
    };
    if record.settings.user_stop != was {
        tx.execute(
            "UPDATE engine_containers SET settings = ?2 WHERE id = ?1",
            params![id, encode(&record.settings)?],
        )?;
        tx.commit()?;
    }
    Ok(Some(record))
}

/// The monitor waits to restart the container: its last exit, one more restart counted.
/// Returns false (and changes nothing) when the user has stopped it meanwhile.
pub fn set_restarting(
    conn: &mut Connection,
    id: &str,
    code: i32,
    finished: &str,
) -> Result<bool, EngineError> {
    let tx = hull_db::write_tx(conn)?;
    let Some(mut record) = get(&tx, id)? else {
        return Ok(false);
    };
    if record.settings.user_stop.cancelled {
        return Ok(false);
    }
    record.settings.restart_count = record.settings.restart_count.saturating_add(1);
    tx.execute(
        "UPDATE engine_containers SET state = 'restarting', pid = NULL, exit_code = ?2,
           finished = ?3, settings = ?4 WHERE id = ?1",
        params![id, code, finished, encode(&record.settings)?],
    )?;
    tx.commit()?;
    Ok(true)
}

/// The container runs (its process `pid`, since `started`). Returns what a user did to it
/// while it was starting: a `stop`, `kill` or `rm -f` then found no process to signal, and
/// the monitor acts on it now.
pub fn set_running(
    conn: &Connection,
    id: &str,
    pid: i32,
    started: &str,
) -> Result<UserStop, EngineError> {
    /// Only this of the settings, the rest skipped unbuilt.
    #[derive(serde::Deserialize)]
    struct Noted {
        #[serde(default)]
        user_stop: UserStop,
    }
    let settings: Option<String> = conn
        .query_row(
            "UPDATE engine_containers SET state = 'running', pid = ?2, started = ?3 WHERE id = ?1
             RETURNING settings",
            params![id, pid, started],
            |row| row.get(0),
        )
        .optional()?;
    Ok(settings
        .and_then(|s| serde_json::from_str::<Noted>(&s).ok())
        .map(|n| n.user_stop)
        .unwrap_or_default())
}

/// The end of a container: its exit status, and `reason` when it was not the process's own
/// doing.
#[derive(Debug, Clone, Copy)]
pub struct Exit<'a> {
    pub code: i32,
    pub finished: &'a str,
    pub reason: Option<&'a str>,
}

/// Records the end of a container whose kernel objects are gone: no monitor owns it.
pub fn set_exited(
    conn: &Connection,
    id: &str,
    code: i32,
    finished: &str,
    reason: Option<&str>,
) -> Result<(), EngineError> {
    let exit = Exit {
        code,
        finished,
        reason,
    };
    record_exit(conn, id, exit, false)
}

/// Records the end of a container whose monitor, which the row still names, is taking its
/// kernel objects down (a row in this state whose monitor died is torn down by `reconcile`).
pub fn set_exited_by_monitor(conn: &Connection, id: &str, exit: Exit) -> Result<(), EngineError> {
    record_exit(conn, id, exit, true)
}

fn record_exit(
    conn: &Connection,
    id: &str,
    exit: Exit,
    monitor_stays: bool,
) -> Result<(), EngineError> {
    let sql = if monitor_stays {
        "UPDATE engine_containers SET state = 'exited', exit_code = ?2, finished = ?3, reason = ?4
           WHERE id = ?1"
    } else {
        "UPDATE engine_containers SET state = 'exited', exit_code = ?2, finished = ?3, reason = ?4,
           monitor_pid = NULL, monitor_start = NULL WHERE id = ?1"
    };
    conn.execute(sql, params![id, exit.code, exit.finished, exit.reason])?;
    Ok(())
}

/// The exited container's kernel objects are gone: no monitor owns it any more.
pub fn torn_down(conn: &Connection, id: &str, reason: Option<&str>) -> Result<(), EngineError> {
    conn.execute(
        "UPDATE engine_containers SET reason = ?2, monitor_pid = NULL, monitor_start = NULL
           WHERE id = ?1",
        params![id, reason],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<(), EngineError> {
    conn.execute("DELETE FROM engine_containers WHERE id = ?1", [id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_are_the_rows_a_monitor_owns() {
        let root = std::env::temp_dir().join(format!("hull-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let conn = hull_db::open(&root).unwrap();
        // (id, state, monitor pid): only live rows and exited ones with a monitor named (a
        // state this hull does not know counts as exited, as `State::parse` reads it).
        let rows = [
            ("c", "created", None),
            ("s", "starting", Some(10)),
            ("r", "running", Some(11)),
            ("rs", "restarting", Some(12)),
            ("down", "exited", Some(13)),
            ("done", "exited", None),
            ("odd", "paused-by-a-newer-hull", Some(14)),
        ];
        for (i, (id, state, pid)) in rows.iter().enumerate() {
            conn.execute(
                "INSERT INTO engine_containers \
                 (id, name, image, image_id, command, created, state, settings, monitor_pid, \
                  monitor_start) VALUES (?1, ?1, 'i', 'i', '[]', ?2, ?3, '{}', ?4, 7)",
                params![id, format!("2026-01-01T00:00:0{i}Z"), state, pid],
            )
            .unwrap();
        }
        let got: Vec<(String, State, Option<i32>, Option<u64>)> = watched(&conn)
            .unwrap()
            .into_iter()
            .map(|w| (w.id, w.state, w.monitor_pid, w.monitor_start))
            .collect();
        let want = [
            ("s", State::Starting, Some(10)),
            ("r", State::Running, Some(11)),
            ("rs", State::Restarting, Some(12)),
            ("down", State::Exited, Some(13)),
            ("odd", State::Exited, Some(14)),
        ]
        .map(|(id, state, pid)| (id.to_string(), state, pid, Some(7)));
        assert_eq!(got, want);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
