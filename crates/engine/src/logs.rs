//! A container's log: docker's json-file format, one JSON object per line
//! (`{"log":"hello\n","stream":"stdout","time":"2026-...Z"}`), appended by its monitor and
//! readable while written (`logs -f`).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// A line longer than this is written in parts (as docker splits at 16 KiB).
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Entry<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: std::borrow::Cow<'a, str>,
    time: String,
}

/// The monitor's side: whole lines per stream, each stamped when it is complete.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    /// Partial lines of stdout and stderr.
    pending: [Vec<u8>; 2],
}

/// Which of the container's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl LogWriter {
    pub fn create(path: &Path) -> Result<LogWriter, EngineError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(EngineError::io(format!("opening log {}", path.display())))?;
        Ok(LogWriter {
            file,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Appends `data` read from `stream`; complete lines are written at once.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let idx = stream as usize;
        self.pending[idx].extend_from_slice(data);
        loop {
            let buf = &self.pending[idx];
            let cut = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if buf.len() >= MAX_LINE => MAX_LINE,
                None => break,
            };
            let line: Vec<u8> = self.pending[idx].drain(..cut).collect();
            self.emit(stream, &line);
        }
    }

    /// Writes what is left of partial lines (the streams ended).
    pub fn flush(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                self.emit(stream, &rest);
            }
        }
    }

    fn emit(&mut self, stream: Stream, line: &[u8]) {
        let entry = Entry {
            log: String::from_utf8_lossy(line),
            stream: stream.name().into(),
            time: hull_runtime::now_rfc3339(),
        };
        if let Ok(mut text) = serde_json::to_string(&entry) {
            text.push('\n');
            // One write per line: a reader never sees half a line from the monitor's side.
            let _ = self.file.write_all(text.as_bytes());
        }
    }
}

/// Copies the log at `path` to `out`/`err` by stream; with `follow`, keeps reading new lines
/// until `running()` says the writer is done and the end is reached.
pub fn copy(
    path: &Path,
    follow: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
) -> Result<(), EngineError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) => {
            return Err(EngineError::io(format!("opening log {}", path.display()))(
                e,
            ))
        }
    };
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    // Set once the writer has ended: one more pass reads what it wrote last.
    let mut last_pass = false;
    loop {
        let pos = reader
            .stream_position()
            .map_err(EngineError::io("reading log"))?;
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(EngineError::io("reading log"))?;
        if n > 0 && line.ends_with('\n') {
            if let Ok(entry) = serde_json::from_str::<Entry<'_>>(&line) {
                let sink: &mut dyn Write = if entry.stream == "stderr" {
                    &mut *err
                } else {
                    &mut *out
                };
                let _ = sink.write_all(entry.log.as_bytes());
                let _ = sink.flush();
            }
            continue;
        }
        // At the end, or a line still being written: read it again later.
        reader
            .seek(SeekFrom::Start(pos))
            .map_err(EngineError::io("reading log"))?;
        if !follow || last_pass {
            return Ok(());
        }
        last_pass = !running();
        if !last_pass {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_by_stream() {
        let dir = std::env::temp_dir().join(format!("hull-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctr.log");
        let mut w = LogWriter::create(&path).unwrap();
        w.write(Stream::Stdout, b"hel");
        w.write(Stream::Stderr, b"oops\n");
        w.write(Stream::Stdout, b"lo\nwor");
        w.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text
            .lines()
            .next()
            .unwrap()
            .contains(r#""stream":"stderr""#));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        copy(&path, false, &mut out, &mut err, &mut || false).unwrap();
        assert_eq!(out, b"hello\nwor");
        assert_eq!(err, b"oops\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
