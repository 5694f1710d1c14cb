#!/usr/bin/python3
"""PyTorch side of bench-ops: time ops forward and forward+backward on CPU.

    ops.py THREADS REPS SPEC...

SPEC is conv:N,C,H,W,K,R,stride,pad | linear:M,Din,Dout,... |
attn:N,H,Lq,Lk,D,causal,... (extra numbers ignored). Prints one line per
spec, "fwd_ms fwdbwd_ms", each the best of REPS runs after a warm-up.
Attention is written as diffusers runs it on torch 1.13 (no fused SDPA):
scores = q·kᵀ·scale, softmax, ·v, heads folded into the batch.
"""
import math
import sys
import time

import torch
import torch.nn.functional as F


def best(fn, reps):
    fn()
    t = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t * 1e3


def conv(n, c, h, w, k, r, s, p, *_):
    x = torch.randn(n, c, h, w, requires_grad=True)
    wt = torch.randn(k, c, r, r, requires_grad=True)
    b = torch.randn(k, requires_grad=True)
    return lambda: F.conv2d(x, wt, b, stride=s, padding=p), (x, wt, b)


def linear(m, din, dout, *_):
    x = torch.randn(m, din, requires_grad=True)
    w = torch.randn(dout, din, requires_grad=True)
    b = torch.randn(dout, requires_grad=True)
    return lambda: F.linear(x, w, b), (x, w, b)


def attn(n, h, lq, lk, d, causal, *_):
    q = torch.randn(n, lq, h * d, requires_grad=True)
    k = torch.randn(n, lk, h * d, requires_grad=True)
    v = torch.randn(n, lk, h * d, requires_grad=True)
    mask = torch.full((lq, lk), float("-inf")).triu(1) if causal else None

    def fwd():
        qh = q.view(n, lq, h, d).transpose(1, 2).reshape(n * h, lq, d)
        kh = k.view(n, lk, h, d).transpose(1, 2).reshape(n * h, lk, d)
        vh = v.view(n, lk, h, d).transpose(1, 2).reshape(n * h, lk, d)
        s = torch.baddbmm(torch.empty(n * h, lq, lk), qh, kh.transpose(1, 2), beta=0,
                          alpha=1.0 / math.sqrt(d))
        if mask is not None:
            s = s + mask
        o = torch.bmm(s.softmax(dim=-1), vh)
        return o.reshape(n, h, lq, d).transpose(1, 2).reshape(n, lq, h * d)
    return fwd, (q, k, v)


def main():
    threads, reps = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for spec in sys.argv[3:]:
        kind, nums = spec.split(":")
        args = [int(v) for v in nums.split(",")]
        fwd, leaves = {"conv": conv, "linear": linear, "attn": attn}[kind](*args)
        with torch.no_grad():
            tf = best(fwd, reps)
        y = fwd()
        dy = torch.randn_like(y)

        def both():
            for t in leaves:
                t.grad = None
            fwd().backward(dy)
        tfb = best(both, reps)
        print("%.3f %.3f" % (tf, tfb), flush=True)


if __name__ == "__main__":
    main()
