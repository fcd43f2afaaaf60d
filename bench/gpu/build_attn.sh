#!/bin/bash
# Builds, with nvcc and gcc alone (no CMake, so that unrelated work in progress
# cannot break it), the attention kernels' test program and a shared library
# of the kernels for bench_attn.py. Usage: bench/gpu/build_attn.sh OUTDIR
set -euo pipefail
O=${1:-/tmp/cuattn}
mkdir -p "$O"
NVCC=${NVCC:-nvcc}
NV="$NVCC -O3 -std=c++17 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wextra,-fPIC -Werror all-warnings -Isrc"
pids=()
for f in lightning_cuda gqa_cuda gqa_dec_cuda attn_workspace; do
    $NV -Xptxas -v -c src/ops/cuda/$f.cu -o "$O/$f.o" 2>"$O/$f.ptxas" & pids+=($!)
done
CC="gcc -std=c17 -O2 -Wall -Wextra -Werror -Isrc"
CUINC=$(dirname "$(command -v "$NVCC")")/../include
$CC -c src/ops/ref/ops_ref.c -o "$O/ops_ref.o"
$CC -c src/base/dtype.c -o "$O/dtype.o"
$CC -I"$CUINC" -c tests/gpu/test_cuda_attn.c -o "$O/test_cuda_attn.o"
for p in "${pids[@]}"; do wait "$p"; done
K="$O/lightning_cuda.o $O/gqa_cuda.o $O/gqa_dec_cuda.o $O/attn_workspace.o"
$NVCC -o "$O/test_cuda_attn" "$O/test_cuda_attn.o" $K "$O/ops_ref.o" "$O/dtype.o" -lm
$NVCC -shared -o "$O/libcuattn.so" $K
grep -h "registers\|spill" "$O"/*.ptxas | sort | uniq -c | sort -rn | head -20 || true
