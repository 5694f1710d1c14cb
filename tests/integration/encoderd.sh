#!/usr/bin/env bash
# encoderd.sh — encoderd with two loaderd processes on synthetic shards and a tiny model
# (the golden test VAE; the golden CLIP text model widened to CLIP's vocabulary, made by
# encoderd_tiny.py). A loader is killed with SIGKILL mid-run and restarted, then encoderd
# itself is killed with SIGKILL and restarted. At the end the cache must hold exactly one
# record per sample key (count = shards x per_shard, every shard done, each shard's
# stored count = its samples), `ldmcache verify` must pass, and a restart with another
# model must be refused with both identities named.
set -u
BIN=${BIN:-build/bin}
DATA=${LDM_TEST_DATA:-../shared/data}
TOK=$DATA/clip/bpe_simple_vocab_16e6.txt.gz
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/ldmpipe-encoderd.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
PIDS=()
FAILS=0
SHARDS=6
PER=100
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
ok() { echo "ok   encoderd: $*"; }
fail() {
    echo "FAIL encoderd: $*"
    FAILS=$((FAILS + 1))
}
wait_sock() {
    for _ in $(seq 200); do
        [ -S "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
jget() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
R=$LDMPIPE_RUN_DIR
mkdir -p "$R"
chmod 700 "$R"

"$PY" "$HERE/encoderd_tiny.py" "$DATA/golden" "$T/model" || fail "tiny model"
"$BIN/mkshards" synth --out "$T/shards" --shards $SHARDS --per-shard $PER --size 96 --seed 5 \
    >/dev/null || fail "mkshards"
ls "$T"/shards/*.tar >"$T/list"
ENC=(--shards="@$T/list" --cache="$T/cache" --model="$T/model" --lease_timeout=1500ms
    --batch_size=4 --max_wait=100ms --hwm=8 --threads=1)
LOADER=(--tokenizer="$TOK" --resolution=64 --max_length=16 --threads=1 --hwm=4 --request_ms=1s)

start_encoder() {
    "$BIN/encoderd" "${ENC[@]}" "$@" 2>>"$T/enc.log" &
    E=$!
    PIDS+=($E)
}
start_encoder
wait_sock "$R/encoderd.ctl" || fail "encoderd did not start: $(tail -3 "$T/enc.log")"
"$BIN/loaderd" --id=a "${LOADER[@]}" 2>"$T/a.log" &
A=$!
"$BIN/loaderd" --id=b "${LOADER[@]}" 2>"$T/b.log" &
B=$!
PIDS+=($A $B)

committed() { "$BIN/ldmctl" --json -e encoderd status 2>/dev/null | jget 'd["counters"]["samples_committed"]'; }
# wait until at least $1 samples are committed
wait_committed() {
    for _ in $(seq 600); do
        [ "$(committed)" -ge "$1" ] 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# ---- kill -9 a loader, then encoderd, mid-run ---------------------------------------
wait_committed $((SHARDS * PER / 5)) || fail "nothing committed: $(tail -3 "$T/enc.log")"
kill -9 $A
{ wait $A; } 2>/dev/null
"$BIN/loaderd" --id=a "${LOADER[@]}" 2>"$T/a2.log" &
A=$!
PIDS+=($A)
wait_committed $((SHARDS * PER / 2)) || fail "stalled after the loader kill"
before=$(committed)
kill -9 $E
{ wait $E; } 2>/dev/null
[ "${before:-0}" -gt 0 ] && [ "${before:-0}" -lt $((SHARDS * PER)) ] &&
    ok "encoderd killed mid-run ($before samples committed)" ||
    fail "encoderd was not mid-run when killed: $before committed"
rm -f "$R/encoderd.ctl"
start_encoder
wait_sock "$R/encoderd.ctl" || fail "encoderd did not restart: $(tail -3 "$T/enc.log")"

done_n=0
for _ in $(seq 300); do
    st=$("$BIN/ldmctl" --json -e encoderd status 2>/dev/null) &&
        done_n=$(jget 'd["progress"]["done"]' <<<"$st")
    [ "${done_n:-0}" -eq $SHARDS ] && break
    sleep 0.1
done
[ "${done_n:-0}" -eq $SHARDS ] && ok "every shard done after the kills" ||
    fail "$done_n of $SHARDS shards done: $("$BIN/ldmctl" --json -e encoderd leases)"
leases=$("$BIN/ldmctl" --json -e encoderd leases)
n_done=$(jget 'sum(s["state"] == "done" for s in d["shards"])' <<<"$leases")
[ "$n_done" -eq $SHARDS ] && ok "ldmctl leases lists $SHARDS done shards" || fail "leases: $leases"
relet=$(grep -c 'msg="lease"' "$T/enc.log")
[ "$relet" -gt $SHARDS ] && ok "shards leased again after the kills ($relet leases for $SHARDS shards)" ||
    fail "no shard was leased again: $relet leases"
dups=$(jget 'd["counters"]["samples_duplicates"]' <<<"$st")
echo "info encoderd: samples that came twice and were not stored again (since the restart): $dups"
kill -TERM $A $B $E
wait $E && ok "encoderd exits 0 on SIGTERM" || fail "encoderd exit status"
wait $A
wait $B
PIDS=()

# ---- exactly once -------------------------------------------------------------------
stat=$("$BIN/ldmcache" stat "$T/cache" --json)
n=$(jget 'd["samples"]' <<<"$stat")
[ "$n" -eq $((SHARDS * PER)) ] && ok "$n records = $SHARDS shards x $PER samples" ||
    fail "$n records, expected $((SHARDS * PER))"
per=$(jget '" ".join(str(s["stored"]) + "/" + str(s["first_unprocessed"]) + "/" + s["status"]
    for s in d["shards"]["list"])' <<<"$stat")
bad=$(tr ' ' '\n' <<<"$per" | grep -vc "^$PER/$PER/done$" || true)
[ "$bad" -eq 0 ] && ok "each shard: $PER records, all indices processed, done" ||
    fail "per shard stored/first_unprocessed/status: $per"
first=$(head -1 "$T/list")
key=$(tar -tf "$first" | head -1 | cut -d. -f1)
"$BIN/ldmcache" get "$T/cache" "$first/$key" >/dev/null && ok "record $first/$key readable" ||
    fail "ldmcache get $first/$key"
"$BIN/ldmcache" verify "$T/cache" >"$T/verify.out" && ok "ldmcache verify: $(cat "$T/verify.out")" ||
    fail "verify: $(cat "$T/verify.out")"

# ---- another model on this cache is refused -----------------------------------------
cp -r "$T/model" "$T/model2"
chmod -R u+w "$T/model2"
sed -i 's/0.18215/0.13025/' "$T/model2/vae/config.json"
"$BIN/encoderd" "${ENC[@]}" --model="$T/model2" 2>"$T/refused.log"
st=$?
[ $st -ne 0 ] && grep -q 'made by other encoders' "$T/refused.log" &&
    grep -q '0.18215' "$T/refused.log" && grep -q '0.13025' "$T/refused.log" &&
    ok "another model refused (exit $st), both identities named" ||
    fail "identity check: exit $st $(cat "$T/refused.log")"

if [ $FAILS -ne 0 ]; then
    echo "--- enc.log"; tail -15 "$T/enc.log"; echo "--- b.log"; tail -5 "$T/b.log"
    echo "encoderd: $FAILS failure(s)"
    exit 1
fi
echo "encoderd: all passed"
