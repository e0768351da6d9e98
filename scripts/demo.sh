#!/usr/bin/env bash
# Installs what is missing, builds hull, makes a busybox image on the spot from Debian's
# busybox-static (`hull import` of a tar of scripts/mkrootfs.sh's root), and runs it.
# HULL_ROOT picks the engine's state directory (default /var/lib/hull).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release -q -p hull
# hull itself static, as the benches measure it (no dynamic loader at each command's start).
./scripts/build-static.sh hull hull
hull() { "${CARGO_TARGET_DIR:-target}/release/hull" --root "${HULL_ROOT:-/var/lib/hull}" "$@"; }
if ! hull image inspect busybox >/dev/null 2>&1; then
  rootfs=$(mktemp -d /tmp/hull-demo.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  ./scripts/mkrootfs.sh "$rootfs"
  tar -C "$rootfs" -c . | hull import - busybox >/dev/null
fi
hull run --rm busybox echo hello from hull
