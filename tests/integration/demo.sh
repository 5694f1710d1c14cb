#!/usr/bin/env bash
# demo.sh — tools/demo.sh (make demo) in a short configuration, and the two ldmctl
# commands it shows:
#   - `ldmctl watch --once` with no daemon: one clear line, exit 3;
#   - `ldmctl plot` on a hand-written metrics file (a resumed run's repeated steps, a
#     malformed line): a PNG of the asked size with both curves; an empty file: exit 1;
#   - the demo on 16 synthetic images, 20 steps, one evaluation: exit 0, the watch
#     screen showed every daemon, each stopped with exit 0, and the files it names
#     exist (checkpoint, metrics.jsonl with 20 steps, eval JSON) and its PNGs decode;
#   - run again with 10 steps: trainerd resumes from checkpoint-20, step 30 evaluated;
#   - a daemon that dies at start (a bad trainerd setting) fails the demo (exit 1) with
#     the tail of its log.
set -u
BIN=${BIN:-build/bin}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/ldmpipe-demo.XXXXXX)
export LDM_TEST_DATA=${LDM_TEST_DATA:-../shared/data}
FAILS=0
cleanup() { [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
ok() { echo "ok   demo: $*"; }
fail() {
    echo "FAIL demo: $*"
    FAILS=$((FAILS + 1))
}
# png FILE [W H]: decodes (PIL), optionally of size W x H; prints "WxH"
png() {
    "$PY" - "$@" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]); im.load()
print("%dx%d" % im.size)
sys.exit(0 if len(sys.argv) < 4 or im.size == (int(sys.argv[2]), int(sys.argv[3])) else 1)
PY
}

