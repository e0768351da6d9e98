//! hull on a Kubernetes node: containerd's CRI plugin (started by the test on a private
//! socket) runs pods on hull-runtime through the runc v2 shim and networks them with hull-cni,
//! driven over gRPC as kubelet drives it. The same flow runs on runc; any difference is a
//! failure, since hull must be a drop-in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod bench;
mod client;
mod flow;
mod image;
mod node;

use std::process::Command;

use flow::{Flow, Observations};
use node::Node;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the host can run a node; says why not.
fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        hull_testkit::skip("the CRI test needs root");
        return false;
    }
    for (tool, package) in [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
        ("runc", "runc"),
    ] {
        if !have(tool) {
            hull_testkit::skip(format!(
                "{tool} is not installed (apt-get install {package})"
            ));
            return false;
        }
    }
    for (path, package) in [
        (image::BUSYBOX, "busybox-static"),
        ("/usr/lib/cni/loopback", "containernetworking-plugins"),
    ] {
        if !std::path::Path::new(path).exists() {
            hull_testkit::skip(format!("{path} is missing (apt-get install {package})"));
            return false;
        }
    }
    true
}

/// A free TCP port on 127.0.0.1 for a hostPort.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node at a time in this process: nodes share the test process's bridge name and the pod
/// subnet (each with its own IPAM), so two at once would hand out the same pod addresses on one
/// bridge, and the first to finish would remove the bridge under the other.
static ONE_NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_node() -> std::sync::MutexGuard<'static, ()> {
    // A test that panicked while holding it left nothing shared behind (its node's Drop ran).
    ONE_NODE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn differences(a: &Observations, b: &Observations) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}:\n  hull: {:?}\n  runc: {:?}", a.get(k), b.get(k)))
        .collect()
}

#[test]
fn kubelet_flow_on_hull_matches_runc() {
    if !can_run() {
        return;
    }
    let _one = one_node();
    let handler = node::documented_handler();
    let mut node = Node::start("flow");
    let mut hull = Flow::new(&mut node, &handler);
    hull.run(free_port());
    let hull = hull.seen;
    let mut runc = Flow::new(&mut node, "runc");
    runc.run(free_port());
    let runc = runc.seen;
    eprintln!("observations (hull = runc):");
    for (k, v) in &hull {
        eprintln!("  {k}: {v:?}");
    }
    let diff = differences(&hull, &runc);
    assert!(
        diff.is_empty(),
        "hull differs from runc:\n{}",
        diff.join("\n")
    );
}

/// A pod annotated `org.hull.isolation=vm`: its app container in a microVM (qemu, TCG here).
#[test]
fn vm_pod_runs_its_container_in_a_microvm() {
    if !can_run() {
        return;
    }
    if hull_testkit::guest::kernel().is_none() || !hull_testkit::guest::initramfs().exists() {
        hull_testkit::skip!(
            "no guest kernel and initramfs for VM containers (scripts/build-guest-initramfs.sh)"
        );
    }
    let _one = one_node();
    let lock = std::fs::File::create("/tmp/hull-qemu.lock").unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let handler = node::documented_handler();
    let mut node = Node::start("vm");
    Flow::new(&mut node, &handler).run_vm_pod();
}

/// The benchmark: `benches/cri.sh` runs it (release binaries, `--ignored`).
#[test]
#[ignore = "a benchmark: benches/cri.sh"]
fn bench_cri_pod_start() {
    if !can_run() {
        return;
    }
    let rounds = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let _one = one_node();
    let handler = node::documented_handler();
    let mut node = Node::start("bench");
    bench::run(&mut node, &handler, rounds);
}
