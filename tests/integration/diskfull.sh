#!/usr/bin/env bash
# diskfull.sh — a full disk under the latent cache: encoderd's cache on a 3 MiB tmpfs fills
# up mid-run; the batch that does not fit is reported with a line that says the file system
# is full, encoderd keeps answering, and every record already committed is sound
# (ldmcache verify). Mounting a tmpfs needs root: elsewhere one SKIP line.
set -u
BIN=${BIN:-build/bin}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/ldmpipe-diskfull.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
export LDM_TEST_DATA=${LDM_TEST_DATA:-../shared/data}
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    umount "$T/mnt" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$LDMPIPE_RUN_DIR" "$T/mnt" && chmod 700 "$LDMPIPE_RUN_DIR"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=3m tmpfs "$T/mnt" 2>/dev/null; then
    echo "SKIP diskfull: mounting a small tmpfs needs root"
    exit 0
fi
FAILS=0
"$BIN/mktiny" --variant sd1 --out "$T/model" >/dev/null || { echo "FAIL diskfull: mktiny"; exit 1; }
"$BIN/mkshards" synth --out "$T/shards" --shards 2 --per-shard 64 --size 64 --seed 5 >/dev/null
ls "$T"/shards/*.tar >"$T/list"
"$BIN/encoderd" --shards="@$T/list" --cache="$T/mnt/cache" --model="$T/model" --batch_size=8 \
    --max_wait=100ms --threads=1 2>"$T/enc.log" &
E=$!
PIDS+=($E)
"$BIN/loaderd" --tokenizer="$T/model/tokenizer" --resolution=64 --threads=1 2>"$T/ld.log" &
L=$!
PIDS+=($L)
for _ in $(seq 600); do
    grep -q 'batch not stored' "$T/enc.log" && break
    sleep 0.1
done
line=$(grep -m1 'batch not stored' "$T/enc.log")
if grep -q 'file system is full' <<<"$line"; then
    echo "ok   diskfull: $(cut -c1-160 <<<"$line")..."
else
    echo "FAIL diskfull: no clear disk-full line: ${line:-none}"
    FAILS=$((FAILS + 1))
fi
"$BIN/ldmctl" --json -e encoderd status >"$T/st.json" 2>&1 &&
    echo "ok   diskfull: encoderd still answers ($("$PY" -c "import json,sys; c=json.load(open(sys.argv[1]))['counters']; print(c.get('samples_committed', 0), 'committed,', c.get('sample_errors', 0), 'batch errors')" "$T/st.json"))" ||
    { echo "FAIL diskfull: encoderd does not answer"; FAILS=$((FAILS + 1)); }
kill $L $E
wait $L $E 2>/dev/null
out=$("$BIN/ldmcache" verify "$T/mnt/cache" 2>&1)
if [ $? = 0 ] && grep -q ' 0 bad' <<<"$out"; then
    echo "ok   diskfull: every committed record sound: $(tail -1 <<<"$out")"
else
    echo "FAIL diskfull: verify: $out"
    FAILS=$((FAILS + 1))
fi
[ $FAILS = 0 ] || exit 1
echo "diskfull: all passed"
