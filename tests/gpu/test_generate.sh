#!/usr/bin/env bash
# Greedy `ringlm generate --device cuda` on the default model (models/tiny)
# against the CPU: the same token ids, for both GPU modes. The CPU is the
# reference (itself tested against the float64 PyTorch model). Where the two
# first differ, the CPU's top-2 logit margin at that step is printed: a tie
# within bf16 rounding would explain a divergence (none is tolerated here).
# Exits 77 (skipped) without a GPU.
set -u
RINGLM=${RINGLM:-build/ringlm}
TMP=${RL_TEST_TMP:-/tmp/rl_test}/generate
mkdir -p "$TMP"
N=48
PROMPT="In the beginning God created the heaven and the earth. And the earth was"
if ! "$RINGLM" generate -m models/tiny --device cuda --ids 1 -n 1 --temp 0 >/dev/null 2>"$TMP/probe.err"; then
  if grep -q "no CUDA device\|no usable CUDA device" "$TMP/probe.err"; then
    echo "skipped: $(cat "$TMP/probe.err")"; exit 77
  fi
  cat "$TMP/probe.err"; exit 1
fi
fail=0
"$RINGLM" generate -m models/tiny -p "$PROMPT" -n $N --temp 0 --ignore-eos --ids-out "$TMP/cpu.json" \
  >"$TMP/cpu.txt" 2>"$TMP/cpu.err" || { cat "$TMP/cpu.err"; exit 1; }
for mode in "" "--deterministic"; do
  "$RINGLM" generate -m models/tiny --device cuda $mode -p "$PROMPT" -n $N --temp 0 --ignore-eos \
    --ids-out "$TMP/gpu.json" >"$TMP/gpu.txt" 2>"$TMP/gpu.err" || { cat "$TMP/gpu.err"; exit 1; }
  if cmp -s "$TMP/cpu.json" "$TMP/gpu.json"; then
    echo "ok: cuda ${mode:-default}: the same $N greedy tokens as the CPU"
    grep -h "decode:" "$TMP/gpu.err" | sed 's/^/  gpu /'
  else
    echo "FAIL: cuda ${mode:-default} differs from the CPU"
    echo "  cpu: $(cat "$TMP/cpu.json")"; echo "  gpu: $(cat "$TMP/gpu.json")"
    fail=1
  fi
done
echo "cpu text: $(head -c 300 "$TMP/cpu.txt")"
exit $fail
