#!/usr/bin/env bash
# Where a decode step's device time goes, kernel by kernel: ncu times every
# kernel of bench_gpu's timed decode steps (bench_gpu --profile-decode; ncu
# starts with its capture off), with warm caches and unlocked clocks so that
# the times are close to a graph replay's, then ncu_step_breakdown.py sums the
# last complete step. Run on a GPU machine from the repository root after a
# CUDA build:
#   bench/gpu/decode_kernels.sh [BUILD_DIR] [bench_gpu options]
#   e.g. bench/gpu/decode_kernels.sh build --contexts 4096 --batches 1 --deterministic
# Output: the table on stdout; ncu's CSV in $OUT (default ./gpu-out).
set -eu
cd "$(dirname "$0")/../.."
B=${1:-build}
shift || true
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
[ -x "$B/bench_gpu" ] || { echo "decode_kernels.sh: no $B/bench_gpu (build with CUDA first)" >&2; exit 2; }
command -v ncu >/dev/null || { echo "decode_kernels.sh: ncu (Nsight Compute) not found" >&2; exit 2; }
[ $# -gt 0 ] || set -- --contexts 4096 --batches 1
ncu --profile-from-start off --cache-control none --clock-control none \
    --metrics gpu__time_duration.sum --csv --page raw \
    "$B/bench_gpu" --model ring-mini-linear-2.0 --budget 300 --profile-decode "$@" \
    >"$OUT/decode_kernels.csv" 2>"$OUT/decode_kernels.err"
python3 bench/gpu/ncu_step_breakdown.py "$OUT/decode_kernels.csv"
