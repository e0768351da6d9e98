//! OCI and Docker manifest, index and config documents: parsing with clear errors, media
//! types hull accepts, and building the documents of images hull makes itself.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const LAYER_TYPES: &[&str] = &[
    MT_LAYER_TAR,
    MT_LAYER_GZIP,
    MT_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Errors from reading image documents.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{what} {digest} is not valid JSON: {err}")]
    Json {
        what: &'static str,
        digest: String,
        err: serde_json::Error,
    },
    #[error("{what} {digest}: unsupported media type {media_type:?}")]
    MediaType {
        what: &'static str,
        digest: String,
        media_type: String,
    },
    #[error("{what} {digest}: {reason}")]
    Invalid {
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("image index {0} has no manifest for platform {1}")]
    NoPlatform(String, String),
}

/// A content descriptor (media type, digest, size), as in every OCI document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            platform: None,
            annotations: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema 2, which share their shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Manifest {
    /// An OCI image manifest for a config blob of `config_len` bytes and its layers.
    pub fn oci(config_digest: &Digest, config_len: u64, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(MT_OCI_MANIFEST.into()),
            config: Descriptor::new(MT_OCI_CONFIG, config_digest, config_len),
            layers,
            annotations: None,
        }
    }
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A top-level document, classified by its media type.
#[derive(Debug)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

fn json_err<'a>(
    what: &'static str,
    digest: &'a str,
) -> impl FnOnce(serde_json::Error) -> ManifestError + 'a {
    move |source| ManifestError::Json {
        what,
        digest: digest.to_string(),
        err: source,
    }
}

/// Parses a manifest or index; `declared` is the media type the transport announced.
pub fn parse_document(
    bytes: &[u8],
    digest: &str,
    declared: Option<&str>,
) -> Result<Document, ManifestError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(json_err("manifest", digest))?;
    let inner = v.get("mediaType").and_then(|m| m.as_str());
    let mt = inner
        .or(declared)
        .unwrap_or(if v.get("manifests").is_some() {
            MT_OCI_INDEX
        } else {
            MT_OCI_MANIFEST
        });
    match mt {
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => {
            let m: Manifest = serde_json::from_value(v).map_err(json_err("manifest", digest))?;
            validate_manifest(&m, digest)?;
            Ok(Document::Manifest(m))
        }
        MT_OCI_INDEX | MT_DOCKER_LIST => Ok(Document::Index(
            serde_json::from_value(v).map_err(json_err("image index", digest))?,
        )),
        other => Err(ManifestError::MediaType {
            what: "manifest",
            digest: digest.to_string(),
            media_type: other.to_string(),
        }),
    }
}

fn validate_manifest(m: &Manifest, digest: &str) -> Result<(), ManifestError> {
    if m.schema_version != 2 {
        return Err(ManifestError::Invalid {
            what: "manifest",
            digest: digest.into(),
            reason: format!("schemaVersion {} (only 2 is supported)", m.schema_version),
        });
    }
    if !matches!(
        m.config.media_type.as_str(),
        MT_OCI_CONFIG | MT_DOCKER_CONFIG
    ) {
        return Err(ManifestError::MediaType {
            what: "image config",
            digest: m.config.digest.clone(),
            media_type: m.config.media_type.clone(),
        });
    }
    check_digest(&m.config.digest, "image config")?;
    for l in &m.layers {
        check_digest(&l.digest, "layer")?;
        if !LAYER_TYPES.contains(&l.media_type.as_str()) {
            return Err(ManifestError::MediaType {
                what: "layer",
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            });
        }
    }
    Ok(())
}

fn check_digest(d: &str, what: &'static str) -> Result<Digest, ManifestError> {
    d.parse()
        .map_err(|e: crate::digest::DigestError| ManifestError::Invalid {
            what,
            digest: d.to_string(),
            reason: e.to_string(),
        })
}

/// The host's platform in OCI terms.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.to_string(),
        os: "linux".to_string(),
        variant: None,
    }
}

/// Picks the index entry matching the host platform.
pub fn select_platform<'a>(
    index: &'a Index,
    digest: &str,
) -> Result<&'a Descriptor, ManifestError> {
    let host = host_platform();
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == host.os && p.architecture == host.architecture)
        })
        .ok_or_else(|| {
            ManifestError::NoPlatform(
                digest.to_string(),
                format!("{}/{}", host.os, host.architecture),
            )
        })
}

/// The parts of an image config hull reads (the rest is kept verbatim in the blob).
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigSummary {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub created: Option<String>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// Parses a config blob and checks its diff ids match the manifest's layer count.
pub fn parse_config(
    bytes: &[u8],
    digest: &str,
    layers: usize,
) -> Result<(ConfigSummary, Vec<Digest>), ManifestError> {
    let c: ConfigSummary =
        serde_json::from_slice(bytes).map_err(json_err("image config", digest))?;
    let diff_ids = c
        .rootfs
        .diff_ids
        .iter()
        .map(|d| check_digest(d, "image config diff id"))
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != layers {
        return Err(ManifestError::Invalid {
            what: "image config",
            digest: digest.into(),
            reason: format!("lists {} diff ids for {} layers", diff_ids.len(), layers),
        });
    }
    Ok((c, diff_ids))
}

/// Builds the config of an image hull makes (import, commit): `base` is the parent's config.
pub fn build_config(
    base: Option<&[u8]>,
    diff_ids: &[Digest],
    created_by: &str,
) -> serde_json::Value {
    let now = crate::time::rfc3339_now();
    let mut v: serde_json::Value = base
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_else(|| {
            let p = host_platform();
            serde_json::json!({"architecture": p.architecture, "os": p.os, "config": {}})
        });
    v["created"] = serde_json::Value::String(now.clone());
    v["rootfs"] = serde_json::json!({
        "type": "layers",
        "diff_ids": diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    let entry = serde_json::json!({"created": now, "created_by": created_by});
    match v.get_mut("history").and_then(|h| h.as_array_mut()) {
        Some(h) => h.push(entry),
        None => v["history"] = serde_json::json!([entry]),
    }
    v
}
