#!/usr/bin/env bash
# faults.sh — the short soak run (tools/soak.sh --kills 5): encoderd, two loaderd,
# trainerd and evald on 3 synthetic shards of 16 samples plus a shard of random bytes and
# a shard with a truncated image; each daemon is killed with SIGKILL once (seeded order
# and moments) and restarted, and a client with a wrong CURVE key asks encoderd for its
# status. Passes when every good sample is in the cache exactly once, trainerd reaches
# step 30, the kept checkpoints load, evald evaluates each exactly once, and each bad
# input is reported (soak.sh's checks). About 30 s; under two minutes on a busy machine.
set -u
BIN=${BIN:-build/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp /tmp/ldmpipe-faults.XXXXXX)
trap 'rm -f "$out"' EXIT
SOAK_SHARDS=3 SOAK_PER_SHARD=16 SOAK_STEPS=30 SOAK_SAVE_STEPS=5 SOAK_KEEP_LAST=3 \
    SOAK_GAP_MS="500 2000" SOAK_TIMEOUT=300 BIN=$BIN \
    bash "$HERE/../../tools/soak.sh" --kills 5 --seed 2 >"$out" 2>&1
st=$?
sed -n 's/^ok   soak: /ok   faults: /p; s/^FAIL soak: /FAIL faults: /p; /^soak: \(kills\|samples\|bad\)/p' "$out"
if [ $st != 0 ]; then
    echo "--- tools/soak.sh output"
    tail -n 30 "$out"
    echo "faults: FAILED (tools/soak.sh exit $st)"
    exit 1
fi
echo "faults: all passed"
