#!/usr/bin/python3
"""torch_save.py OUTDIR — small PyTorch state dicts in each container torch.save writes.

Writes into OUTDIR:
  zip.pt      zip format, pickle protocol 2 (torch's default): F32, F16, BF16,
              I64, bool, a 0-d tensor, an nn.Parameter, a transposed view and
              an offset slice that share one storage with another tensor
  zip_p4.pt   the same dict with pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL)
  legacy.pt   the same dict in the legacy format (_use_new_zipfile_serialization=False)
  module.bin  an nn.Module's state_dict (an OrderedDict with _metadata)
  nested.ckpt a Lightning-style {"state_dict": {...}, "epoch": 3, ...}
  expect.json {file: {tensor name: {"dtype", "shape", "hex"}}}, hex being the
              bytes of the tensor made contiguous (row-major, little-endian)
Run with /usr/bin/python3 (Debian's, with python3-torch).
"""
import collections
import json
import os
import sys

import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
          torch.bool: "BOOL", torch.float64: "F64", torch.int32: "I32", torch.uint8: "U8"}


def raw(t):
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    return t.numpy().tobytes().hex()


def describe(sd, prefix=""):
    out = {}
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            out[prefix + k] = {"dtype": DTYPES[v.dtype], "shape": list(v.shape), "hex": raw(v)}
        elif isinstance(v, dict):
            out.update(describe(v, prefix + k + "."))
    return out


def plain_dict():
    g = torch.Generator().manual_seed(7)
    base = torch.randn(3, 4, generator=g)
    sd = collections.OrderedDict()
    sd["conv.weight"] = base
    sd["conv.weight_t"] = base.t()                  # strided view of the same storage
    sd["conv.row1"] = base[1]                       # offset into the same storage
    sd["half"] = torch.randn(5, generator=g).half()
    sd["bf"] = torch.randn(2, 3, generator=g).bfloat16()
    sd["steps"] = torch.arange(4, dtype=torch.int64) * 1000000007
    sd["mask"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    sd["empty"] = torch.zeros(0, 3)
    sd["cols"] = torch.randn(4, 6, generator=g)[:, 1:5:2]   # strided columns
    return sd


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    expect = {}
    sd = plain_dict()
    torch.save(sd, os.path.join(out, "zip.pt"))
    torch.save(sd, os.path.join(out, "zip_p4.pt"), pickle_protocol=4)
    torch.save(sd, os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)
    for name in ("zip.pt", "zip_p4.pt", "legacy.pt"):
        expect[name] = describe(sd)
    mod = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)).state_dict()
    torch.save(mod, os.path.join(out, "module.bin"))
    expect["module.bin"] = describe(mod)
    ckpt = {"state_dict": {"model.w": torch.randn(3, 2), "model.b": torch.ones(2)},
            "epoch": 3, "global_step": 10, "lr": 0.5, "name": "run", "tags": [1, 2.0, None]}
    torch.save(ckpt, os.path.join(out, "nested.ckpt"))
    expect["nested.ckpt"] = describe(ckpt)
    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump(expect, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
