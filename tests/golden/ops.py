#!/usr/bin/python3
"""Golden tensors for the nn/ op set, from PyTorch on CPU (float32, autograd).

    ops.py OUTFILE      write every case to the safetensors file OUTFILE

Each case runs one op on random inputs (fixed seeds; odd sizes, batch 1),
then backpropagates a random upstream gradient through its first output.
Tensors are named CASE/ROLE: the inputs under their op argument names (x, w,
q, ...), the outputs (y, out, lse, loss, ...), the upstream gradient (dy,
dout, dloss) and the gradients as d + input name (dx, dw, ...). The
file's metadata maps each case name to a JSON object: {"op": ..., options}.
The C test tests/unit/test_ops.c runs this with Debian's /usr/bin/python3
(python3-torch) and compares every tensor.
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)

CASES = {}    # name -> metadata dict
TENSORS = {}  # name -> tensor (float32, int32, int64 or uint8)

DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def put(case, role, t):
    TENSORS[case + "/" + role] = t.detach().cpu().clone().contiguous()


def rnd(*shape, scale=1.0):
    return torch.randn(*shape, dtype=torch.float32) * scale


def record(op, meta, inputs, fwd, grad_of, out_names, upstream="dy", g=None):
    """Run fwd(**inputs); put inputs, outputs, the upstream gradient of the
    first output (g, or random) and the gradients of the inputs named in grad_of."""
    name = "%s.%d" % (op, sum(1 for c in CASES.values() if c["op"] == op))
    torch.manual_seed(len(CASES) + 1000)
    leaves = {}
    for k, v in inputs.items():
        leaf = v.clone()
        if k in grad_of:
            leaf.requires_grad_(True)
        leaves[k] = leaf
        put(name, k, v)
    outs = fwd(**leaves)
    if not isinstance(outs, tuple):
        outs = (outs,)
    for n, o in zip(out_names, outs):
        put(name, n, o)
    if grad_of:
        if g is None:
            g = torch.randn_like(outs[0])
        put(name, upstream, g)
        outs[0].backward(g)
        for k in grad_of:
            put(name, "d" + k, leaves[k].grad)
    CASES[name] = dict(op=op, **meta)


# ---- matrix products ----------------------------------------------------------------

def linear_cases():
    for xs, din, dout, bias in [((2, 5, 7), 7, 3, True), ((1, 16), 16, 33, False),
                                ((3, 4, 64), 64, 48, True), ((1, 1, 1), 1, 1, True)]:
        ins = dict(x=rnd(*xs), w=rnd(dout, din, scale=0.3))
        if bias:
            ins["b"] = rnd(dout)
        record("linear", dict(bias=bias), ins,
               lambda x, w, b=None: F.linear(x, w, b), list(ins), ["y"])


def bmm_cases():
    for bsh, m, n, k, ta, tb, alpha in [((3,), 5, 4, 7, 0, 0, 1.0), ((2,), 5, 4, 7, 1, 0, 1.0),
                                        ((2,), 6, 3, 5, 0, 1, 0.5), ((1,), 9, 2, 4, 1, 1, 2.0),
                                        ((2, 3), 5, 4, 6, 0, 0, 0.25), ((), 3, 8, 5, 0, 1, 1.0)]:
        a = rnd(*bsh, *((k, m) if ta else (m, k)))
        b = rnd(*bsh, *((n, k) if tb else (k, n)))

        def fwd(a, b, ta=ta, tb=tb, alpha=alpha):
            oa = a.transpose(-1, -2) if ta else a
            ob = b.transpose(-1, -2) if tb else b
            return alpha * torch.matmul(oa, ob)
        record("bmm", dict(trans_a=ta, trans_b=tb, alpha=alpha), dict(a=a, b=b), fwd,
               ["a", "b"], ["y"])


# ---- convolution ----------------------------------------------------------------------

def conv_cases():
    # (x shape, K, (R, S), (sh, sw), (top, bottom, left, right), bias)
    for xs, K, (R, S), (sh, sw), pads, bias in [
            ((2, 3, 9, 7), 5, (3, 3), (1, 1), (1, 1, 1, 1), True),
            ((2, 4, 8, 8), 6, (3, 3), (2, 2), (1, 1, 1, 1), True),    # downsample conv
            ((1, 3, 9, 10), 4, (3, 3), (2, 2), (0, 1, 0, 1), True),   # VAE pad (0,1,0,1)
            ((2, 6, 5, 7), 3, (1, 1), (1, 1), (0, 0, 0, 0), True),    # 1x1
            ((1, 2, 11, 6), 3, (5, 3), (2, 1), (2, 2, 1, 1), False),
            ((3, 1, 4, 4), 1, (2, 2), (1, 1), (0, 0, 0, 0), True),
            ((1, 5, 6, 6), 2, (3, 3), (3, 3), (0, 2, 1, 0), True)]:
        C = xs[1]
        ins = dict(x=rnd(*xs), w=rnd(K, C, R, S, scale=1.0 / math.sqrt(C * R * S)))
        if bias:
            ins["b"] = rnd(K)
        t, bo, l, r = pads

        def fwd(x, w, b=None, t=t, bo=bo, l=l, r=r, sh=sh, sw=sw):
            return F.conv2d(F.pad(x, (l, r, t, bo)), w, b, stride=(sh, sw))
        record("conv2d", dict(stride_h=sh, stride_w=sw, pad_top=t, pad_bottom=bo, pad_left=l,
                              pad_right=r, bias=bias), ins, fwd, list(ins), ["y"])


# ---- normalization --------------------------------------------------------------------

def norm_cases():
    for xs, G, eps, affine, silu in [((2, 8, 5, 3), 4, 1e-6, True, False),
                                     ((2, 8, 5, 3), 4, 1e-6, True, True),
                                     ((1, 6, 7), 3, 1e-5, True, True),
                                     ((2, 4, 3, 3), 2, 1e-5, False, False),
                                     ((1, 5, 4, 2), 5, 1e-6, True, False),
                                     ((3, 12, 1, 1), 3, 1e-5, True, True)]:
        C = xs[1]
        ins = dict(x=rnd(*xs, scale=2.0) + 0.5)
        if affine:
            ins["gamma"] = rnd(C, scale=0.5) + 1.0
            ins["beta"] = rnd(C, scale=0.5)

        def fwd(x, gamma=None, beta=None, G=G, eps=eps, silu=silu):
            y = F.group_norm(x, G, gamma, beta, eps)
            n, g = x.shape[0], G
            xg = x.reshape(n, g, -1)
            mean = xg.mean(-1)
            rstd = 1.0 / torch.sqrt(xg.var(-1, unbiased=False) + eps)
            return (F.silu(y) if silu else y), mean, rstd
        record("group_norm", dict(groups=G, eps=eps, affine=affine, silu=silu), ins, fwd,
               list(ins), ["y", "mean", "rstd"])
    for xs, eps, affine in [((2, 5, 12), 1e-5, True), ((7, 33), 1e-5, False),
                            ((1, 1, 768), 1e-5, True), ((3, 9), 1e-6, True)]:
        D = xs[-1]
        ins = dict(x=rnd(*xs) * 3.0 - 1.0)
        if affine:
            ins["gamma"] = rnd(D, scale=0.5) + 1.0
            ins["beta"] = rnd(D, scale=0.5)

        def fwd(x, gamma=None, beta=None, eps=eps, D=D):
            y = F.layer_norm(x, (D,), gamma, beta, eps)
            mean = x.mean(-1)
            rstd = 1.0 / torch.sqrt(x.var(-1, unbiased=False) + eps)
            return y, mean, rstd
        record("layer_norm", dict(eps=eps, affine=affine), ins, fwd, list(ins),
               ["y", "mean", "rstd"])


# ---- pointwise --------------------------------------------------------------------------

def pointwise_cases():
    acts = [("silu", F.silu), ("gelu", F.gelu),
            ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
            ("quick_gelu", lambda x: x * torch.sigmoid(1.702 * x))]
    for act, fn in acts:
        for xs in [(3, 17, 5), (1, 1)]:
            record("act", dict(act=act), dict(x=rnd(*xs, scale=3.0)),
                   lambda x, fn=fn: fn(x), ["x"], ["y"])
    for hs in [(2, 5, 14), (1, 2), (4, 40)]:
        def geglu(h):
            a, g = h.chunk(2, dim=-1)
            return a * F.gelu(g)
        record("geglu", {}, dict(h=rnd(*hs, scale=2.0)), geglu, ["h"], ["y"])
    for xs, scale in [((4, 9), 1.0), ((2, 3, 17), 5.0), ((1, 1), 1.0), ((3, 200), 10.0)]:
        record("softmax", {}, dict(x=rnd(*xs, scale=scale)), lambda x: F.softmax(x, dim=-1),
               ["x"], ["y"])


# ---- attention ------------------------------------------------------------------------------

def attention_cases():
    # (N, Lq, Lk, H, Dh, Dv, causal, masked, scale)
    for N, Lq, Lk, H, Dh, Dv, causal, masked, scale in [
            (2, 37, 37, 3, 8, 8, False, False, 0.0),
            (2, 19, 13, 2, 8, 6, False, False, 0.0),     # cross-attention
            (1, 70, 70, 2, 16, 16, True, False, 0.0),    # causal across a query block
            (2, 150, 150, 1, 4, 4, False, True, 0.0),    # key mask across key blocks
            (2, 77, 77, 2, 8, 8, True, True, 0.0),       # CLIP-like
            (1, 130, 260, 2, 16, 8, False, False, 0.3),
            (1, 1, 5, 1, 3, 2, False, False, 0.0),
            (2, 9, 200, 4, 5, 7, True, False, 0.0)]:     # causal with Lk > Lq
        q = rnd(N, Lq, H * Dh)
        k = rnd(N, Lk, H * Dh)
        v = rnd(N, Lk, H * Dv)
        ins = dict(q=q, k=k, v=v)
        if masked:
            m = (torch.rand(N, Lk) > 0.3).to(torch.uint8)
            m[:, 0] = 1   # every query row sees at least key 0
            ins["key_mask"] = m
        sc = scale if scale != 0.0 else 1.0 / math.sqrt(Dh)

        def fwd(q, k, v, key_mask=None, N=N, Lq=Lq, Lk=Lk, H=H, Dh=Dh, Dv=Dv, causal=causal,
                sc=sc):
            qh = q.view(N, Lq, H, Dh).transpose(1, 2)
            kh = k.view(N, Lk, H, Dh).transpose(1, 2)
            vh = v.view(N, Lk, H, Dv).transpose(1, 2)
            s = torch.matmul(qh, kh.transpose(-1, -2)) * sc
            allow = torch.ones(N, 1, Lq, Lk, dtype=torch.bool)
            if causal:
                allow = allow & torch.ones(Lq, Lk, dtype=torch.bool).tril()
            if key_mask is not None:
                allow = allow & key_mask.bool()[:, None, None, :]
            s = s.masked_fill(~allow, float("-inf"))
            lse = torch.logsumexp(s, dim=-1)
            o = torch.matmul(torch.softmax(s, dim=-1), vh)
            return o.transpose(1, 2).reshape(N, Lq, H * Dv), lse
        record("attention", dict(heads=H, scale=scale, causal=causal, masked=masked), ins, fwd,
               ["q", "k", "v"], ["out", "lse"], upstream="dout")


# ---- resampling and pooling -----------------------------------------------------------------------

def resample_cases():
    for xs in [(2, 3, 5, 4), (1, 1, 1, 1)]:
        record("upsample", {}, dict(x=rnd(*xs)), lambda x: F.interpolate(x, scale_factor=2.0,
               mode="nearest"), ["x"], ["y"])
    for xs, k, s, p, cip in [((2, 3, 8, 6), (2, 2), (2, 2), (0, 0), True),
                             ((1, 4, 7, 5), (3, 3), (1, 1), (1, 1), False),  # Inception
                             ((2, 2, 9, 7), (3, 3), (2, 2), (1, 1), True),
                             ((1, 3, 9, 7), (2, 2), (2, 2), (0, 0), True),
                             ((1, 2, 6, 8), (3, 2), (2, 3), (1, 1), False)]:
        record("avg_pool", dict(kernel_h=k[0], kernel_w=k[1], stride_h=s[0], stride_w=s[1],
                                pad_h=p[0], pad_w=p[1], count_include_pad=cip),
               dict(x=rnd(*xs)),
               lambda x, k=k, s=s, p=p, cip=cip: F.avg_pool2d(x, k, s, p,
                                                              count_include_pad=cip),
               ["x"], ["y"])
    for xs, k, s, p in [((2, 3, 9, 11), (3, 3), (2, 2), (0, 0)),
                        ((1, 2, 6, 6), (2, 2), (2, 2), (1, 1)),
                        ((2, 2, 5, 7), (3, 3), (1, 1), (1, 1)),
                        ((1, 1, 4, 9), (2, 3), (1, 2), (1, 1))]:
        record("max_pool", dict(kernel_h=k[0], kernel_w=k[1], stride_h=s[0], stride_w=s[1],
                                pad_h=p[0], pad_w=p[1]),
               dict(x=rnd(*xs)), lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p), ["x"],
               ["y"])
    for xs, out in [((2, 3, 9, 7), (1, 1)), ((2, 3, 9, 7), (4, 3)), ((1, 2, 5, 5), (5, 5)),
                    ((1, 2, 7, 10), (2, 4)), ((1, 1, 3, 2), (7, 5))]:
        record("adaptive_pool", dict(out_h=out[0], out_w=out[1]), dict(x=rnd(*xs)),
               lambda x, out=out: F.adaptive_avg_pool2d(x, out), ["x"], ["y"])
    for xs, out, aa in [((1, 3, 13, 17), (29, 31), False), ((2, 2, 40, 30), (13, 11), False),
                        ((1, 2, 7, 9), (7, 9), False), ((1, 1, 20, 5), (7, 9), False),
                        ((2, 3, 40, 37), (9, 12), True), ((1, 2, 5, 6), (11, 13), True),
                        ((1, 1, 20, 5), (7, 9), True), ((1, 3, 64, 48), (29, 29), True)]:
        record("bilinear", dict(out_h=out[0], out_w=out[1], antialias=aa), dict(x=rnd(*xs)),
               lambda x, out=out, aa=aa: F.interpolate(x, size=out, mode="bilinear",
                                                       align_corners=False, antialias=aa),
               ["x"], ["y"])


# ---- moving tensors around ---------------------------------------------------------------------------

def layout_cases():
    for shapes in [[(2, 3, 4, 5), (2, 1, 4, 5), (2, 6, 4, 5)], [(3, 4), (3, 7)],
                   [(1, 2, 3)]]:
        ins = {"x%d" % i: rnd(*s) for i, s in enumerate(shapes)}
        record("concat", dict(parts=len(shapes)), ins,
               lambda **kw: torch.cat([kw["x%d" % i] for i in range(len(kw))], dim=1),
               list(ins), ["y"])
    for xs in [(2, 5, 7), (1, 40, 33)]:
        record("transpose", {}, dict(x=rnd(*xs)), lambda x: x.transpose(1, 2).contiguous(),
               ["x"], ["y"])
    for xs, alpha, beta, two in [((3, 4, 5), 0.7, -1.3, True), ((2, 9), 2.0, 0.0, False)]:
        ins = dict(a=rnd(*xs))
        if two:
            ins["b"] = rnd(*xs)
        record("add", dict(alpha=alpha, beta=beta), ins,
               lambda a, b=None, alpha=alpha, beta=beta: alpha * a + (beta * b if b is not None
                                                                     else 0.0),
               list(ins), ["y"])
    for xs in [(2, 6, 4, 3), (2, 5, 7), (1, 3)]:
        ins = dict(x=rnd(*xs), v=rnd(xs[0], xs[1]))

        def bcast(x, v):
            return x + v.reshape(v.shape + (1,) * (x.dim() - 2))
        record("add_bcast", {}, ins, bcast, ["x", "v"], ["y"])


# ---- embeddings ------------------------------------------------------------------------------------------

def timestep_embedding(t, dim, flip, shift, scale, max_period):
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32)
    exponent = exponent / (half - shift)
    emb = torch.exp(exponent)
    emb = t[:, None].float() * emb[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def embed_cases():
    for t, dim, flip, shift, scale, mp in [([0.0, 1.0, 500.0, 999.0], 320, True, 0.0, 1.0, 1e4),
                                           ([3.0, 17.5], 33, False, 1.0, 1.0, 1e4),
                                           ([999.0], 256, True, 0.0, 1.0, 1e4),
                                           ([10.0, 20.0, 30.0], 64, False, 1.0, 2.0, 100.0)]:
        record("timestep", dict(dim=dim, flip_sin_to_cos=flip, downscale_freq_shift=shift,
                                scale=scale, max_period=mp),
               dict(t=torch.tensor(t, dtype=torch.float32)),
               lambda t, dim=dim, flip=flip, shift=shift, scale=scale, mp=mp:
               timestep_embedding(t, dim, flip, shift, scale, mp), [], ["y"])
    for ids, V, D, dt in [([[1, 3, 3, 0, 10, 5, 3], [2, 2, 9, 7, 1, 0, 4]], 11, 6, torch.int64),
                          ([4, 4, 4], 5, 3, torch.int32), ([[0]], 1, 9, torch.int64)]:
        record("embedding", dict(vocab=V, width=D),
               dict(ids=torch.tensor(ids, dtype=dt), table=rnd(V, D)),
               lambda ids, table: F.embedding(ids.long(), table), ["table"], ["y"])


# ---- training ------------------------------------------------------------------------------------------------

def train_cases():
    for xs, weighted in [((3, 4, 5, 5), True), ((1, 7), False), ((2, 3, 8), True)]:
        ins = dict(pred=rnd(*xs), target=rnd(*xs))
        if weighted:
            ins["weights"] = torch.rand(xs[0]) * 2.0 + 0.1
        dloss = torch.tensor([1.7], dtype=torch.float32)

        def mse(pred, target, weights=None):
            per = F.mse_loss(pred, target, reduction="none")
            per = per.mean(dim=list(range(1, per.dim())))
            if weights is not None:
                per = per * weights
            return per.mean().reshape(1)
        record("mse", dict(weighted=weighted), ins, mse, ["pred", "target"], ["loss"],
               upstream="dloss", g=dloss)
    for max_norm in [0.5, 1e3, 0.0]:
        name = "clip.%d" % sum(1 for c in CASES.values() if c["op"] == "clip")
        gs = [rnd(5, 7), rnd(13), rnd(2, 3, 4) * 0.1]
        params = [torch.zeros_like(g, requires_grad=True) for g in gs]
        for i, (p, g) in enumerate(zip(params, gs)):
            p.grad = g.clone()
            put(name, "g%d" % i, g)
        if max_norm > 0.0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            norm = torch.norm(torch.stack([torch.norm(g, 2.0) for g in gs]), 2.0)
        put(name, "norm", norm.reshape(1))
        for i, p in enumerate(params):
            put(name, "out%d" % i, p.grad)
        CASES[name] = dict(op="clip", max_norm=max_norm, parts=len(gs))
    for n, lr, betas, eps, wd, steps in [(37, 1e-3, (0.9, 0.999), 1e-8, 1e-2, 3),
                                         (5, 0.1, (0.8, 0.99), 1e-6, 0.5, 4)]:
        name = "adamw.%d" % sum(1 for c in CASES.values() if c["op"] == "adamw")
        p = torch.nn.Parameter(rnd(n))
        put(name, "param", p)
        opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd,
                                foreach=False)
        for s in range(steps):
            g = rnd(n)
            put(name, "grad%d" % s, g)
            p.grad = g.clone()
            opt.step()
        st = opt.state[p]
        put(name, "out_param", p)
        put(name, "out_m", st["exp_avg"])
        put(name, "out_v", st["exp_avg_sq"])
        CASES[name] = dict(op="adamw", lr=lr, beta1=betas[0], beta2=betas[1], eps=eps,
                           weight_decay=wd, steps=steps)


# ---- the file ------------------------------------------------------------------------------------------------

def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        pad = (-len(raw)) % 8   # keep every tensor 8-byte aligned
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
        sys.exit("usage: ops.py OUTFILE")
    torch.manual_seed(0)
    for fn in [linear_cases, bmm_cases, conv_cases, norm_cases, pointwise_cases,
               attention_cases, resample_cases, layout_cases, embed_cases, train_cases]:
        fn()
    meta = {k: json.dumps(v) for k, v in CASES.items()}
    write_safetensors(sys.argv[1], TENSORS, meta)


if __name__ == "__main__":
    main()
