#!/usr/bin/env bash
# encoderd_cond.sh — the conditioning image in the cache: paired synthetic shards (mkshards
# synth --paired: KEY.jpg and its outline KEY.input.jpg), loaderd with cond_ext=input.jpg, and
# encoderd with cond_store=latent, then again with cond_store=pixels into a second cache.
# With latent every record holds a conditioning latent of the latent's shape (the condition
# is cropped like the image) and the identity says cond_store latent (pixels, the default,
# leaves the identity as it was); with pixels the record
# holds the uint8 pixels (3 x resolution x resolution). The stored latent is the VAE mean of
# the stored pixels: ldmrun vae-encode of the pixels record's conditioning image gives it
# within fp16 rounding. Start-up refusals name their key: a cache made with the other
# cond_store, cond_store=latent with flip_variants, an unknown cond_store, a malformed device,
# and a CUDA device that cannot be opened here (no CUDA in the build, or no GPU).
set -u
BIN=${BIN:-build/bin}
DATA=${LDM_TEST_DATA:-../shared/data}
TOK=$DATA/clip/bpe_simple_vocab_16e6.txt.gz
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/ldmpipe-encoderd-cond.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
PIDS=()
FAILS=0
SHARDS=2
PER=12
RES=64
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
ok() { echo "ok   encoderd_cond: $*"; }
fail() {
    echo "FAIL encoderd_cond: $*"
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
"$BIN/mkshards" synth --out "$T/shards" --shards $SHARDS --per-shard $PER --size 96 --seed 9 \
    --paired >/dev/null || fail "mkshards"
ls "$T"/shards/*.tar >"$T/list"
ENC=(--shards="@$T/list" --model="$T/model" --lease_timeout=5s --batch_size=4 --max_wait=100ms
    --threads=1)
LOADER=(--tokenizer="$TOK" --resolution=$RES --max_length=16 --threads=1 --request_ms=1s
    --cond_ext=input.jpg)

# encode every shard into cache $1 with cond_store $2
encode_all() {
    rm -f "$R"/*
    "$BIN/encoderd" "${ENC[@]}" --cache="$1" --cond_store="$2" 2>"$T/enc-$2.log" &
    local e=$!
    PIDS+=($e)
    wait_sock "$R/encoderd.ctl" || fail "encoderd ($2) did not start: $(tail -3 "$T/enc-$2.log")"
    "$BIN/loaderd" --id=a "${LOADER[@]}" 2>"$T/loader-$2.log" &
    local a=$!
    PIDS+=($a)
    local n=0 st
    for _ in $(seq 600); do
        st=$("$BIN/ldmctl" --json -e encoderd status 2>/dev/null) &&
            n=$(jget 'd["progress"]["done"]' <<<"$st")
        [ "${n:-0}" -eq $SHARDS ] && break
        sleep 0.05
    done
    [ "${n:-0}" -eq $SHARDS ] && ok "cond_store=$2: $SHARDS shards done" ||
        fail "cond_store=$2: $n of $SHARDS shards done: $(tail -3 "$T/enc-$2.log")"
    kill -TERM $a $e
    wait $e || fail "cond_store=$2: encoderd exit status"
    wait $a
    PIDS=()
}

encode_all "$T/lat" latent
encode_all "$T/pix" pixels

# ---- what the records hold ----------------------------------------------------------
first=$(head -1 "$T/list")
key=$(tar -tf "$first" | head -1 | cut -d. -f1)
stat=$("$BIN/ldmcache" stat "$T/lat" --json)
all=$((SHARDS * PER))
[ "$(jget 'd["samples"], d["conditioning"]' <<<"$stat")" = "$all $all" ] &&
    ok "latent cache: $((SHARDS * PER)) records, each with a conditioning section" ||
    fail "latent cache stat: $stat"
[ "$(jget 'd["identity"]["cond_store"]' <<<"$stat")" = latent ] &&
    ok "identity records cond_store latent" || fail "identity: $(jget 'd["identity"]' <<<"$stat")"
[ "$(jget 'd["identity"].get("cond_store", "pixels (absent: the default)")' <<<"$("$BIN/ldmcache" stat "$T/pix" --json)")" = "pixels (absent: the default)" ] &&
    ok "identity of a pixels cache is the default one (caches made before the option stay valid)" ||
    fail "pixels identity"
lat=$("$BIN/ldmcache" get "$T/lat" "$first/$key" --out "$T/lat-rec") || fail "ldmcache get (latent)"
pix=$("$BIN/ldmcache" get "$T/pix" "$first/$key" --out "$T/pix-rec") || fail "ldmcache get (pixels)"
got=$(jget 'd["cond"]["kind"], d["cond"]["shape"], d["latent"]' <<<"$lat")
want=$(jget '"latent", d["latent"], d["latent"]' <<<"$lat")
[ "$got" = "$want" ] && [ "$(jget 'len(d["latent"])' <<<"$lat")" = 3 ] &&
    ok "latent record: conditioning latent $(jget 'd["cond"]["shape"]' <<<"$lat")" ||
    fail "latent record cond/latent: $got"
got=$(jget 'd["cond"]["kind"], d["cond"]["shape"]' <<<"$pix")
[ "$got" = "pixels [3, $RES, $RES]" ] && ok "pixels record: conditioning pixels [3, $RES, $RES]" ||
    fail "pixels record cond: $got"
[ -f "$T/lat-rec.cond_latent.npy" ] && [ -f "$T/pix-rec.cond_pixels.npy" ] &&
    ok "ldmcache get writes cond_latent / cond_pixels arrays" || fail "arrays: $(ls "$T")"

# ---- the stored latent is the VAE mean of the stored pixels -------------------------
"$PY" - "$T" <<'EOF' || fail "writing the VAE input"
import json, struct, sys
import numpy as np
t = sys.argv[1]
px = np.load(t + "/pix-rec.cond_pixels.npy").astype(np.float32)  # (3, H, W), 0..255
img = (px / 127.5 - 1.0)[None].astype("<f4")
head = json.dumps({"in.image": {"dtype": "F32", "shape": list(img.shape),
                             "data_offsets": [0, img.nbytes]}}).encode()
with open(t + "/cond_in.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + img.tobytes())
EOF
"$BIN/ldmrun" vae-encode "$T/model/vae" "$T/cond_in.safetensors" "$T/cond_out.safetensors" \
    --threads 1 >/dev/null || fail "ldmrun vae-encode"
cmp=$("$PY" - "$T" <<'EOF'
import json, struct, sys
import numpy as np
t = sys.argv[1]
raw = open(t + "/cond_out.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
info = json.loads(raw[8:8 + n])["out.mean"]
lo, hi = info["data_offsets"]
ref = np.frombuffer(raw[8 + n + lo:8 + n + hi], "<f4").reshape(info["shape"])[0]
got = np.load(t + "/lat-rec.cond_latent.npy")
# fp16 storage: half an ulp of the largest magnitude
tol = np.abs(ref).max() * 2.0 ** -11 + 1e-6
err = np.abs(got - ref).max()
print("%s max|diff| %.3g (fp16 bound %.3g)" % ("ok" if got.shape == ref.shape and err <= tol
                                               else "bad", err, tol))
EOF
)
[ "${cmp%% *}" = ok ] &&
    ok "conditioning latent = VAE mean of the conditioning pixels: ${cmp#ok }" ||
    fail "conditioning latent vs ldmrun: $cmp"
"$PY" -c "
import numpy as np, sys
a, b = (np.load(sys.argv[i] + '.latent_mean.npy') for i in (1, 2))
sys.exit(0 if np.array_equal(a, b) else 1)" "$T/lat-rec" "$T/pix-rec" &&
    ok "the image latent is the same in both caches" || fail "image latents differ"

# ---- start-up refusals name the key -------------------------------------------------
refused() { # $1: what, $2: pattern, rest: encoderd arguments
    local what=$1 pat=$2
    shift 2
    rm -f "$R"/*
    timeout 30 "$BIN/encoderd" "${ENC[@]}" "$@" 2>"$T/refused.log"
    local st=$?
    [ $st -ne 0 ] && [ $st -ne 124 ] && grep -q -- "$pat" "$T/refused.log" &&
        ok "$what refused (exit $st): $(grep -o "error=.*" "$T/refused.log" | cut -c1-110)" ||
        fail "$what: exit $st $(tail -2 "$T/refused.log")"
}
refused "a latent cache reopened with cond_store=pixels" 'made by other encoders' \
    --cache="$T/lat" --cond_store=pixels
refused "cond_store=latent with flip_variants" 'cond_store: latent with flip_variants' \
    --cache="$T/c1" --cond_store=latent --flip_variants=true
refused "cond_store=jpeg" "cond_store: 'jpeg' is not pixels or latent" \
    --cache="$T/c2" --cond_store=jpeg
refused "device=gpu0" "device: 'gpu0' is not cpu, cuda or cuda:N" --cache="$T/c3" --device=gpu0
refused "device=cuda:99" "device 'cuda:99' cannot be used" --cache="$T/c4" --device=cuda:99

if [ $FAILS -ne 0 ]; then
    for f in "$T"/enc-*.log; do echo "--- $f"; tail -5 "$f"; done
    echo "encoderd_cond: $FAILS failure(s)"
    exit 1
fi
echo "encoderd_cond: all passed"
