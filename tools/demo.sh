#!/usr/bin/env bash
# demo.sh — the whole pipeline on synthetic data, on the CPU (`make demo`).
#
# In a demo folder (DEMO_DIR, default build/demo, kept between runs) it makes what is
# missing: synthetic shards (mkshards synth), a tiny SD-1 model (mktiny), the test
# InceptionV3-FID weights (bench/fid/weights.py, with /usr/bin/python3) and FID
# reference statistics of the first DEMO_REF_SHARDS shards (ldmfid stats). Then it
# starts encoderd, two loaderd, trainerd and evald as daemons with their own run
# directory (DEMO_DIR/run), shows `ldmctl watch` until trainerd has trained its last
# step and evald has evaluated that checkpoint, stops them all with SIGTERM (each must
# exit 0), draws the loss curve (`ldmctl plot`) and prints where the results are.
#
# Every run trains DEMO_STEPS more steps: trainerd resumes from the newest checkpoint
# (resume=latest) and stops at that step + DEMO_STEPS, so running it again continues
# the curve (DEMO_STEPS=0 trains nothing and evaluates the newest checkpoint if it was
# not). evald evaluates each checkpoint once, also across runs. Delete the folder to
# start over (or after changing the data or model settings).
#
# A daemon that exits before the end, an evaluation that fails, or a run over
# DEMO_TIMEOUT seconds stops everything and exits 1, with the tail of the log at fault.
# Ctrl-C stops the daemons gracefully (trainerd writes a checkpoint) and exits 130.
#
# Environment (defaults):
#   BIN (build/bin)  DEMO_DIR (build/demo)  PY (/usr/bin/python3)
#   DEMO_SHARDS (4)  DEMO_PER_SHARD (64)  DEMO_SIZE (64)   synthetic data set
#   DEMO_REF_SHARDS (1)       shards in the FID reference statistics (Inception on the
#                             CPU costs about 0.25 s an image)
#   DEMO_STEPS (200)  DEMO_SAVE_STEPS (50)  DEMO_BATCH (4)  DEMO_LR (1e-3)   training
#   DEMO_EVAL_IMAGES (8)  DEMO_EVAL_STEPS (10)  DEMO_EVAL_EVERY (DEMO_SAVE_STEPS)
#                             images and sampler steps per evaluation; checkpoints whose
#                             step is a multiple of EVAL_EVERY are evaluated (the last
#                             one always is)
#   DEMO_THREADS (1)          compute threads of each daemon
#   DEMO_TIMEOUT (1800)       seconds before the run is declared stuck
#   DEMO_WATCH_INTERVAL       seconds between `ldmctl watch` refreshes (1 on a
#                             terminal, 10 otherwise)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# BIN and DEMO_DIR are relative to the caller's folder; the defaults to the source tree's
BIN=${BIN:-$ROOT/build/bin}
BIN=$(cd "$BIN" 2>/dev/null && pwd) || { echo "demo: FAILED: no folder $BIN (run make)"; exit 1; }
D=${DEMO_DIR:-$ROOT/build/demo}
mkdir -p "$D" && D=$(cd "$D" && pwd) || { echo "demo: FAILED: cannot create $D"; exit 1; }
cd "$ROOT" || exit 1
PY=${PY:-/usr/bin/python3}
SHARDS=${DEMO_SHARDS:-4}
PER_SHARD=${DEMO_PER_SHARD:-64}
SIZE=${DEMO_SIZE:-64}
REF_SHARDS=${DEMO_REF_SHARDS:-1}
STEPS=${DEMO_STEPS:-200}
SAVE_STEPS=${DEMO_SAVE_STEPS:-50}
BATCH=${DEMO_BATCH:-4}
LR=${DEMO_LR:-1e-3}
EVAL_IMAGES=${DEMO_EVAL_IMAGES:-8}
EVAL_STEPS=${DEMO_EVAL_STEPS:-10}
EVAL_EVERY=${DEMO_EVAL_EVERY:-$SAVE_STEPS}
THREADS=${DEMO_THREADS:-1}
TIMEOUT=${DEMO_TIMEOUT:-1800}
if [ -t 1 ]; then IV=${DEMO_WATCH_INTERVAL:-1}; else IV=${DEMO_WATCH_INTERVAL:-10}; fi

