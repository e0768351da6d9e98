//! Where the runtime reports, as runc does (containerd, conmon and CI harnesses read it): log
//! lines as logrus writes them, `time="…" level=error msg="…"` in text or
//! `{"level":"error","msg":"…","time":"…"}` in json, to the `--log` file, or to stderr when there
//! is none. A fatal error also goes to stderr as its bare message when the log line went to a file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Logger {
    file: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    pub fn new(file: Option<PathBuf>, format: LogFormat, debug: bool) -> Logger {
        Logger {
            file,
            format,
            debug,
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    /// Something the config asked for that was skipped, as runc skips it, or a hook whose failure
    /// the runtime spec makes a warning: to the log file, and to stderr only with --debug
    /// (callers such as conmon show a runtime's stderr to users).
    pub fn warn(&self, msg: &str) {
        if self.file.is_some() || self.debug {
            self.write("warning", msg);
        }
    }

    /// A fatal error, as runc's `fatal` reports it: the log line (to the file, else to stderr),
    /// and the bare message on stderr when the line went to a file.
    pub fn error(&self, msg: &str) {
        self.write("error", msg);
        if self.file.is_some() {
            eprintln!("{msg}");
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let line = format_line(self.format, &log_time(), level, msg);
        match &self.file {
            Some(path) => {
                if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
                    let _ = writeln!(file, "{line}");
                }
            }
            None => eprintln!("{line}"),
        }
    }
}

/// logrus's default timestamp: RFC 3339 to the second.
fn log_time() -> String {
    let now = hull_runtime::now_rfc3339();
    match now.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => now,
    }
}

/// One line as logrus's TextFormatter (without a terminal) or JSONFormatter writes it.
fn format_line(format: LogFormat, time: &str, level: &str, msg: &str) -> String {
    match format {
        // serde_json's maps are sorted by key, as Go's encoding/json writes logrus's fields.
        LogFormat::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!(
            "time={} level={} msg={}",
            text_value(time),
            text_value(level),
            text_value(msg)
        ),
    }
}

/// A value as logrus's TextFormatter writes it: bare when every character is one it leaves
/// alone, else quoted as Go's strconv.Quote does.
fn text_value(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._/@^+".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_are_logrus_lines() {
        assert_eq!(
            format_line(
                LogFormat::Text,
                "2024-01-02T03:04:05Z",
                "error",
                "container does not exist"
            ),
            r#"time="2024-01-02T03:04:05Z" level=error msg="container does not exist""#
        );
        assert_eq!(text_value("plain-word_1.2/x"), "plain-word_1.2/x");
        assert_eq!(text_value(""), r#""""#);
        assert_eq!(
            text_value("say \"hi\"\n\tC:\\ \u{1}"),
            r#""say \"hi\"\n\tC:\\ \x01""#
        );
    }

    #[test]
    fn json_lines_are_logrus_lines() {
        assert_eq!(
            format_line(LogFormat::Json, "2024-01-02T03:04:05Z", "error", "a \"b\""),
            r#"{"level":"error","msg":"a \"b\"","time":"2024-01-02T03:04:05Z"}"#
        );
    }

    #[test]
    fn log_time_is_to_the_second() {
        let time = log_time();
        assert_eq!(time.len(), "2024-01-02T03:04:05Z".len(), "{time}");
        assert!(time.ends_with('Z'), "{time}");
    }
}
