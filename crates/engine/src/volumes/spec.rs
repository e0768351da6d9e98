//! What `-v`, `--mount` and `--tmpfs` ask for, parsed as docker parses them, before anything
//! exists: a bind of a host path, a volume (named, or a new anonymous one), or a tmpfs.

use std::path::PathBuf;

use crate::error::EngineError;

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path. `create`: made when missing (`-v`, as docker); else a missing path is an
    /// error (`--mount type=bind`).
    Bind {
        path: PathBuf,
        create: bool,
        /// `rprivate` (docker's default), `private`, `rshared`, `shared`, `rslave`, `slave`.
        propagation: Option<String>,
    },
    /// A volume by name, or a new anonymous one (`None`).
    Volume {
        name: Option<String>,
        /// Do not fill a new empty volume with the image's content at the target.
        nocopy: bool,
        /// Labels for a volume this mount creates (`volume-label`).
        labels: Vec<(String, String)>,
    },
    /// A tmpfs with these (checked) mount options, e.g. `size=64m`, `mode=1777`, `exec`.
    Tmpfs { options: Vec<String> },
}

/// One mount of a new container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: Source,
    /// The absolute path inside the container.
    pub target: String,
    pub readonly: bool,
}

pub(crate) const PROPAGATIONS: [&str; 6] = [
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

/// tmpfs options without a value that are passed to the mount as they are.
const TMPFS_FLAGS: [&str; 18] = [
    "ro",
    "rw",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "diratime",
    "nodiratime",
    "sync",
    "async",
];

/// tmpfs options with a value.
const TMPFS_KEYS: [&str; 6] = ["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"];

/// docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_volume_name(name: &str) -> Result<(), EngineError> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "{name:?} includes invalid characters for a local volume name, only \
             [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (at least 2 characters)"
        )))
    }
}

fn check_target(target: &str, what: &str) -> Result<String, EngineError> {
    if !target.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "{what}: the container path {target:?} must be absolute"
        )));
    }
    if target.split('/').any(|c| c == "..") {
        return Err(EngineError::Invalid(format!(
            "{what}: the container path {target:?} may not contain \"..\""
        )));
    }
    let clean = normalize(target);
    if clean == "/" {
        return Err(EngineError::Invalid(format!(
            "{what}: the destination can't be \"/\""
        )));
    }
    Ok(clean)
}

/// `/a//b/./c/` -> `/a/b/c`.
pub(crate) fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

