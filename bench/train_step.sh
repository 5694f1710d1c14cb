#!/bin/bash
# train_step.sh — trainerd's whole optimiser step (a micro-batch from the LMDB cache,
# DDPM noise, forward, MSE, backward, clipping, AdamW, optionally EMA) on the CPU backend
# against the same step in PyTorch with diffusers 0.26.3, same config, weights, shapes
# and threads, in one run (bench-train_step): the tiny SD-1-like golden UNet and a
# mid-size one (32×32 latents, 128/256/256 channels, cross-attention 768). The peer runs
# in a virtualenv, build/venv, made with Debian's python3-torch (--system-site-packages)
# and diffusers from pip when it is missing. Run by `make bench` with BIN=build/bin;
# never part of `make check`.
# Arguments go to bench-train_step (--threads N, --steps K, --only tiny|mid, --with-ema).
set -euo pipefail
BIN=${BIN:-build/bin}
BUILD=${BUILD:-build}
exe="$BIN/bench-train_step"
if [ ! -x "$exe" ]; then
    echo "bench/train_step.sh: $exe is missing: run make bench" >&2
    exit 1
fi
venv=$BUILD/venv
if ! "$venv/bin/python" -c 'import diffusers' 2>/dev/null; then
    echo "bench/train_step.sh: creating $venv with diffusers 0.26.3" >&2
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    # huggingface_hub before 0.26 still has cached_download, which diffusers 0.26.3 imports
    "$venv/bin/pip" install -q diffusers==0.26.3 'huggingface_hub<0.26'
fi
ver=$("$venv/bin/python" -c 'import diffusers, torch; print(diffusers.__version__, torch.__version__)')
echo "bench-train_step: trainerd optimiser step, ldmpipe CPU backend vs diffusers/torch $ver ($venv)"
"$exe" --python "$venv/bin/python" --script bench/train_step/peer.py \
    --data "${LDM_TEST_DATA:-../shared/data}" "$@"
