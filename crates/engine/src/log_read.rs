//! Reading a container's log as `hull logs` does: the rotated files (`<log>.N`, the oldest, down
//! to `<log>.1`) and then the current one, filtered by time (`--since`, `--until`), cut to the
//! last lines (`--tail`), stamped (`-t`), and followed (`-f`) across rotations while the
//! container's monitor writes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::EngineError;
use crate::times::{self, Nanos};

/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// What `hull logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub follow: bool,
    /// Only lines stamped at or after this.
    pub since: Option<Nanos>,
    /// Only lines stamped at or before this; a follower stops there.
    pub until: Option<Nanos>,
    /// Only the last N lines (before the time filters, as docker).
    pub tail: Option<usize>,
    /// Each line prefixed with its stamp.
    pub timestamps: bool,
}

/// One line of the json-file log.
#[derive(Debug, Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// The rotated files beside `path`, oldest first: `.N` .. `.1` (named by the writer's rule).
pub fn rotated(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| crate::logs::rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files
}

/// Where lines go: the sinks, the filters and the `--tail` buffer.
struct Printer<'a> {
    query: &'a LogQuery,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    tail: Option<VecDeque<Line>>,
}

impl Printer<'_> {
    /// Takes a line read before following: kept for `--tail`, or printed.
    fn feed(&mut self, line: Line) -> ControlFlow<()> {
        let Some(n) = self.query.tail else {
            return self.print(line);
        };
        let buf = self.tail.get_or_insert_with(VecDeque::new);
        buf.push_back(line);
        if buf.len() > n {
            buf.pop_front();
        }
        ControlFlow::Continue(())
    }

    /// Prints what `--tail` kept.
    fn flush_tail(&mut self) -> ControlFlow<()> {
        for line in self.tail.take().unwrap_or_default() {
            self.print(line)?;
        }
        ControlFlow::Continue(())
    }

    fn print(&mut self, line: Line) -> ControlFlow<()> {
        let at = times::parse_rfc3339(&line.time);
        if let (Some(since), Some(at)) = (self.query.since, at) {
            if at < since {
                return ControlFlow::Continue(());
            }
        }
        if let (Some(until), Some(at)) = (self.query.until, at) {
            if at > until {
                return ControlFlow::Break(());
            }
        }
        let sink: &mut dyn Write = if line.stream == "stderr" {
            &mut *self.err
        } else {
            &mut *self.out
        };
        let _ = if self.query.timestamps {
            write!(sink, "{} {}", line.time, line.log)
        } else {
            sink.write_all(line.log.as_bytes())
        };
        let _ = sink.flush();
        ControlFlow::Continue(())
    }
}

/// The next complete line of `reader`, or None at its end (a line still being written is left
/// for a later read).
fn next_line(reader: &mut BufReader<File>, buf: &mut String) -> Result<Option<Line>, EngineError> {
    loop {
        let pos = reader
            .stream_position()
            .map_err(EngineError::io("reading log"))?;
        buf.clear();
        let n = reader
            .read_line(buf)
            .map_err(EngineError::io("reading log"))?;
        if n == 0 || !buf.ends_with('\n') {
            reader
                .seek(SeekFrom::Start(pos))
                .map_err(EngineError::io("reading log"))?;
            return Ok(None);
        }
        // A line that is not an entry (a torn write after a crash) is passed over.
        if let Ok(line) = serde_json::from_str::<Line>(buf) {
            return Ok(Some(line));
        }
    }
}

/// Feeds every complete line of `reader`; Break once `--until` is passed.
fn drain(
    reader: &mut BufReader<File>,
    printer: &mut Printer<'_>,
    following: bool,
) -> Result<ControlFlow<()>, EngineError> {
    let mut buf = String::new();
    while let Some(line) = next_line(reader, &mut buf)? {
        let flow = if following {
            printer.print(line)
        } else {
            printer.feed(line)
        };
        if flow.is_break() {
            return Ok(flow);
        }
    }
    Ok(ControlFlow::Continue(()))
}

