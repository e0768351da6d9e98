//! The kubelet flow on one runtime handler, every step checked, and what each step showed
//! recorded (ids, addresses and the handler's name normalized away) so that the flows on
//! `hull` and `runc` can be compared.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use crate::client::{image_spec, Cri};
use crate::image::APP_IMAGE;
use crate::node::{Node, SUBNET_PREFIX};

mod app;
mod edges;
mod vm;

/// What a flow showed, by step; equal for two handlers when hull is a drop-in for runc.
pub type Observations = BTreeMap<String, String>;

const MIB: i64 = 1024 * 1024;
const PAGE: &str = "hello from pod a";

/// What kubelet sends for an unprivileged container (its own lists, which the CRI carries
/// to the runtime as they are): masked and read-only paths.
const MASKED: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One flow: the node, the CRI client, the handler, and what was seen, with the strings to
/// normalize (ids, addresses) collected on the way.
pub struct Flow<'a> {
    node: &'a mut Node,
    pub cri: Cri,
    pub handler: String,
    pub seen: Observations,
    normalize: Vec<(String, String)>,
    /// Every pod and container id of the flow (for the leak checks).
    ids: Vec<String>,
}

fn namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The memory-hierarchy cgroup of `pid`, from the host.
fn memory_cgroup(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .unwrap_or_default()
}

/// /proc/mounts as mount point, type, source and options (those naming host paths left out).
fn mount_shape(mounts: &str) -> String {
    let mut lines: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let opts: Vec<&str> = f.get(3)?.split(',').filter(|o| !o.contains('/')).collect();
            let (source, at, fs) = (f.first()?, f.get(1)?, f.get(2)?);
            Some(format!("{at} {fs} {source} {}", opts.join(",")))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// The pod's cgroup as kubelet makes it before RunPodSandbox (its cgroupfs driver): a
/// directory in every hierarchy, the pod's memory and PID limits set. The runtimes make their
/// containers' cgroups under it and must leave it to kubelet.
const POD_MEMORY: &str = "536870912";
const POD_PIDS: &str = "200";

fn pod_cgroup_dirs(config: &cri::PodSandboxConfig) -> Vec<PathBuf> {
    let parent = config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.clone())
        .unwrap_or_default();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    hierarchies
        .flatten()
        .map(|h| h.path().join(parent.trim_start_matches('/')))
        .collect()
}

fn kubelet_pod_cgroup(config: &cri::PodSandboxConfig) {
    for dir in pod_cgroup_dirs(config) {
        std::fs::create_dir_all(&dir).unwrap();
        for (file, value) in [
            ("memory.limit_in_bytes", POD_MEMORY),
            ("pids.max", POD_PIDS),
        ] {
            if dir.join(file).exists() {
                std::fs::write(dir.join(file), value).unwrap();
            }
        }
    }
}

/// The pod's cgroup after its pod is gone: still there, its limits as kubelet set them.
pub(crate) fn kubelet_pod_cgroup_kept(config: &cri::PodSandboxConfig) -> String {
    let mut seen = Vec::new();
    for dir in pod_cgroup_dirs(config) {
        assert!(
            dir.is_dir(),
            "the runtime removed kubelet's pod cgroup {}",
            dir.display()
        );
        for (file, value) in [
            ("memory.limit_in_bytes", POD_MEMORY),
            ("pids.max", POD_PIDS),
        ] {
            if let Ok(now) = std::fs::read_to_string(dir.join(file)) {
                assert_eq!(now.trim(), value, "{}/{file}", dir.display());
                seen.push(file);
            }
        }
    }
    format!("kept, {seen:?}")
}

/// /proc/self/mountinfo as mount point, per-mount options and propagation (peer group
/// numbers left out), sorted.
fn propagation_shape(mountinfo: &str) -> String {
    let mut lines: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, _) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split_whitespace().collect();
            let tags: Vec<&str> = f
                .get(6..)?
                .iter()
                .map(|t| t.split(':').next().unwrap_or(t))
                .collect();
            Some(format!("{} {} [{}]", f.get(4)?, f.get(5)?, tags.join(" ")))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