impl MountSpec {
    /// `-v [SOURCE:]TARGET[:OPTIONS]`: SOURCE an absolute host path (made when missing) or a
    /// volume name; no SOURCE, an anonymous volume. OPTIONS: `ro`/`rw`, `nocopy`, a propagation.
    pub fn parse_volume(text: &str) -> Result<MountSpec, EngineError> {
        let what = format!("-v {text:?}");
        let bad = |why: &str| EngineError::Invalid(format!("{what}: {why}"));
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [t] => (None, *t, ""),
            [s, t] => (Some(*s), *t, ""),
            [s, t, m] => (Some(*s), *t, *m),
            _ => return Err(bad("use [SOURCE:]TARGET[:OPTIONS]")),
        };
        let target = check_target(target, &what)?;
        let mut readonly = false;
        let mut nocopy = false;
        let mut propagation = None;
        for opt in mode.split(',').filter(|o| !o.is_empty()) {
            match opt {
                "ro" => readonly = true,
                "rw" => readonly = false,
                "nocopy" => nocopy = true,
                p if PROPAGATIONS.contains(&p) => propagation = Some(p.to_string()),
                "z" | "Z" => return Err(EngineError::Unsupported("SELinux relabeling (:z, :Z)")),
                o => {
                    return Err(bad(&format!(
                        "unknown option {o:?} (ro, rw, nocopy or a propagation such as rshared)"
                    )))
                }
            }
        }
        let source = match source {
            None => Source::Volume {
                name: None,
                nocopy,
                labels: Vec::new(),
            },
            Some(s) if s.starts_with('/') => {
                if nocopy {
                    return Err(bad("nocopy applies to volumes, not to a host path"));
                }
                Source::Bind {
                    path: PathBuf::from(s),
                    create: true,
                    propagation,
                }
            }
            Some(s) => {
                check_volume_name(s).map_err(|e| {
                    bad(&format!(
                        "{e}; to bind a host directory, give its absolute path"
                    ))
                })?;
                if propagation.is_some() {
                    return Err(bad("a propagation applies to a host path, not to a volume"));
                }
                Source::Volume {
                    name: Some(s.to_string()),
                    nocopy,
                    labels: Vec::new(),
                }
            }
        };
        Ok(MountSpec {
            source,
            target,
            readonly,
        })
    }

    /// `--tmpfs PATH[:OPTIONS]`: OPTIONS as mount(8) takes them (`size=64m,mode=1777,exec`).
    pub fn parse_tmpfs(text: &str) -> Result<MountSpec, EngineError> {
        let what = format!("--tmpfs {text:?}");
        let (target, opts) = text.split_once(':').unwrap_or((text, ""));
        let target = check_target(target, &what)?;
        let mut options = Vec::new();
        let mut readonly = false;
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("size", v)) => options.push(format!("size={}", tmpfs_size(v, &what)?)),
                Some(("mode", v)) => options.push(format!("mode={:o}", tmpfs_mode(v, &what)?)),
                Some((k, v)) if TMPFS_KEYS.contains(&k) => {
                    v.parse::<u64>().map_err(|_| {
                        EngineError::Invalid(format!("{what}: {k} needs a number, not {v:?}"))
                    })?;
                    options.push(opt.to_string());
                }
                None if opt == "ro" => readonly = true,
                None if opt == "rw" => readonly = false,
                None if TMPFS_FLAGS.contains(&opt) => options.push(opt.to_string()),
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "{what}: unknown tmpfs option {opt:?}"
                    )))
                }
            }
        }
        Ok(MountSpec {
            source: Source::Tmpfs { options },
            target,
            readonly,
        })
    }

    /// `--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...` with docker's keys.
    pub fn parse_mount(text: &str) -> Result<MountSpec, EngineError> {
        let what = format!("--mount {text:?}");
        let bad = |why: String| EngineError::Invalid(format!("{what}: {why}"));
        let mut kind = "volume";
        let mut source: Option<String> = None;
        let mut target: Option<String> = None;
        let mut readonly = false;
        let mut propagation = None;
        let mut nocopy = false;
        let mut labels = Vec::new();
        let mut size = None;
        let mut mode = None;
        let mut used: Vec<&str> = Vec::new();
        for field in text.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
                None => (field.trim().to_ascii_lowercase(), None),
            };
            let need = || {
                value.ok_or_else(|| {
                    bad(format!("invalid field {field:?}: must be a key=value pair"))
                })
            };
            let boolean = |v: Option<&str>| -> Result<bool, EngineError> {
                match v.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("1" | "true") => Ok(true),
                    Some("0" | "false") => Ok(false),
                    _ => Err(bad(format!("invalid value for {key:?}: use true or false"))),
                }
            };
            match key.as_str() {
                "type" => kind = need()?,
                "source" | "src" => source = Some(need()?.to_string()),
                "destination" | "dst" | "target" => target = Some(need()?.to_string()),
                "readonly" | "ro" => readonly = boolean(value)?,
                "bind-propagation" => {
                    let p = need()?;
                    if !PROPAGATIONS.contains(&p) {
                        return Err(bad(format!("invalid bind-propagation {p:?}")));
                    }
                    propagation = Some(p.to_string());
                    used.push("bind");
                }
                "volume-nocopy" => {
                    nocopy = boolean(value)?;
                    used.push("volume");
                }
                "volume-label" => {
                    let v = need()?;
                    let (k, v) = v.split_once('=').unwrap_or((v, ""));
                    labels.push((k.to_string(), v.to_string()));
                    used.push("volume");
                }
                "volume-driver" => {
                    if need()? != "local" {
                        return Err(EngineError::Unsupported("volume drivers other than local"));
                    }
                    used.push("volume");
                }
                "tmpfs-size" => {
                    size = Some(tmpfs_size(need()?, &what)?);
                    used.push("tmpfs");
                }
                "tmpfs-mode" => {
                    mode = Some(tmpfs_mode(need()?, &what)?);
                    used.push("tmpfs");
                }
                "volume-opt" | "volume-subpath" | "bind-nonrecursive" | "bind-recursive"
                | "consistency" | "tmpfs-options" => {
                    return Err(bad(format!("the key {key:?} is not supported yet")))
                }
                _ => return Err(bad(format!("unexpected key {key:?} in {field:?}"))),
            }
        }
        if let Some(other) = used.iter().find(|u| **u != kind) {
            return Err(bad(format!(
                "cannot mix '{other}-*' options with mount type '{kind}'"
            )));
        }
        let target = target.ok_or_else(|| bad("target is required".into()))?;
        let target = check_target(&target, &what)?;
        let source = match kind {
            "bind" => {
                let s = source.ok_or_else(|| bad("source is required for a bind mount".into()))?;
                if !s.starts_with('/') {
                    return Err(bad(format!("the bind source path {s:?} must be absolute")));
                }
                Source::Bind {
                    path: PathBuf::from(s),
                    create: false,
                    propagation,
                }
            }
            "volume" => {
                if let Some(name) = &source {
                    check_volume_name(name).map_err(|e| bad(e.to_string()))?;
                }
                Source::Volume {
                    name: source,
                    nocopy,
                    labels,
                }
            }
            "tmpfs" => {
                if source.is_some() {
                    return Err(bad("source is not supported for tmpfs".into()));
                }
                let mut options = Vec::new();
                options.extend(size.map(|s| format!("size={s}")));
                options.extend(mode.map(|m| format!("mode={m:o}")));
                Source::Tmpfs { options }
            }
            other => {
                return Err(bad(format!(
                    "invalid mount type {other:?}: use bind, volume or tmpfs"
                )))
            }
        };
        Ok(MountSpec {
            source,
            target,
            readonly,
        })
    }
}