PIDS=()  # daemons, in start order
NAMES=() # their names (control sockets NAME.ctl)
WPID=    # ldmctl watch
T0=$SECONDS

say() { echo "demo: $*"; }
die() {
    echo "demo: FAILED: $*"
    exit 1
}

# ---- daemons --------------------------------------------------------------------------

# start NAME PROGRAM ARGS...: start a daemon (log in logs/NAME.log), wait for its socket
start() {
    local name=$1 prog=$2
    shift 2
    "$BIN/$prog" "$@" 2>"$LOGS/$name.log" &
    PIDS+=($!)
    NAMES+=("$name")
    for _ in $(seq 200); do
        [ -S "$RUN/$name.ctl" ] && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.05
    done
    check_alive
    die "$name did not open its control socket $RUN/$name.ctl in 10 s"
}

stop_watch() {
    [ -n "$WPID" ] || return 0
    kill -TERM "$WPID" 2>/dev/null
    wait "$WPID" 2>/dev/null
    WPID=
}

# A daemon gone before the end: its exit status and the tail of its log, then exit 1.
check_alive() {
    for i in "${!PIDS[@]}"; do
        kill -0 "${PIDS[$i]}" 2>/dev/null && continue
        wait "${PIDS[$i]}" 2>/dev/null
        local st=$? name=${NAMES[$i]}
        unset "PIDS[$i]"
        stop_watch
        echo
        if [ "$st" = 0 ] && tail -n 3 "$LOGS/$name.log" | grep -q 'msg="stopping on signal"'; then
            # Ctrl-C reached the daemons but not this script (started with SIGINT ignored)
            say "$name was stopped by a signal: stopping the others"
            stop_all
            exit 130
        fi
        echo "demo: FAILED: $name exited with status $st before the end;"
        echo "demo: the last lines of $LOGS/$name.log:"
        tail -n 15 "$LOGS/$name.log" | sed 's/^/    /'
        if grep -q 'made by other encoders\|encoded with another' "$LOGS/$name.log"; then
            say "the latent cache was made by another build of the encoders: remove $D/cache"
            say "(or all of $D) and run the demo again"
        fi
        exit 1
    done
}

# stop_all: SIGTERM to every daemon (last started first), each must exit 0 within 60 s.
# Returns the number that did not.
stop_all() {
    local bad=0 i
    for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
        [ -n "${PIDS[$i]:-}" ] || continue
        local p=${PIDS[$i]} name=${NAMES[$i]} st
        kill -TERM "$p" 2>/dev/null
        for _ in $(seq 600); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$p" 2>/dev/null; then
            kill -9 "$p" 2>/dev/null
            echo "demo: $name did not stop within 60 s of SIGTERM; killed"
            bad=$((bad + 1))
        fi
        wait "$p" 2>/dev/null
        st=$?
        unset "PIDS[$i]"
        if [ "$st" = 0 ]; then
            echo "demo: $name stopped (exit 0)"
        else
            echo "demo: $name exited with status $st; the last lines of $LOGS/$name.log:"
            tail -n 5 "$LOGS/$name.log" | sed 's/^/    /'
            bad=$((bad + 1))
        fi
    done
    return $bad
}

