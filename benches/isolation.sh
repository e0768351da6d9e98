#!/usr/bin/env bash
# The price of each isolation, side by side in one run: `hull run --rm busybox true` as a
# container and as a microVM (`--isolation vm --vmm qemu`: TCG on this host, whose kvm-pvm boots
# no stock kernel; KVM where qemu can use it), N runs each; medians and the ratio. The whole
# run holds the qemu lock (/tmp/hull-qemu.lock), so no other VM shares the CPUs. Needs root, Debian's cloud kernel in the qemu cache
# and hull-guest's initramfs (scripts/build-guest-initramfs.sh builds both); leaves nothing
# behind (its engine root is its own).
#
#   benches/isolation.sh            N=10 runs per median (env N)
#   HULL=/path/to/hull benches/isolation.sh   (default: a release build of this checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
. benches/lib/common.sh
n=${N:-10}
target=${CARGO_TARGET_DIR:-target}
if [ -z "${HULL:-}" ]; then
  cargo build --release -q -p hull
  HULL="$PWD/$target/release/hull"
fi
initrd=$(scripts/build-guest-initramfs.sh | tail -1)
work=$(mktemp -d /tmp/hull-bench-isolation.XXXXXX)
cleanup() {
  set +e
  "$HULL" --root "$work/root" ps -a -q --no-trunc | xargs -r "$HULL" --root "$work/root" rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
./scripts/mkrootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -c . | "$HULL" --root "$work/root" import - busybox >/dev/null
mkdir -p "$work/root/vm"
ln -s "$(readlink -f "$initrd")" "$work/root/vm/initramfs.cpio.gz"
hull() { "$HULL" --root "$work/root" "$@"; }
exec 9>/tmp/hull-qemu.lock
flock 9
vm=(--isolation vm --vmm qemu)
# Once each first: the VM's first run makes the layer's erofs image.
hull run --rm --network none busybox true
hull run --rm --network none "${vm[@]}" busybox true
container=$(for _ in $(seq "$n"); do timeit hull run --rm --network none busybox true; done | median)
qemu=$(for _ in $(seq "$n"); do
  timeit hull run --rm --network none "${vm[@]}" busybox true
done | median)
accel=tcg
[ -e /dev/kvm ] && [ ! -e /sys/module/kvm_pvm ] && accel=kvm
printf '%-44s %8s\n' "hull run --rm busybox true (N=$n)" "median s"
printf '%-44s %8.3f\n' "container" "$container"
printf '%-44s %8.3f\n' "--isolation vm --vmm qemu ($accel)" "$qemu"
printf '%-44s %8s\n' "vm / container" "$(ratio "$qemu" "$container")x"
