"""loader_pil.py — the peer of bench/loader.sh: what diffusers' training
scripts do per sample with PIL and torchvision, on the same tar shards.

Per sample: group the tar members by key, PIL decode + convert("RGB"),
torchvision Resize(resolution, BILINEAR), CenterCrop(resolution),
RandomHorizontalFlip, then the uint8 HWC array (what loaderd sends).
Single thread. Prints one JSON line: samples, cpu_s, wall_s.

usage: /usr/bin/python3 loader_pil.py RESOLUTION SHARD...
"""
import io
import json
import sys
import tarfile
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms


def samples(paths):
    for path in paths:
        with tarfile.open(path, "r|*") as tar:
            key, members = None, {}
            for m in tar:
                if not m.isfile():
                    continue
                folder, _, base = m.name.rpartition("/")
                stem, _, ext = base.partition(".")
                k = folder + "/" + stem if folder else stem
                if key is not None and k != key:
                    yield members
                    members = {}
                key = k
                members[ext] = tar.extractfile(m).read()
            if members:
                yield members


def main():
    torch.set_num_threads(1)
    res = int(sys.argv[1])
    tf = transforms.Compose([
        transforms.Resize(res, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(res),
        transforms.RandomHorizontalFlip(),
    ])
    n = 0
    c0, w0 = time.process_time(), time.perf_counter()
    for m in samples(sys.argv[2:]):
        img = Image.open(io.BytesIO(m["jpg"])).convert("RGB")
        out = np.asarray(tf(img))
        caption = m["txt"].decode("utf-8")
        assert out.shape == (res, res, 3) and caption
        n += 1
    print(json.dumps({"samples": n, "cpu_s": time.process_time() - c0,
                      "wall_s": time.perf_counter() - w0}))


if __name__ == "__main__":
    main()
