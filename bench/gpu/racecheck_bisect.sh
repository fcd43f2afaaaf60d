#!/usr/bin/env bash
# Bisects compute-sanitizer racecheck's report on gqa_fa (BENCHMARKS.md, "GPU
# attention kernels": hazards on its mbarrier words, not explained in session
# 4) by building variants of the kernel in a scratch copy of the tree and
# racechecking test_cuda_attn's long-gq8-kv4 case on each. Run on a GPU
# machine from the repository root (~1 min per variant on an H200):
#   OUT=dir bash bench/gpu/racecheck_bisect.sh
# Variants (sed on the scratch copy only):
#   asis   the kernel unchanged (control: 16 hazards in session 4)
#   sync   the page loop's two mbarrier waits replaced by __syncthreads (the
#          same ordering with block barriers; the arrives stay, unused)
#   drain  cp.async.wait_all before every arrive (session 4: still 16)
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
for v in asis sync drain; do
    W=/tmp/rcb-$v
    rm -rf "$W" && mkdir -p "$W" && cp -r src bench tests "$W/"
    F=$W/src/ops/cuda/gqa_cuda.cu
    case $v in
    sync) sed -i 's/mbar_wait(mb + 8 \* b, par);/__syncthreads();/; s/mbar_wait(mb + 16 + 8 \* b, par);/__syncthreads();/' "$F" ;;
    drain) sed -i 's/mbar_arrive(mb/cp_async_wait_all(), mbar_arrive(mb/' "$F" ;;
    esac
    (cd "$W" && bash bench/gpu/build_attn.sh "$W/b") >"$OUT/rcb_$v.build.log" 2>&1 ||
        { echo "$v: build failed (log $OUT/rcb_$v.build.log)"; continue; }
    timeout 60 "$W/b/test_cuda_attn" --case long-gq8-kv4 2>&1 | tail -1
    timeout 150 compute-sanitizer --tool racecheck "$W/b/test_cuda_attn" --case long-gq8-kv4 \
        >"$OUT/rcb_$v.log" 2>&1
    echo "$v: rc=$? $(grep 'RACECHECK SUMMARY' "$OUT/rcb_$v.log")"
done
