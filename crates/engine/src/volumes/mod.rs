//! Volumes: directories under `<root>/volumes/<name>/_data` that outlive the containers using
//! them, with a row each in hull.db (`engine_volumes`); and the mounts of a new container
//! (`-v`, `--mount`, `--tmpfs`, the image's `Volumes`) turned into config.json mounts.
//!
//! Which containers use a volume is read from their rows (`Settings::volumes`), so a volume is
//! "in use" exactly while a container row names it. `create` writes the container row first and
//! makes its volumes after, and `volume rm` checks and deletes in one write transaction: a
//! volume is never removed between the two.

pub(crate) mod copy;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::Config as ImageConfig;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::monitor::teardown;
use crate::store::{self, Record};
use crate::{paths, Engine};
pub use spec::{MountSpec, Source};

/// A volume, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeRecord {
    pub name: String,
    pub created: String,
    pub labels: BTreeMap<String, String>,
    pub anonymous: bool,
}

/// `<root>/volumes/<name>`.
pub fn volume_dir(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name)
}

/// The directory a container sees: `<root>/volumes/<name>/_data`.
pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    volume_dir(root, name).join("_data")
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VolumeRecord> {
    let labels: String = r.get(2)?;
    let anonymous: i64 = r.get(3)?;
    Ok(VolumeRecord {
        name: r.get(0)?,
        created: r.get(1)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        anonymous: anonymous != 0,
    })
}

