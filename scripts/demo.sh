#!/usr/bin/env bash
# The main job on the embedded default model: generate from a prompt.
# Until the trained default model lands (models/tiny/), the default model is a
# small random checkpoint made by `ringlm mkmodel --preset tiny`, so the
# output tokens are random-looking: this shows the pipeline, not a language.
set -euo pipefail
cd "$(dirname "$0")/.."
RINGLM=${RINGLM:-build/ringlm}
MODEL=${MODEL:-models/random-tiny}
if [ ! -f "$MODEL/config.json" ]; then
  "$RINGLM" mkmodel --preset tiny --seed 1 -o "$MODEL"
fi
"$RINGLM" info -m "$MODEL"
echo
"$RINGLM" generate -m "$MODEL" --ids 11,42,7,99,512,3 -n 32 --seed 42
