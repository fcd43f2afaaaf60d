#!/usr/bin/env bash
# Turns a `ringlm train` run directory into the shipped default model:
# the checkpoint (bf16 weights exactly as trained), its tokenizer, a chat
# template in the Ring format, generation stop tokens, the training log and
# the loss curve.
#   models/tiny/finish.sh RUN_DIR OUT_DIR
set -euo pipefail
RUN=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
cp "$RUN/config.json" "$RUN/model.safetensors" "$RUN/tokenizer.json" "$OUT/"
cp "$RUN/train_log.tsv" "$OUT/train_log.tsv"
# ids of the special tokens come from the tokenizer itself
ids=$(/usr/bin/python3 - "$OUT/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
ids = {a["content"]: a["id"] for a in t["added_tokens"]}
print(ids["<|startoftext|>"], ids["<|endoftext|>"], ids["<|role_end|>"])
PY
)
read -r BOS EOS ROLE_END <<<"$ids"
cat > "$OUT/tokenizer_config.json" <<JSON
{
  "tokenizer_class": "PreTrainedTokenizerFast",
  "bos_token": "<|startoftext|>",
  "eos_token": "<|endoftext|>",
  "pad_token": "<|endoftext|>",
  "add_bos_token": false,
  "add_eos_token": false,
  "chat_template": "{%- set roles = {'system': 'SYSTEM', 'user': 'HUMAN', 'assistant': 'ASSISTANT', 'tool': 'OBSERVATION'} -%}{%- for m in messages -%}<role>{{ roles[m.role] }}</role>{%- if m.role == 'assistant' and m.reasoning_content is defined and m.reasoning_content -%}<think>\\n{{ m.reasoning_content }}\\n</think>\\n{%- endif -%}{{ m.content }}<|role_end|>{%- endfor -%}{%- if add_generation_prompt -%}<role>ASSISTANT</role>{%- endif -%}"
}
JSON
cat > "$OUT/generation_config.json" <<JSON
{"bos_token_id": $BOS, "eos_token_id": [$EOS, $ROLE_END], "pad_token_id": $EOS}
JSON
/usr/bin/python3 "$HERE/plot_loss.py" "$OUT/train_log.tsv" "$OUT/loss.png"
