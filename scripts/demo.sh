#!/usr/bin/env bash
# Installs what is missing, builds hull-runtime, makes a busybox bundle and runs it with hull-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build-runtime.sh
bundle=$(mktemp -d /tmp/hull-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
./scripts/mkbundle.sh "$bundle" sh -c 'echo "hello from $(hostname), pid $$, in $(cat /proc/self/cgroup | head -1)"; id'
target/release/hull-runtime run --bundle "$bundle" "hull-demo-$$"
