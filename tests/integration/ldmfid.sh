#!/usr/bin/env bash
# ldmfid.sh — build/bin/ldmfid on small image sets with the golden test InceptionV3-FID
# weights (../shared/data/golden/README.md's formula, written by bench/fid/weights.py as
# a .safetensors file and as a torch .pth like pytorch-fid's).
#
# Checks: pool3 features match pytorch-fid's network on PyTorch for the same files
# (bench/fid/fid_inception.py: pytorch_fid itself when importable, else a definition
# written from it) within 1e-4 relative; the .npz holds np.mean / np.cov of those
# features; FID matches pytorch-fid's formula recomputed in Python on the same features
# within 1e-6 relative (8 images give rank-7 covariances, where scipy's sqrtm breaks
# down: the reference uses the exact form tr sqrtm(σ1σ2) = nuclear norm of X1·X2ᵀ /
# √((n1−1)(n2−1)) for centred features X), and on full-rank stats files written as
# pytorch-fid writes them (scipy.linalg.sqrtm where scipy exists, else numpy's eigvals);
# the FID of a set with itself is ~0; stats written and read back give the same FID;
# a tar shard gives the folder's features; corrupt images are named and skipped; the
# Inception Score matches torch-fidelity's isc_features_to_metric (written out in torch,
# with numpy's RandomState permutation) on the same unbiased logits; bad arguments
# exit 2.
#
# Env: BIN (built binaries, default build/bin), LDM_TEST_DATA (default ../shared/data),
# PYTHON (default /usr/bin/python3: Debian's numpy, PIL, torch; scipy is used where present).
set -u

BIN=${BIN:-build/bin}
FID=$BIN/ldmfid
PY=${PYTHON:-/usr/bin/python3}
FAILS=0
ok() { echo "ok   ldmfid: $*"; }
fail() {
    echo "FAIL ldmfid: $*"
    FAILS=$((FAILS + 1))
}

if [ ! -x "$FID" ]; then
    echo "FAIL ldmfid: $FID not built"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ldmpipe-ldmfid.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
unset LDM_FID_WEIGHTS
export OMP_NUM_THREADS=2

# ---- weights and images -----------------------------------------------------------
"$PY" bench/fid/weights.py "$T/w.safetensors" && "$PY" bench/fid/weights.py "$T/w.pth" ||
    { echo "FAIL ldmfid: cannot write the test weights"; exit 1; }
W="--weights $T/w.safetensors --threads 2"

"$PY" - "$T" <<'PYEOF' || { echo "FAIL ldmfid: cannot make the images"; exit 1; }
import io, os, sys, tarfile
import numpy as np
from PIL import Image
t = sys.argv[1]
rng = np.random.default_rng(5)

def picture(i, k):
    h, w = (64, 64) if i % 3 else (48, 80)       # two sizes: batches split by size
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([(x * (3 + i + 5 * k)) % 256, (y * (5 + 2 * i)) % 256,
                  ((x + y) * (2 + 3 * k) + 40 * i) % 256], -1).astype(float)
    return Image.fromarray(np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8))

for k, name in enumerate(('A', 'B')):
    os.makedirs(f'{t}/{name}')
    for i in range(8):
        fmt = 'JPEG' if (k, i) == (0, 4) else 'WEBP' if (k, i) == (0, 5) else 'PNG'
        ext = {'JPEG': 'jpg', 'WEBP': 'webp', 'PNG': 'png'}[fmt]
        picture(i, k).save(f'{t}/{name}/img{i:02d}.{ext}', fmt, quality=90)
# A with two broken files and a text file
os.makedirs(f'{t}/Abad')
for n in sorted(os.listdir(f'{t}/A')):
    open(f'{t}/Abad/{n}', 'wb').write(open(f'{t}/A/{n}', 'rb').read())
