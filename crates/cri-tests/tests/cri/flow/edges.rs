//! The flow's edges, each compared with runc: how containers end (exit codes, kubelet's
//! reasons, a command that does not exist), a TERM-handling stop, and a privileged container
//! in a host-network pod.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::{mount_shape, wait_for, Flow};

impl Flow<'_> {
    /// Runs `command` in `pod` until it exits; records exit code and reason under `label`.
    fn exited(
        &mut self,
        label: &str,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        command: &[&str],
    ) -> cri::ContainerStatus {
        let config = self.container_config(pod_config, label, command);
        let id = self.start_container(label, pod, pod_config, &config);
        let mut st = cri::ContainerStatus::default();
        wait_for(label, Duration::from_secs(10), || {
            st = self.cri.status(&id).unwrap();
            st.state() == cri::ContainerState::ContainerExited
        });
        self.see(
            &format!("{label}.exit"),
            format!("{} {}", st.exit_code, st.reason),
        );
        st
    }

    /// Exit codes and reasons as kubelet reads them, and a start that fails.
    pub(super) fn endings(&mut self, pod: &str, pod_config: &cri::PodSandboxConfig) {
        let st = self.exited("done", pod, pod_config, &["true"]);
        assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
        let st = self.exited("three", pod, pod_config, &["sh", "-c", "exit 3"]);
        assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"));
        // A workingDir the image does not have (kubelet passes it as written in the pod).
        let mut config = self.container_config(pod_config, "cwd", &["pwd"]);
        config.working_dir = "/work/not/in/image".to_string();
        let id = self.start_container("cwd", pod, pod_config, &config);
        wait_for("cwd", Duration::from_secs(10), || {
            self.cri.status(&id).unwrap().state() == cri::ContainerState::ContainerExited
        });
        let st = self.cri.status(&id).unwrap();
        let log = std::path::Path::new(&pod_config.log_directory).join("cwd/0.log");
        let out = std::fs::read_to_string(log).unwrap_or_default();
        let out: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, r)| r))
            .collect();
        self.see(
            "cwd.exit",
            format!("{} {} {out:?}", st.exit_code, st.reason),
        );
        // A command the image does not have: StartContainer fails, the container is exited.
        let config = self.container_config(pod_config, "missing", &["/no/such/binary"]);
        let id = self.cri.create(pod, &config, pod_config).unwrap();
        self.name(&id, "<missing-id>");
        let err = self
            .cri
            .start(&id)
            .expect_err("StartContainer of a missing binary");
        let st = self.cri.status(&id).unwrap();
        assert!(
            err.message().contains("/no/such/binary"),
            "the start error does not name the binary: {}",
            err.message()
        );
        self.see(
            "missing.start",
            format!(
                "{:?} {:?} {} {}",
                err.code(),
                st.state(),
                st.exit_code,
                st.reason
            ),
        );
    }

    /// ExecSync past its timeout (a probe that hangs): an error, the process killed; and
    /// ReopenContainerLog of a stopped container, refused.
    pub(super) fn exec_timeout_and_reopen(&mut self, running: &str, stopped: &str) {
        let t = Instant::now();
        let res = self.cri.exec_timeout(running, &["sleep", "30"], 1);
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "ExecSync(timeout 1 s) took {took:?}"
        );
        let count = ["sh", "-c", "ps -o args | grep -c '^sleep 30'"];
        let (code, out, _) = self.cri.exec(running, &count).unwrap();
        let res = res.map(|r| r.0).map_err(|e| e.code());
        self.see("exec-timeout", format!("{res:?} left={}", out.trim()));
        assert_eq!(
            (code, out.trim()),
            (1, "0"),
            "the timed-out exec's process runs on"
        );
        // A probe whose command the image lacks.
        let res = self.cri.exec(running, &["/no/such/probe"]);
        let res = res.map(|r| r.0).map_err(|e| e.code());
        self.see("exec-missing", format!("{res:?}"));
        let err = self
            .cri
            .reopen_log(stopped)
            .expect_err("reopen of a stopped container");
        self.see("reopen-stopped", format!("{:?}", err.code()));
    }

    /// Probes run side by side (kubelet's liveness and readiness, each on its own worker):
    /// ten ExecSync of `sleep 1` at once take about a second, not ten.
    pub(super) fn parallel_execs(&mut self, id: &str) {
        let sock = self.node.sock();
        let t = Instant::now();
        let codes: Vec<i32> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..10)
                .map(|_| {
                    let sock = &sock;
                    s.spawn(move || {
                        let mut cri = crate::client::Cri::connect(sock).unwrap();
                        cri.exec(id, &["sleep", "1"]).unwrap().0
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let took = t.elapsed();
        assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
        assert!(
            took < Duration::from_secs(5),
            "10 parallel 1 s execs took {took:?}"
        );
        self.see("parallel-execs", "10 in parallel");
    }

    /// In a shared PID namespace a container's main process may exit leaving children; the
    /// shim then kills what is left in its cgroup (the runtime's `kill --all`).
    pub(super) fn leftovers_killed(
        &mut self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        peer: &str,
    ) {
        let st = self.exited(
            "forker",
            pod,
            pod_config,
            &["sh", "-c", "sleep 1234 & exit 0"],
        );
        assert_eq!(st.exit_code, 0);
        let count = ["sh", "-c", "ps -o args | grep -c '^sleep 1234'"];
        let mut left = String::new();
        wait_for(
            "the forker's child to be killed",
            Duration::from_secs(5),
            || {
                left = self.cri.exec(peer, &count).unwrap().1.trim().to_string();
                left == "0"
            },
        );
        self.see("forker.children-left", left);
    }

    /// containerd restarted under running pods (an upgrade): it finds them through their
    /// shims and the runtime's `state`, and serves them as before.
    pub(super) fn containerd_restart(&mut self, running: &str) {
        self.node.restart();
        self.cri = crate::client::Cri::connect(&self.node.sock()).unwrap();
        let st = self.cri.status(running).unwrap();
        let (code, out, _) = self.cri.exec(running, &["echo", "still"]).unwrap();
        assert_eq!((code, out.trim()), (0, "still"));
        self.see("restart.status", format!("{:?}", st.state()));
    }

    /// An ephemeral container (kubectl debug --target): it joins the target container's PID
    /// namespace; and a Localhost seccomp profile of the node's.
    pub(super) fn debug_and_seccomp(
        &mut self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        target: &str,
    ) {
        let mut config = self.container_config(pod_config, "debug", &["sleep", "2147483647"]);
        let sc = config
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .unwrap();
        let ns = sc.namespace_options.as_mut().unwrap();
        ns.pid = cri::NamespaceMode::Target as i32;
        ns.target_id = target.to_string();
        let profile = self.node.dir.join(format!("seccomp-{}.json", self.handler));
        let rules = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#;
        std::fs::write(&profile, rules).unwrap();
        sc.seccomp = Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Localhost as i32,
            localhost_ref: profile.display().to_string(),
        });
        // A host device, as a device plugin hands one out.
        config.devices = vec![cri::Device {
            container_path: "/dev/xnull".to_string(),
            host_path: "/dev/null".to_string(),
            permissions: "rw".to_string(),
        }];
        let id = self.start_container("debug", pod, pod_config, &config);
        let dev = "echo x > /dev/xnull && stat -c '%A %u %g %t:%T' /dev/xnull && \
                   grep -c '^c 1:3 rw' /sys/fs/cgroup/devices/devices.list";
        let (code, _) = self.exec(&id, "debug.device", &["sh", "-c", dev]);
        assert_eq!(code, 0, "the device is not usable");
        let (_, out) = self.exec(&id, "debug.pid1", &["cat", "/proc/1/cmdline"]);
        assert!(
            out.starts_with("sh\0-c\0echo started"),
            "debug --target: pid 1 is {out:?}"
        );
        let (code, _) = self.exec(&id, "debug.seccomp", &["mkdir", "/tmp/denied"]);
        assert_ne!(code, 0, "the Localhost seccomp profile let mkdir through");
        self.cri.stop(&id, 0).unwrap();
    }

    /// StopContainer on a process that ends on TERM: done well within the grace period.
    pub(super) fn stop_on_term(&mut self, id: &str, label: &str) {
        let t = Instant::now();
        self.cri.stop(id, 10).unwrap();
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{label}: StopContainer took {took:?}"
        );
        let st = self.cri.status(id).unwrap();
        self.see(
            &format!("{label}.stopped"),
            format!("{} {}", st.exit_code, st.reason),
        );
    }

    /// A host-network pod (no CNI) with a privileged container.
    pub(super) fn privileged(&mut self) {
        let mut config = self.pod_config("pod-c", Vec::new());
        // kubelet names only pods of their own network; a host-network pod has the host's
        // UTS namespace, where a runtime may not set a name (runc and hull refuse alike).
        config.hostname.clear();
        let sc = config
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .unwrap();
        sc.privileged = true;
        let ns = sc.namespace_options.as_mut().unwrap();
        ns.network = cri::NamespaceMode::Node as i32;
        ns.pid = cri::NamespaceMode::Node as i32;
        ns.ipc = cri::NamespaceMode::Node as i32;
        let pod = self.cri.run_pod(&config, &self.handler.clone()).unwrap();
        self.name(&pod, "<pod-c-id>");
        let st = self.cri.pod_status(&pod).unwrap().status.unwrap();
        self.see("pod-c.network", format!("{:?}", st.network.map(|n| n.ip)));
        let mut ctr = self.container_config(&config, "priv", &["sleep", "2147483647"]);
        let csc = ctr
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .unwrap();
        csc.privileged = true;
        csc.masked_paths.clear();
        csc.readonly_paths.clear();
        let id = self.start_container("priv", &pod, &config, &ctr);
        let host_name = nix::unistd::gethostname()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (_, out) = self.exec(
            &id,
            "priv.status",
            &["grep", "^CapEff\\|Seccomp:", "/proc/self/status"],
        );
        assert!(out.contains("Seccomp:\t0"), "{out}");
        let (_, out, _) = self.cri.exec(&id, &["hostname"]).unwrap();
        assert_eq!(
            out.trim(),
            host_name,
            "a host-network pod has the host's name"
        );
        let (_, mounts, _) = self.cri.exec(&id, &["cat", "/proc/mounts"]).unwrap();
        self.see("priv.mounts", mount_shape(&mounts));
        let (code, _, _) = self
            .cri
            .exec(
                &id,
                &["sh", "-c", "echo 0 > /proc/sys/kernel/shm_rmid_forced"],
            )
            .unwrap();
        self.see("priv.proc-sys-writable", code == 0);
        // hostPID: the test process is in sight; hostIPC: the host's IPC namespace.
        let me = format!("/proc/{}", std::process::id());
        let (code, _, _) = self.cri.exec(&id, &["test", "-d", &me]).unwrap();
        assert_eq!(
            code, 0,
            "a hostPID container does not see the host's processes"
        );
        let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
        let (_, out, _) = self
            .cri
            .exec(&id, &["readlink", "/proc/self/ns/ipc"])
            .unwrap();
        assert_eq!(out.trim(), host_ipc.to_string_lossy(), "hostIPC");
        self.see("priv.host-pid-ipc", true);
        self.cri.stop(&id, 0).unwrap();
    }

    /// A volume with HostToContainer propagation (rslave): a mount made on the host after
    /// the start shows in the container, and its unmount too.
    pub(super) fn propagation(&mut self, pod: &str, pod_config: &cri::PodSandboxConfig) {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        let dir = self.node.dir.join(format!("prop-{}", self.handler));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        // containerd wants the source on a shared (or slave) mount for this propagation.
        mount(
            Some(&dir),
            &dir,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        mount(
            None::<&str>,
            &dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        let mut config = self.container_config(pod_config, "prop", &["sleep", "2147483647"]);
        config.mounts = vec![cri::Mount {
            container_path: "/prop".to_string(),
            host_path: dir.display().to_string(),
            propagation: cri::MountPropagation::PropagationHostToContainer as i32,
            ..Default::default()
        }];
        let id = self.start_container("prop", pod, pod_config, &config);
        let sub = dir.join("sub");
        mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::write(sub.join("from-host"), "x").unwrap();
        let (_, info, _) = self
            .cri
            .exec(&id, &["cat", "/proc/self/mountinfo"])
            .unwrap();
        self.see("prop.propagation", super::propagation_shape(&info));
        let (_, out) = self.exec(&id, "prop.mounted", &["ls", "/prop/sub"]);
        umount2(&sub, MntFlags::MNT_DETACH).unwrap();
        assert_eq!(out.trim(), "from-host", "a host mount made after the start");
        let (_, out) = self.exec(&id, "prop.unmounted", &["ls", "/prop/sub"]);
        assert_eq!(out.trim(), "", "a host unmount after the start");
        self.cri.stop(&id, 0).unwrap();
    }
}
