#!/usr/bin/env bash
# ldmcache.sh — build/bin/ldmcache over caches written through the store API.
#
# `ldmcache synth` fills a cache with random but valid records (4 shards,
# every 10th sample a tombstone); then: stat (text and JSON) counts them per
# bucket and shard; a second synth run stores nothing twice; get prints a
# record's header and writes its arrays as .npy, which numpy reads with the
# documented shapes and fp16-exact values; verify passes; a map capped with
# growth off fails a write with "map full" and leaves a sound cache; a tiny
# map grows; and two records damaged in data.mdb (a magic, a payload byte)
# are named by verify, which exits 1.
#
# Env: BIN (built binaries, default build/bin).
set -u

BIN=${BIN:-build/bin}
LC=$BIN/ldmcache
PY=/usr/bin/python3
FAILS=0
ok() { echo "ok   ldmcache: $*"; }
fail() {
    echo "FAIL ldmcache: $*"
    FAILS=$((FAILS + 1))
}

if [ ! -x "$LC" ]; then
    echo "FAIL ldmcache: $LC not built"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ldmpipe-ldmcache.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
# fields of a JSON file, space-separated: field FILE "EXPR, EXPR, ..." (on `d`)
field() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---- synth, stat, duplicates ----------------------------------------------------
C=$T/cache
out=$("$LC" synth "$C" 300 --shards 4 --reject 10 --batch 32)
[ "$out" = "synth: 270 stored, 0 duplicates, 30 tombstones" ] && ok "synth stored 270" ||
    fail "synth: $out"
"$LC" stat "$C" --json >"$T/stat.json" || fail "stat --json exit $?"
[ "$(field "$T/stat.json" "d['samples'], d['shards']['total'], d['shards']['stored'], \
    d['shards']['rejected'], sum(d['buckets'].values()), d['shards']['list'][0]['first_unprocessed']")" = \
    "270 4 270 30 270 75" ] && ok "stat --json counts samples, shards, buckets, skip" ||
    fail "stat --json: $(head -c 600 "$T/stat.json")"
[ "$(field "$T/stat.json" "d['identity']['synthetic'], d['map']['used'] <= d['map']['size']")" = \
    "True True" ] && ok "stat shows identity and map use" || fail "identity/map"
"$LC" stat "$C" >"$T/stat.txt" && grep -q '^samples    270 ' "$T/stat.txt" &&
    grep -q '^shards     4: 4 pending' "$T/stat.txt" && grep -q '^buckets    0:90 1:90 2:90$' "$T/stat.txt" &&
    ok "stat text" || fail "stat text: $(cat "$T/stat.txt")"
out=$("$LC" synth "$C" 300 --shards 4 --reject 10 --batch 50)
[ "$out" = "synth: 0 stored, 270 duplicates, 30 tombstones" ] &&
    [ "$("$LC" stat "$C" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["samples"])')" = 270 ] &&
    ok "a second run stores nothing twice" || fail "second run: $out"

# ---- get ------------------------------------------------------------------------
KEY=synth-002.tar/000006 # sample 26: pooled with flip variants
"$LC" get "$C" "$KEY" --out "$T/s26" >"$T/get.json" || fail "get exit $?"
[ "$(field "$T/get.json" "d['key'], d['crc_ok'], d['latent'], d['flip_variants'], d['text'], \
    d['pooled'], len(d['input_ids']), d['bucket'], d['cond'], len(d['files'])")" = \
    "$KEY True [4, 8, 8] True [77, 32] 32 77 2 None 7" ] && ok "get prints the header" ||
    fail "get: $(head -c 400 "$T/get.json")"
"$PY" - "$T/s26" "$T/get.json" <<'PYEOF' && ok "get --out arrays load in numpy, fp16-exact" || fail "npy arrays"
import json, sys
import numpy as np
p, meta = sys.argv[1], json.load(open(sys.argv[2]))
shapes = {"latent_mean": (4, 8, 8), "latent_logvar": (4, 8, 8), "flip_latent_mean": (4, 8, 8),
          "flip_latent_logvar": (4, 8, 8), "text": (77, 32), "pooled": (32,), "input_ids": (77,)}
