#!/usr/bin/env bash
# device.sh — the CUDA backend finds and describes the machine's GPUs.
set -u
BIN=${BIN:-build/bin}
out=$("$BIN/gpuinfo")
st=$?
if [ $st -ne 0 ]; then
    echo "FAIL gpu: gpuinfo exit $st: $out"
    exit 1
fi
echo "$out" | sed 's/^/     /'
echo "ok   gpu: $(echo "$out" | wc -l) device(s) described"
