//! Registries over the OCI distribution spec (via `oci-client`): pull with every digest
//! verified and layers fetched in parallel, push of local images. The async runtime is
//! created here and nowhere else, for the duration of one pull or push.

mod auth;
mod pull;
mod push;

use std::path::PathBuf;

pub use auth::{config_path, credentials};
pub use pull::{pull, PullReport};
pub use push::{push, PushCompression, PushReport};

use crate::store::StoreError;

/// Errors from registry operations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry credentials: {0}")]
    Auth(String),
    #[error("--insecure (plain http) is only allowed for a loopback registry, not {0}")]
    InsecureRemote(String),
    #[error("{what}: {}", chain(err))]
    Registry {
        what: String,
        err: oci_client::errors::OciDistributionError,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// An error and its causes as one line, skipping causes a message already repeats
/// (reqwest nests "error sending request" several times before the real reason).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = c.source();
    }
    out
}

/// Per-layer progress of a pull or push, for the CLI's progress bars.
pub trait Progress: Send + Sync {
    fn start(&self, digest: &str, size: u64);
    fn advance(&self, digest: &str, bytes: u64);
    /// `skipped`: the layer was already there.
    fn done(&self, digest: &str, skipped: bool);
}

/// Progress that shows nothing.
#[derive(Debug)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: &str, _: u64) {}
    fn done(&self, _: &str, _: bool) {}
}

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Plain http; allowed for loopback registries only.
    pub insecure: bool,
    /// A docker-style config.json with credentials (default: the usual places).
    pub auth_file: Option<PathBuf>,
    /// Parallel layer downloads or uploads (default 4).
    pub jobs: Option<usize>,
}

fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A client for the registry of `reference`, with its credentials.
fn client(
    reference: &oci_client::Reference,
    opts: &RegistryOptions,
) -> Result<(oci_client::Client, oci_client::secrets::RegistryAuth), RegistryError> {
    let auth = auth_for(reference, opts)?;
    Ok((
        oci_client::Client::new(client_config(reference, opts)?),
        auth,
    ))
}

/// The credentials for the registry of `reference` (anonymous when none are configured).
fn auth_for(
    reference: &oci_client::Reference,
    opts: &RegistryOptions,
) -> Result<oci_client::secrets::RegistryAuth, RegistryError> {
    let registry = reference.resolve_registry().to_string();
    credentials(&registry, opts.auth_file.as_deref())
        .or_else(|_| credentials(reference.registry(), opts.auth_file.as_deref()))
}

/// A second client for a pull's config and layers, built on its own thread while the first
/// one is built and fetches the manifest, when the pull is anonymous (see [`blob_client`]).
fn spare_client(
    reference: &oci_client::Reference,
    auth: &oci_client::secrets::RegistryAuth,
    opts: &RegistryOptions,
) -> Option<SpareClient> {
    if !matches!(auth, oci_client::secrets::RegistryAuth::Anonymous) {
        return None;
    }
    let (reference, opts) = (reference.clone(), opts.clone());
    Some(std::thread::spawn(move || {
        client_config(&reference, &opts).map(oci_client::Client::new)
    }))
}

type SpareClient = std::thread::JoinHandle<Result<oci_client::Client, RegistryError>>;

/// The client for a pull's config and layers. oci-client caches tokens but not the absence
/// of one, so with anonymous access to a registry that asks for no token it probes `/v2/`
/// again before every blob; the spare client, which holds no credentials at all, asks
/// straight away. Any other case keeps `client` and its credentials (or anonymous token);
/// so does a registry whose probe fails, and it answers for itself on the requests that
/// follow.
async fn blob_client(
    client: &oci_client::Client,
    spare: Option<oci_client::Client>,
    auth: &oci_client::secrets::RegistryAuth,
    reference: &oci_client::Reference,
) -> oci_client::Client {
    let Some(spare) = spare else {
        return client.clone();
    };
    match client
        .auth(reference, auth, oci_client::RegistryOperation::Pull)
        .await
    {
        Ok(None) => spare,
        Ok(Some(_)) | Err(_) => client.clone(),
    }
}

fn client_config(
    reference: &oci_client::Reference,
    opts: &RegistryOptions,
) -> Result<oci_client::client::ClientConfig, RegistryError> {
    // Installing twice (a second pull in one process) is harmless: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = reference.resolve_registry().to_string();
    let protocol = if opts.insecure {
        if !is_loopback(reference.registry()) {
            return Err(RegistryError::InsecureRemote(
                reference.registry().to_string(),
            ));
        }
        oci_client::client::ClientProtocol::HttpsExcept(vec![registry.clone()])
    } else {
        oci_client::client::ClientProtocol::Https
    };
    let config = oci_client::client::ClientConfig {
        protocol,
        platform_resolver: None,
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        read_timeout: Some(std::time::Duration::from_secs(120)),
        user_agent: "hull",
        ..Default::default()
    };
    Ok(config)
}

/// A failed https request to a registry that answers plain http is, almost always, a
/// registry without TLS: the error says so, and how to reach it.
pub(crate) fn plain_http_hint(
    err: RegistryError,
    reference: &oci_client::Reference,
    opts: &RegistryOptions,
) -> RegistryError {
    if opts.insecure || !matches!(err, RegistryError::Registry { .. }) {
        return err;
    }
    let registry = reference.resolve_registry().to_string();
    if !speaks_plain_http(&registry) {
        return err;
    }
    let advice = if is_loopback(reference.registry()) {
        "add --insecure to use plain http"
    } else {
        "hull allows plain http (--insecure) only for a loopback registry"
    };
    RegistryError::Invalid {
        what: format!("registry {registry}"),
        reason: format!("server gave an HTTP response to an HTTPS client: {advice}"),
    }
}

/// Whether `host:port` answers an HTTP/1.0 request in plain text (short timeouts: this only
/// runs after a request already failed).
fn speaks_plain_http(registry: &str) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let addr = if registry
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        registry.to_string()
    } else {
        format!("{registry}:443")
    };
    let Some(sa) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let t = std::time::Duration::from_secs(2);
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&sa, t) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(t));
    let _ = s.set_write_timeout(Some(t));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

fn runtime() -> Result<tokio::runtime::Runtime, RegistryError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)
}

fn parse_ref(name: &str) -> Result<oci_client::Reference, RegistryError> {
    crate::reference::parse(name).map_err(|e| RegistryError::Store(e.into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback() {
        assert!(super::is_loopback("127.0.0.1:5000"));
        assert!(super::is_loopback("localhost:5000"));
        assert!(super::is_loopback("[::1]:5000"));
        assert!(!super::is_loopback("registry.example:5000"));
        assert!(!super::is_loopback("10.0.0.1"));
    }
}
