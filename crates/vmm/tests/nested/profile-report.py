#!/usr/bin/env python3
"""Where one boot's time went, from the nested bed's profile mode (L1's console log, lines
"<host time> HULL-PROFILE <guest kernel log line>"): the VMM's setup and exits by reason (its
--stats line), the guest kernel's milestones by its own clock, its slowest initcalls and their
sum, and when the agent was ready.

usage: profile-report.py LOG"""
import re
import sys

MILESTONES = [
    ("kernel entry (first message)", r"Linux version"),
    ("ACPI tables read", r"ACPI: (RSDP|XSDT)"),
    ("kvm-clock in use", r"clocksource: Switched to clocksource kvm-clock"),
    ("SMP up (all vCPUs)", r"smp: Brought up"),
    ("virtio-mmio devices probed", r"virtio_mmio|virtio-mmio"),
    ("initramfs unpacked", r"Trying to unpack rootfs|Freeing initrd memory"),
    ("init memory freed", r"Freeing unused kernel image"),
    ("/init started", r"Run /init as init process"),
]

lines = []
for raw in open(sys.argv[1], errors="replace"):
    _, _, line = raw.rstrip("\n").partition(" ")
    if line.startswith("HULL-PROFILE "):
        lines.append(line[len("HULL-PROFILE "):])
stamped = []
for line in lines:
    m = re.match(r"\[\s*([\d.]+)\] (.*)", line)
    if m:
        stamped.append((float(m.group(1)), m.group(2)))
    elif line.startswith("hull vm:"):
        print(line)
print("guest kernel milestones (guest clock, s):")
for name, pattern in MILESTONES:
    hit = next((t for t, msg in stamped if re.search(pattern, msg)), None)
    if hit is not None:
        print(f"  {hit:8.3f}  {name}")
calls = []
for t, msg in stamped:
    m = re.search(r"initcall (\S+) returned -?\d+ after (\d+) usecs", msg)
    if m:
        calls.append((int(m.group(2)), m.group(1)))
calls.sort(reverse=True)
total = sum(c[0] for c in calls)
print(f"initcalls: {len(calls)}, {total / 1e3:.1f} ms in all; the slowest:")
for us, name in calls[:12]:
    print(f"  {us / 1e3:8.1f} ms  {name}")
if stamped:
    print(f"last kernel message at {stamped[-1][0]:.3f} s: {stamped[-1][1][:90]}")
