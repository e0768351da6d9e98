//! A pod annotated `org.hull.isolation=vm` on the documented `hull` handler, whose
//! `pod_annotations` pass the annotation on: its sandbox stays a container, its app container
//! runs in a microVM (hull-vm-keeper behind hull-runtime, through the runc v2 shim). Its log
//! keeps stdout and stderr apart, ExecSync works in it, its exit code is the command's, the
//! guest's eth0 has the pod's address and default route (a tap mirrored to the pod's eth0, gone
//! from the pod's namespace when the VM ends), and nothing is left once the pod is gone.

use std::path::Path;
use std::time::Duration;

use k8s_cri::v1 as cri;

use super::{wait_for, Flow};

impl Flow<'_> {
    pub fn run_vm_pod(&mut self) {
        let mut pod = self.pod_config("pod-vm", vec![]);
        pod.annotations
            .insert("org.hull.isolation".to_string(), "vm".to_string());
        let (pod_id, pod_ip) = self.run_pod("vm-pod", &pod);
        let netns = self.node.netns.last().unwrap().clone();
        // The guest's kernel is not the host's: its release tells them apart.
        let script = "echo out-vm; echo err-vm >&2; uname -r; \
                      ip -o -4 addr show eth0; ip -4 route show default; sleep 5; exit 7";
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
        assert!(
            has_tap(&netns),
            "no tap in the pod's namespace while the VM runs"
        );
        let cri = &mut self.cri;
        wait_for("the VM container's exit", Duration::from_secs(120), || {
            cri.status(&id)
                .is_ok_and(|s| s.state == cri::ContainerState::ContainerExited as i32)
        });
        let status = self.cri.status(&id).unwrap();
        assert_eq!(status.exit_code, 7, "{status:?}\n{}", self.node.log());
        let log = std::fs::read_to_string(&status.log_path).unwrap();
        // Each stream in its order: the two are written apart, so not in order between them.
        let stream = |name: &str| -> Vec<&str> {
            log.lines()
                .filter_map(|l| l.split_once(' ')?.1.strip_prefix(name))
                .collect()
        };
        let (out, err) = (stream("stdout F "), stream("stderr F "));
        assert_eq!((out[0], &err[..]), ("out-vm", &["err-vm"][..]), "{log}");
        let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_ne!(out[1], host.trim(), "{log}");
        assert!(
            out[2].contains(" eth0 ") && out[2].contains(&format!(" inet {pod_ip}/")),
            "the guest's eth0 has not the pod's address {pod_ip}: {log}"
        );
        assert!(
            out[3].starts_with("default via ") && out[3].contains(" dev eth0"),
            "{log}"
        );
        // The pod's namespace outlives the VM: its keeper removed the tap at its end.
        assert!(
            !has_tap(&netns),
            "the VM's tap is left in the pod's namespace"
        );
        self.remove_all();
    }
}

/// Whether the pod's namespace at `netns` holds the VM's tap.
fn has_tap(netns: &Path) -> bool {
    let ns = std::fs::File::open(netns).unwrap();
    hull_net::netns::run_in(&ns, || {
        let mut nl = hull_net::netlink::Netlink::open().unwrap();
        nl.link_get(hull_net::tap::TAP_NAME).unwrap().is_some()
    })
    .unwrap()
}
