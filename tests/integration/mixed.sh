#!/usr/bin/env bash
# mixed.sh — trainerd with mixed_precision=bf16 and fp16 (F32 master weights, reduced-
# precision activations; on the CPU backend the reduced dtypes are emulated op by op) on
# a real cache, against the same run in F32:
#   - bf16 and fp16 follow the F32 loss curve (same data and noise: the draws do not
#     depend on the precision) and the loss falls;
#   - fp16 started at loss_scale 1e8 (F16 tops out at 65504): the scaled gradients
#     overflow, those steps are skipped and the scale halves until they fit (dynamic loss
#     scaling, as torch's GradScaler);
#   - checkpoints hold F32 weights, and a resumed fp16 run restores the scale reached.
set -u
BIN=${BIN:-build/bin}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/ldmpipe-mixed.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
export LDM_TEST_DATA=${LDM_TEST_DATA:-../shared/data}
PIDS=()
FAILS=0
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"; echo "T=$T"
}
trap cleanup EXIT
ok() { echo "ok   mixed: $*"; }
fail() {
    echo "FAIL mixed: $*"
    FAILS=$((FAILS + 1))
}
mkdir -p "$LDMPIPE_RUN_DIR"
chmod 700 "$LDMPIPE_RUN_DIR"

# ---- a cache of 32 samples -------------------------------------------------------------
"$BIN/mktiny" --variant sd1 --out "$T/model" --seed 1 >/dev/null || fail "mktiny"
"$BIN/mkshards" synth --out "$T/shards" --shards 1 --per-shard 32 --size 64 --seed 5 \
    >/dev/null || fail "mkshards"
ls "$T"/shards/*.tar >"$T/list"
"$BIN/encoderd" --shards="@$T/list" --cache="$T/cache" --model="$T/model" --batch_size=8 \
    --max_wait=100ms --threads=1 2>"$T/enc.log" &
E=$!
PIDS+=($E)
"$BIN/loaderd" --tokenizer="$T/model/tokenizer" --resolution=64 --threads=1 2>"$T/ld.log" &
L=$!
PIDS+=($L)
committed() {
    "$BIN/ldmctl" --json -e encoderd status 2>/dev/null |
        "$PY" -c "import json,sys; print(json.load(sys.stdin)['counters']['samples_committed'])" \
            2>/dev/null
}
for _ in $(seq 600); do
    [ "$(committed)" -ge 32 ] 2>/dev/null && break
    sleep 0.1
done
[ "$(committed)" -ge 32 ] 2>/dev/null && ok "cache of 32 samples encoded" ||
    fail "cache not filled: $(tail -2 "$T/enc.log")"
kill $L $E
wait $L $E 2>/dev/null

TR=(--model="$T/model" --cache="$T/cache" --threads=2 --seed=3 --log_every=1 --resume=latest
    --batch_size=2 --lr=1e-3 --save_steps=0)
train() { # NAME ARGS...
    local name=$1
    shift
    "$BIN/trainerd" --id="$name" --output="$T/$name" "${TR[@]}" "$@" 2>"$T/$name.log"
}

train f32 --max_steps=16 || fail "F32 run: exit $?: $(tail -2 "$T/f32.log")"
train bf16 --max_steps=16 --mixed_precision=bf16 ||
    fail "bf16 run: exit $?: $(tail -2 "$T/bf16.log")"
train fp16 --max_steps=16 --mixed_precision=fp16 ||
    fail "fp16 run: exit $?: $(tail -2 "$T/fp16.log")"
grep -q "mixed precision on the CPU is emulated" "$T/bf16.log" && ok "bf16 on the CPU: warned" ||
    fail "no emulation warning"

"$PY" - "$T" <<'PY' && ok "bf16 and fp16 (scale 65536) follow the F32 losses" ||
import json, sys
T = sys.argv[1]
def by_step(name):
    rows = [json.loads(x) for x in open(f"{T}/{name}/metrics.jsonl")]
    return {d["step"]: d["loss"] for d in rows}, sum(d["skipped"] for d in rows)
a, _ = by_step("f32")
ok = True
for name in ("bf16", "fp16"):
    b, skipped = by_step(name)
    common = sorted(set(a) & set(b))
    rel = max(abs(b[s] - a[s]) / abs(a[s]) for s in common)
    first, last = sum(b[s] for s in common[:4]) / 4, sum(b[s] for s in common[-4:]) / 4
    print(f"     {name}: {len(common)} steps, {skipped} skipped; worst loss difference from "
          f"F32 {rel:.2e} relative; loss {first:.4f} -> {last:.4f}")
    ok &= len(common) == 16 and skipped == 0 and rel < 5e-3 and last < 0.8 * first
sys.exit(0 if ok else 1)
PY
    fail "losses: see above"

# ---- fp16 from scale 1e8: overflow, back-off; the checkpoint keeps the scale ---------------
scale() { # the loss scale in a checkpoint's trainer_state.safetensors
    "$PY" - "$1/trainer_state.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); o = h["loss_scale"]["data_offsets"][0]
print(struct.unpack("<d", raw[8 + n + o:8 + n + o + 8])[0])
PY
}
FS=(--mixed_precision=fp16 --loss_scale=1e8)
train scaled "${FS[@]}" --max_steps=2 --save_steps=2 ||
    fail "fp16 from 1e8: exit $?: $(tail -2 "$T/scaled.log")"
skips=$(grep -c "step skipped: not finite" "$T/scaled.log")
s2=$(scale "$T/scaled/checkpoint-2")
"$PY" -c "import sys; sys.exit(0 if 0 < $skips <= 12 and $s2 == 1e8 / 2 ** $skips else 1)" &&
    ok "fp16 from scale 1e8: $skips overflowing steps skipped, the scale halved each time ($s2)" ||
    fail "fp16 loss scaling: $skips skips, scale $s2"
"$PY" - "$T/scaled/checkpoint-2/unet/diffusion_pytorch_model.safetensors" <<'PY' &&
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
sys.exit(0 if all(v["dtype"] == "F32" for k, v in h.items() if k != "__metadata__") else 1)
PY
    ok "an fp16 run's checkpoint holds F32 weights" || fail "checkpoint weights not F32"
train scaled "${FS[@]}" --max_steps=3 --save_steps=3 || fail "fp16 resume: exit $?"
s3=$(scale "$T/scaled/checkpoint-3")
after=$(sed -n '/msg="resumed"/,$p' "$T/scaled.log" | grep -c "step skipped")
grep -q 'msg="resumed".*step=2' "$T/scaled.log" && [ "$after" = 0 ] && [ "$s3" = "$s2" ] &&
    ok "fp16 resumed at step 2 with its scale ($s3), no overflow again" ||
    fail "fp16 resume: scale $s2 -> $s3, $after skips after resuming"

[ $FAILS -eq 0 ] && echo "mixed: all passed" || echo "mixed: $FAILS failed"
exit $((FAILS > 0))
