#!/usr/bin/env bash
# Builds target/release/hull-runtime as a static, position-dependent executable: no dynamic
# loader, no relocations at start, and only the libc code it uses. That is what makes the
# runtime start faster and smaller than crun (benches/lifecycle.sh); `cargo build --release`
# makes a working dynamic one.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo rustc --release -q -p hull-runtime --bin hull-runtime -- \
  -C target-feature=+crt-static -C relocation-model=static
