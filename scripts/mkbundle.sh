#!/usr/bin/env bash
# Makes an OCI bundle at $1 whose root file system is Debian's busybox-static, with the default
# config of `hull-runtime spec` (terminal off) running the remaining arguments.
set -euo pipefail
bundle=$1; shift
runtime=${HULL_RUNTIME:-target/release/hull-runtime}
mkdir -p "$bundle/rootfs/bin"
for d in dev proc sys etc tmp root; do mkdir -p "$bundle/rootfs/$d"; done
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$bundle/rootfs/etc/passwd"
echo 'root:x:0:' > "$bundle/rootfs/etc/group"
rm -f "$bundle/config.json"
"$runtime" spec --bundle "$bundle"
args=$(printf '%s\n' "${@:-sh}" | python3 -c 'import json,sys; print(json.dumps([l.rstrip("\n") for l in sys.stdin]))')
python3 - "$bundle/config.json" "$args" <<'PY'
import json, sys
path, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
