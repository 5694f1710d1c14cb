#!/bin/bash
# unet_cpu.sh — one UNet training step (forward, loss, backward, AdamW) on the CPU backend
# against diffusers 0.26.3 on PyTorch, same config, shapes and threads, in one run
# (bench-unet_cpu): the tiny SD-1-like golden UNet and a mid-size one (32×32 latents,
# 128/256/256 channels, cross-attention 768). The peer runs in a virtualenv, build/venv,
# made with Debian's python3-torch (--system-site-packages) and diffusers from pip when
# it is missing. Run by `make bench` with BIN=build/bin; never part of `make check`.
# Arguments go to bench-unet_cpu (--threads N, --steps K, --only tiny|mid).
set -euo pipefail
BIN=${BIN:-build/bin}
BUILD=${BUILD:-build}
exe="$BIN/bench-unet_cpu"
if [ ! -x "$exe" ]; then
    echo "bench/unet_cpu.sh: $exe is missing: run make bench" >&2
    exit 1
fi
venv=$BUILD/venv
if ! "$venv/bin/python" -c 'import diffusers' 2>/dev/null; then
    echo "bench/unet_cpu.sh: creating $venv with diffusers 0.26.3" >&2
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    # huggingface_hub before 0.26 still has cached_download, which diffusers 0.26.3 imports
    "$venv/bin/pip" install -q diffusers==0.26.3 'huggingface_hub<0.26'
fi
ver=$("$venv/bin/python" -c 'import diffusers, torch; print(diffusers.__version__, torch.__version__)')
echo "bench-unet_cpu: training step, ldmpipe CPU backend vs diffusers/torch $ver ($venv)"
"$exe" --python "$venv/bin/python" --script bench/unet_cpu/peer.py \
    --data "${LDM_TEST_DATA:-../shared/data}" "$@"
