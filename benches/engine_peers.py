#!/usr/bin/env python3
"""hull's engine against its peers, side by side in one run (driven by benches/engine-run.sh).

1. `run --rm --network none IMAGE true`: hull, podman (--runtime runc), pelagos, and bare
   `hull-runtime run` of the config.json hull generated (the floor); medians after warm-up.
   Also hull with the isolation pelagos's `--network none` gives (strace shows no network
   namespace and no seccomp filter): `--network host --security-opt seccomp=unconfined`.
   And hull against pelagos once more on a busy host: with a CPU-bound loop beside them (one
   loop for the host's two cores), which takes away the second core hull's processes overlap on.
2. The same on a bridge network: hull's against podman's, each on a network made for the run.
3. 100 containers started detached, 10 at a time, then stopped and removed: wall time, p50/p99
   of each start, how many were lost, and the monitors' memory (hull's monitor, podman's conmon).

Everything it makes lives under WORK (its own hull root, podman root and runroot, pelagos's
rootfs), its cgroups under CGROUP_PARENT, its networks are named and addressed for this run;
all are removed by the caller's trap. A peer that is missing or fails is reported as such.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

N = int(os.environ.get("N", "30"))
WORK, HULL, RUNTIME, CGROUP_PARENT, SUBNET, PODMAN_SUBNET = sys.argv[1:7]
PELAGOS = os.environ.get("PELAGOS", "")
# The busybox image loaded into pelagos's store by the caller (from `hull save`), when it could.
PELAGOS_IMAGE = os.environ.get("PELAGOS_IMAGE", "")
ROOT = f"{WORK}/root"


def hull(*args, **kw):
    return subprocess.run([HULL, "--root", ROOT, *args], check=True, capture_output=True,
                          text=True, **kw).stdout


def podman_cmd(*args):
    return ["podman", "--root", f"{WORK}/podman/storage", "--runroot", f"{WORK}/podman/run",
            "--tmpdir", f"{WORK}/podman/tmp", "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc",
            *args]


# This host's hard limits are below podman's default ulimits (1048576).
PODMAN_RUN = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
              "--cgroup-parent", CGROUP_PARENT]


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - t) * 1000


def median(cmd, n=N, warm=5):
    for _ in range(warm):
        timed(cmd)
    return statistics.median(timed(cmd) for _ in range(n))


def try_median(name, cmd, n=N):
    try:
        return median(cmd, n)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        err = getattr(e, "stderr", b"") or b""
        print(f"{name}: could not run: {err.decode(errors='replace').strip()[:200] or e}")
        return None


def interleaved_medians(cmds, n=N, warm=5):
    """Medians of the commands run in turn, round after round: each sees the same host (the
    writeback of what the set-up wrote, the others' builds), where runs of one command after
    the other's would each get a different one. A command that fails is left out and told."""
    live = {}
    for name, cmd in cmds.items():
        try:
            for _ in range(warm):
                timed(cmd)
            live[name] = cmd
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            err = getattr(e, "stderr", b"") or b""
            print(f"{name}: could not run: {err.decode(errors='replace').strip()[:200] or e}")
    times = {name: [] for name in live}
    for _ in range(n):
        for name, cmd in live.items():
            times[name].append(timed(cmd))
    return {name: statistics.median(t) for name, t in times.items()}


def row(name, ms, base):
    if ms is None:
        return
    ratio = f"{ms / base:5.2f}x" if base else ""
    print(f"  {name:<58} {ms:7.1f} ms  {ratio}")


def section_none(bundle):
    print(f"== run --rm --network none busybox true (medians of {N} after 5 warm-up runs; hull, the\n"
          "   runtime and pelagos in turn, round after round; podman after them)")
    cmds = {"hull": [HULL, "--root", ROOT, "run", "--rm", "--network", "none", "busybox", "true"],
            "runtime": [RUNTIME, "--root", f"{WORK}/rt", "run", "--bundle", bundle, "bench"],
            # What pelagos's `--network none` isolates, per strace: no network namespace of its
            # own and no seccomp filter. hull still makes its cgroups, overlay and monitor.
            "hull as pelagos": [HULL, "--root", ROOT, "run", "--rm", "--network", "host",
                                "--security-opt", "seccomp=unconfined", "busybox", "true"]}
    if PELAGOS:
        cmds["pelagos"] = [PELAGOS, "run", "--rm", "--network", "none", "--rootfs",
                           f"{WORK}/rootfs", "/bin/true"]
    if PELAGOS and PELAGOS_IMAGE:
        cmds["pelagos image"] = [PELAGOS, "run", "--rm", "--network", "none", PELAGOS_IMAGE,
                                 "/bin/true"]
    m = interleaved_medians(cmds)
    h, r, pel, pel_image = m["hull"], m["runtime"], m.get("pelagos"), m.get("pelagos image")
    p = try_median("podman", podman_cmd("run", "--rm", "--network", "none", *PODMAN_RUN,
                                        "localhost/busybox", "true"), n=max(10, N // 3))
    print("  (ratio: against hull)")
    row("hull run", h, h)
    row("bare hull-runtime run, same config.json (the floor)", r, h)
    h_as_pel = m["hull as pelagos"]
    row("hull run --network host --security-opt seccomp=unconfined", h_as_pel, h)
    row("podman run --runtime runc", p, h)
    row("pelagos run --rootfs (no image overlay, no cgroups)", pel, h)
    row("pelagos run IMAGE (its image overlay, no cgroups)", pel_image, h)
    print(f"  hull / bare runtime: {h / r:.2f}x" + (f"; hull / pelagos: {h / pel:.2f}x" if pel else "")
          + (f"; hull / pelagos image: {h / pel_image:.2f}x" if pel_image else "")
          + (f"; hull / podman: {h / p:.2f}x" if p else ""))
    if pel:
        print(f"  with pelagos's isolation (host network, no seccomp filter): hull / pelagos "
              f"{h_as_pel / pel:.2f}x" + (f", / pelagos image {h_as_pel / pel_image:.2f}x" if pel_image else ""))


def section_busy():
    if not PELAGOS:
        return
    print(f"\n== the same, hull and pelagos --rootfs in turn, with a CPU-bound loop running beside "
          f"(medians of {N})")
    cmds = {"hull": [HULL, "--root", ROOT, "run", "--rm", "--network", "none", "busybox", "true"],
            "pelagos": [PELAGOS, "run", "--rm", "--network", "none", "--rootfs",
                        f"{WORK}/rootfs", "/bin/true"]}
    loop = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        m = interleaved_medians(cmds)
    finally:
        loop.kill()
        loop.wait()
    if "hull" in m and "pelagos" in m:
        row("hull run", m["hull"], m["hull"])
        row("pelagos run --rootfs", m["pelagos"], m["hull"])
        print(f"  hull / pelagos on a busy host: {m['hull'] / m['pelagos']:.2f}x")


def section_bridge():
    print(f"\n== run --rm on a bridge network (median of {max(10, N // 3)})")
    n = max(10, N // 3)
    h = median([HULL, "--root", ROOT, "run", "--rm", "--network", "benchnet", "busybox", "true"], n)
    p = try_median("podman bridge", podman_cmd("run", "--rm", "--network", "hullbenchnet",
                                               *PODMAN_RUN, "localhost/busybox", "true"), n)
    row("hull run --network benchnet (veth + address + nft)", h, h)
    row("podman run --network (its bridge)", p, h)


def rss_kb(pid, field):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def hundred(name, start_cmd, stop_all, rm_all, list_ids, monitors):
    starts = []

    def one(i):
        t = time.perf_counter()
        out = subprocess.run(start_cmd(i), capture_output=True, text=True)
        return (time.perf_counter() - t) * 1000, out.returncode, out.stderr.strip()

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(100)))
    wall = time.perf_counter() - wall
    failed = [e for _, rc, e in results if rc != 0]
    starts = sorted(ms for ms, rc, _ in results if rc == 0)
    ids = list_ids()
    mons = monitors()
    rss = sum(rss_kb(p, "Rss") for p in mons) / 1024
    pss = sum(rss_kb(p, "Pss") for p in mons) / 1024
    t = time.perf_counter()
    stop_all(ids)
    rm_all(ids)
    down = time.perf_counter() - t
    p50 = statistics.median(starts) if starts else 0
    p99 = starts[min(len(starts) - 1, int(len(starts) * 0.99))] if starts else 0
    print(f"  {name:<8} started {len(starts)}/100 in {wall:5.1f} s, running {len(ids)}, "
          f"start p50 {p50:6.0f} ms p99 {p99:6.0f} ms; stop+rm {down:5.1f} s; "
          f"{len(mons)} monitors: RSS {rss:6.1f} MB, PSS {pss:5.1f} MB")
    for e in failed[:3]:
        print(f"    failed: {e[:200]}")


def pids_whose_cmdline_has(text, comm=None):
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            if comm:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() != comm:
                        continue
        except OSError:
            continue
        if text in cmd:
            found.append(int(d))
    return found


def section_hundred():
    print("\n== 100 containers `run -d ... sleep 600`, 10 at a time, then stopped and removed")

    def hull_ids():
        return hull("ps", "-q", "--no-trunc").split()

    def hull_monitors():
        return [json.loads(hull("inspect", i))[0]["State"]["MonitorPid"] for i in hull_ids()]

    hundred("hull",
            lambda i: [HULL, "--root", ROOT, "run", "-d", "--network", "none", "busybox",
                       "sleep", "600"],
            lambda ids: hull("stop", "-t", "1", *ids),
            lambda ids: hull("rm", *ids),
            hull_ids, hull_monitors)

    def podman_ids():
        return subprocess.run(podman_cmd("ps", "-q", "--no-trunc"), capture_output=True,
                              text=True).stdout.split()

    try:
        hundred("podman",
                lambda i: podman_cmd("run", "-d", "--network", "none", *PODMAN_RUN,
                                     "localhost/busybox", "sleep", "600"),
                lambda ids: subprocess.run(podman_cmd("stop", "-t", "1", *ids),
                                           capture_output=True),
                lambda ids: subprocess.run(podman_cmd("rm", "-f", *ids), capture_output=True),
                podman_ids,
                lambda: pids_whose_cmdline_has(f"{WORK}/podman/run", comm="conmon"))
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f"  podman: could not run: {e}")


def main():
    bundle = f"{WORK}/bundle"
    section_none(bundle)
    section_busy()
    section_bridge()
    section_hundred()


if __name__ == "__main__":
    main()
