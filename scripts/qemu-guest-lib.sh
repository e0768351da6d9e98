# Shared by the qemu test harnesses (crates/cgroups/tests/qemu, crates/vmm/tests/nested): sourced
# from the repository root, not run.

# Strict (HULL_STRICT set and not 0, or CI=true): what would be a skip fails the run.
strict=0
case ${HULL_STRICT:-0} in 0 | "") ;; *) strict=1 ;; esac
[ "${CI:-}" != true ] || strict=1
skip() {
  if [ $strict = 1 ]; then echo "FAIL: $1 (a skip fails under HULL_STRICT=1 or CI=true)"; exit 1; fi
  echo "SKIP: $1"; exit 0
}

# Debian's cloud kernel package, unpacked once into a cache ($HULL_QEMU_CACHE, default
# /var/cache/hull-qemu). Sets `cache` (the cache dir) and `vmlinuz` (its bzImage).
debian_cloud_kernel() {
  cache=${HULL_QEMU_CACHE:-/var/cache/hull-qemu}
  mkdir -p "$cache"
  vmlinuz=$(ls "$cache"/x/boot/vmlinuz-* 2>/dev/null | head -1 || true)
  if [ -z "$vmlinuz" ]; then
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$pkg" ] || skip "no linux-image-cloud-amd64 in apt's lists (apt-get update)"
    (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) || skip "apt-get download $pkg failed"
    dpkg-deb -x "$cache"/"$pkg"_*.deb "$cache/x"
    vmlinuz=$(ls "$cache"/x/boot/vmlinuz-* | head -1)
  fi
}

# Copies the shared libraries BIN links (and the dynamic loader) into ROOT, at the paths the
# loader expects.
copy_libs() { # BIN ROOT
  ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$2$(dirname "$lib")"
    cp -L "$lib" "$2$lib"
  done
}
