//! Shared test helpers: root check, unique names, namespaces and bridges that remove
//! themselves, and a check that nothing named by a test is left in the host namespace.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use hull_net::netlink::Netlink;
use hull_net::netns;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns false (after printing why) when the test cannot run here.
pub fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        hull_testkit::skip("needs root");
        return false;
    }
    true
}

/// A short unique tag (fits in interface names next to a 4-6 char prefix).
pub fn tag() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{:x}{:x}", std::process::id() % 0xfffff, n)
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("hull-net-test-{}", tag()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network namespace bind-mounted in a temp dir, removed on drop.
pub struct TestNetns {
    pub path: PathBuf,
}

impl TestNetns {
    pub fn new(dir: &Path) -> TestNetns {
        let path = dir.join(format!("hullns-{}", tag()));
        netns::create(&path).unwrap();
        TestNetns { path }
    }
    pub fn file(&self) -> File {
        File::open(&self.path).unwrap()
    }
    /// Runs `f` with a netlink socket inside this namespace.
    pub fn netlink<T: Send>(&self, f: impl FnOnce(&mut Netlink) -> T + Send) -> T {
        let file = self.file();
        netns::run_in(&file, || f(&mut Netlink::open().unwrap())).unwrap()
    }
    /// Runs `f` on a thread inside this namespace (sockets made there stay there).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(&self.file(), f).unwrap()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.path);
    }
}

/// Deletes host links on drop (bridges a test created).
pub struct LinkGuard(pub Vec<String>);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Ok(mut nl) = Netlink::open() {
            for name in &self.0 {
                let _ = nl.link_delete(name);
            }
        }
    }
}

/// Host links whose name starts with `prefix`.
pub fn host_links_with_prefix(prefix: &str) -> Vec<String> {
    Netlink::open()
        .unwrap()
        .link_list()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Detaches whatever is still attached under an engine root when a test ends and removes its
/// networks, so neither a failed assertion nor hull-cni (which has no network removal)
/// leaves veths, bridges or nftables entries behind. Declare it after the
/// TempDir holding the root (drops run in reverse).
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.0.join("hull.db").exists() {
            return;
        }
        if let Ok(mut net) = hull_net::engine::Net::open(&self.0) {
            // Detaches first; also drops the subnets from hull's nftables sets and the bridges.
            let _ = net.remove_all_networks();
        }
    }
}
