#!/usr/bin/env bash
# trainerd.sh — trainerd on a real cache: a tiny SD-1 model folder (mktiny), synthetic
# shards encoded by loaderd + encoderd, then:
#   - the loss falls over 60 steps (metrics.jsonl);
#   - kill -9 after a checkpoint, resume=latest: the losses after resuming equal those of
#     an uninterrupted run, bit for bit;
#   - 2 CPU ranks with batch B give the weights of 1 rank with batch 2B (within 1e-6),
#     and grad_accum 4 x B those of batch 4B;
#   - zero_stage=2 on 2 ranks gives the weights and checkpointed optimizer state of
#     zero_stage=0 (AdamW and 8-bit AdamW), and a checkpoint of either resumes in the other;
#     an 8-bit state in the layout before the slots (a moment per arena element) resumes;
#   - a checkpoint's unet/ loads with the project's reader (ldmrun) and its config.json
#     equals the model's; EMA and fp16 saving write unet_ema/ and half weights;
#   - `ldmctl checkpoint` and SIGTERM write checkpoints, keep_last prunes;
#   - a cache made by other encoders is refused (exit 78, naming the part).
set -u
BIN=${BIN:-build/bin}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/ldmpipe-trainerd.XXXXXX)
export LDMPIPE_RUN_DIR=$T/run
export LDM_TEST_DATA=${LDM_TEST_DATA:-../shared/data}
PIDS=()
FAILS=0
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"; echo "T=$T"
}
trap cleanup EXIT
ok() { echo "ok   trainerd: $*"; }
fail() {
    echo "FAIL trainerd: $*"
    FAILS=$((FAILS + 1))
}
mkdir -p "$LDMPIPE_RUN_DIR"
chmod 700 "$LDMPIPE_RUN_DIR"

# ---- a cache -------------------------------------------------------------------------
"$BIN/mktiny" --variant sd1 --out "$T/model" --seed 1 >/dev/null || fail "mktiny"
"$BIN/mkshards" synth --out "$T/shards" --shards 2 --per-shard 32 --size 64 --seed 5 \
    >/dev/null || fail "mkshards"