pub(crate) fn get(conn: &Connection, name: &str) -> Result<Option<VolumeRecord>, EngineError> {
    Ok(conn
        .query_row(
            "SELECT name, created, labels, anonymous FROM engine_volumes WHERE name = ?1",
            [name],
            row,
        )
        .optional()?)
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<VolumeRecord>, EngineError> {
    let mut stmt =
        conn.prepare("SELECT name, created, labels, anonymous FROM engine_volumes ORDER BY name")?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The containers whose rows name volume `name`.
pub(crate) fn users(conn: &Connection, name: &str) -> Result<Vec<String>, EngineError> {
    Ok(store::list(conn)?
        .into_iter()
        .filter(|r| {
            r.settings.volumes.iter().any(|v| v == name)
                || r.settings.anonymous_volumes.iter().any(|v| v == name)
        })
        .map(|r| r.id)
        .collect())
}

/// Makes volume `name` (its row, then its directory) unless it exists; whether it was made.
pub(crate) fn ensure(
    conn: &mut Connection,
    root: &Path,
    name: &str,
    labels: &[(String, String)],
    anonymous: bool,
) -> Result<bool, EngineError> {
    spec::check_volume_name(name)?;
    let labels: BTreeMap<&str, &str> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let labels = serde_json::to_string(&labels)
        .map_err(|e| EngineError::Invalid(format!("encoding labels: {e}")))?;
    let made = conn.execute(
        "INSERT OR IGNORE INTO engine_volumes (name, created, labels, anonymous) VALUES (?1, ?2, ?3, ?4)",
        params![name, hull_runtime::now_rfc3339(), labels, i64::from(anonymous)],
    )? == 1;
    let data = data_dir(root, name);
    std::fs::create_dir_all(&data)
        .map_err(EngineError::io(format!("creating {}", data.display())))?;
    Ok(made)
}

/// Removes volume `name`; refused while a container uses it.
pub(crate) fn remove(conn: &mut Connection, root: &Path, name: &str) -> Result<(), EngineError> {
    let tx = hull_db::write_tx(conn)?;
    if get(&tx, name)?.is_none() {
        return Err(EngineError::NoSuchVolume(name.to_string()));
    }
    let users = users(&tx, name)?;
    if !users.is_empty() {
        return Err(EngineError::VolumeInUse {
            name: name.to_string(),
            containers: users.join(", "),
        });
    }
    tx.execute("DELETE FROM engine_volumes WHERE name = ?1", [name])?;
    tx.commit()?;
    // Out of volumes/ in one rename; the files are deleted after.
    let dir = volume_dir(root, name);
    let trash = paths::trash_dir(root);
    std::fs::create_dir_all(&trash)
        .map_err(EngineError::io(format!("creating {}", trash.display())))?;
    let to = trash.join(format!("volume-{}", hull_net::network::random_id()));
    match std::fs::rename(&dir, &to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::io(format!("removing {}", dir.display()))(e)),
    }
    teardown::empty_trash(root);
    Ok(())
}

/// Removes the anonymous volumes of a removed container (`rm -v`, `--rm`); one that another
/// container also mounts stays.
pub(crate) fn remove_anonymous(conn: &mut Connection, root: &Path, names: &[String]) {
    for n in names {
        let _ = remove(conn, root, n);
    }
}

/// Bytes in files under `path`.
pub(crate) fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(Result::ok).map(|e| size_of(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

/// The mounts of a new container, resolved: what config.json gets, the volumes to make (after
/// the container's row), the host paths `-v` makes.
#[derive(Debug, Default)]
pub struct Plan {
    /// config.json `mounts` entries, parents before children.
    pub mounts: Vec<Value>,
    /// Named volumes the container uses.
    pub named: Vec<String>,
    /// Anonymous volumes made for it.
    pub anonymous: Vec<String>,
    volumes: Vec<NewVolume>,
    binds_to_make: Vec<PathBuf>,
}

#[derive(Debug)]
struct NewVolume {
    name: String,
    target: String,
    nocopy: bool,
    labels: Vec<(String, String)>,
    anonymous: bool,
}

/// Resolves `specs` and the image's `Volumes` (an anonymous volume for each one no spec
/// covers). Checks what docker checks: one mount per target, `--mount` bind sources exist.
pub fn plan(
    root: &Path,
    image: Option<&ImageConfig>,
    specs: &[MountSpec],
) -> Result<Plan, EngineError> {
    let mut all: Vec<MountSpec> = specs.to_vec();
    let mut image_volumes: Vec<String> = image
        .and_then(|c| c.volumes().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.starts_with('/'))
        .map(|v| spec::normalize(&v))
        .collect();
    image_volumes.sort();
    image_volumes.dedup();
    for v in image_volumes {
        if v != "/" && !all.iter().any(|s| s.target == v) {
            all.push(MountSpec {
                source: Source::Volume {
                    name: None,
                    nocopy: false,
                    labels: Vec::new(),
                },
                target: v,
                readonly: false,
            });
        }
    }
    let mut targets: Vec<&str> = Vec::new();
    for s in &all {
        if targets.contains(&s.target.as_str()) {
            return Err(EngineError::Invalid(format!(
                "duplicate mount point: {}",
                s.target
            )));
        }
        targets.push(&s.target);
    }
    // Parents first, so a mount inside another lands on top of it (docker's order).
    all.sort_by_key(|s| s.target.split('/').filter(|c| !c.is_empty()).count());
    let mut plan = Plan::default();
    for s in &all {
        let mut options: Vec<String> = Vec::new();
        let (kind, source) = match &s.source {
            Source::Bind {
                path,
                create,
                propagation,
            } => {
                if !path.exists() {
                    if *create {
                        plan.binds_to_make.push(path.clone());
                    } else {
                        return Err(EngineError::Invalid(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            path.display()
                        )));
                    }
                }
                options.push("rbind".into());
                options.push(propagation.clone().unwrap_or_else(|| "rprivate".into()));
                ("bind", path.clone())
            }
            Source::Volume {
                name,
                nocopy,
                labels,
            } => {
                let (name, anonymous) = match name {
                    Some(n) => (n.clone(), false),
                    None => (hull_net::network::random_id(), true),
                };
                if anonymous {
                    plan.anonymous.push(name.clone());
                } else if !plan.named.contains(&name) {
                    plan.named.push(name.clone());
                }
                plan.volumes.push(NewVolume {
                    name: name.clone(),
                    target: s.target.clone(),
                    nocopy: *nocopy,
                    labels: labels.clone(),
                    anonymous,
                });
                options.extend(["rbind".into(), "rprivate".into()]);
                ("bind", data_dir(root, &name))
            }
            Source::Tmpfs { options: extra } => {
                options.extend(["nosuid".into(), "nodev".into()]);
                if !extra.iter().any(|o| o == "exec") {
                    options.push("noexec".into());
                }
                options.extend(extra.iter().cloned());
                ("tmpfs", PathBuf::from("tmpfs"))
            }
        };
        if s.readonly {
            options.push("ro".into());
        }
        plan.mounts.push(json!({
            "destination": s.target,
            "type": kind,
            "source": source,
            "options": options,
        }));
    }
    Ok(plan)
}

impl Plan {
    /// Makes the `-v` host paths that do not exist, as docker does.
    pub(crate) fn make_bind_sources(&self) -> Result<(), EngineError> {
        for p in &self.binds_to_make {
            std::fs::create_dir_all(p)
                .map_err(EngineError::io(format!("creating {}", p.display())))?;
        }
        Ok(())
    }

    /// Makes the container's volumes that do not exist, after its row names them; a new (empty)
    /// one gets the image's content at its target unless `nocopy`.
    pub(crate) fn make_volumes(
        &self,
        conn: &mut Connection,
        root: &Path,
        lowers: &[PathBuf],
    ) -> Result<(), EngineError> {
        for v in &self.volumes {
            ensure(conn, root, &v.name, &v.labels, v.anonymous)?;
            let data = data_dir(root, &v.name);
            let empty = std::fs::read_dir(&data)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty && !v.nocopy {
                fill(root, &v.name, &v.target, lowers)?;
            }
        }
        Ok(())
    }
}

/// docker's `Mounts` of `inspect`: the user's and the image's mounts in a container's
/// config.json (`spec`), leaving out the defaults every container has.
pub(crate) fn inspect_mounts(root: &Path, spec: &Value) -> Value {
    let defaults: Vec<Value> = crate::bundle::defaults::mounts()
        .into_iter()
        .map(|m| m["destination"].clone())
        .chain(["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].map(Value::from))
        .collect();
    let volumes = root.join("volumes");
    let list: Vec<Value> = spec["mounts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|m| !defaults.contains(&m["destination"]))
        .map(|m| {
            let options: Vec<&str> = m["options"]
                .as_array()
                .map(|o| o.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let source = m["source"].as_str().unwrap_or_default();
            let volume = Path::new(source)
                .strip_prefix(&volumes)
                .ok()
                .and_then(|rest| rest.iter().next())
                .and_then(|name| name.to_str());
            let kind = match (m["type"].as_str(), volume) {
                (Some("tmpfs"), _) => "tmpfs",
                (_, Some(_)) => "volume",
                _ => "bind",
            };
            let propagation = options
                .iter()
                .find(|o| spec::PROPAGATIONS.contains(o))
                .copied()
                .unwrap_or_default();
            let mut doc = json!({
                "Type": kind,
                "Source": if kind == "tmpfs" { "" } else { source },
                "Destination": m["destination"],
                "Mode": "",
                "RW": !options.contains(&"ro"),
                "Propagation": if kind == "bind" { propagation } else { "" },
            });
            if let Some(name) = volume {
                doc["Name"] = json!(name);
                doc["Driver"] = json!("local");
            }
            doc
        })
        .collect();
    Value::Array(list)
}

/// Fills empty volume `name` with the image's content at `target`: copied beside `_data`,
/// then renamed over it, which succeeds only while `_data` is still empty. So of several
/// `hull run`s that make one volume at once, one fills it, and none sees a half-made copy.
fn fill(root: &Path, name: &str, target: &str, lowers: &[PathBuf]) -> Result<(), EngineError> {
    let tmp = volume_dir(root, name).join(format!(".fill-{}", hull_net::network::random_id()));
    std::fs::create_dir(&tmp).map_err(EngineError::io(format!("creating {}", tmp.display())))?;
    let copied = copy::image_path(lowers, target, &tmp);
    let filled = std::fs::read_dir(&tmp)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if copied.is_ok() && filled && std::fs::rename(&tmp, data_dir(root, name)).is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&tmp);
    copied.map_err(EngineError::io(format!(
        "copying the image's {target} into volume {name}"
    )))
}

impl Engine {
    /// `volume create`: makes volume `name` (a random name when None) unless it exists.
    pub fn volume_create(
        &mut self,
        name: Option<&str>,
        labels: &[(String, String)],
    ) -> Result<VolumeRecord, EngineError> {
        let name = name.map_or_else(hull_net::network::random_id, str::to_string);
        ensure(&mut self.conn, &self.root, &name, labels, false)?;
        get(&self.conn, &name)?.ok_or(EngineError::NoSuchVolume(name))
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<VolumeRecord>, EngineError> {
        self.settle()?;
        list(&self.conn)
    }

    /// docker's `volume inspect` document of volume `name`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value, EngineError> {
        self.settle()?;
        let v = get(&self.conn, name)?.ok_or_else(|| EngineError::NoSuchVolume(name.into()))?;
        let users = users(&self.conn, name)?;
        Ok(json!({
            "CreatedAt": v.created,
            "Driver": "local",
            "Labels": v.labels,
            "Mountpoint": data_dir(&self.root, name),
            "Name": v.name,
            "Options": {},
            "Scope": "local",
            "Anonymous": v.anonymous,
            "UsedBy": users,
        }))
    }

    /// `volume rm`: refused while a container uses it.
    pub fn volume_remove(&mut self, name: &str) -> Result<(), EngineError> {
        self.settle()?;
        remove(&mut self.conn, &self.root, name)
    }

    /// `volume prune`: removes the volumes no container uses (anonymous ones only, unless
    /// `all`, as docker 23 and later); their names and the bytes freed.
    pub fn volume_prune(&mut self, all: bool) -> Result<(Vec<String>, u64), EngineError> {
        self.settle()?;
        let mut removed = Vec::new();
        let mut bytes = 0;
        for v in list(&self.conn)? {
            if !(all || v.anonymous) || !users(&self.conn, &v.name)?.is_empty() {
                continue;
            }
            let size = size_of(&volume_dir(&self.root, &v.name));
            match remove(&mut self.conn, &self.root, &v.name) {
                Ok(()) => {
                    removed.push(v.name);
                    bytes += size;
                }
                // Taken by a container meanwhile, or removed by another command.
                Err(EngineError::VolumeInUse { .. } | EngineError::NoSuchVolume(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, bytes))
    }

    /// Removes a container as [`Engine::remove`] does, and then its anonymous volumes
    /// (`rm -v`).
    pub fn remove_with_volumes(
        &mut self,
        reference: &str,
        force: bool,
    ) -> Result<Record, EngineError> {
        let record = self.remove(reference, force)?;
        remove_anonymous(
            &mut self.conn,
            &self.root,
            &record.settings.anonymous_volumes,
        );
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(json: &str) -> ImageConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plan_orders_checks_and_adds_image_volumes() {
        let root = Path::new("/nonexistent-hull-root");
        let specs = vec![
            MountSpec::parse_volume("cache:/data/cache:ro").unwrap(),
            MountSpec::parse_volume("data:/data").unwrap(),
            MountSpec::parse_tmpfs("/run:size=1m").unwrap(),
        ];
        let img = image(r#"{"Volumes": {"/data": {}, "/var/lib/x": {}}}"#);
        let p = plan(root, Some(&img), &specs).unwrap();
        let dests: Vec<&str> = p
            .mounts
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert_eq!(dests, ["/data", "/run", "/data/cache", "/var/lib/x"]);
        assert_eq!(p.named, ["data", "cache"]);
        assert_eq!(p.anonymous.len(), 1);
        assert_eq!(
            p.mounts[2]["source"],
            "/nonexistent-hull-root/volumes/cache/_data"
        );
        assert_eq!(p.mounts[2]["options"], json!(["rbind", "rprivate", "ro"]));
        assert_eq!(
            p.mounts[1]["options"],
            json!(["nosuid", "nodev", "noexec", "size=1048576"])
        );
        let dup = vec![
            MountSpec::parse_volume("a1:/d").unwrap(),
            MountSpec::parse_tmpfs("/d/").unwrap(),
        ];
        assert!(plan(root, None, &dup).is_err());
        let missing =
            vec![MountSpec::parse_mount("type=bind,src=/nonexistent-hull-x,dst=/d").unwrap()];
        let e = plan(root, None, &missing).unwrap_err().to_string();
        assert!(e.contains("bind source path does not exist"), "{e}");
        let made = vec![MountSpec::parse_volume("/nonexistent-hull-x:/d").unwrap()];
        assert_eq!(plan(root, None, &made).unwrap().binds_to_make.len(), 1);
    }
}
