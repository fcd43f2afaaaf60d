"""generate -p and chat: the text paths agree with the id paths and with the
template command, and their error cases fail cleanly.

Uses a small random checkpoint with SmolLM2's real tokenizer.json and chat
template (../shared/data), so the text is random but every path is real."""
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from appslib import check, run, summary  # noqa: E402

TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_test_text")
HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data"))


def main():
    os.makedirs(TMP, exist_ok=True)
    d = os.path.join(TMP, "smol")
    shutil.rmtree(d, ignore_errors=True)
    cfg = {"vocab_size": 49152, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
           "num_key_value_heads": 2, "intermediate_size": 128, "layer_group_size": 2, "head_dim": 16,
           "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
           "num_shared_experts": 1, "n_group": 4, "topk_group": 2, "first_k_dense_replace": 1,
           "partial_rotary_factor": 0.5, "group_norm_size": 2, "eos_token_id": 2}
    cp = os.path.join(TMP, "smol_config.json")
    with open(cp, "w") as f:
        json.dump(cfg, f)
    r = run(["mkmodel", "--config", cp, "-o", d, "--seed", "5"])
    assert r.returncode == 0, r.stderr
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(SHARED, "tokenizers", "smollm2", fn), d)

    # generate -p == generate --ids of the tokenized prompt
    text = "The quick brown fox, 1234 times: naïve café!"
    r = run(["tokenize", "--tokenizer", os.path.join(d, "tokenizer.json"), text])
    ids = json.loads(r.stdout)
    a, b = os.path.join(TMP, "a.json"), os.path.join(TMP, "b.json")
    lp = os.path.join(TMP, "a.lp")
    ra = run(["generate", "-m", d, "-p", text, "-n", "12", "--temp", "0", "--ids-out", a,
              "--logprobs-out", lp, "--ignore-eos"])
    rb = run(["generate", "-m", d, "--ids", ",".join(map(str, ids)), "-n", "12", "--temp", "0",
              "--ids-out", b, "--ignore-eos"])
    check("generate -p runs", ra.returncode == 0, ra.stderr)
    ga, gb = json.load(open(a)), json.load(open(b))
    check("generate -p == generate --ids of its tokens", ga == gb and len(ga) == 12, "%s vs %s" % (ga, gb))
    # the streamed text is the decode of the generated ids (special tokens hidden)
    r = run(["detokenize", "--tokenizer", os.path.join(d, "tokenizer.json"), "--ids", ",".join(map(str, ga)),
             "--skip-special"])
    check("streamed text == detokenize of the ids", ra.stdout.rstrip("\n") == r.stdout.rstrip("\n"),
          "%r vs %r" % (ra.stdout, r.stdout))
    # log-probs are log-softmax of the logits the model gives for that sequence
    lo = os.path.join(TMP, "seq.f32")
    seq = ids + ga
    r = run(["logits", "-m", d, "--ids", ",".join(map(str, seq)), "--out", lo])
    L = np.fromfile(lo, dtype=np.float32).reshape(len(seq), -1).astype(np.float64)
    ref = []
    for i, t in enumerate(ga):
        row = L[len(ids) - 1 + i]
        m = row.max()
        ref.append(row[t] - m - np.log(np.exp(row - m).sum()))
    got = np.fromfile(lp, dtype=np.float32)
    check("logprobs-out == log-softmax of the logits", len(got) == 12 and np.allclose(got, ref, atol=1e-5),
          "%s vs %s" % (got[:3], ref[:3]))
    # greedy picks the argmax among ids the tokenizer defines
    check("greedy = argmax of the logits", all(int(np.argmax(L[len(ids) - 1 + i][:49152])) == t
                                               for i, t in enumerate(ga)))

    # chat: the prompt it feeds is the template command's rendering
    conv = "Hello there\nHow are you?\n/bogus\n/reset\nAgain\n"
    r = run(["chat", "-m", d, "-n", "6", "--temp", "0", "--verbose-prompt", "-sys", "Be brief."], stdin=conv)
    check("chat exits 0 at end of input", r.returncode == 0, r.stderr[-500:])
    prompts = [p.split("[/prompt]")[0].lstrip("\n") for p in r.stderr.split("[prompt]")[1:]]
    check("chat rendered 3 prompts", len(prompts) == 3, str(len(prompts)))
    msgs = os.path.join(TMP, "m.json")
    json.dump([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}], open(msgs, "w"))
    t = run(["template", "--tokenizer-config", os.path.join(d, "tokenizer_config.json"), "--messages", msgs,
             "--add-generation-prompt"])
    check("chat's first prompt == ringlm template", prompts and prompts[0] == t.stdout,
          "%r vs %r" % (prompts[0] if prompts else None, t.stdout))
    check("chat's second prompt extends the first", len(prompts) > 1 and prompts[1].startswith(prompts[0]))
    check("unknown /command is reported", "unknown command /bogus" in r.stdout)
    check("/reset starts over with the system prompt",
          len(prompts) > 2 and prompts[2].startswith("<|im_start|>system\nBe brief.") and "Hello" not in prompts[2])

    # errors: no tokenizer / no template
    bare = os.path.join(TMP, "bare")
    shutil.rmtree(bare, ignore_errors=True)
    shutil.copytree(d, bare)
    os.remove(os.path.join(bare, "tokenizer.json"))
    r = run(["generate", "-m", bare, "-p", "hi"])
    check("generate -p without tokenizer.json fails clearly", r.returncode == 1 and "tokenizer.json" in r.stderr, r.stderr)
    r = run(["generate", "-m", d, "-p", "hi", "--ids", "1"])
    check("-p and --ids together are refused", r.returncode == 1 and "one of them" in r.stderr, r.stderr)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
