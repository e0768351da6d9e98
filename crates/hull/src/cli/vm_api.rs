//! Where a named microVM's API socket lives (`hull vm run --name`, `hull vm exec NAME`): a
//! directory of its own under the state root, `vm/api/<name>/`, which the jail shares with the
//! VMM (hull-vmm serves the socket, see its `api` module). The `hull vm run` that made the
//! directory removes it; a socket nobody answers on is a dead run's, and replaced.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hull_vmm::launch::API_SOCKET;

/// The directory of VM `name`'s socket under the state root.
pub fn socket_dir(root: &Path, name: &str) -> PathBuf {
    root.join("vm").join("api").join(name)
}

/// Checks a `--name`: one path component of the container-id rule.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    hull_sys::id::validate_id(name).with_context(|| format!("--name {name:?}"))?;
    Ok(())
}

/// Makes VM `name`'s socket directory, refusing a name a running VM holds.
pub fn claim(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = socket_dir(root, name);
    let sock = dir.join(API_SOCKET);
    if UnixStream::connect(&sock).is_ok() {
        bail!("a microVM named {name:?} is running already");
    }
    let _ = std::fs::remove_file(&sock);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    Ok(dir)
}