ls "$T"/shards/*.tar >"$T/list"
"$BIN/encoderd" --shards="@$T/list" --cache="$T/cache" --model="$T/model" --batch_size=8 \
    --max_wait=100ms --threads=1 2>"$T/enc.log" &
E=$!
PIDS+=($E)
"$BIN/loaderd" --tokenizer="$T/model/tokenizer" --resolution=64 --threads=1 2>"$T/ld.log" &
L=$!
PIDS+=($L)
committed() {
    "$BIN/ldmctl" --json -e encoderd status 2>/dev/null |
        "$PY" -c "import json,sys; print(json.load(sys.stdin)['counters']['samples_committed'])" \
            2>/dev/null
}
for _ in $(seq 600); do
    [ "$(committed)" -ge 64 ] 2>/dev/null && break
    sleep 0.1
done
[ "$(committed)" -ge 64 ] 2>/dev/null && ok "cache of 64 samples encoded" ||
    fail "cache not filled: $(tail -2 "$T/enc.log")"
kill $L $E
wait $L $E 2>/dev/null

TR=(--model="$T/model" --cache="$T/cache" --threads=1 --seed=3 --log_every=1 --resume=latest)
train() { # NAME ARGS...: run to completion with its own control endpoint
    local name=$1
    shift
    "$BIN/trainerd" --id="$name" --output="$T/$name" "${TR[@]}" "$@" 2>"$T/$name.log"
}
losses() { "$PY" -c "import json,sys
for l in open(sys.argv[1]): d=json.loads(l); print(d['step'], repr(d['loss']))" "$1"; }

# ---- the loss falls -----------------------------------------------------------------
train fall --max_steps=60 --batch_size=4 --lr=1e-3 --save_steps=0 ||
    fail "60 steps: exit $?: $(tail -2 "$T/fall.log")"
"$PY" - "$T/fall/metrics.jsonl" <<'PY' && ok "loss falls over 60 steps" || fail "loss did not fall"
import json, sys
l = [json.loads(x)["loss"] for x in open(sys.argv[1])]
a, b = sum(l[:10]) / 10, sum(l[-10:]) / 10
print(f"     first 10 steps {a:.4f}, last 10 {b:.4f}")
sys.exit(0 if len(l) == 60 and b < 0.7 * a else 1)
PY

# ---- exact resume after kill -9 --------------------------------------------------------
RS=(--max_steps=12 --batch_size=4 --lr=1e-3 --save_steps=4 --use_ema=true --ema_decay=0.99)
train whole "${RS[@]}" || fail "uninterrupted run: exit $?: $(tail -2 "$T/whole.log")"
"$BIN/trainerd" --id=cut --output="$T/cut" "${TR[@]}" "${RS[@]}" 2>"$T/cut.log" &
C=$!
PIDS+=($C)
for _ in $(seq 600); do
    [ -d "$T/cut/checkpoint-8" ] && break
    sleep 0.05
done
kill -9 $C
wait $C 2>/dev/null
[ -d "$T/cut/checkpoint-8" ] || fail "no checkpoint-8 before the kill"
train cut "${RS[@]}" || fail "resumed run: exit $?: $(tail -2 "$T/cut.log")"
grep -q 'msg="resumed".*step=8' "$T/cut.log" && ok "resumed from checkpoint-8" ||
    fail "did not resume from checkpoint-8: $(grep -m1 resumed "$T/cut.log")"
losses "$T/whole/metrics.jsonl" | tail -4 >"$T/a"
losses "$T/cut/metrics.jsonl" | tail -4 >"$T/b"
if cmp -s "$T/a" "$T/b" && [ "$(wc -l <"$T/a")" = 4 ]; then
    ok "losses of steps 9-12 after kill -9 and resume equal the uninterrupted run's"
else
    fail "resume not exact: $(paste -d' ' "$T/a" "$T/b" | tr '\n' ';')"
fi
"$PY" - "$T/whole/checkpoint-12" "$T/cut/checkpoint-12" <<'PY' && ok "final weights and EMA equal bit for bit" || fail "final weights differ after resume"
import sys, json, struct
import numpy as np
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); b = raw[8 + n:]
    return {k: b[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
for part in ("unet", "unet_ema"):
    a = load(f"{sys.argv[1]}/{part}/diffusion_pytorch_model.safetensors")
    b = load(f"{sys.argv[2]}/{part}/diffusion_pytorch_model.safetensors")
    if a != b: sys.exit(1)
PY

# ---- ranks and accumulation give the same weights -------------------------------------
same_weights() { # DIR_A DIR_B TOL
    "$PY" - "$1" "$2" "$3" <<'PY'
import sys, json, struct
import numpy as np
def load(p):
    raw = open(p + "/unet/diffusion_pytorch_model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); b = raw[8 + n:]
    return {k: np.frombuffer(b[v["data_offsets"][0]:v["data_offsets"][1]], "<f4")
            for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
d = max(float(np.abs(a[k] - b[k]).max()) for k in a)
print(f"     max |difference| {d:.3g}")
sys.exit(0 if a.keys() == b.keys() and d <= float(sys.argv[3]) else 1)
PY
}
# adam_eps 1e-3: AdamW's first steps divide each gradient by its own magnitude
# (m/sqrt(v) = ±1 at step 1), so a near-zero gradient whose last bits differ between two
# summation orders would move its weight by a whole ±lr; a large eps keeps the update
# proportional to the gradient, and then the weights must agree to 1e-6.
EQ=(--max_steps=3 --lr=1e-4 --save_steps=0 --weight_decay=0.01 --adam_eps=1e-3)
train one8 "${EQ[@]}" --batch_size=8 || fail "batch 8: $(tail -2 "$T/one8.log")"
R2=("${EQ[@]}" --batch_size=4 --world_size=2 --bucket_mb=1 --rendezvous="ipc://$T/run/rdv")
"$BIN/trainerd" --id=r1 --output="$T/r1" "${TR[@]}" "${R2[@]}" --rank=1 2>"$T/r1.log" &
P1=$!
PIDS+=($P1)
train r0 "${R2[@]}" --rank=0 || fail "rank 0: exit $?: $(tail -2 "$T/r0.log")"
wait $P1 || fail "rank 1: exit $?: $(tail -2 "$T/r1.log")"
same_weights "$T/one8/checkpoint-3" "$T/r0/checkpoint-3" 1e-6 &&
    ok "2 ranks x batch 4 = 1 rank x batch 8 (3 AdamW steps)" || fail "2 ranks differ from 1"
train acc "${EQ[@]}" --batch_size=2 --grad_accum=4 || fail "accum: $(tail -2 "$T/acc.log")"
same_weights "$T/one8/checkpoint-3" "$T/acc/checkpoint-3" 1e-6 &&
    ok "grad_accum 4 x batch 2 = batch 8" || fail "accumulation differs from the big batch"

# ---- ZeRO-2: sharded optimiser state, the unsharded run's weights and checkpoints ---------
pair() { # NAME ARGS...: ranks 0 and 1 to completion
    local name=$1 p s0
    shift
    "$BIN/trainerd" --id="$name-1" --output="$T/$name" "${TR[@]}" "$@" --rank=1 \
        2>"$T/$name-1.log" &
    p=$!
    PIDS+=($p)
    train "$name" "$@" --rank=0
    s0=$?
    wait $p && [ $s0 = 0 ] || fail "$name: exit $s0/$?: $(tail -1 "$T/$name.log")"
}
same_state() { # DIR_A DIR_B: weights and trainer_state tensors within 1e-7
    "$PY" - "$1" "$2" <<'PY'
import sys, json, struct
import numpy as np
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); b = raw[8 + n:]
    dt = {"F32": "<f4", "U8": "u1", "I64": "<i8", "F64": "<f8"}
    return {k: np.frombuffer(b[v["data_offsets"][0]:v["data_offsets"][1]], dt[v["dtype"]])
            for k, v in h.items() if k != "__metadata__"}
d = {}
for f in ("unet/diffusion_pytorch_model.safetensors", "trainer_state.safetensors"):
    a, b = load(f"{sys.argv[1]}/{f}"), load(f"{sys.argv[2]}/{f}")
    if a.keys() != b.keys(): print("     tensors differ:", set(a) ^ set(b)); sys.exit(1)
    d[f.split("/")[0]] = max((float(np.abs(a[k].astype(float) - b[k].astype(float)).max())
                              for k in a if k not in ("keys",) and a[k].size), default=0.0)
print(f"     max |difference|: weights {d['unet']:.3g}, optimizer state {d['trainer_state.safetensors']:.3g}")
sys.exit(0 if max(d.values()) <= 1e-7 else 1)
PY
}
moments() { grep -h -o 'rank=[01] .*moments_bytes=[0-9]*' "$@" | sed 's/ world.*zero/ zero/' | tr '\n' ' '; }
pair z2 "${R2[@]}" --zero_stage=2 --rendezvous="ipc://$T/run/rdv-z2"
same_state "$T/r0/checkpoint-3" "$T/z2/checkpoint-3" &&
    ok "zero_stage=2 = zero_stage=0 on 2 ranks (3 AdamW steps)" || fail "ZeRO AdamW differs"
echo "     moments per rank: $(moments "$T/r0.log" "$T/r1.log" "$T/z2.log" "$T/z2-1.log")"
Q8=("${EQ[@]}" --optimizer=adamw8bit --batch_size=1 --world_size=2 --bucket_mb=1 --max_steps=2
    --max_grad_norm=0 # no clipping: the norm summed by shards may differ in its last bit
    --save_steps=1)
pair q0 "${Q8[@]}" --rendezvous="ipc://$T/run/rdv-q0"
pair q2 "${Q8[@]}" --max_steps=1 --zero_stage=2 --rendezvous="ipc://$T/run/rdv-q2"
same_state "$T/q0/checkpoint-1" "$T/q2/checkpoint-1" &&
    ok "zero_stage=2 = zero_stage=0 with 8-bit AdamW" || fail "ZeRO 8-bit AdamW differs"
echo "     moments per rank: $(moments "$T/q0.log" "$T/q0-1.log" "$T/q2.log" "$T/q2-1.log")"
mkdir -p "$T/qa" "$T/qb"
cp -r "$T/q0/checkpoint-1" "$T/qa/" && cp -r "$T/q2/checkpoint-1" "$T/qb/"
pair qa "${Q8[@]}" --zero_stage=2 --rendezvous="ipc://$T/run/rdv-qa"
pair qb "${Q8[@]}" --zero_stage=0 --rendezvous="ipc://$T/run/rdv-qb"
grep -q 'msg="resumed".*step=1' "$T/qa.log" && grep -q 'msg="resumed".*step=1' "$T/qb.log" &&
    same_state "$T/q0/checkpoint-2" "$T/qa/checkpoint-2" &&
    same_state "$T/q0/checkpoint-2" "$T/qb/checkpoint-2" &&
    ok "resume unsharded -> ZeRO and ZeRO -> unsharded: step 2 as the uninterrupted run" ||
    fail "resume across zero_stage differs"
# An 8-bit state written before adam.m/v held one slot per small tensor (then: one float
# per arena element) still resumes. The arena's order comes from a run with lr 0, whose
# F32 `params` (save_precision fp16) are the model's weights where the arena holds them.
train lay --optimizer=adamw8bit --batch_size=1 --max_steps=1 --save_steps=1 --lr=0 \
    --weight_decay=0 --save_precision=fp16 || fail "lr 0: $(tail -1 "$T/lay.log")"
mkdir -p "$T/qc" && cp -r "$T/q0/checkpoint-1" "$T/qc/"
"$PY" - "$T/model/unet/diffusion_pytorch_model.safetensors" \
    "$T/lay/checkpoint-1/trainer_state.safetensors" "$T/qc/checkpoint-1/trainer_state.safetensors" <<'PY' || fail "old-layout state not written"
import sys, json, struct
import numpy as np
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); b = raw[8 + n:]
    meta = h.pop("__metadata__", {})
    dt = {"F32": "<f4", "U8": "u1", "I64": "<i8", "F64": "<f8"}
    return meta, {k: (v["dtype"], np.frombuffer(b[v["data_offsets"][0]:v["data_offsets"][1]],
                                              dt[v["dtype"]])) for k, v in h.items()}
_, w = load(sys.argv[1])
_, lay = load(sys.argv[2])
arena = lay["params"][1]
small = []  # (arena offset, elements) of each tensor with F32 moments
for name, (_, x) in w.items():
    if x.size >= 4096: continue
    at = [o for o in np.nonzero(arena[::64] == x[0])[0] * 64
          if np.array_equal(arena[o:o + x.size], x)]
    if len(at) != 1: sys.exit(f"{name}: found at {at}")
    small.append((int(at[0]), x.size))
meta, st = load(sys.argv[3])
for k in ("adam.m", "adam.v"):
    slots, full, s = st[k][1], np.zeros(arena.size, "<f4"), 0
    for o, n in sorted(small):
        full[o:o + n] = slots[s:s + n]; s += (n + 63) // 64 * 64
    if s != slots.size: sys.exit(f"{k}: slots of {s} floats, the state holds {slots.size}")
    st[k] = ("F32", full)
head, blobs, off = {"__metadata__": meta}, [], 0
for k in sorted(st, key=lambda k: -st[k][1].itemsize):
    b = st[k][1].tobytes()
    head[k] = {"dtype": st[k][0], "shape": [st[k][1].size], "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(head).encode(); h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[3], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print(f"     {len(small)} small tensors; adam.m of {slots.size} floats -> {arena.size}")
PY
pair qc "${Q8[@]}" --zero_stage=2 --rendezvous="ipc://$T/run/rdv-qc"
grep -q 'msg="resumed".*step=1' "$T/qc.log" && grep -q 'moments laid out as the arena' "$T/qc.log" &&
    same_state "$T/q0/checkpoint-2" "$T/qc/checkpoint-2" &&
    ok "8-bit state of one moment per arena element resumes (ZeRO): step 2 as uninterrupted" ||
    fail "old-layout 8-bit state: $(grep -m1 -E 'resumed|error' "$T/qc.log")"

# ---- checkpoints: the diffusers layout, EMA, fp16, control, SIGTERM, pruning ----------
CK=(--batch_size=4 --lr=1e-3 --use_ema=true --save_precision=fp16 --keep_last=2 --save_steps=3)
train ck --max_steps=7 "${CK[@]}" || fail "checkpoint run: exit $?: $(tail -2 "$T/ck.log")"
ls -d "$T"/ck/checkpoint-* | xargs -n1 basename | tr '\n' ' ' >"$T/ls"
[ "$(cat "$T/ls")" = "checkpoint-6 checkpoint-7 " ] && ok "keep_last=2 kept $(cat "$T/ls")" ||
    fail "keep_last: $(cat "$T/ls")"
"$PY" - "$T/model/unet/config.json" "$T/ck/checkpoint-7" <<'PY' && ok "unet/ and unet_ema/: the model's config.json, fp16 weights" || fail "checkpoint layout"
import json, struct, sys
want = json.load(open(sys.argv[1]))
for part in ("unet", "unet_ema"):
    got = json.load(open(f"{sys.argv[2]}/{part}/config.json"))
    bad = [k for k in set(want) | set(got) if k != "_diffusers_version" and want.get(k) != got.get(k)]
    if bad: print("     config keys differ:", bad); sys.exit(1)
    raw = open(f"{sys.argv[2]}/{part}/diffusion_pytorch_model.safetensors", "rb").read()
    h = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    if {v["dtype"] for k, v in h.items() if k != "__metadata__"} != {"F16"}: sys.exit(1)
PY
"$PY" - "$T/in.safetensors" <<'PY'
import json, struct, sys
import numpy as np
rng = np.random.default_rng(0)
t = {"in.sample": rng.standard_normal((1, 4, 8, 8)), "in.timestep": np.array([500.0]),
     "in.encoder_hidden_states": rng.standard_normal((1, 77, 32))}
head, blobs, off = {}, [], 0
for k in sorted(t):
    b = np.asarray(t[k], "<f4").tobytes()
    head[k] = {"dtype": "F32", "shape": list(np.shape(t[k])), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(head).encode(); h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
"$BIN/ldmrun" unet "$T/ck/checkpoint-7/unet" "$T/in.safetensors" "$T/out.safetensors" \
    >"$T/run.txt" 2>&1 && ok "checkpoint-7/unet runs in ldmrun" ||
    fail "ldmrun on the checkpoint: $(tail -2 "$T/run.txt")"

# ldmctl checkpoint, then SIGTERM, on a long run
"$BIN/trainerd" --id=ctl --output="$T/ctl" "${TR[@]}" --max_steps=100000 --batch_size=2 \
    --save_steps=0 2>"$T/ctl.log" &
P=$!
PIDS+=($P)
for _ in $(seq 300); do
    [ -s "$T/ctl/metrics.jsonl" ] && break
    sleep 0.05
done
"$BIN/ldmctl" -e trainerd-ctl checkpoint >/dev/null || fail "ldmctl checkpoint refused"
for _ in $(seq 300); do
    ls -d "$T"/ctl/checkpoint-* >/dev/null 2>&1 && break
    sleep 0.05
done
ls -d "$T"/ctl/checkpoint-* >/dev/null 2>&1 && ok "ldmctl checkpoint wrote $(basename "$(ls -d "$T"/ctl/checkpoint-* | head -1)")" ||
    fail "no checkpoint after ldmctl checkpoint"
"$BIN/ldmctl" --json -e trainerd-ctl status >"$T/st.json" 2>&1
"$PY" -c "import json,sys; d=json.load(open(sys.argv[1]))['training']; sys.exit(0 if d['total']==100000 and d['step']>0 and d['state'] in ('training','waiting') else 1)" "$T/st.json" &&
    ok "status shows step/total and the training state" || fail "status: $(head -c 300 "$T/st.json")"
kill -TERM $P
wait $P
st=$?
last=$(ls -d "$T"/ctl/checkpoint-* | sed 's/.*checkpoint-//' | sort -n | tail -1)
steps=$(wc -l <"$T/ctl/metrics.jsonl")
[ $st = 0 ] && [ "$last" -ge "$steps" ] && ok "SIGTERM: exit 0, checkpoint-$last written" ||
    fail "SIGTERM: exit $st, last checkpoint $last, $steps steps logged"

# ---- a cache from other encoders is refused ------------------------------------------------
"$BIN/mktiny" --variant sd1 --out "$T/other" --seed 2 >/dev/null
"$BIN/trainerd" --id=bad --output="$T/bad" "${TR[@]}" --model="$T/other" --max_steps=1 \
    2>"$T/bad.log"
st=$?
[ $st = 78 ] && grep -q "encoded with another vae" "$T/bad.log" &&
    ok "cache of other encoders refused (exit 78): $(grep -o 'cache .*encoded with another vae' "$T/bad.log" | head -1 | cut -c1-60)..." ||
    fail "other encoders: exit $st: $(tail -1 "$T/bad.log")"

# ---- non-finite steps are skipped, then training stops with a clear message ----------------
train nan --max_steps=50 --batch_size=2 --lr=1e30 --max_bad_steps=3 --save_steps=0
st=$?
[ $st = 1 ] && grep -q "3 steps in a row had a non-finite loss or gradient" "$T/nan.log" &&
    ok "lr 1e30: $(grep -c 'step skipped' "$T/nan.log") steps skipped, then exit 1: $(grep -o '3 steps in a row[^;]*' "$T/nan.log" | head -1)" ||
    fail "non-finite guard: exit $st: $(grep -E 'skipped|stopped' "$T/nan.log" | tail -2)"

[ $FAILS = 0 ] || exit 1
