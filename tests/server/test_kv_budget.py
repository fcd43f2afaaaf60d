"""The server's KV page budget (--kv-pages) under load: a small budget that
holds a few requests at a time. Every request of a concurrent burst completes
and equals its sequential twin computed by a server with the default
(unconstrained) budget; requests waited for pages (metrics) and the pages in
use never exceed the budget; a request that can never fit gets a 400 before
any work; requests without max_tokens that run out of pages end with
finish_reason "length" and a prefix of their twin; prefix-cache snapshots
give their pages up to running requests."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import Server, check, make_model, run_checked, summary  # noqa: E402

T0 = time.time()
BUDGET = 12  # pages of 64 positions: 768 positions shared by 8 slots
ARGS = ["--parallel", "8", "-c", "1024", "--batch-tokens", "128"]


def burst_bodies(n=24):
    out = []
    for i in range(n):
        words = 8 + (i * 13) % 40  # prompts of ~40..230 bytes (byte tokenizer)
        b = {"prompt": "request %d: %s" % (i, "lorem ipsum " * (words // 2)), "max_tokens": 16 + (i * 7) % 48,
             "seed": 500 + i, "temperature": 0.9, "logprobs": 1, "ignore_eos": True}
        if i % 3 == 1:
            b = {"messages": [{"role": "user", "content": "chat %d %s" % (i, "word " * words)}],
                 "max_tokens": 20 + i, "seed": 900 + i, "logprobs": True, "ignore_eos": True}
        out.append(b)
    return out


def path(b):
    return "/v1/chat/completions" if "messages" in b else "/v1/completions"


def key(r):
    c = r["choices"][0]
    return [c.get("message", c.get("text")), c["logprobs"], c["finish_reason"], r["usage"]["completion_tokens"]]


def twins(model, bodies):
    """Each body alone on a server with the default budget."""
    s = Server(model, *ARGS)
    try:
        out = []
        for b in bodies:
            st, r = s.post(path(b), b)
            out.append(key(r) if st == 200 else ("HTTP", st, r))
        return out
    finally:
        s.kill()


def concurrently(s, bodies, stream_every=0, usage=None):
    """usage: filled with each answer's total_tokens (non-streamed)."""
    got = [None] * len(bodies)
    tot = [0] * len(bodies)

    def one(k):
        b = bodies[k]
        try:
            if stream_every and k % stream_every == 0 and "prompt" in b:
                st, ev, done = s.stream(path(b), dict(b, stream=True))
                text = "".join(e["choices"][0]["text"] for e in ev)
                lps = sum((e["choices"][0]["logprobs"]["tokens"] for e in ev if e["choices"][0]["logprobs"]), [])
                got[k] = ("stream", st, text, lps, ev[-1]["choices"][0]["finish_reason"] if ev else None, done)
            else:
                st, r = s.post(path(b), b)
                got[k] = key(r) if st == 200 else ("HTTP", st, r)
                tot[k] = r["usage"]["total_tokens"] if st == 200 else 0
        except Exception as e:  # noqa: BLE001
            got[k] = ("raised", repr(e))
    th = [threading.Thread(target=one, args=(k,)) for k in range(len(bodies))]
    for t in th:
        t.start()
    for t in th:
        t.join(300)
    if usage is not None:
        usage.extend(tot)
    return got


def same(g, want):
    if isinstance(g, tuple) and g[0] == "stream":
        return g[1] == 200 and g[5] and g[2] == want[0] and g[3] == want[1]["tokens"] and g[4] == want[2]
    return g == want


def test_burst(model):
    bodies = burst_bodies()
    want = twins(model, bodies)
    check("twins computed", all(isinstance(w, list) for w in want), [w for w in want if not isinstance(w, list)][:2])
    s = Server(model, *ARGS, "--kv-pages", str(BUDGET))
    peak = [0]
    stop = threading.Event()

    def watch():  # pages in use, sampled while the burst runs
        while not stop.is_set():
            m = s.metrics()
            peak[0] = max(peak[0], m.get("ringlm_kv_pages_used", 0))
            time.sleep(0.02)
    w = threading.Thread(target=watch)
    w.start()
    try:
        t = time.time()
        got = concurrently(s, bodies, stream_every=4)
        dt = time.time() - t
        stop.set()
        w.join()
        bad = [(k, got[k], want[k]) for k in range(len(bodies)) if not same(got[k], want[k])]
        check("%d concurrent requests under a %d-page budget: all complete, each == its sequential twin "
              "(text + log-probs)" % (len(bodies), BUDGET), not bad, bad[:2])
        m = s.metrics_idle()
        check("requests waited for pages (metrics)", m.get("ringlm_kv_deferred_requests_total", 0) >= 1, m)
        check("pages in use never above the budget (peak %d of %d)" % (peak[0], BUDGET),
              0 < peak[0] <= BUDGET and m["ringlm_kv_pages_total"] == BUDGET, peak)
        check("no request was cut short (all had max_tokens)", m.get("ringlm_kv_truncated_requests_total", -1) == 0, m)
        check("all slots idle, nothing promised after the burst", m["ringlm_slots_busy"] == 0 and
              m["ringlm_kv_pages_promised"] == 0 and m["ringlm_kv_pages_used"] + m["ringlm_kv_pages_free"] == BUDGET, m)
        print("     burst of %d in %.2f s" % (len(bodies), dt))

        # never fits: refused with an OpenAI-style error before any work
        m0 = s.metrics()
        st, r = s.post("/v1/completions", {"prompt": "y" * 100, "max_tokens": 800})
        e = r.get("error", {}) if isinstance(r, dict) else {}
        check("prompt + max_tokens over the budget: 400 naming max_tokens and the budget", st == 400 and
              e.get("param") == "max_tokens" and e.get("code") == 400 and e.get("type") == "invalid_request_error"
              and "KV" in e.get("message", "") and str(BUDGET) in e.get("message", ""), (st, r))
        st, r = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "z" * 900}]})
        e = r.get("error", {}) if isinstance(r, dict) else {}
        check("a prompt alone over the budget: 400 naming messages", st == 400 and e.get("param") == "messages", (st, r))
        m1 = s.metrics()
        check("refused before work (no prompt tokens admitted)",
              m1["ringlm_prompt_tokens_total"] == m0["ringlm_prompt_tokens_total"], (m0, m1))
        st, r = s.post("/v1/completions", {"prompt": "y" * 100, "max_tokens": 600, "seed": 1})
        check("the largest request that fits (11 of 12 pages) runs", st == 200 and r["usage"]["completion_tokens"] >= 1,
              (st, r))
    finally:
        stop.set()
        s.kill()


