#!/usr/bin/env bash
# Encode throughput, one thread: ringlm vs Hugging Face tokenizers (Rust crate
# through its Node binding, tests/oracle) on the same ~10 MB text, for each
# tokenizer given (default: the files in ../shared/data/tokenizers).
#   bench/tokenizer_bench.sh [BUILD_DIR] [TOKENIZER.json ...]
# The text: Debian changelogs (English prose, code-ish lines) plus a
# multilingual block (CJK, Cyrillic, Arabic, emoji, digits), cut to 10 MB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}
shift $(( $# > 0 ? 1 : 0 ))
TOKS=("$@")
if [ ${#TOKS[@]} -eq 0 ]; then
  for f in "$ROOT"/../shared/data/tokenizers/*/tokenizer.json; do TOKS+=("$f"); done
fi
W=${TMPDIR:-/tmp}/ringlm-tokbench
mkdir -p "$W"
TEXT=$W/text10m.txt
if [ ! -s "$TEXT" ]; then
  python3 - "$TEXT" <<'PY'
import glob, gzip, sys, random
parts = []
for p in sorted(glob.glob("/usr/share/doc/*/changelog*.gz")):
    try:
        parts.append(gzip.open(p, "rt", encoding="utf-8", errors="replace").read())
    except Exception:
        pass
    if sum(map(len, parts)) > 9_000_000:
        break
rng = random.Random(0)
multi = ["日本語のテキストと漢字。", "中文文本，标点符号！", "Привет, мир! ", "مرحبا بالعالم ", "😀👍🏽🇯🇵 ", "1234567890 ", "   \n\n\t"]
parts.append("".join(rng.choice(multi) for _ in range(60000)))
text = "".join(parts)
data = text.encode("utf-8")[:10_000_000]
data = data.decode("utf-8", errors="ignore").encode("utf-8")
open(sys.argv[1], "wb").write(data)
PY
fi
LIBS=$(pkg-config --libs jansson libpcre2-8 icu-uc)
gcc -std=c17 -O2 -D_GNU_SOURCE -I"$ROOT/src" "$ROOT/bench/tokenizer_bench.c" "$B/libringlm_core.a" $LIBS -fopenmp -lm -lpthread \
  -o "$W/tokenizer_bench"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), text $(stat -c %s "$TEXT") bytes"
for t in "${TOKS[@]}"; do
  echo "== $t"
  "$W/tokenizer_bench" "$t" "$TEXT" 5
  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node "$ROOT/bench/tokenizer_bench.js" "$t" "$TEXT" 5
done
