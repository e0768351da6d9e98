//! `--log-opt` of `run` and `create`: the rotation of a container's json log, as docker's
//! json-file driver takes it (`max-size=10m`, `max-file=3`). Without `max-size` the log grows
//! unbounded, as docker's and podman's do by default.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::options::parse_size;

/// When the log is rotated, and how many files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Rotate before a line would take the current file past this many bytes (None: never).
    pub max_size: Option<u64>,
    /// Files kept, the current one included (`ctr.log`, `ctr.log.1` .. `ctr.log.N-1`).
    pub max_file: u32,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            max_size: None,
            max_file: 1,
        }
    }
}

impl LogOptions {
    /// The `--log-opt KEY=VALUE` flags, in order (a later key wins, as docker's).
    pub fn parse(opts: &[String]) -> Result<LogOptions, EngineError> {
        let mut out = LogOptions::default();
        let mut max_file_set = false;
        for opt in opts {
            let (key, value) = opt.split_once('=').ok_or_else(|| {
                EngineError::Invalid(format!("invalid --log-opt {opt:?}: use KEY=VALUE"))
            })?;
            match key {
                // docker's "-1": unbounded.
                "max-size" if value.trim() == "-1" => out.max_size = None,
                "max-size" => {
                    let size = parse_size(value, "log max-size")?;
                    out.max_size = u64::try_from(size).ok().filter(|n| *n > 0);
                }
                "max-file" => {
                    out.max_file = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| {
                            EngineError::Invalid(format!(
                                "invalid log max-file {value:?}: a number of at least 1"
                            ))
                        })?;
                    max_file_set = true;
                }
                other => {
                    return Err(EngineError::Invalid(format!(
                        "unsupported log option {other:?}: hull's json log takes max-size and \
                         max-file"
                    )))
                }
            }
        }
        if max_file_set && out.max_file > 1 && out.max_size.is_none() {
            return Err(EngineError::Invalid(
                "invalid log options: max-file needs max-size".into(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> Result<LogOptions, EngineError> {
        LogOptions::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn docker_log_opts() {
        assert_eq!(parse(&[]).unwrap(), LogOptions::default());
        let o = parse(&["max-size=10m", "max-file=3"]).unwrap();
        assert_eq!(o.max_size, Some(10 << 20));
        assert_eq!(o.max_file, 3);
        assert_eq!(parse(&["max-size=1k"]).unwrap().max_file, 1);
        assert_eq!(parse(&["max-size=-1"]).unwrap().max_size, None);
        assert!(parse(&["max-file=0", "max-size=1m"]).is_err());
        assert!(parse(&["max-file=3"]).is_err());
        assert!(parse(&["max-size=lots"]).is_err());
        let err = parse(&["compress=true"]).unwrap_err().to_string();
        assert!(err.contains("compress"), "{err}");
        assert!(parse(&["max-size"]).is_err());
    }
}
