#!/usr/bin/python3
"""Golden values for the optimiser pieces of trainerd: learning-rate schedules,
the EMA of the weights and the 8-bit AdamW step.

    optim.py OUTFILE      write every case to the safetensors file OUTFILE

Neither diffusers nor bitsandbytes is installed where this runs (Debian's
python3-torch and numpy only), so their formulas are written out here:
  - lr: diffusers v0.26.3 optimization.py's lambdas, run by torch's own
    LambdaLR over an SGD optimiser; the rate of optimiser step k is read
    before the k-th optimizer.step(). Tensors lr.N/values (F64, step 1..K).
  - ema: diffusers EMAModel (get_decay; step increments optimization_step
    first, then s_param.sub_(one_minus_decay * (s_param - param)) on torch
    float32 tensors). Tensors ema.N/init_T, param_S_T, out_S_T (ema after
    step S of tensor T), decay (F64 per step); emaop.N: one update with a
    float32-representable decay; emadecay.N: get_decay at many steps.
  - adamw8: bitsandbytes AdamW8bit (block-wise, 256 elements a block), an
    independent numpy float32 rewrite of the CUDA kernel
    kOptimizerStatic8bit2StateBlockwise's order of operations (exact
    division and powers in double stand in for __fdividef and __powf), with
    the maps of create_dynamic_map. Tensors adamw8.N/param (initial), grad_S,
    then after step S: param_S, m_q_S, v_q_S, m_absmax_S, v_absmax_S.
    maps/signed, maps/unsigned: the maps (torch's linspace formula evaluated
    element by element in float32); maps/torch_signed, maps/torch_unsigned:
    the same built with torch.linspace as bitsandbytes does (its vectorised
    path may differ from the formula in the last bit).
The metadata maps each case name to a JSON object {"op": ..., options}.
tests/unit/test_optim.c runs this with /usr/bin/python3 and compares.
"""
import json
import math
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)
f32 = np.float32

CASES = {}    # name -> metadata dict
TENSORS = {}  # name -> numpy array

DTYPES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8",
          np.dtype(np.int64): "I64"}


def put(case, role, a):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    TENSORS[case + "/" + role] = np.ascontiguousarray(a).copy()


# ---- learning-rate schedules (diffusers v0.26.3 optimization.py) ---------------------------

def warmup_part(c, W):
    return float(c) / float(max(1, W))


def lambda_for(kind, W, T, cycles, power, lr_end, lr_init):
    if kind == "constant":
        return lambda _: 1
    if kind == "constant_with_warmup":
        return lambda c: float(c) / float(max(1.0, W)) if c < W else 1.0
    if kind == "linear":
        return lambda c: warmup_part(c, W) if c < W else max(
            0.0, float(T - c) / float(max(1, T - W)))
    if kind == "cosine":
        def cosine(c):
            if c < W:
                return warmup_part(c, W)
            progress = float(c - W) / float(max(1, T - W))
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress)))
        return cosine
    if kind == "cosine_with_restarts":
        def restarts(c):
            if c < W:
                return warmup_part(c, W)
            progress = float(c - W) / float(max(1, T - W))
            if progress >= 1.0:
                return 0.0
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(cycles) * progress) % 1.0))))
        return restarts
    if kind == "polynomial":
        def poly(c):
            if c < W:
                return warmup_part(c, W)
            if c > T:
                return lr_end / lr_init
            lr_range = lr_init - lr_end
            decay_steps = T - W
            pct_remaining = 1 - (c - W) / decay_steps
            decay = lr_range * pct_remaining ** power + lr_end
            return decay / lr_init
        return poly
    raise ValueError(kind)


LR_CASES = [
    ("constant", 1e-4, 0, 0, 1.0, 1.0, 1e-7, 40),
    ("constant_with_warmup", 1e-4, 10, 0, 1.0, 1.0, 1e-7, 40),
    ("constant_with_warmup", 3e-5, 0, 0, 1.0, 1.0, 1e-7, 10),
    ("linear", 1e-4, 10, 100, 1.0, 1.0, 1e-7, 130),
    ("linear", 5e-6, 0, 57, 1.0, 1.0, 1e-7, 70),
    ("cosine", 1e-4, 10, 100, 0.5, 1.0, 1e-7, 130),
    ("cosine", 2e-4, 0, 77, 0.5, 1.0, 1e-7, 90),
    ("cosine", 1e-3, 5, 50, 1.5, 1.0, 1e-7, 60),
    ("cosine_with_restarts", 1e-4, 10, 100, 1, 1.0, 1e-7, 130),
    ("cosine_with_restarts", 1e-4, 7, 93, 3, 1.0, 1e-7, 110),
    ("polynomial", 1e-4, 10, 100, 1.0, 1.0, 1e-7, 130),
    ("polynomial", 3e-4, 0, 60, 1.0, 2.0, 1e-6, 80),
    ("polynomial", 1e-4, 20, 45, 1.0, 0.5, 1e-7, 60),
]


