#!/usr/bin/env bash
# daemons.sh — the four daemons as real processes, steered with ldmctl.
#
# Starts loaderd, encoderd, trainerd and evald on a temporary run directory,
# asks each for its status, pauses and resumes one, sends SIGHUP, stops them
# with SIGTERM and with `ldmctl stop`, and checks that they exit 0 and remove
# their sockets. Then: a bad configuration line stops start-up with exit 78
# and a message naming the key and line; a second daemon of the same name is
# refused; CURVE over tcp lets an allowed key in and keeps another out.
#
# With --show (make demo) it only starts the daemons and prints their status.
set -u
BIN=${BIN:-build/bin}
SHOW=0
[ "${1:-}" = "--show" ] && SHOW=1

T=$(mktemp -d /tmp/ldmpipe-it.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
PIDS=()
FAILS=0

cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok   daemons: $*"; }
fail() {
    echo "FAIL daemons: $*"
    FAILS=$((FAILS + 1))
}

# start NAME LOG [args...]: start a daemon in the background, wait for its socket
start() {
    local bin=$1 log=$2 sock=$3
    shift 3
    "$BIN/$bin" "$@" 2>"$T/$log.log" &
    PIDS+=($!)
    for _ in $(seq 100); do
        [ -S "$sock" ] && return 0
        sleep 0.05
    done
    fail "$bin did not bind $sock; its log:"
    cat "$T/$log.log"
    return 1
}

# stopped PID NAME SOCK: wait for exit, check status 0 and socket removed
stopped() {
    local pid=$1 name=$2 sock=$3 st
    wait "$pid"
    st=$?
    [ "$st" -eq 0 ] && ok "$name exited 0" || fail "$name exited $st"
    [ ! -e "$sock" ] && ok "$name removed $sock" || fail "$name left $sock behind"
}

# encoderd needs a model, a cache and shards: a tiny model and one small shard
"$BIN/mktiny" --variant sd1 --out "$T/model" >/dev/null || { echo "FAIL daemons: mktiny"; exit 1; }
"$BIN/mkshards" synth --out "$T/shards" --shards 1 --per-shard 4 >/dev/null ||
    { echo "FAIL daemons: mkshards"; exit 1; }
cat >"$T/ldmpipe.conf" <<EOF
# integration test configuration
[common]
log_level = info

[trainerd]
device = cpu
model = $T/model
cache = $T/cache
output = $T/out
threads = 1
max_steps = 1000000

[encoderd]
shards = $T/shards/synth-000000.tar
cache = $T/cache
model = $T/model

[loaderd]
[evald]
model = $T/model
checkpoints = $T/out
output = $T/eval
threads = 1
EOF
R=$LDMPIPE_RUN_DIR

start loaderd loaderd-0 "$R/loaderd-0.ctl" -c "$T/ldmpipe.conf" --id=0 || exit 1
start loaderd loaderd-1 "$R/loaderd-1.ctl" -c "$T/ldmpipe.conf" --id=1 || exit 1
start encoderd encoderd "$R/encoderd.ctl" -c "$T/ldmpipe.conf" || exit 1
start trainerd trainerd-0 "$R/trainerd-0.ctl" -c "$T/ldmpipe.conf" --id=0 || exit 1
start evald evald "$R/evald.ctl" -c "$T/ldmpipe.conf" || exit 1

if [ $SHOW = 1 ]; then
    "$BIN/ldmctl" status
    for p in "${PIDS[@]}"; do kill -TERM "$p"; wait "$p"; done
    PIDS=()
    exit 0
fi

# status of each, by name and all at once
for n in loaderd-0 loaderd-1 encoderd trainerd-0 evald; do
    out=$("$BIN/ldmctl" --json -e "$n" status)
    case "$out" in
    *'"ok":true'*'"state":"running"'* | *'"state":"running"'*'"ok":true'*) ok "ldmctl status $n" ;;
    *) fail "ldmctl status $n: $out" ;;
    esac
done
all=$("$BIN/ldmctl" status)
[ "$(grep -c ' running ' <<<"$all")" -eq 5 ] && ok "ldmctl status lists 5 daemons" ||
    fail "ldmctl status (all): $all"
grep -q 'uptime_s\|up [0-9]' <<<"$all" && ok "status shows uptime" || fail "no uptime: $all"

# pause / resume / unknown op
"$BIN/ldmctl" -e loaderd-1 pause >/dev/null && "$BIN/ldmctl" --json -e loaderd-1 status | grep -q '"state":"paused"' &&
    ok "pause" || fail "pause"
"$BIN/ldmctl" -e loaderd-1 resume >/dev/null && "$BIN/ldmctl" --json -e loaderd-1 status | grep -q '"state":"running"' &&
    ok "resume" || fail "resume"
"$BIN/ldmctl" -e evald frobnicate >/dev/null 2>&1
[ $? -eq 1 ] && ok "unknown op answers an error (exit 1)" || fail "unknown op"

