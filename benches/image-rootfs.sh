#!/usr/bin/env bash
# Root filesystem setup of a container of a 10-layer image (upper/work dirs + overlay mount
# ready): median milliseconds; and disk used by 50 such containers vs 1.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/benches/lib/common.sh"
need python3 bc
RUNS=${RUNS:-30}
build_hull "$TOP"
HULL=$TOP/target/release/hull
ROOTFS=$TOP/target/release/examples/rootfs
WORK=$(mktemp -d /var/tmp/hull-bench-rootfs.XXXXXX)
PID=
cleanup() {
    [ -n "$PID" ] && { echo >&3 || true; wait "$PID" 2>/dev/null || true; }
    { grep -o " $WORK[^ ]*" /proc/self/mountinfo || true; } | while read -r m; do umount "$m" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
python3 "$TOP/benches/lib/make-layout.py" "$WORK/layout" 10 8
"$HULL" --root "$WORK/root" load -q -i "$WORK/layout" --name bench/ten:1
mkdir -p "$WORK/c"
out=$("$ROOTFS" "$WORK/root" bench/ten:1 "$RUNS" "$WORK/c" remove)
echo "rootfs setup, 10 layers, $RUNS containers: $(echo "$out" | tr '\n' ' ')"

disk() { # containers -> bytes used by store + container dirs, while mounted
    local n=$1 used
    rm -f "$WORK/ctl"; mkfifo "$WORK/ctl"
    "$ROOTFS" "$WORK/root" bench/ten:1 "$n" "$WORK/c" keep <"$WORK/ctl" >"$WORK/out.$n" &
    PID=$!
    exec 3>"$WORK/ctl"
    until grep -qs mounted "$WORK/out.$n"; do sleep 0.05; done
    used=$(du -sxB1 "$WORK/root" "$WORK/c" | awk '{s+=$1} END {print s}')
    echo >&3; exec 3>&-; wait "$PID"; PID=
    echo "$used"
}
image=$(du -sxB1 "$WORK/root" | cut -f1)
one=$(disk 1)
fifty=$(disk 50)
echo "disk: image alone $image B, with 1 container $one B, with 50 containers $fifty B"
echo "50 containers cost $(echo "scale=3; ($fifty - $one) * 100 / $one" | bc -l)% more than 1 (target < 1%)"
