#!/usr/bin/env bash
# soak.sh — the whole pipeline under faults (`make soak`; tests/integration/faults.sh runs
# the short version).
#
# usage: tools/soak.sh [--kills N] [--seed S]
#
# In a temporary folder it makes a tiny SD-1 model (mktiny) and SOAK_SHARDS synthetic
# shards of SOAK_PER_SHARD samples (mkshards synth), plus two damaged inputs among them:
# a shard of random bytes and a shard whose one image is truncated. It starts encoderd
# (control on tcp://127.0.0.1 with CURVE: a key pair from ldmctl keygen, one allowed
# client), two loaderd, trainerd (to step SOAK_STEPS, save_steps, keep_last) and evald
# (every checkpoint, no Inception scores), then, at seeded random moments, sends kill -9
# to a random daemon (each one first, in a seeded order) and restarts it with the same
# arguments, N times (default 50). A client with a wrong CURVE key asks encoderd for its
# status on the way.
#
# Then it waits until every shard is done (or failed), trainerd has written its last
# checkpoint and evald has evaluated every kept checkpoint, stops every daemon with
# SIGTERM, and checks, printing the figures:
#   - every sample key of the good shards (and of the damaged shard, but its truncated
#     image) is in the cache exactly once: ldmcache stat's count and per-shard counts,
#     a lookup of each key (ldmcache get), ldmcache verify;
#   - trainerd reached its target step; at most keep_last checkpoints are kept, and each
#     loads and runs (ldmrun unet on a small input);
#   - evald evaluated each kept checkpoint exactly once over all its lives (its
#     "evaluated" log lines; eval/step-N.json without an error), and no step twice;
#   - the random-bytes shard is reported failed, the truncated image rejected with its
#     key named, the wrong CURVE key refused with a log line; no other sample lost.
# It ends with a summary (kills survived by daemon, samples lost, duplicates, bad inputs
# tried and reported) and exits 0 when every check passed, 1 otherwise.
#
# Environment (defaults):
#   BIN (build/bin)   PY (/usr/bin/python3)   SOAK_DIR (a new folder under /tmp, removed
#   at the end unless KEEP=1 or a check failed)
#   SOAK_SHARDS (8)  SOAK_PER_SHARD (48)  SOAK_SIZE (64)      synthetic data
#   SOAK_STEPS (120)  SOAK_SAVE_STEPS (10)  SOAK_KEEP_LAST (3)  SOAK_BATCH (2)  training
#   SOAK_GAP_MS (500 3000)   smallest and largest pause between two kills, in ms
#   SOAK_TIMEOUT (1800)      seconds for the whole run
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/bin}
BIN=$(cd "$BIN" 2>/dev/null && pwd) || { echo "soak: FAILED: no folder $BIN (run make)"; exit 1; }
cd "$ROOT" || exit 1
PY=${PY:-/usr/bin/python3}
KILLS=50
SEED=1
while [ $# -gt 0 ]; do
    case $1 in
    --kills) KILLS=${2:-}; shift 2 || break ;;
    --kills=*) KILLS=${1#*=}; shift ;;
    --seed) SEED=${2:-}; shift 2 || break ;;
    --seed=*) SEED=${1#*=}; shift ;;
    *) echo "usage: tools/soak.sh [--kills N] [--seed S]"; exit 2 ;;
    esac
done
SHARDS=${SOAK_SHARDS:-8}
PER=${SOAK_PER_SHARD:-48}
SIZE=${SOAK_SIZE:-64}
STEPS=${SOAK_STEPS:-120}
SAVE=${SOAK_SAVE_STEPS:-10}
KEEP_LAST=${SOAK_KEEP_LAST:-3}
BATCH=${SOAK_BATCH:-2}
read -r GAP_MIN GAP_MAX <<<"${SOAK_GAP_MS:-500 3000}"
TIMEOUT=${SOAK_TIMEOUT:-1800}
for v in KILLS SEED SHARDS PER SIZE STEPS SAVE KEEP_LAST BATCH GAP_MIN GAP_MAX TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "soak: FAILED: $v must be a whole number, not '${!v}'"; exit 2; }
done
[ "$GAP_MAX" -ge "$GAP_MIN" ] || GAP_MAX=$GAP_MIN
RANDOM=$SEED # every random choice below follows from the seed

