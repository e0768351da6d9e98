//! `commit`: a container's upper dir as a new image on top of its own, with docker's
//! options: `-m`, `-a`, `-c` changes (Dockerfile instructions that touch only the config) and
//! the container paused (frozen) while its files are read.

use hull_runtime::{Runtime, Status};
use serde_json::{json, Value};

use crate::store::State;
use crate::{paths, Engine, EngineError};

/// What `hull commit` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// REPO[:TAG] of the new image.
    pub name: Option<String>,
    pub message: Option<String>,
    pub author: Option<String>,
    /// `-c` instructions: CMD, ENTRYPOINT, ENV, WORKDIR, EXPOSE, USER, LABEL, STOPSIGNAL.
    pub changes: Vec<String>,
    /// Freeze a running container while its files are read (docker's default).
    pub pause: bool,
}

impl Engine {
    /// Commits the container; returns the new image's id (its config digest).
    pub fn commit(
        &self,
        reference: &str,
        opts: &CommitOptions,
    ) -> Result<hull_image::Digest, EngineError> {
        let record = self.find(reference)?;
        crate::vm::control::refuse_vm(&record, "commit")?;
        let changes = opts
            .changes
            .iter()
            .map(|c| parse_change(c))
            .collect::<Result<Vec<_>, _>>()?;
        let edit = |config: &mut Value| -> Result<(), String> {
            for c in &changes {
                c.apply(&mut config["config"]);
            }
            Ok(())
        };
        let upper = paths::container_dir(&self.root, &record.id).join("upper");
        // Never started: an empty layer, as docker's.
        std::fs::create_dir_all(&upper)
            .map_err(EngineError::io(format!("creating {}", upper.display())))?;
        let spec = hull_image::sources::CommitSpec {
            names: opts.name.iter().cloned().collect(),
            created_by: record.command.join(" "),
            author: opts.author.clone(),
            comment: opts.message.clone(),
            edit: Some(&edit),
        };
        let frozen = if opts.pause && record.state == State::Running {
            let c = Runtime::new(paths::runtime_root(&self.root)).open(&record.id)?;
            if c.status() == Status::Running {
                c.pause()?;
                Some(c)
            } else {
                None
            }
        } else {
            None
        };
        let mut store = hull_image::ImageStore::open(&self.root)?;
        let committed = hull_image::sources::commit_with(
            &mut store,
            &upper,
            Some(&record.settings.manifest),
            &spec,
        );
        if let Some(c) = frozen {
            c.resume()?;
        }
        committed.map_err(|e| EngineError::Image(e.into()))
    }
}

/// One `-c` instruction.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// A config key set to a value (Cmd, Entrypoint, WorkingDir, User, StopSignal).
    Set(&'static str, Value),
    Env(Vec<(String, String)>),
    /// ExposedPorts or Labels entries.
    Add(&'static str, Vec<(String, Value)>),
}

impl Change {
    fn apply(&self, config: &mut Value) {
        if !config.is_object() {
            *config = json!({});
        }
        match self {
            Change::Set(key, v) => config[*key] = v.clone(),
            Change::Env(vars) => {
                let mut env: Vec<String> = config["Env"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, v) in vars {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                config["Env"] = json!(env);
            }
            Change::Add(key, entries) => {
                if !config[*key].is_object() {
                    config[*key] = json!({});
                }
                for (k, v) in entries {
                    config[*key][k] = v.clone();
                }
            }
        }
    }
}

fn bad(change: &str, why: &str) -> EngineError {
    EngineError::Invalid(format!("invalid change {change:?}: {why}"))
}

/// A Dockerfile instruction of those docker's `commit -c` takes.
fn parse_change(change: &str) -> Result<Change, EngineError> {
    let (word, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((change.trim(), ""));
    if rest.is_empty() {
        return Err(bad(change, "missing argument"));
    }
    match word.to_ascii_uppercase().as_str() {
        "CMD" => Ok(Change::Set("Cmd", command(change, rest)?)),
        "ENTRYPOINT" => Ok(Change::Set("Entrypoint", command(change, rest)?)),
        "WORKDIR" => Ok(Change::Set("WorkingDir", json!(rest))),
        "USER" => Ok(Change::Set("User", json!(rest))),
        "STOPSIGNAL" => Ok(Change::Set("StopSignal", json!(rest))),
        "ENV" => Ok(Change::Env(pairs(change, rest, true)?)),
        "LABEL" => Ok(Change::Add(
            "Labels",
            pairs(change, rest, false)?
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect(),
        )),
        "EXPOSE" => Ok(Change::Add(
            "ExposedPorts",
            rest.split_whitespace()
                .map(|p| {
                    let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                    (p, json!({}))
                })
                .collect(),
        )),
        other => Err(bad(
            change,
            &format!(
                "{other} is not supported (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, WORKDIR are)"
            ),
        )),
    }
}

/// The exec form (a JSON array) as is; the shell form run by /bin/sh -c.
fn command(change: &str, rest: &str) -> Result<Value, EngineError> {
    if rest.starts_with('[') {
        let v: Vec<String> =
            serde_json::from_str(rest).map_err(|e| bad(change, &format!("bad JSON array: {e}")))?;
        return Ok(json!(v));
    }
    Ok(json!(["/bin/sh", "-c", rest]))
}

/// `K=V K2="V 2"` pairs; with `legacy`, also the one-pair form `K V...`.
fn pairs(change: &str, rest: &str, legacy: bool) -> Result<Vec<(String, String)>, EngineError> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if legacy && !first.contains('=') {
        let value = rest[first.len()..].trim();
        return Ok(vec![(first.to_string(), value.to_string())]);
    }
    let mut out = Vec::new();
    for word in words(rest) {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| bad(change, &format!("{word:?} is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(bad(change, "empty key"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Words split at unquoted blanks, with double quotes removed.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut config = json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"]});
        for c in changes {
            parse_change(c).unwrap().apply(&mut config);
        }
        config
    }

    #[test]
    fn changes_as_docker_applies_them() {
        let c = applied(&[
            "CMD cat /hello",
            "ENTRYPOINT [\"/bin/env\", \"-i\"]",
            "ENV A=2 B=\"x y\"",
            "ENV C three words",
            "WORKDIR /srv",
            "EXPOSE 80 53/udp",
            "USER nobody",
            "LABEL k=v",
        ]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "cat /hello"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/env", "-i"]));
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=2", "B=x y", "C=three words"])
        );
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["User"], "nobody");
        assert_eq!(c["Labels"], json!({"k": "v"}));
    }

    #[test]
    fn bad_changes_are_refused() {
        for c in ["RUN true", "CMD", "LABEL novalue", "ENTRYPOINT [oops"] {
            assert!(parse_change(c).is_err(), "{c}");
        }
    }
}
