#!/usr/bin/env bash
# Boot of Debian's kernel by hull-vmm (jailed through PVH; --no-jail; through the 64-bit boot
# protocol) vs qemu -M microvm, both on the
# same nested KVM: inside the L1 qemu TCG guest of the nested test bed (this host's kvm-pvm boots
# no stock kernel), N boots each of the same vmlinux and initramfs, whose init resets at once.
# Prints medians of boot to init and end to end (`hull vm run ... true`), their ratios, and each
# VMM's memory beyond guest RAM (RSS minus the guest RAM mapping's); then, in the same L1,
# `hull run --rm --network none busybox true` as a container, with `--isolation vm --vmm hull`
# and with `--vmm qemu` (KVM), N runs each interleaved after a warm-up, medians and ratios
# (HULL_NESTED_ENGINE=0 leaves these out). The L1 run holds the qemu lock (/tmp/hull-qemu.lock)
# throughout.
#
#   benches/vm-boot.sh [N]      (default 5; as root; HULL_NESTED_PROFILE=debug for a debug hull)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
export HULL_NESTED_MODE=bench HULL_NESTED_BOOTS=$n
# L1 runs 4N+2 L2 boots and 2N+2 engine VMs: give it time.
export HULL_NESTED_TIMEOUT=${HULL_NESTED_TIMEOUT:-$((120 + 60 * 6 * n))}
exec flock /tmp/hull-qemu.lock crates/vmm/tests/nested/run.sh
