#!/usr/bin/env bash
# What `create` killed with SIGKILL leaves behind once `delete -f` has run, hull-runtime vs runc:
# for delays of 0, 1, ..., 30 ms and RANDOM more at random in between, each runtime creates a
# busybox container, is killed after the delay, and deletes it with -f; then the cgroup dirs
# named after the container, its live processes (in such a cgroup, or an init left by the killed
# create), mounts naming it and its state dir are counted, and removed for the next round.
#
#   benches/create-kill.sh [RANDOM]      (default 10, as root; HULL_RUNTIME=path to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-10}
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
for p in runc busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "SKIP: $p is not installed (apt-get install $p)"; exit 0; }
done
hull=${HULL_RUNTIME:-}
if [ -z "$hull" ]; then
  ./scripts/build-runtime.sh
  hull=${CARGO_TARGET_DIR:-$PWD/target}/release/hull-runtime
fi
work=$(mktemp -d /tmp/hull-bench-create-kill.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
ln -s busybox "$work/bundle/rootfs/bin/sleep"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "1000"]
json.dump(c, open(p, "w"))
PY

delays=()
for ms in $(seq 0 30); do delays+=("$ms.000"); done
for _ in $(seq "$extra"); do
  us=$(( (RANDOM * 32768 + RANDOM) % 30000 ))
  delays+=("$(( us / 1000 )).$(printf %03d $(( us % 1000 )))")
done

# Pids of init processes a runtime may leave (runc's "runc init", hull-runtime's clone).
inits() { pgrep -f '^(runc init|runc:\[)' || true; }

# cgroup dirs, processes, mounts and state dirs of container $2 (state root $1), one per line.
leftovers() {
  local root=$1 id=$2 before=$3 pid
  find /sys/fs/cgroup -maxdepth 6 -type d -name "*$id*" 2>/dev/null | sed 's/^/cgroup /'
  for pid in $(grep -l -- "$id" /proc/[0-9]*/cgroup /proc/[0-9]*/cmdline 2>/dev/null |
      cut -d/ -f3 | sort -u) $(comm -13 <(echo "$before") <(inits | sort)); do
    [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
    [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null &&
      echo "process $pid"
  done | sort -u
  grep -- "$id" /proc/self/mountinfo | sed 's/^/mount /' || true
  [ -e "$root/$id" ] && echo "state $root/$id"
  return 0
}

cleanup() {
  local root=$1 id=$2 line
  while read -r kind what; do
    case $kind in
      process) kill -9 "$what" 2>/dev/null || true ;;
    esac
  done <<<"$3"
  sleep 0.1
  find /sys/fs/cgroup -maxdepth 6 -depth -type d -name "*$id*" -exec rmdir {} \; 2>/dev/null || true
  rm -rf "${root:?}/$id"
}

run_one() {
  local name=$1 bin=$2 root=$work/root-$1 n=0 dirty=0 cg=0 procs=0 mounts=0 states=0 killed=0
  local delay id before pid left rc
  for delay in "${delays[@]}"; do
    id=hull-ck-$$-$name-$n
    n=$((n + 1))
    before=$(inits | sort)
    "$bin" --root "$root" create --bundle "$work/bundle" "$id" >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf %06d $(( 10#${delay%.*} * 1000 + 10#${delay#*.} )))"
    kill -9 "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    [ "$rc" = 137 ] && killed=$((killed + 1))
    "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
    left=$(leftovers "$root" "$id" "$before")
    cg=$((cg + $(grep -c '^cgroup ' <<<"$left" || true)))
    procs=$((procs + $(grep -c '^process ' <<<"$left" || true)))
    mounts=$((mounts + $(grep -c '^mount ' <<<"$left" || true)))
    states=$((states + $(grep -c '^state ' <<<"$left" || true)))
    if [ -n "$left" ]; then
      dirty=$((dirty + 1))
      cleanup "$root" "$id" "$left"
    fi
  done
  printf '%-14s %3d creates (%3d killed before they returned), %3d left something: %3d cgroup dirs, %2d processes, %2d mounts, %2d state dirs\n' \
    "$name" "$n" "$killed" "$dirty" "$cg" "$procs" "$mounts" "$states"
}

echo "runtimes: $("$hull" --version | head -1), $(runc --version | head -1)"
echo "delays: 0..30 ms and $extra at random; bundle: busybox-static, sleep 1000"
run_one hull-runtime "$hull"
run_one runc "$(command -v runc)"
