#!/usr/bin/env bash
# Runs hull's test suite as root against the real kernel. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the tests need root (namespaces, mounts, cgroups)"; exit 1; }
./scripts/deps.sh
# HULL_STRICT=1 (set by .ci/run) reaches the tests and the qemu harness through the environment:
# then a skip not in tests/allowed-skips.txt fails.
export HULL_STRICT=${HULL_STRICT:-0}
echo "HULL_STRICT=$HULL_STRICT"
# The cgroup v2 code paths, in a qemu guest per cgroup layout (this host is hybrid).
crates/cgroups/tests/qemu/run.sh
# hull-vmm boots Debian's kernel in a qemu TCG guest with nested KVM (this host's kvm-pvm boots no
# stock kernel): three `hull vm run` boots, 30-70 s here.
crates/vmm/tests/nested/run.sh
# hull-guest's initramfs, which its qemu -M microvm test (crates/guest/tests) and the
# `--isolation vm --vmm qemu` tests (crates/hull/tests/isolation_vm_cli.rs) boot.
scripts/build-guest-initramfs.sh >/dev/null
# Two test threads: the machine has two cores, and the tests start real containers.
cargo test --workspace -- --test-threads=2
