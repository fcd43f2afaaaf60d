#!/usr/bin/env python3
"""Trains, with `ringlm train`, a tiny model that really emits reasoning and
tool-call tags: it overfits two chat transcripts rendered by the Ring chat
template (../shared/data/chat_templates/ring.json), whose assistant turns are

  1. "\\n<think>\\n...\\n</think>\\n\\n<answer>"           (reasoning + content)
  2. "<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>"  (with tools)

each ended by the template's eos <|role_end|>. The transcripts are what the
template itself renders for a conversation that includes that assistant turn
(reasoning_content / tool_calls), so the model learns the format the server's
parser (src/tokenizer/reasoning.c) expects from the same template.

Windows are aligned to the documents: every document is padded with a
special <|pad|> token to exactly SEQ tokens and --seq-len is SEQ, so window
i is document i from position 0, as the server will feed the prompt.

    make_tagged_model.py OUT_DIR        (RINGLM names the binary)
Prints the conversations (JSON) the model was trained on, for the test."""
import json
import os
import shutil
import subprocess
import sys

RINGLM = os.environ.get("RINGLM", "build/ringlm")
HERE = os.path.dirname(os.path.abspath(__file__))
RING = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data", "chat_templates", "ring.json"))
SPECIALS = ["<|endoftext|>", "<|role_end|>", "<role>", "</role>", "<|pad|>"]
SEQ = 256
REPEATS = 16  # copies of each document: windows per epoch

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CONVS = [
    {"messages": [{"role": "user", "content": "What is two plus two?"}],
     "answer": {"role": "assistant", "reasoning_content": "Two and two make four.",
                "content": "The answer is 4."}},
    {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS,
     "answer": {"role": "assistant", "content": "",
                "tool_calls": [{"id": "call_0", "type": "function",
                                "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}},
]


def run(args, **kw):
    r = subprocess.run([RINGLM] + args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("ringlm %s failed:\n%s%s" % (args[0], r.stdout, r.stderr))
    return r.stdout


def render(tc, body, work, name, gen_prompt):
    p = os.path.join(work, name + ".json")
    json.dump(body, open(p, "w"))
    return run(["template", "--tokenizer-config", tc, "--messages", p] + (["--add-generation-prompt"] if gen_prompt else []))


def main():
    out = sys.argv[1]
    work = out + ".work"
    for d in (out, work):  # `ringlm train -o` refuses a directory holding a run
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(work)
    ring = json.load(open(RING))
    tc = os.path.join(work, "tokenizer_config.json")
    json.dump({"chat_template": ring["chat_template"], "eos_token": "<|role_end|>", "bos_token": "<|startoftext|>",
               "pad_token": "<|endoftext|>", "add_bos_token": False, "add_eos_token": False}, open(tc, "w"))
    docs = []
    for i, c in enumerate(CONVS):
        body = {"messages": c["messages"] + [c["answer"]]}
        if "tools" in c:
            body["tools"] = c["tools"]
        full = render(tc, body, work, "full%d" % i, False)
        prompt = render(tc, dict(body, messages=c["messages"]), work, "prompt%d" % i, True)
        assert full.startswith(prompt), (full, prompt)
        docs.append(full)
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w") as f:
        f.write("\n%\n".join(docs * 4))
    tok = os.path.join(work, "tokenizer.json")
    run(["tokenizer-train", "--input", corpus, "--vocab-size", "640", "--special"] + SPECIALS + ["-o", tok])
    padded = []
    for d in docs:
        n = len(json.loads(run(["tokenize", "--tokenizer", tok, "--no-special", d])))
        print("document of %d tokens" % n, file=sys.stderr)
        assert n + 1 <= SEQ, (n, SEQ)
        padded.append(d + "<|pad|>" * (SEQ - 1 - n))  # + the <|endoftext|> prepare-data appends
    with open(corpus, "w") as f:
        f.write("\n%\n".join(padded * REPEATS))
    data = os.path.join(work, "data.bin")
    run(["prepare-data", "--tokenizer", tok, "--input", corpus, "--doc-sep", "%", "-o", data])
    run(["train", "--preset", "test", "--tokenizer", tok, "--data", data, "-o", out, "--steps",
         os.environ.get("TAGGED_STEPS", "60"), "--seq-len", str(SEQ), "--batch-tokens", str(2 * SEQ), "--lr", "1e-2",
         "--warmup", "5", "--val-fraction", "0", "--eval-every", "0", "--seed", "1", "-t", "2"])
    # the server takes the chat template (and its eos, <|role_end|>, as a stop token) from here
    shutil.copy(tc, os.path.join(out, "tokenizer_config.json"))
    print(json.dumps(CONVS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
