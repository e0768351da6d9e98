//! Where the runtime reports: stderr, and with `--log` a file, as text or as the JSON lines runc
//! writes (containerd and conmon read the last error from them).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

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

    /// Something the config asked for that was skipped, as runc skips it: to the log file, and
    /// to stderr only with --debug (callers such as conmon show a runtime's stderr to users).
    pub fn warn(&self, msg: &str) {
        if self.file.is_some() || self.debug {
            self.write("warning", msg);
        }
    }

    /// A fatal error: to stderr always, and to the log file if there is one.
    pub fn error(&self, msg: &str) {
        eprintln!("hull-runtime: {msg}");
        if self.file.is_some() {
            self.write("error", msg);
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let time = hull_runtime::now_rfc3339();
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
        };
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