def test_unbounded(model):
    """Without max_tokens a request is promised only its prompt and grows
    into pages nobody was promised; when none is left it ends with
    "length". Its text is a prefix of what it writes with room to spare."""
    bodies = [{"prompt": "unbounded %d %s" % (i, "abc " * (5 + 9 * i)), "seed": 70 + i, "temperature": 1.0,
               "ignore_eos": True, "logprobs": 1} for i in range(3)]
    s = Server(model, *ARGS, "--kv-pages", str(BUDGET))
    try:
        usage = []
        got = concurrently(s, bodies, usage=usage)
        m = s.metrics_idle()
        ok = all(isinstance(g, list) and g[2] == "length" for g in got)
        check("3 unbounded requests on 12 pages: all end with length", ok, got)
        if ok:
            # positions written = prompt + sampled tokens fed back (all but the last); the last
            # one left running gets every page (the others' and the snapshots')
            fed = [u - 1 for u in usage]
            check("none wrote more than the budget; the last one all of it (%s of %d positions)" % (fed, BUDGET * 64),
                  max(fed) == BUDGET * 64, fed)
            check("truncations counted", m["ringlm_kv_truncated_requests_total"] >= 1, m)
        # the twin with room to spare: same seed, enough max_tokens on the default budget
        t = Server(model, *ARGS)
        try:
            pref = True
            for b, g in zip(bodies, got):
                st, r = t.post("/v1/completions", dict(b, max_tokens=g[3] + 5))
                full = r["choices"][0]
                pref = pref and st == 200 and full["text"].startswith(g[0]) and \
                    full["logprobs"]["tokens"][:g[3]] == g[1]["tokens"]
            check("each cut answer is the prefix of its uncut twin", pref)
        finally:
            t.kill()
        st, r = s.post("/v1/completions", {"prompt": "after", "max_tokens": 5, "seed": 2})
        check("the server serves on after running out of pages", st == 200 and r["usage"]["completion_tokens"] == 5, r)
    finally:
        s.kill()


def test_cache_gives_way(model):
    """Snapshots hold pages only while no request needs them."""
    s = Server(model, *ARGS, "--kv-pages", str(BUDGET))
    try:
        system = "You are a careful assistant. " * 10  # ~300 bytes: 4 snapshots
        b = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "q"}],
             "max_tokens": 4, "seed": 3}
        st, r = s.post("/v1/chat/completions", b)
        m = s.metrics_idle()
        check("snapshots hold pages after a request (cache-only pages)", st == 200 and
              m["ringlm_kv_pages_cache_only"] >= 4, m)
        st, r2 = s.post("/v1/chat/completions", b)
        check("and serve hits", r2["usage"]["prompt_tokens_details"]["cached_tokens"] >= 256 and
              r2["choices"][0]["message"] == r["choices"][0]["message"], (r2, r))
        # needs every page: the snapshots must give theirs up
        st, r3 = s.post("/v1/completions", {"prompt": "w" * 60, "max_tokens": 700, "seed": 4, "ignore_eos": True})
        m2 = s.metrics_idle()
        check("a request needing the whole budget evicts the snapshots and completes", st == 200 and
              r3["usage"]["completion_tokens"] == 700 and
              m2["ringlm_prefix_cache_evictions_total"] > m["ringlm_prefix_cache_evictions_total"], (st, m2))
    finally:
        s.kill()


def main():
    model = make_model("tiny")
    for f in (test_burst, test_unbounded, test_cache_gives_way):
        run_checked(f, model)
    print("total %.1f s" % (time.time() - T0))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
