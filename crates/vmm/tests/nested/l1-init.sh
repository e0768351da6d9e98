#!/bin/busybox sh
# PID 1 of the L1 guest (qemu TCG, -cpu max): loads KVM from Debian's kernel, then boots the L2
# guest with `hull vm run` (jailed, as by default) as many times as asked, and powers off. The
# harness (run.sh) reads the HULL-* lines on the console.
#   test mode: boot 1 inspects the VMM's jail at the L2 marker (namespaces, cgroup limits, /dev,
#   memory); one more boot is killed (-9) at its marker; then nothing of either may be left.
#   profile mode (hull.profile=1): one agent boot that prints the guest's kernel log, initcalls
#   timed.
#   bench mode (hull.bench=1): L2 resets at its marker; N boots each by jailed hull-vmm (PVH),
#   by hull-vmm --no-jail, by hull-vmm through the 64-bit boot protocol and by qemu -M microvm, then one of each held at the marker to measure the
#   VMM's memory.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# The engine (hull run) finds mkfs.erofs and qemu by PATH.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
# The jail's cgroup: cgroup v2 with the memory and pids controllers for children.
mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo "+memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
echo "HULL-L1-UP uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in irqbypass kvm kvm-amd; do
  insmod /lib/$m.ko || echo "HULL-L1-INSMOD-FAILED $m"
done
[ -c /dev/kvm ] || { echo "HULL-L1-NOKVM"; poweroff -f; }
arg() { sed -n "s/.*hull\.$1=\([0-9]*\).*/\1/p" /proc/cmdline; }
boots=$(arg boots)
vcpus=$(arg vcpus)
qboots=$(arg qemu)
bench=$(arg bench)
stdinmb=$(arg stdinmb)
engine=$(arg engine)
l2cmdline=$(cat /l2/cmdline)

# The pid of the process whose command line contains $1.
pid_of() {
  for p in /proc/[0-9]*; do
    case "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" in *"$1"*) echo "${p#/proc/}"; return ;; esac
  done
}
# RSS of pid $1 in KiB: all of it, the guest RAM mapping's (256 MiB, maybe rounded up), the rest.
mem_of() {
  awk '/^Size:/ { s = $2 } /^Rss:/ { t += $2; if (s >= 262144 && s < 266240) g += $2 }
    END { printf "rss_kb=%d guest_kb=%d overhead_kb=%d", t, g, t - g }' "/proc/$1/smaps"
}
# The jailed VMM seen from L1: the namespaces it shares with L1 (none expected), its cgroup's
# limits, the device nodes in its /dev, and its memory.
jail_check() {
  p=$(pid_of --in-jail)
  [ -n "$p" ] || { echo "HULL-L1-JAIL-NOVMM"; return; }
  for ns in pid mnt net ipc uts cgroup; do
    [ "$(readlink /proc/$p/ns/$ns)" != "$(readlink /proc/1/ns/$ns)" ] || echo "HULL-L1-JAIL-SHARED $ns"
  done
  cg=$(sed -n 's/^0:://p' /proc/$p/cgroup)
  devs=$(find /proc/$p/root/dev -type c -o -type b | sed "s|/proc/$p/root||" | tr '\n' ' ')
  echo "HULL-L1-JAIL memory.max=$(cat /sys/fs/cgroup$cg/memory.max) pids.max=$(cat /sys/fs/cgroup$cg/pids.max) devices=$devs"
  echo "HULL-MEM hull-vmm $(mem_of "$p")"
}

hull_vm() { # cmdline, extra flags...
  c=$1
  shift
  /bin/hull vm run --kernel /l2/vmlinux --initrd /l2/initrd.gz --mem 256M --vcpus "${vcpus:-2}" \
    --stats --cmdline "$c" "$@"
}
qemu_vm() { # cmdline
  qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 256 -smp "${vcpus:-2}" -nographic \
    -no-reboot -nodefaults -serial stdio -kernel /l2/vmlinux -initrd /l2/initrd.gz \
    -append "$(echo "$1" | sed 's/reboot=k/reboot=t/')"
}

