#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan in build-fuzz/, then runs each for SECONDS (default 60) from the seed
# corpus in tests/fuzz/corpus/<name>/ (the harness name without "fuzz_").
# New corpus entries go to build-fuzz/corpus/<name>/, crash inputs to
# build-fuzz/artifacts/. Exits non-zero if any harness crashes, leaks, times
# out or fails to build.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
set -u
SECS=${1:-60}
shift $(( $# > 0 ? 1 : 0 ))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build-fuzz
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if [ $# -gt 0 ]; then
  HARNESSES=("$@")
else
  HARNESSES=()
  for f in "$ROOT"/tests/fuzz/fuzz_*.c; do HARNESSES+=("$(basename "$f" .c)"); done
fi

mkdir -p "$B"
CC=clang cmake -S "$ROOT" -B "$B" -DRL_FUZZ=ON -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=Release >"$B/configure.log" 2>&1 || {
  cat "$B/configure.log"; echo "fuzz.sh: configure failed" >&2; exit 2; }
cmake --build "$B" -j"$JOBS" --target "${HARNESSES[@]}" || {
  echo "fuzz.sh: build failed" >&2; exit 2; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
for h in "${HARNESSES[@]}"; do
  name=${h#fuzz_}
  seeds=$ROOT/tests/fuzz/corpus/$name
  work=$B/corpus/$name
  art=$B/artifacts/$name
  mkdir -p "$work" "$art"
  args=(-max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="$art/")
  [ -f "$ROOT/tests/fuzz/$name.dict" ] && args+=(-dict="$ROOT/tests/fuzz/$name.dict")
  dirs=("$work")
  [ -d "$seeds" ] && dirs+=("$seeds")
  log=$B/$h.log
  echo "== $h: ${SECS}s, seeds ${seeds#$ROOT/} (log ${log#$ROOT/})"
  "$B/tests/$h" "${args[@]}" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  grep -E '(DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | tail -3
  if [ $rc -ne 0 ]; then
    echo "fuzz.sh: $h FAILED (exit $rc); last lines of $log:" >&2
    tail -40 "$log" >&2
    ls -1 "$art" >&2
    failed+=("$h")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failures: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: all harnesses ran ${SECS}s without a crash"
