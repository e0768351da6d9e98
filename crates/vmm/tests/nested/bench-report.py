#!/usr/bin/env python3
"""The figures of the nested bed's bench mode, from L1's console log ("<host time> <line>"):
per VMM, boot to the L2's init (its `hull vm run`/qemu start to the L2 marker) and end to end
(start to the VMM's exit; the L2 resets at its marker), as medians over the boots, the ratios to
jailed hull-vmm, the guest's own uptime at init, and each VMM's memory beyond guest RAM; and
`hull run --rm busybox true` as a container and as a VM of either VMM (HULL-EBENCH lines).

usage: bench-report.py LOG BOOTS VCPUS KERNEL PROFILE"""
import re
import statistics
import sys

log, boots, vcpus, kernel, profile = sys.argv[1:6]
boot, e2e, uptime, mem, stats = {}, {}, {}, {}, {}
runs, failed_runs = {}, []
tag = start = run_start = None
for raw in open(log, errors="replace"):
    ts, _, line = raw.rstrip("\n").partition(" ")
    try:
        t = float(ts)
    except ValueError:
        continue
    m = re.match(r"HULL-BENCH-(\S+)-START \d+$", line)
    if m:
        tag, start = m.group(1), t
        continue
    if line.startswith("HULL-L2-MARKER") and tag:
        boot.setdefault(tag, []).append(t - start)
        u = re.search(r"uptime=([\d.]+)", line)
        if u:
            uptime.setdefault(tag, []).append(float(u.group(1)))
    elif tag and re.match(r"HULL-\S+-RC \d+ \d+$", line):
        # A failed run counts in neither median.
        if line.endswith(" 0"):
            e2e.setdefault(tag, []).append(t - start)
        tag = None
    elif tag and line.startswith("hull vm: stopped"):
        s = re.search(r"setup ([\d.]+) ms, run ([\d.]+) ms; (\d+) exits", line)
        if s:
            stats.setdefault(tag, []).append(tuple(float(x) for x in s.groups()))
    m = re.match(r"HULL-EBENCH-(\S+)-(START|RC) (\d+)(?: (\d+))?$", line)
    if m:
        who, what, i = m.group(1), m.group(2), int(m.group(3))
        if what == "START":
            run_start = t
        elif i > 0 and m.group(4) == "0":
            # Round 0 is the warm-up.
            runs.setdefault(who, []).append(t - run_start)
        elif m.group(4) != "0":
            failed_runs.append(line)
        continue
    m = re.match(r"HULL-MEM (\S+) rss_kb=(\d+) guest_kb=(\d+) overhead_kb=(\d+)", line)
    if m:
        mem[m.group(1)] = tuple(int(x) for x in m.groups()[1:])

def med(xs):
    return statistics.median(xs) if xs else float("nan")

print(f"== vm-boot: Debian {kernel} in L2 on L1's nested KVM (qemu TCG, -cpu max), {vcpus} vCPUs, "
      f"256 MiB, hull {profile} build; medians of {boots} boots (host clock)")
base_boot, base_e2e = med(boot.get("hull-vmm", [])), med(e2e.get("hull-vmm", []))
for name in ["hull-vmm", "hull-vmm-nojail", "hull-vmm-linux64", "qemu-microvm"]:
    b, e = boot.get(name, []), e2e.get(name, [])
    if not b:
        continue
    row = (f"{name:16} boot to init {med(b):6.2f} s  (x{med(b) / base_boot:.2f})   "
           f"end to end {med(e):6.2f} s  (x{med(e) / base_e2e:.2f})   "
           f"guest uptime at init {med(uptime.get(name, [])):5.2f} s   n={len(b)}/{len(e)}")
    if stats.get(name):
        setup = med([s[0] for s in stats[name]])
        exits = med([s[2] for s in stats[name]])
        row += f"   setup {setup:.1f} ms, {exits:.0f} exits"
    print(row)
for name, (rss, guest, over) in mem.items():
    print(f"memory {name:10} RSS {rss / 1024:7.1f} MiB, guest RAM touched {guest / 1024:7.1f} MiB, "
          f"VMM beyond guest RAM {over / 1024:6.1f} MiB")
if "qemu-microvm" in boot and "hull-vmm" in boot:
    q = med(boot["qemu-microvm"])
    print(f"qemu microvm / hull-vmm: boot to init x{q / base_boot:.2f}, "
          f"end to end x{med(e2e['qemu-microvm']) / base_e2e:.2f}")
if runs or failed_runs:
    print(f"== hull run --rm --network none busybox true in L1 (host clock), medians of "
          f"{boots} runs after a warm-up; containers on L1's kernel, VMs on its nested KVM")
    base = med(runs.get("container", []))
    for name, label in [("container", "container"), ("hull", "--isolation vm --vmm hull"),
                        ("qemu", "--isolation vm --vmm qemu (KVM)")]:
        t = runs.get(name, [])
        if t:
            print(f"{label:34} {med(t):6.2f} s ({min(t):.2f}-{max(t):.2f})  x{med(t) / base:.1f}")
    for line in failed_runs:
        print(f"failed: {line}")
