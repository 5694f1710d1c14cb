#!/bin/bash
# ops.sh — nn/ op throughput, CPU backend against PyTorch on the same shapes
# and threads (bench-ops), with OpenBLAS sgemm's rate as the ceiling.
# Run by `make bench` (which builds build/bin/bench-ops from bench/ops/) with
# BIN=build/bin; arguments go to bench-ops (--threads N, --quick).
set -euo pipefail
BIN=${BIN:-build/bin}
exe="$BIN/bench-ops"
if [ ! -x "$exe" ]; then
    echo "bench/ops.sh: $exe is missing: run make bench" >&2
    exit 1
fi
torch=$(/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "not found")
echo "bench-ops: nn/ ops on the CPU backend vs PyTorch $torch (/usr/bin/python3)"
"$exe" "$@"
