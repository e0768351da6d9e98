//! Pod A's app container, as kubelet makes one: resources, env, a volume and kubelet's own
//! mounts, a security context, a web server; what its processes see, its status, stats,
//! cgroups, a resize and its log.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;

use super::{memory_cgroup, mount_shape, propagation_shape, wait_for, Flow, MIB, PAGE};

/// Reads kubelet's /etc/hosts and token, writes the termination log, tries the read-only
/// token directory.
const KUBELET_MOUNTS: &str = "cat /etc/hosts /var/run/secrets/kubernetes.io/serviceaccount/token; \
     echo bye > /dev/termination-log; touch /var/run/secrets/kubernetes.io/serviceaccount/x";

/// What the app's processes see, compared between runtimes and not otherwise checked.
const PROBES: &[(&str, &[&str])] = &[
    (
        "app.caps",
        &["grep", "^Cap\\|Seccomp:\\|NoNewPrivs", "/proc/self/status"],
    ),
    ("app.hostname", &["hostname"]),
    ("app.resolv", &["cat", "/etc/resolv.conf"]),
    ("app.pid1", &["cat", "/proc/1/cmdline"]),
    (
        "app.dev",
        &[
            "sh",
            "-c",
            "ls -ln /dev | awk '{print $1, $3, $4, $5, $6, $NF}'",
        ],
    ),
    ("app.env-exec", &["sh", "-c", "env | sort"]),
    (
        "app.env-init",
        &["sh", "-c", "tr '\\0' '\\n' < /proc/1/environ | sort"],
    ),
    ("app.cgroups", &["cat", "/proc/self/cgroup"]),
    (
        "app.devices",
        &["sort", "/sys/fs/cgroup/devices/devices.list"],
    ),
    ("app.limits", &["sh", "-c", "cat /proc/1/limits; ulimit -a"]),
    (
        "app.modes",
        &[
            "stat",
            "-c",
            "%n %a %u %g",
            "/",
            "/tmp",
            "/dev",
            "/dev/shm",
            "/dev/pts",
            "/proc",
            "/sys",
            "/data",
        ],
    ),
    (
        "app.masked",
        &[
            "sh",
            "-c",
            "wc -c < /proc/kcore; ls /proc/acpi | wc -l; echo 1 > /proc/sys/vm/drop_caches",
        ],
    ),
    (
        "app.cpu",
        &[
            "cat",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
            "/sys/fs/cgroup/cpu/cpu.shares",
        ],
    ),
    (
        "app.net",
        &[
            "sh",
            "-c",
            "ip -o -4 addr | cut -d' ' -f2,7; netstat -ltn | tail -n +3",
        ],
    ),
];