def lr_cases():
    for i, (kind, lr, W, T, cycles, power, lr_end, K) in enumerate(LR_CASES):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda_for(kind, W, T, cycles, power, lr_end, opt.defaults["lr"]))
        vals = []
        for _ in range(K):
            vals.append(opt.param_groups[0]["lr"])
            p.grad = torch.zeros(1)
            opt.step()
            sched.step()
        name = "lr.%d" % i
        put(name, "values", np.array(vals, dtype=np.float64))
        CASES[name] = dict(op="lr", kind=kind, base_lr=float(lr), warmup=W, total=T,
                           cycles=float(cycles), power=float(power), lr_end=float(lr_end), steps=K)


# ---- EMA (diffusers v0.26.3 training_utils.EMAModel) ---------------------------------------

class Ema:
    def __init__(self, params, decay=0.9999, min_decay=0.0, update_after_step=0,
                 use_ema_warmup=False, inv_gamma=1.0, power=2 / 3):
        self.shadow_params = [p.clone().detach() for p in params]
        self.decay, self.min_decay = decay, min_decay
        self.update_after_step = update_after_step
        self.use_ema_warmup, self.inv_gamma, self.power = use_ema_warmup, inv_gamma, power
        self.optimization_step = 0

    def get_decay(self, optimization_step):
        step = max(0, optimization_step - self.update_after_step - 1)
        if step <= 0:
            return 0.0
        if self.use_ema_warmup:
            cur = 1 - (1 + step / self.inv_gamma) ** -self.power
        else:
            cur = (1 + step) / (10 + step)
        cur = min(cur, self.decay)
        return max(cur, self.min_decay)

    @torch.no_grad()
    def step(self, params):
        self.optimization_step += 1
        decay = self.get_decay(self.optimization_step)
        one_minus_decay = 1 - decay
        for s_param, param in zip(self.shadow_params, params):
            s_param.sub_(one_minus_decay * (s_param - param))
        return decay


EMA_CASES = [
    dict(decay=0.9999, min_decay=0.0, update_after_step=0, use_ema_warmup=True, inv_gamma=1.0,
         power=2 / 3),
    dict(decay=0.999, min_decay=0.0, update_after_step=3, use_ema_warmup=False, inv_gamma=1.0,
         power=2 / 3),
    dict(decay=0.995, min_decay=0.2, update_after_step=1, use_ema_warmup=True, inv_gamma=2.5,
         power=0.75),
    dict(decay=0.7, min_decay=0.0, update_after_step=0, use_ema_warmup=False, inv_gamma=1.0,
         power=2 / 3),
]
EMA_SIZES = [1000, 4099]
EMA_STEPS = 12


def ema_cases():
    for i, cfg in enumerate(EMA_CASES):
        name = "ema.%d" % i
        params = [torch.randn(n) for n in EMA_SIZES]
        for t, p in enumerate(params):
            put(name, "init_%d" % t, p)
        ema = Ema(params, **cfg)
        decays = []
        for s in range(EMA_STEPS):
            params = [p + 0.01 * torch.randn_like(p) for p in params]   # a training step
            decays.append(ema.step(params))
            for t, p in enumerate(params):
                put(name, "param_%d_%d" % (s, t), p)
                put(name, "out_%d_%d" % (s, t), ema.shadow_params[t])
        put(name, "decay", np.array(decays, dtype=np.float64))
        CASES[name] = dict(op="ema", tensors=len(EMA_SIZES), steps=EMA_STEPS, **cfg)
    for i, decay in enumerate([0.999, 0.37, 0.0, 1.0, 0.9999]):
        name = "emaop.%d" % i
        d = float(f32(decay))                 # representable in float32: exact in the op
        s, p = torch.randn(777), torch.randn(777)
        put(name, "ema", s)
        put(name, "param", p)
        s = s.clone()
        s.sub_((1 - d) * (s - p))
        put(name, "out", s)
        CASES[name] = dict(op="emaop", decay=d)
    steps = list(range(1, 60)) + [99, 100, 101, 1000, 4567, 31623, 100000, 1000000, 12345678]
    for i, cfg in enumerate(EMA_CASES):
        name = "emadecay.%d" % i
        ema = Ema([], **cfg)
        put(name, "steps", np.array(steps, dtype=np.int64))
        put(name, "values", np.array([ema.get_decay(k) for k in steps], dtype=np.float64))
        CASES[name] = dict(op="emadecay", **cfg)


