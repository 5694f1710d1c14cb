#!/usr/bin/env bash
# loader.sh — loaderd processes feeding a lease server and sample sink
# (build/bin/leasesink, a stand-in for encoderd's side of the protocol).
#
# 1. Two loaders read 6 synthetic shards through a slow sink (back-pressure);
#    one is killed with SIGKILL mid-shard and restarted. Every sample key must
#    arrive exactly once: the dead loader's lease expires, and the shard is
#    leased again with skip = the first index the sink has not received.
# 2. Bad input: a truncated shard, a shard with an undecodable image and a
#    sample without a caption. The good samples arrive, the bad ones as
#    tombstones counted per reason, the truncated shard is reported failed,
#    and the loader keeps running.
set -u
BIN=${BIN:-build/bin}
TOK=${LDM_TEST_DATA:-../shared/data}/clip/bpe_simple_vocab_16e6.txt.gz
T=$(mktemp -d /tmp/ldmpipe-loader.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
PIDS=()
FAILS=0
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
ok() { echo "ok   loader: $*"; }
fail() {
    echo "FAIL loader: $*"
    FAILS=$((FAILS + 1))
}
wait_sock() {
    for _ in $(seq 100); do
        [ -S "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
R=$LDMPIPE_RUN_DIR
mkdir -p "$R"
chmod 700 "$R"
SINK=(--leases "ipc://$R/encoderd.leases" --samples "ipc://$R/encoderd.samples")
LOADER=(--tokenizer="$TOK" --resolution=32 --threads=1 --hwm=4 --request_ms=1s)

# ---- 1. kill -9 a loader mid-run -------------------------------------------------
"$BIN/mkshards" synth --out "$T/shards" --shards 6 --per-shard 150 --size 48 --seed 3 >/dev/null ||
    fail "mkshards"
ls "$T"/shards/*.tar >"$T/list"
"$BIN/leasesink" "${SINK[@]}" --shards "$T/list" --out "$T/got.tsv" --timeout-ms 1500 \
    --delay-us 2000 --max-s 90 >"$T/sink.json" 2>"$T/sink.err" &
SINKPID=$!
PIDS+=($SINKPID)
wait_sock "$R/encoderd.leases" || fail "sink did not start"
"$BIN/loaderd" --id=a "${LOADER[@]}" 2>"$T/a.log" &
A=$!
"$BIN/loaderd" --id=b "${LOADER[@]}" 2>"$T/b.log" &
B=$!
PIDS+=($A $B)
sleep 0.7
kill -9 $A
wait $A 2>/dev/null
sleep 0.3
"$BIN/loaderd" --id=a "${LOADER[@]}" 2>"$T/a2.log" &
A=$!
PIDS+=($A)
wait $SINKPID
st=$?
[ $st -eq 0 ] && ok "sink finished every shard" || fail "sink exit $st: $(cat "$T/sink.err")"
summary=$(cat "$T/sink.json")
total=$(wc -l <"$T/got.tsv")
keys=$(cut -f1,3 "$T/got.tsv" | sort -u | wc -l)
dups=$(cut -f4 "$T/got.tsv" | grep -c '^dup' || true)
[ "$keys" -eq 900 ] && ok "all 900 sample keys arrived" || fail "$keys distinct keys of 900: $summary"
[ "$total" -eq 900 ] && [ "$dups" -eq 0 ] && ok "each key exactly once ($summary)" ||
    fail "$total samples, $dups duplicates: $summary"
leases=$(sed 's/.*"leases":\([0-9]*\).*/\1/' <<<"$summary")
[ "$leases" -ge 7 ] && ok "the killed loader's shard was leased again ($leases leases for 6 shards)" ||
    fail "expected a re-lease after the kill: $summary"
awk -F'\t' '$4 != "ok" || $5 != "32x32" || $6 != 77 { bad = 1 } END { exit bad }' "$T/got.tsv" &&
    ok "every sample 32x32 with tokens" || fail "unexpected sample lines"
kill -TERM $A $B
wait $A && wait $B && ok "loaders exit 0 on SIGTERM" || fail "loader exit status"
PIDS=()

# ---- 2. bad input ---------------------------------------------------------------
mkdir -p "$T/bad/src"
for i in 0 1 2 3; do
    "$BIN/mkshards" synth --out "$T/bad/s$i" --shards 1 --per-shard 4 --size 40 --seed $((10 + i)) \
        --format png >/dev/null
done
# an undecodable image, and a sample with no caption
(cd "$T/bad" && mkdir x && tar -xf s0/*.tar -C x && printf 'not an image' >x/000000001.png &&
    rm x/000000002.txt && tar -cf broken.tar -C x $(cd x && ls | sort))
# a truncated shard: its first samples arrive, then the shard fails
tarf=$(ls "$T"/bad/s1/*.tar)
head -c 5000 "$tarf" >"$T/bad/truncated.tar"
ls "$T"/bad/broken.tar "$T"/bad/truncated.tar "$T"/bad/s2/*.tar >"$T/list2"
"$BIN/leasesink" "${SINK[@]}" --shards "$T/list2" --out "$T/got2.tsv" --timeout-ms 1500 \
    --max-s 60 >"$T/sink2.json" 2>"$T/sink2.err" &
SINKPID=$!
PIDS+=($SINKPID)
wait_sock "$R/encoderd.leases" || fail "sink 2 did not start"
"$BIN/loaderd" --id=c "${LOADER[@]}" 2>"$T/c.log" &
C=$!
PIDS+=($C)
wait $SINKPID
summary=$(cat "$T/sink2.json")
grep -q '"done":2,"failed":1' <<<"$summary" && ok "truncated shard failed, others done" ||
    fail "bad-input run: $summary"
grep -q $'\ttomb:decode\t' "$T/got2.tsv" && grep -q $'\ttomb:no_caption\t' "$T/got2.tsv" &&
    ok "undecodable image and missing caption sent as tombstones" || fail "tombstones: $(cat "$T/got2.tsv")"
status=$("$BIN/ldmctl" --json -e loaderd-c status)
grep -q '"rejected_decode":1' <<<"$status" && grep -q '"rejected_no_caption":1' <<<"$status" &&
    grep -q '"shards_failed":1' <<<"$status" && ok "status counts rejects per reason" ||
    fail "status: $status"
grep -q 'reason=decode' "$T/c.log" && grep -q 'shard failed' "$T/c.log" &&
    ok "rejects logged with shard and key" || fail "log: $(cat "$T/c.log")"
kill -TERM $C
wait $C && ok "loader survived bad input and exits 0" || fail "loader exit after bad input"
PIDS=()

if [ $FAILS -ne 0 ]; then
    echo "--- a.log"; tail -5 "$T/a.log"; echo "--- b.log"; tail -5 "$T/b.log"
    echo "loader: $FAILS failure(s)"
    exit 1
fi
echo "loader: all passed"
