#!/usr/bin/env bash
# Installs the Debian packages hull's build and tests use, if any is missing.
set -euo pipefail
packages=(
  busybox-static                # the root file system of test and demo containers
  libseccomp-dev pkg-config     # seccomp filters (libseccomp crate)
  libnftables-dev nftables      # hull-net's nftables rules (libnftables)
  iproute2                      # network tests look at links with ip(1)
  containernetworking-plugins   # hull-cni delegating IPAM to a reference plugin
  runc crun                     # peers for benchmarks and cross-checks
  podman containerd bsdutils    # drop-in tests: hull-runtime behind podman and containerd (script(1) for -it)
  protobuf-compiler             # protoc: the k8s-cri crate's CRI gRPC bindings (crates/cri-tests)
  docker.io                     # drop-in test: dockerd 20.10 on hull-runtime (/usr/bin/docker, /usr/sbin/dockerd)
  qemu-system-x86               # cgroup v2 tests in a guest (this host is hybrid)
  erofs-utils e2fsprogs         # microVM root disks (erofs, ext4) that the guest tests make
  docker-registry skopeo umoci  # image tests: a real registry on 127.0.0.1, images made by other tools
  openssl python3               # registry auth tests (htpasswd hash, token server)
  tini                          # `hull run --init`: tini-static bound in as PID 1 (as docker-init)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Tests start private daemons (containerd, dockerd) of their own: the packages' services
  # must not start system-wide ones (docker.io's postinst would).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
