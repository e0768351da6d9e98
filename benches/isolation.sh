#!/usr/bin/env bash
# The price of each isolation, side by side in one run: `hull run --rm --network none busybox
# true` as a container and as a microVM (`--isolation vm --vmm qemu`: TCG on this host, whose
# kvm-pvm boots no stock kernel; KVM where qemu can use it), and `echo hi` to its first line and
# to the end; N runs each, interleaved, after a warm-up of each (the VM's first run makes the
# layer's erofs image); medians and ratios (benches/isolation_timer.py). The whole run holds the
# qemu lock (/tmp/hull-qemu.lock), so no other VM shares the CPUs. Needs root, Debian's cloud
# kernel in the qemu cache and hull-guest's initramfs (scripts/build-guest-initramfs.sh makes
# both; a release guest here); leaves nothing behind (its engine root is its own).
# 10 VMs vs 10 containers (memory, disk, layer sharing): benches/isolation-density.sh.
#
#   benches/isolation.sh [N]        N runs per median (default 5: a TCG boot takes seconds)
#   HULL=/path/to/hull benches/isolation.sh   (default: a release build of this checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-${N:-5}}
. benches/lib/isolation-setup.sh isolation
accel=tcg
[ -e /dev/kvm ] && [ ! -e /sys/module/kvm_pvm ] && accel=kvm
echo "hull $("$HULL" --version | head -1); $(qemu-system-x86_64 --version | head -1); accel $accel;" \
  "guest kernel ${vmlinuz##*/}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
python3 benches/isolation_timer.py "$HULL" "$root" "$n" 9>&-
