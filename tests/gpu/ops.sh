#!/usr/bin/env bash
# ops.sh — every op of the CUDA backend but attention against the CPU backend
# (build/bin/cuda-ops: F32, BF16, F16; one line a case, then a summary).
set -u
BIN=${BIN:-build/bin}
"$BIN/cuda-ops"
st=$?
if [ $st -ne 0 ]; then
    echo "FAIL gpu ops: cuda-ops exit $st"
    exit 1
fi
