#!/bin/busybox sh
# PID 1 of the L1 guest (qemu TCG, -cpu max): loads KVM from Debian's kernel, then boots the L2
# guest with `hull vm run` as many times as asked, and powers off. The harness (run.sh) reads the
# HULL-* lines on the console.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "HULL-L1-UP uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in irqbypass kvm kvm-amd; do
  insmod /lib/$m.ko || echo "HULL-L1-INSMOD-FAILED $m"
done
[ -c /dev/kvm ] || { echo "HULL-L1-NOKVM"; poweroff -f; }
boots=$(sed -n 's/.*hull\.boots=\([0-9]*\).*/\1/p' /proc/cmdline)
vcpus=$(sed -n 's/.*hull\.vcpus=\([0-9]*\).*/\1/p' /proc/cmdline)
i=0
while [ "$i" -lt "${boots:-1}" ]; do
  i=$((i + 1))
  echo "HULL-L2-START $i"
  # hull's stdin types into the guest's ttyS0: a line once the guest is up (its 8250 driver
  # clears the FIFO when it starts). The shell loop passes hull's output on and answers the
  # marker, without polling (forks are dear under TCG).
  rm -f /tmp/in
  mkfifo /tmp/in
  exec 3<>/tmp/in
  { /bin/hull vm run --kernel /l2/vmlinux --initrd /l2/initrd.gz --mem 256M --vcpus "${vcpus:-2}" \
      --stats --cmdline "$(cat /l2/cmdline)" <&3 2>&1
    echo "HULL-L2-RC $i $?"; } | while IFS= read -r line; do
    echo "$line"
    case "$line" in HULL-L2-MARKER*) echo "typed-into-ttyS0" >&3 ;; esac
  done
  exec 3>&-
done
# One command per VM through hull-guest: the root is the read-only ext4 disk under a tmpfs overlay.
agent() { /bin/hull vm run --kernel /l2/vmlinux --initrd /l2/guest.gz --disk /l2/root.img:ro \
  --mem 256M --vcpus "${vcpus:-2}" "$@"; }
echo "HULL-AGENT-START"
agent -- sh -c 'echo out; echo err >&2; exit 3' >/tmp/out 2>/tmp/err
echo "HULL-AGENT-RC $?"
echo "HULL-AGENT-OUT $(cat /tmp/out)"
echo "HULL-AGENT-ERR $(cat /tmp/err)"
# A write on the overlay of the read-only root, and one through a read-write second disk
# (/dev/vdb) that must reach its image file.
dd if=/dev/zero of=/tmp/data.img bs=1M count=1 2>/dev/null
# hull's stdin reaches the command with -i.
echo fed | agent -i --disk /tmp/data.img --stats -- sh -c \
  'echo written-on-ro-disk > /f && cat /f && echo persisted > /dev/vdb && read x && echo "stdin-$x" >&2' \
  >/tmp/out 2>/tmp/err
echo "HULL-AGENT-RW $(cat /tmp/out)"
echo "HULL-AGENT-DATA $(head -c 9 /tmp/data.img)"
echo "HULL-AGENT-STDIN $(grep '^stdin-' /tmp/err)"
grep '^hull vm:' /tmp/err
# SIGTERM to hull reaches the command (sleep, killed by it: 128 + 15).
rm -f /tmp/sig
agent -- sh -c 'echo ready; exec sleep 60' >/tmp/sig 2>&1 &
hpid=$!
n=0
while ! grep -q ready /tmp/sig 2>/dev/null && [ $n -lt 300 ]; do usleep 100000; n=$((n + 1)); done
kill -TERM $hpid
wait $hpid
echo "HULL-AGENT-SIGNAL-RC $?"
# The same L2 under qemu -M microvm on the same KVM, for comparison (when the harness put qemu in).
qboots=$(sed -n 's/.*hull\.qemu=\([0-9]*\).*/\1/p' /proc/cmdline)
i=0
while [ -x /usr/bin/qemu-system-x86_64 ] && [ "$i" -lt "${qboots:-0}" ]; do
  i=$((i + 1))
  echo "HULL-QEMU-START $i"
  qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 256 -smp "${vcpus:-2}" -nographic \
    -no-reboot -nodefaults -serial stdio -kernel /l2/vmlinux -initrd /l2/initrd.gz \
    -append "$(sed 's/reboot=k/reboot=t/' /l2/cmdline)" 2>&1
  echo "HULL-QEMU-RC $i $?"
done
echo "HULL-L1-DONE"
poweroff -f
