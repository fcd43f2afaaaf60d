#!/usr/bin/env bash
# Training throughput of `ringlm train` on models/tiny's shapes (the recipe's
# windows of 256 tokens, 8192 tokens per step), with the machine's fp32-FMA
# peak and the forward's prefill GEMM rate probed by `ringlm bench` in the
# same run, and the load average before and after (the machine is shared).
#   bench/train_speed.sh DATA.bin [REPS] [STEPS] [extra train flags...]
# DATA.bin: `ringlm prepare-data` output with models/tiny's tokenizer, e.g.
#   scripts/fetch-corpus.sh /tmp/c.txt && ringlm prepare-data \
#     --tokenizer models/tiny/tokenizer.json --input /tmp/c.txt --doc-sep % -o DATA.bin
# Prints every step's tokens/s, then the median over all steps of all reps
# (the first step of each rep is left out: page faults of the fresh mapping).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
R=${RINGLM:-$ROOT/build/ringlm}
DATA=$1
REPS=${2:-3}
STEPS=${3:-4}
shift $(( $# < 3 ? $# : 3 ))
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
echo "load before: $(uptime)"
"$R" bench -m "$ROOT/models/tiny" -p 512 -n 0 -r 3 | tail -1
rates=()
for r in $(seq "$REPS"); do
    rm -rf "$W/run"
    out=$("$R" train --model "$ROOT/models/tiny" --data "$DATA" -o "$W/run" --steps "$STEPS" \
          --seq-len 256 --batch-tokens 8192 --lr 3e-4 --warmup 0 --eval-every 0 \
          --eval-windows 1 --seed "$r" "$@")
    echo "$out" | grep -E '^train:' | head -2 | sed 's/^/  /'
    mapfile -t rs < <(echo "$out" | sed -n 's/^step \([0-9]*\)\/.*| \([0-9.]*\) tok\/s.*/\1 \2/p')
    for x in "${rs[@]}"; do
        echo "  rep $r step ${x% *}: ${x#* } tok/s"
        [ "${x% *}" = 1 ] || rates+=("${x#* }")
    done
done
"$R" bench -m "$ROOT/models/tiny" -p 512 -n 0 -r 3 | tail -1
echo "load after: $(uptime)"
printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {
    m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
    printf "median %.0f tok/s over %d steps (min %.0f, max %.0f); model FLOPs 29 MFLOP/token -> %.1f GFLOP/s\n",
           m, NR, a[1], a[NR], m * 29e6 / 1e9 }'