fn open(path: &Path) -> Result<Option<BufReader<File>>, EngineError> {
    match File::open(path) {
        Ok(f) => Ok(Some(BufReader::new(f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EngineError::io(format!("opening log {}", path.display()))(
            e,
        )),
    }
}

/// Copies the log at `path` (its rotated files first) to `out`/`err` by stream, as `query`
/// says; a follower goes on until `running()` says the writer is done and all is read.
pub fn copy(
    path: &Path,
    query: &LogQuery,
    out: &mut dyn Write,
    err: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
) -> Result<(), EngineError> {
    let mut printer = Printer {
        query,
        out,
        err,
        tail: None,
    };
    // The current file is opened first: while the writer rotates, `.1` and the current name
    // are briefly one file (a hard link, then a rename), which is then read once, as current.
    let mut current = open(path)?;
    let mut seen: Vec<(u64, u64)> = current
        .as_ref()
        .and_then(|r| r.get_ref().metadata().ok())
        .map(|m| (m.dev(), m.ino()))
        .into_iter()
        .collect();
    for old in rotated(path) {
        if let Some(mut reader) = open(&old)? {
            let Ok(meta) = reader.get_ref().metadata() else {
                continue;
            };
            if seen.contains(&(meta.dev(), meta.ino())) {
                continue;
            }
            seen.push((meta.dev(), meta.ino()));
            if drain(&mut reader, &mut printer, false)?.is_break() {
                return Ok(());
            }
        }
    }
    if let Some(reader) = current.as_mut() {
        if drain(reader, &mut printer, false)?.is_break() {
            return Ok(());
        }
    }
    if printer.flush_tail().is_break() || !query.follow {
        return Ok(());
    }
    // Set once the writer has ended: one more pass reads what it wrote last.
    let mut last_pass = false;
    loop {
        if let Some(reader) = current.as_mut() {
            if drain(reader, &mut printer, true)?.is_break() {
                return Ok(());
            }
        }
        // Rotated under us: the writer is done with the old file, but may have added to it
        // since the read above; read that, then go on with the new one.
        let now_ino = std::fs::metadata(path).ok().map(|m| m.ino());
        let open_ino = current
            .as_ref()
            .and_then(|r| r.get_ref().metadata().ok())
            .map(|m| m.ino());
        if now_ino.is_some() && now_ino != open_ino {
            if let Some(reader) = current.as_mut() {
                if drain(reader, &mut printer, true)?.is_break() {
                    return Ok(());
                }
            }
            current = open(path)?;
            continue;
        }
        if last_pass || query.until.is_some_and(|u| times::now() > u) {
            return Ok(());
        }
        last_pass = !running();
        if !last_pass {
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, stream: &str, secs: u32) -> String {
        format!(
            "{{\"log\":\"{text}\\n\",\"stream\":\"{stream}\",\"time\":\"2026-01-01T00:00:{secs:02}.000000000Z\"}}\n"
        )
    }

    fn read(path: &Path, query: &LogQuery) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        copy(path, query, &mut out, &mut err, &mut || false).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn rotated_files_tail_and_times() {
        let dir = std::env::temp_dir().join(format!("hull-logread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctr.log");
        std::fs::write(dir.join("ctr.log.2"), line("a", "stdout", 1)).unwrap();
        std::fs::write(
            dir.join("ctr.log.1"),
            line("b", "stderr", 2) + &line("c", "stdout", 3),
        )
        .unwrap();
        // The last line is still being written: not shown.
        std::fs::write(&path, line("d", "stdout", 4) + "{\"log\":\"e").unwrap();
        let all = LogQuery::default();
        assert_eq!(read(&path, &all), ("a\nc\nd\n".into(), "b\n".into()));
        let tail = LogQuery {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(read(&path, &tail), ("c\nd\n".into(), String::new()));
        let window = LogQuery {
            since: times::parse_rfc3339("2026-01-01T00:00:02Z"),
            until: times::parse_rfc3339("2026-01-01T00:00:03Z"),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(read(&path, &window).0, "2026-01-01T00:00:03.000000000Z c\n");
        let none = LogQuery {
            tail: Some(0),
            ..Default::default()
        };
        assert_eq!(read(&path, &none), (String::new(), String::new()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_follower_goes_on_across_a_rotation() {
        let dir = std::env::temp_dir().join(format!("hull-logfollow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctr.log");
        std::fs::write(&path, line("a", "stdout", 1)).unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                let append = |text: String| {
                    use std::io::Write as _;
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)
                        .unwrap();
                    f.write_all(text.as_bytes()).unwrap();
                };
                std::thread::sleep(Duration::from_millis(150));
                append(line("b", "stdout", 2));
                // Rotated: the current file becomes .1, a new one starts.
                let mut old = path.as_os_str().to_os_string();
                old.push(".1");
                std::fs::rename(&path, old).unwrap();
                append(line("c", "stdout", 3));
                std::thread::sleep(Duration::from_millis(150));
                append(line("d", "stdout", 4));
            })
        };
        let query = LogQuery {
            follow: true,
            ..Default::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut running = || !writer.is_finished();
        copy(&path, &query, &mut out, &mut err, &mut running).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\nb\nc\nd\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