for name, shape in shapes.items():
    a = np.load(f"{p}.{name}.npy")
    assert a.shape == shape, (name, a.shape)
    if name == "input_ids":
        assert a.dtype == np.float64 and list(a.astype(int)) == meta["input_ids"], name
    else:
        assert a.dtype == np.float32 and (a.astype(np.float16).astype(np.float32) == a).all(), name
        assert (a >= -2).all() and (a < 2).all() and a.std() > 0.5, name
PYEOF
"$LC" get "$C" synth-009.tar/000001 >/dev/null 2>"$T/err" && fail "get of a missing key succeeded" ||
    { grep -q "no sample 'synth-009.tar/000001'" "$T/err" && ok "get of a missing key exits 1"; } ||
    fail "missing key: $(cat "$T/err")"
"$LC" get "$C" --meta empty_caption | "$PY" -c \
    'import json,sys; d=json.load(sys.stdin); assert d["latent"] is None and d["pooled"] == 32' &&
    "$LC" get "$C" --meta identity | grep -q '"synthetic":true' && ok "get --meta" || fail "get --meta"
"$LC" get "$C" >/dev/null 2>&1
[ $? -eq 2 ] && ok "usage errors exit 2" || fail "usage exit"

# ---- verify ---------------------------------------------------------------------
out=$("$LC" verify "$C") && [ "$out" = "ok: 270 records, 4 shards, 3 meta values, 0 bad" ] &&
    ok "verify passes" || fail "verify: $out"

# ---- map full with growth off, and growth -----------------------------------------
F=$T/full
"$LC" synth "$F" 400 --map-size 256K --max-map-size 256K --no-grow --batch 16 >"$T/full.out" 2>"$T/full.err"
rc=$?
[ $rc -eq 1 ] && grep -q "map full" "$T/full.err" && grep -q "$F" "$T/full.err" &&
    ok "a capped map fails with \"map full\" naming the path" || fail "map full: rc $rc, $(cat "$T/full.err")"
out=$("$LC" verify "$F") && ok "the capped cache is sound after the failed write ($out)" ||
    fail "capped cache verify: $out"
G=$T/grow
"$LC" synth "$G" 300 --map-size 64K >/dev/null && "$LC" verify "$G" >/dev/null &&
    [ "$("$LC" stat "$G" --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["samples"], d["map"]["size"] > 65536)')" = "300 True" ] &&
    ok "a 64 KiB map grows" || fail "growth"

# ---- damage found by verify -----------------------------------------------------------
D=$T/damaged
"$LC" synth "$D" 20 --shards 1 --batch 64 >/dev/null || fail "synth for damage"
"$PY" - "$D/data.mdb" <<'PYEOF' || fail "could not damage data.mdb"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
at, i = [], b.find(b"LDMR")
while i >= 0:
    at.append(i)
    i = b.find(b"LDMR", i + 1)
assert len(at) == 21, len(at)   # 20 records, written once each, and the empty caption's
b[at[3]] = ord("X")             # a magic
b[at[7] + 200] ^= 0x40          # a payload byte: only the CRC notices
open(p, "r+b").write(b)
PYEOF
out=$("$LC" verify "$D")
rc=$?
[ $rc -eq 1 ] && grep -q "wrong magic" <<<"$out" && grep -q "payload CRC-32" <<<"$out" &&
    grep -q "^FAILED: 20 records, 1 shards, 3 meta values, 2 bad$" <<<"$out" &&
    ok "verify names both damaged records and exits 1" || fail "damage: rc $rc, $out"

if [ $FAILS -ne 0 ]; then
    echo "ldmcache: $FAILS failure(s)"
    exit 1
fi
echo "ldmcache: all passed"
