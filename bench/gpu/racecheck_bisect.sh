#!/usr/bin/env bash
# Checks the explanation of compute-sanitizer racecheck's report on gqa_fa
# (BENCHMARKS.md, "GPU attention kernels"): hazards between cp.async writes
# into the V staging block F1 and the mbarrier words that lay right after it
# until session 5. Builds gqa_fa with its barriers first (as in the tree) and
# with them right after F1 (sed on a scratch copy), racechecks test_cuda_attn's
# two reporting cases on each, then the probe (racecheck_probe.cu) modes 7-8,
# the same layouts in isolation (session 5: the probe stays clean in both). Run on a GPU machine from the repository
# root (~7 min on an H200):
#   OUT=dir bash bench/gpu/racecheck_bisect.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
for v in front afterF1; do
    W=/tmp/rcb-$v
    rm -rf "$W" && mkdir -p "$W" && cp -r src bench tests "$W/"
    F=$W/src/ops/cuda/gqa_cuda.cu
    # the barriers right after F1, in 64 more bytes at the end (the layout before session 5)
    [ $v = afterF1 ] && sed -i 's/const uint32_t mb = smem_u32(sm);/const uint32_t mb = smem_u32(F1 + BLK);/;
        s/return FA_BAR + (size_t)FROWS/return FA_BAR + 64 + (size_t)FROWS/' "$F"
    echo "$v: $(grep 'const uint32_t mb = ' "$F" | xargs)"
    (cd "$W" && bash bench/gpu/build_attn.sh "$W/b") >"$OUT/rcb_$v.build.log" 2>&1 ||
        { echo "$v: build failed (log $OUT/rcb_$v.build.log)"; continue; }
    for c in long-gq8-kv4 gq2-kv4-d128; do
        timeout 60 "$W/b/test_cuda_attn" --case $c 2>&1 | tail -1
        timeout 200 compute-sanitizer --tool racecheck "$W/b/test_cuda_attn" --case $c \
            >"$OUT/rcb_${v}_$c.log" 2>&1
        echo "$v $c: rc=$? $(grep 'RACECHECK SUMMARY' "$OUT/rcb_${v}_$c.log")"
    done
done
nvcc -O3 -std=c++17 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Isrc \
    bench/gpu/racecheck_probe.cu -o /tmp/rc_probe >"$OUT/rcb_probe.build.log" 2>&1 &&
    for m in 4 7 8; do
        timeout 60 compute-sanitizer --tool racecheck /tmp/rc_probe $m >"$OUT/rcb_probe$m.log" 2>&1
        echo "probe mode $m: rc=$? $(grep 'RACECHECK SUMMARY' "$OUT/rcb_probe$m.log")"
    done