# run_vm TAG I ACTION CMD...: one VM; its stdin types into the guest's ttyS0 (a line once the
# guest is up: its 8250 driver clears the FIFO when it starts). At the L2 marker, ACTION: type
# (the line), inspect (jail_check, then type), kill (-9 the jailed VMM), mem-qemu (measure, type),
# none. The loop passes the output on without polling (forks are dear under TCG).
run_vm() {
  tag=$1 i=$2 action=$3
  shift 3
  rm -f /tmp/in
  mkfifo /tmp/in
  exec 3<>/tmp/in
  echo "HULL-$tag-START $i"
  { "$@" <&3 2>&1; echo "HULL-$tag-RC $i $?"; } | while IFS= read -r line; do
    echo "$line"
    case "$line" in
    HULL-L2-MARKER*)
      case $action in
      type) echo "typed-into-ttyS0" >&3 ;;
      inspect) jail_check; echo "typed-into-ttyS0" >&3 ;;
      kill) kill -9 "$(pid_of --in-jail)" ;;
      mem-qemu) echo "HULL-MEM qemu $(mem_of "$(pid_of qemu-system)")"; echo "typed-into-ttyS0" >&3 ;;
      esac
      ;;
    esac
  done
  exec 3>&-
}

# The engine: `hull run --isolation vm` of a busybox image with hull-vmm, and with qemu on this
# KVM when the harness put qemu in. Foreground (stdout and stderr apart, the exit code);
# detached with --memory, logs and exec, a second VM of the image sharing the layer's erofs
# file, stop; then nothing left (VMM processes, cgroups, containers).
R=/tmp/hull-engine
h() { /bin/hull --root $R "$@"; }
# An engine root with a busybox image and the L2 kernel and hull-guest's initramfs as its VM's.
engine_setup() {
  mkdir -p /tmp/bb/bin $R/vm
  cp /bin/busybox /tmp/bb/bin/
  for a in sh echo cat sleep grep true; do ln -s busybox /tmp/bb/bin/$a; done
  (cd /tmp/bb && tar -c .) | h import - busybox >/dev/null
  ln -s /l2/vmlinux $R/vm/vmlinuz
  ln -s /l2/guest.gz $R/vm/initramfs.cpio.gz
}
# bench mode: `hull run --rm busybox true` as a container, with hull-vmm and with qemu on this
# KVM, N rounds interleaved after a warm-up round (the first VM run makes the layer's erofs).
engine_bench() {
  engine_setup
  # Containers need overlayfs, a module in Debian's kernel.
  insmod /lib/overlay.ko 2>/dev/null
  i=0
  while [ "$i" -le "${boots:-1}" ]; do
    for v in container hull qemu; do
      case $v in container) iso= ;; *) iso="--isolation vm --vmm $v" ;; esac
      echo "HULL-EBENCH-$v-START $i"
      h run --rm --network none $iso busybox true
      echo "HULL-EBENCH-$v-RC $i $?"
    done
    i=$((i + 1))
  done
}
# hull-runtime with a bundle annotated org.hull.isolation=vm: its keeper boots qemu on this
# KVM (the runtime's VM path; the keeper finds the guest kernel and initramfs by env).
runtime_check() {
  b=/tmp/rtb
  mkdir -p $b/rootfs && cp -a /tmp/bb/. $b/rootfs/
  (cd $b && hull-runtime spec) &&
    sed -i -e 's/"annotations": {}/"annotations": {"org.hull.isolation": "vm"}/' \
      -e 's/"terminal": true/"terminal": false/' \
      -e 's|^\( *\)"sh"$|\1"sh", "-c", "echo rt-out; echo rt-err >\&2; exit 6"|' \
      $b/config.json
  HULL_VM_KERNEL=/l2/vmlinux HULL_VM_INITRD=/l2/guest.gz \
    hull-runtime --root /run/hull-rt run -b $b rt1 >/tmp/rtout 2>/tmp/rterr </dev/null
  echo "HULL-ENGINE-RUNTIME $? $(cat /tmp/rtout) $(cat /tmp/rterr)"
  left="$(hull-runtime --root /run/hull-rt list -q) $(pid_of hull-vm-keeper) $(pid_of qemu-system)"
  if [ -z "$(echo $left)" ]; then echo "HULL-ENGINE-RUNTIME-CLEAN"; else echo "HULL-ENGINE-RUNTIME-LEFT $left" | tr '\n' ' '; echo; fi
}
engine_checks() {
  engine_setup
  for v in hull qemu; do
    [ $v = hull ] || [ -x /usr/bin/qemu-system-x86_64 ] || continue
    echo "HULL-ENGINE-START $v"
    h run --rm --isolation vm --vmm $v --network none busybox sh -c 'echo out; echo err >&2; exit 7' \
      >/tmp/out 2>/tmp/err
    echo "HULL-ENGINE-RC $v $?"
    echo "HULL-ENGINE-OUT $v $(cat /tmp/out)"
    echo "HULL-ENGINE-ERR $v $(cat /tmp/err)"
  done
  vm="--isolation vm --vmm hull --network none"
  h run -d --name e1 $vm --memory 200m busybox sh -c 'echo started; exec sleep 300' >/dev/null
  h run -d --name e2 $vm busybox sh -c 'echo started; exec sleep 300' >/dev/null
  for c in e1 e2; do
    n=0
    while ! h logs $c 2>/dev/null | grep -q started && [ $n -lt 600 ]; do usleep 200000; n=$((n + 1)); done
  done
  echo "HULL-ENGINE-LOGS $(h logs e1 | tr '\n' ' ')"
  out=$(h exec e1 sh -c 'echo exec-out; exit 5')
  echo "HULL-ENGINE-EXEC $out $?"
  echo "HULL-ENGINE-MEMTOTAL $(h exec e1 grep MemTotal /proc/meminfo | tr -s ' ')"
  # The kernel view of a hull-vmm VM: its vCPU threads and KVM's exit counters (debugfs).
  grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs none /sys/kernel/debug
  kview=$(h inspect --kernel e1)
  echo "HULL-ENGINE-KVIEW exits=$(echo "$kview" | grep -c '^ *vm exits (kvm): .*exits [1-9]') vcpus=$(echo "$kview" | grep -c '^ *vcpu thread [0-9]* (hull-vcpu')"
  # Each VMM's open erofs files: the same ones (one file per layer, shared).
  for f in $R/containers/*/vm/vmm.pid; do
    p=$(cut -d' ' -f1 "$f")
    echo "HULL-ENGINE-DISKS $(ls -l /proc/$p/fd | grep -o '/[^ ]*erofs[^ ]*' | sort -u | tr '\n' ' ')"
    echo "HULL-ENGINE-CGROUP $(cat /sys/fs/cgroup$(sed -n 's/^0:://p' /proc/$p/cgroup)/memory.max)"
  done
  # kill -9 of e2's monitor takes its VMM along.
  m=$(h inspect e2 | sed -n 's/.*"MonitorPid": *\([0-9]*\).*/\1/p')
  v=$(cut -d' ' -f1 $R/containers/*/vm/vmm.pid | while read -r p; do
    [ "$(sed -n 's/^PPid:\t*//p' /proc/$p/status 2>/dev/null)" = "$m" ] && echo "$p"; done)
  kill -9 "$m"
  # Gone, or a zombie (reaped at any moment: checked again after).
  dead() { [ ! -e "/proc/$1" ] || grep -qs '^State:.*Z' "/proc/$1/status" || [ ! -e "/proc/$1" ]; }
  n=0
  while [ -n "$v" ] && ! dead "$v" && [ $n -lt 300 ]; do usleep 100000; n=$((n + 1)); done
  if [ -n "$v" ] && dead "$v"; then
    echo "HULL-ENGINE-KILLED $(h inspect e2 | sed -n 's/.*"Status": *"\([a-z]*\)".*/\1/p')"
  fi
  runtime_check
  h stop -t 5 e1 >/dev/null
  echo "HULL-ENGINE-STOP $?"
  h rm e1 e2 >/dev/null
  left="$(pid_of hull-vmm) $(pid_of qemu-system) $(ls -d /sys/fs/cgroup/hull-* 2>/dev/null) $(ls -A $R/containers)"
  if [ -z "$(echo $left)" ]; then echo "HULL-ENGINE-CLEAN"; else echo "HULL-ENGINE-LEFT $left" | tr '\n' ' '; echo; fi
}

# What jails leave: bundles, runtime state, cgroups.
leftovers() {
  left=$(ls -A /var/lib/hull/vm/bundles 2>/dev/null; ls -A /var/lib/hull/vm/runtime 2>/dev/null
    ls -A /var/lib/hull/vm/api 2>/dev/null
    ls -d /sys/fs/cgroup/hull-vm-* 2>/dev/null)
  if [ -z "$left" ]; then echo "HULL-L1-JAIL-CLEAN"; else echo "HULL-L1-JAIL-LEFT $left" | tr '\n' ' '; echo; fi
}

if [ "$(arg engineonly)" = 1 ]; then
  engine_checks
  echo "HULL-L1-DONE"
  poweroff -f
fi
if [ "$(arg profile)" = 1 ]; then
  # One agent boot with every initcall timed; the guest's kernel log comes back through the
  # agent (on the serial console each byte would cost an exit and skew the times).
  /bin/hull vm run --kernel /l2/vmlinux --initrd /l2/guest.gz --disk /l2/root.img:ro --mem 256M \
    --vcpus "${vcpus:-2}" --stats --cmdline "$l2cmdline initcall_debug printk.time=1 log_buf_len=4M" \
    -- busybox dmesg 2>&1 | sed 's/^/HULL-PROFILE /'
  echo "HULL-L1-DONE"
  poweroff -f
fi
if [ "${bench:-0}" = 1 ]; then
  b="$l2cmdline hull.bench=1"
  i=0
  while [ "$i" -lt "${boots:-1}" ]; do
    i=$((i + 1))
    run_vm BENCH-hull-vmm "$i" none hull_vm "$b"
    run_vm BENCH-hull-vmm-nojail "$i" none hull_vm "$b" --no-jail
    run_vm BENCH-hull-vmm-linux64 "$i" none hull_vm "$b" --boot-protocol linux64
    [ -x /usr/bin/qemu-system-x86_64 ] && run_vm BENCH-qemu-microvm "$i" none qemu_vm "$b"
  done
  [ "${engine:-0}" = 1 ] && engine_bench
  run_vm MEM-hull 1 inspect hull_vm "$l2cmdline"
  [ -x /usr/bin/qemu-system-x86_64 ] && run_vm MEM-qemu 1 mem-qemu qemu_vm "$l2cmdline"
else
  i=0
  while [ "$i" -lt "${boots:-1}" ]; do
    i=$((i + 1))
    if [ "$i" = 1 ]; then action=inspect; else action=type; fi
    run_vm L2 "$i" "$action" hull_vm "$l2cmdline"
  done
  if [ "${boots:-1}" -gt 0 ]; then
    run_vm L2KILL 1 kill hull_vm "$l2cmdline"
  fi
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
  # With one capability of all, no_new_privs and a limit (--cap-drop, --cap-add, --security-opt,
  # --ulimit).
  echo fed | agent -i --disk /tmp/data.img --stats --cap-drop ALL --cap-add NET_BIND_SERVICE \
    --security-opt no-new-privileges --ulimit nofile=77:88 -- sh -c \
    'echo written-on-ro-disk > /f && cat /f && echo persisted > /dev/vdb && read x && echo "stdin-$x" >&2 &&
     grep -E "^(CapEff|NoNewPrivs)" /proc/self/status >&2 && echo "nofile-$(ulimit -n)-$(ulimit -Hn)" >&2' \
    >/tmp/out 2>/tmp/err
  echo "HULL-AGENT-RW $(cat /tmp/out)"
  echo "HULL-AGENT-DATA $(head -c 9 /tmp/data.img)"
  echo "HULL-AGENT-STDIN $(grep '^stdin-' /tmp/err)"
  echo "HULL-AGENT-CAPS $(grep -E '^(CapEff|NoNewPrivs)' /tmp/err | tr -d '\t' | tr '\n' ' ')"
  echo "HULL-AGENT-ULIMIT $(grep '^nofile-' /tmp/err)"
  grep '^hull vm:' /tmp/err
  # SIGTERM to hull reaches the command (sleep, killed by it: 128 + 15). Before that, the VM
  # (named) runs more processes through `hull vm exec`.
  rm -f /tmp/sig
  # Not through the function: a backgrounded function is a subshell, whose pid $! would be.
  /bin/hull vm run --name t1 --kernel /l2/vmlinux --initrd /l2/guest.gz --disk /l2/root.img:ro \
    --mem 256M --vcpus "${vcpus:-2}" -- sh -c 'echo ready; exec sleep 3600' >/tmp/sig 2>&1 &
  hpid=$!
  n=0
  while ! grep -q ready /tmp/sig 2>/dev/null && [ $n -lt 300 ]; do usleep 100000; n=$((n + 1)); done
  /bin/hull vm exec t1 sh -c 'echo exec-out; echo exec-err >&2; exit 4' >/tmp/out 2>/tmp/err
  echo "HULL-EXEC-RC $?"
  echo "HULL-EXEC-OUT $(cat /tmp/out)"
  echo "HULL-EXEC-ERR $(cat /tmp/err)"
  echo "HULL-EXEC-USER $(/bin/hull vm exec -u nobody t1 sh -c 'echo $(id -u):$(id -g)' 2>&1)"
  # SIGTERM to `hull vm exec` reaches its process; a second VM of the same name is refused.
  /bin/hull vm exec t1 sh -c 'echo up; exec sleep 300' >/tmp/esig 2>&1 &
  epid=$!
  n=0
  while ! grep -q up /tmp/esig 2>/dev/null && [ $n -lt 300 ]; do usleep 100000; n=$((n + 1)); done
  kill -TERM $epid
  wait $epid
  echo "HULL-EXEC-SIGNAL-RC $?"
  /bin/hull vm run --name t1 --kernel /l2/vmlinux --initrd /l2/guest.gz -- true 2>/tmp/err
  echo "HULL-EXEC-DUPNAME $? $(cat /tmp/err)"
  # Stdin of many windows (16 MB by default) through the VMM arrives whole, and the VMM's memory
  # does not grow with it.
  head -c "$(( ${stdinmb:-16} * 1000000 ))" /dev/urandom > /tmp/big
  want=$(sha256sum < /tmp/big | cut -d' ' -f1)
  vmm=$(pid_of --in-jail)
  echo "HULL-EXEC-MEM-BEFORE $(mem_of "$vmm") $(grep VmHWM /proc/$vmm/status | tr -s ' \t' ' ')"
  s=$(cut -d' ' -f1 /proc/uptime)
  got=$(/bin/hull vm exec -i t1 sha256sum < /tmp/big | cut -d' ' -f1)
  echo "HULL-EXEC-STDIN-TIME $s $(cut -d' ' -f1 /proc/uptime)"
  echo "HULL-EXEC-MEM-AFTER $(mem_of "$vmm") $(grep VmHWM /proc/$vmm/status | tr -s ' \t' ' ')"
  if [ "$got" = "$want" ]; then echo "HULL-EXEC-STDIN intact"; else echo "HULL-EXEC-STDIN differs $got $want"; fi
  # A VMM killed by its seccomp filter is in the kernel's audit log: which system call.
  dmesg | grep -o 'type=1326.*syscall=[0-9]*' | sed 's/^/HULL-SECCOMP-KILL /'

  rm -f /tmp/big
  kill -TERM $hpid
  wait $hpid
  echo "HULL-AGENT-SIGNAL-RC $?"
  if [ "${boots:-1}" -gt 0 ]; then
    leftovers
  fi
  [ "${engine:-0}" = 1 ] && engine_checks
  # The same L2 under qemu -M microvm on the same KVM, for comparison (when the harness put qemu in).
  i=0
  while [ -x /usr/bin/qemu-system-x86_64 ] && [ "$i" -lt "${qboots:-0}" ]; do
    i=$((i + 1))
    run_vm QEMU "$i" type qemu_vm "$l2cmdline"
  done
fi
echo "HULL-L1-DONE"
poweroff -f
