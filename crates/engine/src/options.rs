//! What a user asks of a new container (`hull run`/`create` flags), parsed and checked before
//! anything is created, and the part of it the engine keeps with the container.

use std::path::PathBuf;

use hull_net::ports::PortMapping;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// How the container gets its network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The default bridge network.
    #[default]
    Default,
    /// Its own namespace with only lo.
    None,
    /// The host's namespace.
    Host,
    /// A user network by name.
    Named(String),
}

impl Network {
    /// `--network none|host|bridge|NAME`.
    pub fn parse(text: &str) -> Result<Network, EngineError> {
        Ok(match text {
            "" => return Err(EngineError::Invalid("--network: empty network name".into())),
            "none" => Network::None,
            "host" => Network::Host,
            "bridge" | "hull" | "default" => Network::Default,
            t if t.starts_with("container:") => {
                return Err(EngineError::Unsupported("--network container:ID"))
            }
            name => Network::Named(name.to_string()),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Network::Default => "hull",
            Network::None => "none",
            Network::Host => "host",
            Network::Named(n) => n,
        }
    }
}

/// The flags of `hull run` and `hull create`, parsed.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    /// The command after the image (replaces its Cmd).
    pub command: Vec<String>,
    /// `--entrypoint` (replaces the image's; an empty string clears it).
    pub entrypoint: Option<String>,
    /// `-e K=V` or `-e K` (the value of K in the caller's environment).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub network: Network,
    pub ports: Vec<PortMapping>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU quota in thousandths of a CPU.
    pub millicpus: Option<u64>,
    pub pids_limit: Option<i64>,
    /// `-v`, `--mount` and `--tmpfs`, in the order given.
    pub mounts: Vec<crate::volumes::MountSpec>,
    pub rm: bool,
    /// `-i`: the container's stdin is the caller's.
    pub interactive: bool,
}

/// What the engine keeps of the flags, beside the bundle, for the container's later life.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    /// The image's manifest digest: the image the container holds.
    pub manifest: String,
    pub rm: bool,
    pub network: Network,
    pub ports: Vec<PortMapping>,
    pub hostname: String,
    pub stop_signal: String,
    pub interactive: bool,
    /// The image's ExposedPorts (`80/tcp`), shown by inspect; `-P` will publish them.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// The named volumes it mounts: a volume is in use while a container row names it.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The anonymous volumes made for it, removed with it by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
}

/// `--memory 64m`: bytes, with docker's b/k/m/g suffixes (powers of 1024); at least 6 MiB as
/// docker requires, since less cannot start a container.
pub fn parse_memory(text: &str) -> Result<i64, EngineError> {
    let bad = |why: &str| EngineError::Invalid(format!("invalid memory size {text:?}: {why}"));
    let t = text.trim().to_ascii_lowercase();
    // "64mb" is "64m"; a bare "b" after digits is bytes.
    let t = match t.strip_suffix('b') {
        Some(s) if s.ends_with(['k', 'm', 'g', 't']) => s,
        _ => t.as_str(),
    };
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad("use a number with an optional unit b, k, m or g")),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| bad("use a number with an optional unit b, k, m or g"))?;
    let bytes = n
        .checked_mul(1i64 << shift)
        .ok_or_else(|| bad("too large"))?;
    if bytes < 6 << 20 {
        return Err(bad("the minimum is 6m"));
    }
    Ok(bytes)
}

/// `--cpus 0.5`: thousandths of a CPU (docker's precision).
pub fn parse_cpus(text: &str) -> Result<u64, EngineError> {
    let bad = || {
        EngineError::Invalid(format!(
            "invalid --cpus {text:?}: use a positive number such as 0.5"
        ))
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let f: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().map_err(|_| bad())?
    };
    let milli = w
        .checked_mul(1000)
        .and_then(|w| w.checked_add(f))
        .ok_or_else(bad)?;
    if milli == 0 {
        return Err(bad());
    }
    Ok(milli)
}

/// `--pids-limit N` (0 or -1: unlimited, as docker).
pub fn parse_pids_limit(text: &str) -> Result<Option<i64>, EngineError> {
    let n: i64 = text.parse().map_err(|_| {
        EngineError::Invalid(format!("invalid --pids-limit {text:?}: use an integer"))
    })?;
    Ok((n > 0).then_some(n))
}

/// Lines of a `--env-file`: `K=V`, or `K` alone for the caller's value; `#` comments and blank
/// lines skipped, as docker reads them.
pub fn parse_env_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Reads every `--env-file`, then the `-e` entries, into `K=V` pairs (later ones win); a bare
/// `K` takes the caller's value and is dropped when the caller has none.
pub fn collect_env(opts: &RunOptions) -> Result<Vec<String>, EngineError> {
    let mut entries = Vec::new();
    for file in &opts.env_files {
        let text = std::fs::read_to_string(file)
            .map_err(EngineError::io(format!("--env-file {}", file.display())))?;
        entries.extend(parse_env_file(&text));
    }
    entries.extend(opts.env.iter().cloned());
    let mut out = Vec::new();
    for e in entries {
        if e.starts_with('=') {
            return Err(EngineError::Invalid(format!(
                "invalid environment variable {e:?}"
            )));
        }
        match e.split_once('=') {
            Some(_) => out.push(e),
            None => {
                if let Ok(v) = std::env::var(&e) {
                    out.push(format!("{e}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// A container name: docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_name(name: &str) -> Result<(), EngineError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_memory("8388608").unwrap(), 8 << 20);
        assert!(parse_memory("12x").is_err());
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("1k").is_err());
        assert!(parse_memory("").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5").unwrap(), 500);
        assert_eq!(parse_cpus("2").unwrap(), 2000);
        assert_eq!(parse_cpus(".25").unwrap(), 250);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("0.0001").is_err());
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn env_file_and_names() {
        assert_eq!(
            parse_env_file("# c\n\nA=1\n  B=2\nC\n"),
            ["A=1", "B=2", "C"]
        );
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("-web").is_err());
        assert!(check_name("a b").is_err());
        assert_eq!(Network::parse("none").unwrap(), Network::None);
        assert_eq!(
            Network::parse("mynet").unwrap(),
            Network::Named("mynet".into())
        );
        assert!(Network::parse("container:x").is_err());
    }
}
