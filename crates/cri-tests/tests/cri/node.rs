//! A private Kubernetes node without kubelet: containerd with its CRI plugin on its own
//! socket, root and state dirs, configured from docs/kubernetes/ (paths swapped for the
//! test's), runtime handlers `hull` (hull-runtime) and `runc`, pods networked by hull-cni on a
//! bridge and subnet of the test's, pod cgroups under a kubepods-like parent under the test's
//! own cgroup. Dropping it removes everything, also after a failure.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hull_testkit::host::{mounts_under, CgroupParent};

use crate::client::Cri;
use crate::image;

/// The pod subnet (no other test or hull default uses it) and its first three octets.
pub const SUBNET: &str = "10.217.0.0/24";
pub const SUBNET_PREFIX: &str = "10.217.0.";
/// A node's directory in the temp dir: `<prefix><name>-<pid of the test process>`.
const NODE_PREFIX: &str = "hull-cri-";
/// The network name in docs/kubernetes/10-hull.conflist.
pub const NETWORK: &str = "hull-pods";

/// The built binary `name` of another workspace package (cargo builds every workspace binary
/// for `cargo test --workspace`; `cargo test -p hull-cri-tests` alone needs
/// `cargo build -p hull-runtime -p hull-net` first).
/// `HULL_CRI_BIN_DIR` names another directory (benches/cri.sh: the release binaries).
fn built_bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("HULL_CRI_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        // target/<profile>/deps/cri-<hash> -> target/<profile>
        None => {
            let exe = std::env::current_exe().unwrap();
            exe.parent().and_then(Path::parent).unwrap().to_path_buf()
        }
    };
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build -p hull-runtime -p hull-net` first",
        bin.display()
    );
    bin
}

fn docs(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/kubernetes")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced by `to`; fails when the documented file no longer says `from`.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "docs/kubernetes: {from:?} is gone");
    text.replace(from, to)
}

/// Whether this process may lower oom_score_adj (some sandboxed hosts drop the capability).
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// The RuntimeClass handler the documented manifest names.
pub fn documented_handler() -> String {
    docs("runtimeclass.yaml")
        .lines()
        .find_map(|l| l.strip_prefix("handler:"))
        .map(|h| h.trim().to_string())
        .expect("runtimeclass.yaml has a handler")
}

pub struct Node {
    pub dir: PathBuf,
    pub hull_root: PathBuf,
    pub bridge: String,
    pub kubepods: CgroupParent,
    daemon: Option<Child>,
    /// Network namespaces of the test's pods (containerd makes them under /var/run/netns).
    pub netns: Vec<PathBuf>,
    /// Host ends of the pods' veths.
    pub veths: Vec<String>,
}

impl Node {
    /// The node `name` of the test process `pid`: its paths and names, nothing started.
    fn at(name: &str, pid: u32) -> Node {
        let dir = std::env::temp_dir().join(format!("{NODE_PREFIX}{name}-{pid}"));
        Node {
            hull_root: dir.join("hull"),
            bridge: format!("hk8s{:x}", pid % 0xffffff),
            kubepods: CgroupParent::new(&format!("kubepods-cri-{name}-{pid}")),
            dir,
            daemon: None,
            netns: Vec::new(),
            veths: Vec::new(),
        }
    }

    /// Removes what nodes of test processes killed before their cleanup ran (kill -9) left.
    fn reap_stale() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(NODE_PREFIX)) else {
                continue;
            };
            let Some((name, pid)) = rest.rsplit_once('-') else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                drop(Node::at(name, pid));
            }
        }
    }

    pub fn start(name: &str) -> Node {
        Node::reap_stale();
        let mut node = Node::at(name, std::process::id());
        let _ = std::fs::remove_dir_all(&node.dir);
        std::fs::create_dir_all(&node.dir).unwrap();
        node.write_cni();
        node.write_config();
        node.spawn_daemon();
        node.import_images();
        node
    }

    /// Restarts containerd (as an upgrade does): pods and shims stay, containerd finds them.
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.spawn_daemon();
    }

    fn spawn_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let mut daemon = Command::new("containerd");
        daemon
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // Where VM containers' guest kernel and initramfs are (the shim and hull-runtime
        // inherit containerd's environment).
        if let Some(kernel) = hull_testkit::guest::kernel() {
            daemon.env("HULL_VM_KERNEL", kernel);
        }
        let initrd = hull_testkit::guest::initramfs();
        if initrd.exists() {
            daemon.env("HULL_VM_INITRD", initrd);
        }
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else. containerd
        // ends with the test's thread even when the test is killed before its cleanup.
        unsafe {
            daemon.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        self.daemon = Some(daemon.spawn().unwrap());
        self.wait_ready();
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    pub fn runtime_root(&self, handler: &str) -> PathBuf {
        self.dir.join(format!("runtime-{handler}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn write_cni(&self) {
        let bin = self.dir.join("cni-bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(built_bin("hull-cni"), bin.join("hull-cni")).unwrap();
        // containerd adds a loopback network for lo through the reference plugin.
        std::os::unix::fs::symlink("/usr/lib/cni/loopback", bin.join("loopback")).unwrap();
        let conf = docs("10-hull.conflist");
        let conf = swap(&conf, "\"hullcni0\"", &format!("\"{}\"", self.bridge));
        let conf = swap(&conf, "10.85.0.0/16", SUBNET);
        let conf = swap(
            &conf,
            "\"/var/lib/hull\"",
            &format!("\"{}\"", self.hull_root.display()),
        );
        let confdir = self.dir.join("net.d");
        std::fs::create_dir_all(&confdir).unwrap();
        std::fs::write(confdir.join("10-hull.conflist"), conf).unwrap();
    }

    fn write_config(&self) {
        let d = self.dir.display();
        let text = docs("containerd-config.toml");
        let text = swap(
            &text,
            "version = 2\n",
            &format!("version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n"),
        );
        let mut sandbox_image = format!("{}\"", image::PAUSE_IMAGE);
        if !has_cap_sys_resource() {
            // containerd gives sandboxes oom_score_adj -998, which neither runc nor hull can
            // set without CAP_SYS_RESOURCE; containerd's own answer for such hosts.
            sandbox_image.push_str("\n  restrict_oom_score_adj = true");
        }
        let text = swap(&text, "registry.k8s.io/pause:3.6\"", &sandbox_image);
        let text = swap(
            &text,
            "BinaryName = \"/usr/local/bin/hull-runtime\"",
            &format!(
                "BinaryName = \"{}\"\n  Root = \"{d}/runtime-hull\"",
                built_bin("hull-runtime").display()
            ),
        );
        let text = swap(&text, "\"/opt/cni/bin\"", &format!("\"{d}/cni-bin\""));
        let text = swap(&text, "\"/etc/cni/net.d\"", &format!("\"{d}/net.d\""));
        let config = format!(
            "{text}\n\
             # The reference the test compares hull with.\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  \
             runtime_type = \"io.containerd.runc.v2\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  \
             BinaryName = \"runc\"\n  Root = \"{d}/runtime-runc\"\n  SystemdCgroup = false\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd-ttrpc.sock\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n"
        );
        std::fs::write(self.dir.join("config.toml"), config).unwrap();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut cri) = Cri::connect(&self.sock()) {
                if cri.version().is_ok() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.daemon.as_mut().map(Child::try_wait) {
                panic!("containerd exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Imports the test's images into the k8s.io namespace, where the CRI plugin sees them.
    fn import_images(&self) {
        let archive = image::archive(&self.dir);
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.sock())
            .args(["-n", "k8s.io", "images", "import"])
            .arg(&archive)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr images import: {out:?}");
    }

    /// containerd-shim processes serving this node's containerd.
    pub fn shims(&self) -> Vec<i32> {
        let needle = format!("{}\0", self.sock().display());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.starts_with("/usr/bin/containerd-shim") && c.contains(&needle)
                })
            })
            .collect()
    }

    /// Removes what CRI calls left (best effort, after a failure): containers, then pods.
    fn remove_pods(&mut self) {
        let Ok(mut cri) = Cri::connect(&self.sock()) else {
            return;
        };
        for c in cri.containers().unwrap_or_default() {
            let _ = cri.stop(&c.id, 0);
            let _ = cri.remove(&c.id);
        }
        for p in cri.pods().unwrap_or_default() {
            // A pod whose network setup failed has a netns that no attachment names.
            if let Some(ns) = cri
                .pod_status(&p.id)
                .ok()
                .and_then(|st| st.info.get("info").cloned())
                .and_then(|i| serde_json::from_str::<serde_json::Value>(&i).ok())
                .and_then(|v| v["netNamespacePath"].as_str().map(PathBuf::from))
            {
                self.netns.push(ns);
            }
            let _ = cri.stop_pod(&p.id);
            let _ = cri.remove_pod(&p.id);
        }
    }

    fn stop_daemon(&mut self) {
        let Some(mut daemon) = self.daemon.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if matches!(daemon.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            self.remove_pods();
        }
        self.stop_daemon();
        // Shims outlive containerd; those of this node are the test's own.
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.kubepods.clear();
        for target in mounts_under(&self.dir) {
            let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        }
        // hull-cni's attachments name the pods' netns too (also a killed run's).
        if let Ok(mut net) = hull_net::engine::Net::open(&self.hull_root) {
            for link in net.attachments(None).unwrap_or_default() {
                self.netns.push(PathBuf::from(&link.netns_path));
                let _ = net.detach(&link.container_id);
            }
            let _ = net.remove_network(NETWORK);
        }
        for ns in &self.netns {
            if ns.exists() {
                let _ = nix::mount::umount2(ns, nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_file(ns);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