T=${SOAK_DIR:-$(mktemp -d /tmp/ldmpipe-soak.XXXXXX)}
mkdir -p "$T" && T=$(cd "$T" && pwd) || { echo "soak: FAILED: cannot create $T"; exit 1; }
export LDMPIPE_RUN_DIR=$T/run
R=$LDMPIPE_RUN_DIR
L=$T/logs
mkdir -p "$R" "$L" && chmod 700 "$R"
T0=$SECONDS
FAILS=0
declare -A PID ARGS PROG KILLED
NAMES=(encoderd loaderd-0 loaderd-1 trainerd evald)

say() { echo "soak: $*"; }
ok() { echo "ok   soak: $*"; }
fail() {
    echo "FAIL soak: $*"
    FAILS=$((FAILS + 1))
}
die() {
    echo "soak: FAILED: $*"
    FAILS=$((FAILS + 1))
    exit 1
}
cleanup() {
    for n in "${NAMES[@]}"; do [ -n "${PID[$n]:-}" ] && kill -9 "${PID[$n]}" 2>/dev/null; done
    if [ "$FAILS" = 0 ] && [ -z "${KEEP:-}" ] && [ -z "${SOAK_DIR:-}" ]; then
        rm -rf "$T"
    else
        echo "soak: folder kept: $T (logs in $L)"
    fi
}
trap cleanup EXIT
trap 'echo; die "interrupted"' INT TERM
for p in encoderd loaderd trainerd evald ldmctl mkshards mktiny ldmcache ldmrun; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing (run make)"
done
[ -x "$PY" ] || die "$PY is missing (make deps)"

# ---- inputs: model, shards, damaged shards, keys ------------------------------------
quiet() { # WHAT CMD...: run CMD, its output in logs/prepare.log; stop on failure
    local what=$1
    shift
    "$@" >>"$L/prepare.log" 2>&1 || { tail -n 5 "$L/prepare.log"; die "$what"; }
}
say "folder $T, seed $SEED, $KILLS kills"
quiet mktiny "$BIN/mktiny" --variant sd1 --out "$T/model" --seed 1
quiet mkshards "$BIN/mkshards" synth --out "$T/shards" --shards "$SHARDS" --per-shard "$PER" \
    --size "$SIZE" --seed 5
# the damaged shard: a shard of its own whose one image (chosen by the seed) is cut short
quiet "mkshards (damaged)" "$BIN/mkshards" synth --out "$T/dmg" --shards 1 --per-shard "$PER" \
    --size "$SIZE" --seed 7
mkdir -p "$T/dmg/x"
tar -xf "$T"/dmg/synth-000000.tar -C "$T/dmg/x" || die "tar -x of the damaged shard"
TRUNC_KEY=$(printf '%09d' $((RANDOM % PER)))
img=
for f in "$T/dmg/x/$TRUNC_KEY".*; do case $f in *.txt) ;; *) img=$f ;; esac; done
[ -f "$img" ] || die "no image for key $TRUNC_KEY in the damaged shard"
truncate -s $(($(stat -c %s "$img") / 2)) "$img"
(cd "$T/dmg/x" && tar --sort=name --owner=0 --group=0 -cf "$T/shards/damaged-000000.tar" *) ||
    die "tar -c of the damaged shard"
# the corrupt shard: random bytes (from the seed)
"$PY" -c "import random,sys; random.seed($SEED); sys.stdout.buffer.write(bytes(random.getrandbits(8) for _ in range(30000)))" \
    >"$T/shards/corrupt-000000.tar" || die "random bytes"
