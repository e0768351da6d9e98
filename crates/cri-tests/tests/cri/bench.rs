//! The CRI benchmark (benches/cri.sh runs it): a pod sandbox plus one container to running,
//! hull vs runc handler, median of N (default 20), the two alternating so that load from
//! elsewhere hits both alike; then 20 pods with a container each started in parallel per
//! handler (total time), and nothing left after.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use crate::client::Cri;
use crate::flow::Flow;
use crate::node::Node;

/// RunPodSandbox, CreateContainer, StartContainer: the container is running when
/// StartContainer returns (containerd waits for the runtime's `start`).
fn pod_up(
    cri: &mut Cri,
    handler: &str,
    pod: &cri::PodSandboxConfig,
    ctr: &cri::ContainerConfig,
) -> (String, String) {
    let pod_id = cri.run_pod(pod, handler).unwrap();
    let ctr_id = cri.create(&pod_id, ctr, pod).unwrap();
    cri.start(&ctr_id).unwrap();
    (pod_id, ctr_id)
}

fn configs(flow: &Flow, name: &str) -> (cri::PodSandboxConfig, cri::ContainerConfig) {
    let pod = flow.pod_config(name, Vec::new());
    let ctr = flow.container_config(&pod, "main", &["sleep", "2147483647"]);
    (pod, ctr)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

/// One pod to running, timed, then removed (untimed) with the leak checks.
fn one(flow: &mut Flow, round: usize) -> Duration {
    let (pod, ctr) = configs(flow, &format!("bench-{round}"));
    let handler = flow.handler.clone();
    let t = Instant::now();
    let (pod_id, _) = pod_up(&mut flow.cri, &handler, &pod, &ctr);
    let took = t.elapsed();
    flow.track_pod(&pod_id);
    flow.remove_all();
    took
}

/// `n` pods started at once, each by its own client (as kubelet's pod workers do).
fn parallel(flow: &mut Flow, sock: &std::path::Path, n: usize) -> Duration {
    let handler = flow.handler.clone();
    let work: Vec<_> = (0..n).map(|i| configs(flow, &format!("par-{i}"))).collect();
    let t = Instant::now();
    let pods: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = work
            .iter()
            .map(|(pod, ctr)| {
                let handler = &handler;
                s.spawn(move || {
                    let mut cri = Cri::connect(sock).unwrap();
                    pod_up(&mut cri, handler, pod, ctr).0
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let took = t.elapsed();
    for pod in &pods {
        flow.track_pod(pod);
    }
    flow.remove_all();
    took
}

pub fn run(node: &mut Node, handler: &str, rounds: usize) {
    let sock = node.sock();
    let mut times: Vec<(&str, Vec<Duration>)> = vec![(handler, Vec::new()), ("runc", Vec::new())];
    // One warm-up round each, not counted: images, snapshots and binaries into the caches.
    for round in 0..=rounds {
        for (h, v) in &mut times {
            let mut flow = Flow::new(node, h);
            let took = one(&mut flow, round);
            if round > 0 {
                v.push(took);
            }
        }
    }
    let hull = median(&mut times[0].1);
    let runc = median(&mut times[1].1);
    println!("pod sandbox + one container to running, median of {rounds}:");
    println!(
        "  hull {hull:?}  runc {runc:?}  ratio runc/hull {:.2}",
        runc.as_secs_f64() / hull.as_secs_f64()
    );
    for h in [handler, "runc"] {
        let mut flow = Flow::new(node, h);
        let took = parallel(&mut flow, &sock, 20);
        println!("20 pods in parallel on {h}: {took:?} total, nothing left after");
    }
}
