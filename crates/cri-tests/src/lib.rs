//! hull-cri-tests holds no code: its test (`tests/cri.rs`) runs containerd's CRI plugin on
//! hull-runtime and hull-cni as a Kubernetes node does, against runc as the reference, with
//! the files of docs/kubernetes/. It is a crate of its own so that the gRPC client (k8s-cri,
//! tonic) stays out of the crates hull ships.
