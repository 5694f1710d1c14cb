#!/usr/bin/env bash
# mkshards.sh — build/bin/mkshards writes the layouts loaders read, checked with tar, zcat and base64.
#
# synth (tar): shard names, members KEY.jpg + KEY.txt per key in order, JPEG
# magic bytes, captions of the documented form, the same bytes for the same
# seed whatever the shard layout; synth --paired --zstd: KEY.input.jpg
# members (checked with tar --zstd when the zstd program exists); synth
# --laion: part-NNNNN.gz lines "caption TAB TAB base64 JPEG" and the file list
# chain train.filelist.list -> NAME.filelist -> parts; pack: a folder of
# images and captions back into shards (gzip), dotted names made safe; bad
# arguments exit 2.
#
# Env: BIN (built binaries, default build/bin).
set -u

BIN=${BIN:-build/bin}
MK=$BIN/mkshards
FAILS=0
ok() { echo "ok   mkshards: $*"; }
fail() {
    echo "FAIL mkshards: $*"
    FAILS=$((FAILS + 1))
}

if [ ! -x "$MK" ]; then
    echo "FAIL mkshards: $MK not built"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ldmpipe-mkshards.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

CAPTION='^an? [a-z]+ [a-z]+ on an? [a-z]+( and [a-z]+)? background$'

# the first two bytes of a member, as hex ("ffd8" for JPEG)
magic() { od -An -tx1 -N2 | tr -d ' \n'; }

# ---- synth: tar shards ----------------------------------------------------------------
"$MK" synth --out "$T/tar" --shards 3 --per-shard 7 --seed 3 >"$T/out.txt" 2>&1 ||
    fail "synth tar: $(cat "$T/out.txt")"
grep -q '21 samples' "$T/out.txt" && ok "synth reports 21 samples" || fail "synth output: $(cat "$T/out.txt")"
names=$(cd "$T/tar" && ls)
[ "$names" = "$(printf 'synth-000000.tar\nsynth-000001.tar\nsynth-000002.tar')" ] &&
    ok "synth: three shards named synth-00000N.tar" || fail "shard names: $names"
