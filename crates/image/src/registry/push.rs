//! `push`: a local image's blobs (skipping those the registry has) and then its manifest.
//! Layers go compressed, as docker's and podman's: an uncompressed layer (from `import` of a
//! plain tar or a `commit`) is gzipped on the way, or every layer is brought to the
//! compression asked for; the pushed manifest then names the compressed blobs (the config,
//! and so the image id, is unchanged).

use std::io::Write;

use oci_client::RegistryOperation;

use super::{client, parse_ref, runtime, Progress, RegistryError, RegistryOptions};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, MT_LAYER_GZIP, MT_LAYER_ZSTD, MT_OCI_MANIFEST};
use crate::store::ImageStore;
use crate::unpack::Compression;

/// How `push` compresses layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushCompression {
    /// gzip the uncompressed layers, keep the compressed ones as they are (the default).
    Gzip,
    /// Every layer gzip (`--compression-format gzip`).
    ForceGzip,
    /// Every layer zstd (`--compression-format zstd`).
    ForceZstd,
}

/// What a push did: the manifest digest and size the registry now holds.
#[derive(Debug, Clone)]
pub struct PushReport {
    pub digest: Digest,
    pub size: usize,
}

/// Pushes local image `image` to `dest` (default: the image's own name).
pub fn push(
    store: &ImageStore,
    image: &str,
    dest: Option<&str>,
    opts: &RegistryOptions,
    compression: PushCompression,
    progress: &dyn Progress,
) -> Result<PushReport, RegistryError> {
    let manifest_digest = store.resolve(image)?;
    let m = store.manifest(&manifest_digest)?;
    let reference = parse_ref(dest.unwrap_or(image))?;
    let (client, auth) = client(&reference, opts)?;
    let rt = runtime()?;
    rt.block_on(client.auth(&reference, &auth, RegistryOperation::Push))
        .map_err(|source| RegistryError::Registry {
            what: format!("authenticating to {}", reference.registry()),
            err: source,
        })
        .map_err(|e| super::plain_http_hint(e, &reference, opts))?;
    let config = store
        .blobs()
        .read(&crate::store::dig_field(&m.config.digest)?)
        .map_err(crate::StoreError::from)?;
    let mut uploads: Vec<(Descriptor, Vec<u8>)> = vec![(m.config.clone(), config)];
    let mut layers = Vec::new();
    for l in &m.layers {
        let d = crate::store::dig_field(&l.digest)?;
        let data = store.blobs().read(&d).map_err(crate::StoreError::from)?;
        let (desc, data) = compress(l, data, compression)?;
        layers.push(desc.clone());
        uploads.push((desc, data));
    }
    for (desc, data) in uploads {
        let exists = rt
            .block_on(client.blob_exists(&reference, &desc.digest))
            .unwrap_or(false);
        if exists {
            progress.done(&desc.digest, true);
            continue;
        }
        progress.start(&desc.digest, desc.size);
        rt.block_on(client.push_blob(&reference, data, &desc.digest))
            .map_err(|source| RegistryError::Registry {
                what: format!("pushing blob {}", desc.digest),
                err: source,
            })?;
        progress.advance(&desc.digest, desc.size);
        progress.done(&desc.digest, false);
    }
    let (bytes, mt) = if layers == m.layers {
        let bytes = store
            .blobs()
            .read(&manifest_digest)
            .map_err(crate::StoreError::from)?;
        let mt = m
            .media_type
            .clone()
            .unwrap_or_else(|| MT_OCI_MANIFEST.to_string());
        (bytes, mt)
    } else {
        let config = crate::store::dig_field(&m.config.digest)?;
        let mut out = Manifest::oci(&config, m.config.size, layers);
        out.annotations = m.annotations.clone();
        let bytes = serde_json::to_vec(&out).map_err(|e| RegistryError::Invalid {
            what: "pushed manifest".into(),
            reason: e.to_string(),
        })?;
        (bytes, MT_OCI_MANIFEST.to_string())
    };
    let ct = http::HeaderValue::from_str(&mt).map_err(|e| RegistryError::Invalid {
        what: format!("manifest {manifest_digest}"),
        reason: e.to_string(),
    })?;
    let report = PushReport {
        digest: Digest::of(&bytes),
        size: bytes.len(),
    };
    rt.block_on(client.push_manifest_raw(&reference, bytes, ct))
        .map_err(|source| RegistryError::Registry {
            what: format!("pushing manifest to {}", reference.whole()),
            err: source,
        })?;
    Ok(report)
}

/// The layer as it goes to the registry: `data` as stored, or recompressed.
fn compress(
    layer: &Descriptor,
    data: Vec<u8>,
    how: PushCompression,
) -> Result<(Descriptor, Vec<u8>), RegistryError> {
    let now = Compression::detect(&data);
    let want = match (how, now) {
        (PushCompression::Gzip, Compression::None) | (PushCompression::ForceGzip, _) => {
            Compression::Gzip
        }
        (PushCompression::ForceZstd, _) => Compression::Zstd,
        (PushCompression::Gzip, _) => return Ok((layer.clone(), data)),
    };
    if want == now {
        return Ok((layer.clone(), data));
    }
    let fail = |e: std::io::Error| RegistryError::Invalid {
        what: format!("compressing layer {}", layer.digest),
        reason: e.to_string(),
    };
    let (mut plain, _) = crate::unpack::decompress(&data[..]).map_err(fail)?;
    let out = match want {
        Compression::Zstd => {
            let mut e = zstd::Encoder::new(Vec::new(), 3).map_err(fail)?;
            std::io::copy(&mut plain, &mut e).map_err(fail)?;
            e.finish().map_err(fail)?
        }
        _ => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::copy(&mut plain, &mut e).map_err(fail)?;
            e.flush().map_err(fail)?;
            e.finish().map_err(fail)?
        }
    };
    let mt = if want == Compression::Zstd {
        MT_LAYER_ZSTD
    } else {
        MT_LAYER_GZIP
    };
    let desc = Descriptor::new(mt, &Digest::of(&out), out.len() as u64);
    Ok((desc, out))
}
