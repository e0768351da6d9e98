#!/bin/busybox sh
# PID 1 of the test guest: mounts the cgroup layout named by hull.layout= on the kernel command line
# (unified: pure cgroup2; hybrid: v1 controllers + cgroup2 at /sys/fs/cgroup/unified holding what v1
# does not, i.e. hugetlb; legacy: v1 only), runs every test binary and reports over the serial port.
/bin/busybox --install -s /bin
export PATH=/bin HOME=/ HULL_CGTEST_OWN_HOST=1 RUST_BACKTRACE=1 HULL_ALLOWED_SKIPS=/allowed-skips.txt
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for ko in /lib/*.ko; do insmod "$ko" 2>/dev/null; done
layout=$(sed -n 's/.*hull\.layout=\([a-z]*\).*/\1/p' /proc/cmdline)
# run.sh's strictness: under HULL_STRICT=1 a skip not in the allow-list fails its test.
export HULL_STRICT=$(sed -n 's/.*hull\.strict=\([01]\).*/\1/p' /proc/cmdline)
v1() {
  mount -t tmpfs cgroup /sys/fs/cgroup
  for c in cpu,cpuacct cpuset memory devices freezer blkio pids "$@"; do
    mkdir -p /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
  done
}
case $layout in
  # The tests run from a non-root cgroup, as a runtime started by a service manager would.
  unified) mount -t cgroup2 cgroup2 /sys/fs/cgroup
    mkdir /sys/fs/cgroup/hull-runner.scope
    echo $$ > /sys/fs/cgroup/hull-runner.scope/cgroup.procs ;;
  hybrid) v1; mkdir -p /sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified ;;
  legacy) v1 hugetlb ;;
esac
echo 8 > /proc/sys/vm/nr_hugepages
echo "HULL-LAYOUT $layout"
echo "HULL-STRICT ${HULL_STRICT:-0}"
grep cgroup /proc/self/mountinfo
cd /tmp
for t in /tests/*; do
  echo "HULL-TEST-BEGIN ${t##*/}"
  $t --test-threads=1 --nocapture 2>&1
  echo "HULL-TEST-END ${t##*/} rc=$?"
done
echo HULL-DONE
poweroff -f
