#!/usr/bin/env bash
# Container start cost, hull-runtime vs runc vs crun, side by side in one run: `run` of /bin/true
# (create, start, wait, delete) on one busybox bundle, median of N runs after warm-up, and the
# peak RSS of each runtime process.
#
# crun 1.8 refuses this host's hybrid cgroup layout, so all three are timed inside a private
# mount namespace where /sys/fs/cgroup/unified is unmounted (a legacy v1 view); hull-runtime is
# timed on the plain host as well.
#
#   benches/lifecycle.sh [RUNS]      (default 40, as root)
#   HULL_BASE=/path/to/older/hull-runtime benches/lifecycle.sh   adds an older build to both runs
#   (before/after figures of a change, measured side by side)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
for p in runc crun busybox-static time; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
./scripts/build-runtime.sh
hull=$PWD/target/release/hull-runtime
base=()
[ -n "${HULL_BASE:-}" ] && base=("hull-base=$HULL_BASE")
work=$(mktemp -d /tmp/hull-bench-lifecycle.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
ln -s busybox "$work/bundle/rootfs/bin/true"
ln -s busybox "$work/bundle/rootfs/bin/sh"
# One config for all three: runc's own default, with no terminal and /bin/true.
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY
echo "runtimes: $("$hull" --version | head -1), $(runc --version | head -1), $(crun --version | head -1)"
echo "runs: $runs each after 5 warm-up runs; bundle: busybox-static, /bin/true"
echo
echo "== plain host (hybrid cgroups)"
python3 benches/lifecycle_timer.py "$work" "$runs" "hull-runtime=$hull" "${base[@]}"
echo
echo "== private mount namespace, /sys/fs/cgroup/unified unmounted (all three)"
unshare -m --propagation private sh -c "umount /sys/fs/cgroup/unified 2>/dev/null; \
  python3 benches/lifecycle_timer.py '$work' '$runs' 'hull-runtime=$hull' ${base[*]} runc=$(command -v runc) crun=$(command -v crun)"
