#!/usr/bin/env bash
# mktiny.sh — build/bin/mktiny writes a diffusers model folder for sd1, sd2 and sdxl, and
# every part loads back through the project's loaders, run by build/bin/ldmrun: the
# tokenizer frames "a photo of a cat" as CLIP does (49406 320 1125 539 320 2368 49407,
# then the pad id: 49407 for SD-1, 0 for SD-2 and SDXL's second tokenizer), the text
# encoder(s) run on those ids, the VAE encodes a 64×64 image and decodes its mean to the
# same size, the UNet predicts on a latent with text states of its cross-attention width
# (and SDXL's text_embeds and time_ids), the scheduler builds its 1000 steps; the same
# seed gives the same bytes, another seed other weights; bad arguments exit 2.
#
# Env: BIN (built binaries, default build/bin), LDM_TEST_DATA (default ../shared/data).
set -u

BIN=${BIN:-build/bin}
MK=$BIN/mktiny
RUN=$BIN/ldmrun
export LDM_TEST_DATA=${LDM_TEST_DATA:-../shared/data}
FAILS=0
ok() { echo "ok   mktiny: $*"; }
fail() {
    echo "FAIL mktiny: $*"
    FAILS=$((FAILS + 1))
}

for b in "$MK" "$RUN"; do
    if [ ! -x "$b" ]; then
        echo "FAIL mktiny: $b not built"
        exit 1
    fi
done
T=$(mktemp -d "${TMPDIR:-/tmp}/ldmpipe-mktiny.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# tensors OUT NAME:D1xD2x...[:int] ...: a safetensors file of seeded uniform values in
# [-1, 1) (F32), or, with ":int", I64 values in 0..999 (Python's standard library only)
tensors() {
    python3 - "$@" <<'PY'
import json, random, struct, sys
random.seed(7)
out, specs = sys.argv[1], sys.argv[2:]
header, blobs, off = {}, [], 0
for spec in specs:
    parts = spec.split(":")
    name, shape = parts[0], [int(x) for x in parts[1].split("x")]
    n = 1
    for s in shape:
        n *= s
    if len(parts) > 2:
        blob = struct.pack("<%dq" % n, *[random.randrange(1000) for _ in range(n)])
        dt = "I64"
    else:
        blob = struct.pack("<%df" % n, *[random.uniform(-1, 1) for _ in range(n)])
        dt = "F32"
    header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(blob)]}
    blobs.append(blob)
    off += len(blob)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
}

# shape_of FILE NAME: "[d0, d1, ...]" of a tensor in a safetensors file
shape_of() {
    python3 -c '
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
print(json.loads(f.read(n))[sys.argv[2]]["shape"])' "$1" "$2" 2>/dev/null
}

# first_ids FILE: the first eight ids of out.input_ids
first_ids() {
    python3 -c '
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
h = json.loads(f.read(n))["out.input_ids"]; d = f.read()
print(*struct.unpack("<8q", d[h["data_offsets"][0]:h["data_offsets"][0] + 64]))' "$1"
}

# try NAME CMD...: run, fail with stderr on error
try() {
    local what=$1
    shift
    if "$@" 2>"$T/err"; then return 0; fi
    fail "$what: $(cat "$T/err")"
    return 1
}

check_tokenizer() { # VARIANT SUB PAD
    local d=$T/$1 want="49406 320 1125 539 320 2368 49407 $3"
    try "$1 $2" "$RUN" tokenize "$d/$2" "$T/$1.$2.ids" "a photo of a cat" || return
    local got
    got=$(first_ids "$T/$1.$2.ids")
    [ "$got" = "$want" ] && ok "$1 $2: $got" || fail "$1 $2: ids $got, want $want"
}

check_clip() { # VARIANT SUB IDS-FROM PROJ
    local d=$T/$1 o=$T/$1.$2.out
    try "$1 $2" "$RUN" clip "$d/$2" "$T/$1.$3.ids" "$o" --input out.input_ids || return
    local s e
    s=$(shape_of "$o" out.last_hidden_state)
    e=$(shape_of "$o" out.text_embeds)
    if [ "$s" = "[1, 77, 32]" ] && { [ "$4" = 0 ] || [ "$e" = "[1, 32]" ]; }; then
        ok "$1 $2: last_hidden_state $s${e:+, text_embeds $e}"
    else
        fail "$1 $2: last_hidden_state $s, text_embeds $e"
    fi
}