impl<'a> Flow<'a> {
    pub fn new(node: &'a mut Node, handler: &str) -> Flow<'a> {
        let cri = Cri::connect(&node.sock()).unwrap();
        Flow {
            node,
            cri,
            handler: handler.to_string(),
            seen: Observations::new(),
            normalize: vec![(handler.to_string(), "<handler>".to_string())],
            ids: Vec::new(),
        }
    }

    fn see(&mut self, key: &str, value: impl ToString) {
        let mut v = value.to_string();
        for (from, to) in &self.normalize {
            v = v.replace(from, to);
        }
        self.seen.insert(key.to_string(), v);
    }

    fn name(&mut self, real: &str, label: &str) {
        self.normalize.push((real.to_string(), label.to_string()));
        self.ids.push(real.to_string());
    }

    pub fn pod_config(&self, name: &str, ports: Vec<cri::PortMapping>) -> cri::PodSandboxConfig {
        let uid = format!("{}-{name}-uid", self.handler);
        let logs = self.node.dir.join("logs").join(&self.handler).join(name);
        std::fs::create_dir_all(&logs).unwrap();
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.to_string(),
                uid: uid.clone(),
                namespace: "default".to_string(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            log_directory: logs.display().to_string(),
            port_mappings: ports,
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/pod{uid}", self.node.kubepods.path),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn container_config(
        &self,
        pod: &cri::PodSandboxConfig,
        name: &str,
        command: &[&str],
    ) -> cri::ContainerConfig {
        std::fs::create_dir_all(Path::new(&pod.log_directory).join(name)).unwrap();
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(image_spec(APP_IMAGE)),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}/0.log"),
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources::default()),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    // As kubelet: the pod's namespace modes (pid POD for a shared one).
                    namespace_options: pod
                        .linux
                        .as_ref()
                        .and_then(|l| l.security_context.as_ref())
                        .and_then(|s| s.namespace_options.clone()),
                    masked_paths: MASKED.iter().map(|s| s.to_string()).collect(),
                    readonly_paths: READONLY.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox and its checks: READY, an address of hull-cni's subnet, the handler.
    fn run_pod(&mut self, label: &str, config: &cri::PodSandboxConfig) -> (String, String) {
        kubelet_pod_cgroup(config);
        let id = self
            .cri
            .run_pod(config, &self.handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox {label}: {e}\n{}", self.node.log()));
        let st = self.cri.pod_status(&id).unwrap();
        let status = st.status.clone().unwrap();
        let ip = status.network.clone().unwrap_or_default().ip;
        assert!(ip.starts_with(SUBNET_PREFIX), "{label}: pod IP {ip:?}");
        assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
        assert_eq!(status.runtime_handler, self.handler);
        self.name(&id, &format!("<{label}-id>"));
        self.name(&ip, &format!("<{label}-ip>"));
        // The sandbox's state is the handler's: hull-runtime's root for `hull`.
        let state = self
            .node
            .runtime_root(&self.handler)
            .join("k8s.io")
            .join(&id);
        assert!(state.is_dir(), "{label}: no state in {}", state.display());
        self.see(&format!("{label}.runtime-state"), state.is_dir());
        self.see(&format!("{label}.status"), format!("{:?}", status.state));
        let cni = self.track_pod(&id);
        self.see(&format!("{label}.cni"), cni);
        (id, ip)
    }

    /// Notes the netns and host veth hull-cni made for pod `id`, for the leak checks; returns
    /// the pod's interface and address.
    pub fn track_pod(&mut self, id: &str) -> String {
        let mut net = hull_net::engine::Net::open(&self.node.hull_root).unwrap();
        let links = net.attachments(Some(id)).unwrap();
        assert_eq!(links.len(), 1, "pod {id}: hull-cni attachments {links:?}");
        self.node.netns.push(PathBuf::from(&links[0].netns_path));
        self.node.veths.push(links[0].host_veth.clone());
        if !self.ids.iter().any(|i| i == id) {
            self.ids.push(id.to_string());
        }
        let cni = format!("{} {}/{}", links[0].ifname, links[0].ip, links[0].prefix);
        cni.replace(&links[0].ip.to_string(), "<ip>")
    }

    /// Stops and removes every container and pod, then checks that nothing is left.
    pub fn remove_all(&mut self) {
        for c in self.cri.containers().unwrap() {
            self.cri.stop(&c.id, 0).unwrap();
            self.cri.remove(&c.id).unwrap();
        }
        for p in self.cri.pods().unwrap() {
            self.cri.stop_pod(&p.id).unwrap();
            self.cri.remove_pod(&p.id).unwrap();
        }
        self.nothing_left();
    }

    fn start_container(
        &mut self,
        label: &str,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: &cri::ContainerConfig,
    ) -> String {
        let id = self
            .cri
            .create(pod, config, pod_config)
            .unwrap_or_else(|e| panic!("CreateContainer {label}: {e}\n{}", self.node.log()));
        self.name(&id, &format!("<{label}-id>"));
        self.cri
            .start(&id)
            .unwrap_or_else(|e| panic!("StartContainer {label}: {e}\n{}", self.node.log()));
        id
    }

    /// ExecSync `cmd` in `id`, recorded under `key` as "exit=N out=.. err=..".
    fn exec(&mut self, id: &str, key: &str, cmd: &[&str]) -> (i32, String) {
        let (code, out, err) = self
            .cri
            .exec(id, cmd)
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}"));
        self.see(
            key,
            format!("exit={code} out={} err={}", out.trim(), err.trim()),
        );
        (code, out)
    }

    fn pid(&mut self, id: &str) -> i64 {
        let info = self.cri.status_info(id).unwrap();
        info["pid"].as_i64().unwrap_or_default()
    }

    /// The whole flow; panics at the first step that fails.
    pub fn run(&mut self, host_port: u16) {
        let mut pod_a_config = self.pod_config(
            "pod-a",
            vec![cri::PortMapping {
                protocol: cri::Protocol::Tcp as i32,
                container_port: 8080,
                host_port: i32::from(host_port),
                host_ip: "127.0.0.1".to_string(),
            }],
        );
        let linux = pod_a_config.linux.as_mut().unwrap();
        linux.sysctls = [
            ("net.ipv4.ip_unprivileged_port_start", "0"),
            ("kernel.shm_rmid_forced", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        pod_a_config.dns_config = Some(cri::DnsConfig {
            servers: vec!["10.217.0.53".to_string()],
            searches: vec!["default.svc.cluster.local".to_string()],
            options: vec!["ndots:5".to_string()],
        });
        let img = self.cri.image_status(APP_IMAGE).unwrap();
        assert!(img.is_some(), "the imported image is not seen by CRI");
        let (pod_a, ip_a) = self.run_pod("pod-a", &pod_a_config);
        let app = self.app(&pod_a, &pod_a_config);
        self.app_checks(&app, &pod_a);
        self.logs(&app, &pod_a_config);
        self.debug_and_seccomp(&pod_a, &pod_a_config, &app);

        // Pod B shares one PID namespace between its containers (shareProcessNamespace).
        let mut pod_b_config = self.pod_config("pod-b", Vec::new());
        let ns = pod_b_config
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut());
        ns.and_then(|s| s.namespace_options.as_mut()).unwrap().pid = cri::NamespaceMode::Pod as i32;
        let (pod_b, _) = self.run_pod("pod-b", &pod_b_config);
        let mut client = self.container_config(
            &pod_b_config,
            "client",
            &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
        );
        client.image = Some(image_spec(APP_IMAGE));
        let client = self.start_container("client", &pod_b, &pod_b_config, &client);
        let (_, out) = self.exec(&client, "pod-b.pid1", &["cat", "/proc/1/cmdline"]);
        assert!(
            out.starts_with("/bin/sleep"),
            "shared PID namespace: pid 1 is {out:?}"
        );
        let tty = self.tty(&pod_b, &pod_b_config);
        let url = format!("http://{ip_a}:8080/");
        let (code, out) = self.exec(
            &client,
            "pod-b.wget-pod-a",
            &["timeout", "5", "wget", "-qO-", &url],
        );
        assert!(code == 0 && out.contains(PAGE), "pod to pod: {code} {out}");
        let page = http_get(host_port);
        assert!(
            page.contains(PAGE),
            "hostPort 127.0.0.1:{host_port}: {page}"
        );
        self.see("host.hostport", page.contains(PAGE));

        self.oom(&pod_b, &pod_b_config);
        self.endings(&pod_b, &pod_b_config);
        self.propagation(&pod_b, &pod_b_config);
        self.exec_timeout_and_reopen(&client, &tty);
        self.parallel_execs(&client);
        self.leftovers_killed(&pod_b, &pod_b_config, &client);
        self.containerd_restart(&client);
        // StopContainer with a grace period on a process that ignores TERM: SIGKILL after it.
        let t = Instant::now();
        self.cri.stop(&client, 2).unwrap();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
            "StopContainer(grace 2 s) took {took:?}"
        );
        let st = self.cri.status(&client).unwrap();
        self.see(
            "client.stopped",
            format!("{:?} {} {}", st.state(), st.exit_code, st.reason),
        );
        assert_eq!(st.exit_code, 137, "{st:?}");

        self.cri.stop(&app, 0).unwrap();
        self.privileged();
        for c in self.cri.containers().unwrap() {
            self.cri.remove(&c.id).unwrap();
        }
        for pod in self.cri.pods().unwrap() {
            self.cri.stop_pod(&pod.id).unwrap();
            let st = self.cri.pod_status(&pod.id).unwrap().status.unwrap();
            self.see("pod.stopped", format!("{:?}", st.state()));
            self.cri.remove_pod(&pod.id).unwrap();
        }
        let kept = kubelet_pod_cgroup_kept(&pod_a_config);
        self.see("pod-a.cgroup-after", kept);
        self.nothing_left();
    }

    /// A container with a terminal (`tty: true`): the shim's console socket, the log.
    fn tty(&mut self, pod: &str, pod_config: &cri::PodSandboxConfig) -> String {
        let mut config = self.container_config(
            pod_config,
            "tty",
            &["sh", "-c", "tty; stty size; while :; do sleep 1; done"],
        );
        config.tty = true;
        let id = self.start_container("tty", pod, pod_config, &config);
        let log = Path::new(&pod_config.log_directory).join("tty/0.log");
        let mut text = String::new();
        wait_for("the tty container's log", Duration::from_secs(5), || {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().count() >= 2
        });
        // The log lines without their timestamps.
        let lines: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, r)| r))
            .collect();
        self.see("tty.log", format!("{lines:?}"));
        assert!(text.contains(" stdout F /dev/pts/0"), "{text:?}");
        self.stop_on_term(&id, "tty");
        id
    }

    /// A container over its memory limit: OOMKilled, as kubelet reads it.
    fn oom(&mut self, pod: &str, pod_config: &cri::PodSandboxConfig) {
        let mut config = self.container_config(
            pod_config,
            "hog",
            &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
        );
        config.linux.as_mut().unwrap().resources = Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 32 * MIB,
            ..Default::default()
        });
        let hog = self.start_container("hog", pod, pod_config, &config);
        let mut st = cri::ContainerStatus::default();
        wait_for("the hog to exit", Duration::from_secs(15), || {
            st = self.cri.status(&hog).unwrap();
            st.state() == cri::ContainerState::ContainerExited
        });
        self.see("hog.exit", format!("{} {}", st.exit_code, st.reason));
        assert_eq!(st.reason, "OOMKilled", "{st:?}");
    }

    /// After the pods are removed: nothing of them in CRI, the runtime's state, cgroups,
    /// mounts, network namespaces, veths or hull-cni's leases; no shim left.
    fn nothing_left(&mut self) {
        assert!(self.cri.containers().unwrap().is_empty());
        assert!(self.cri.pods().unwrap().is_empty());
        let root = self.node.runtime_root(&self.handler).join("k8s.io");
        // hull-runtime keeps compiled seccomp filters in `@seccomp-cache` ('@' is outside the
        // id rule): a bounded cache of the root, no container's state.
        let states: Vec<_> = std::fs::read_dir(&root)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<PathBuf>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|p: &PathBuf| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('@'))
            })
            .collect();
        assert!(states.is_empty(), "runtime state left: {states:?}");
        let mut dirs = Vec::new();
        for d in self.node.kubepods.dirs() {
            hull_testkit::host::collect_dirs(&d, &mut dirs);
        }
        let left: Vec<_> = dirs
            .iter()
            .filter(|d| self.ids.iter().any(|id| d.ends_with(id)))
            .collect();
        assert!(left.is_empty(), "cgroups left: {left:?}");
        let mounts: Vec<_> = hull_testkit::host::mounts_under(Path::new("/"))
            .into_iter()
            .filter(|m| {
                self.ids
                    .iter()
                    .any(|id| m.to_string_lossy().contains(id.as_str()))
            })
            .collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        for ns in &self.node.netns {
            assert!(!ns.exists(), "netns left: {}", ns.display());
        }
        for veth in &self.node.veths {
            assert!(
                !Path::new("/sys/class/net").join(veth).exists(),
                "veth left: {veth}"
            );
        }
        let mut net = hull_net::engine::Net::open(&self.node.hull_root).unwrap();
        let links = net.attachments(None).unwrap();
        assert!(links.is_empty(), "hull-cni attachments left: {links:?}");
        wait_for("the shims to exit", Duration::from_secs(10), || {
            self.node.shims().is_empty()
        });
        self.see("after", "nothing left");
    }
}

/// GET / from 127.0.0.1:`port` (the pod's hostPort), as a client outside the pod network.
fn http_get(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
