#!/bin/bash
# run.sh — CUDA attention timing against PyTorch SDPA, bf16, SD-1.5 shapes.
# Needs build/gpu-attn/attn-time (built from bench/attn_gpu/attn_time.c,
# linked with the library's CUDA backend) and python3 with torch on a GPU
# machine. BIN overrides the folder of attn-time.
set -euo pipefail
BIN=${BIN:-build/gpu-attn}
here=$(cd "$(dirname "$0")" && pwd)
if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "SKIP attn_gpu: no CUDA device"
    exit 0
fi
ours=$(mktemp)
trap 'rm -f "$ours"' EXIT
"$BIN/attn-time" | tee "$ours"
python3 "$here/sdpa.py" --ours "$ours"
