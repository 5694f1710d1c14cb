#!/usr/bin/env bash
# fid.sh — Inception feature extraction, ldmfid against pytorch-fid's network on PyTorch:
# the same PNG files (decode, ToTensor, resize to 299, InceptionV3-FID to pool3), the same
# weights (the golden test formula; the real 2015 file has the same shapes, so the same
# cost), the same threads and batch size, in one run. Each side runs twice and keeps its
# faster run (PyTorch's first run includes oneDNN's setup, ldmfid's the page cache).
# The peer is pytorch_fid 0.3.0's InceptionV3 in the virtualenv $BUILD/venv (Debian's
# python3-torch through --system-site-packages; pytorch-fid is pip-installed there without
# dependencies when missing), else bench/fid/fid_inception.py's own definition of it.
# Run by `make bench` with BIN=build/bin; never part of `make check`.
# Arguments: --threads N (2), --images N (48), --size PX (256), --batch N (50).
set -euo pipefail
BIN=${BIN:-build/bin}
BUILD=${BUILD:-build}
THREADS=2 IMAGES=48 SIZE=256 BATCH=50
while [ $# -gt 0 ]; do
    case $1 in
    --threads) THREADS=$2 ;;
    --images) IMAGES=$2 ;;
    --size) SIZE=$2 ;;
    --batch) BATCH=$2 ;;
    *) echo "usage: bench/fid.sh [--threads N] [--images N] [--size PX] [--batch N]" >&2; exit 2 ;;
    esac
    shift 2
done
exe=$BIN/ldmfid
if [ ! -x "$exe" ]; then
    echo "bench/fid.sh: $exe is missing: run make" >&2
    exit 1
fi
T=$(mktemp -d /tmp/ldmpipe-bench-fid.XXXXXX)
trap 'rm -rf "$T"' EXIT

venv=$BUILD/venv
PY=/usr/bin/python3
if [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv" 2>/dev/null; then
    "$venv/bin/python" -c 'import pytorch_fid' 2>/dev/null ||
        "$venv/bin/pip" install -q --no-deps pytorch-fid==0.3.0 >/dev/null 2>&1 || true
    "$venv/bin/python" -c 'import pytorch_fid, torch' 2>/dev/null && PY=$venv/bin/python
fi

/usr/bin/python3 bench/fid/weights.py "$T/w.pth"
/usr/bin/python3 - "$T/img" "$IMAGES" "$SIZE" <<'PYEOF'
import os, sys
import numpy as np
from PIL import Image
out, n, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out)
rng = np.random.default_rng(11)
y, x = np.mgrid[0:side, 0:side] / side
for i in range(n):   # smooth colour fields with noise, as generated samples look to a codec
    f = rng.uniform(1, 6, 6)
    a = np.stack([np.sin(f[0] * x + f[1] * y + i), np.cos(f[2] * x * y + f[3]),
                  np.sin(f[4] * (x - y) + f[5] * i)], -1) * 100 + 128
    a += rng.normal(0, 8, a.shape)
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(f'{out}/{i:05d}.png')
PYEOF

rate=0
for run in 1 2; do
    "$exe" stats "$T/img" --out "$T/s.npz" --features "$T/ours.npy" --weights "$T/w.pth" \
        --threads "$THREADS" --batch "$BATCH" 2>"$T/log"
    r=$(sed -n 's/.*msg="features extracted".* img_per_s=\([0-9.]*\).*/\1/p' "$T/log")
    rate=$(echo "if ($r > $rate) $r else $rate" | bc -l)
done
peer=$("$PY" bench/fid/peer.py --weights "$T/w.pth" --threads "$THREADS" --batch "$BATCH" \
    --repeat 2 --features "$T/peer.npy" "$T/img")
field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$peer" "$1"; }
prate=$(field img_per_s)
err=$("$PY" -c "import numpy as np; a, b = np.load('$T/ours.npy'), np.load('$T/peer.npy'); \
print('%.2g' % (abs(a - b).max() / abs(b).max()))")

echo "bench/fid: $IMAGES PNG images ${SIZE}x${SIZE} -> pool3 (decode, resize to 299, InceptionV3-FID)," \
    "$THREADS threads, batch $BATCH, $(nproc) cores"
printf '  %-52s %8.2f images/s\n' "ldmfid (nn/ CPU backend)" "$rate"
printf '  %-52s %8.2f images/s\n' "PyTorch $(field torch) ($(field impl))" "$prate"
printf '  %-52s %8.2f x\n' "ratio ldmfid / PyTorch" "$(echo "$rate / $prate" | bc -l)"
printf '  %-52s %8s\n' "pool3 max relative difference" "$err"