check_vae() {
    local d=$T/$1
    tensors "$T/$1.img" in.image:1x3x64x64
    try "$1 vae-encode" "$RUN" vae-encode "$d/vae" "$T/$1.img" "$T/$1.lat" || return
    try "$1 vae-decode" "$RUN" vae-decode "$d/vae" "$T/$1.lat" "$T/$1.dec" --input out.mean ||
        return
    local m r
    m=$(shape_of "$T/$1.lat" out.mean)
    r=$(shape_of "$T/$1.dec" out.decoded)
    [ "$m" = "[1, 4, 32, 32]" ] && [ "$r" = "[1, 3, 64, 64]" ] &&
        ok "$1 vae: mean $m, decoded $r" || fail "$1 vae: mean $m, decoded $r"
}

check_unet() { # VARIANT CROSS-WIDTH
    local d=$T/$1 extra=()
    [ "$1" = sdxl ] && extra=(in.text_embeds:2x32 in.time_ids:2x6)
    tensors "$T/$1.uin" in.sample:2x4x16x16 in.timestep:2:int in.encoder_hidden_states:2x77x"$2" \
        "${extra[@]}"
    try "$1 unet" "$RUN" unet "$d/unet" "$T/$1.uin" "$T/$1.uout" --threads 2 || return
    local s
    s=$(shape_of "$T/$1.uout" out.sample)
    [ "$s" = "[2, 4, 16, 16]" ] && ok "$1 unet: out.sample $s" || fail "$1 unet: out.sample $s"
}

check_scheduler() {
    try "$1 scheduler" "$RUN" schedule "$T/$1/scheduler" "$T/$1.sched" || return
    local s
    s=$(shape_of "$T/$1.sched" out.alphas_cumprod)
    [ "$s" = "[1000]" ] && ok "$1 scheduler: alphas_cumprod $s" || fail "$1 scheduler: $s"
}

for v in sd1 sd2 sdxl; do
    if ! "$MK" --variant $v --out "$T/$v" --seed 5 2>"$T/err"; then
        fail "mktiny --variant $v: $(cat "$T/err")"
        continue
    fi
    ok "$v written: $(cd "$T/$v" && ls | tr '\n' ' ')"
    pad=49407
    [ $v = sd1 ] || pad=0
    [ $v = sdxl ] && pad=49407 # SDXL's first tokenizer is SD-1's
    check_tokenizer $v tokenizer $pad
    check_clip $v text_encoder tokenizer 0
    if [ $v = sdxl ]; then
        check_tokenizer $v tokenizer_2 0
        check_clip $v text_encoder_2 tokenizer_2 1
    fi
    check_vae $v
    cross=32
    [ $v = sdxl ] && cross=64
    check_unet $v $cross
    check_scheduler $v
done

# determinism: the same seed, the same bytes; another seed, other weights
"$MK" --variant sd1 --out "$T/again" --seed 5 2>/dev/null
"$MK" --variant sd1 --out "$T/other" --seed 6 2>/dev/null
if cmp -s "$T/sd1/unet/diffusion_pytorch_model.safetensors" \
    "$T/again/unet/diffusion_pytorch_model.safetensors" &&
    cmp -s "$T/sd1/vae/diffusion_pytorch_model.safetensors" \
        "$T/again/vae/diffusion_pytorch_model.safetensors"; then
    ok "same seed, same weights"
else
    fail "the same seed gave other weights"
fi
if cmp -s "$T/sd1/unet/diffusion_pytorch_model.safetensors" \
    "$T/other/unet/diffusion_pytorch_model.safetensors"; then
    fail "another seed gave the same weights"
else
    ok "another seed, other weights"
fi

rc=0
"$MK" --variant sd3 --out "$T/x" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] && ok "unknown variant exits 2" || fail "unknown variant: rc $rc"
rc=0
"$MK" --variant sd1 >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] && ok "missing --out exits 2" || fail "missing --out: rc $rc"

if [ $FAILS -ne 0 ]; then
    echo "mktiny: $FAILS failed"
    exit 1
fi
echo "mktiny: all passed"
