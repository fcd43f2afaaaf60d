#!/usr/bin/env bash
# The recipe of the default model in models/tiny: a small Ring-linear model
# (6 layers: 4 Lightning + 2 GQA softmax; layer 0 dense, the others MoE with
# 8 experts, top-2, and a shared expert; 8.8 M parameters) trained by ringlm
# itself on public-domain English text from Debian packages (the King James
# Bible and the fortune files, fetched at training time, never committed).
#   models/tiny/recipe.sh [WORKDIR]        (default /tmp/ringlm-tiny)
# Writes the checkpoint to models/tiny/ (config.json, model.safetensors in
# bf16, tokenizer files, chat template) and the training log next to it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${1:-/tmp/ringlm-tiny}
R=${RINGLM:-$ROOT/build/ringlm}
STEPS=${STEPS:-200}
mkdir -p "$W"
"$ROOT/scripts/fetch-corpus.sh" "$W/corpus.txt"
"$R" tokenizer-train --input "$W/corpus.txt" --vocab-size 4096 \
    --special "<|startoftext|>" "<|endoftext|>" "<|role_end|>" "<role>" "</role>" \
              "<think>" "</think>" "<tool_call>" "</tool_call>" \
    -o "$W/tokenizer.json"
"$R" prepare-data --tokenizer "$W/tokenizer.json" --input "$W/corpus.txt" --doc-sep % \
    -o "$W/data.bin"
"$R" train --data "$W/data.bin" --config "$ROOT/models/tiny/model_config.json" \
    --tokenizer "$W/tokenizer.json" -o "$W/run" --init-dtype bf16 \
    --steps "$STEPS" --seq-len 256 --batch-tokens 8192 --lr 3e-3 --warmup 10 \
    --eval-every 25 --eval-windows 32 --save-every 50 --seed 1
"$ROOT/models/tiny/finish.sh" "$W/run" "$ROOT/models/tiny"
