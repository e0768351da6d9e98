#!/usr/bin/env bash
# The nested test bed of hull-vmm. This host's /dev/kvm is kvm-pvm, which boots no stock kernel; so
# an L1 qemu TCG guest (-cpu max: emulated AMD SVM with nested paging) loads kvm/kvm_amd from
# Debian's cloud kernel, and in it `hull vm run` boots the same kernel (L2, its ELF vmlinux) with a
# tiny initramfs whose /init prints a marker, echoes a line typed into `hull vm run`'s stdin,
# writes to the virtio console (virtio-mmio, announced
# in hull-vmm's ACPI DSDT) and resets the VM. The L1 console is checked for the marker and the
# hvc0 line of every L2 boot and `hull vm run`'s exit code; the first boot's jail is inspected
# from L1 (own namespaces, cgroup limits, /dev/kvm the only device) and one more boot is killed
# (-9) at its marker, after which nothing of any jail may be left. 
# HULL_NESTED_MODE=bench (benches/vm-boot.sh) instead times N boots each of jailed hull-vmm,
# hull-vmm --no-jail and qemu -M microvm to the L2's init, which resets at once, and measures
# the VMMs' memory beyond guest RAM; it prints medians and ratios, and checks nothing.
# Then the engine (HULL_NESTED_ENGINE=0 leaves it out; HULL_NESTED_MODE=engine runs only it):
# `hull run --isolation vm` of a busybox image with hull-vmm and with qemu on L1's KVM, stdout
# and stderr apart and the exit code; with hull-vmm detached with --memory, logs, exec, a second
# VM sharing the layer's erofs file, the VMMs' cgroups, a monitor killed (-9) taking its VMM
# along, stop, and nothing left (l1-init.sh's engine_checks). In bench mode, the same L1 also
# times `hull run --rm busybox true` as a container and as a VM of either VMM.
# HULL_NESTED_MODE=profile boots one agent VM with every initcall timed and prints where the
# guest kernel's time went (profile-report.py), from its log read through the agent.
# Then `hull vm run --disk root.img:ro -- CMD` runs commands through hull-guest, jailed (stdout
# and stderr apart, exit code, stdin with -i, a forwarded signal, a write on the overlay, a write
# through a read-write disk), and `hull vm exec` into a VM run with --name (output apart, exit
# code, -u by name, 50 MB of stdin intact without the VMM's memory growing), and the engine's
# `hull run --isolation vm` with both VMMs and `hull-runtime run` of a bundle annotated
# org.hull.isolation=vm (l1-init.sh engine_checks, runtime_check). A silent L1 (TCG
# freezes) is retried once.
# Needs root; installs qemu-system-x86, busybox-static and lz4 through apt when missing.
# Strict (HULL_STRICT set and not 0, or CI=true): what would be a skip fails the run.
# usage: crates/vmm/tests/nested/run.sh    env: HULL_NESTED_BOOTS (3), HULL_NESTED_VCPUS (2),
#        HULL_NESTED_TIMEOUT (s, 600), HULL_NESTED_PROFILE (debug|release),
#        HULL_NESTED_L2_CMDLINE, HULL_NESTED_QEMU (qemu -M microvm boots to compare, 0),
#        HULL_NESTED_KERNEL (vmlinux|bzimage), HULL_QEMU_KEEP_LOGS, HULL_NESTED_MODE
#        (test|bench|profile|engine), HULL_NESTED_ENGINE (1), HULL_NESTED_STDIN_MB (16: the stdin through hull vm exec -i)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../../.."
mode=${HULL_NESTED_MODE:-test}
case $mode in test | bench | profile | engine) ;; *) echo "HULL_NESTED_MODE: test, bench, profile or engine, not $mode"; exit 2 ;; esac
bench=0
[ "$mode" != bench ] || bench=1
profiling=0
[ "$mode" != profile ] || profiling=1
boots=${HULL_NESTED_BOOTS:-3}
vcpus=${HULL_NESTED_VCPUS:-2}
limit=${HULL_NESTED_TIMEOUT:-600}
if [ $mode != test ]; then profile=${HULL_NESTED_PROFILE:-release}; else profile=${HULL_NESTED_PROFILE:-debug}; fi

