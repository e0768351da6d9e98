//! `pull`: manifest (index resolved for the host platform), config, then the layers in
//! parallel, each streamed into a temp blob, verified, renamed, and unpacked while the others
//! still download. Layers already present are skipped. The image record is written last.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{
    auth_for, blob_client, client_config, parse_ref, runtime, spare_client, Progress,
    RegistryError, RegistryOptions,
};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Document};
use crate::store::{BlobStore, ImageStore, LayerStore};
use crate::unpack::{UnpackOptions, UnpackStats};

const ACCEPT: &[&str] = &[
    manifest::MT_OCI_MANIFEST,
    manifest::MT_OCI_INDEX,
    manifest::MT_DOCKER_MANIFEST,
    manifest::MT_DOCKER_LIST,
];
const ATTEMPTS: u32 = 3;

/// What a pull did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullReport {
    pub manifest: Digest,
    /// The image id (config digest), as `images` shows it.
    pub id: Digest,
    /// The name already pointed at this manifest: nothing new was stored.
    pub up_to_date: bool,
    pub name: Option<String>,
    pub downloaded: usize,
    pub skipped: usize,
    pub bytes: u64,
}

fn reg_err(what: String) -> impl FnOnce(oci_client::errors::OciDistributionError) -> RegistryError {
    move |err| RegistryError::Registry { what, err }
}

