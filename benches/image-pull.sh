#!/usr/bin/env bash
# Pull a 10-layer image from a loopback docker-registry: `hull pull` (download, verify AND
# unpack every layer) vs `skopeo copy` to an OCI dir (download and verify only), and vs
# `podman pull` (download, verify and unpack, like hull) when podman is installed.
# Medians of $N runs, each into an empty destination; all three flush to disk.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/benches/lib/common.sh"
need docker-registry skopeo python3 bc
N=${N:-5}
LAYERS=${LAYERS:-10}
LAYER_MIB=${LAYER_MIB:-12}
build_hull "$TOP"
HULL=$TOP/target/release/hull
WORK=$(mktemp -d /var/tmp/hull-bench-pull.XXXXXX)
REG_PID=
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
    wait 2>/dev/null
    { grep -o " $WORK[^ ]*" /proc/self/mountinfo || true; } | while read -r m; do umount "$m" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
python3 "$TOP/benches/lib/make-layout.py" "$WORK/layout" "$LAYERS" "$LAYER_MIB"
start_registry "$WORK/reg"
REF=$REG_ADDR/bench/ten:1
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/layout:bench" "docker://$REF"
echo "image: $LAYERS layers, $(du -sm "$WORK/layout/blobs" | cut -f1) MiB compressed; $N runs each"
for _ in $(seq "$N"); do
    rm -rf "$WORK/hull-root" "$WORK/oci"; sync
    timeit "$HULL" --root "$WORK/hull-root" pull --insecure -q "$REF" >>"$WORK/t.hull"
    rm -rf "$WORK/hull-root" "$WORK/oci"; sync
    timeit skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$WORK/oci:bench" >>"$WORK/t.skopeo"
    if command -v podman >/dev/null; then
        P="podman --root $WORK/podman --runroot $WORK/podman-run --storage-driver overlay"
        $P rmi -a -f >/dev/null 2>&1 || true
        rm -rf "$WORK/podman" "$WORK/podman-run"; sync
        timeit $P pull -q --tls-verify=false "docker://$REF" >>"$WORK/t.podman"
        $P rmi -a -f >/dev/null 2>&1 || true
    fi
done
# Check the last pull really happened.
"$HULL" --root "$WORK/hull-root" pull --insecure -q "$REF" >/dev/null
test "$(ls "$WORK/hull-root/layers" | wc -l)" -eq "$LAYERS"
h=$(median <"$WORK/t.hull"); s=$(median <"$WORK/t.skopeo")
printf '%-44s %8s s\n' "hull pull (download+verify+unpack)" "$h" "skopeo copy docker:// oci: (download only)" "$s"
echo "ratio: hull / skopeo = $(ratio "$h" "$s")  (below 1 = hull faster)"
if [ -s "$WORK/t.podman" ]; then
    p=$(median <"$WORK/t.podman")
    printf '%-44s %8s s\n' "podman pull (download+verify+unpack)" "$p"
    echo "ratio: hull / podman = $(ratio "$h" "$p")"
fi