# ---- bitsandbytes AdamW8bit, block-wise ---------------------------------------------------

BLOCK = 256


def linspace_f32(start, end, n):
    """torch.linspace's formula, element by element in float32."""
    start, end = f32(start), f32(end)
    step = f32((end - start) / f32(n - 1))
    return np.array([f32(start + f32(step * f32(k))) if k < n // 2
                     else f32(end - f32(step * f32(n - 1 - k))) for k in range(n)], dtype=f32)


def dynamic_map(signed, linspace):
    """create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)."""
    data = []
    for i in range(7):
        items = 2 ** i + 1 if signed else 2 ** (i + 1) + 1
        b = linspace(items)
        means = (b[:-1] + b[1:]) / f32(2.0)
        scale = f32(10 ** (-6 + i))
        data += [float(v) for v in (means * scale).astype(f32)]
        if signed:
            data += [float(-v) for v in (means * scale).astype(f32)]
    data += [0.0, 1.0]
    assert len(data) == 256
    return np.array(sorted(data), dtype=f32)


def torch_linspace(n):
    return torch.linspace(0.1, 1, n, dtype=torch.float32).numpy()


def quantize(code, x, signed):
    """The kernel's quantize_2D, vectorised: binary search, then the nearer code."""
    pivot = np.full(x.shape, 127, np.int64)
    lo, up = np.zeros_like(pivot), np.full_like(pivot, 255)
    lower = np.full(x.shape, f32(-1.0 if signed else 0.0), f32)
    upper = np.full(x.shape, f32(1.0), f32)
    val = code[pivot]
    for i in [64, 32, 16, 8, 4, 2, 1]:
        gt = x > val
        lo, lower = np.where(gt, pivot, lo), np.where(gt, val, lower)
        up, upper = np.where(gt, up, pivot), np.where(gt, upper, val)
        pivot = np.where(gt, pivot + i, pivot - i)
        val = code[pivot]
    gt = x > val
    mid_up = ((upper + val) * f32(0.5)).astype(f32)
    mid_lo = ((lower + val) * f32(0.5)).astype(f32)
    return np.where(gt, np.where(x > mid_up, up, pivot), np.where(x < mid_lo, lo, pivot))


