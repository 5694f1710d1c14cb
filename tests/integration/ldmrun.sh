#!/usr/bin/env bash
# ldmrun.sh — build/bin/ldmrun runs every golden case's inputs (UNet SD-1/SD-2/SDXL,
# VAE encode and decode, both CLIP text encoders) and matches the reference outputs
# within 1e-4 relative (ldmrun compare); compare itself fails on a perturbed tensor,
# and bad arguments exit 2.
#
# Env: BIN (built binaries, default build/bin), LDM_TEST_DATA (default ../shared/data).
set -u

BIN=${BIN:-build/bin}
RUN=$BIN/ldmrun
G=${LDM_TEST_DATA:-../shared/data}/golden
FAILS=0
ok() { echo "ok   ldmrun: $*"; }
fail() {
    echo "FAIL ldmrun: $*"
    FAILS=$((FAILS + 1))
}

if [ ! -x "$RUN" ]; then
    echo "FAIL ldmrun: $RUN not built"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ldmpipe-ldmrun.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# check NAME OUTFILE GOLDEN: every out.* of OUTFILE within 1e-4 of GOLDEN's
check() {
    if "$RUN" compare "$2" "$3" out. --tol 1e-4 >"$T/cmp.txt" 2>&1; then
        ok "$1: $(tail -1 "$T/cmp.txt")"
    else
        fail "$1: $(cat "$T/cmp.txt")"
    fi
}

for c in unet_sd1 unet_sd2 unet_sdxl; do
    if "$RUN" unet "$G/$c" "$G/$c/golden.safetensors" "$T/$c.safetensors" --threads 2 \
        2>"$T/err"; then
        check "$c" "$T/$c.safetensors" "$G/$c/golden.safetensors"
    else
        fail "$c: $(cat "$T/err")"
    fi
done

if "$RUN" vae-encode "$G/vae" "$G/vae/golden.safetensors" "$T/enc.safetensors" 2>"$T/err"; then
    check "vae-encode" "$T/enc.safetensors" "$G/vae/golden.safetensors"
else
    fail "vae-encode: $(cat "$T/err")"
fi
# out.decoded is decode(out.mean)
if "$RUN" vae-decode "$G/vae" "$G/vae/golden.safetensors" "$T/dec.safetensors" \
    --input out.mean 2>"$T/err"; then
    check "vae-decode" "$T/dec.safetensors" "$G/vae/golden.safetensors"
else
    fail "vae-decode: $(cat "$T/err")"
fi

for c in clip_text_quickgelu clip_text_gelu; do
    if "$RUN" clip "$G/$c" "$G/$c/golden.safetensors" "$T/$c.safetensors" 2>"$T/err"; then
        n=$(grep -c '^ok' < <("$RUN" compare "$T/$c.safetensors" "$G/$c/golden.safetensors" out.))
        check "$c ($n tensors)" "$T/$c.safetensors" "$G/$c/golden.safetensors"
    else
        fail "$c: $(cat "$T/err")"
    fi
done

# compare must see a difference: the SD-1 prediction against the SD-2 one
if "$RUN" compare "$T/unet_sd1.safetensors" "$G/unet_sd2/golden.safetensors" out.sample \
    >/dev/null 2>&1; then
    fail "compare accepted two different predictions"
else
    ok "compare rejects a different tensor"
fi
# a prefix matching nothing is an error, not a pass
if "$RUN" compare "$T/unet_sd1.safetensors" "$G/unet_sd1/golden.safetensors" nothing. \
    >/dev/null 2>&1; then
    fail "compare passed with no tensor compared"
else
    ok "compare with no matching tensor fails"
fi
# a missing input tensor names it
"$RUN" unet "$G/unet_sd1" "$G/vae/golden.safetensors" "$T/x.safetensors" 2>"$T/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "in.sample" "$T/err"; then
    ok "missing input: $(cat "$T/err")"
else
    fail "missing input: rc $rc, $(cat "$T/err")"
fi
"$RUN" unet "$G/unet_sd1" >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] && ok "bad arguments exit 2" || fail "bad arguments: rc $rc"

if [ $FAILS -ne 0 ]; then
    echo "ldmrun: $FAILS failed"
    exit 1
fi
echo "ldmrun: all passed"
