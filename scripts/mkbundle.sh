#!/usr/bin/env bash
# Makes an OCI bundle at $1 whose root file system is Debian's busybox-static, with the default
# config of `hull-runtime spec` (terminal off) running the remaining arguments.
set -euo pipefail
bundle=$1; shift
runtime=${HULL_RUNTIME:-target/release/hull-runtime}
"$(dirname "$0")/mkrootfs.sh" "$bundle/rootfs"
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
