#!/usr/bin/env python3
"""Writes an OCI image layout with N gzip layers of about SIZE MiB of file data each
(half random, half repetitive text, so it compresses like real binaries and text)."""
import gzip, hashlib, io, json, os, random, sys, tarfile

out, n, size_mib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rnd = random.Random(42)
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)

def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)

layers, diff_ids = [], []
for i in range(n):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        left = int(size_mib * 1024 * 1024)
        j = 0
        while left > 0:
            sz = min(left, rnd.choice([2048, 8192, 65536, 300000, 1500000]))
            body = rnd.randbytes(sz // 2) + (b"hull layer %d file %d\n" % (i, j)) * (sz // 2 // 20 + 1)
            body = body[:sz]
            info = tarfile.TarInfo(f"layer{i}/d{j % 17}/f{j}")
            info.size, info.mode, info.mtime = len(body), 0o644, 1700000000
            t.addfile(info, io.BytesIO(body))
            left -= sz
            j += 1
    tar = raw.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    d, s = put(gzip.compress(tar, compresslevel=1, mtime=0))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})

config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cd, cs = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                       "layers": layers}).encode()
md, ms = put(manifest)
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
with open(f"{out}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
