#!/usr/bin/env bash
# evald.sh — evald end to end on the CPU: a tiny SD-1 model (mktiny), a cache encoded
# by loaderd + encoderd, trainerd writing checkpoints, evald sampling (PNDM with
# classifier-free guidance), decoding, writing PNGs and a grid, and scoring with the
# golden test Inception weights (FID against statistics of the shards from ldmfid, IS):
#   - checkpoint-2 is evaluated, evald is killed with SIGKILL, training goes on to
#     step 4, evald restarts and evaluates checkpoint-4 only: each step exactly once;
#   - with scans off, trainerd's `checkpoint` event alone brings checkpoint-6 in (its
#     prompts: the stored text states of the cache's first samples);
#   - a checkpoint with a truncated safetensors file is reported and skipped;
#   - the same checkpoint gives the same images (ldmctl eval on a copy);
#   - ldmctl status shows the queue and the last FID.
set -u
BIN=${BIN:-build/bin}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/ldmpipe-evald.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
export LDM_TEST_DATA=${LDM_TEST_DATA:-../shared/data}
PIDS=()
FAILS=0
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
ok() { echo "ok   evald: $*"; }
fail() {
    echo "FAIL evald: $*"
    FAILS=$((FAILS + 1))
}
waitfile() { # FILE [tries of 0.1 s]
    for _ in $(seq "${2:-900}"); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
mkdir -p "$LDMPIPE_RUN_DIR" && chmod 700 "$LDMPIPE_RUN_DIR"

# ---- model, cache, Inception weights, reference statistics ---------------------------------
"$BIN/mktiny" --variant sd1 --out "$T/model" --seed 1 >/dev/null || fail "mktiny"
"$BIN/mkshards" synth --out "$T/shards" --shards 1 --per-shard 24 --size 64 --seed 5 >/dev/null
"$BIN/encoderd" --shards="$T/shards/synth-000000.tar" --cache="$T/cache" --model="$T/model" \
    --batch_size=8 --max_wait=100ms --threads=1 2>"$T/enc.log" &
E=$!
PIDS+=($E)
"$BIN/loaderd" --tokenizer="$T/model/tokenizer" --resolution=64 --threads=1 2>"$T/ld.log" &
L=$!
PIDS+=($L)
"$PY" bench/fid/weights.py "$T/w.safetensors" || fail "inception test weights"
"$BIN/ldmfid" stats "$T/shards/synth-000000.tar" --out "$T/ref.npz" --weights "$T/w.safetensors" \
    --threads 1 >/dev/null 2>"$T/fid.log" || fail "reference statistics: $(tail -1 "$T/fid.log")"
for _ in $(seq 600); do
    n=$("$BIN/ldmctl" --json -e encoderd status 2>/dev/null |
        "$PY" -c "import json,sys; print(json.load(sys.stdin)['counters']['samples_committed'])" 2>/dev/null)
    [ "${n:-0}" -ge 24 ] && break
    sleep 0.1
done
kill $L $E
wait $L $E 2>/dev/null

TR=(--model="$T/model" --cache="$T/cache" --output="$T/ck" --threads=1 --batch_size=4 --lr=1e-3
    --save_steps=2 --seed=3 --use_ema=true --ema_decay=0.9)
EV=(--model="$T/model" --checkpoints="$T/ck" --output="$T/ev" --threads=1 --num_images=4
    --batch_size=2 --steps=3 --inception="$T/w.safetensors" --fid_stats="$T/ref.npz" --is_splits=2)
"$BIN/trainerd" "${TR[@]}" --max_steps=2 2>"$T/t1.log" || fail "trainerd to step 2: $(tail -1 "$T/t1.log")"

# ---- checkpoint-2, kill -9, training goes on, restart: checkpoint-4 ----------------------
"$BIN/evald" "${EV[@]}" 2>"$T/e1.log" &
P=$!
PIDS+=($P)
waitfile "$T/ev/eval/step-2.json" || fail "step 2 not evaluated: $(tail -2 "$T/e1.log")"
kill -9 $P
wait $P 2>/dev/null
"$PY" - "$T/ev/eval/step-2.json" <<'PY' && ok "checkpoint-2: $(cat "$T/r")" || fail "step-2.json: $(head -c 400 "$T/ev/eval/step-2.json")"
import json, math, sys, os
r = json.load(open(sys.argv[1]))
good = all(k in r for k in ("fid", "is_mean", "is_std", "grid")) and r["ema"] is True
good = good and math.isfinite(r["fid"]) and r["is_mean"] >= 1.0 and os.path.exists(r["grid"])
open(os.path.dirname(sys.argv[1]) + "/../../r", "w").write(
    "FID %.4g, IS %.4g ± %.2g from unet_ema, grid written" % (r.get("fid", 0), r.get("is_mean", 0), r.get("is_std", 0)))
sys.exit(0 if good else 1)
PY
ls "$T"/ev/eval/step-2/*.png >/dev/null 2>&1 && ok "$(ls "$T"/ev/eval/step-2/*.png | wc -l) PNGs kept" || fail "no PNGs"
"$BIN/trainerd" "${TR[@]}" --max_steps=4 2>"$T/t2.log" || fail "trainerd to step 4: $(tail -1 "$T/t2.log")"
"$BIN/evald" "${EV[@]}" 2>"$T/e2.log" &
P=$!
PIDS+=($P)
waitfile "$T/ev/eval/step-4.json" || fail "step 4 not evaluated after the restart: $(tail -2 "$T/e2.log")"
n2=$(cat "$T"/e1.log "$T"/e2.log | grep -c 'msg="evaluated" step=2 ')
n4=$(cat "$T"/e1.log "$T"/e2.log | grep -c 'msg="evaluated" step=4 ')
[ "$n2" = 1 ] && [ "$n4" = 1 ] && ok "after kill -9 and restart: step 2 evaluated once, step 4 once" ||
    fail "evaluations: step 2 x$n2, step 4 x$n4"

# ---- status, a repeat request ------------------------------------------------------------
"$BIN/ldmctl" --json -e evald status >"$T/st.json" 2>&1
"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if 'queue' in d and d['last']['step']==4 and 'fid' in d['last'] else 1)" "$T/st.json" &&
    ok "status shows the queue and the last result" || fail "status: $(head -c 300 "$T/st.json")"
"$BIN/ldmctl" --json -e evald eval 2 >"$T/again.json" 2>&1
grep -q '"queued": *false' "$T/again.json" && ok "ldmctl eval 2: already evaluated, not queued again" ||
    fail "eval 2: $(cat "$T/again.json")"

# ---- the checkpoint event alone (scans off) ----------------------------------------------
kill -TERM $P
wait $P 2>/dev/null
"$BIN/evald" "${EV[@]}" --scan_interval=1h --prompts_cache="$T/cache" --num_prompts=3 2>"$T/e3.log" &
P=$!
PIDS+=($P)
waitfile "$LDMPIPE_RUN_DIR/evald.ctl" 100
"$BIN/trainerd" "${TR[@]}" --max_steps=6 2>"$T/t3.log" || fail "trainerd to step 6: $(tail -1 "$T/t3.log")"
waitfile "$T/ev/eval/step-6.json" 300 && grep -q 'checkpoint event.*step=6' "$T/e3.log" &&
    ok "trainerd's checkpoint event brought step 6 in (scans off)" ||
    fail "step 6 by event: $(grep -E 'event|evaluat' "$T/e3.log" | tail -2)"

# ---- a truncated checkpoint is reported and skipped; the same checkpoint, the same images --
cp -r "$T/ck/checkpoint-6" "$T/ck/checkpoint-100"
for p in unet unet_ema; do
    f="$T/ck/checkpoint-100/$p/diffusion_pytorch_model.safetensors"
    head -c 1000 "$f" >"$f.cut" && mv "$f.cut" "$f"
done
cp -r "$T/ck/checkpoint-6" "$T/ck/checkpoint-106"
"$BIN/ldmctl" -e evald eval 100 >/dev/null && "$BIN/ldmctl" -e evald eval 106 >/dev/null ||
    fail "ldmctl eval refused"
waitfile "$T/ev/eval/step-106.json" 600
grep -q '"error"' "$T/ev/eval/step-100.json" 2>/dev/null &&
    ok "truncated checkpoint reported: $(grep -o '"error": *"[^"]*' "$T/ev/eval/step-100.json" | cut -c1-110)..." ||
    fail "truncated checkpoint: $(cat "$T/ev/eval/step-100.json" 2>&1 | head -c 300)"
same=1
for f in "$T"/ev/eval/step-6/*.png; do
    cmp -s "$f" "$T/ev/eval/step-106/$(basename "$f")" || same=0
done
[ $same = 1 ] && ok "the same checkpoint gives the same images" || fail "images differ between two evaluations"
kill -TERM $P
wait $P
st=$?
[ $st = 0 ] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $st"

# ---- precision=bf16: the UNet samples in bf16 (emulated here); images close to fp32's ----------
mkdir -p "$T/ck6" && cp -r "$T/ck/checkpoint-6" "$T/ck6/"
"$BIN/evald" "${EV[@]}" --checkpoints="$T/ck6" --output="$T/evb" --precision=bf16 \
    2>"$T/eb.log" &
P=$!
PIDS+=($P)
waitfile "$T/evb/eval/step-6.json" 600 || fail "bf16: step 6 not evaluated: $(tail -2 "$T/eb.log")"
kill -TERM $P
wait $P
"$PY" - "$T/ev/eval/step-6" "$T/evb/eval/step-6" <<'PY' && ok "precision=bf16: $(cat "$T/bd")" ||
import glob, os, struct, sys, zlib
def pixels(path): # our PNGs: 8-bit RGB, any of the five row filters
    raw = open(path, "rb").read()
    pos, idat, w = 8, b"", 0
    while pos < len(raw):
        n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + n]
        if kind == b"IHDR": w, h = struct.unpack(">II", body[:8])
        if kind == b"IDAT": idat += body
        pos += 12 + n
    data, stride, out, prev = zlib.decompress(idat), 3 * w, [], bytearray(3 * w)
    for r in range(len(data) // (stride + 1)):
        f, line = data[r * (stride + 1)], bytearray(data[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):
            a, b, c = line[i - 3] if i >= 3 else 0, prev[i], prev[i - 3] if i >= 3 else 0
            p = a + b - c
            pred = [0, a, b, (a + b) // 2,
                    a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c][f]
            line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return out
diffs = []
for f in sorted(glob.glob(sys.argv[1] + "/*.png")):
    a, b = pixels(f), pixels(os.path.join(sys.argv[2], os.path.basename(f)))
    diffs.append(sum(abs(x - y) for x, y in zip(a, b)) / len(a))
mean = sum(diffs) / max(len(diffs), 1)
open(os.path.dirname(sys.argv[1]) + "/../../bd", "w").write(
    f"{len(diffs)} images, mean |difference| {mean:.2f} of 255 from fp32's")
sys.exit(0 if diffs and 0 < mean < 8 else 1)  # 0 would mean fp32 ran
PY
    fail "precision=bf16: images differ from fp32's: $(cat "$T/bd" 2>/dev/null)"
[ $FAILS = 0 ] || exit 1
echo "evald: all passed"
