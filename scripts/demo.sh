#!/usr/bin/env bash
# The main job on the embedded default model: generate text from a prompt.
# The default model is models/tiny: a small Ring-linear model (Lightning +
# GQA layers, MoE) trained by ringlm itself on public-domain English text
# (models/tiny/recipe.sh). Without it (a checkout that lacks the weights), a
# random checkpoint of the same family stands in, whose text is noise.
set -euo pipefail
cd "$(dirname "$0")/.."
RINGLM=${RINGLM:-build/ringlm}
MODEL=${MODEL:-models/tiny}
if [ ! -f "$MODEL/model.safetensors" ]; then
  MODEL=models/random-tiny
  [ -f "$MODEL/tokenizer.json" ] || "$RINGLM" mkmodel --preset tiny --byte-tokenizer --seed 1 -o "$MODEL"
  echo "(models/tiny is missing: using random weights, the text will be noise)"
fi
"$RINGLM" info -m "$MODEL"
echo
"$RINGLM" generate -m "$MODEL" -p "And it came to pass" -n 64 --seed 42 --ignore-eos
echo
echo "(try '$RINGLM chat -m $MODEL' for the interactive chat)"
