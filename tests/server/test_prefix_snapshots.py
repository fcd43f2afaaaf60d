"""Where the scheduler leaves prefix-cache snapshots inside a prompt. A prompt
shorter than --batch-tokens is prefilled in one step, and snapshots are only
taken after a step that ends on a 64-token boundary; so the scheduler pauses
prefill at the last boundary of the system part of a chat and at the last
boundary of the prompt. Checked here against things the server does not
compute: the chat template rendered by jinja2 in this test (token counts from
/tokenize), and the same requests sent to a fresh server with the cache off
(greedy, fixed seeds, with log-probs: the answers must be equal)."""
import json
import os
import sys
import time

import jinja2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import Server, check, make_model, run_checked, summary  # noqa: E402

T0 = time.time()
CHUNK = 64
SYSTEM = "You are a careful assistant who answers in full sentences and cites sources. " * 4
CHAT = "/v1/chat/completions"


def render(model, messages, gen):
    cfg = json.load(open(os.path.join(model, "tokenizer_config.json")))
    return jinja2.Template(cfg["chat_template"]).render(messages=messages, add_generation_prompt=gen)


def ntok(s, text):
    st, t = s.post("/tokenize", {"content": text})
    assert st == 200, t
    return t["tokens"]


def lcp(a, b):
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def body(messages, seed, n=8):
    return {"messages": messages, "max_tokens": n, "seed": seed, "temperature": 0, "logprobs": True,
            "top_logprobs": 3, "ignore_eos": True}


def cached(r):
    return r["usage"]["prompt_tokens_details"]["cached_tokens"]


def conversations():
    a1 = [{"role": "system", "content": SYSTEM},
          {"role": "user", "content": "First question: how were the old city walls built, and by whom? " * 2}]
    b = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Something else: rivers?"}]
    return a1, b


def run_trace(s):
    """Conversation A turn 1, conversation B (same system prompt), A turn 2,
    then a completion and its extension. Returns the responses."""
    a1, b = conversations()
    out = {}
    st, out["a1"] = s.post(CHAT, body(a1, 5, n=4))
    assert st == 200, out["a1"]
    m0 = s.metrics()
    st, out["b"] = s.post(CHAT, body(b, 9))
    assert st == 200, out["b"]
    m1 = s.metrics()
    out["b_saved"] = m1.get("ringlm_prompt_tokens_cached_total", 0) - m0.get("ringlm_prompt_tokens_cached_total", 0)
    a2 = a1 + [{"role": "assistant", "content": out["a1"]["choices"][0]["message"]["content"]},
               {"role": "user", "content": "And the second?"}]
    st, out["a2"] = s.post(CHAT, body(a2, 6))
    assert st == 200, out["a2"]
    p = "Once upon a time in a city by the sea there lived a keeper of old books. " * 3
    st, out["c1"] = s.post("/v1/completions", {"prompt": p, "max_tokens": 3, "seed": 1, "temperature": 0})
    assert st == 200, out["c1"]
    st, out["c2"] = s.post("/v1/completions", {"prompt": p + "One day", "max_tokens": 6, "seed": 2,
                                               "temperature": 0, "logprobs": 2})
    assert st == 200, out["c2"]
    return out, a1, b, a2


def test_snapshots(model):
    s = Server(model, "--parallel", "2")  # default --batch-tokens 512: each prompt is one piece
    try:
        out, a1, b, a2 = run_trace(s)
        # the system part, rendered independently of the server
        sys_toks = ntok(s, render(model, a1[:1], False))
        a1_toks = ntok(s, render(model, a1, True))
        b_toks = ntok(s, render(model, b, True))
        a2_toks = ntok(s, render(model, a2, True))
        check("prompt token counts match the jinja2 rendering",
              [out[k]["usage"]["prompt_tokens"] for k in ("a1", "b", "a2")] == [len(a1_toks), len(b_toks), len(a2_toks)],
              ([out[k]["usage"] for k in ("a1", "b", "a2")], len(a1_toks), len(b_toks), len(a2_toks)))
        want = len(sys_toks) - len(sys_toks) % CHUNK
        cb = cached(out["b"])
        check("system prompt is longer than a chunk and B's prompt is one prefill piece",
              want >= 2 * CHUNK and len(b_toks) < 512, (len(sys_toks), len(b_toks)))
        check("shared system prompt: B skips >= the system part rounded down to 64 (%d >= %d)" % (cb, want),
              cb >= want and cb % CHUNK == 0 and cb <= lcp(a1_toks, b_toks), (cb, want, lcp(a1_toks, b_toks)))
        check("metrics count B's skipped prefill", out["b_saved"] == cb, (out["b_saved"], cb))
        p1 = len(a1_toks)
        want2 = p1 - p1 % CHUNK
        c2 = cached(out["a2"])
        check("multi-turn: turn 2 hits at turn 1's last prompt boundary (%d >= %d > system %d)" % (c2, want2, want),
              want2 > want and c2 >= want2 and c2 % CHUNK == 0 and c2 < len(a2_toks), (c2, want2, len(a2_toks)))
        pc = out["c1"]["usage"]["prompt_tokens"]
        cc = cached(out["c2"])
        check("completions: the extension hits at the first prompt's last boundary (%d >= %d)" % (cc, pc - pc % CHUNK),
              pc >= CHUNK and cc >= pc - pc % CHUNK and cc % CHUNK == 0, (pc, cc))
        # odd chats: only system messages, a null system content, a leading
        # user message; none may break the server
        odd = [[{"role": "system", "content": SYSTEM}],
               [{"role": "system", "content": None}, {"role": "user", "content": "hi"}],
               [{"role": "developer", "content": SYSTEM}, {"role": "system", "content": "x"},
                {"role": "user", "content": "hi"}],
               [{"role": "user", "content": "hi"}, {"role": "system", "content": SYSTEM}]]
        sts = [s.post(CHAT, body(m, 3, n=2))[0] for m in odd]
        check("odd chats answered, server healthy", all(x in (200, 400) for x in sts) and s.get("/health")[0] == 200,
              sts)
        rc = s.stop()
        check("SIGTERM: exit 0", rc == 0, (rc, s.output()[-2000:]))
    finally:
        s.kill()

    # the same requests on a fresh server without a prefix cache
    f = Server(model, "--parallel", "2", "--cache-mib", "0")
    try:
        ref, _, _, _ = run_trace(f)
        for k in ("b", "a2", "c2"):
            check("%s: same answer and log-probs as a fresh server with the cache off" % k,
                  cached(ref[k]) == 0 and ref[k]["choices"] == out[k]["choices"],
                  (ref[k]["choices"], out[k]["choices"]))
    finally:
        f.kill()


def main():
    model = make_model("tiny")
    run_checked(test_snapshots, model)
    print("(%.1f s)" % (time.time() - T0))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
