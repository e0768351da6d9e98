//! The OCI seccomp section of a container's config.json, converted from a docker-format
//! profile ([`crate::bundle::seccomp`]) once per profile file and capability set, and kept as
//! JSON text under `<root>/cache/`: reading, converting, checking and re-serializing the
//! profile was a third of the instructions of each `hull run`'s client.
//!
//! An entry's first line is its whole key: this hull's version, the architecture, the
//! profile's path and identity (device, inode, size, mtime and ctime in ns; any write to the
//! file or its replacement changes one) and the capabilities. A profile changed since, or a
//! different hull, misses and rewrites the entry (by rename, so a reader sees a whole one). A
//! profile modified in the last seconds is not cached ([`racy`]).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::bundle::seccomp;

/// Why there is no section.
#[derive(Debug)]
pub enum SectionError {
    /// The profile cannot be read.
    Read(std::io::Error),
    /// It is not a profile hull can use.
    Invalid(String),
}

/// The seccomp section for `caps` from the profile at `profile`, cached under `root`.
pub fn section(
    root: &Path,
    profile: &Path,
    caps: &[String],
) -> Result<Box<RawValue>, SectionError> {
    // Before the profile is read: a change after this stat misses next time.
    let meta = std::fs::metadata(profile).map_err(SectionError::Read)?;
    // The file is named by what the section is for; its first line adds the profile's
    // identity, so a changed profile replaces its entry rather than adding one.
    let what = format!(
        "hull-seccomp {} {} {:?} {}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        profile,
        caps.join(","),
    );
    let key = format!(
        "{what} {} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    );
    let file = entry_path(root, &what);
    if let Some(hit) = cached(&file, &key) {
        return Ok(hit);
    }
    let text = std::fs::read_to_string(profile).map_err(SectionError::Read)?;
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let value = seccomp::from_docker_profile(&text, &profile.to_string_lossy(), &caps)
        .map_err(|e| SectionError::Invalid(e.to_string()))?;
    // The runtime reads it as the Spec's section: one it would refuse is an engine bug.
    oci_spec::runtime::LinuxSeccomp::deserialize(&value)
        .map_err(|e| SectionError::Invalid(format!("generated seccomp section is invalid: {e}")))?;
    let json = serde_json::to_string(&value)
        .map_err(|e| SectionError::Invalid(format!("encoding the seccomp section: {e}")))?;
    // Best effort: without the entry the next run converts again.
    if !racy(&meta) {
        let _ = store(&file, &key, &json);
    }
    RawValue::from_string(json).map_err(|e| SectionError::Invalid(e.to_string()))
}

/// Whether the profile was modified so recently that a second write in the same clock tick,
/// of the same size, could leave its identity unchanged (git's "racy" index entries): such a
/// profile is converted again until it is older.
fn racy(meta: &std::fs::Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_none_or(|age| age < RACY_WITHIN)
}

/// How many sections are kept (one per profile file and capability set); the least recently
/// written go first.
const MAX_ENTRIES: usize = 64;

/// See [`racy`]: far above any file system's timestamp granularity.
const RACY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

fn entry_path(root: &Path, what: &str) -> PathBuf {
    let mut hasher = std::hash::DefaultHasher::new();
    what.hash(&mut hasher);
    crate::paths::cache_dir(root).join(format!("seccomp-{:016x}.json", hasher.finish()))
}

fn cached(file: &Path, key: &str) -> Option<Box<RawValue>> {
    let mut text = std::fs::read_to_string(file).ok()?;
    let (first, _) = text.split_once('\n')?;
    if first != key {
        return None;
    }
    let json = text.split_off(key.len() + 1);
    RawValue::from_string(json).ok()
}

fn store(file: &Path, key: &str, json: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
        hull_sys::cache_dir::make_room(dir, MAX_ENTRIES);
    }
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(key.as_bytes())?;
        f.write_all(b"\n")?;
        f.write_all(json.as_bytes())?;
        std::fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [],
      "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}}
      ]}"#;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hull-seccomp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(section: &RawValue) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(section.get()).unwrap();
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["names"][0].as_str().unwrap().to_string())
            .collect()
    }

    fn age(path: &Path) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(old).unwrap();
    }

    fn entries(root: &Path) -> usize {
        std::fs::read_dir(root.join("cache")).map_or(0, Iterator::count)
    }

    #[test]
    fn entry_follows_the_profile_and_the_caps() {
        let dir = temp("follow");
        let profile = dir.join("profile.json");
        std::fs::write(&profile, PROFILE).unwrap();
        let root = dir.join("root");
        let chroot = vec!["CAP_SYS_CHROOT".to_string()];
        // Just written: converted, not kept.
        assert_eq!(
            names(&section(&root, &profile, &chroot).unwrap()),
            ["read", "chroot"]
        );
        assert_eq!(entries(&root), 0);
        age(&profile);
        assert_eq!(
            names(&section(&root, &profile, &chroot).unwrap()),
            ["read", "chroot"]
        );
        assert_eq!(entries(&root), 1);
        // A hit: the same text again; other caps, another entry.
        assert_eq!(
            names(&section(&root, &profile, &chroot).unwrap()),
            ["read", "chroot"]
        );
        assert_eq!(names(&section(&root, &profile, &[]).unwrap()), ["read"]);
        assert_eq!(entries(&root), 2);
        // Rewritten in place, same size and mtime: its ctime tells.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&profile, PROFILE.replace("\"read\"", "\"stat\"")).unwrap();
        age(&profile);
        assert_eq!(
            names(&section(&root, &profile, &chroot).unwrap()),
            ["stat", "chroot"]
        );
        // A corrupt entry is converted again and replaced.
        for e in std::fs::read_dir(root.join("cache")).unwrap() {
            let path = e.unwrap().path();
            let key = std::fs::read_to_string(&path).unwrap();
            let key = key.lines().next().unwrap().to_string();
            std::fs::write(&path, format!("{key}\n{{\"syscalls\": [")).unwrap();
        }
        assert_eq!(names(&section(&root, &profile, &[]).unwrap()), ["stat"]);
        assert_eq!(names(&section(&root, &profile, &[]).unwrap()), ["stat"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_sections() {
        let dir = temp("bounded");
        let profile = dir.join("profile.json");
        std::fs::write(&profile, PROFILE).unwrap();
        age(&profile);
        let root = dir.join("root");
        for i in 0..MAX_ENTRIES + 3 {
            let caps = vec![format!("CAP_X{i}")];
            assert_eq!(names(&section(&root, &profile, &caps).unwrap()), ["read"]);
        }
        assert_eq!(entries(&root), MAX_ENTRIES);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_and_invalid_profiles_are_told_apart() {
        let dir = temp("errors");
        let root = dir.join("root");
        let missing = section(&root, &dir.join("none.json"), &[]);
        assert!(matches!(missing, Err(SectionError::Read(_))));
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\"syscalls\": []}").unwrap();
        let Err(SectionError::Invalid(why)) = section(&root, &bad, &[]) else {
            panic!("a profile without defaultAction was taken");
        };
        assert!(why.contains("defaultAction"), "{why}");
        assert!(!root.join("cache").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
