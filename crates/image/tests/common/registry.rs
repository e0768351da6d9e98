//! A real Debian docker-registry on 127.0.0.1 (a free port), and a small TCP proxy in front of
//! it that can answer 500, cut a response mid-stream, or replace a body, for bad-input tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub storage: PathBuf,
}

impl Registry {
    /// Starts docker-registry, or returns why it cannot.
    pub fn start(dir: &Path) -> Result<Self, String> {
        Self::start_with(dir, None)
    }

    /// Starts docker-registry requiring basic auth for `user:password` (bcrypt by python3).
    pub fn start_with_auth(dir: &Path, user: &str, password: &str) -> Result<Self, String> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                password,
            ])
            .output()
            .map_err(|e| format!("python3 is needed to hash a password: {e}"))?;
        let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !hash.starts_with("$2") {
            return Err("python3 crypt cannot make bcrypt hashes".into());
        }
        let file = dir.join("htpasswd");
        std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
        Self::start_with(dir, Some(&file))
    }

    /// Starts docker-registry with bearer-token auth, and a token server (python3 + openssl)
    /// that grants tokens to `user:password`.
    pub fn start_with_token(
        dir: &Path,
        user: &str,
        password: &str,
    ) -> Result<(Self, TokenServer), String> {
        tool("openssl").ok_or("openssl is needed to sign tokens")?;
        tool("python3").ok_or("python3 is needed for the token server")?;
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=hull-test-token",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl req: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let script = dir.join("token_server.py");
        std::fs::write(&script, include_str!("token_server.py")).unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&key)
            .arg(&cert)
            .args([user, password, "hull-test", "hull-test-issuer"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the token server: {e}"))?;
        let server = TokenServer { child };
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            return Err("the token server did not start".into());
        }
        let auth = format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{port}/token\n    service: hull-test\n    issuer: hull-test-issuer\n    rootcertbundle: {}\n",
            cert.display()
        );
        Ok((Self::start_cfg(dir, &auth)?, server))
    }

    fn start_with(dir: &Path, htpasswd: Option<&Path>) -> Result<Self, String> {
        let auth = htpasswd
            .map(|p| {
                format!(
                    "auth:\n  htpasswd:\n    realm: hull-test\n    path: {}\n",
                    p.display()
                )
            })
            .unwrap_or_default();
        Self::start_cfg(dir, &auth)
    }

    fn start_cfg(dir: &Path, auth: &str) -> Result<Self, String> {
        let bin = tool("docker-registry")
            .ok_or("docker-registry is not installed (apt-get install docker-registry)")?;
        let port = free_port();
        let storage = dir.join("registry-data");
        std::fs::create_dir_all(&storage).unwrap();
        let cfg = dir.join("registry.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{}",
                storage.display(),
                auth
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting docker-registry: {e}"))?;
        let reg = Self {
            child,
            port,
            storage,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                // 200, or 401 when auth is on: either way it serves.
                if s.read_exact(&mut buf).is_ok()
                    && (&buf[9..12] == b"200" || &buf[9..12] == b"401")
                {
                    return Ok(reg);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
        Err(format!(
            "docker-registry did not start within 15 s: {}",
            log.trim()
        ))
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The data file of a blob in the registry's filesystem storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token server process; killed on drop.
pub struct TokenServer {
    child: Child,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs skopeo with `args`; panics with its stderr on failure.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Clone, Debug)]
pub enum Fault {
    None,
    /// Answer 500 to requests whose path contains the string.
    Status500(String),
    /// Forward, but close the connection after this many response bytes.
    Cut(String, usize),
    /// Answer 200 with this body and content type.
    Body(String, Vec<u8>, String),
}

pub struct Proxy {
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (fault.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let fault = f.lock().unwrap().clone();
                std::thread::spawn(move || serve(conn, upstream, fault));
            }
        });
        Self {
            port,
            fault,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut client: TcpStream, upstream: u16, fault: Fault) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("").to_string();
    let mut cut = None;
    match &fault {
        Fault::Status500(p) if path.contains(p.as_str()) => {
            let _ = client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        Fault::Body(p, body, ct) if path.contains(p.as_str()) => {
            let _ = write!(client, "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = client.write_all(body);
            return;
        }
        Fault::Cut(p, n) if path.contains(p.as_str()) => cut = Some(*n),
        _ => {}
    }
    // Forward with "Connection: close" so every request arrives on a fresh connection.
    let mut up = match TcpStream::connect(("127.0.0.1", upstream)) {
        Ok(u) => u,
        Err(_) => return,
    };
    let mut fwd = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            fwd.push_str(line);
            fwd.push_str("\r\n");
        }
    }
    fwd.push_str("Connection: close\r\n\r\n");
    if up.write_all(fwd.as_bytes()).is_err() {
        return;
    }
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    loop {
        let n = match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match cut {
            Some(limit) if sent + n >= limit => {
                let _ = client.write_all(&buf[..limit - sent]);
                break;
            }
            _ => n,
        };
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
}
