#!/usr/bin/env bash
# Installs the Debian packages hull's build and tests use, if any is missing.
set -euo pipefail
packages=(
  busybox-static    # the root file system of test and demo containers
  libseccomp-dev    # seccomp filters (libseccomp crate)
  pkg-config
  iproute2 nftables # network tests
  runc crun         # peers for benchmarks
  podman containerd # drop-in tests: hull-runtime behind podman and containerd
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
