#!/usr/bin/env bash
# One call on a GPU machine: build (CUDA on), the gpu-labelled tests, the GPU
# model benchmark, a phase profile of decode, and compute-sanitizer memcheck /
# racecheck of the device forward on small shapes. Logs go to $OUT (default
# ./gpu-out); the tables are printed last. Each stage is time-bounded.
#   bench/gpu/gpu_checks.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")/../.."
B=${1:-/tmp/rl-gpu-build}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$B" -j"$(nproc)" 2>&1 |
  grep -E "error|warning" && echo "build: see above"
(cd "$B" && ctest -L gpu --output-on-failure -V) >"$OUT/test.log" 2>&1
grep -E "routed differently|random steps|bitwise|near-tie|ok:|FAIL|failed|Passed|Failed" "$OUT/test.log" | tail -45
timeout 150 "$B/bench_gpu" --budget 55 >"$OUT/bench.md" 2>&1
RL_CUDA_PROFILE=1 timeout 40 "$B/bench_gpu" --model ring-mini-linear-2.0 --contexts 4096 \
  --batches 1,256 --budget 15 >"$OUT/profile.md" 2>&1
export RL_TEST_TMP=/tmp/rl-san RL_GPU_TEST_TOKENS=70
RL_GPU_TEST_SHAPES=4 timeout 60 compute-sanitizer --tool memcheck "$B/tests/test_gpu_model" \
  >"$OUT/memcheck.log" 2>&1
echo "memcheck rc=$? ($(grep -h 'ERROR SUMMARY' "$OUT/memcheck.log"))"
RL_GPU_TEST_SHAPES=1 timeout 60 compute-sanitizer --tool racecheck "$B/tests/test_gpu_model" \
  >"$OUT/racecheck.log" 2>&1
echo "racecheck rc=$? ($(grep -h 'RACECHECK SUMMARY\|ERROR SUMMARY' "$OUT/racecheck.log"))"
cat "$OUT/bench.md"
tail -6 "$OUT/profile.md"
