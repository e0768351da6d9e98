#!/usr/bin/env bash
# Unpack one 200+ MiB layer: hull's safe unpacker (openat2-confined, diff id hashed) vs
# GNU tar -x of the same file, plain and gzip. Warm page cache, medians of $N runs.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/benches/lib/common.sh"
need tar gzip python3 bc
N=${N:-5}
SIZE_MIB=${SIZE_MIB:-220}
build_hull "$TOP"
UNPACK=$TOP/target/release/examples/unpack
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/hull-bench-unpack.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
files=$(python3 "$TOP/benches/lib/make-tree.py" "$WORK/tree" "$SIZE_MIB")
tar -C "$WORK/tree" -cf "$WORK/layer.tar" .
gzip -1 -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"
rm -rf "$WORK/tree"
echo "layer: $files files, $(du -m "$WORK/layer.tar" | cut -f1) MiB tar, $(du -m "$WORK/layer.tar.gz" | cut -f1) MiB gzip; $N runs each"

run() { # name cmd...
    local f=$WORK/times.$1; shift
    rm -rf "$WORK/out"; mkdir "$WORK/out"; sync
    timeit "$@" >>"$f"
}
for _ in $(seq "$N"); do
    run hull_tar "$UNPACK" "$WORK/layer.tar" "$WORK/out"
    run gnu_tar tar -xf "$WORK/layer.tar" -C "$WORK/out"
    run hull_gz "$UNPACK" "$WORK/layer.tar.gz" "$WORK/out"
    run gnu_gz tar -xzf "$WORK/layer.tar.gz" -C "$WORK/out"
done
rm -rf "$WORK/out"
for k in hull_tar gnu_tar hull_gz gnu_gz; do eval "m_$k=$(median <"$WORK/times.$k")"; done
printf '%-28s %8s s\n' "hull unpack (tar)" "$m_hull_tar" "GNU tar -x (tar)" "$m_gnu_tar" \
    "hull unpack (tar.gz)" "$m_hull_gz" "GNU tar -xz (tar.gz)" "$m_gnu_gz"
echo "ratio tar:    hull / GNU tar = $(ratio "$m_hull_tar" "$m_gnu_tar")  (below 1 = hull faster)"
echo "ratio tar.gz: hull / GNU tar = $(ratio "$m_hull_gz" "$m_gnu_gz")"
