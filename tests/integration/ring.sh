#!/usr/bin/env bash
# ring.sh — trainerd's CPU ring across real processes (build/bin/ringtest).
#
# Three ranks started in reverse order (rank 0 last) meet at an ipc://
# rendezvous and all-reduce 10 M floats: whole numbers must sum exactly to
# the direct sum, and random numbers (sum and average) must give the same
# bits on every rank. Then the same over tcp:// on the loopback, a killed
# rank (the survivors fail with a timeout naming a peer instead of hanging),
# and a rank with another run id (refused by rank 0). Prints each rank's
# bandwidth line.
#
# Env: BIN (built binaries, default build/bin), RING_N (floats, default 10000000).
set -u

BIN=${BIN:-build/bin}
RT=$BIN/ringtest
N=${RING_N:-10000000}
FAILS=0
ok() { echo "ok   ring: $*"; }
fail() {
    echo "FAIL ring: $*"
    FAILS=$((FAILS + 1))
}

if [ ! -x "$RT" ]; then
    echo "FAIL ring: $RT not built"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ldmpipe-ring.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# start_world WORLD TAG RDV DATA-PREFIX [extra args]: ranks WORLD-1 .. 0 in the background
start_world() {
    local w=$1 tag=$2 rdv=$3 data=$4
    shift 4
    PIDS=()
    for ((r = w - 1; r >= 0; r--)); do
        "$RT" --rank $r --world "$w" --rdv "$rdv" --data "$data$r" "$@" \
            >"$T/$tag.$r.out" 2>"$T/$tag.$r.err" &
        PIDS[r]=$!
    done
}

# check_world WORLD TAG: every rank exited 0, exact, and all hashes equal
check_world() {
    local w=$1 tag=$2 bad=0 r
    for ((r = 0; r < w; r++)); do
        wait "${PIDS[r]}" || {
            bad=1
            fail "$tag rank $r exit $?: $(grep -v 'level=info' "$T/$tag.$r.err" | tail -3)"
        }
    done
    [ $bad = 0 ] || return
    cat "$T/$tag".*.out
    local sums
    sums=$(sed -n 's/.* exact=1 sum=\([0-9a-f]*\) avg=\([0-9a-f]*\) .*/\1 \2/p' "$T/$tag".*.out | sort -u)
    if [ "$(grep -c 'exact=1' "$T/$tag".*.out | awk -F: '{s += $2} END {print s}')" = "$w" ] &&
        [ "$(echo "$sums" | wc -l)" = 1 ] && [ -n "$sums" ]; then
        ok "$tag: $w ranks, $N floats: exact sums, bit-identical results"
    else
        fail "$tag: results differ between ranks or from the direct sum"
    fi
}

start_world 3 ipc "ipc://$T/rdv" "ipc://$T/data-" --n "$N" --iters 3
check_world 3 ipc

BASE=$((2000 + RANDOM % 4000)) # ports BASE0.. BASE2 for data, BASE9 for the rendezvous
start_world 3 tcp "tcp://127.0.0.1:${BASE}9" "tcp://127.0.0.1:$BASE" --n "$N" --iters 3
check_world 3 tcp

# a rank killed in the middle: the others time out naming a peer, none hangs
start_world 3 kill "ipc://$T/rdv-k" "ipc://$T/dk-" --n 2000000 --iters 100000 --timeout 1500
for _ in $(seq 100); do
    grep -q 'comm open' "$T/kill.2.err" 2>/dev/null && break
    sleep 0.1
done
sleep 0.5
kill -9 "${PIDS[2]}"
wait "${PIDS[2]}" 2>/dev/null
for r in 0 1; do
    if wait "${PIDS[r]}"; then
        fail "kill: rank $r exited 0 after its peer died"
    elif grep -q 'ring rank [0-9]*: \(no data from rank\|rank [0-9]* (.*) took no data\)' "$T/kill.$r.err"; then
        ok "kill: rank $r: $(grep -o 'ring rank [0-9]*: [a-z ]*rank [0-9]*' "$T/kill.$r.err" | head -1)"
    else
        fail "kill: rank $r: $(grep -v 'level=info' "$T/kill.$r.err" | tail -2)"
    fi
done

# a rank from another run is refused by name
"$RT" --rank 0 --world 2 --rdv "ipc://$T/rdv-r" --data "ipc://$T/dr-0" --n 10 --timeout 1500 \
    >/dev/null 2>"$T/ref.0.err" &
P0=$!
"$RT" --rank 1 --world 2 --rdv "ipc://$T/rdv-r" --data "ipc://$T/dr-1" --n 10 --run other \
    >/dev/null 2>"$T/ref.1.err"
rc1=$?
wait $P0
rc0=$?
if [ $rc1 = 1 ] && [ $rc0 = 1 ] &&
    grep -q "rank 0 refused rank 1: rank 1: run id 'other' differs from rank 0's 'ringtest'" "$T/ref.1.err" &&
    grep -q 'ranks 1 of 2 still missing' "$T/ref.0.err"; then
    ok "a rank of another run is refused; rank 0 names the missing rank"
else
    fail "refusal: $(grep -hv 'level=info' "$T"/ref.*.err | tail -4)"
fi

[ $FAILS = 0 ] || exit 1
echo "ring: all passed"
