"""peer.py — the PyTorch side of bench-unet_gpu: one training step of diffusers'
UNet2DConditionModel (forward, MSE loss, backward, AdamW) on a CUDA device.

usage: peer.py CONFIG.json PRECISION STEPS N H W L
PRECISION: fp32 (TF32 off, as ours) or bf16 (autocast, fp32 master weights: the
diffusers/accelerate mixed-precision recipe). Attention is diffusers' default
(AttnProcessor2_0: torch SDPA).
Prints "step_s SECONDS peak_bytes BYTES": the median over STEPS timed steps after two
warm-ups, and the peak of torch's allocator.
"""
import json
import statistics
import sys
import time

import torch

# diffusers 0.26.3 needs a huggingface_hub older than the one a recent transformers
# needs; the UNet needs neither transformers nor the hub, so keep diffusers from
# importing transformers (or peft, which imports it) at all.
import diffusers.utils as _du
import diffusers.utils.constants as _dc
import diffusers.utils.import_utils as _iu

_iu._transformers_available = False
_iu._peft_available = False
_dc.USE_PEFT_BACKEND = _du.USE_PEFT_BACKEND = False
from diffusers import UNet2DConditionModel  # noqa: E402


def main():
    config, prec, steps, n, h, w, l = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    with open(config) as f:
        cfg = json.load(f)
    dev = torch.device("cuda")
    unet = UNet2DConditionModel.from_config(cfg).to(dev).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, weight_decay=1e-2)
    sample = torch.randn(n, unet.config.in_channels, h, w, device=dev)
    target = torch.randn(n, unet.config.out_channels, h, w, device=dev)
    ehs = torch.randn(n, l, unet.config.cross_attention_dim, device=dev)
    t = torch.tensor([(17 + 311 * i) % 1000 for i in range(n)], device=dev)
    times = []
    torch.cuda.reset_peak_memory_stats()
    for s in range(steps + 2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16"):
            pred = unet(sample, t, ehs).sample
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if s >= 2:
            times.append(time.perf_counter() - t0)
    print("step_s %.6f peak_bytes %d" % (statistics.median(times), torch.cuda.max_memory_allocated()))


if __name__ == "__main__":
    main()
