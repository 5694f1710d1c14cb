#!/bin/bash
# build.sh — builds the CUDA attention test (tests/cuda/cuda_attn.c) and the
# timing program (bench/attn_gpu/attn_time.c) into build/gpu-attn/, linked
# with build/rel/libldm.a (built by `make` with nvcc, so that it holds the
# CUDA backend). Run from the repository root; then, on a GPU machine:
#   build/gpu-attn/cuda-attn          the test (ok/FAIL lines, exit 1 on a failure)
#   bash bench/attn_gpu/run.sh        the timing table against PyTorch SDPA
# jansson is linked statically and every library with --as-needed, so the
# binaries need only OpenBLAS, the CUDA libraries and libc where they run.
# EXTRA_OBJS: more objects to link (e.g. kernels built apart from the library).
set -euo pipefail
OUTDIR=${OUTDIR:-build/gpu-attn}
CC=${CC:-cc}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
WARN="-Wall -Wextra -Werror -Wno-format-zero-length -Wshadow -Wstrict-prototypes \
-Wmissing-prototypes -Wno-missing-field-initializers"
CFLAGS="-std=c17 -D_GNU_SOURCE -O2 -g $WARN -I. -Icommon -isystem $CUDA_HOME/include"
PKGS="libzmq jansson libprotobuf-c zlib libarchive libturbojpeg spng libwebp openblas lmdb"
LIBS="-Wl,--as-needed -Wl,-Bstatic -ljansson -Wl,-Bdynamic $(pkg-config --libs $PKGS) \
-L$CUDA_HOME/lib64 -Wl,-rpath,$CUDA_HOME/lib64 -lcudart -lcublasLt -lcudnn -lstdc++ -lm -lpthread"
mkdir -p "$OUTDIR"
for prog in tests/cuda/cuda_attn.c:cuda-attn bench/attn_gpu/attn_time.c:attn-time; do
    src=${prog%%:*} exe=${prog##*:}
    $CC $CFLAGS -c "$src" -o "$OUTDIR/$exe.o"
    # shellcheck disable=SC2086
    $CC -o "$OUTDIR/$exe" "$OUTDIR/$exe.o" ${EXTRA_OBJS:-} build/rel/libldm.a $LIBS
    echo "built $OUTDIR/$exe"
done
