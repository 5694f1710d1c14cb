#!/usr/bin/env bash
# inception.sh — the FID InceptionV3 on the CUDA backend against the CPU backend
# (build/bin/cuda-inception: pool3, logits and unbiased logits of two batches).
set -u
BIN=${BIN:-build/bin}
out=$("$BIN/cuda-inception" 2>&1)
st=$?
echo "$out" | grep -v '^ok' | sed 's/^/     /'
[ $st = 0 ] && echo "ok   gpu: inception, $(echo "$out" | grep -c '^ok') checks" && exit 0
echo "FAIL gpu: cuda-inception exit $st"
exit 1
