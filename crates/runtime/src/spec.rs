//! Loading and validating a bundle's config.json: everything that can be rejected is rejected here,
//! before any kernel object exists, with one line naming the field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid config: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("config.json: {0}")]
    Invalid(String),
    #[error("config.json: {0} is not supported by hull-runtime")]
    Unsupported(&'static str),
}

fn invalid(msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(msg.into())
}

/// A Spec (or a part of one, like a Process) from JSON bytes, through a `serde_json::Value`.
///
/// Every (de)serialization of the OCI types in the runtime goes through a Value, so their large
/// derived Serialize/Deserialize impls are instantiated once (for Value) rather than once per
/// serde_json reader and writer: the static binary, and the pages each run faults in, shrink.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::from_slice(bytes)?)
}

/// What the lifecycle of a created container needs of its stored config.json (start, delete):
/// whether it has a process, and its hooks. Read straight from the bytes, the rest skipped
/// without being built: decoding the whole Spec (its seccomp profile is most of it) at every
/// start and delete costs as much as the create's own parse.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Lifecycle {
    #[serde(default)]
    process: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

impl Lifecycle {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Lifecycle, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub(crate) fn has_process(&self) -> bool {
        self.process.is_some()
    }
}

/// A bundle's config.json read and checked by the caller ahead of its create (an engine whose
/// monitor is idle before its container exists): the create then neither reads nor parses it.
#[derive(Debug)]
pub struct Config {
    spec: Spec,
    bytes: Vec<u8>,
}

impl Config {
    /// Checks `bytes` as create checks config.json. They must be exactly what the bundle's
    /// config.json holds (the runtime keeps the file, or links it, as the container's config).
    pub fn parse(bytes: Vec<u8>) -> Result<Config, crate::Error> {
        let spec = parse(&bytes, Path::new("config.json"))
            .map_err(|e| crate::Error::from(crate::process::ProcessError::from(e)))?;
        Ok(Config { spec, bytes })
    }
}

/// Reads `BUNDLE/config.json` and validates it; the Spec, and the bytes it was read from (what
/// the runtime keeps of it: they decode to the same Spec, without serializing it again).
/// `ahead`: the same, read by the caller already.
pub fn load(bundle: &Path, ahead: Option<Config>) -> Result<(Spec, Vec<u8>), SpecError> {
    if let Some(Config { spec, bytes }) = ahead {
        return Ok((spec, bytes));
    }
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let spec = parse(&bytes, &path)?;
    Ok((spec, bytes))
}

/// `bytes` (config.json at `path`) decoded and validated.
fn parse(bytes: &[u8], path: &Path) -> Result<Spec, SpecError> {
    let path = path.to_path_buf();
    let raw: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| SpecError::Parse {
            path: path.clone(),
            source,
        })?;
    if let Some(key) = crate::resource_keys::first_unknown(&raw) {
        return Err(invalid(format!("{key}: unknown resource field")));
    }
    let spec: Spec =
        serde_json::from_value(raw).map_err(|source| SpecError::Parse { path, source })?;
    validate(&spec)?;
    Ok(spec)
}

/// Checks what the rest of the runtime takes for granted.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    let version = spec.version();
    if !version.starts_with("1.") {
        return Err(invalid(format!(
            "ociVersion {version:?} is not supported (1.x is)"
        )));
    }
    // `process` is optional: the spec requires it only for `start`, which refuses without one.
    if let Some(process) = spec.process() {
        validate_process(process)?;
    }
    if spec.root().is_none() {
        return Err(invalid("root is required"));
    }
    if spec.solaris().is_some() {
        return Err(SpecError::Unsupported("solaris"));
    }
    if spec.windows().is_some() {
        return Err(SpecError::Unsupported("windows"));
    }
    if spec.vm().is_some() {
        return Err(SpecError::Unsupported("vm"));
    }
    if spec.zos().is_some() {
        return Err(SpecError::Unsupported("zos"));
    }
    match spec.linux() {
        Some(linux) => validate_linux(
            linux,
            spec.hostname().is_some() || spec.domainname().is_some(),
        ),
        None => Err(invalid("linux is required")),
    }
}

fn validate_process(process: &oci_spec::runtime::Process) -> Result<(), SpecError> {
    if process.args().as_ref().is_none_or(|args| args.is_empty()) {
        return Err(invalid("process.args must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        )));
    }
    if process.command_line().is_some() {
        return Err(SpecError::Unsupported("process.commandLine (Windows only)"));
    }
    Ok(())
}

fn validate_linux(linux: &oci_spec::runtime::Linux, names_uts: bool) -> Result<(), SpecError> {
    if linux.intel_rdt().is_some() {
        return Err(SpecError::Unsupported(
            "linux.intelRdt (no resctrl on this host)",
        ));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(SpecError::Unsupported("linux.netDevices"));
    }
    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for ns in namespaces {
        if !seen.insert(ns.typ()) {
            return Err(invalid(format!("namespace {} is listed twice", ns.typ())));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(invalid(format!(
                    "namespace {} path {path:?} must be absolute",
                    ns.typ()
                )));
            }
        }
    }
    if names_uts
        && !namespaces
            .iter()
            .any(|ns| ns.typ() == LinuxNamespaceType::Uts)
    {
        return Err(invalid("hostname/domainname need a private UTS namespace"));
    }
    let new_user = namespaces
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !new_user {
        return Err(invalid(
            "linux.uidMappings/gidMappings need a new user namespace",
        ));
    }
    if new_user && !has_maps {
        return Err(invalid(
            "a new user namespace needs linux.uidMappings and linux.gidMappings",
        ));
    }
    if let Some(offsets) = linux.time_offsets() {
        let new_time = namespaces
            .iter()
            .any(|ns| ns.typ() == LinuxNamespaceType::Time && ns.path().is_none());
        if !offsets.is_empty() && !new_time {
            return Err(invalid("linux.timeOffsets need a new time namespace"));
        }
        for clock in offsets.keys() {
            if clock != "monotonic" && clock != "boottime" {
                return Err(invalid(format!(
                    "linux.timeOffsets: unknown clock {clock:?} (monotonic, boottime)"
                )));
            }
        }
    }
    Ok(())
}
