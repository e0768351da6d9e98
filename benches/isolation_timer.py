"""Times `hull run --rm --network none busybox ...` as a container and as a qemu microVM,
interleaved run by run so that machine noise hits both alike: `true` end to end, and `echo hi`
to its first line of output and to the end. Prints medians (with min and max) and the ratios.

usage: isolation_timer.py HULL ROOT RUNS"""
import statistics
import subprocess
import sys
import time

hull, root, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
ISOLATIONS = {"container": [], "vm": ["--isolation", "vm", "--vmm", "qemu"]}


def cmd(iso, *args):
    return [hull, "--root", root, "run", "--rm", "--network", "none", *ISOLATIONS[iso],
            "busybox", *args]


def settle():
    """A pause before each run: a VM run's last exits (qemu's, the monitor's) otherwise slow the
    container run after it."""
    time.sleep(0.5)


def end_to_end(iso):
    settle()
    start = time.perf_counter()
    proc = subprocess.run(cmd(iso, "true"), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{iso}: run true failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    return elapsed


def first_line(iso):
    """Seconds to `echo hi`'s line on stdout, and to hull's exit."""
    settle()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd(iso, "echo", "hi"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    first = time.perf_counter() - start
    rest, err = proc.communicate()
    end = time.perf_counter() - start
    if proc.returncode != 0 or line != b"hi\n" or rest:
        sys.exit(f"{iso}: echo hi gave {line + rest!r}, exit {proc.returncode}: "
                 f"{err.decode().strip()}")
    return first, end


times = {(iso, what): [] for iso in ISOLATIONS for what in ("true", "hi-first", "hi-end")}
for _ in range(runs):
    for iso in ISOLATIONS:
        times[(iso, "true")].append(end_to_end(iso))
        first, end = first_line(iso)
        times[(iso, "hi-first")].append(first)
        times[(iso, "hi-end")].append(end)

ROWS = [("true", "run --rm busybox true: to exit"),
        ("hi-first", "run --rm busybox echo hi: to the line"),
        ("hi-end", "run --rm busybox echo hi: to exit")]
print(f"{'':40} {'container s':>19} {'vm (qemu) s':>19} {'vm/ctr':>7}")
for key, label in ROWS:
    cells = []
    for iso in ISOLATIONS:
        t = times[(iso, key)]
        cells.append(f"{statistics.median(t):6.3f} ({min(t):.2f}-{max(t):.2f})")
    ratio = statistics.median(times[("vm", key)]) / statistics.median(times[("container", key)])
    print(f"{label:40} {cells[0]:>19} {cells[1]:>19} {ratio:6.1f}x")
print(f"medians of {runs} runs each, (min-max); interleaved, 0.5 s apart")