want=""
for i in 7 8 9 10 11 12 13; do want+=$(printf '%09d.jpg\n%09d.txt\n' "$i" "$i")$'\n'; done
got=$(tar tf "$T/tar/synth-000001.tar")$'\n'
[ "$got" = "$want" ] && ok "synth: shard 1 holds keys 7..13, jpg then txt" || fail "members: $got"
bad=0
for s in "$T"/tar/*.tar; do
    for m in $(tar tf "$s"); do
        case $m in
        *.jpg) [ "$(tar xOf "$s" "$m" | magic)" = ffd8 ] || bad=$((bad + 1)) ;;
        *.txt) tar xOf "$s" "$m" | grep -Eq "$CAPTION" || bad=$((bad + 1)) ;;
        *) bad=$((bad + 1)) ;;
        esac
    done
done
[ $bad -eq 0 ] && ok "synth: every jpg is a JPEG, every caption reads \"a red circle on a blue background\"" ||
    fail "synth: $bad bad members"

# same seed, other layout: the same sample bytes
"$MK" synth --out "$T/one" --shards 1 --per-shard 21 --seed 3 >/dev/null || fail "synth one shard"
if cmp -s <(tar xOf "$T/tar/synth-000002.tar" 000000016.jpg) <(tar xOf "$T/one/synth-000000.tar" 000000016.jpg) &&
    cmp -s <(tar xOf "$T/tar/synth-000002.tar" 000000016.txt) <(tar xOf "$T/one/synth-000000.tar" 000000016.txt); then
    ok "synth: a sample depends on (seed, index) only"
else
    fail "synth: sample 16 differs between layouts"
fi
"$MK" synth --out "$T/again" --shards 3 --per-shard 7 --seed 3 >/dev/null &&
    cmp -s "$T/tar/synth-000001.tar" "$T/again/synth-000001.tar" && ok "synth: reproducible shards" ||
    fail "synth: two runs differ"
"$MK" synth --out "$T/seed4" --shards 1 --per-shard 7 --seed 4 >/dev/null &&
    ! cmp -s "$T/one/synth-000000.tar" "$T/seed4/synth-000000.tar" && ok "synth: another seed, other data" ||
    fail "synth: seed ignored"

# ---- synth --paired --zstd -------------------------------------------------------------
"$MK" synth --out "$T/pairs" --prefix pairs --shards 2 --per-shard 4 --paired --zstd >/dev/null 2>"$T/err" ||
    fail "synth paired: $(cat "$T/err")"
[ -f "$T/pairs/pairs-000000.tar.zst" ] && [ -f "$T/pairs/pairs-000001.tar.zst" ] &&
    [ "$(od -An -tx1 -N4 "$T/pairs/pairs-000000.tar.zst" | tr -d ' \n')" = 28b52ffd ] &&
    ok "synth --paired --zstd: pairs-00000N.tar.zst with the zstd magic" || fail "paired shard files"
if command -v zstd >/dev/null 2>&1; then
    got=$(zstd -dc "$T/pairs/pairs-000001.tar.zst" | tar tf -)
    want=$(for i in 4 5 6 7; do printf '%09d.jpg\n%09d.txt\n%09d.input.jpg\n' $i $i $i; done)
    [ "$got" = "$want" ] && ok "synth --paired: KEY.jpg, KEY.txt, KEY.input.jpg" || fail "paired members: $got"
    [ "$(zstd -dc "$T/pairs/pairs-000001.tar.zst" | tar xOf - 000000005.input.jpg | magic)" = ffd8 ] &&
        ok "synth --paired: the input is a JPEG" || fail "paired input not a JPEG"
else
    echo "skip mkshards: no zstd program to list the .tar.zst (its magic was checked)"
fi
"$MK" synth --out "$T/pairs-gz" --shards 1 --per-shard 3 --paired --gzip >/dev/null &&
    [ "$(tar tzf "$T/pairs-gz/synth-000000.tar.gz" | grep -c 'input\.jpg$')" = 3 ] &&
    ok "synth --paired --gzip: tar tzf lists 3 inputs" || fail "paired gzip"

# ---- synth --laion ------------------------------------------------------------------------
"$MK" synth --out "$T/laion" --shards 3 --per-shard 5 --laion >/dev/null 2>"$T/err" || fail "synth laion: $(cat "$T/err")"
[ "$(cat "$T/laion/filelist/train.filelist.list")" = synth.filelist ] &&
    [ "$(cat "$T/laion/filelist/synth.filelist")" = "$(printf '../part-%05d.gz\n' 0 1 2)" ] &&
    ok "synth --laion: train.filelist.list -> synth.filelist -> ../part-0000N.gz" || fail "laion file lists"
missing=0
while read -r part; do [ -f "$T/laion/filelist/$part" ] || missing=$((missing + 1)); done <"$T/laion/filelist/synth.filelist"
[ $missing -eq 0 ] && ok "synth --laion: every listed part exists" || fail "laion: $missing listed parts missing"
lines=$(zcat "$T/laion/part-00001.gz" | wc -l)
[ "$lines" = 5 ] && ok "synth --laion: 5 lines a part" || fail "laion lines: $lines"
# three tab-separated fields, the middle one empty (bash's read would merge the tabs)
fields=$(zcat "$T/laion/part-00002.gz" | awk -F'\t' 'NF != 3 || $2 != "" { bad++ } END { print bad + 0 }')
[ "$fields" = 0 ] && ok "synth --laion: three fields a line, the middle one empty" || fail "laion: $fields lines with bad fields"
bad=0
while read -r cap; do grep -Eq "$CAPTION" <<<"$cap" || bad=$((bad + 1)); done < <(zcat "$T/laion/part-00002.gz" | cut -f1)
while read -r img; do [ "$(base64 -d <<<"$img" | magic)" = ffd8 ] || bad=$((bad + 1)); done < <(zcat "$T/laion/part-00002.gz" | cut -f3)
[ $bad -eq 0 ] && ok "synth --laion: a caption and a base64 JPEG a line" || fail "laion: $bad bad captions or images"
"$MK" synth --out "$T/x" --laion --paired >/dev/null 2>&1
[ $? -eq 2 ] && ok "synth --laion --paired refused (exit 2)" || fail "laion --paired accepted"

# ---- pack ----------------------------------------------------------------------------------
mkdir -p "$T/folder/sub" "$T/folder/.git"
tar xf "$T/tar/synth-000000.tar" -C "$T/folder"
mv "$T/folder/000000003.jpg" "$T/folder/sub/photo.2023.jpg"
mv "$T/folder/000000003.txt" "$T/folder/sub/photo.2023.txt"
cp "$T/folder/000000004.jpg" "$T/folder/000000004.input.jpg"
cp "$T/folder/000000005.jpg" "$T/folder/.git/hidden.jpg"
rm "$T/folder/000000006.txt"
"$MK" pack --out "$T/packed" --prefix part --per-shard 4 --gzip --extra input.jpg "$T/folder" >"$T/out.txt" 2>"$T/err" ||
    fail "pack: $(cat "$T/err")"
grep -q '7 samples' "$T/out.txt" && grep -q '1 samples have no txt' "$T/err" &&
    ok "pack: 7 samples, one without caption reported" || fail "pack output: $(cat "$T/out.txt" "$T/err")"
got=$(tar tzf "$T/packed/part-000000.tar.gz"; tar tzf "$T/packed/part-000001.tar.gz")
want=$(printf '%s\n' 000000000.jpg 000000000.txt 000000001.jpg 000000001.txt 000000002.jpg 000000002.txt \
    000000004.jpg 000000004.txt 000000004.input.jpg 000000005.jpg 000000005.txt 000000006.jpg \
    sub/photo_2023.jpg sub/photo_2023.txt)
[ "$got" = "$want" ] && ok "pack: two shards, sorted keys, input.jpg joined, dotted name made safe" ||
    fail "pack members: $got"
cmp -s <(tar xzOf "$T/packed/part-000001.tar.gz" sub/photo_2023.jpg) <(tar xOf "$T/tar/synth-000000.tar" 000000003.jpg) &&
    ok "pack: member bytes unchanged" || fail "pack: bytes differ"
"$MK" pack --out "$T/p2" --per-shard 4 "$T/folder" >/dev/null 2>&1
[ $? -eq 2 ] && ok "pack without --prefix refused (exit 2)" || fail "pack without --prefix accepted"
"$MK" pack --out "$T/p3" --prefix x --per-shard 4 "$T/none" >/dev/null 2>"$T/err"
[ $? -eq 1 ] && grep -q 'cannot list' "$T/err" && ok "pack of a missing folder fails with a message" ||
    fail "pack missing folder: $(cat "$T/err")"

if [ $FAILS -ne 0 ]; then
    echo "mkshards: $FAILS failure(s)"
    exit 1
fi
echo "mkshards: all passed"
