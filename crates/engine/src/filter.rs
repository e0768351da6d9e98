//! `--filter KEY=VALUE` of `ps` and `container prune`, as docker reads them: the values of one
//! key are alternatives, different keys must all match.

use std::collections::BTreeMap;

use crate::store::{Record, State};
use crate::times::{self, Nanos};
use crate::EngineError;

/// The filters of one command, parsed.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

/// What a record is matched against beside its row: whether its cgroup is frozen.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub paused: bool,
}

impl Filters {
    /// `KEY=VALUE` items; `allowed` are the keys the command takes.
    pub fn parse(items: &[String], allowed: &[&str]) -> Result<Filters, EngineError> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in items {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                EngineError::Invalid(format!(
                    "bad format of filter {item:?} (expected name=value)"
                ))
            })?;
            let k = k.trim().to_ascii_lowercase();
            if !allowed.contains(&k.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "invalid filter {k:?}: use one of {}",
                    allowed.join(", ")
                )));
            }
            check(&k, v)?;
            by_key.entry(k).or_default().push(v.to_string());
        }
        Ok(Filters { by_key })
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether `r` passes every key.
    pub fn matches(&self, r: &Record, seen: Seen) -> bool {
        self.by_key
            .iter()
            .all(|(k, values)| values.iter().any(|v| one(k, v, r, seen)))
    }
}

/// The value checks that can fail before any container is looked at.
fn check(key: &str, value: &str) -> Result<(), EngineError> {
    let bad = |why: &str| {
        Err(EngineError::Invalid(format!(
            "invalid filter {key}={value:?}: {why}"
        )))
    };
    match key {
        "status" if !STATUSES.contains(&value) => {
            bad(&format!("use one of {}", STATUSES.join(", ")))
        }
        "exited" if value.parse::<i32>().is_err() => bad("use an exit code"),
        "until" => times::parse_point("until", value).map(drop),
        _ => Ok(()),
    }
}

const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// docker's status of a container, as the `status` filter names them.
pub fn status_name(r: &Record, seen: Seen) -> &'static str {
    match r.state {
        State::Running if seen.paused => "paused",
        State::Starting => "created",
        s => s.as_str(),
    }
}

fn one(key: &str, value: &str, r: &Record, seen: Seen) -> bool {
    match key {
        "status" => status_name(r, seen) == value,
        "name" => r.name.contains(value.trim_start_matches('/')),
        "id" => r.id.starts_with(value),
        "label" => {
            let (k, want) = match value.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (value, None),
            };
            r.settings
                .labels
                .get(k)
                .is_some_and(|have| want.is_none_or(|w| w == have))
        }
        "ancestor" => {
            let id = r.image_id.trim_start_matches("sha256:");
            let v = value.trim_start_matches("sha256:");
            r.image == value
                || r.image.strip_suffix(":latest") == Some(value)
                || value.strip_suffix(":latest") == Some(r.image.as_str())
                || (v.len() >= 4 && id.starts_with(v))
        }
        "exited" => r.state == State::Exited && value.parse() == Ok(r.exit_code.unwrap_or(0)),
        "until" => {
            let until: Nanos = times::parse_point("until", value).unwrap_or(Nanos::MAX);
            times::parse_rfc3339(&r.created).is_some_and(|c| c < until)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let mut settings = crate::options::Settings::default();
        settings.labels.insert("app".into(), "web".into());
        Record {
            id: "abcdef".repeat(10) + "0123",
            name: "web-1".into(),
            image: "busybox".into(),
            image_id: "sha256:1234567890".into(),
            command: vec![],
            created: "2026-01-01T00:00:00Z".into(),
            state: State::Exited,
            settings,
            monitor_pid: None,
            monitor_start: None,
            pid: None,
            started: None,
            finished: None,
            exit_code: Some(3),
            reason: None,
        }
    }

    fn f(items: &[&str]) -> Filters {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        Filters::parse(
            &items,
            &[
                "status", "name", "id", "label", "ancestor", "exited", "until",
            ],
        )
        .unwrap()
    }

    #[test]
    fn keys_and_alternatives() {
        let r = record();
        let seen = Seen { paused: false };
        assert!(f(&[]).matches(&r, seen));
        assert!(f(&["status=exited", "name=web"]).matches(&r, seen));
        assert!(f(&["status=running", "status=exited"]).matches(&r, seen));
        assert!(!f(&["status=running"]).matches(&r, seen));
        assert!(f(&["label=app", "label=app=web", "exited=3"]).matches(&r, seen));
        assert!(!f(&["label=app=db"]).matches(&r, seen));
        assert!(f(&["ancestor=busybox:latest", "id=abcd"]).matches(&r, seen));
        assert!(f(&["ancestor=1234"]).matches(&r, seen));
        assert!(f(&["until=2026-01-02"]).matches(&r, seen));
        assert!(!f(&["until=2025-12-31"]).matches(&r, seen));
        let allowed = ["status"];
        assert!(Filters::parse(&["colour=red".into()], &allowed).is_err());
        assert!(Filters::parse(&["status=sleepy".into()], &allowed).is_err());
        assert!(Filters::parse(&["status".into()], &allowed).is_err());
    }
}
