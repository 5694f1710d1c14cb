#!/bin/bash
# unet_gpu.sh — a UNet training step on the CUDA backend against diffusers'
# UNet2DConditionModel on PyTorch, same GPU, same run (bench-unet_gpu). Needs a CUDA
# device and a python with torch and diffusers (PYTHON, default python3); prints one
# skip line where there is none. Arguments go to bench-unet_gpu (--batch N, --steps K,
# --peer fp32,bf16, --ours fp32,bf16, --tiny, --profile for the time of each kind of op).
set -uo pipefail
BIN=${BIN:-build/bin}
PY=${PYTHON:-python3}
exe="$BIN/bench-unet_gpu"
if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "SKIP bench-unet_gpu: no CUDA device on this machine"
    exit 0
fi
if [ ! -x "$exe" ]; then
    echo "bench/unet_gpu.sh: $exe is missing: run make bench" >&2
    exit 1
fi
"$exe" --python "$PY" --script bench/unet_gpu/peer.py "$@"
