"""peer.py — the PyTorch side of bench-encoder: diffusers' AutoencoderKL.encode (the latent
distribution's mean and log-variance) and transformers' CLIPTextModel (last_hidden_state) on
CPU, over the batch bench-encoder wrote, with its outputs stored as fp16 as encoderd does.

usage: peer.py make-mid DIR
         writes DIR/vae (AutoencoderKL 128/256/512/512, 256 px) and DIR/text_encoder
         (CLIPTextModel 768 wide, 12 layers) with random weights (seed 0), as safetensors
       peer.py serve DIR THREADS N H W L WORK
         reads WORK/pixels.u8 (N, H, W, 3) and WORK/ids.i32 (N, L), loads the models, then
         answers one line per line of its input: "encode" runs the batch and prints
         "encode_s SECONDS"; "save" writes the last run's WORK/peer_mean.f32,
         WORK/peer_logvar.f32 (N, C, h, w) and WORK/peer_text.f32 (N, L, D), little-endian
         float32 of the fp16 values, and prints "saved". It exits at the end of its input.
"""
import sys
import time

import numpy as np
import torch
from diffusers import AutoencoderKL
from transformers import CLIPTextConfig, CLIPTextModel


def make_mid(out):
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), norm_num_groups=32, sample_size=256,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    vae.save_pretrained(out + "/vae", safe_serialization=True)
    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                         num_hidden_layers=12, num_attention_heads=12,
                         max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    CLIPTextModel(cfg).save_pretrained(out + "/text_encoder", safe_serialization=True)


def encode(vae, te, pixels, ids):
    """One batch: uint8 NHWC -> [-1, 1] NCHW -> latent mean and log-variance; ids -> text."""
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    dist = vae.encode(x).latent_dist
    text = te(ids).last_hidden_state
    return dist.mean.half(), dist.logvar.half(), text.half()


def serve(model, threads, n, h, w, l, work):
    torch.set_num_threads(threads)
    # low_cpu_mem_usage=False: the plain load, without asking for accelerate
    vae = AutoencoderKL.from_pretrained(model + "/vae", low_cpu_mem_usage=False).eval()
    te = CLIPTextModel.from_pretrained(model + "/text_encoder", low_cpu_mem_usage=False).eval()
    pixels = np.fromfile(work + "/pixels.u8", dtype=np.uint8).reshape(n, h, w, 3)
    ids = np.fromfile(work + "/ids.i32", dtype="<i4").reshape(n, l).astype(np.int64)
    ids = torch.from_numpy(ids)
    out = None
    for line in sys.stdin:
        if line.strip() == "encode":
            with torch.no_grad():
                t0 = time.perf_counter()
                out = encode(vae, te, pixels, ids)
                print("encode_s %.6f" % (time.perf_counter() - t0), flush=True)
        elif line.strip() == "save" and out is not None:
            for name, t in zip(("mean", "logvar", "text"), out):
                t.float().numpy().astype("<f4").tofile("%s/peer_%s.f32" % (work, name))
            print("saved", flush=True)
        else:
            sys.exit("peer.py serve: unexpected request %r" % line)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "make-mid":
        make_mid(sys.argv[2])
    elif len(sys.argv) == 9 and sys.argv[1] == "serve":
        serve(sys.argv[2], *map(int, sys.argv[3:8]), sys.argv[8])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
