#!/usr/bin/env bash
# hull's engine side by side with its peers in one run (benches/engine_peers.py says what is
# measured): `run --rm` with no network and on a bridge, against podman (--runtime runc: its
# crun refuses this hybrid host), pelagos and bare hull-runtime; then 100 detached containers,
# 10 at a time. Needs root; leaves nothing behind (its roots, networks and cgroups are its own).
#
#   benches/engine-run.sh            N=30 runs per median (env N)
#   PELAGOS=/path/to/pelagos benches/engine-run.sh   (default: pelagos on PATH or in
#   /work/tools/pelagos/bin; `cargo install pelagos` makes one)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
target=${CARGO_TARGET_DIR:-target}
[[ $target = /* ]] || target=$PWD/$target
# Static as the runtime: its start (exec to first fork) is ~0.6 ms shorter.
./scripts/build-static.sh hull hull
./scripts/build-runtime.sh
hull="$target/release/hull"; runtime="$target/release/hull-runtime"
work=$(mktemp -d /tmp/hull-bench-engine.XXXXXX)
tag=$$
net=benchnet; podnet=hullbenchnet
# Addresses for this run's two networks, outside podman's and docker's defaults.
subnet=10.231.$((tag % 200)).0/24; podsubnet=10.232.$((tag % 200)).0/24
own=$(cut -d: -f3 /proc/self/cgroup | awk '{ if (length($0) > length(m)) m = $0 } END { print m }')
own=${own%/}
parent="$own/hull-bench-$tag"
# Intermediate cgroup directories a hierarchy lacks are made by podman's runtime; they are
# removed after, and only those.
made=()
for h in /sys/fs/cgroup/*/; do
  d=${h%/}
  IFS=/ read -ra parts <<<"${own#/}"
  for p in "${parts[@]}"; do
    [ -n "$p" ] || continue
    d="$d/$p"
    [ -d "$d" ] || made+=("$d")
  done
done
podman=(podman --root "$work/podman/storage" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
        --storage-driver overlay --cgroup-manager cgroupfs --events-backend none --runtime runc)
cleanup() {
  set +e
  # Containers, networks (the default one's bridge and nftables entries too) and the root.
  "$hull" --root "$work/root" system reset -f >/dev/null
  "${podman[@]}" rm -a -f -t 0 >/dev/null 2>&1
  "${podman[@]}" network rm -f "$podnet" >/dev/null 2>&1
  "${podman[@]}" rmi -a -f >/dev/null 2>&1
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h${parent#/}" ] && find "$h${parent#/}" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  for ((i = ${#made[@]} - 1; i >= 0; i--)); do rmdir "${made[i]}" 2>/dev/null; done
  umount -R "$work/podman/storage/overlay" 2>/dev/null
  [ -n "${PELAGOS_IMAGE:-}" ] && "$pelagos" image rm "$PELAGOS_IMAGE" >/dev/null 2>&1
  [ -n "$pelagos_made" ] && rm -rf /var/lib/pelagos
  rm -rf "$work"
}
pelagos_made=
trap cleanup EXIT
./scripts/mkrootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -c . | "$hull" --root "$work/root" import - busybox >/dev/null
"$hull" --root "$work/root" network create --subnet "$subnet" "$net" >/dev/null
# The floor: bare hull-runtime on the config.json hull generates, over a plain copy of the root
# (its volumes and per-container /etc files left out: they belong to hull's container dir).
id=$("$hull" --root "$work/root" create --network none busybox true)
mkdir -p "$work/bundle"
cp -a "$work/rootfs" "$work/bundle/rootfs"
python3 - "$work/root/containers/$id/config.json" "$work/bundle/config.json" "$work/root" "$parent" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["root"]["path"] = "rootfs"
# Under this run's cgroup, as hull's own containers are (without a path the runtime, as runc,
# would make hull-<id> beside the caller's cgroup).
c["linux"]["cgroupsPath"] = sys.argv[4] + "/hull-bench-floor"
c["mounts"] = [m for m in c["mounts"] if not m.get("source", "").startswith(sys.argv[3])]
json.dump(c, open(sys.argv[2], "w"))
PY
"$hull" --root "$work/root" rm "$id" >/dev/null
if command -v podman >/dev/null; then
  tar -C "$work/rootfs" -c . | "${podman[@]}" import - localhost/busybox >/dev/null
  "${podman[@]}" network create --subnet "$podsubnet" "$podnet" >/dev/null 2>&1 ||
    echo "podman network create failed: the bridge row shows podman as not run"
fi
pelagos=${PELAGOS:-$(command -v pelagos || echo /work/tools/pelagos/bin/pelagos)}
pelagos_made=
if [ -x "$pelagos" ]; then
  [ -d /var/lib/pelagos ] || pelagos_made=1
  # pelagos wants its state directories with mode 2775.
  for d in images layers blobs build-cache volumes rootfs networks; do install -d -m 2775 "/var/lib/pelagos/$d"; done
  export PELAGOS=$pelagos
  # The same busybox in pelagos's own store, for its row with an image overlay.
  if "$hull" --root "$work/root" save --format oci-archive -o "$work/busybox-oci.tar" busybox &&
     "$pelagos" image load -i "$work/busybox-oci.tar" --tag "hullbench-busybox-$tag:latest" >/dev/null; then
    export PELAGOS_IMAGE="hullbench-busybox-$tag:latest"
  else
    echo "pelagos image load failed: its image row is left out"
  fi
else
  echo "pelagos not found (cargo install pelagos): its row is left out"
  export PELAGOS=
fi
echo "hull $("$hull" --version | head -1); podman $(podman --version 2>/dev/null | awk '{print $3}'); runc $(runc --version | head -1 | awk '{print $3}'); pelagos ${PELAGOS:+$("$PELAGOS" --version 2>/dev/null | head -1)}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores)"
sync  # what the set-up wrote goes to disk now, not under the timings
python3 benches/engine_peers.py "$work" "$hull" "$runtime" "$parent" "$subnet" "$podsubnet"
ctr=$("$hull" --root "$work/root" run -d --network none busybox sleep 60)
sleep 0.3
monitor=$("$hull" --root "$work/root" inspect "$ctr" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["MonitorPid"])')
echo
grep -E 'VmRSS|RssAnon|RssFile' "/proc/$monitor/status" | sed 's/^/one hull monitor: /'
