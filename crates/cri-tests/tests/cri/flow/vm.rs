//! A pod annotated `org.hull.isolation=vm` on the documented `hull` handler, whose
//! `pod_annotations` pass the annotation on: its sandbox stays a container, its app container
//! runs in a microVM (hull-vm-keeper behind hull-runtime, through the runc v2 shim). Its log
//! keeps stdout and stderr apart, ExecSync works in it, its exit code is the command's, and
//! nothing is left once the pod is gone.

use std::time::Duration;

use k8s_cri::v1 as cri;

use super::{wait_for, Flow};

impl Flow<'_> {
    pub fn run_vm_pod(&mut self) {
        let mut pod = self.pod_config("pod-vm", vec![]);
        pod.annotations
            .insert("org.hull.isolation".to_string(), "vm".to_string());
        let (pod_id, _) = self.run_pod("vm-pod", &pod);
        // The guest's kernel is not the host's: its release tells them apart.
        let script = "echo out-vm; echo err-vm >&2; uname -r; sleep 5; exit 7";
        let config = self.container_config(&pod, "vm-app", &["sh", "-c", script]);
        let id = self.start_container("vm-app", &pod_id, &pod, &config);
        let (code, out, err) = self
            .cri
            .exec(
                &id,
                &["sh", "-c", "echo exec-out; echo exec-err >&2; exit 3"],
            )
            .unwrap_or_else(|e| panic!("ExecSync in the VM: {e}\n{}", self.node.log()));
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (3, "exec-out\n", "exec-err\n")
        );
        let cri = &mut self.cri;
        wait_for("the VM container's exit", Duration::from_secs(120), || {
            cri.status(&id)
                .is_ok_and(|s| s.state == cri::ContainerState::ContainerExited as i32)
        });
        let status = self.cri.status(&id).unwrap();
        assert_eq!(status.exit_code, 7, "{status:?}\n{}", self.node.log());
        let log = std::fs::read_to_string(&status.log_path).unwrap();
        let lines: Vec<&str> = log
            .lines()
            .map(|l| l.split_once(' ').map_or("", |(_, rest)| rest))
            .collect();
        assert_eq!(lines[..2], ["stdout F out-vm", "stderr F err-vm"], "{log}");
        let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let guest = lines[2].trim_start_matches("stdout F ");
        assert_ne!(guest, host.trim(), "{log}");
        self.remove_all();
    }
}
