#!/usr/bin/env bash
# train.sh — trainerd on the GPU follows the CPU: a tiny SD-1 model (mktiny), a cache
# encoded by loaderd + encoderd, 20 steps on cuda and on cpu from the same weights and
# draws; every step's loss must agree within 1e-4 relative. Then mixed precision on cuda:
# bf16, and fp16 with its loss scale, follow the cpu's F32 losses within 2e-2 (the bound
# the CPU's emulation of those dtypes meets, tests/integration/mixed.sh).
set -u
BIN=${BIN:-build/bin}
PY=${PYTHON:-python3}
T=$(mktemp -d /tmp/ldmpipe-gputrain.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
mkdir -p "$LDMPIPE_RUN_DIR" && chmod 700 "$LDMPIPE_RUN_DIR"
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
"$BIN/mktiny" --variant sd1 --out "$T/model" --seed 1 >/dev/null || { echo "FAIL gpu: mktiny"; exit 1; }
"$BIN/mkshards" synth --out "$T/shards" --shards 1 --per-shard 32 --size 64 --seed 5 >/dev/null
"$BIN/encoderd" --shards="$T/shards/synth-000000.tar" --cache="$T/cache" --model="$T/model" \
    --batch_size=8 --max_wait=100ms 2>"$T/enc.log" &
E=$!
"$BIN/loaderd" --tokenizer="$T/model/tokenizer" --resolution=64 2>"$T/ld.log" &
L=$!
for _ in $(seq 600); do
    n=$("$BIN/ldmctl" --json -e encoderd status 2>/dev/null |
        "$PY" -c "import json,sys; print(json.load(sys.stdin)['counters']['samples_committed'])" 2>/dev/null)
    [ "${n:-0}" -ge 32 ] && break
    sleep 0.1
done
kill $L $E
wait $L $E 2>/dev/null
run() { # NAME DEVICE [ARGS...]
    local name=$1 dev=$2
    shift 2
    "$BIN/trainerd" --id="$name" --device="$dev" --model="$T/model" --cache="$T/cache" \
        --output="$T/out-$name" --max_steps=20 --batch_size=4 --lr=1e-3 --log_every=1 \
        --save_steps=0 --seed=3 "$@" 2>"$T/$name.log" ||
        { echo "FAIL gpu: trainerd $name: $(tail -2 "$T/$name.log")"; exit 1; }
}
run cuda cuda
run cpu cpu
run bf16 cuda --mixed_precision=bf16
run fp16 cuda --mixed_precision=fp16
"$PY" - "$T/out-cuda/metrics.jsonl" "$T/out-cpu/metrics.jsonl" <<'PY' || exit 1
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
ok = len(a) == len(b) == 20 and worst <= 1e-4
print(("ok  " if ok else "FAIL") + f" gpu: 20 training steps on cuda follow cpu (worst loss difference {worst:.2e} relative)")
sys.exit(0 if ok else 1)
PY
"$PY" - "$T" <<'PY' || exit 1
import json, sys
T = sys.argv[1]
ref = [json.loads(l)["loss"] for l in open(f"{T}/out-cpu/metrics.jsonl")]
ok = True
for name in ("bf16", "fp16"):
    rows = [json.loads(l) for l in open(f"{T}/out-{name}/metrics.jsonl")]
    skipped = sum(d["skipped"] for d in rows)
    a = [d["loss"] for d in rows if not d["skipped"]]
    worst = max(abs(x - y) / abs(y) for x, y in zip(a, ref))
    good = skipped == 0 and len(a) == 20 and worst <= 2e-2
    ok &= good
    print(("ok  " if good else "FAIL") + f" gpu: 20 steps in {name} on cuda follow the cpu's F32 "
          f"(worst loss difference {worst:.2e} relative, {skipped} skipped)")
sys.exit(0 if ok else 1)
PY
