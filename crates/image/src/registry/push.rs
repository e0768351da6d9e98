//! `push`: a local image's blobs (skipping those the registry has) and then its manifest.

use oci_client::RegistryOperation;

use super::{client, parse_ref, runtime, Progress, RegistryError, RegistryOptions};
use crate::digest::Digest;
use crate::store::ImageStore;

/// Pushes local image `image` to `dest` (default: the image's own name). Returns the pushed
/// manifest digest.
pub fn push(
    store: &ImageStore,
    image: &str,
    dest: Option<&str>,
    opts: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<Digest, RegistryError> {
    let manifest_digest = store.resolve(image)?;
    let m = store.manifest(&manifest_digest)?;
    let reference = parse_ref(dest.unwrap_or(image))?;
    let (client, auth) = client(&reference, opts)?;
    let rt = runtime()?;
    rt.block_on(client.auth(&reference, &auth, RegistryOperation::Push))
        .map_err(|source| RegistryError::Registry {
            what: format!("authenticating to {}", reference.registry()),
            err: source,
        })?;
    let mut blobs = vec![m.config.clone()];
    blobs.extend(m.layers.iter().cloned());
    for desc in &blobs {
        let exists = rt
            .block_on(client.blob_exists(&reference, &desc.digest))
            .unwrap_or(false);
        if exists {
            progress.done(&desc.digest, true);
            continue;
        }
        progress.start(&desc.digest, desc.size);
        let d = crate::store::dig_field(&desc.digest)?;
        let data = store.blobs().read(&d).map_err(crate::StoreError::from)?;
        rt.block_on(client.push_blob(&reference, data, &desc.digest))
            .map_err(|source| RegistryError::Registry {
                what: format!("pushing blob {}", desc.digest),
                err: source,
            })?;
        progress.advance(&desc.digest, desc.size);
        progress.done(&desc.digest, false);
    }
    let bytes = store
        .blobs()
        .read(&manifest_digest)
        .map_err(crate::StoreError::from)?;
    let mt = m
        .media_type
        .clone()
        .unwrap_or_else(|| crate::manifest::MT_OCI_MANIFEST.to_string());
    let ct = http::HeaderValue::from_str(&mt).map_err(|e| RegistryError::Invalid {
        what: format!("manifest {manifest_digest}"),
        reason: e.to_string(),
    })?;
    rt.block_on(client.push_manifest_raw(&reference, bytes, ct))
        .map_err(|source| RegistryError::Registry {
            what: format!("pushing manifest to {}", reference.whole()),
            err: source,
        })?;
    Ok(manifest_digest)
}
