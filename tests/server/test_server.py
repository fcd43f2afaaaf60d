"""ringlm serve against real clients on loopback: schemas of every endpoint,
streamed deltas == the non-streamed answer, stop strings across token
boundaries, log-probs, concurrent clients each equal to their sequential
twin (DESIGN.md §2.4), prefix-cache hits giving the same answer."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import RINGLM, Server, check, make_model, run_checked, summary  # noqa: E402

T0 = time.time()


def chat_body(text, **kw):
    b = {"model": "tiny", "messages": [{"role": "user", "content": text}], "max_tokens": 12, "seed": 11,
         "temperature": 1.0}
    b.update(kw)
    return b


def test_schemas(s):
    st, h = s.get("/health")
    check("GET /health 200 {status: ok}", st == 200 and h == {"status": "ok"}, (st, h))
    st, m = s.get("/v1/models")
    check("GET /v1/models lists the model", st == 200 and m["object"] == "list" and m["data"][0]["id"] == "tiny"
          and m["data"][0]["object"] == "model", m)
    st, t = s.post("/tokenize", {"content": "héllo wörld"})
    check("POST /tokenize", st == 200 and isinstance(t["tokens"], list) and all(isinstance(i, int) for i in t["tokens"]), t)
    st, d = s.post("/detokenize", {"tokens": t["tokens"]})
    check("POST /detokenize round trip", st == 200 and d["content"] == "héllo wörld", d)
    st, tp = s.post("/tokenize", {"content": "ab", "with_pieces": True})
    check("tokenize with_pieces", st == 200 and tp["tokens"] == [{"id": 97, "piece": "a"}, {"id": 98, "piece": "b"}], tp)

    st, r = s.post("/v1/chat/completions", chat_body("hello there", logprobs=True, top_logprobs=3))
    ok = st == 200 and r["object"] == "chat.completion" and r["id"].startswith("chatcmpl") and r["model"] == "tiny"
    ch = r["choices"][0] if ok else {}
    ok = ok and ch["index"] == 0 and ch["message"]["role"] == "assistant" and isinstance(ch["message"]["content"], str)
    ok = ok and ch["finish_reason"] in ("stop", "length")
    u = r.get("usage", {})
    ok = ok and u["prompt_tokens"] > 0 and u["completion_tokens"] >= 1 and \
        u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    lp = ch.get("logprobs") or {}
    ok = ok and len(lp.get("content", [])) >= 1 and all(
        len(x["top_logprobs"]) == 3 and x["logprob"] <= 0 and isinstance(x["bytes"], list) for x in lp["content"])
    ok = ok and all(x["top_logprobs"][0]["logprob"] >= x["top_logprobs"][1]["logprob"] for x in lp["content"])
    check("chat completion schema (usage, logprobs with top_logprobs)", ok, r)
    # the sampled token's log-prob is one of the top ones when greedy
    st, g = s.post("/v1/chat/completions", chat_body("hello there", temperature=0, logprobs=True, top_logprobs=1))
    ok = st == 200 and all(x["logprob"] == x["top_logprobs"][0]["logprob"] for x in g["choices"][0]["logprobs"]["content"])
    check("greedy picks the top log-prob", ok, g)

    st, r = s.post("/v1/completions", {"prompt": "Once upon", "max_tokens": 6, "seed": 3, "logprobs": 2})
    ok = st == 200 and r["object"] == "text_completion" and isinstance(r["choices"][0]["text"], str)
    lp = r["choices"][0]["logprobs"] if ok else None
    ok = ok and len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) >= 1
    check("completion schema (legacy logprobs)", ok, r)
    st, r2 = s.post("/v1/completions", {"prompt": [79, 110, 99, 101], "max_tokens": 6, "seed": 3})
    st3, r3 = s.post("/v1/completions", {"prompt": "Once", "max_tokens": 6, "seed": 3})
    check("prompt as token ids == as text", st == 200 and r2["choices"][0]["text"] == r3["choices"][0]["text"], (r2, r3))
    st, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 5, "n_predict": 3})
    check("max_tokens honoured (length)", st == 200 and r["usage"]["completion_tokens"] == 3 and
          r["choices"][0]["finish_reason"] == "length", r)
    # default (no max_tokens): runs until a stop token or the context; with
    # ignore_eos and max_completion_tokens
    st, r = s.post("/v1/chat/completions", chat_body("x", max_tokens=None, max_completion_tokens=7, ignore_eos=True))
    check("max_completion_tokens", st == 200 and r["usage"]["completion_tokens"] == 7, r)


def reassemble_chat(events):
    content, reasoning, lps, finish, usage, role = "", "", [], None, None, None
    for e in events:
        if e.get("usage") and not e["choices"]:
            usage = e["usage"]
            continue
        c = e["choices"][0]
        d = c["delta"]
        role = d.get("role", role)
        content += d.get("content") or ""
        reasoning += d.get("reasoning_content") or ""
        if c.get("logprobs"):
            lps += c["logprobs"]["content"]
        if c.get("finish_reason"):
            finish = c["finish_reason"]
    return role, content, reasoning, lps, finish, usage


def test_streaming(s):
    for seed, n in ((1, 20), (2, 40), (5, 64)):
        body = chat_body("stream me %d" % seed, seed=seed, max_tokens=n, logprobs=True, top_logprobs=2, ignore_eos=True)
        st, full = s.post("/v1/chat/completions", body)
        sb = dict(body, stream=True, stream_options={"include_usage": True})
        st2, ev, done = s.stream("/v1/chat/completions", sb)
        role, content, _, lps, finish, usage = reassemble_chat(ev)
        m = full["choices"][0]
        ok = st == 200 and st2 == 200 and done and role == "assistant"
        ok = ok and content == m["message"]["content"] and finish == m["finish_reason"]
        ok = ok and lps == m["logprobs"]["content"] and usage == full["usage"]
        ok = ok and all(e["object"] == "chat.completion.chunk" for e in ev)
        check("chat stream (seed %d, %d tokens) reassembles to the non-streamed answer" % (seed, n), ok,
              (content, m["message"]["content"], finish, usage, full["usage"]))
    body = {"prompt": "The cat", "max_tokens": 30, "seed": 9, "logprobs": 1, "ignore_eos": True}
    st, full = s.post("/v1/completions", body)
    st2, ev, done = s.stream("/v1/completions", dict(body, stream=True))
    text = "".join(e["choices"][0]["text"] for e in ev)
    toks = sum((e["choices"][0]["logprobs"]["tokens"] for e in ev if e["choices"][0]["logprobs"]), [])
    check("completion stream reassembles", st2 == 200 and done and text == full["choices"][0]["text"] and
          toks == full["choices"][0]["logprobs"]["tokens"] and ev[-1]["choices"][0]["finish_reason"] == "length",
          (text, full))
    st, ev, done = s.stream("/v1/completions", {"prompt": "a", "max_tokens": 3, "stream": True})
    check("stream without include_usage has no usage chunk", done and all("usage" not in e for e in ev), ev)


def test_stop_strings(s):
    base = {"prompt": "Stop strings test", "max_tokens": 60, "seed": 21, "ignore_eos": True, "temperature": 1.0}
    st, r = s.post("/v1/completions", base)
    text = r["choices"][0]["text"]
    # a stop string of 3 characters starting in the middle: it spans token
    # boundaries (byte-level tokens), and must not be emitted
    cands = [text[i:i + 3] for i in range(5, len(text) - 3) if "\ufffd" not in text[i:i + 3]]
    if not check("a stop-string candidate exists", cands, text):
        return
    stop = cands[len(cands) // 2]
    want = text[:text.index(stop)]
    st, r2 = s.post("/v1/completions", dict(base, stop=[stop, "\u2603never"]))
    check("stop string ends the answer and is not emitted", st == 200 and r2["choices"][0]["text"] == want and
          r2["choices"][0]["finish_reason"] == "stop", (stop, want, r2["choices"][0]))
    st, ev, done = s.stream("/v1/completions", dict(base, stop=stop, stream=True))
    streamed = "".join(e["choices"][0]["text"] for e in ev)
    check("stop string in a stream: same text, never emitted", done and streamed == want and
          ev[-1]["choices"][0]["finish_reason"] == "stop", (streamed, want))


def test_concurrency(s, n_clients=32, per_client=3):
    prompts = []
    for i in range(n_clients):
        for j in range(per_client):
            body = chat_body("client %d request %d: %s" % (i, j, "x" * (i * 7 % 50)), seed=1000 + i * 10 + j,
                             max_tokens=6 + (i + j) % 5, logprobs=True, ignore_eos=True)
            if (i + j) % 3 == 0:
                body = {"prompt": "completion %d/%d" % (i, j), "seed": i * 31 + j, "max_tokens": 8, "logprobs": 1,
                        "ignore_eos": True, "temperature": 0.9}
            prompts.append(body)

    def key(r):
        c = r["choices"][0]
        return json.dumps([c.get("message", c.get("text")), c["logprobs"], c["finish_reason"], r["usage"]["completion_tokens"]])

    def path(b):
        return "/v1/chat/completions" if "messages" in b else "/v1/completions"

    t = time.time()
    seq = []
    for b in prompts:
        st, r = s.post(path(b), dict(b, cache_prompt=False))
        seq.append(key(r) if st == 200 else "HTTP %d" % st)
    t_seq = time.time() - t
    got = [None] * len(prompts)
    errors = []

    def client(i):
        try:
            for j in range(per_client):
                k = i * per_client + j
                b = prompts[k]
                if j % 2 == 1:  # some clients stream
                    st, ev, done = s.stream(path(b), dict(b, stream=True))
                    if "messages" in b:
                        _, content, _, lps, finish, _ = reassemble_chat(ev)
                        got[k] = ("stream", content, lps, finish, done)
                    else:
                        got[k] = ("stream", "".join(e["choices"][0]["text"] for e in ev), done)
                else:
                    st, r = s.post(path(b), b)
                    got[k] = key(r) if st == 200 else "HTTP %d" % st
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    t = time.time()
    th = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    for x in th:
        x.start()
    for x in th:
        x.join(120)
    t_par = time.time() - t
    bad = []
    for k, g in enumerate(got):
        want = json.loads(seq[k]) if seq[k].startswith("[") else seq[k]
        if isinstance(g, tuple):
            if "messages" in prompts[k]:
                ok = isinstance(want, list) and g[4] and g[1] == want[0]["content"] and \
                    {"content": g[2]} == want[1] and g[3] == want[2]
            else:
                ok = g[2] and g[1] == want[0]
        else:
            ok = g == seq[k]
        if not ok:
            bad.append((k, g, seq[k]))
    check("%d clients x %d requests: nothing lost, every answer == its sequential twin (text + log-probs)"
          % (n_clients, per_client), not errors and not bad and all(g is not None for g in got),
          (errors[:3], bad[:2]))
    print("     sequential %.2f s, concurrent %.2f s" % (t_seq, t_par))


def test_prefix_cache(s):
    system = "You are a careful assistant. " * 8  # > 200 tokens with the byte tokenizer
    conv = [{"role": "system", "content": system}, {"role": "user", "content": "first question?"}]
    b1 = {"messages": conv, "max_tokens": 8, "seed": 5, "logprobs": True, "ignore_eos": True}
    m0 = s.metrics()
    st, r1 = s.post("/v1/chat/completions", b1)
    conv2 = conv + [{"role": "assistant", "content": r1["choices"][0]["message"]["content"]},
                    {"role": "user", "content": "and the second one?"}]
    b2 = {"messages": conv2, "max_tokens": 10, "seed": 6, "logprobs": True, "ignore_eos": True}
    st2, r2 = s.post("/v1/chat/completions", b2)
    m1 = s.metrics()
    st3, r3 = s.post("/v1/chat/completions", dict(b2, cache_prompt=False))
    hits = m1.get("ringlm_prefix_cache_hits_total", 0) - m0.get("ringlm_prefix_cache_hits_total", 0)
    cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
    check("multi-turn: prefix-cache hit (metrics) skips prefill", st2 == 200 and hits >= 1 and cached >= 192 and
          cached % 64 == 0 and cached < r2["usage"]["prompt_tokens"], (hits, r2["usage"]))
    check("same answer and log-probs with and without the hit", st3 == 200 and
          r3["usage"]["prompt_tokens_details"]["cached_tokens"] == 0 and
          r2["choices"][0]["message"] == r3["choices"][0]["message"] and
          r2["choices"][0]["logprobs"] == r3["choices"][0]["logprobs"], (r2["choices"], r3["choices"]))
    saved = m1.get("ringlm_prompt_tokens_cached_total", 0) - m0.get("ringlm_prompt_tokens_cached_total", 0)
    check("metrics count the prefill saved", saved == cached, (saved, cached))
    # a common system prompt shared by a different conversation
    b4 = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "unrelated"}],
          "max_tokens": 5, "seed": 8, "logprobs": True}
    st4, r4 = s.post("/v1/chat/completions", b4)
    st5, r5 = s.post("/v1/chat/completions", dict(b4, cache_prompt=False))
    check("shared system prompt: hit, same answer", r4["usage"]["prompt_tokens_details"]["cached_tokens"] >= 192 and
          r4["choices"] == r5["choices"], (r4["usage"], r4["choices"], r5["choices"]))


def test_metrics(s):
    st, text = s.get("/metrics")
    names = ["ringlm_requests_total{outcome=\"stop\"}", "ringlm_prompt_tokens_total", "ringlm_generated_tokens_total",
             "ringlm_queue_depth", "ringlm_slots_busy", "ringlm_time_to_first_token_seconds_bucket{le=\"+Inf\"}",
             "ringlm_inter_token_latency_seconds_count", "ringlm_prefix_cache_hits_total"]
    m = s.metrics()
    check("GET /metrics: Prometheus text with the counters", st == 200 and all(n in m for n in names) and
          m["ringlm_generated_tokens_total"] > 0 and m["ringlm_time_to_first_token_seconds_count"] > 0,
          [n for n in names if n not in m])


def test_tools(ring_model):
    s = Server(ring_model, "--parallel", "2")
    try:
        tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
        msgs = [{"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Paris?"}]}]
        st, a = s.post("/v1/chat/completions", {"messages": msgs, "max_tokens": 4, "seed": 1})
        st2, b = s.post("/v1/chat/completions", {"messages": msgs, "tools": tools, "max_tokens": 4, "seed": 1})
        check("tools are rendered by the chat template (Ring template)", st == 200 and st2 == 200 and
              b["usage"]["prompt_tokens"] > a["usage"]["prompt_tokens"] + 50, (a, b))
        hist = msgs + [{"role": "assistant", "content": "",
                        "tool_calls": [{"id": "call_0", "type": "function",
                                        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                       {"role": "tool", "tool_call_id": "call_0", "content": "sunny"}]
        st3, c = s.post("/v1/chat/completions", {"messages": hist, "tools": tools, "max_tokens": 4, "seed": 1})
        check("tool-call history renders", st3 == 200, c)
    finally:
        s.kill()


def main():
    model = make_model("tiny")
    ring = make_model("tiny_ring", ring_template=True)
    s = Server(model, "--parallel", "4", "--batch-tokens", "96")
    try:
        for f in (test_schemas, test_streaming, test_stop_strings, test_concurrency, test_prefix_cache, test_metrics):
            run_checked(f, s)
        rc = s.stop()
        check("SIGTERM when idle: exit 0", rc == 0, (rc, s.output()[-2000:]))
    finally:
        s.kill()
    try:
        test_tools(ring)
    except Exception as e:  # noqa: BLE001
        check("test_tools raised", False, repr(e))
    print("total %.1f s" % (time.time() - T0))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