ls "$T"/shards/*.tar >"$T/shards.list"
NSHARDS=$(wc -l <"$T/shards.list")
EXPECT=$((SHARDS * PER + PER - 1)) # every good sample; the truncated image is rejected
(cd "$T" && "$BIN/ldmctl" keygen server && "$BIN/ldmctl" keygen admin && "$BIN/ldmctl" keygen intruder) \
    >>"$L/prepare.log" 2>&1 || die "ldmctl keygen"
cp "$T/admin.pub" "$T/allow"
PORT=$((20000 + (RANDOM * 7 + SEED) % 30000))
ENC_EP=tcp://127.0.0.1:$PORT
ectl() { "$BIN/ldmctl" -t 2000 -e "$ENC_EP" -s "$T/server.pub" -k "$T/admin.key" "$@"; }
jget() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- daemons ------------------------------------------------------------------------
ARGS[encoderd]="--shards=@$T/shards.list --cache=$T/cache --model=$T/model --control=$ENC_EP
    --curve_key=$T/server.key --curve_allow=$T/allow --lease_timeout=2s --batch_size=8
    --max_wait=100ms --threads=1"
PROG[encoderd]=encoderd
for i in 0 1; do
    ARGS[loaderd-$i]="--id=$i --tokenizer=$T/model/tokenizer --resolution=$SIZE --threads=1
        --request_ms=1s --hwm=4"
    PROG[loaderd-$i]=loaderd
done
ARGS[trainerd]="--model=$T/model --cache=$T/cache --output=$T/train --resume=latest
    --max_steps=$STEPS --min_samples=$EXPECT --batch_size=$BATCH --lr=1e-3 --save_steps=$SAVE
    --keep_last=$KEEP_LAST --use_ema=true --ema_decay=0.99 --log_every=5 --exit_when_done=false
    --cache_wait=10m --threads=1"
PROG[trainerd]=trainerd
ARGS[evald]="--model=$T/model --checkpoints=$T/train --output=$T/ev --num_images=2
    --batch_size=2 --steps=2 --save_images=1 --scan_interval=3s --threads=1"
PROG[evald]=evald
for n in "${NAMES[@]}"; do KILLED[$n]=0; done

readies() { grep -c 'msg="ready"' "$L/$1.log" 2>/dev/null || true; }
# start NAME: start it (log appended to logs/NAME.log), wait for its "ready" line
start() {
    local n=$1 before
    before=$(readies "$n")
    # shellcheck disable=SC2086 # the arguments hold no blanks
    "$BIN/${PROG[$n]}" ${ARGS[$n]} 2>>"$L/$n.log" &
    PID[$n]=$!
    for _ in $(seq 600); do
        [ "$(readies "$n")" -gt "${before:-0}" ] && return 0
        kill -0 "${PID[$n]}" 2>/dev/null || break
        sleep 0.05
    done
    tail -n 5 "$L/$n.log"
    die "$n did not start (ready) within 30 s"
}
# A daemon that exited by itself is a failure: its status and the tail of its log.
check_alive() {
    local n st
    for n in "${NAMES[@]}"; do
        kill -0 "${PID[$n]}" 2>/dev/null && continue
        wait "${PID[$n]}" 2>/dev/null
        st=$?
        tail -n 8 "$L/$n.log"
        PID[$n]=
        die "$n exited by itself with status $st"
    done
}
kill9() { # NAME: kill -9 and restart with the same arguments
    local n=$1
    kill -9 "${PID[$n]}" 2>/dev/null
    { wait "${PID[$n]}"; } 2>/dev/null
    KILLED[$n]=$((KILLED[$n] + 1))
    rm -f "$R/$n.ctl"
    start "$n"
}

for n in "${NAMES[@]}"; do start "$n"; done
say "prepared and started in $((SECONDS - T0)) s: $NSHARDS shards ($SHARDS good, 1 with a truncated image, 1 of random bytes), encoderd control $ENC_EP (CURVE)"

# ---- faults: a wrong CURVE key, then N kills ------------------------------------------
"$BIN/ldmctl" -t 1500 -e "$ENC_EP" -s "$T/server.pub" -k "$T/intruder.key" status \
    >"$T/intruder.out" 2>&1 && fail "a client with a wrong CURVE key got an answer: $(cat "$T/intruder.out")"
ectl status >/dev/null 2>&1 || fail "the allowed client got no answer from encoderd"
# the first kills go to each daemon once (in a seeded order), the others to any
ORDER=("${NAMES[@]}")
for ((i = ${#ORDER[@]} - 1; i > 0; i--)); do
    j=$((RANDOM % (i + 1)))
    x=${ORDER[$i]} && ORDER[$i]=${ORDER[$j]} && ORDER[$j]=$x
done
for k in $(seq "$KILLS"); do
    sleep "$(awk -v a="$GAP_MIN" -v b="$GAP_MAX" -v r=$RANDOM 'BEGIN { printf "%.3f", (a + (b - a) * r / 32767) / 1000 }')"
    check_alive
    n=${NAMES[$((RANDOM % ${#NAMES[@]}))]}
    [ "$k" -gt ${#ORDER[@]} ] || n=${ORDER[$((k - 1))]}
    kill9 "$n"
    [ $((k % 10)) = 0 ] && say "$k kills so far ($((SECONDS - T0)) s)"
    [ $((SECONDS - T0)) -lt "$TIMEOUT" ] || die "$k of $KILLS kills in $TIMEOUT s"
done
say "$KILLS kills done in $((SECONDS - T0)) s; waiting for the pipeline to finish"

# ---- the end: every shard settled, the last checkpoint, every kept one evaluated ------
settled=0
while :; do
    check_alive
    st=$(ectl --json status 2>/dev/null) &&
        settled=$(jget 'd["progress"]["done"] + d["progress"].get("failed", 0)' <<<"$st" 2>/dev/null)
    kept=$(ls -d "$T"/train/checkpoint-* 2>/dev/null | sed 's/.*checkpoint-//' | grep -E '^[0-9]+$' | sort -n)
    waiting=0
    for s in $kept; do [ -f "$T/ev/eval/step-$s.json" ] || waiting=$((waiting + 1)); done
    if [ "${settled:-0}" -ge "$NSHARDS" ] && [ -d "$T/train/checkpoint-$STEPS" ] && [ $waiting = 0 ]; then
        break
    fi
    [ $((SECONDS - T0)) -lt "$TIMEOUT" ] ||
        die "not finished in $TIMEOUT s: shards settled ${settled:-?}/$NSHARDS, checkpoints [$(echo $kept)], $waiting not evaluated"
    sleep 1
done
# stop them all (SIGTERM, last started first): each must exit 0
for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
    n=${NAMES[$i]}
    kill -TERM "${PID[$n]}" 2>/dev/null
    wait "${PID[$n]}"
    st=$?
    PID[$n]=
    [ $st = 0 ] || fail "$n exited with status $st on SIGTERM: $(tail -n 2 "$L/$n.log")"
done
say "finished and stopped in $((SECONDS - T0)) s"
echo

# ---- checks: exactly once -------------------------------------------------------------
"$BIN/ldmcache" stat "$T/cache" --json >"$T/stat.json" || fail "ldmcache stat: $(cat "$T/stat.json")"
records=$(jget 'd["samples"]' <"$T/stat.json")
[ "$records" = "$EXPECT" ] && ok "cache: $records records = $SHARDS x $PER + $((PER - 1)) (damaged shard)" ||
    fail "cache: $records records, expected $EXPECT"
missing=0
found=0
while read -r shard; do
    case $shard in */corrupt-*) continue ;; esac
    for key in $(tar -tf "$shard" | sed 's/\..*//' | sort -u); do
        [ "$shard" = "$T/shards/damaged-000000.tar" ] && [ "$key" = "$TRUNC_KEY" ] && continue
        if "$BIN/ldmcache" get "$T/cache" "$shard/$key" >/dev/null 2>&1; then
            found=$((found + 1))
        else
            missing=$((missing + 1))
            [ $missing -le 5 ] && echo "     missing: $shard/$key"
        fi
    done
