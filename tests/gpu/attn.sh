#!/usr/bin/env bash
# attn.sh — the CUDA attention kernels against the CPU backend (build/bin/cuda-attn).
set -u
BIN=${BIN:-build/bin}
out=$("$BIN/cuda-attn" 2>&1)
st=$?
echo "$out" | grep -v '^ok' | sed 's/^/     /'
[ $st = 0 ] && echo "ok   gpu: attention, $(echo "$out" | grep -c '^ok') cases" && exit 0
echo "FAIL gpu: cuda-attn exit $st"
exit 1
