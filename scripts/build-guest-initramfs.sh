#!/usr/bin/env bash
# Builds the initramfs of a hull microVM: hull-guest (static, as /init) and the modules Debian's
# cloud kernel has as modules but hull's guest needs (virtio-mmio, virtio-blk, virtio-console,
# virtio-net, erofs, overlay, and what they depend on), in load order in /lib/modules/hull.order. Cached:
# the same guest binary and kernel give the same file, rebuilt only when one changes.
# Prints the initramfs's path on its last line.
# usage: scripts/build-guest-initramfs.sh   env: CARGO_TARGET_DIR, HULL_GUEST_PROFILE (debug|release),
#        HULL_QEMU_CACHE (where Debian's kernel is unpacked, see scripts/qemu-guest-lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/qemu-guest-lib.sh
profile=${HULL_GUEST_PROFILE:-debug}
target=${CARGO_TARGET_DIR:-target}

debian_cloud_kernel
release=${vmlinuz##*/vmlinuz-}
kmods=$cache/x/lib/modules/$release/kernel

# Static, so PID 1 needs no loader or libraries (no musl target here: glibc, statically).
if [ "$profile" = release ]; then
  cargo rustc -q --release -p hull-guest --bin hull-guest -- -C target-feature=+crt-static
else
  cargo rustc -q -p hull-guest --bin hull-guest -- -C target-feature=+crt-static
fi
guest=$target/$profile/hull-guest
if readelf -l "$guest" | grep -q INTERP; then echo "FAIL: $guest is not static" >&2; exit 1; fi

# The modules and their dependencies (from each module's modinfo "depends="), dependencies first.
wanted="virtio_mmio virtio_blk virtio_console virtio_net erofs overlay"
declare -A path_of=()
while IFS= read -r f; do
  n=${f##*/}; n=${n%.ko}; path_of[$n]=$f; path_of[${n//-/_}]=$f
done < <(find "$kmods" -name '*.ko')
order=()
declare -A seen=()
add() {
  local m=$1 dep
  [ -n "${seen[$m]:-}" ] && return
  seen[$m]=1
  [ -n "${path_of[$m]:-}" ] || { echo "FAIL: module $m not in $kmods" >&2; exit 1; }
  for dep in $(strings "${path_of[$m]}" | sed -n 's/^depends=//p' | tr , ' '); do add "${dep//-/_}"; done
  order+=("$m")
}
for m in $wanted; do add "$m"; done

out=$target/hull-guest-initramfs
mkdir -p "$out"
key=$( { sha256sum "$guest" | cut -d' ' -f1; echo "$release ${order[*]}"; } | sha256sum | cut -c1-16)
img=$out/initramfs-$key.cpio.gz
if [ ! -s "$img" ]; then
  root=$(mktemp -d "$out/root.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{lib/modules,proc,sys,dev,mnt,tmp}
  strip -o "$root/init" "$guest"
  for m in "${order[@]}"; do cp "${path_of[$m]}" "$root/lib/modules/$m.ko"; echo "$m.ko"; done > "$root/lib/modules/hull.order"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$img.tmp"
  mv "$img.tmp" "$img"
  # Older builds of other keys are not needed any more.
  find "$out" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -name "${img##*/}" -delete
fi
ln -sfn "${img##*/}" "$out/initramfs.cpio.gz"
echo "$out/initramfs.cpio.gz"
