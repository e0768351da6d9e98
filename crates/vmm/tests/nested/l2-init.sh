#!/bin/busybox sh
# PID 1 of the L2 guest (booted by hull-vmm inside L1): says it is up, with how many CPUs and the
# guest's uptime (and, with hull.bench=1, resets at once); echoes a line the host types into ttyS0; loads virtio-mmio + virtio-console (modules in Debian's 6.1) and writes to
# hvc0, the virtio console hull-vmm announces in its DSDT; and resets the VM, which ends
# `hull vm run`.
bb=/bin/busybox
$bb mount -t proc proc /proc
echo "HULL-L2-MARKER cpus=$($bb grep -c ^processor /proc/cpuinfo) uptime=$($bb cut -d' ' -f1 /proc/uptime)"
# Benchmark mode: init reached, end the VM at once (`hull vm run ... true`).
case "$($bb cat /proc/cmdline)" in *hull.bench=1*) $bb reboot -f ;; esac
# What the host typed into hull's stdin, through COM1's receive side.
read -t 30 line && echo "HULL-L2-STDIN $line"
$bb mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_mmio virtio_console; do
  $bb insmod /lib/$m.ko 2>/dev/null
done
i=0
while [ ! -c /dev/hvc0 ] && [ $i -lt 20 ]; do $bb usleep 100000; i=$((i + 1)); done
[ -c /dev/hvc0 ] && echo "HULL-L2-HVC virtio console up" > /dev/hvc0
$bb reboot -f