impl Flow<'_> {
    /// The app container of pod A: resources, env, a mount, a security context, a web server.
    pub(super) fn app(&mut self, pod: &str, pod_config: &cri::PodSandboxConfig) -> String {
        let data = self.node.dir.join(format!("data-{}", self.handler));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(data.join("index.html"), format!("{PAGE}\n")).unwrap();
        let mut config = self.container_config(
            pod_config,
            "app",
            &[
                "sh",
                "-c",
                "echo started; echo started-err >&2; httpd -p 8080 -h /data; \
                 while :; do echo tick; sleep 0.2; done",
            ],
        );
        config.envs = vec![cri::KeyValue {
            key: "HULL_K8S".to_string(),
            value: "yes".to_string(),
        }];
        config.mounts = vec![cri::Mount {
            container_path: "/data".to_string(),
            host_path: data.display().to_string(),
            ..Default::default()
        }];
        config.mounts.extend(self.kubelet_mounts());
        let linux = config.linux.as_mut().unwrap();
        linux.resources = Some(cri::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 * MIB,
            // kubelet's for a BestEffort pod, and a CPU set.
            oom_score_adj: 1000,
            cpuset_cpus: "0".to_string(),
            ..Default::default()
        });
        let sc = linux.security_context.as_mut().unwrap();
        sc.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_RAW".to_string()],
            drop_capabilities: vec!["CHOWN".to_string(), "MKNOD".to_string()],
            ..Default::default()
        });
        sc.run_as_user = Some(cri::Int64Value { value: 1000 });
        sc.run_as_group = Some(cri::Int64Value { value: 1000 });
        sc.supplemental_groups = vec![2000];
        sc.readonly_rootfs = true;
        sc.no_new_privs = true;
        sc.seccomp = Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            ..Default::default()
        });
        let id = self.start_container("app", pod, pod_config, &config);
        let (code, out) = self.exec(&id, "app.wait-httpd", &["sh", "-c", "sleep 0.3; echo ok"]);
        assert_eq!((code, out.trim()), (0, "ok"));
        id
    }

    /// What a process of the app container sees; observe-only probes are compared, the
    /// others checked too.
    pub(super) fn app_checks(&mut self, app: &str, pod: &str) {
        let (_, out) = self.exec(app, "app.id", &["id"]);
        assert!(
            out.starts_with("uid=1000 gid=1000 groups=1000,2000"),
            "{out}"
        );
        let (_, out) = self.exec(app, "app.env", &["sh", "-c", "echo $HULL_K8S"]);
        assert_eq!(out.trim(), "yes");
        let (code, _) = self.exec(app, "app.ro-root", &["touch", "/written"]);
        assert_ne!(code, 0, "the read-only root was written");
        let (code, _) = self.exec(app, "app.mount", &["sh", "-c", "echo w > /data/from-ctr"]);
        assert_eq!(code, 0, "the mount is not writable");
        assert!(self
            .node
            .dir
            .join(format!("data-{}/from-ctr", self.handler))
            .exists());
        let (_, out) = self.exec(app, "app.kubelet-mounts", &["sh", "-c", KUBELET_MOUNTS]);
        assert!(
            out.contains("# kubelet's") && out.contains("a-token"),
            "{out}"
        );
        let log = self
            .node
            .dir
            .join(format!("kubelet-{}/termination-log", self.handler));
        assert_eq!(std::fs::read_to_string(log).unwrap(), "bye\n");
        let sysctls = [
            "cat",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
            "/proc/sys/kernel/shm_rmid_forced",
        ];
        let (_, out) = self.exec(app, "app.sysctls", &sysctls);
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "1"]);
        let memory = ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"];
        let (_, out) = self.exec(app, "app.memory-limit", &memory);
        assert_eq!(out.trim(), (64 * MIB).to_string());
        let liveness = ["timeout", "5", "wget", "-qO-", "http://127.0.0.1:8080/"];
        let (code, out) = self.exec(app, "app.liveness", &liveness);
        assert!(code == 0 && out.contains(PAGE), "liveness: {code} {out}");
        let adj = [
            "cat",
            "/proc/self/oom_score_adj",
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
        ];
        let (_, out) = self.exec(app, "app.oom-adj-cpuset", &adj);
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1000", "0"]);
        for (key, cmd) in PROBES {
            self.exec(app, key, cmd);
        }
        let (_, mounts, _) = self.cri.exec(app, &["cat", "/proc/mounts"]).unwrap();
        self.see("app.mounts", mount_shape(&mounts));
        let (_, info, _) = self
            .cri
            .exec(app, &["cat", "/proc/self/mountinfo"])
            .unwrap();
        self.see("app.propagation", propagation_shape(&info));
        self.app_status(app, pod);
        self.pod_cgroups(app, pod);
        self.update(app);
    }

    /// ContainerStatus, ContainerStats and PodSandboxStats of the running app.
    fn app_status(&mut self, app: &str, pod: &str) {
        let st = self.cri.status(app).unwrap();
        assert_eq!(st.state(), cri::ContainerState::ContainerRunning);
        let log: Vec<&str> = st.log_path.rsplit('/').take(2).collect();
        self.see(
            "app.status",
            format!("{:?} mounts={} log={log:?}", st.state(), st.mounts.len()),
        );
        let stats = self.cri.stats(app).unwrap();
        let cpu = stats
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map_or(0, |v| v.value);
        let mem = stats
            .memory
            .and_then(|m| m.working_set_bytes)
            .map_or(0, |v| v.value);
        assert!(cpu > 0 && mem > 0, "ContainerStats: cpu {cpu} memory {mem}");
        self.see("app.stats", format!("cpu>0 {} mem>0 {}", cpu > 0, mem > 0));
        // kubelet's CRI stats provider: the pod's usage, network included.
        let pod_stats = self.cri.pod_stats(pod).unwrap().linux.unwrap_or_default();
        self.see(
            "pod-a.stats",
            format!(
                "cpu {} memory {} network {} containers {}",
                pod_stats.cpu.is_some(),
                pod_stats.memory.is_some(),
                pod_stats.network.is_some(),
                pod_stats.containers.len()
            ),
        );
    }

    /// Pod-level cgroups: the sandbox and the container under the pod's parent, the limit set
    /// there as the host sees it.
    fn pod_cgroups(&mut self, app: &str, pod: &str) {
        let pod_dir = format!("{}/pod{}-pod-a-uid", self.node.kubepods.path, self.handler);
        let app_pid = self.pid(app);
        let sandbox_pid = self
            .cri
            .pod_status(pod)
            .unwrap()
            .info
            .get("info")
            .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or_default();
        assert_eq!(memory_cgroup(app_pid), format!("{pod_dir}/{app}"));
        assert_eq!(memory_cgroup(sandbox_pid), format!("{pod_dir}/{pod}"));
        let limit = format!("/sys/fs/cgroup/memory{pod_dir}/{app}/memory.limit_in_bytes");
        let limit = std::fs::read_to_string(limit).unwrap();
        assert_eq!(limit.trim(), (64 * MIB).to_string());
        self.see("app.cgroup", "under the pod parent");
    }

    /// The mounts kubelet gives every container of a pod network: its /etc/hosts, a
    /// termination-log file in /dev, a service account token directory (read-only, its mount
    /// point made in a read-only root).
    fn kubelet_mounts(&self) -> Vec<cri::Mount> {
        let dir = self.node.dir.join(format!("kubelet-{}", self.handler));
        let token = dir.join("token");
        std::fs::create_dir_all(&token).unwrap();
        std::fs::write(token.join("token"), "a-token\n").unwrap();
        std::fs::write(dir.join("etc-hosts"), "127.0.0.1\tlocalhost\n# kubelet's\n").unwrap();
        let log = dir.join("termination-log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        let mount = |ctr: &str, host: PathBuf, readonly: bool| cri::Mount {
            container_path: ctr.to_string(),
            host_path: host.display().to_string(),
            readonly,
            ..Default::default()
        };
        vec![
            mount("/etc/hosts", dir.join("etc-hosts"), false),
            mount("/dev/termination-log", log, false),
            mount("/var/run/secrets/kubernetes.io/serviceaccount", token, true),
        ]
    }

    /// UpdateContainerResources (kubelet's in-place resize): the runtime's `update`.
    fn update(&mut self, app: &str) {
        let new = cri::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 256,
            memory_limit_in_bytes: 96 * MIB,
            ..Default::default()
        };
        self.cri.update(app, new).unwrap();
        let (_, out) = self.exec(
            app,
            "app.updated",
            &[
                "cat",
                "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                "/sys/fs/cgroup/cpu/cpu.shares",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            ],
        );
        let want = ["20000", "256", &(96 * MIB).to_string()].map(String::from);
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), want);
    }

    /// The container log where kubelet reads it, and ReopenContainerLog after a rotation.
    pub(super) fn logs(&mut self, app: &str, pod_config: &cri::PodSandboxConfig) {
        let log = Path::new(&pod_config.log_directory).join("app/0.log");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        wait_for("the container log", Duration::from_secs(5), || {
            let text = read(&log);
            text.contains(" stdout F started\n")
                && text.contains(" stderr F started-err\n")
                && text.contains(" stdout F tick\n")
        });
        let rotated = log.with_extension("log.1");
        std::fs::rename(&log, &rotated).unwrap();
        self.cri.reopen_log(app).unwrap();
        wait_for("the reopened log", Duration::from_secs(5), || {
            read(&log).contains(" stdout F tick\n")
        });
        self.see("app.log", "started, tick; reopened");
    }
}
