#!/usr/bin/env bash
# unet.sh — the UNet on the CUDA backend against diffusers' golden tensors
# (build/bin/cuda-unet: SD-1, SD-2 and SDXL tiny cases in F32, BF16 and F16, repeatable
# backward, BF16 gradient checkpointing). The golden data is read from $LDM_TEST_DATA
# (default ../shared/data).
set -u
BIN=${BIN:-build/bin}
out=$("$BIN/cuda-unet" 2>&1)
st=$?
echo "$out" | grep -v '^ok' | sed 's/^/     /'
n=$(echo "$out" | grep '^ok' | grep -vc 'checks passed')
[ $st = 0 ] && echo "ok   gpu: unet, $n checks" && exit 0
echo "FAIL gpu: cuda-unet exit $st"
exit 1