/// A tmpfs size in bytes: a number with docker's optional b, k, m, g suffix.
fn tmpfs_size(text: &str, what: &str) -> Result<u64, EngineError> {
    let bad = || EngineError::Invalid(format!("{what}: invalid size {text:?} (e.g. 64m)"));
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 10),
        Some((i, 'm')) => (&t[..i], 20),
        Some((i, 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(bad());
    }
    Ok(bytes)
}

/// A tmpfs mode: octal, at most 07777.
fn tmpfs_mode(text: &str, what: &str) -> Result<u32, EngineError> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            EngineError::Invalid(format!("{what}: invalid mode {text:?} (octal, e.g. 1777)"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_v() {
        let v = MountSpec::parse_volume("/srv:/data:ro").unwrap();
        assert_eq!(v.target, "/data");
        assert!(v.readonly);
        assert!(matches!(v.source, Source::Bind { create: true, .. }));
        let v = MountSpec::parse_volume("cache:/var/cache/").unwrap();
        assert_eq!(v.target, "/var/cache");
        assert_eq!(
            v.source,
            Source::Volume {
                name: Some("cache".into()),
                nocopy: false,
                labels: vec![]
            }
        );
        let v = MountSpec::parse_volume("/anon").unwrap();
        assert!(matches!(v.source, Source::Volume { name: None, .. }));
        assert!(MountSpec::parse_volume("./rel:/data").is_err());
        assert!(MountSpec::parse_volume("a:/data").is_err());
        assert!(MountSpec::parse_volume("/srv:data").is_err());
        assert!(MountSpec::parse_volume("/srv:/data:zz").is_err());
        assert!(MountSpec::parse_volume("/srv:/").is_err());
        assert!(MountSpec::parse_volume("/srv:/data:z").is_err());
    }

    #[test]
    fn dash_dash_mount() {
        let m = MountSpec::parse_mount(
            "type=bind,src=/srv,dst=/data,readonly,bind-propagation=rshared",
        )
        .unwrap();
        assert!(m.readonly);
        assert_eq!(
            m.source,
            Source::Bind {
                path: "/srv".into(),
                create: false,
                propagation: Some("rshared".into())
            }
        );
        let m = MountSpec::parse_mount("target=/data").unwrap();
        assert!(matches!(m.source, Source::Volume { name: None, .. }));
        let m = MountSpec::parse_mount("type=tmpfs,destination=/t,tmpfs-size=8m,tmpfs-mode=1770")
            .unwrap();
        assert_eq!(
            m.source,
            Source::Tmpfs {
                options: vec!["size=8388608".into(), "mode=1770".into()]
            }
        );
        let m = MountSpec::parse_mount(
            "type=volume,source=v1,target=/d,ro=false,volume-nocopy,volume-label=a=b",
        )
        .unwrap();
        assert!(!m.readonly);
        assert!(MountSpec::parse_mount("type=bind,target=/d").is_err());
        assert!(MountSpec::parse_mount("type=tmpfs,src=x,target=/d").is_err());
        assert!(MountSpec::parse_mount("type=volume,target=/d,tmpfs-size=1m").is_err());
        assert!(MountSpec::parse_mount("type=bind,src=/a,target=/d,bogus=1").is_err());
        assert!(MountSpec::parse_mount("type=nfs,target=/d").is_err());
        assert!(MountSpec::parse_mount("type=bind,src=/a").is_err());
    }

    #[test]
    fn dash_dash_tmpfs() {
        let t = MountSpec::parse_tmpfs("/run:size=64m,mode=1777,exec").unwrap();
        assert_eq!(t.target, "/run");
        assert_eq!(
            t.source,
            Source::Tmpfs {
                options: vec!["size=67108864".into(), "mode=1777".into(), "exec".into()]
            }
        );
        assert!(MountSpec::parse_tmpfs("/run:bogus").is_err());
        assert!(MountSpec::parse_tmpfs("/run:size=lots").is_err());
        assert!(MountSpec::parse_tmpfs("run").is_err());
    }
}
