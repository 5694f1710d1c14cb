#!/usr/bin/env bash
# badconfig.sh — every daemon refuses, at start, a configuration that cannot work: exit 78
# (EX_CONFIG) and one log line naming the key and the value. Cases: an unknown key (each
# daemon), a model folder that is not one (trainerd, encoderd, evald), a resolution that is
# not a multiple of 8 (loaderd), ranks that do not divide (trainerd), names that are not
# one of the choices (optimizer, lr_scheduler, save_precision, prediction_type,
# mixed_precision), min-SNR with flow matching, a zero_stage not 0 or 2. The cache made by
# other encoders is covered in encoderd.sh and trainerd.sh.
set -u
BIN=${BIN:-build/bin}
T=$(mktemp -d /tmp/ldmpipe-badconfig.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
export LDM_TEST_DATA=${LDM_TEST_DATA:-../shared/data}
trap 'rm -rf "$T"' EXIT
mkdir -p "$LDMPIPE_RUN_DIR" && chmod 700 "$LDMPIPE_RUN_DIR"
FAILS=0
N=0
"$BIN/mktiny" --variant sd1 --out "$T/model" >/dev/null || { echo "FAIL badconfig: mktiny"; exit 1; }
# refused DAEMON NEEDLE ARGS...: exit 78 and the last log line names NEEDLE
refused() {
    local bin=$1 needle=$2
    shift 2
    timeout 20 "$BIN/$bin" "$@" 2>"$T/err"
    local st=$? line
    line=$(grep -m1 'start-up failed\|error' "$T/err")
    N=$((N + 1))
    if [ $st -ne 78 ] || ! grep -q -- "$needle" <<<"$line"; then
        echo "FAIL badconfig: $bin $*: exit $st: $line"
        FAILS=$((FAILS + 1))
    fi
}
TR=(--model="$T/model" --cache="$T/cache" --output="$T/out" --cache_wait=0)
EV=(--model="$T/model" --checkpoints="$T/ck" --output="$T/ev")
for d in loaderd encoderd trainerd evald; do
    refused "$d" frobnicate --frobnicate=1
done
refused trainerd "model: '$T/nope'" --model="$T/nope" --cache="$T/cache" --output="$T/out"
refused encoderd "model: '$T/nope'" --model="$T/nope" --cache="$T/cache" --shards="$T/x.tar"
refused evald "model: '$T/nope'" --model="$T/nope" --checkpoints="$T/ck" --output="$T/ev"
refused evald "precision: 'fp8'" --model="$T/model" --checkpoints="$T/ck" --output="$T/ev" \
    --precision=fp8
refused loaderd "resolution: 500" --resolution=500 --tokenizer="$T/model/tokenizer"
refused loaderd "bucket_step" --buckets=true --bucket_step=60 --tokenizer="$T/model/tokenizer"
refused trainerd "local_world_size: 3" "${TR[@]}" --world_size=4 --rank=0 --local_world_size=3
refused trainerd "rank 5" "${TR[@]}" --world_size=4 --rank=5
refused trainerd "optimizer: 'sgd'" "${TR[@]}" --optimizer=sgd
refused trainerd "lr_scheduler" "${TR[@]}" --lr_scheduler=onecycle
refused trainerd "save_precision: 'fp8'" "${TR[@]}" --save_precision=fp8
refused trainerd "mixed_precision: 'fp8'" "${TR[@]}" --mixed_precision=fp8
refused trainerd "prediction_type: 'x0'" "${TR[@]}" --prediction_type=x0
refused trainerd "snr_gamma" "${TR[@]}" --prediction_type=flow --snr_gamma=5
refused trainerd "cache: no cache" "${TR[@]}"
refused trainerd "device: 'tpu'" "${TR[@]}" --device=tpu
refused trainerd "zero_stage" "${TR[@]}" --zero_stage=3
refused trainerd "zero_stage: 1 is not 0 or 2" "${TR[@]}" --zero_stage=1
[ $FAILS = 0 ] && echo "ok   badconfig: $N bad configurations refused at start, exit 78, key and value named" ||
    exit 1
echo "badconfig: all passed"
