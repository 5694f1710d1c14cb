"""peer.py — pool3 features of image folders with pytorch-fid's network on PyTorch.

usage: peer.py --weights FILE [--threads N] [--batch N] [--impl auto|own|pytorch_fid]
               [--features OUT.npy] [--logits OUT.npy] [--repeat K] FOLDER...

Reads the images as pytorch-fid does (sorted names; PIL's convert("RGB");
torchvision's to_tensor), stacks consecutive images of one size into
batches of up to --batch (pytorch-fid's DataLoader needs one size per
batch), and runs them through the network of fid_inception.load on
--threads threads in this process (decoding included, as ldmfid does).
Prints one JSON line: implementation, images, seconds, images per second
(the best of --repeat runs). --features writes pool3 (N×2048 float32),
--logits the unbiased logits pool3·fc.weightᵀ (N×1008, torch-fidelity's
"logits_unbiased").
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fid_inception  # noqa: E402

EXTS = ('.jpg', '.jpeg', '.png', '.webp')


def files_of(folders):
    out = []
    for d in folders:
        names = sorted(n for n in os.listdir(d) if n.lower().endswith(EXTS))
        out += [os.path.join(d, n) for n in names]
    return out


def batches(files, size):
    """Lists of (3,H,W) tensors: consecutive images of one size, up to `size`."""
    cur = []
    for f in files:
        x = TF.to_tensor(Image.open(f).convert('RGB'))
        if cur and (x.shape != cur[0].shape or len(cur) == size):
            yield cur
            cur = []
        cur.append(x)
    if cur:
        yield cur


def run(net, files, size):
    pools, logits = [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in batches(files, size):
            p, _ = net(torch.stack(b))
            pools.append(p)
    seconds = time.perf_counter() - t0
    pool = torch.cat(pools)
    with torch.no_grad():
        logits = pool.mm(net.fc.weight.T)
    return pool.numpy(), logits.numpy(), seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weights', required=True)
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--batch', type=int, default=50)
    ap.add_argument('--impl', default='auto', choices=('auto', 'own', 'pytorch_fid'))
    ap.add_argument('--features')
    ap.add_argument('--logits')
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('folders', nargs='+')
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    net, impl = fid_inception.load(a.weights, a.impl)
    files = files_of(a.folders)
    best = None
    for _ in range(max(1, a.repeat)):
        pool, logits, seconds = run(net, files, a.batch)
        best = seconds if best is None else min(best, seconds)
    if a.features:
        np.save(a.features, pool.astype(np.float32))
    if a.logits:
        np.save(a.logits, logits.astype(np.float32))
    print(json.dumps({'impl': impl, 'torch': torch.__version__, 'images': len(files),
                      'threads': torch.get_num_threads(), 'seconds': best,
                      'img_per_s': len(files) / best}))


if __name__ == '__main__':
    main()
