"""peer.py — the PyTorch side of bench-train_step: trainerd's optimiser step written
with diffusers' UNet2DConditionModel and DDPMScheduler on CPU.

usage: peer.py MODEL POOL THREADS STEPS N H W L NSAMPLES EMA

MODEL is the folder bench-train_step wrote (unet/ with its weights, scheduler/); POOL
holds NSAMPLES samples, each its fp16 latent mean and log-variance (4, H, W) and text
states (L, cross_attention_dim) side by side, the sections of the cache's records. A
step: N samples in a shuffled order, latents drawn as mean + exp(0.5·logvar)·ε, times
the VAE scaling factor 0.18215; timesteps uniform in 0..T−1, noise, add_noise; forward,
F.mse_loss against the noise, backward, clip_grad_norm_(1.0), AdamW (lr 1e-4, weight
decay 1e-2) and, when EMA is 1, diffusers' EMAModel step.
Prints "step_s SECONDS loss LOSS": the median over STEPS timed steps after one warm-up,
and the mean loss of those steps.
"""
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.training_utils import EMAModel

SCALING = 0.18215
# EMAModel.step asks transformers about DeepSpeed, which warns on every import
warnings.filterwarnings("ignore", category=FutureWarning)


def load_pool(path, nsamples, c, h, w, l, d):
    """The pool's sections as fp16 arrays (nsamples, ...)."""
    lat, txt = c * h * w, l * d
    a = np.fromfile(path, dtype=np.float16).reshape(nsamples, 2 * lat + txt)
    mean = a[:, :lat].reshape(nsamples, c, h, w)
    logvar = a[:, lat:2 * lat].reshape(nsamples, c, h, w)
    text = a[:, 2 * lat:].reshape(nsamples, l, d)
    return mean, logvar, text


def batch(pool, idx):
    """Latents drawn from the stored distributions and the text states of samples idx."""
    mean, logvar, text = (torch.from_numpy(x[idx]).float() for x in pool)
    logvar = logvar.clamp(-30.0, 20.0)
    latents = (mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)) * SCALING
    return latents, text


def step(unet, sched, opt, ema, pool, idx):
    latents, ehs = batch(pool, idx)
    noise = torch.randn_like(latents)
    t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],)).long()
    noisy = sched.add_noise(latents, noise, t)
    pred = unet(noisy, t, ehs).sample
    loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if ema is not None:
        ema.step(unet.parameters())
    return loss.item()


def main():
    model, pool_path = sys.argv[1], sys.argv[2]
    threads, steps, n, h, w, l, nsamples, use_ema = map(int, sys.argv[3:11])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet",
                                                low_cpu_mem_usage=False).train()
    sched = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    pool = load_pool(pool_path, nsamples, unet.config.in_channels, h, w, l,
                     unet.config.cross_attention_dim)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=1e-2)
    ema = EMAModel(unet.parameters(), decay=0.9999) if use_ema else None
    order = torch.randperm(nsamples)
    times, losses = [], []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        idx = order[(s * n + torch.arange(n)) % nsamples].numpy()
        loss = step(unet, sched, opt, ema, pool, idx)
        if s:
            times.append(time.perf_counter() - t0)
            losses.append(loss)
    print("step_s %.6f loss %.6f" % (statistics.median(times), statistics.mean(losses)))


if __name__ == "__main__":
    main()
