#!/usr/bin/env python3
"""Load driver for `ringlm serve`: C concurrent streaming clients, each sending
R chat requests; reports generated tokens/s and p50/p99 of the time to first
token and the inter-token latency (measured at the client, per SSE chunk that
carries tokens), then the server's prefix-cache counters.
    bench/serve_load.py --url http://127.0.0.1:8080 -c 1,4,16,64 -r 4 -n 64"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def one(host, port, body, ttft, itl, ntok):
    c = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.time()
    c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    last = None
    for line in r:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        e = json.loads(line[6:])
        if e.get("usage"):
            ntok.append(e["usage"]["completion_tokens"])
        ch = e.get("choices") or [{}]
        if not (ch[0].get("logprobs") or {}).get("content"):
            continue
        now = time.time()
        k = len(ch[0]["logprobs"]["content"])
        if last is None:
            ttft.append(now - t0)
        else:
            itl.extend([(now - last) / k] * k)
        last = now
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("-c", default="1,4,16")
    ap.add_argument("-r", type=int, default=2, help="requests per client")
    ap.add_argument("-n", type=int, default=64, help="max_tokens")
    ap.add_argument("--prompt-words", type=int, default=64)
    ap.add_argument("--json", action="store_true", help="one JSON line per concurrency instead of a table")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    if not a.json:
        print("| streams | gen tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |")
        print("|---|---|---|---|---|---|")
    for C in [int(x) for x in a.c.split(",")]:
        ttft, itl, ntok = [], [], []

        def client(i):
            for j in range(a.r):
                body = {"messages": [{"role": "user", "content": ("client %d turn %d " % (i, j)) + "word " * a.prompt_words}],
                        "max_tokens": a.n, "ignore_eos": True, "seed": i * 100 + j, "stream": True, "logprobs": True,
                        "stream_options": {"include_usage": True}, "cache_prompt": False}
                one(u.hostname, u.port, body, ttft, itl, ntok)
        t = time.time()
        th = [threading.Thread(target=client, args=(i,)) for i in range(C)]
        [x.start() for x in th]
        [x.join() for x in th]
        dt = time.time() - t
        if a.json:
            print(json.dumps({"streams": C, "requests": len(ntok), "tok_s": sum(ntok) / dt, "ttft_p50_ms": 1e3 * pct(ttft, 50),
                              "ttft_p99_ms": 1e3 * pct(ttft, 99), "itl_p50_ms": 1e3 * pct(itl, 50),
                              "itl_p99_ms": 1e3 * pct(itl, 99), "seconds": dt}), flush=True)
            continue
        print("| %d | %.1f | %.1f | %.1f | %.2f | %.2f |" % (C, sum(ntok) / dt, 1e3 * pct(ttft, 50), 1e3 * pct(ttft, 99),
                                                            1e3 * pct(itl, 50), 1e3 * pct(itl, 99)))


if __name__ == "__main__":
    main()
