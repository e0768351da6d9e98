//! A container's log: docker's json-file format, one JSON object per line
//! (`{"log":"hello\n","stream":"stdout","time":"2026-...Z"}`), appended by its monitor and
//! readable while written (`logs -f`). With `--log-opt max-size` the writer rotates it by
//! rename: the current file is `ctr.log`, older ones `ctr.log.1` (the newest) .. `ctr.log.N-1`;
//! once made, the current name always exists and a rotated file keeps its inode, so a reader
//! holding it open reads every line written to it. The file is made at the first line: a
//! container that prints nothing (most `run --rm` of a command) costs no inode for it, and a
//! reader takes a missing log as an empty one.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::log_opts::LogOptions;

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
    /// Opened at the first line (see the module doc).
    file: Option<File>,
    path: PathBuf,
    rotation: LogOptions,
    /// Bytes in the current file.
    size: u64,
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
    /// Appends to the log at `path` (made at the first line if missing), rotated as `rotation`
    /// says.
    pub fn create(path: &Path, rotation: LogOptions) -> Result<LogWriter, EngineError> {
        Ok(LogWriter {
            file: None,
            path: path.to_path_buf(),
            rotation,
            size: 0,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// The current file, opened (and its size taken: a restarted container appends) if not
    /// yet; None if it cannot be opened, tried again at the next line.
    fn file(&mut self) -> Option<&mut File> {
        if self.file.is_none() {
            let file = open_append(&self.path).ok()?;
            self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(file);
        }
        self.file.as_mut()
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
            let len = text.len() as u64;
            if self.file().is_none() {
                return;
            }
            if self
                .rotation
                .max_size
                .is_some_and(|max| self.size > 0 && self.size + len > max)
            {
                // A log that cannot rotate goes on growing rather than losing lines.
                let _ = self.rotate();
            }
            // One write per line: a reader never sees half a line from the monitor's side.
            let written = self
                .file
                .as_mut()
                .is_some_and(|f| f.write_all(text.as_bytes()).is_ok());
            if written {
                self.size += len;
            }
        }
    }

    /// Shifts `ctr.log.K` to `.K+1` (the last falls off), then makes the current file `.1` by a
    /// hard link and a fresh empty file the current one by rename: the name never goes missing.
    fn rotate(&mut self) -> Result<(), std::io::Error> {
        let keep = self.rotation.max_file.saturating_sub(1);
        let fresh = rotated(&self.path, "new");
        let new_file = File::create(&fresh)?;
        if keep > 0 {
            match std::fs::remove_file(rotated(&self.path, keep)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for k in (1..keep).rev() {
                match std::fs::rename(rotated(&self.path, k), rotated(&self.path, k + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::hard_link(&self.path, rotated(&self.path, 1))?;
        }
        std::fs::rename(&fresh, &self.path)?;
        self.file = Some(new_file);
        self.size = 0;
        Ok(())
    }
}

/// The rotated log `<path>.<n>` (1 is the newest).
pub fn rotated(path: &Path, n: impl std::fmt::Display) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_by_stream() {
        let dir = std::env::temp_dir().join(format!("hull-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctr.log");
        let mut w = LogWriter::create(&path, LogOptions::default()).unwrap();
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
        crate::log_read::copy(
            &path,
            &crate::log_read::LogQuery::default(),
            &mut out,
            &mut err,
            &mut || false,
        )
        .unwrap();
        assert_eq!(out, b"hello\nwor");
        assert_eq!(err, b"oops\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_is_made_at_the_first_line_and_appended_to_after() {
        let dir = std::env::temp_dir().join(format!("hull-loglazy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctr.log");
        let mut w = LogWriter::create(&path, LogOptions::default()).unwrap();
        w.write(Stream::Stdout, b"no newline yet");
        assert!(!path.exists(), "a partial line made the file");
        drop(w);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let query = crate::log_read::LogQuery::default();
        crate::log_read::copy(&path, &query, &mut out, &mut err, &mut || false).unwrap();
        assert!(out.is_empty() && err.is_empty());

        // A second writer (a restart) appends and counts what is there toward rotation.
        std::fs::write(&path, "x".repeat(1000)).unwrap();
        let rotation = LogOptions {
            max_size: Some(1024),
            max_file: 2,
        };
        let mut w = LogWriter::create(&path, rotation).unwrap();
        w.write(Stream::Stdout, b"after a restart\n");
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 1)).unwrap().len(),
            1000
        );
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("after a restart"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_keeps_every_line_of_the_kept_files() {
        let dir = std::env::temp_dir().join(format!("hull-logrot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctr.log");
        let rotation = LogOptions {
            max_size: Some(1024),
            max_file: 50,
        };
        let mut w = LogWriter::create(&path, rotation).unwrap();
        for i in 0..300 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        let mut lines = Vec::new();
        for k in (1..50).rev() {
            if let Ok(text) = std::fs::read_to_string(rotated(&path, k)) {
                assert!(text.len() <= 1024, "file .{k} is {} bytes", text.len());
                lines.extend(text.lines().map(String::from));
            }
        }
        lines.extend(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(String::from),
        );
        let logged: Vec<String> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<Entry<'_>>(l)
                    .unwrap()
                    .log
                    .into_owned()
            })
            .collect();
        let want: Vec<String> = (0..300).map(|i| format!("line {i}\n")).collect();
        assert_eq!(logged, want);
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, "new").exists());

        // Fewer files kept: the oldest lines fall off, the newest stay, never more files.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let rotation = LogOptions {
            max_size: Some(1024),
            max_file: 3,
        };
        let mut w = LogWriter::create(&path, rotation).unwrap();
        for i in 0..300 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.lines().last().unwrap().contains("line 299"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
