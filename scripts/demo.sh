#!/usr/bin/env bash
# The main job on the embedded default model: generate text from a prompt.
# Until the trained default model lands (models/tiny/, the training issue),
# the default model is a small random checkpoint made by
# `ringlm mkmodel --preset tiny --byte-tokenizer`: a real Ring-linear layout
# with a byte-level tokenizer and a Ring-format chat template, so every part
# of the pipeline runs, but its random weights produce random bytes, not
# language.
set -euo pipefail
cd "$(dirname "$0")/.."
RINGLM=${RINGLM:-build/ringlm}
MODEL=${MODEL:-models/random-tiny}
if [ ! -f "$MODEL/tokenizer.json" ]; then
  "$RINGLM" mkmodel --preset tiny --byte-tokenizer --seed 1 -o "$MODEL"
fi
"$RINGLM" info -m "$MODEL"
echo
"$RINGLM" generate -m "$MODEL" -p "The hybrid model says:" -n 48 --seed 42 --ignore-eos
echo
echo "(random weights: the text is noise until the trained default model lands; try"
echo " '$RINGLM chat -m $MODEL' for the interactive chat)"
