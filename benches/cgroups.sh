#!/usr/bin/env bash
# Time to create, configure (cpu, memory, pids, io) and remove a container cgroup: hull-cgroups
# (examples/cgroup-bench: create + limits + join + remove) against runc, whose cgroup cost is read as
# `runc run` with resources minus `runc run` without (same bundle otherwise). Median of N (50).
# Needs root, runc, busybox-static.  usage: benches/cgroups.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
command -v runc >/dev/null || { echo "SKIP: runc not installed"; exit 0; }
[ -x /bin/busybox ] || { echo "SKIP: busybox-static not installed"; exit 0; }

work=$(mktemp -d /tmp/hull-bench-cgroups.XXXXXX)
runc_root=$work/runc-root
trap 'runc --root "$runc_root" delete -f hull-bench-$$ >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# The block device of / for the io throttle (same on both sides).
dev=$(lsblk -ndo MAJ:MIN "$(findmnt -no SOURCE / | sed 's/\[.*//')" 2>/dev/null | tr -d ' ' || true)
[ -n "$dev" ] || dev=$(lsblk -ndo MAJ:MIN | head -1 | tr -d ' ')
maj=${dev%:*}; min=${dev#*:}
cat > "$work/resources.json" <<JSON
{"cpu": {"shares": 512, "quota": 50000, "period": 100000},
 "memory": {"limit": 268435456},
 "pids": {"limit": 100},
 "blockIO": {"throttleWriteBpsDevice": [{"major": $maj, "minor": $min, "rate": 10485760}]}}
JSON

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

cargo build -q --release -p hull-cgroups --example cgroup-bench
bench=target/release/examples/cgroup-bench
# One fresh process per sample (the runtime is a new process per container), variants alternated.
: > "$work/hull-res"; : > "$work/hull-none"
for _ in $(seq "$N"); do
  $bench 1 "$work/resources.json" >> "$work/hull-res"
  $bench 1 - >> "$work/hull-none"
done
hull_res=$(median < "$work/hull-res")
hull_none=$(median < "$work/hull-none")

# runc bundle: busybox rootfs running /bin/true; cgroupsPath relative (under this shell's cgroup).
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
ln -s busybox "$work/bundle/rootfs/bin/true"
(cd "$work/bundle" && runc spec)
jq --arg cg "hull-bench-runc-$$" '.process.terminal=false | .process.args=["/bin/true"] | .linux.cgroupsPath=$cg' \
  "$work/bundle/config.json" > "$work/none.json"
jq --slurpfile r "$work/resources.json" '.linux.resources += $r[0]' "$work/none.json" > "$work/res.json"

# Two bundles run alternately, so drift on this shared machine hits both variants alike.
mkdir -p "$work/bundle-res"
cp -a "$work/bundle/rootfs" "$work/bundle-res/"
cp "$work/none.json" "$work/bundle/config.json"
cp "$work/res.json" "$work/bundle-res/config.json"
runc_once() {
  local t0
  t0=$(date +%s%N)
  runc --root "$runc_root" run --bundle "$1" "hull-bench-$$" >/dev/null
  echo $(( ($(date +%s%N) - t0) / 1000 ))
}
: > "$work/runc-none"; : > "$work/runc-res"
runc_once "$work/bundle" >/dev/null  # warm caches
for _ in $(seq "$N"); do
  runc_once "$work/bundle" >> "$work/runc-none"
  runc_once "$work/bundle-res" >> "$work/runc-res"
done
runc_none=$(median < "$work/runc-none")
runc_res=$(median < "$work/runc-res")
runc_cg=$(awk -v a="$runc_res" -v b="$runc_none" 'BEGIN {print a-b}')

printf 'median of %s, microseconds\n' "$N"
printf '  hull-cgroups create+configure+join+remove, with cpu/memory/pids/io: %8s\n' "$hull_res"
printf '  hull-cgroups create+join+remove, no resources:                     %8s\n' "$hull_none"
printf '  runc run /bin/true, with the same resources:                       %8s\n' "$runc_res"
printf '  runc run /bin/true, no resources:                                  %8s\n' "$runc_none"
printf '  runc cgroup configure cost (difference):                           %8s\n' "$runc_cg"
awk -v h="$hull_res" -v hn="$hull_none" -v r="$runc_cg" -v rr="$runc_res" 'BEGIN {
  printf "  hull configure cost (with - without resources): %.1f\n", h - hn
  if (r > 0)
    printf "  ratio hull configure cost / runc configure cost: %.3f\n", (h - hn) / r
  else
    printf "  runc configure cost is below the run-to-run noise of runc run (difference %s <= 0)\n", r
  printf "  ratio hull whole cgroup lifecycle / runc run with resources: %.3f\n", h / rr }'
