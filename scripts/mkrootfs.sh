#!/usr/bin/env bash
# Makes a busybox root file system at $1 from Debian's busybox-static: the binary, one symlink
# per applet, and the passwd and group files a container's user lookups read.
set -euo pipefail
rootfs=$1
mkdir -p "$rootfs/bin"
for d in dev proc sys etc tmp root; do mkdir -p "$rootfs/$d"; done
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