done <"$T/shards.list"
dups=$((records - found))
[ $missing = 0 ] && ok "every key found once by ldmcache get: $found of $EXPECT" ||
    fail "$missing sample(s) missing from the cache, $found found"
[ $dups = 0 ] && ok "no record twice or unknown ($records records, $found keys)" ||
    fail "$dups record(s) more than the keys found"
"$BIN/ldmcache" verify "$T/cache" >"$T/verify.out" 2>&1 && ok "ldmcache verify: $(tail -1 "$T/verify.out")" ||
    fail "ldmcache verify: $(tail -3 "$T/verify.out")"
per=$(jget '" ".join(s["url"].rsplit("/", 1)[-1] + ":" + str(s["stored"]) + "/" + str(s["rejected"]) + ":" + s["status"] for s in d["shards"]["list"])' \
    <"$T/stat.json" 2>/dev/null)
echo "     per shard (name:stored/rejected:status): $per"

# ---- checks: training and checkpoints -------------------------------------------------
kept=$(ls -d "$T"/train/checkpoint-* 2>/dev/null | sed 's/.*checkpoint-//' | grep -E '^[0-9]+$' | sort -n)
nkept=$(echo $kept | wc -w)
[ -d "$T/train/checkpoint-$STEPS" ] && ok "trainerd reached step $STEPS (checkpoint-$STEPS)" ||
    fail "no checkpoint-$STEPS: kept [$(echo $kept)]"
[ "$KEEP_LAST" = 0 ] || [ "$nkept" -le "$KEEP_LAST" ] && ok "$nkept checkpoint(s) kept (keep_last=$KEEP_LAST): $(echo $kept)" ||
    fail "$nkept checkpoints kept, keep_last=$KEEP_LAST"
"$PY" - "$T/model/unet/config.json" "$T/unet_in.safetensors" <<'PY' || fail "ldmrun input"
import json, struct, sys, random
c = json.load(open(sys.argv[1]))
ch, s, d = c["in_channels"], c["sample_size"], c["cross_attention_dim"]
random.seed(3)
ts = [("in.encoder_hidden_states", "F32", [1, 7, d]), ("in.sample", "F32", [1, ch, s, s]),
      ("in.timestep", "I64", [1])]
