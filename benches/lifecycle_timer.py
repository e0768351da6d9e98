"""Times `RUNTIME --root STATE run --bundle BUNDLE ID` for each runtime given as NAME=PATH,
interleaved so that machine noise hits all alike; prints medians, peak RSS and ratios."""
import os
import statistics
import subprocess
import sys
import time

work, runs, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runtimes = [s.split("=", 1) for s in specs]
bundle = os.path.join(work, "bundle")


def one(name, path, i):
    root = os.path.join(work, "state-" + name)
    cid = f"hull-bench-{name}-{os.getpid()}-{i}"
    start = time.perf_counter()
    proc = subprocess.run([path, "--root", root, "run", "--bundle", bundle, cid],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{name} run failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    return elapsed


def peak_rss_kb(name, path):
    """Peak RSS under GNU time, whose own small footprint is what a forked child starts from
    (a child of this Python process would inherit Python's high-water mark)."""
    root = os.path.join(work, "state-" + name)
    cid = f"hull-bench-{name}-{os.getpid()}-rss"
    out = subprocess.run(["/usr/bin/time", "-f", "%M", path, "--root", root, "run", "--bundle", bundle, cid],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return int(out.stderr.decode().strip().splitlines()[-1])


results = {name: ([], []) for name, _ in runtimes}
for i in range(5 + runs):
    for name, path in runtimes:
        elapsed = one(name, path, i)
        if i >= 5:
            results[name][0].append(elapsed)
for name, path in runtimes:
    results[name][1].extend(peak_rss_kb(name, path) for _ in range(5))

medians = {}
print(f"{'runtime':<14}{'median ms':>10}{'p90 ms':>9}{'peak RSS MB':>13}")
for name, (times, rss) in results.items():
    times.sort()
    medians[name] = statistics.median(times)
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"{name:<14}{medians[name] * 1000:>10.2f}{p90 * 1000:>9.2f}{max(rss) / 1024:>13.1f}")
for peer in ("hull-base", "runc", "crun"):
    if peer in medians:
        rss_ratio = max(results["hull-runtime"][1]) / max(results[peer][1])
        print(f"hull/{peer}: time {medians['hull-runtime'] / medians[peer]:.2f}x, peak RSS {rss_ratio:.2f}x")
