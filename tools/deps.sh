#!/bin/sh
# deps.sh — install the Debian packages ldmpipe builds and tests with.
# Idempotent: prints nothing when every package is present.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev llvm
libzmq3-dev libsodium-dev libjansson-dev libprotobuf-c-dev protobuf-c-compiler
zlib1g-dev liblmdb-dev lmdb-utils check libsubunit-dev systemd python3 python3-numpy
libarchive-dev libzstd-dev libturbojpeg0-dev libspng-dev libwebp-dev libopenblas-dev
python3-torch python3-pil python3-torchvision bc"

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/tmp/ldmpipe-deps.log 2>&1 ||
    { cat /tmp/ldmpipe-deps.log >&2; exit 1; }
echo "deps: done"
