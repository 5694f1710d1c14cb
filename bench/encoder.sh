#!/bin/bash
# encoder.sh — encoderd's encode path (VAE latent distribution + CLIP text states of a batch,
# into fp16 records, through encoderd_encode) on the CPU backend against diffusers 0.26.3's
# AutoencoderKL.encode and transformers' CLIPTextModel on PyTorch, same weights, batch and
# threads, in one run (bench-encoder): mktiny's SD-1 folder (8 images of 64 px) and a mid-size
# model (VAE 128/256/512/512 at 256 px, CLIP text 768 wide with 12 layers; 2 images). Prints
# samples/s of both, the ratio, and the largest relative difference of the outputs. The peer
# runs in a virtualenv, build/venv, made with Debian's python3-torch (--system-site-packages)
# with diffusers and transformers from pip when they are missing. Run by `make bench` with
# BIN=build/bin; never part of `make check`. Arguments go to bench-encoder (--threads N,
# --reps K, --only tiny|mid).
set -euo pipefail
BIN=${BIN:-build/bin}
BUILD=${BUILD:-build}
exe="$BIN/bench-encoder"
for x in "$exe" "$BIN/mktiny"; do
    if [ ! -x "$x" ]; then
        echo "bench/encoder.sh: $x is missing: run make bench" >&2
        exit 1
    fi
done
venv=$BUILD/venv
if ! "$venv/bin/python" -c 'import diffusers' 2>/dev/null; then
    echo "bench/encoder.sh: creating $venv with diffusers 0.26.3" >&2
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    # huggingface_hub before 0.26 still has cached_download, which diffusers 0.26.3 imports
    "$venv/bin/pip" install -q diffusers==0.26.3 'huggingface_hub<0.26'
fi
if ! "$venv/bin/python" -c 'import transformers' 2>/dev/null; then
    # the last transformers release line that still runs on torch 1.13
    echo "bench/encoder.sh: installing transformers 4.38.2 into $venv" >&2
    "$venv/bin/pip" install -q transformers==4.38.2 'huggingface_hub<0.26'
fi
ver=$("$venv/bin/python" -c 'import diffusers, transformers, torch
print(diffusers.__version__, transformers.__version__, torch.__version__)')
echo "bench-encoder: VAE + text encoding, ldmpipe CPU backend vs" \
    "diffusers/transformers/torch $ver ($venv)"
"$exe" --python "$venv/bin/python" --script bench/encoder/peer.py --mktiny "$BIN/mktiny" "$@"
