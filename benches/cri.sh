#!/usr/bin/env bash
# hull on a Kubernetes node, through containerd's CRI (a private containerd, as the test
# crates/cri-tests/tests/cri runs it): a pod sandbox plus one container to running (the
# StartContainer reply), hull handler vs runc handler, median of N (default 20) each, the two
# alternating round by round after one warm-up round; then 20 pods with a container each
# started at once per handler (total time), and the leak checks after every removal.
# hull-runtime and hull-cni are release builds; runc is Debian's. Needs root, containerd,
# runc, containernetworking-plugins (loopback), busybox-static.
set -euo pipefail
N=${N:-20}
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 0; }
cargo build --release -q -p hull-runtime -p hull-net --bins
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
# The CRI client itself (tonic) need not be optimized: what is timed is containerd, the shim,
# the runtime and the CNI plugin.
N=$N HULL_CRI_BIN_DIR=$TARGET/release \
  cargo test -q -p hull-cri-tests --test cri -- --ignored --nocapture --exact bench_cri_pod_start 2>&1 \
  | grep -v 'level='