def adam8_block(st, blk, g, step, hp, maps):
    """One kernel block: st holds p, m_q, v_q, m_absmax, v_absmax (numpy, updated)."""
    b1, b2, eps, lr, wd = (f32(v) for v in hp)
    map_s, map_u = maps
    c1 = f32(1.0) - f32(float(b1) ** step)
    c2 = np.sqrt(f32(1.0) - f32(float(b2) ** step))
    step_size = (f32(-lr) * c2) / c1
    lo, hi = blk * BLOCK, min((blk + 1) * BLOCK, g.size)
    gb = g[lo:hi]
    ok = np.isfinite(gb)
    gz = np.where(ok, gb, f32(0.0)).astype(f32)
    a1, a2 = st["m_absmax"][blk], st["v_absmax"][blk]
    s2 = (map_u[st["v_q"][lo:hi]] * a2) * b2 + ((f32(1.0) - b2) * gz) * gz
    s1 = (map_s[st["m_q"][lo:hi]] * a1) * b1 + (f32(1.0) - b1) * gz
    s1, s2 = np.where(ok, s1, f32(0.0)).astype(f32), np.where(ok, s2, f32(0.0)).astype(f32)
    max1, max2 = np.abs(s1).max(), np.abs(s2).max()
    if hi - lo < BLOCK:   # padding lanes: g = 0, m code 128, v code 0
        max1 = max(max1, abs((map_s[128] * a1) * b1 + (f32(1.0) - b1) * f32(0.0)))
        max2 = max(max2, abs((map_u[0] * a2) * b2 + f32(0.0)))
    st["m_absmax"][blk], st["v_absmax"][blk] = max1, max2
    p = st["p"][lo:hi]
    upd = (p + step_size * (s1 / (np.sqrt(s2) + c2 * eps))).astype(f32)
    if wd > f32(0.0):
        upd = (upd * (f32(1.0) - lr * wd)).astype(f32)
    st["p"][lo:hi] = np.where(ok, upd, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        q1 = quantize(map_s, (s1 / max1).astype(f32), True)
        q2 = quantize(map_u, (s2 / max2).astype(f32), False)
    flip = np.signbit(map_s[q1]) != np.signbit(s1)
    q1 = np.where(flip, np.where(s1 > 0, q1 + 1, q1 - 1), q1) & 0xFF
    st["m_q"][lo:hi], st["v_q"][lo:hi] = q1.astype(np.uint8), q2.astype(np.uint8)


def adam8_step(st, g, step, hp, maps):
    for blk in range((g.size + BLOCK - 1) // BLOCK):
        adam8_block(st, blk, g, step, hp, maps)


def grads_for(n, scale):
    """Random gradients, their size varying from block to block (scale)."""
    return ((torch.randn(n) * 0.1).numpy().astype(f32) * scale).astype(f32)


ADAM8_CASES = [
    # n, steps, lr, betas, eps, wd, features
    (1000, 6, 1e-3, (0.9, 0.999), 1e-8, 1e-2, ["nonfinite", "cancel"]),
    (4099, 5, 2e-4, (0.95, 0.98), 1e-6, 0.1, ["zero_block", "garbage_fresh"]),
    (300, 4, 5e-3, (0.9, 0.999), 1e-8, 0.0, []),
    (512, 3, 1e-3, (0.8, 0.99), 1e-8, 1e-2, ["all_codes"]),
]


def adam8_cases(maps):
    for i, (n, steps, lr, betas, eps, wd, feats) in enumerate(ADAM8_CASES):
        name = "adamw8.%d" % i
        nb = (n + BLOCK - 1) // BLOCK
        scale = np.repeat(f32(10.0) ** torch.empty(nb).uniform_(-3, 1).numpy().astype(f32),
                          BLOCK)[:n].astype(f32)
        st = dict(p=torch.randn(n).numpy().astype(f32), m_q=np.zeros(n, np.uint8),
                  v_q=np.zeros(n, np.uint8), m_absmax=np.zeros(nb, f32),
                  v_absmax=np.zeros(nb, f32))
        first = 1
        if "all_codes" in feats:   # start from a state holding every code of both maps
            first = 2
            st["m_q"] = (np.arange(n) % 256).astype(np.uint8)
            st["v_q"] = ((np.arange(n) * 7 + 3) % 256).astype(np.uint8)
            st["m_absmax"] = np.array([0.01, 0.003], f32)[:nb]
            st["v_absmax"] = np.array([1e-4, 2e-5], f32)[:nb]
            for k in ["m_q", "v_q", "m_absmax", "v_absmax"]:
                put(name, k + "_init", st[k])
        put(name, "param", st["p"])
        hp = (betas[0], betas[1], eps, lr, wd)
        for s in range(steps):
            step = first + s
            g = grads_for(n, scale)
            if "zero_block" in feats:
                g[768:1024] = 0.0
            if "nonfinite" in feats and s == 1:
                g[5], g[6], g[300] = np.inf, np.nan, -np.inf
            if "cancel" in feats and s == 3:   # last block: m_new = b1·m + (1−b1)·g ≈ 0
                lo = (nb - 1) * BLOCK
                m = maps[0][st["m_q"][lo:]] * st["m_absmax"][nb - 1]
                g[lo:] = (-(f32(betas[0]) * m) / (f32(1.0) - f32(betas[0]))).astype(f32)
            put(name, "grad_%d" % s, g)
            adam8_step(st, g, step, hp, maps)
            put(name, "param_%d" % s, st["p"])
            for k in ["m_q", "v_q", "m_absmax", "v_absmax"]:
                put(name, "%s_%d" % (k, s), st[k])
        CASES[name] = dict(op="adamw8", n=n, steps=steps, first_step=first, lr=lr,
                           beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=wd,
                           garbage_fresh="garbage_fresh" in feats, init_state=first > 1)


def map_cases():
    ours = [dynamic_map(True, lambda n: linspace_f32(0.1, 1.0, n)),
            dynamic_map(False, lambda n: linspace_f32(0.1, 1.0, n))]
    theirs = [dynamic_map(True, torch_linspace), dynamic_map(False, torch_linspace)]
    put("maps", "signed", ours[0])
    put("maps", "unsigned", ours[1])
    put("maps", "torch_signed", theirs[0])
    put("maps", "torch_unsigned", theirs[1])
    CASES["maps"] = dict(op="maps")
    return ours


# ---- the file -------------------------------------------------------------------------------

def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = tensors[name]
        raw = a.tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        pad = (-len(raw)) % 8
        blobs.append(raw + b"\0" * pad)
        off += len(raw) + pad
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: optim.py OUTFILE")
    torch.manual_seed(0)
    lr_cases()
    ema_cases()
    adam8_cases(map_cases())
    meta = {k: json.dumps(v) for k, v in CASES.items()}
    write_safetensors(sys.argv[1], TENSORS, meta)


if __name__ == "__main__":
    main()