# ---- ldmctl watch with no daemon ------------------------------------------------------------
mkdir -m 700 "$T/norun"
out=$(LDMPIPE_RUN_DIR=$T/norun "$BIN/ldmctl" watch --once 2>&1)
st=$?
[ $st = 3 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "no daemon control socket in $T/norun" <<<"$out" &&
    ok "watch --once, no daemon: exit 3, '$out'" || fail "watch --once, no daemon: exit $st: $out"

# ---- ldmctl plot -----------------------------------------------------------------------------
{
    for s in $(seq 1 30); do echo "{\"step\":$s,\"loss\":$(awk "BEGIN{print 0.1+1/$s}"),\"lr\":0.001}"; done
    echo '{"step":31,"loss":'   # cut by a kill -9
    for s in $(seq 21 40); do echo "{\"step\":$s,\"loss\":$(awk "BEGIN{print 0.1+1/$s}")}"; done
} >"$T/m.jsonl"
"$BIN/ldmctl" plot "$T/m.jsonl" "$T/m.png" --width 640 --height 400 >"$T/plot.out" 2>&1
st=$?
size=$(png "$T/m.png" 640 400) && [ $st = 0 ] && grep -q "40 points" "$T/plot.out" &&
    grep -q "m.jsonl:31: not JSON" "$T/plot.out" &&
    ok "plot: $size PNG, 40 points (repeated steps once, line 31 reported and skipped)" ||
    fail "plot: exit $st, size ${size:-none}: $(cat "$T/plot.out")"
"$PY" - "$T/m.png" <<'PY' && ok "plot: the loss (blue) and its moving average (red) are drawn" || fail "plot: curves missing"
import sys
from PIL import Image
px = list(Image.open(sys.argv[1]).convert("RGB").getdata())
blue = sum(1 for r, g, b in px if b > 200 and r < 180)
red = sum(1 for r, g, b in px if r > 150 and g < 80 and b < 80)
print(f"     {blue} blue and {red} red pixels")
sys.exit(0 if blue > 100 and red > 300 else 1)
PY
: >"$T/empty.jsonl"
out=$("$BIN/ldmctl" plot "$T/empty.jsonl" "$T/e.png" 2>&1)
st=$?
[ $st = 1 ] && grep -q "empty.jsonl: no line with a step" <<<"$out" && [ ! -e "$T/e.png" ] &&
    ok "plot: an empty file: exit 1, '$out'" || fail "plot, empty file: exit $st: $out"

# ---- the demo, short -------------------------------------------------------------------------
export DEMO_DIR=$T/demo DEMO_SHARDS=1 DEMO_PER_SHARD=16 DEMO_SAVE_STEPS=10 DEMO_EVAL_EVERY=20
export DEMO_EVAL_IMAGES=4 DEMO_EVAL_STEPS=2 DEMO_WATCH_INTERVAL=5
DEMO_STEPS=20 BIN=$BIN bash tools/demo.sh >"$T/run1.out" 2>&1
st=$?
path() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
if [ $st = 0 ]; then
    ok "20 steps, $(grep -o "done in [0-9m]*s" "$T/run1.out")"
else
    fail "exit $st: $(tail -n 15 "$T/run1.out")"
fi
n=0
for d in loaderd-0 loaderd-1 encoderd trainerd evald; do
    grep -q "^  $d " "$T/run1.out" && n=$((n + 1))
done
[ $n = 5 ] && grep -q '^  trainerd .*20/20 100%' "$T/run1.out" && grep -q '^  evald .*last: step 20 FID' "$T/run1.out" &&
    ok "watch showed the 5 daemons, trainerd at 20/20 and the FID of step 20" ||
    fail "watch screen: $(grep '^  ' "$T/run1.out" | tail -5)"
[ "$(grep -c 'stopped (exit 0)' "$T/run1.out")" = 5 ] && ok "5 daemons stopped with exit 0" ||
    fail "stops: $(grep -E 'stopped|exited' "$T/run1.out")"
ck=$(path checkpoint "$T/run1.out")
metrics=$(path metrics "$T/run1.out")
js=$(path eval-json "$T/run1.out")
[ -f "$ck/unet/diffusion_pytorch_model.safetensors" ] && [ -f "$ck/unet_ema/config.json" ] &&
    [ "$(basename "$ck")" = checkpoint-20 ] && ok "$(basename "$ck") with unet/ and unet_ema/" ||
    fail "checkpoint '$ck'"
[ "$(wc -l <"$metrics" 2>/dev/null)" = 20 ] && ok "metrics.jsonl has 20 steps" ||
    fail "metrics '$metrics'"
grep -q '"fid"' "$js" 2>/dev/null && ! grep -q '"error"' "$js" && ok "$(basename "$js") has a FID" ||
    fail "eval JSON '$js': $(head -c 300 "$js" 2>&1)"
[ ! -e "$T/demo/eval/step-10.json" ] && ok "one evaluation (eval_every 20)" ||
    fail "step 10 was evaluated too"
for k in grid loss-curve; do
    f=$(path "$k" "$T/run1.out")
    size=$(png "$f" 2>&1) && ok "$k $(basename "$f") decodes ($size)" || fail "$k '$f': $size"
done

# ---- again: resume ---------------------------------------------------------------------------
DEMO_STEPS=10 BIN=$BIN bash tools/demo.sh >"$T/run2.out" 2>&1
st=$?
[ $st = 0 ] && grep -q 'resuming from checkpoint-20, training to step 30' "$T/run2.out" &&
    grep -q 'msg="resumed".*step=20' "$T/demo/logs/trainerd.log" && [ -f "$T/demo/eval/step-30.json" ] &&
    [ "$(wc -l <"$metrics")" = 30 ] &&
    ok "demo again: resumed from checkpoint-20, trained to 30, step 30 evaluated" ||
    fail "demo again: exit $st: $(tail -n 12 "$T/run2.out")"

# ---- a daemon dying early fails the demo -------------------------------------------------------
DEMO_STEPS=10 DEMO_BATCH=0 BIN=$BIN bash tools/demo.sh >"$T/run3.out" 2>&1
st=$?
[ $st = 1 ] && grep -q 'FAILED: trainerd exited with status 78' "$T/run3.out" &&
    grep -q 'batch_size' "$T/run3.out" && ok "trainerd dying at start: exit 1, its log shown" ||
    fail "demo with a bad trainerd: exit $st: $(tail -n 8 "$T/run3.out")"
ls "$T"/demo/run/*.ctl >/dev/null 2>&1 && fail "demo left sockets: $(ls "$T"/demo/run)"

[ $FAILS = 0 ] || exit 1
echo "demo: all passed"
