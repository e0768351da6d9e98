//! A private dockerd for tests that check hull against docker (Debian's docker.io 20.10): the
//! command line that keeps it off the host's state, and its CLI pointed at it. Starting,
//! waiting for and stopping it stay with each test, which differ in what they check.

use std::path::Path;
use std::process::{Command, Stdio};

/// dockerd of Debian's docker.io.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// docker.io's own CLI (a /usr/local/bin/docker may be an unrelated newer one).
pub const DOCKER: &str = "/usr/bin/docker";

/// `dockerd` with its data and exec roots, socket, pidfile and trust key under `dir`, no bridge,
/// no firewall rules, vfs storage. Writes `dir/daemon.json` (the trust key moves only through
/// the config file; its default is the host's /etc/docker/key.json). Without `--containerd`
/// it starts and stops a containerd of its own.
pub fn dockerd(dir: &Path) -> std::io::Result<Command> {
    std::fs::create_dir_all(dir)?;
    let key = dir.join("key.json");
    let config = format!(
        "{{\"deprecated-key-path\": \"{}\"}}",
        key.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    );
    std::fs::write(dir.join("daemon.json"), config)?;
    let mut c = Command::new(DOCKERD);
    c.arg("--config-file")
        .arg(dir.join("daemon.json"))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--userland-proxy=false",
            "--storage-driver=vfs",
        ])
        .stdin(Stdio::null());
    Ok(c)
}

/// The docker CLI talking to the dockerd of [`dockerd`]`(dir)`, with its own config dir.
pub fn docker(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(DOCKER);
    c.arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .args(args)
        .env("DOCKER_CONFIG", dir.join("cli"))
        .stdin(Stdio::null());
    c
}
