#!/usr/bin/env bash
# `hull run --rm --network none busybox true` against bare `hull-runtime run` of the same
# config.json (the one hull generated, on a plain copy of the image's root), median of N after
# warm-up, and the resident set of a container's monitor. Needs root; leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-40}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p hull -p hull-runtime
hull="$target/release/hull"; runtime="$target/release/hull-runtime"
work=$(mktemp -d /tmp/hull-bench.XXXXXX)
trap '"$hull" --root "$work/root" ps -a -q --no-trunc | xargs -r "$hull" --root "$work/root" rm -f >/dev/null; rm -rf "$work"' EXIT
./scripts/mkrootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -c . | "$hull" --root "$work/root" import - busybox >/dev/null
id=$("$hull" --root "$work/root" create --network none busybox true)
mkdir -p "$work/bundle"
cp -a "$work/rootfs" "$work/bundle/rootfs"
python3 - "$work/root/containers/$id/config.json" "$work/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["root"]["path"] = "rootfs"; json.dump(c, open(sys.argv[2], "w"))
PY
python3 - "$n" "$hull" "$runtime" "$work" <<'PY'
import statistics, subprocess, sys, time
n, hull, runtime, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def median(cmd):
    for _ in range(5):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)
h = median([hull, "--root", f"{work}/root", "run", "--rm", "--network", "none", "busybox", "true"])
r = median([runtime, "--root", f"{work}/rt", "run", "--bundle", f"{work}/bundle", "bench"])
print(f"hull run --rm --network none busybox true   median {h:.1f} ms")
print(f"hull-runtime run, same config.json          median {r:.1f} ms")
print(f"ratio {h / r:.2f}")
PY
ctr=$("$hull" --root "$work/root" run -d --network none busybox sleep 60)
sleep 0.3
monitor=$("$hull" --root "$work/root" inspect "$ctr" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["MonitorPid"])')
grep -E 'VmRSS|RssAnon|RssFile' "/proc/$monitor/status" | sed 's/^/monitor /'