hdr, blobs, off = {}, b"", 0
for name, dt, shape in ts:
    n = 1
    for x in shape:
        n *= x
    b = struct.pack("<q", 500) if dt == "I64" else struct.pack("<%df" % n, *(random.gauss(0, 1) for _ in range(n)))
    hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
    blobs += b
    off += len(b)
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + blobs)
PY
loads=0
for s in $kept; do
    for part in unet unet_ema; do
        [ -d "$T/train/checkpoint-$s/$part" ] || continue
        if "$BIN/ldmrun" unet "$T/train/checkpoint-$s/$part" "$T/unet_in.safetensors" "$T/out.safetensors" \
            --threads 1 >"$T/ldmrun.log" 2>&1; then
            loads=$((loads + 1))
        else
            fail "checkpoint-$s/$part does not load: $(tail -1 "$T/ldmrun.log")"
        fi
    done
done
ok "$loads model folder(s) of the kept checkpoints load and run (ldmrun unet)"

# ---- checks: evald -----------------------------------------------------------------------
for s in $kept; do
    n=$(grep -c "msg=\"evaluated\" step=$s " "$L/evald.log")
    [ "$n" = 1 ] || fail "step $s evaluated $n times over evald's lives"
    [ -f "$T/ev/eval/step-$s.json" ] && ! grep -q '"error"' "$T/ev/eval/step-$s.json" ||
        fail "eval/step-$s.json: $(head -c 300 "$T/ev/eval/step-$s.json" 2>&1)"
done
twice=$(grep -o 'msg="evaluated" step=[0-9]*' "$L/evald.log" | sort | uniq -d | sed 's/.*=//' | tr '\n' ' ')
nev=$(grep -c 'msg="evaluated"' "$L/evald.log")
njson=$(ls "$T"/ev/eval/step-*.json 2>/dev/null | wc -l)
[ -z "$twice" ] && ok "evald: $nev evaluations over $((KILLED[evald] + 1)) lives, $njson step-N.json, none twice; each kept checkpoint once" ||
    fail "evald evaluated step(s) $twice more than once"

# ---- checks: bad inputs ------------------------------------------------------------------
reported=0
# random bytes are no tar: the loader reads them as a line shard (every line rejected) or
# reports the shard failed; either way a log line names the shard and nothing is stored
cline=$(grep -h 'msg="shard failed"\|msg="sample rejected"' "$L"/loaderd-*.log | grep 'corrupt-000000.tar' | head -1)
cstored=$(jget '[s["stored"] for s in d["shards"]["list"] if s["url"].endswith("/corrupt-000000.tar")][0]' <"$T/stat.json")
if [ -n "$cline" ] && [ "$cstored" = 0 ]; then
    reported=$((reported + 1))
    ok "random-bytes shard reported, nothing stored from it: $(cut -c1-200 <<<"$cline")"
else
    fail "random-bytes shard: no log line naming corrupt-000000.tar, or $cstored record(s) stored from it"
fi
if grep -h 'msg="sample rejected"' "$L"/loaderd-*.log | grep -q "damaged-000000.tar key=$TRUNC_KEY"; then
    reported=$((reported + 1))
    ok "truncated image reported: $(grep -h 'msg="sample rejected"' "$L"/loaderd-*.log | grep "key=$TRUNC_KEY" | head -1 | cut -c1-200)"
else
    fail "no 'sample rejected' line for damaged-000000.tar key $TRUNC_KEY"
fi
if grep -q 'client refused: key not in the allow-list' "$L/encoderd.log"; then
    reported=$((reported + 1))
    ok "wrong CURVE key refused: $(grep -h 'client refused' "$L/encoderd.log" | head -1 | cut -c1-200)"
else
    fail "no 'client refused' line in encoderd's log for the wrong CURVE key"
fi

# ---- summary ------------------------------------------------------------------------------
echo
summary="kills survived:"
total=0
for n in "${NAMES[@]}"; do
    summary+=" $n ${KILLED[$n]},"
    total=$((total + KILLED[$n]))
done
say "$summary total $total"
say "samples: $EXPECT expected, $found in the cache, lost $missing, duplicates $dups"
say "bad inputs: 3 tried (random-bytes shard, truncated image, wrong CURVE key), $reported reported"
say "checkpoints kept: $(echo $kept); evaluations $nev; $((SECONDS - T0)) s in all"
if [ $FAILS != 0 ]; then
    say "FAILED: $FAILS check(s)"
    exit 1
fi
say "all checks passed"
