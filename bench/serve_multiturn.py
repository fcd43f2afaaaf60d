#!/usr/bin/env python3
"""Prefill saved by the prefix cache on a multi-turn chat trace.

K conversations share a system prompt; each runs T turns: the user message,
a streamed answer of N tokens, then the answer appended to the history and
the next user message. The same trace runs twice against one server: with
cache_prompt false (every turn prefills its whole history) and true (a turn
starts from the snapshot of the longest cached prefix). Reports, per mode,
the prompt tokens, the prompt tokens taken from the cache (the server's
usage.prompt_tokens_details.cached_tokens) and the time to first token
(median and p90 over the turns after the first); and, for the first turns of
conversations 2..K, which can reuse only the shared system prompt (the
shared-system-prompt trace), the tokens from the cache and the TTFT median.
Conversations run one
after another, so TTFT is the prefill of one request, not queueing.
    bench/serve_multiturn.py --url http://127.0.0.1:8080 -k 4 -t 6 -n 32"""
import argparse
import http.client
import json
import time
import urllib.parse

USER = ["Tell me about the %s of the old city.", "And what of its %s?", "Who kept the %s in those days?",
        "Why did the %s fall?", "What remains of the %s now?", "Say more about the %s.", "Sum up the %s."]
TOPICS = ["walls", "gates", "temple", "harbour", "markets", "kings", "wells", "roads"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def turn(host, port, messages, n, cache, seed):
    body = {"messages": messages, "max_tokens": n, "ignore_eos": True, "seed": seed, "stream": True,
            "stream_options": {"include_usage": True}, "cache_prompt": cache, "logprobs": True}
    c = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.time()
    c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    ttft, text, usage = None, "", None
    for line in r:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        e = json.loads(line[6:])
        if e.get("usage"):
            usage = e["usage"]
        for ch in e.get("choices") or []:
            # the first chunk that carries a sampled token (its log-prob), even
            # when its text is held back (partial UTF-8, a possible stop string)
            if (ch.get("logprobs") or {}).get("content") and ttft is None:
                ttft = time.time() - t0
            text += (ch.get("delta") or {}).get("content") or ""
    c.close()
    return ttft, text, usage


def run(host, port, k, t, n, cache, system):
    """Totals over all turns, TTFTs of turns 2..t, and the first turns of
    conversations 2..k (the shared system prompt is all they can reuse):
    their prompt tokens, cached tokens and TTFTs."""
    ttfts, prompt, cached = [], 0, 0
    first = {"prompt": 0, "cached": 0, "ttfts": []}
    for conv in range(k):
        msgs = [{"role": "system", "content": system}]
        for i in range(t):
            msgs.append({"role": "user", "content": USER[i % len(USER)] % TOPICS[(conv + i) % len(TOPICS)]})
            ttft, text, usage = turn(host, port, msgs, n, cache, 1000 * conv + i)
            msgs.append({"role": "assistant", "content": text})
            prompt += usage["prompt_tokens"]
            cached += usage["prompt_tokens_details"]["cached_tokens"]
            if i > 0 and ttft is not None:
                ttfts.append(ttft)
            if i == 0 and conv > 0:
                first["prompt"] += usage["prompt_tokens"]
                first["cached"] += usage["prompt_tokens_details"]["cached_tokens"]
                if ttft is not None:
                    first["ttfts"].append(ttft)
    return prompt, cached, ttfts, first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("-k", type=int, default=4, help="conversations")
    ap.add_argument("-t", type=int, default=6, help="turns per conversation")
    ap.add_argument("-n", type=int, default=32, help="max_tokens per answer")
    ap.add_argument("--system-words", type=int, default=150)
    ap.add_argument("--json", action="store_true", help="one JSON line per mode instead of a table")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    system = "You are a patient historian who answers plainly. " + "Mind the record and the sources. " * (a.system_words // 6)
    rows = []
    for cache in (False, True):
        prompt, cached, ttfts, first = run(u.hostname, u.port, a.k, a.t, a.n, cache, system)
        rows.append({"cache": cache, "prompt_tokens": prompt, "cached_tokens": cached,
                     "ttft_p50_ms": 1e3 * pct(ttfts, 50), "ttft_p90_ms": 1e3 * pct(ttfts, 90), "turns": len(ttfts),
                     "first_prompt_tokens": first["prompt"], "first_cached_tokens": first["cached"],
                     "first_ttft_p50_ms": 1e3 * pct(first["ttfts"], 50), "first_turns": len(first["ttfts"])})
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return
    print("| prefix cache | prompt tokens | from the cache | share skipped | TTFT p50 ms | TTFT p90 ms "
          "| first turns: skipped | first turns: TTFT p50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %d | %.1f%% | %.1f | %.1f | %d / %d | %.1f |" % (
            "on" if r["cache"] else "off", r["prompt_tokens"], r["cached_tokens"],
            100.0 * r["cached_tokens"] / r["prompt_tokens"], r["ttft_p50_ms"], r["ttft_p90_ms"],
            r["first_cached_tokens"], r["first_prompt_tokens"], r["first_ttft_p50_ms"]))


if __name__ == "__main__":
    main()
