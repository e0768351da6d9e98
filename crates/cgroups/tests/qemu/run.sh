#!/usr/bin/env bash
# Runs the hull-cgroups integration tests inside a qemu guest (TCG: this host's /dev/kvm boots no stock
# kernel) on Debian's cloud kernel, once per cgroup layout: unified (pure v2), hybrid, legacy. This is
# how the cgroup v2 paths (cgroup.subtree_control, io.max, memory.events, eBPF device filter,
# cgroup.freeze) are tested on a hybrid host. Beside them, hull-run-flags.sh runs the `hull` binary
# with the resource flags of `hull run` and checks the container's cgroup files in each layout.
# Needs root, qemu-system-x86, busybox-static.
# Strict (HULL_STRICT set and not 0, or CI=true): what would be a skip fails the run, and the guest's
# tests run with HULL_STRICT=1 against tests/allowed-skips.txt.
# usage: crates/cgroups/tests/qemu/run.sh [unified|hybrid|legacy ...]   (default: all three)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../../.."
layouts=("$@")
[ ${#layouts[@]} -gt 0 ] || layouts=(unified hybrid legacy)

# strict, skip, debian_cloud_kernel, copy_libs.
. scripts/qemu-guest-lib.sh

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
[ -x /bin/busybox ] || skip "/bin/busybox missing (apt-get install busybox-static)"

# Debian's cloud kernel, unpacked once into a cache.
debian_cloud_kernel

# The test binaries, exactly as `cargo test` builds them.
bins=$(cargo test -q -p hull-cgroups --tests --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | grep '/deps/' | sort -u)
[ -n "$bins" ] || { echo "FAIL: cargo built no test binaries"; exit 1; }
hull_bin=$(cargo build -q -p hull --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*/hull"' | sed 's/"executable":"//; s/"$//' | head -1)
[ -n "$hull_bin" ] || { echo "FAIL: cargo built no hull binary"; exit 1; }

work=$(mktemp -d /tmp/hull-qemu-cgroups.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,tests,lib,proc,sys,dev,tmp,hull}
cp /bin/busybox "$root/bin/"
install -m 755 "$here/init.sh" "$root/init"
# The guest has no checkout: hull-testkit reads the allow-list where init.sh points it.
cp tests/allowed-skips.txt "$root/allowed-skips.txt"
# Modules init.sh loads: loop (block devices for the io tests), overlay (hull's container roots).
for m in loop overlay; do
  ko=$(find "$cache/x/lib/modules" -name "$m.ko*" | head -1)
  case "$ko" in
    *.xz) xz -dc "$ko" > "$root/lib/$m.ko" ;;
    *.zst) zstd -qdc "$ko" > "$root/lib/$m.ko" ;;
    ?*) cp "$ko" "$root/lib/$m.ko" ;;
  esac
done
for b in $bins; do
  name=$(basename "$b" | sed 's/-[0-9a-f]*$//')
  strip -o "$root/tests/$name" "$b"
  # glibc and friends, at the paths the dynamic loader expects.
  copy_libs "$b" "$root"
done
# `hull` and a busybox image to import (bin/busybox, its applets, root in /etc/passwd).
strip -o "$root/hull/hull" "$hull_bin"
copy_libs "$hull_bin" "$root"
install -m 755 "$here/hull-run-flags.sh" "$root/tests/hull-run-flags"
# The default seccomp profile hull takes from podman's containers-common, when this host has it.
seccomp=/usr/share/containers/seccomp.json
[ ! -f $seccomp ] || { mkdir -p "$root${seccomp%/*}" && cp $seccomp "$root$seccomp"; }
img=$work/image
mkdir -p "$img"/{bin,etc,tmp,root}
cp /bin/busybox "$img/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$img/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$img/etc/passwd"
echo 'root:x:0:' > "$img/etc/group"
tar -C "$img" -cf "$root/hull/busybox.tar" .
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"

failed=0
for layout in "${layouts[@]}"; do
  log=$work/$layout.log
  echo "== cgroup layout: $layout (qemu TCG, $(basename "$vmlinuz"))"
  timeout 900 qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 hull.layout=$layout hull.strict=$strict" > "$log" 2>&1 || true
  # Read from a file, never through `tr | grep -q`: a grep that matches early ends the tr with
  # SIGPIPE, which pipefail turns into a failed check.
  tr -d '\r' < "$log" > "$log.txt"
  # A skip's line may follow "test name ... " (--nocapture), so SKIP is matched anywhere; under
  # strict an unlisted skip panics with "HULL_STRICT=1: ..." and fails its binary (rc below).
  grep -E '^(HULL-|test |test result|---- |thread |  left|  right|FAILED: |.*panicked)|SKIP|HULL_STRICT=1:' "$log.txt" || true
  if ! grep -q HULL-DONE "$log.txt"; then
    echo "FAIL: guest ($layout) did not finish; last lines:"; tail -20 "$log"; failed=1
  elif ! grep -qx "HULL-STRICT $strict" "$log.txt"; then
    echo "FAIL: guest ($layout) did not take hull.strict=$strict"; failed=1
  elif grep -E '^HULL-TEST-END .* rc=[1-9]' "$log.txt"; then
    failed=1
  fi
  [ -z "${HULL_QEMU_KEEP_LOGS:-}" ] || cp "$log" "/tmp/hull-qemu-cgroups-$layout.log"
done
[ $failed = 0 ] && echo "PASS: hull-cgroups tests in qemu on: ${layouts[*]}" || { echo "FAIL"; exit 1; }
