"""sdpa.py — PyTorch's scaled_dot_product_attention on the shapes attn-time
measured, and the table of both.

Reads attn-time's lines ("ours N H Lq Lk D fwd_ms fwdbwd_ms") from the file
given with --ours, times torch.nn.functional.scaled_dot_product_attention in
bf16 on the same shapes and layout (q, k, v made as (N, L, H*D) tensors and
viewed as (N, H, L, D), as diffusers does), with each SDPA backend torch
offers here and with its default choice, then prints per shape the times,
TFLOP/s (forward 4*N*H*Lq*Lk*D flops, forward+backward 3.5 times that) and
the speed ratio ours/SDPA (above 1: ours is faster). Medians of 20 rounds
after 3 warm-ups, timed with CUDA events.
"""
import argparse
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ROUNDS, WARMUP = 20, 3


def make(N, H, L, D, grad):
    t = torch.rand(N, L, H * D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    t.requires_grad_(grad)
    return t


def time_rounds(fn):
    times = []
    for r in range(WARMUP + ROUNDS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        if r >= WARMUP:
            times.append(a.elapsed_time(b))
    return statistics.median(times)


def time_sdpa(N, H, Lq, Lk, D, backend):
    q, k, v = make(N, H, Lq, D, True), make(N, H, Lk, D, True), make(N, H, Lk, D, True)
    dout = torch.rand(N, H, Lq, D, device="cuda", dtype=torch.bfloat16) - 0.5

    def heads(t, L):
        return t.view(N, L, H, D).transpose(1, 2)

    def fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(heads(q, Lq), heads(k, Lk), heads(v, Lk))

    def fwdbwd():
        out = F.scaled_dot_product_attention(heads(q, Lq), heads(k, Lk), heads(v, Lk))
        torch.autograd.grad(out, (q, k, v), dout)

    if backend is None:
        return time_rounds(fwd), time_rounds(fwdbwd)
    with sdpa_kernel([backend]):
        return time_rounds(fwd), time_rounds(fwdbwd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    args = ap.parse_args()
    rows = []
    with open(args.ours) as f:
        for line in f:
            w = line.split()
            if w and w[0] == "ours":
                rows.append(tuple(int(x) for x in w[1:6]) + (float(w[6]), float(w[7])))
    backends = [("default", None), ("flash", SDPBackend.FLASH_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, bf16, "
          f"medians of {ROUNDS} rounds; ratio = SDPA time / ours (>1: ours faster)")
    hdr = (f"{'shape (N,H,Lq,Lk,D)':<24}{'pass':<8}{'ours ms':>9}{'TF/s':>7}"
           f"{'sdpa':>11}{'ms':>8}{'TF/s':>7}{'ratio':>7}")
    print(hdr)
    for N, H, Lq, Lk, D, f_ms, fb_ms in rows:
        flops = 4.0 * N * H * Lq * Lk * D
        res = {}
        for name, be in backends:
            try:
                res[name] = time_sdpa(N, H, Lq, Lk, D, be)
            except Exception as e:  # a backend that refuses the shape
                res[name] = None
                print(f"  ({name} refused {N},{H},{Lq},{Lk},{D}: {str(e).splitlines()[0][:80]})")
        shape = f"{N},{H},{Lq},{Lk},{D}"
        for i, (pname, ours, mult) in enumerate((("fwd", f_ms, 1.0), ("fwd+bwd", fb_ms, 3.5))):
            for name, r in res.items():
                if r is None:
                    continue
                t = r[i]
                print(f"{shape:<24}{pname:<8}{ours:9.3f}{mult * flops / ours / 1e9:7.0f}"
                      f"{name:>11}{t:8.3f}{mult * flops / t / 1e9:7.0f}{t / ours:7.2f}")
                shape = ""


if __name__ == "__main__":
    main()
