#!/usr/bin/env python3
"""Writes a file tree of about SIZE MiB shaped like a distribution root: many small files,
some medium, a few large, in nested dirs, with symlinks."""
import os, random, sys

root, size_mib = sys.argv[1], float(sys.argv[2])
rnd = random.Random(7)
left = int(size_mib * 1024 * 1024)
i = 0
while left > 0:
    d = os.path.join(root, f"usr/lib/pkg{i % 97}/sub{i % 13}")
    os.makedirs(d, exist_ok=True)
    sz = min(left, rnd.choice([300, 800, 1500, 3000, 4096, 6000, 9000, 12000, 20000, 30000, 60000, 150000]) if rnd.random() < 0.995 else 4000000)
    body = rnd.randbytes(sz // 2) + b"x" * (sz - sz // 2)
    p = os.path.join(d, f"file{i}")
    with open(p, "wb") as f:
        f.write(body)
    if i % 50 == 0:
        os.symlink(f"file{i}", os.path.join(d, f"link{i}"))
    left -= sz
    i += 1
print(i)