# strict, skip, debian_cloud_kernel, copy_libs.
. scripts/qemu-guest-lib.sh

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v lz4 >/dev/null || need+=(lz4)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null 2>&1; } ||
    skip "cannot install ${need[*]} with apt-get"
fi

# Debian's cloud kernel, unpacked once into the cache crates/cgroups/tests/qemu/run.sh shares.
debian_cloud_kernel
release=${vmlinuz##*/vmlinuz-}
mods=$cache/x/lib/modules/$release/kernel

# The ELF vmlinux inside the bzImage, found as scripts/extract-vmlinux does: try each compressed
# stream's magic until one decompresses to an ELF file.
vmlinux=$cache/vmlinux-$release
is_elf() { [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = 177ELF ]; }
try_decompress() { # magic, tr-replacement, decompressor
  local pos
  for pos in $(tr "$1\n$2" "\n$2=" < "$vmlinuz" | grep -abo "^$2" | cut -d: -f1); do
    tail -c+"$pos" "$vmlinuz" | $3 > "$vmlinux.tmp" 2>/dev/null || true
    if is_elf "$vmlinux.tmp"; then mv "$vmlinux.tmp" "$vmlinux"; return 0; fi
  done
  rm -f "$vmlinux.tmp"
  return 1
}
if [ ! -s "$vmlinux" ]; then
  try_decompress '\002!L\030' xxx 'lz4 -dc' || try_decompress '\037\213\010' xy 'gunzip -c' ||
    try_decompress '\3757zXZ\000' abcde 'xz -dc' || try_decompress '(\265/\375' xxx 'zstd -dc' ||
    skip "cannot extract vmlinux from $vmlinuz"
fi

# hull as cargo builds it, with the shared libraries it links (libnftables has no static build).
if [ "$profile" = release ]; then
  cargo build -q --release -p hull -p hull-runtime
else
  cargo build -q -p hull -p hull-runtime
fi
hull=${CARGO_TARGET_DIR:-target}/$profile/hull
[ -x "$hull" ] && [ -x "$hull-vmm" ] || { echo "FAIL: cargo built no $hull or $hull-vmm"; exit 1; }

work=$(mktemp -d /tmp/hull-vmm-nested.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The agent runs: hull-guest's initramfs (built and cached by its script) and a root disk, an
# ext4 image with busybox that the test makes.
guest_initrd=$(scripts/build-guest-initramfs.sh | tail -1)
[ -s "$guest_initrd" ] || { echo "FAIL: no guest initramfs"; exit 1; }
disk=$work/disk
mkdir -p "$disk"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$disk/bin/"
for a in sh echo cat sleep true false ls id sha256sum grep; do ln -s busybox "$disk/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$disk/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$disk/etc/group"
mkfs.ext4 -q -d "$disk" "$work/root.img" 16M

# L2: busybox and an /init that prints the marker and resets.
l2=$work/l2root
mkdir -p "$l2"/{bin,proc,dev,lib}
cp /bin/busybox "$l2/bin/"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio drivers/char/virtio_console; do
  cp "$mods/$m.ko" "$l2/lib/"
done
install -m 755 "$here/l2-init.sh" "$l2/init"
(cd "$l2" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/l2-initrd.gz"

# L1: busybox, the KVM modules, hull and the L2 kernel + initrd.
root=$work/root
mkdir -p "$root"/{bin,lib,l2,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/"
install -m 755 "$here/l1-init.sh" "$root/init"
cp "$mods/virt/lib/irqbypass.ko" "$mods/arch/x86/kvm/kvm.ko" "$mods/arch/x86/kvm/kvm-amd.ko" "$root/lib/"
strip -o "$root/bin/hull" "$hull"
strip -o "$root/bin/hull-vmm" "${hull}-vmm"
copy_libs "$hull" "$root"
# The L2 kernel: the ELF vmlinux (default) or, with HULL_NESTED_KERNEL=bzimage, the bzImage itself.
if [ "${HULL_NESTED_KERNEL:-vmlinux}" = bzimage ]; then cp "$vmlinuz" "$root/l2/vmlinux"; else cp "$vmlinux" "$root/l2/vmlinux"; fi
cp "$work/l2-initrd.gz" "$root/l2/initrd.gz"
cp "$guest_initrd" "$root/l2/guest.gz"
cp "$work/root.img" "$root/l2/root.img"
echo "${HULL_NESTED_L2_CMDLINE:-console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux i8042.nokbd quiet}" > "$root/l2/cmdline"
qboots=${HULL_NESTED_QEMU:-0}
[ $bench = 0 ] || qboots=${HULL_NESTED_QEMU:-$boots}
# The engine's checks (test mode): hull run --isolation vm with hull-vmm and with qemu on L1's KVM.
engine=0
[ "$mode" != test ] || engine=${HULL_NESTED_ENGINE:-1}
[ "$mode" != engine ] || engine=1
# bench mode: hull run --rm busybox true as a container, with hull-vmm and with qemu, in L1.
[ "$mode" != bench ] || engine=${HULL_NESTED_ENGINE:-1}
if [ "$engine" = 1 ]; then
  mkdir -p "$root/usr/bin"
  # hull-runtime and the keeper it hands VM bundles (org.hull.isolation=vm) to.
  strip -o "$root/bin/hull-runtime" "${hull}-runtime"
  strip -o "$root/bin/hull-vm-keeper" "${hull}-vm-keeper"
  copy_libs "${hull}-runtime" "$root"
  cp "$mods/fs/overlayfs/overlay.ko" "$root/lib/"
  cp "$(command -v mkfs.erofs)" "$root/usr/bin/"
  copy_libs "$(command -v mkfs.erofs)" "$root"
  # The default seccomp profile the guest applies, as on the host (else a warning on stderr).
  if [ -f /usr/share/containers/seccomp.json ]; then
    mkdir -p "$root/usr/share/containers"
    cp /usr/share/containers/seccomp.json "$root/usr/share/containers/"
  fi
fi
if [ "$qboots" -gt 0 ] || [ "$engine" = 1 ]; then
  # qemu -M microvm for comparison: the binary, its libraries, and the firmware microvm loads.
  mkdir -p "$root/usr/bin"
  cp /usr/bin/qemu-system-x86_64 "$root/usr/bin/"
  copy_libs /usr/bin/qemu-system-x86_64 "$root"
  mkdir -p "$root/usr/share/qemu"
  for f in bios-microvm.bin qboot.rom pvh.bin linuxboot_dma.bin kvmvapic.bin; do
    cp -L "/usr/share/qemu/$f" "$root/usr/share/qemu/"
  done
fi
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | lz4 -l -q -c) > "$work/l1-initrd.lz4"

# A periodic tick in L1 (nohz=off highres=off): without it L1 froze in ~3% of runs while an L2 ran.
# tsc_early_khz: TCG's TSC calibration otherwise hangs some boots.
append="console=ttyS0 quiet panic=-1 nohz=off highres=off tsc_early_khz=2000000 hull.boots=$boots hull.vcpus=$vcpus hull.qemu=$qboots hull.bench=$bench hull.profile=$profiling hull.stdinmb=${HULL_NESTED_STDIN_MB:-16} hull.engine=$engine hull.engineonly=$([ "$mode" = engine ] && echo 1 || echo 0)"
boot_l1() {
  local log=$1 start
  start=$(date +%s.%N)
  # Each console line gets the host's clock: the guests' own clocks run on TCG's virtual TSC.
  { timeout "$limit" qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot \
    -nic none -kernel "$vmlinuz" -initrd "$work/l1-initrd.lz4" -append "$append" 2>&1 || true; } |
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "${line%$'\r'}"; done > "$log"
  echo "L1 wall time: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}

log=$work/l1.log
echo "== nested: L1 qemu TCG ($release), $boots L2 boot(s) of its vmlinux by hull vm run, $vcpus vCPUs"
boot_l1 "$log"
if ! grep -q HULL-L1-DONE "$log"; then
  echo "L1 did not finish (last lines below); retrying once"
  tail -5 "$log"
  cp "$log" "$work/l1-first.log"
  boot_l1 "$log"
fi
[ -z "${HULL_QEMU_KEEP_LOGS:-}" ] || cp "$log" /tmp/hull-vmm-nested.log
# The log's lines are "<host time> <console line>".
# `|| true`: a `lines | grep -q` that matches early ends cut with SIGPIPE, which pipefail would
# turn into a failed check.
lines() { cut -d' ' -f2- "$log" || true; }
if [ $profiling = 1 ]; then
  grep -q HULL-L1-DONE "$log" || { echo "FAIL: L1 did not finish; last lines:"; tail -20 "$log"; exit 1; }
  python3 "$here/profile-report.py" "$log"
  exit 0
fi
if [ $bench = 1 ]; then
  grep -q HULL-L1-DONE "$log" || { echo "FAIL: L1 did not finish; last lines:"; tail -20 "$log"; exit 1; }
  python3 "$here/bench-report.py" "$log" "$boots" "$vcpus" "$release" "$profile"
  exit 0
fi
lines | grep -E '^(HULL-|hull vm:|hull:)' || true
# Host wall time from each `hull vm run` start to its L2's marker: the L2 boot time.
awk '$2 == "HULL-L2-START" { s = $1; who = "hull-vmm" } $2 == "HULL-QEMU-START" { s = $1; who = "qemu microvm" }
  $2 == "HULL-L2KILL-START" { s = 0 }
  $2 == "HULL-L2-MARKER" && s { printf "L2 boot to marker by %s (host clock): %.2f s\n", who, $1 - s; s = 0 }' "$log"

# The engine's checks: hull run --isolation vm with hull-vmm (and qemu on L1's KVM).
engine_verdict() {
  [ "$engine" = 1 ] && grep -q HULL-L1-DONE "$log" || return 0
  awk -v p="$profile" '$2 == "HULL-ENGINE-START" { s = $1; v = $3 }
    $2 == "HULL-ENGINE-RC" && s { printf "hull run --rm --isolation vm --vmm %s (%s hull), to its exit (host clock): %.2f s\n", v, p, $1 - s; s = 0 }' "$log"
  for v in hull qemu; do
    lines | grep -qx "HULL-ENGINE-RC $v 7" || { echo "FAIL: hull run --isolation vm --vmm $v ... exit 7 did not exit 7"; failed=1; }
    lines | grep -qx "HULL-ENGINE-OUT $v out" || { echo "FAIL: --vmm $v: the command's stdout was not exactly 'out'"; failed=1; }
    lines | grep -qx "HULL-ENGINE-ERR $v err" || { echo "FAIL: --vmm $v: the command's stderr was not exactly 'err'"; failed=1; }
  done
  lines | grep -qx "HULL-ENGINE-LOGS started " || { echo "FAIL: hull logs of a detached hull-vmm container"; failed=1; }
  lines | grep -qx "HULL-ENGINE-EXEC exec-out 5" || { echo "FAIL: hull exec into a hull-vmm container (output, exit 5)"; failed=1; }
  lines | grep -qE "^HULL-ENGINE-KVIEW exits=1 vcpus=[1-9]$" || { echo "FAIL: inspect --kernel of a hull-vmm container: no KVM exit counters or vCPU threads ($(lines | grep '^HULL-ENGINE-KVIEW' || true))"; failed=1; }
  memtotal=$(lines | sed -n 's/^HULL-ENGINE-MEMTOTAL MemTotal: \([0-9]*\) kB$/\1/p')
  [ -n "$memtotal" ] && [ "$memtotal" -gt 150000 ] && [ "$memtotal" -le 204800 ] ||
    { echo "FAIL: --memory 200m: the guest's MemTotal is ${memtotal:-missing} kB"; failed=1; }
  disks=$(lines | grep '^HULL-ENGINE-DISKS ' | sort -u)
  [ "$(lines | grep -c '^HULL-ENGINE-DISKS .*erofs')" = 2 ] && [ "$(echo "$disks" | wc -l)" = 1 ] ||
    { echo "FAIL: two VMs of one image do not share the layer's erofs file: $disks"; failed=1; }
  cgroups=$(lines | sed -n 's/^HULL-ENGINE-CGROUP //p' | sort | tr '\n' ' ')
  [ "$cgroups" = "$(((200 + 64) << 20)) $(((256 + 64) << 20)) " ] ||
    { echo "FAIL: the VMMs' cgroups' memory.max: $cgroups"; failed=1; }
  lines | grep -qx "HULL-ENGINE-KILLED exited" || { echo "FAIL: kill -9 of a monitor did not take its hull-vmm along (or the container is not exited)"; failed=1; }
  lines | grep -qx "HULL-ENGINE-STOP 0" || { echo "FAIL: hull stop of hull-vmm containers"; failed=1; }
  lines | grep -qx "HULL-ENGINE-RUNTIME 6 rt-out rt-err" || { echo "FAIL: hull-runtime run of a bundle annotated org.hull.isolation=vm (qemu on L1's KVM: out, err, exit 6): $(lines | grep '^HULL-ENGINE-RUNTIME' || echo 'no result')"; failed=1; }
  lines | grep -qx "HULL-ENGINE-RUNTIME-CLEAN" || { echo "FAIL: hull-runtime's VM container left: $(lines | grep '^HULL-ENGINE-RUNTIME-LEFT' || true)"; failed=1; }
  lines | grep -qx "HULL-ENGINE-CLEAN" || { echo "FAIL: the engine left: $(lines | grep '^HULL-ENGINE-LEFT' || true)"; failed=1; }
}
failed=0
if [ "$mode" = engine ]; then
  grep -q HULL-L1-DONE "$log" || { echo "FAIL: L1 did not finish; last lines:"; tail -20 "$log"; exit 1; }
  engine_verdict
  [ $failed = 0 ] && echo "PASS: hull run --isolation vm in the nested test bed" || { echo "FAIL"; exit 1; }
  exit 0
fi
if grep -q HULL-L1-NOKVM "$log"; then
  echo "FAIL: L1 has no /dev/kvm after loading kvm_amd"; failed=1
elif ! grep -q HULL-L1-DONE "$log"; then
  echo "FAIL: L1 did not finish twice; last lines:"; tail -20 "$log"; failed=1
else
  for i in $(seq 1 "$boots"); do
    if ! lines | grep -qx "HULL-L2-RC $i 0"; then
      echo "FAIL: hull vm run (boot $i) did not exit 0"; failed=1
    fi
  done
  markers=$(lines | awk -v want="cpus=$vcpus" '$1 == "HULL-L2-START" { h = 1 } $1 ~ /^HULL-(QEMU|L2KILL)-START$/ { h = 0 }
    $1 == "HULL-L2-MARKER" && h && $2 == want { n++ } END { print n + 0 }')
  if [ "$markers" != "$boots" ]; then
    echo "FAIL: $markers of $boots L2 boots printed the marker with $vcpus CPUs"; failed=1
  fi
  typed=$(lines | awk '$1 == "HULL-L2-START" { h = 1 } $1 ~ /^HULL-(QEMU|L2KILL)-START$/ { h = 0 }
    $1 == "HULL-L2-STDIN" && $2 ~ /^typed-into-ttyS0/ && h { n++ } END { print n + 0 }')
  if [ "$typed" != "$boots" ]; then
    echo "FAIL: $typed of $boots L2 boots read the line typed into hull vm run's stdin"; failed=1
  fi
  jail=$(lines | grep -m1 '^HULL-L1-JAIL memory.max' || true)
  want="HULL-L1-JAIL memory.max=$(((256 + 64) << 20)) pids.max=$((vcpus + 16)) devices=/dev/kvm "
  if [ "$jail" != "$want" ]; then
    echo "FAIL: the jail seen from L1 is not as configured: got \"$jail\", want \"$want\""; failed=1
  fi
  if lines | grep -qE '^HULL-L1-JAIL-(SHARED|NOVMM)'; then
    echo "FAIL: the jailed VMM shares namespaces with L1 or was not found"; failed=1
  fi
  if ! lines | grep -qx 'HULL-L2KILL-RC 1 137'; then
    echo "FAIL: hull vm run did not end with 137 after its VMM was killed (-9)"; failed=1
  fi
  if ! lines | grep -qx 'HULL-L1-JAIL-CLEAN'; then
    echo "FAIL: jails left something behind: $(lines | grep '^HULL-L1-JAIL-LEFT' || true)"; failed=1
  fi
  hvc=$(lines | awk '$1 == "HULL-L2-START" { h = 1 } $1 ~ /^HULL-(QEMU|L2KILL)-START$/ { h = 0 }
    $1 == "HULL-L2-HVC" && h { n++ } END { print n + 0 }')
  if [ "$hvc" != "$boots" ]; then
    echo "FAIL: $hvc of $boots L2 boots wrote to the virtio console (hvc0)"; failed=1
  fi
fi
# The agent: stdout and stderr apart, the exit code, and a forwarded signal (128 + SIGTERM).
if grep -q HULL-L1-DONE "$log"; then
  lines | grep -qx "HULL-AGENT-RC 3" || { echo "FAIL: hull vm run -- sh -c '...; exit 3' did not exit 3"; failed=1; }
  lines | grep -qx "HULL-AGENT-OUT out" || { echo "FAIL: the command's stdout was not exactly 'out'"; failed=1; }
  lines | grep -qx "HULL-AGENT-ERR err" || { echo "FAIL: the command's stderr was not exactly 'err'"; failed=1; }
  lines | grep -qx "HULL-AGENT-RW written-on-ro-disk" || { echo "FAIL: the overlay on the read-only disk is not writable"; failed=1; }
  lines | grep -qx "HULL-AGENT-DATA persisted" || { echo "FAIL: a write to the read-write disk did not reach its image"; failed=1; }
  lines | grep -qx "HULL-AGENT-STDIN stdin-fed" || { echo "FAIL: hull vm run -i did not pass stdin to the command"; failed=1; }
  lines | grep -qx "HULL-AGENT-CAPS CapEff:0000000000000400 NoNewPrivs:1 " ||
    { echo "FAIL: --cap-drop ALL --cap-add NET_BIND_SERVICE --security-opt no-new-privileges not applied"; failed=1; }
  lines | grep -qx "HULL-AGENT-ULIMIT nofile-77-88" || { echo "FAIL: --ulimit nofile=77:88 not applied"; failed=1; }
  lines | grep -qx "HULL-AGENT-SIGNAL-RC 143" || { echo "FAIL: SIGTERM to hull did not end the command with 143"; failed=1; }
  # hull vm exec into the named VM: output apart, exit code, a user by name, 50 MB of stdin
  # intact with the VMM's memory beyond guest RAM not growing with it (by less than 8 MiB).
  lines | grep -qx "HULL-EXEC-RC 4" || { echo "FAIL: hull vm exec ... exit 4 did not exit 4"; failed=1; }
  lines | grep -qx "HULL-EXEC-OUT exec-out" || { echo "FAIL: hull vm exec's stdout was not exactly 'exec-out'"; failed=1; }
  lines | grep -qx "HULL-EXEC-ERR exec-err" || { echo "FAIL: hull vm exec's stderr was not exactly 'exec-err'"; failed=1; }
  lines | grep -qx "HULL-EXEC-USER 65534:65534" || { echo "FAIL: hull vm exec -u nobody did not run as 65534:65534"; failed=1; }
  lines | grep -qx "HULL-EXEC-SIGNAL-RC 143" || { echo "FAIL: SIGTERM to hull vm exec did not end its process with 143"; failed=1; }
  lines | grep -q '^HULL-EXEC-DUPNAME 125 .*named "t1" is running already' ||
    { echo "FAIL: a second hull vm run --name t1 was not refused"; failed=1; }
  lines | grep -qx "HULL-EXEC-STDIN intact" || { echo "FAIL: the stdin through hull vm exec -i did not arrive intact"; failed=1; }
  grown=$(lines | awk '$1 == "HULL-EXEC-MEM-BEFORE" { split($4, a, "="); b = a[2] } $1 == "HULL-EXEC-MEM-AFTER" { split($4, a, "="); print a[2] - b }')
  echo "VMM memory beyond guest RAM grew by ${grown:-?} KiB over ${HULL_NESTED_STDIN_MB:-16} MB of stdin"
  [ -n "$grown" ] && [ "$grown" -lt 8192 ] || { echo "FAIL: the VMM's memory grew with the stdin it passed on"; failed=1; }
fi
engine_verdict
[ $failed = 0 ] && echo "PASS: hull vm run booted Debian's kernel $boots time(s) in the nested test bed, jailed" || { echo "FAIL"; exit 1; }
