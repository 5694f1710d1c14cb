"""peer.py — the PyTorch side of bench-unet_cpu: one training step of diffusers'
UNet2DConditionModel (forward, MSE loss, backward, AdamW) on CPU.

usage: peer.py CONFIG.json THREADS STEPS N H W L
Prints "step_s SECONDS", the median over STEPS timed steps after one warm-up.
"""
import json
import statistics
import sys
import time

import torch
from diffusers import UNet2DConditionModel


def main():
    config, threads, steps, n, h, w, l = sys.argv[1], *map(int, sys.argv[2:])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open(config) as f:
        cfg = json.load(f)
    unet = UNet2DConditionModel.from_config(cfg).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, weight_decay=1e-2)
    sample = torch.randn(n, unet.config.in_channels, h, w)
    target = torch.randn(n, unet.config.out_channels, h, w)
    ehs = torch.randn(n, l, unet.config.cross_attention_dim)
    t = torch.tensor([(17 + 311 * i) % 1000 for i in range(n)])
    times = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        pred = unet(sample, t, ehs).sample
        loss = torch.nn.functional.mse_loss(pred, target)
        loss.backward()
        opt.step()
        if s:
            times.append(time.perf_counter() - t0)
    print("step_s %.6f" % statistics.median(times))


if __name__ == "__main__":
    main()
