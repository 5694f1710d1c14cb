#!/usr/bin/env bash
# loader.sh — loaderd against PIL + torchvision on the same shards, same run.
#
# Work per sample: read from a tar shard, decode a 768x768 JPEG, resize the
# short side to 512 (bilinear), center crop 512, random flip; loaderd also
# builds and sends the Sample message. Rates are samples per CPU-second of
# the loader process (per core), so the sink's own work is not counted.
# The loader's CPU includes packing and sending each sample (and ZeroMQ's I/O
# thread); bench-prep times the prepare stage alone, stage by stage.
# Then 1 vs 2 loader processes (one thread each), wall-clock rate.
set -u
BIN=${BIN:-build/bin}
PY=/usr/bin/python3
TOK=${LDM_TEST_DATA:-../shared/data}/clip/bpe_simple_vocab_16e6.txt.gz
N_SHARDS=${N_SHARDS:-4}
PER_SHARD=${PER_SHARD:-100}
T=$(mktemp -d /tmp/ldmpipe-bench.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/run" && chmod 700 "$T/run"
R=$T/run

"$BIN/mkshards" synth --out "$T/shards" --shards "$N_SHARDS" --per-shard "$PER_SHARD" --size 768 \
    --seed 7 --quality 90 >/dev/null
ls "$T"/shards/*.tar >"$T/list"
TOTAL=$((N_SHARDS * PER_SHARD))

cpu_s() { # utime + stime of a pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

# run_loaders N EXTRA...: N loaderd processes until the sink has every sample;
# prints "wall_s cpu_s" (cpu of all loaders together)
run_loaders() {
    local n=$1 cpu=0 pids=() t0 t1
    shift
    "$BIN/leasesink" --leases "ipc://$R/encoderd.leases" --samples "ipc://$R/encoderd.samples" \
        --shards "$T/list" --out /dev/null --quiet-ms 100 >/dev/null 2>&1 &
    local sink=$!
    while [ ! -S "$R/encoderd.leases" ]; do sleep 0.02; done
    t0=$(date +%s.%N)
    for i in $(seq "$n"); do
        "$BIN/loaderd" --id="bench$i" --resolution=512 --threads=1 --hwm=8 "$@" 2>/dev/null &
        pids+=($!)
    done
    wait $sink
    t1=$(date +%s.%N)
    for p in "${pids[@]}"; do cpu=$(echo "$cpu + $(cpu_s "$p")" | bc -l); done
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null
    echo "$(echo "$t1 - $t0" | bc -l) $cpu"
}

run_loaders 1 >/dev/null # warm-up: page cache, CPU clocks
read -r wall1 cpu1 < <(run_loaders 1)
read -r _ cpu1t < <(run_loaders 1 --tokenizer="$TOK")
read -r wall2 _ < <(run_loaders 2)
prep=$("$BIN/bench-prep" 512 "$TOK" "$T"/shards/*.tar)
prep_ms=$(awk '/prepare \(all\)/ { print $3 }' <<<"$prep")
pil=$($PY bench/loader_pil.py 512 "$T"/shards/*.tar)
pil_cpu=$(sed 's/.*"cpu_s": \([0-9.e-]*\).*/\1/' <<<"$pil")

rate() { echo "$TOTAL / $1" | bc -l | xargs printf '%.1f'; }
echo "bench/loader: $TOTAL samples, 768x768 JPEG -> 512x512 (decode, resize, center crop, flip), $(nproc) cores"
printf '  %-44s %8s samples/CPU-s\n' "loaderd (1 thread)" "$(rate "$cpu1")"
printf '  %-44s %8s samples/CPU-s\n' "loaderd (1 thread) + CLIP tokenizer" "$(rate "$cpu1t")"
printf '  %-44s %8s samples/CPU-s\n' "PIL + torchvision (1 thread)" "$(rate "$pil_cpu")"
printf '  %-44s %8s x\n' "ratio loaderd / PIL per core" "$(echo "$pil_cpu / $cpu1" | bc -l | xargs printf '%.2f')"
printf '  %-44s %8s samples/s\n' "prepare stage alone (bench-prep, no sending)" "$(echo "1000 / $prep_ms" | bc -l | xargs printf '%.1f')"
printf '  %-44s %8s x\n' "ratio prepare stage / PIL per core" "$(echo "$pil_cpu * 1000 / $TOTAL / $prep_ms" | bc -l | xargs printf '%.2f')"
echo "$prep" | sed 's/^/    /'
printf '  %-44s %8s samples/s wall\n' "1 loaderd process" "$(rate "$wall1")"
printf '  %-44s %8s samples/s wall\n' "2 loaderd processes" "$(rate "$wall2")"
printf '  %-44s %8s x\n' "scaling 2 vs 1 (the sink shares the cores)" "$(echo "$wall1 / $wall2" | bc -l | xargs printf '%.2f')"