# SIGHUP reloads; the daemon keeps serving
kill -HUP "${PIDS[2]}"
sleep 0.2
"$BIN/ldmctl" --json -e encoderd status | grep -q '"reloads":1' && ok "SIGHUP reload" ||
    fail "SIGHUP reload: $("$BIN/ldmctl" --json -e encoderd status)"

# a second daemon with a taken name is refused
"$BIN/encoderd" -c "$T/ldmpipe.conf" 2>"$T/dup.log"
st=$?
[ $st -ne 0 ] && grep -q 'already listening' "$T/dup.log" && ok "second encoderd refused (exit $st)" ||
    fail "second encoderd: exit $st: $(cat "$T/dup.log")"

# stop: SIGTERM for four, ldmctl stop for one
"$BIN/ldmctl" -e loaderd-1 stop >/dev/null || fail "ldmctl stop"
stopped "${PIDS[1]}" loaderd-1 "$R/loaderd-1.ctl"
for i in 0 2 3 4; do kill -TERM "${PIDS[$i]}"; done
stopped "${PIDS[0]}" loaderd-0 "$R/loaderd-0.ctl"
stopped "${PIDS[2]}" encoderd "$R/encoderd.ctl"
stopped "${PIDS[3]}" trainerd-0 "$R/trainerd-0.ctl"
stopped "${PIDS[4]}" evald "$R/evald.ctl"
PIDS=()

# no daemon left: a clear message and exit 3
out=$("$BIN/ldmctl" -t 300 -e encoderd status 2>&1)
st=$?
[ $st -eq 3 ] && grep -q 'no answer from' <<<"$out" && ok "no answer: exit 3, '$out'" ||
    fail "no answer: exit $st: $out"

# bad configuration lines stop start-up, naming key, file and line
printf '[common]\nlog_level = info\n[loaderd]\ninsecure = maybe\n' >"$T/bad.conf"
"$BIN/loaderd" -c "$T/bad.conf" 2>"$T/bad.log"
st=$?
[ $st -eq 78 ] && grep -q 'bad.conf:4.*insecure' "$T/bad.log" && ok "bad value stops start-up: $(cat "$T/bad.log")" ||
    fail "bad value: exit $st: $(cat "$T/bad.log")"
printf '[evald]\nthreadz = 4\n' >"$T/bad2.conf"
"$BIN/evald" -c "$T/bad2.conf" 2>"$T/bad2.log"
st=$?
[ $st -eq 78 ] && grep -q 'bad2.conf:2.*threadz' "$T/bad2.log" && ok "unknown key stops start-up" ||
    fail "unknown key: exit $st: $(cat "$T/bad2.log")"
"$BIN/trainerd" --device=tpu --model="$T/model" --cache="$T/cache" --output="$T/out" 2>"$T/bad3.log"
st=$?
[ $st -eq 78 ] && grep -q 'device' "$T/bad3.log" && ok "bad device stops start-up" ||
    fail "bad device: exit $st: $(cat "$T/bad3.log")"

# plain tcp on a non-loopback address is refused without --insecure
"$BIN/loaderd" --control="tcp://0.0.0.0:*" 2>"$T/tcp.log"
st=$?
[ $st -ne 0 ] && grep -q 'refusing plain tcp' "$T/tcp.log" && ok "plain tcp on 0.0.0.0 refused" ||
    fail "plain tcp: exit $st: $(cat "$T/tcp.log")"

# CURVE: an allowed client is answered, another is not, and the daemon logs it
"$BIN/ldmctl" keygen "$T/server" >/dev/null && "$BIN/ldmctl" keygen "$T/admin" >/dev/null &&
    "$BIN/ldmctl" keygen "$T/stranger" >/dev/null || fail "keygen"
cp "$T/admin.pub" "$T/allow"
PORT=$((20000 + RANDOM % 20000))
"$BIN/encoderd" -c "$T/ldmpipe.conf" --control="tcp://0.0.0.0:$PORT" --curve_key="$T/server.key" \
    --curve_allow="$T/allow" 2>"$T/curve.log" &
CPID=$!
PIDS+=($CPID)
sleep 0.3
out=$("$BIN/ldmctl" -e "tcp://127.0.0.1:$PORT" -s "$T/server.pub" -k "$T/admin.key" --json status 2>&1)
grep -q '"ok":true' <<<"$out" && ok "CURVE: allowed key answered" || fail "CURVE allowed: $out; $(cat "$T/curve.log")"
out=$("$BIN/ldmctl" -t 500 -e "tcp://127.0.0.1:$PORT" -s "$T/server.pub" -k "$T/stranger.key" status 2>&1)
st=$?
[ $st -eq 3 ] && ok "CURVE: unknown key gets no answer" || fail "CURVE stranger: exit $st: $out"
grep -q 'client refused' "$T/curve.log" && ok "CURVE: refusal logged" || fail "CURVE: no refusal in log"
kill -TERM $CPID
wait $CPID && ok "CURVE encoderd exited 0" || fail "CURVE encoderd exit"
PIDS=()

if [ $FAILS -ne 0 ]; then
    echo "daemons: $FAILS failure(s)"
    exit 1
fi
echo "daemons: all passed"