fn invalid(what: impl Into<String>, reason: impl ToString) -> RegistryError {
    RegistryError::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// Pulls `name` (`repo[:tag]` or `repo@digest`) into the store.
pub fn pull(
    store: &mut ImageStore,
    name: &str,
    opts: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<PullReport, RegistryError> {
    let reference = parse_ref(name)?;
    let auth = auth_for(&reference, opts)?;
    let spare = spare_client(&reference, &auth, opts);
    let client = Client::new(client_config(&reference, opts)?);
    let rt = runtime()?;
    let lock = store.lock_shared()?;
    let (bytes, digest) = rt
        .block_on(fetch_manifest(&client, &auth, &reference))
        .map_err(|e| super::plain_http_hint(e, &reference, opts))?;
    let m = match manifest::parse_document(&bytes, &digest.to_string(), None)
        .map_err(crate::StoreError::from)?
    {
        Document::Manifest(m) => m,
        Document::Index(_) => {
            return Err(invalid(
                digest.to_string(),
                "an index where an image manifest was expected",
            ))
        }
    };
    // A spare that failed to build leaves the first client in charge.
    let spare = spare.and_then(|h| h.join().ok()).and_then(Result::ok);
    let client = rt.block_on(blob_client(&client, spare, &auth, &reference));
    let diff_ids = rt.block_on(fetch_config(store, &client, &reference, &m))?;
    let (jobs, skipped) = plan(store, &m, diff_ids, progress)?;
    let downloaded = jobs.iter().filter(|j| j.download).count();
    let bytes_total = jobs
        .iter()
        .filter(|j| j.download)
        .map(|j| j.desc.size)
        .sum();
    let ctx = Arc::new(Ctx {
        client,
        reference: reference.clone(),
        blobs: store.blobs().clone(),
        layers: store.layers().clone(),
    });
    let parallel = opts.jobs.unwrap_or(4).max(1);
    // Every job runs to its end even when one fails: layers that did complete are verified
    // and recorded, so a retry skips them; only the image record waits for all of them.
    let results: Vec<Result<Option<Unpacked>, RegistryError>> = rt.block_on(
        futures_util::stream::iter(jobs.into_iter().map(|j| run_job(ctx.clone(), j, progress)))
            .buffer_unordered(parallel)
            .collect(),
    );
    record_layers(store, results)?;
    let tag = (reference.digest().is_none())
        .then(|| crate::reference::normalize_tag(name))
        .transpose()
        .map_err(crate::StoreError::from)?;
    let names: Vec<String> = tag.iter().cloned().collect();
    let had = match &tag {
        Some(t) => store.db().manifest_for_tag(t),
        None => store
            .db()
            .image(&digest.to_string())
            .map(|r| r.map(|r| r.manifest)),
    }
    .map_err(crate::StoreError::from)?;
    let up_to_date = had.as_deref() == Some(digest.to_string().as_str());
    let manifest = store.record(&bytes, Some(&digest), &names)?;
    let id = store.image_id(&manifest)?;
    drop(lock);
    Ok(PullReport {
        manifest,
        id,
        up_to_date,
        name: tag,
        downloaded,
        skipped,
        bytes: bytes_total,
    })
}

/// The image config (fetched unless present), and its diff ids.
async fn fetch_config(
    store: &ImageStore,
    client: &Client,
    reference: &Reference,
    m: &manifest::Manifest,
) -> Result<Vec<Digest>, RegistryError> {
    let config_digest = crate::store::dig_field(&m.config.digest)?;
    if !store.has_blob(&config_digest)? {
        let mut buf = Vec::new();
        client
            .pull_blob(reference, m.config.digest.as_str(), &mut buf)
            .await
            .map_err(reg_err(format!("fetching config {}", m.config.digest)))?;
        store
            .blobs()
            .put_bytes(&buf, Some(&config_digest))
            .map_err(crate::StoreError::from)?;
    }
    let config = store
        .blobs()
        .read(&config_digest)
        .map_err(crate::StoreError::from)?;
    let (_, diff_ids) = manifest::parse_config(&config, &m.config.digest, m.layers.len())
        .map_err(crate::StoreError::from)?;
    Ok(diff_ids)
}

/// What each layer needs: nothing (counted as skipped), its blob, its unpacking, or both.
fn plan(
    store: &ImageStore,
    m: &manifest::Manifest,
    diff_ids: Vec<Digest>,
    progress: &dyn Progress,
) -> Result<(Vec<LayerJob>, usize), RegistryError> {
    let mut jobs = Vec::new();
    let mut parent: Option<Digest> = None;
    let mut skipped = 0;
    for (desc, diff) in m.layers.iter().zip(diff_ids) {
        let chain = Digest::chain(parent.as_ref(), &diff);
        let blob = crate::store::dig_field(&desc.digest)?;
        let have_blob = store.has_blob(&blob)?;
        let have_layer = store.layers().exists(&chain)
            && store
                .db()
                .has_layer(&chain.to_string())
                .map_err(crate::StoreError::from)?;
        if have_blob && have_layer {
            progress.done(&desc.digest, true);
            skipped += 1;
        } else {
            jobs.push(LayerJob {
                desc: desc.clone(),
                blob,
                diff,
                parent: parent.clone(),
                download: !have_blob,
                unpack: !have_layer,
            });
        }
        parent = Some(chain);
    }
    Ok((jobs, skipped))
}

/// Flushes once, then records every layer that completed; returns the first failure.
fn record_layers(
    store: &ImageStore,
    results: Vec<Result<Option<Unpacked>, RegistryError>>,
) -> Result<(), RegistryError> {
    if results.iter().any(|r| matches!(r, Ok(Some(_)))) {
        store.sync()?;
    }
    let mut first_err = None;
    for r in results {
        match r {
            Ok(Some((chain, parent, stats))) => store
                .db()
                .add_layer(
                    &chain.to_string(),
                    &stats.diff_id.to_string(),
                    parent.as_ref().map(ToString::to_string).as_deref(),
                    stats.tar_bytes,
                )
                .map_err(crate::StoreError::from)?,
            Ok(None) => {}
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The image manifest for the host platform, with its verified digest.
async fn fetch_manifest(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
) -> Result<(Vec<u8>, Digest), RegistryError> {
    let mut r = reference.clone();
    for _ in 0..3 {
        let (bytes, _) = client
            .pull_manifest_raw(&r, auth, ACCEPT)
            .await
            .map_err(reg_err(format!("fetching manifest of {}", r.whole())))?;
        let digest = Digest::of(&bytes);
        if let Some(want) = r.digest() {
            if want != digest.to_string() {
                return Err(invalid(
                    format!("manifest of {}", r.whole()),
                    format!("content has digest {digest}"),
                ));
            }
        }
        match manifest::parse_document(&bytes, &digest.to_string(), None)
            .map_err(crate::StoreError::from)?
        {
            Document::Manifest(_) => return Ok((bytes.to_vec(), digest)),
            Document::Index(index) => {
                let d = manifest::select_platform(&index, &digest.to_string())
                    .map_err(crate::StoreError::from)?;
                r = r.clone_with_digest(d.digest.clone());
            }
        }
    }
    Err(invalid(
        reference.whole(),
        "image indexes nested too deeply",
    ))
}

/// A layer unpacked by a job: chain id, parent chain id, stats.
type Unpacked = (Digest, Option<Digest>, UnpackStats);

struct Ctx {
    client: Client,
    reference: Reference,
    blobs: BlobStore,
    layers: LayerStore,
}

struct LayerJob {
    desc: Descriptor,
    blob: Digest,
    diff: Digest,
    parent: Option<Digest>,
    download: bool,
    unpack: bool,
}

async fn run_job(
    ctx: Arc<Ctx>,
    job: LayerJob,
    progress: &dyn Progress,
) -> Result<Option<Unpacked>, RegistryError> {
    let mut unpacked = None;
    if job.download {
        progress.start(&job.desc.digest, job.desc.size);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match download(&ctx, &job, progress).await {
                Ok(u) => {
                    unpacked = u;
                    break;
                }
                Err(e) if attempt >= ATTEMPTS => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await,
            }
        }
    }
    if !job.unpack {
        progress.done(&job.desc.digest, false);
        return Ok(None);
    }
    let (chain, stats) = match unpacked {
        Some(u) => u,
        // The blob was already there: unpack it from the store.
        None => {
            let c = ctx.clone();
            let (blob, diff, parent) = (job.blob.clone(), job.diff.clone(), job.parent.clone());
            tokio::task::spawn_blocking(move || {
                let f = c.blobs.open(&blob).map_err(crate::StoreError::from)?;
                c.layers
                    .unpack_file(
                        &f,
                        parent.as_ref(),
                        Some(&diff),
                        &blob.to_string(),
                        &UnpackOptions::default(),
                    )
                    .map_err(|e| RegistryError::Store(e.into()))
            })
            .await
            .map_err(|e| invalid(format!("layer {}", job.blob), e))??
        }
    };
    progress.done(&job.desc.digest, false);
    Ok(Some((chain, job.parent, stats)))
}

/// Reads the chunks a download sends, on the unpacking thread, and writes each to the temp
/// blob as it passes, so the async thread only moves buffers.
struct ChunkRead {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
    blob: crate::store::TempBlob,
}

impl std::io::BufRead for ChunkRead {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => {
                    self.blob.write_all(&b)?;
                    self.cur = b;
                }
                None => break,
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, n: usize) {
        bytes::Buf::advance(&mut self.cur, n);
    }
}

impl std::io::Read for ChunkRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = std::io::BufRead::fill_buf(self)?;
        let n = buf.len().min(avail.len());
        buf[..n].copy_from_slice(&avail[..n]);
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

/// One attempt at streaming a blob into the store, unpacking it on a blocking thread as it
/// arrives (when the layer is wanted too). The layer is put in place only after the blob's
/// digest is verified; a failed attempt leaves nothing behind.
async fn download(
    ctx: &Arc<Ctx>,
    job: &LayerJob,
    progress: &dyn Progress,
) -> Result<Option<(Digest, UnpackStats)>, RegistryError> {
    let what = format!("fetching layer {}", job.desc.digest);
    // A range request from 0: the whole blob, without oci-client hashing it a second time
    // on the async thread (hull verifies every byte itself, below).
    let stream = match ctx
        .client
        .pull_blob_stream_partial(&ctx.reference, job.desc.digest.as_str(), 0, None)
        .await
        .map_err(reg_err(what.clone()))?
    {
        oci_client::client::BlobResponse::Full(s)
        | oci_client::client::BlobResponse::Partial(s) => s,
    };
    let mut stream = stream;
    let io_err = |e: std::io::Error| RegistryError::Store(crate::store::io_err(what.clone())(e));
    let tmp = ctx.blobs.temp().map_err(io_err)?;
    if !job.unpack {
        return fetch_only(ctx, job, stream, tmp, progress, &what).await;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    let c = ctx.clone();
    let (diff, label) = (job.diff.clone(), job.blob.to_string());
    let unpacker = tokio::task::spawn_blocking(move || {
        let mut input = ChunkRead {
            rx,
            cur: bytes::Bytes::new(),
            blob: tmp,
        };
        let opts = UnpackOptions {
            start_writeback: true,
            ..UnpackOptions::default()
        };
        let layer = c
            .layers
            .unpack_pending(&mut input, Some(&diff), &label, &opts);
        // Whatever the unpacker left unread still belongs to the blob.
        let rest = std::io::copy(&mut input, &mut std::io::sink())
            .and_then(|_| input.blob.flush())
            .map(|()| input.blob.start_writeback());
        (input.blob, layer, rest)
    });
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                progress.advance(&job.desc.digest, c.len() as u64);
                if tx.send(c).await.is_err() {
                    break; // the unpacker stopped; its error is reported below
                }
            }
            Err(e) => {
                failed = Some(io_err(e));
                break;
            }
        }
    }
    drop(tx);
    let (tmp, layer, rest) = unpacker.await.map_err(|e| invalid(what.clone(), e))?;
    if let Some(e) = failed {
        return Err(e);
    }
    rest.map_err(io_err)?;
    ctx.blobs
        .commit(tmp, Some((&job.blob, Some(job.desc.size))))
        .map_err(crate::StoreError::from)?;
    let layer = layer.map_err(|e| RegistryError::Store(e.into()))?;
    let parent = job.parent.clone();
    let done = tokio::task::spawn_blocking(move || layer.commit(parent.as_ref()))
        .await
        .map_err(|e| invalid(what.clone(), e))?
        .map_err(|e| RegistryError::Store(e.into()))?;
    Ok(Some(done))
}

/// Streams a blob whose layer is already unpacked straight into the store.
async fn fetch_only(
    ctx: &Arc<Ctx>,
    job: &LayerJob,
    mut stream: oci_client::client::SizedStream,
    mut tmp: crate::store::TempBlob,
    progress: &dyn Progress,
    what: &str,
) -> Result<Option<(Digest, UnpackStats)>, RegistryError> {
    let io_err = |e: std::io::Error| RegistryError::Store(crate::store::io_err(what)(e));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(io_err)?;
        tmp.write_all(&chunk).map_err(io_err)?;
        progress.advance(&job.desc.digest, chunk.len() as u64);
    }
    ctx.blobs
        .commit(tmp, Some((&job.blob, Some(job.desc.size))))
        .map_err(crate::StoreError::from)?;
    Ok(None)
}
