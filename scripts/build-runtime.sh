#!/usr/bin/env bash
# Builds target/release/hull-runtime as a static, position-dependent executable: no dynamic
# loader, no relocations at start, and only the libc code it uses. That is what makes the
# runtime start faster and smaller than crun (benches/lifecycle.sh); `cargo build --release`
# makes a working dynamic one.
set -euo pipefail
exec "$(dirname "$0")/build-static.sh" hull-runtime hull-runtime
