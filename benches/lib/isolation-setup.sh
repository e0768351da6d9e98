# Sourced by benches/isolation.sh and benches/isolation-density.sh: a release hull (or $HULL),
# the release guest initramfs and Debian's cloud kernel linked into a private engine root
# ($root, under $work, removed on exit with every container in it) with a busybox image, the
# qemu lock held on fd 9 for the whole run, and one warm-up run of each isolation (the VM's first
# run makes the layer's erofs image). `hull ARGS` runs hull on that root.
# Needs: the caller's cwd at the checkout's top, $1 = a name for the work dir.
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
if [ -z "${HULL:-}" ]; then
  cargo build --release -q -p hull -p hull-runtime
  HULL="$target/release/hull"
fi
initrd=$(HULL_GUEST_PROFILE=release scripts/build-guest-initramfs.sh | tail -1)
. scripts/qemu-guest-lib.sh
debian_cloud_kernel >/dev/null
work=$(mktemp -d "/tmp/hull-bench-$1.XXXXXX")
root=$work/root
cleanup() {
  set +e
  "$HULL" --root "$root" ps -a -q --no-trunc | xargs -r "$HULL" --root "$root" rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
./scripts/mkrootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -c . | "$HULL" --root "$root" import - busybox >/dev/null
mkdir -p "$root/vm"
ln -s "$(readlink -f "$vmlinuz")" "$root/vm/vmlinuz"
ln -s "$(readlink -f "$initrd")" "$root/vm/initramfs.cpio.gz"
# hull's children (monitors, qemu) must not inherit the lock's descriptor.
hull() { "$HULL" --root "$root" "$@" 9>&-; }
exec 9>/tmp/hull-qemu.lock
flock 9
hull run --rm --network none busybox true
hull run --rm --network none --isolation vm --vmm qemu busybox true
