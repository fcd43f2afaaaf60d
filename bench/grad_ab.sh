#!/usr/bin/env bash
# A/B of the trainer's forward + backward on models/tiny: `ringlm grad` on one
# window of the recipe's length (257 ids, so 256 predicted tokens), two
# binaries alternating round by round so that both see the same load on a
# shared machine; the fp32-FMA peak (`ringlm bench`'s probe) and the load
# average are taken before and after. Prints per-binary median and best
# tokens/s and the model GFLOP/s at 29 MFLOP/token (6 x 4.8 M active
# parameters: forward + backward, attention not counted).
#   bench/grad_ab.sh BIN_A BIN_B [ROUNDS] [extra grad flags...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$1
B=$2
ROUNDS=${3:-15}
shift $(( $# < 3 ? $# : 3 ))
M="$ROOT/models/tiny"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
ids=$(python3 -c "import random; r=random.Random(1); print(','.join(str(r.randrange(4088)) for _ in range(257)))")
echo "load before: $(uptime)"
"$B" bench -m "$M" -p 512 -n 0 -r 3 | tail -1
for r in $(seq "$ROUNDS"); do
    for bin in "$A" "$B"; do
        s=$("$bin" grad -m "$M" --ids "$ids" --out "$W/g.safetensors" "$@" 2>&1 >/dev/null |
            sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p')
        echo "$bin $s" >> "$W/all"
    done
done
"$B" bench -m "$M" -p 512 -n 0 -r 3 | tail -1
echo "load after: $(uptime)"
for bin in "$A" "$B"; do
    grep -F "$bin " "$W/all" | awk '{print $2}' | sort -n | awk -v b="$bin" '{a[NR]=$1} END {
        m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
        printf "%s: median %.0f tok/s (%.1f GFLOP/s), best %.0f (%.1f GFLOP/s), worst %.0f, %d runs\n",
               b, m, m * 29e6 / 1e9, a[NR], a[NR] * 29e6 / 1e9, a[1], NR }'
done
