#!/bin/busybox sh
# In the qemu guest of run.sh, beside the hull-cgroups tests: `hull run` with the resource flags,
# end to end (CLI parsing, the engine's config.json, the runtime, hull-cgroups), and the files
# the kernel shows for the container's cgroup under this guest's layout (v2 files on unified, v1
# files on hybrid and legacy). Prints test lines as cargo's harness does; exits non-zero on a
# failure. Ignores the harness arguments init.sh passes (--test-threads=1 --nocapture).
if [ -z "${HULL_ROOTED:-}" ]; then
  # pivot_root cannot leave the initramfs (rootfs), which is this guest's root: the check runs on
  # a tmpfs root moved over / in a mount namespace of its own, as switch_root makes one.
  mkdir -p /newroot
  mount -t tmpfs -o size=512m newroot /newroot
  for d in bin lib lib64 usr etc hull tests; do [ ! -e /$d ] || cp -a /$d /newroot/; done
  for d in proc sys dev; do mkdir -p /newroot/$d && mount --rbind /$d /newroot/$d; done
  mkdir -p /newroot/tmp
  exec unshare -m sh -c 'cd /newroot && mount --move . / && exec chroot . env HULL_ROOTED=1 /tests/hull-run-flags'
fi
export HULL_ROOT=/tmp/hull-run-flags
failures=0
fail() {
  echo "FAILED: $*"
  failures=$((failures + 1))
}
hull() { /hull/hull --root "$HULL_ROOT" "$@"; }

# $1 file of the container's cgroup, $2 what it must hold (a line of it, for multi-line files).
expect() {
  if [ ! -e "$1" ]; then
    fail "$1 missing"
  elif ! grep -qxF -- "$2" "$1"; then
    fail "$1 holds '$(cat "$1")', not '$2'"
  fi
}

# The directory of process $pid's cgroup for controller $1 (v1), else its v2 cgroup.
cg_dir() {
  line=$(grep -E "^[0-9]+:([^:]*,)?$1(,[^:]*)?:" "/proc/$pid/cgroup")
  if [ -n "$line" ]; then
    echo "/sys/fs/cgroup/$(echo "$line" | cut -d: -f2)$(echo "$line" | cut -d: -f3-)"
  else
    echo "/sys/fs/cgroup$(grep '^0::' "/proc/$pid/cgroup" | cut -d: -f3-)"
  fi
}

echo "test hull_run_resource_flags ..."
hull import /hull/busybox.tar busybox >/dev/null || fail "import"
dev=/dev/loop0
devnum=$(printf '%d:%d' "0x$(stat -c %t $dev)" "0x$(stat -c %T $dev)")
id=$(hull run -d --network none --memory 64m --memory-swap 96m --cpus 0.5 --cpu-shares 1024 \
  --cpuset-cpus 0 --pids-limit 42 --device-read-bps $dev:1mb --device-write-bps $dev:2mb \
  busybox sleep 4242) || fail "hull run"
# Its process, found by its command line (`inspect` reads nft, which this guest lacks).
pid=
for p in /proc/[0-9]*; do
  [ "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" != "sleep 4242 " ] || pid=${p#/proc/}
done
if [ -z "$pid" ]; then
  fail "no process for container '$id'"
  [ -z "$id" ] || hull ps -a | sed 's/^/FAILED: /'
elif grep -q '^0::' "/proc/$pid/cgroup" && ! grep -qE '^[1-9][0-9]*:[^:]*memory' "/proc/$pid/cgroup"; then
  echo "cgroup v2 files of $(cg_dir memory)"
  d=$(cg_dir memory)
  expect "$d/memory.max" 67108864
  # v2's swap limit is swap alone: --memory-swap is memory plus swap.
  expect "$d/memory.swap.max" 33554432
  expect "$d/cpu.max" "50000 100000"
  # runc's shares-to-weight mapping: 1 + (1024 - 2) * 9999 / 262142.
  expect "$d/cpu.weight" 39
  expect "$d/cpuset.cpus" 0
  expect "$d/pids.max" 42
  expect "$d/io.max" "$devnum rbps=1048576 wbps=2097152 riops=max wiops=max"
else
  echo "cgroup v1 files of $(cg_dir memory)"
  expect "$(cg_dir memory)/memory.limit_in_bytes" 67108864
  expect "$(cg_dir memory)/memory.memsw.limit_in_bytes" 100663296
  expect "$(cg_dir cpu)/cpu.cfs_quota_us" 50000
  expect "$(cg_dir cpu)/cpu.cfs_period_us" 100000
  expect "$(cg_dir cpu)/cpu.shares" 1024
  expect "$(cg_dir cpuset)/cpuset.cpus" 0
  expect "$(cg_dir pids)/pids.max" 42
  expect "$(cg_dir blkio)/blkio.throttle.read_bps_device" "$devnum 1048576"
  expect "$(cg_dir blkio)/blkio.throttle.write_bps_device" "$devnum 2097152"
fi
dirs=$([ -z "$pid" ] || for c in memory cpu pids; do cg_dir $c; done)
[ -z "$id" ] || hull rm -f "$id" >/dev/null || fail "hull rm -f"
for d in $dirs; do
  [ ! -d "$d" ] || fail "$d left after rm -f"
done
if [ $failures = 0 ]; then
  echo "test hull_run_resource_flags ... ok"
else
  echo "test hull_run_resource_flags ... FAILED"
fi
[ $failures = 0 ]