png = open(f'{t}/A/img01.png', 'rb').read()
open(f'{t}/Abad/img01b_truncated.png', 'wb').write(png[:len(png) // 2])
open(f'{t}/Abad/junk.jpg', 'wb').write(bytes(rng.integers(0, 256, 3000, dtype=np.uint8)))
open(f'{t}/Abad/notes.txt', 'w').write('not an image\n')
# A as a WebDataset shard: captions, and a conditioning image that is not taken
with tarfile.open(f'{t}/a-000000.tar', 'w') as tf:
    def add(name, data):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    for n in sorted(os.listdir(f'{t}/A')):
        key, ext = n.split('.')
        add(f'{key}.txt', b'a caption')
        add(f'{key}.{ext}', open(f'{t}/A/{n}', 'rb').read())
        add(f'{key}.input.png', png)
PYEOF
ok "made 2 sets of 8 images (PNG, JPEG, WebP; 64x64 and 80x48), a shard, broken files"

# ---- stats, features against PyTorch ------------------------------------------------
"$FID" stats "$T/A" --out "$T/a.npz" --features "$T/fa.npy" $W 2>"$T/err" ||
    fail "stats A: $(cat "$T/err")"
LDM_FID_WEIGHTS=$T/w.pth "$FID" stats "$T/B" --out "$T/b.npz" --features "$T/fb.npy" \
    --threads 2 --batch 3 2>"$T/err" && ok "stats with \$LDM_FID_WEIGHTS (.pth) and --batch 3" ||
    fail "stats B: $(cat "$T/err")"
grep -q 'images=8 bad=0' "$T/err" || fail "stats B log: $(cat "$T/err")"

if "$PY" bench/fid/peer.py --weights "$T/w.pth" --threads 2 --features "$T/pa.npy" \
    --logits "$T/pla.npy" "$T/A" >"$T/peer.json" 2>"$T/err"; then
    out=$("$PY" - "$T" <<'PYEOF'
import json, sys
import numpy as np
t = sys.argv[1]
a, p = np.load(f'{t}/fa.npy'), np.load(f'{t}/pa.npy')
e = np.abs(a - p).max() / np.abs(p).max() if a.shape == p.shape else float('inf')
print('%.3g %s' % (e, json.load(open(f'{t}/peer.json'))['impl']))
PYEOF
    )
    read -r e impl <<<"$out"
    "$PY" -c "import sys; sys.exit(0 if float('$e') <= 1e-4 else 1)" &&
        ok "pool3 of 8 files = PyTorch's ($impl): relative error $e" ||
        fail "pool3 differs from PyTorch's: $out"
else
    fail "PyTorch peer: $(tail -3 "$T/err")"
fi

out=$("$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
t = sys.argv[1]
bad = []
for s in 'ab':
    f = np.load(f'{t}/f{s}.npy').astype(np.float64)
    z = np.load(f'{t}/{s}.npz')
    mu, sg = np.mean(f, axis=0), np.cov(f, rowvar=False)
    if z['mu'].dtype != np.float64 or z['sigma'].shape != (2048, 2048) or f.shape != (8, 2048):
        bad.append('%s: %s %s %s' % (s, z['mu'].dtype, z['sigma'].shape, f.shape))
    em = np.abs(z['mu'] - mu).max() / np.abs(mu).max()
    es = np.abs(z['sigma'] - sg).max() / np.abs(sg).max()
    if em > 1e-12 or es > 1e-12:
        bad.append('%s: mu %.3g sigma %.3g' % (s, em, es))
print('; '.join(bad) or 'ok')
PYEOF
)
[ "$out" = ok ] && ok "the .npz files hold float64 np.mean and np.cov of the features" ||
    fail "stats files: $out"

# ---- FID against pytorch-fid's formula -------------------------------------------------
fid_of() { "$FID" fid "$@" $W 2>"$T/err" | sed -n 's/^FID: //p'; }
f_npz=$(fid_of "$T/a.npz" "$T/b.npz")
out=$("$PY" - "$T" "$f_npz" <<'PYEOF'
import sys
import numpy as np
t, ours = sys.argv[1], float(sys.argv[2])
fa = np.load(f'{t}/fa.npy').astype(np.float64)
fb = np.load(f'{t}/fb.npy').astype(np.float64)
mu1, mu2 = fa.mean(0), fb.mean(0)
s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
d = mu1 - mu2
base = d.dot(d) + np.trace(s1) + np.trace(s2)
x1, x2 = fa - mu1, fb - mu2   # sigma = XᵀX/(n−1): tr sqrtm(s1·s2) = Σ singular values of X1·X2ᵀ
exact = base - 2 * np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt((len(fa) - 1) * (len(fb) - 1))
ok = abs(ours - exact) <= 1e-6 * abs(exact)
print('%s %.17g, rel %.3g' % ('ok' if ok else 'bad', exact, abs(ours - exact) / abs(exact)))
PYEOF
)
[[ "$out" == ok* ]] && ok "fid a.npz b.npz = $f_npz, pytorch-fid formula: ${out#ok }" ||
    fail "fid a.npz b.npz = $f_npz: $out"
f_mix=$(fid_of "$T/a.npz" "$T/B")
[ -n "$f_mix" ] && [ "$f_mix" = "$f_npz" ] &&
    ok "stats written and read back give the same FID as images ($f_mix)" ||
    fail "fid a.npz B (images) $f_mix, a.npz b.npz $f_npz"
f_self=$(fid_of "$T/A" "$T/a.npz")
f_self2=$(fid_of "$T/b.npz" "$T/b.npz")
"$PY" -c "import sys; sys.exit(0 if abs(float('$f_self')) < 1e-6 and abs(float('$f_self2')) < 1e-6 else 1)" \
    2>/dev/null && ok "FID of a set with itself: $f_self (images) and $f_self2 (stats)" ||
    fail "self FID $f_self / $f_self2"

# Full-rank covariances (2500 feature rows), where scipy's sqrtm, pytorch-fid's own path,
# is well conditioned: stats files as pytorch-fid's --save-stats writes them (float32 mu
# from np.mean of float32 features, float64 sigma, savez_compressed), FID as its
# calculate_frechet_distance computes it (numpy's eigenvalues of σ1σ2 without scipy).
out=$("$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(3)
D, n = 2048, 2500
mix = rng.normal(size=(D, D)) / np.sqrt(D)
st = []
for k in range(2):
    act = (rng.normal(size=(n, D)) @ (mix + 0.3 * k * np.eye(D)) + 0.1 * k).astype(np.float32)
    mu, sigma = np.mean(act, axis=0), np.cov(act, rowvar=False)
    np.savez_compressed(f'{t}/full{k}.npz', mu=mu, sigma=sigma)
    st.append((mu, sigma))
(mu1, s1), (mu2, s2) = st
diff = mu1 - mu2
try:
    from scipy import linalg
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    tr, how = np.trace(covmean.real), 'scipy sqrtm'
except ImportError:
    tr, how = np.sqrt(np.linalg.eigvals(s1.dot(s2)).astype(complex)).real.sum(), 'numpy eigvals'
print('%.17g %s' % (diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr, how))
PYEOF
)
read -r ref how <<<"$out"
f_full=$(fid_of "$T/full0.npz" "$T/full1.npz")
rel=$("$PY" -c "print('%.3g' % (abs(float('$f_full') - float('$ref')) / abs(float('$ref'))))" 2>/dev/null)
"$PY" -c "import sys; sys.exit(0 if float('$rel') <= 1e-6 else 1)" 2>/dev/null &&
    ok "full-rank pytorch-fid stats files: fid $f_full, pytorch-fid ($how) $ref, rel $rel" ||
    fail "full-rank: fid $f_full, reference $out"

# ---- shards and bad images --------------------------------------------------------------
"$FID" stats "$T/a-{000000..000000}.tar" --out "$T/t.npz" --features "$T/ft.npy" $W 2>"$T/err" &&
    cmp -s "$T/ft.npy" "$T/fa.npy" &&
    ok "a tar shard (brace pattern) gives the folder's features bit for bit" ||
    fail "shard: $(cat "$T/err")"
"$FID" stats "$T/Abad" --out "$T/abad.npz" $W 2>"$T/err.bad"
rc=$?
f_bad=$(fid_of "$T/abad.npz" "$T/a.npz")
[ $rc -eq 0 ] && grep -q 'file=.*Abad/img01b_truncated.png reason=' "$T/err.bad" &&
    grep -q 'file=.*Abad/junk.jpg reason=' "$T/err.bad" && grep -q 'images=8 bad=2' "$T/err.bad" &&
    "$PY" -c "import sys; sys.exit(0 if abs(float('$f_bad')) < 1e-6 else 1)" 2>/dev/null &&
    ok "corrupt images named, counted and skipped: $(grep -o 'file=[^ ]*junk.jpg reason=.*' "$T/err.bad" | head -1)" ||
    fail "bad images: rc $rc fid $f_bad $(cat "$T/err.bad")"
printf 'not a tar' >"$T/broken.tar"
head -c $(($(stat -c %s "$T/a-000000.tar") * 2 / 3)) "$T/a-000000.tar" >"$T/cut.tar"
"$FID" stats "$T/broken.tar" "$T/cut.tar" --out "$T/x.npz" $W 2>"$T/err" &&
    grep -q 'damaged shard.* at=[^ ]*broken.tar reason=' "$T/err" &&
    grep -q 'damaged shard.* at=[^ ]*cut.tar[^ ]* reason="damaged at byte [0-9]* (.*): Truncated' "$T/err" &&
    grep -q 'images=[1-7] bad=0 damaged_shards=2' "$T/err" &&
    ok "damaged shards (not a tar; cut short) are named, the images before the damage used" ||
    fail "damaged shards: $(cat "$T/err")"

# ---- Inception Score against torch-fidelity's metric ------------------------------------
is_check() { # NAME REF_ARGS LDMFID_ARGS...
    local name=$1 ref=$2
    shift 2
    "$FID" is "$T/A" --logits "$T/la.npy" $W "$@" >"$T/is.txt" 2>"$T/err" ||
        { fail "is $name: $(cat "$T/err")"; return; }
    out=$("$PY" - "$T" "$ref" <<'PYEOF'
import sys
import numpy as np
import torch
t, (splits, shuffle, seed) = sys.argv[1], sys.argv[2].split(',')
splits, seed = int(splits), int(seed)
got = dict(l.split(': ') for l in open(f'{t}/is.txt').read().split('\n') if l)
feature = torch.from_numpy(np.load(f'{t}/la.npy'))
N = feature.shape[0]
if shuffle == '1':   # torch-fidelity 0.3.0 isc_features_to_metric, step by step
    feature = feature[np.random.RandomState(seed).permutation(N), :]
feature = feature.double()
p, log_p = feature.softmax(dim=1), feature.log_softmax(dim=1)
scores = []
for i in range(splits):
    pc = p[(i * N // splits):((i + 1) * N // splits), :]
    lc = log_p[(i * N // splits):((i + 1) * N // splits), :]
    qc = pc.mean(dim=0, keepdim=True)
    scores.append((pc * (lc - qc.log())).sum(dim=1).mean().exp().item())
m, s = float(np.mean(scores)), float(np.std(scores))
em = abs(float(got['inception_score_mean']) - m) / m
es = abs(float(got['inception_score_std']) - s) / max(s, 1e-300)
pl = np.load(f'{t}/pla.npy')   # PyTorch's unbiased logits of the same files
el = np.abs(np.load(f'{t}/la.npy') - pl).max() / np.abs(pl).max()
good = em <= 1e-12 and es <= 1e-9 and el <= 1e-4 and feature.shape[1] == 1008
print('%s mean %.17g std %.17g (rel %.2g, %.2g; logits vs PyTorch %.2g)' %
      ('ok' if good else 'bad', m, s, em, es, el))
PYEOF
    )
    [[ "$out" == ok* ]] && ok "is $name = torch-fidelity's: ${out#ok }" || fail "is $name: $out"
}
is_check "--splits 2 (shuffled, seed 2020)" 2,1,2020 --splits 2
is_check "--splits 4 --seed 7" 4,1,7 --splits 4 --seed 7
is_check "--splits 3 --no-shuffle" 3,0,0 --splits 3 --no-shuffle
"$FID" is "$T/A/img00.png" $W --splits 2 >/dev/null 2>"$T/err"
[ $? -eq 1 ] && grep -q '1 images cannot make 2 splits' "$T/err" && ok "is: too few images for the splits" ||
    fail "is --splits 2 on one image: $(cat "$T/err")"

# ---- bad arguments and files ---------------------------------------------------------------
expect2() { # DESCRIPTION ARGS...: exit status 2
    local d=$1
    shift
    "$FID" "$@" >/dev/null 2>"$T/err"
    local rc=$?
    [ $rc -eq 2 ] || fail "$d: exit $rc, expected 2 ($(head -1 "$T/err"))"
    return 0
}
n0=$FAILS
expect2 "no arguments"
expect2 "unknown command" frechet "$T/A"
expect2 "stats without --out" stats "$T/A" $W
expect2 "fid with one input" fid "$T/A" $W
expect2 "fid with three inputs" fid "$T/A" "$T/B" "$T/A" $W
expect2 "--batch 0" stats "$T/A" --out "$T/x.npz" --batch 0 $W
expect2 "--threads x" stats "$T/A" --out "$T/x.npz" --threads x --weights "$T/w.pth"
expect2 "unknown option" stats "$T/A" --out "$T/x.npz" --bogus $W
expect2 "--splits for stats" stats "$T/A" --out "$T/x.npz" --splits 3 $W
expect2 "--splits 0" is "$T/A" --splits 0 $W
expect2 "a value for a flag" is "$T/A" --no-shuffle=1 $W
expect2 "--out without a value" stats "$T/A" $W --out
expect2 "no weights" stats "$T/A" --out "$T/x.npz"
[ $FAILS -eq $n0 ] && ok "bad arguments exit 2 (13 cases)"
"$FID" --help | grep -q '^usage: ldmfid stats' && ok "--help" || fail "--help"
"$FID" stats "$T/nowhere" --out "$T/x.npz" $W 2>"$T/err"
[ $? -eq 1 ] && grep -q 'nowhere' "$T/err" && ok "a missing input is named, exit 1" ||
    fail "missing input: $(cat "$T/err")"
"$FID" stats "$T/A" --out "$T/x.npz" --weights "$T/A/img00.png" 2>"$T/err"
[ $? -eq 1 ] && grep -q 'img00.png' "$T/err" && ok "a weights file that is not one is named, exit 1" ||
    fail "bad weights: $(cat "$T/err")"

if [ $FAILS -ne 0 ]; then
    echo "ldmfid: $FAILS failure(s)"
    exit 1
fi
echo "ldmfid: all passed"
