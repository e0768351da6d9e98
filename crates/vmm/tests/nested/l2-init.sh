#!/bin/busybox sh
# PID 1 of the L2 guest (booted by hull-vmm inside L1): says it is up, with how many CPUs and the
# guest's uptime, and resets the VM, which ends `hull vm run`.
/bin/busybox mount -t proc proc /proc
echo "HULL-L2-MARKER cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo) uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime)"
/bin/busybox reboot -f
