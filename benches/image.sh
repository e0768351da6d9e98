#!/usr/bin/env bash
# All image benches in one run: unpack vs GNU tar, pull vs skopeo (and podman), rootfs setup
# and disk use of 50 containers. Each prints its medians and ratios.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
for b in image-unpack image-pull image-rootfs; do
    echo "== $b"
    bash "$HERE/$b.sh"
    echo
done
