#!/usr/bin/env bash
# K detached instances of one image (busybox, `sh -c 'echo up; exec sleep 3600'`, --network
# none) as containers, then as microVMs (`--isolation vm --vmm qemu`, default guest memory):
# the time to start them and to have each one's first line in its log; host memory they take
# (PSS and RSS of the monitors, the container processes or qemu, summed; the sum of their
# memory cgroups; MemAvailable before and after, noisy on a shared host); disk under the engine
# root (containers/ without the mounted root file systems, the unpacked layers, the erofs
# images); that K VMs share one erofs image per layer (qemu processes holding each open, and
# its pages in the host's page cache); the time to remove them all; and that nothing is left
# (no process naming the root, no row in `hull ps -a`, no container dir, no cgroup). Holds the qemu lock (/tmp/hull-qemu.lock) for the
# whole run. Needs root, Debian's cloud kernel in the qemu cache and hull-guest's initramfs
# (scripts/build-guest-initramfs.sh makes both; a release guest here).
#
#   benches/isolation-density.sh [K]      (default 10)
#   HULL=/path/to/hull benches/isolation-density.sh   (default: a release build of this checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
k=${1:-${K:-10}}
. benches/lib/isolation-setup.sh density

now() { date +%s.%N; }
secs() { printf '%.2f' "$(echo "$2 - $1" | bc -l)"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
memavail() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
kb() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# PID and its descendants.
tree() {
  ps -e -o pid=,ppid= | awk -v top="$1" '
    { parent[$1] = $2 } END {
      print top; n = 1; found[top] = 1
      do { added = 0
        for (p in parent) if (!(p in found) && (parent[p] in found)) { found[p] = 1; print p; added = 1 }
      } while (added) }'
}
# The memory cgroup (v1 or v2) of container $1, wherever the runtime nested it.
memcg() {
  local d
  for d in $(find /sys/fs/cgroup/memory /sys/fs/cgroup/unified /sys/fs/cgroup -maxdepth 4 \
    -type d -name "hull-$1" 2>/dev/null); do
    [ -e "$d/memory.usage_in_bytes" ] && { cat "$d/memory.usage_in_bytes"; return; }
    [ -e "$d/memory.current" ] && { cat "$d/memory.current"; return; }
  done
}
# Resident KiB of qemu $1's guest RAM (the anonymous rw-p mapping of $2 MiB), of its TCG
# translation buffer (the anonymous rwxp mapping) and of the rest; then how much of the guest
# RAM's is in transparent huge pages (qemu asks for them: a guest's touch of one 4 KiB page
# makes 2 MiB resident).
qemu_split() {
  python3 - "$1" "$2" <<'PY'
import sys
kb, kind = {"guest": 0, "tcg": 0, "other": 0, "thp": 0}, "other"
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    f = line.split()
    if "-" in f[0] and len(f) >= 5 and ":" in f[3]:
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        anon = len(f) == 5
        kind = ("guest" if anon and f[1] == "rw-p" and hi - lo == int(sys.argv[2]) << 20
                else "tcg" if anon and f[1] == "rwxp" else "other")
    elif f[0] == "Rss:":
        kb[kind] += int(f[1])
    elif f[0] == "AnonHugePages:" and kind == "guest":
        kb["thp"] += int(f[1])
print(kb["guest"], kb["tcg"], kb["other"], kb["thp"])
PY
}
erofs_files() { find "$root/layers" -maxdepth 2 -name '*.erofs' | sort; }

all_ids=()
# phase NAME [FLAGS...]: K detached instances with FLAGS, measured, then removed.
phase() {
  local name=$1; shift
  local ids=() id avail0 avail1 t0 t1 t2 t3 t4 up pid comm
  avail0=$(memavail)
  t0=$(now)
  for _ in $(seq "$k"); do
    id=$(hull run -d --network none "$@" busybox sh -c 'echo up; exec sleep 3600')
    ids+=("$id"); all_ids+=("$id")
  done
  t1=$(now)
  for _ in $(seq 3000); do
    up=0
    for id in "${ids[@]}"; do hull logs "$id" 2>/dev/null | grep -qx up && up=$((up + 1)); done
    [ "$up" = "$k" ] && break
    sleep 0.1
  done
  t2=$(now)
  [ "$up" = "$k" ] || { echo "$name: only $up of $k printed their first line"; exit 1; }
  # Let the guests' boot-time work settle before measuring.
  sleep 3
  avail1=$(memavail)
  declare -A pss=() rss=() count=()
  local monitors qemus=() cg=0 cgs=0 c
  monitors=$(hull inspect "${ids[@]}" |
    python3 -c 'import json,sys; print(" ".join(str(c["State"]["MonitorPid"]) for c in json.load(sys.stdin)))')
  for m in $monitors; do
    for pid in $(tree "$m"); do
      comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
      if [ "$pid" = "$m" ]; then comm="hull monitor"; fi
      case $comm in qemu-system-*) qemus+=("$pid") ;; esac
      pss[$comm]=$(( ${pss[$comm]:-0} + $(kb "$pid" Pss) ))
      rss[$comm]=$(( ${rss[$comm]:-0} + $(kb "$pid" Rss) ))
      count[$comm]=$(( ${count[$comm]:-0} + 1 ))
    done
  done
  for id in "${ids[@]}"; do
    c=$(memcg "$id")
    [ -n "$c" ] && { cg=$((cg + c)); cgs=$((cgs + 1)); }
  done
  echo
  echo "== $k x $name: hull run -d --network none${*:+ $*} busybox sh -c 'echo up; exec sleep 3600'"
  echo "started (all run -d returned): $(secs "$t0" "$t1") s; all $k printed 'up': $(secs "$t0" "$t2") s"
  local total_pss=0 total_rss=0
  printf '  %-22s %5s %12s %12s %14s\n' process count "PSS MiB" "RSS MiB" "PSS MiB each"
  for comm in "${!pss[@]}"; do
    printf '  %-22s %5s %12s %12s %14s\n' "$comm" "${count[$comm]}" "$(mib "${pss[$comm]}")" \
      "$(mib "${rss[$comm]}")" "$(mib $((pss[$comm] / count[$comm])))"
    total_pss=$((total_pss + pss[$comm])); total_rss=$((total_rss + rss[$comm]))
  done
  printf '  %-22s %5s %12s %12s %14s\n' total "" "$(mib "$total_pss")" "$(mib "$total_rss")" \
    "$(mib $((total_pss / k)))"
  echo "  memory cgroups (hull-<id>): $cgs of $k have one; their usage summed: $(mib $((cg / 1024))) MiB"
  echo "  MemAvailable: $(mib "$avail0") -> $(mib "$avail1") MiB (used $(mib $((avail0 - avail1))) MiB; other jobs share this host: noisy)"
  echo "  disk: containers/ $(du -skx "$root/containers" | cut -f1) KiB," \
    "layers/ $(du -sk "$root/layers" | cut -f1) KiB (of it erofs: $(cat /dev/null $(erofs_files) | wc -c | awk '{printf "%d", $1/1024}') KiB)"
  if [ ${#qemus[@]} -gt 0 ]; then
    local f holders cached gmib g t o h sg=0 st=0 so=0 sh=0
    gmib=$(hull inspect --kernel "${ids[0]}" | sed -n 's/.* \([0-9]*\) MiB guest memory.*/\1/p')
    for pid in "${qemus[@]}"; do
      read -r g t o h < <(qemu_split "$pid" "$gmib")
      sg=$((sg + g)); st=$((st + t)); so=$((so + o)); sh=$((sh + h))
    done
    echo "  qemu RSS, summed: guest RAM $(mib "$sg") MiB (of ${#qemus[@]} x $gmib MiB; $(mib "$sh") MiB of it in huge pages), TCG translation" \
      "buffers $(mib "$st") MiB, the rest (qemu's own heap, binary, libraries) $(mib "$so") MiB"
    for f in $(erofs_files); do
      holders=0
      for pid in "${qemus[@]}"; do
        ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF -- "-> $f" && holders=$((holders + 1))
      done
      cached=$(fincore -b -n -o RES "$f" | tr -d ' ')
      echo "  layer image ${f#"$root"/} ($(($(stat -c %s "$f") / 1024)) KiB, $((cached / 1024)) KiB in the page cache):" \
        "open in $holders of ${#qemus[@]} qemu processes"
    done
    echo "  erofs images under layers/: $(erofs_files | wc -l) for $(hull image inspect busybox 2>/dev/null |
      python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["LayerDirs"]))' 2>/dev/null || echo '?') layer(s)"
  fi
  t3=$(now)
  hull rm -f "${ids[@]}" >/dev/null
  t4=$(now)
  echo "  rm -f of all $k: $(secs "$t3" "$t4") s"
}

echo "hull $("$HULL" --version | head -1); $(qemu-system-x86_64 --version | head -1); guest kernel ${vmlinuz##*/}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
phase containers
phase "VMs (qemu)" --isolation vm --vmm qemu

# Nothing left: no process naming the root (qemu's command line does), no row, no dir, no cgroup.
sleep 1
left=()
ps -e -o pid=,args= | grep -F -- "$root/" | grep -v grep >/dev/null && left+=("processes: $(ps -e -o pid=,args= | grep -F -- "$root/" | grep -v grep)")
[ -z "$(hull ps -a -q)" ] || left+=("rows: $(hull ps -a -q | tr '\n' ' ')")
[ -z "$(ls -A "$root/containers" 2>/dev/null)" ] || left+=("container dirs: $(ls "$root/containers")")
for id in "${all_ids[@]}"; do
  for d in $(find /sys/fs/cgroup -maxdepth 5 -type d -name "hull-$id" 2>/dev/null); do left+=("cgroup $d"); done
done
echo
if [ ${#left[@]} -eq 0 ]; then
  echo "left behind after rm -f: nothing (no process naming the root, no row in ps -a, no container dir, no cgroup)"
else
  printf 'LEFT BEHIND: %s\n' "${left[@]}"
  exit 1
fi
