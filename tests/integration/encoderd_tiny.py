# encoderd_tiny.py — a tiny diffusers model folder for encoderd's integration test:
# vae/ is the golden test VAE as it is; text_encoder/ is the golden quick-gelu CLIP text
# model with its token embedding widened to CLIP's BPE vocabulary (49408 ids, rows drawn
# with a fixed seed) so that loaderd's real tokenizer output fits it.
# usage: /usr/bin/python3 encoderd_tiny.py GOLDEN_DIR OUT_DIR
import json
import os
import shutil
import struct
import sys

import numpy as np


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, info in head.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(body[lo:hi], dtype="<f4").reshape(info["shape"])
    return out


def write_st(path, tensors):
    head, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        head[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                      "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    golden, out = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(out, "text_encoder"), exist_ok=True)
    if not os.path.isdir(os.path.join(out, "vae")):
        shutil.copytree(os.path.join(golden, "vae"), os.path.join(out, "vae"),
                        ignore=shutil.ignore_patterns("golden.safetensors"))
    src = os.path.join(golden, "clip_text_quickgelu")
    cfg = json.load(open(os.path.join(src, "config.json")))
    t = read_st(os.path.join(src, "model.safetensors"))
    t.pop("text_projection.weight", None)
    name = "text_model.embeddings.token_embedding.weight"
    rng = np.random.default_rng(7)
    t[name] = (rng.standard_normal((49408, t[name].shape[1])) * 0.02).astype("<f4")
    cfg.update(vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
               architectures=["CLIPTextModel"])
    write_st(os.path.join(out, "text_encoder", "model.safetensors"), t)
    with open(os.path.join(out, "text_encoder", "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main()
