#!/usr/bin/env bash
# A shorter gpu_checks.sh for one bounded device call: build, the gpu-labelled
# tests, the model benchmark (both models, 4K/32K/128K as the budget allows,
# batches 1/16/64/256), and decode with CUDA graphs off beside it (b1/b16 at
# 4K) to tell the graphs' share. Every stage is time-bounded and writes its
# log to $OUT as it goes, so a cut-off call still returns what finished.
#   bench/gpu/gpu_quick.sh [BUILD_DIR]     (env: BUILD_S, TEST_S, BENCH_S, BUDGET)
set -u
cd "$(dirname "$0")/../.."
B=${1:-/tmp/rl-gpu-build}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
  timeout "${BUILD_S:-110}" cmake --build "$B" -j"$(nproc)" --target ringlm bench_gpu test_gpu_model test_cuda_attn \
    >>"$OUT/build.log" 2>&1
echo "build rc=$? after $(($(date +%s) - t0)) s"
grep -E "error|warning" "$OUT/build.log" | head -20
(cd "$B" && timeout "${TEST_S:-90}" ctest -L gpu --output-on-failure -V) >"$OUT/test.log" 2>&1
echo "tests rc=$? after $(($(date +%s) - t0)) s"
grep -E "routed differently|random steps|bitwise|near-tie|ok:|FAIL|failed|Passed|Failed|tests passed" \
  "$OUT/test.log" | tail -40
RL_CUDA_GRAPHS_DEBUG=1 timeout "${BENCH_S:-100}" "$B/bench_gpu" --budget "${BUDGET:-40}" \
  --batches 1,16,64,256 >"$OUT/bench.md" 2>"$OUT/bench.err"
echo "bench rc=$? after $(($(date +%s) - t0)) s"
RL_CUDA_GRAPHS=0 timeout 20 "$B/bench_gpu" --model ring-mini-linear-2.0 --contexts 4096 \
  --batches 1,16 --budget 20 >"$OUT/bench_nographs.md" 2>&1
echo "bench without graphs rc=$? after $(($(date +%s) - t0)) s"
sort "$OUT/bench.err" | uniq -c | head -8
grep -E "^\| (pp|tg)|^####|copy|cuBLAS" "$OUT/bench.md" | head -60
grep -E "^\| tg" "$OUT/bench_nographs.md"