on_exit() { # after a failure: the daemons still running stop as on Ctrl-C
    trap - INT TERM
    stop_watch
    [ ${#PIDS[@]} = 0 ] || stop_all
}
on_signal() {
    trap - INT TERM
    stop_watch
    echo
    say "interrupted: stopping the daemons (trainerd writes a checkpoint; run again to go on)"
    stop_all
    exit 130
}
trap on_exit EXIT
trap on_signal INT TERM

# ---- preparation (kept between runs) ----------------------------------------------------

for p in encoderd loaderd trainerd evald ldmctl mkshards mktiny ldmfid; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing (run make)"
done
[ -x "$PY" ] || die "$PY is missing (it writes the test Inception weights; make deps)"
for v in SHARDS PER_SHARD SIZE REF_SHARDS STEPS SAVE_STEPS BATCH EVAL_IMAGES EVAL_STEPS \
    EVAL_EVERY THREADS TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "DEMO_$v must be a whole number, not '${!v}'"
done
RUN=$D/run
LOGS=$D/logs
mkdir -p "$LOGS" "$RUN" && chmod 700 "$RUN" || die "cannot create $LOGS and $RUN"
export LDMPIPE_RUN_DIR=$RUN
for n in encoderd loaderd-0 loaderd-1 trainerd evald; do
    [ -S "$RUN/$n.ctl" ] && "$BIN/ldmctl" -t 500 -e "$n" status >/dev/null 2>&1 &&
        die "$n is already running in $RUN (another demo?); stop it first: $BIN/ldmctl -r $RUN stop"
done
say "folder $D"

# made NAME CMD...: run CMD (which writes NAME's temporary twin) quietly, log on failure
made() {
    local what=$1
    shift
    "$@" >"$LOGS/prepare.log" 2>&1 || {
        tail -n 10 "$LOGS/prepare.log" | sed 's/^/    /'
        die "$what"
    }
}
if [ ! -f "$D/model/model_index.json" ]; then
    say "a tiny SD-1 model (mktiny) -> model/"
    rm -rf "$D/model.tmp"
    made "mktiny" "$BIN/mktiny" --variant sd1 --out "$D/model.tmp" --seed 1
    mv "$D/model.tmp" "$D/model"
fi
if [ ! -d "$D/shards" ]; then
    say "$SHARDS synthetic shards of $PER_SHARD images at ${SIZE}px (mkshards synth) -> shards/"
    rm -rf "$D/shards.tmp"
    made "mkshards" "$BIN/mkshards" synth --out "$D/shards.tmp" --shards "$SHARDS" \
        --per-shard "$PER_SHARD" --size "$SIZE" --seed 5
    mv "$D/shards.tmp" "$D/shards"
fi
ls "$D"/shards/*.tar >"$D/shards.list" 2>/dev/null || die "no .tar in $D/shards"
TOTAL=$(($(wc -l <"$D/shards.list") * PER_SHARD))
if [ ! -f "$D/inception.safetensors" ]; then
    say "test Inception weights (bench/fid/weights.py) -> inception.safetensors"
    made "bench/fid/weights.py" "$PY" bench/fid/weights.py "$D/.tmp-inception.safetensors"
    mv "$D/.tmp-inception.safetensors" "$D/inception.safetensors"
fi
if [ ! -f "$D/ref.npz" ]; then
    say "FID reference statistics of $REF_SHARDS shard(s) (ldmfid stats) -> ref.npz"
    mapfile -t REF < <(head -n "$REF_SHARDS" "$D/shards.list")
    made "ldmfid stats" "$BIN/ldmfid" stats "${REF[@]}" \
        --out "$D/.tmp-ref.npz" --weights "$D/inception.safetensors" --threads 2
    mv "$D/.tmp-ref.npz" "$D/ref.npz"
fi

# ---- the daemons ------------------------------------------------------------------------------

LAST=$(ls -d "$D"/train/checkpoint-* 2>/dev/null | sed 's/.*checkpoint-//' | grep -E '^[0-9]+$' |
    sort -n | tail -1)
LAST=${LAST:-0}
TARGET=$((LAST + STEPS))
[ "$TARGET" -gt 0 ] || die "DEMO_STEPS=$STEPS and no checkpoint yet: nothing to do"
if [ "$LAST" -gt 0 ]; then
    say "resuming from checkpoint-$LAST, training to step $TARGET"
else
    say "training from scratch to step $TARGET"
fi
say "prepared in $((SECONDS - T0)) s; starting encoderd, loaderd-0, loaderd-1, trainerd and evald"
say "(logs in $LOGS)"
start encoderd encoderd --shards="@$D/shards.list" --cache="$D/cache" --model="$D/model" \
    --batch_size=8 --max_wait=100ms --threads="$THREADS"
start loaderd-0 loaderd --id=0 --tokenizer="$D/model/tokenizer" --resolution="$SIZE" --threads=1
start loaderd-1 loaderd --id=1 --tokenizer="$D/model/tokenizer" --resolution="$SIZE" --threads=1
for _ in $(seq 200); do
    [ -f "$D/cache/data.mdb" ] && break
    sleep 0.05
done
start trainerd trainerd --model="$D/model" --cache="$D/cache" --output="$D/train" \
    --resume=latest --max_steps="$TARGET" --min_samples="$TOTAL" --batch_size="$BATCH" \
    --lr="$LR" --save_steps="$SAVE_STEPS" --use_ema=true --ema_decay=0.99 --log_every=1 \
    --exit_when_done=false --threads="$THREADS"
# evald scans the checkpoint folder at start; later checkpoints come by trainerd's events
# (a periodic scan while a checkpoint is being evaluated would queue it once more)
start evald evald --model="$D/model" --checkpoints="$D/train" --output="$D" \
    --inception="$D/inception.safetensors" --fid_stats="$D/ref.npz" --num_images="$EVAL_IMAGES" \
    --batch_size=4 --steps="$EVAL_STEPS" --is_splits=2 --eval_every="$EVAL_EVERY" \
    --scan_interval=1h --threads="$THREADS"

"$BIN/ldmctl" watch --interval "$IV" &
WPID=$!
RESULT=$D/eval/step-$TARGET.json
asked=0
while [ ! -f "$RESULT" ]; do
    check_alive
    if [ $asked = 0 ] && [ -d "$D/train/checkpoint-$TARGET" ]; then
        # the last checkpoint is evaluated even when EVAL_EVERY skips its step
        "$BIN/ldmctl" -e evald eval "$TARGET" >/dev/null 2>&1 && asked=1
    fi
    if [ $((SECONDS - T0)) -gt "$TIMEOUT" ]; then
        stop_watch
        "$BIN/ldmctl" watch --once
        echo "demo: FAILED: step $TARGET not trained and evaluated within $TIMEOUT s; last log lines:"
        for n in trainerd evald; do tail -n 3 "$LOGS/$n.log" | sed "s/^/    $n: /"; done
        exit 1
    fi
    sleep 1
done
# the result on the screen: one more refresh of a fast live screen, else a last snapshot
if [ -t 1 ] && awk "BEGIN { exit !($IV <= 2) }"; then
    sleep "$(awk "BEGIN { print $IV + 0.3 }")"
    stop_watch
else
    stop_watch
    "$BIN/ldmctl" watch --once
fi
echo
stop_all || die "$? daemon(s) did not stop cleanly"
if grep -q '"error"' "$RESULT"; then
    die "evaluation of step $TARGET: $(grep '"error"' "$RESULT" | head -1 | sed 's/^ *//')"
fi

# ---- results ------------------------------------------------------------------------------

jnum() { sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p" "$RESULT" | head -1; }
GRID=$(sed -n 's/.*"grid": *"\([^"]*\)".*/\1/p' "$RESULT" | head -1)
"$BIN/ldmctl" plot "$D/train/metrics.jsonl" "$D/loss.png" >"$LOGS/plot.log" 2>&1 ||
    die "ldmctl plot: $(tail -1 "$LOGS/plot.log")"
CK=$D/train/checkpoint-$TARGET
for f in "$CK/unet/diffusion_pytorch_model.safetensors" "$GRID" "$D/loss.png"; do
    [ -f "$f" ] || die "$f was not written"
done
echo
printf 'demo: done in %dm%02ds: steps %d -> %d, step %d scored FID %.4g, IS %.3f\n' \
    $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)) "$LAST" "$TARGET" "$TARGET" \
    "$(jnum fid)" "$(jnum is_mean)"
printf '  %-11s %s\n' checkpoint "$CK" grid "$GRID" metrics "$D/train/metrics.jsonl" \
    loss-curve "$D/loss.png" eval-json "$RESULT" logs "$LOGS"
echo "Run it again to train $STEPS more steps from checkpoint-$TARGET."
