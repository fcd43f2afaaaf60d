#!/usr/bin/env python3
"""The "Server" section of docs/BENCHMARKS.md in one run: starts `ringlm
serve`, runs bench/serve_load.py (1, 4, 16, 64 concurrent streams) and
bench/serve_multiturn.py (prefix cache on/off) REPS times, and prints the
medians as markdown with, around each repetition, the machine's load
(`uptime`) and the engine's own single-stream decode rate (`ringlm bench
-p 0 -n 128`, the floor a stream is compared with) measured in the same run.
    bench/serve_bench.py --ringlm build/ringlm -m models/tiny -t 2 --reps 3"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load():
    return open("/proc/loadavg").read().split()[0]


def engine_decode(ringlm, model, threads, n):
    r = subprocess.run([ringlm, "bench", "-m", model, "-p", "0", "-n", str(n), "-r", "1", "-t", str(threads)],
                       capture_output=True, text=True)
    m = re.search(r"\| tg%d @ d0 \| ([0-9.]+)" % n, r.stdout)
    return float(m.group(1)) if m else float("nan")


def start(ringlm, model, args):
    log = open("/tmp/serve_bench.%d.log" % os.getpid(), "w+")
    p = subprocess.Popen([ringlm, "serve", "-m", model, "--port", "0"] + args, stdout=log, stderr=subprocess.STDOUT)
    port = None
    for _ in range(3000):  # a large model loads and packs its weights first
        log.seek(0)
        m = re.search(r"listening on http://[^:]+:(\d+)", log.read())
        if m:
            port = int(m.group(1))
        log.seek(0)
        if port and "ready" in log.read():
            return p, port
        if p.poll() is not None:
            break
        time.sleep(0.1)
    p.kill()
    log.seek(0)
    sys.exit("server did not start: " + log.read())


def jsonl(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringlm", default="build/ringlm")
    ap.add_argument("-m", "--model", default="models/tiny")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-c", default="1,4,16,64")
    ap.add_argument("-n", type=int, default=64, help="max_tokens per request")
    ap.add_argument("--requests", type=int, default=64, help="requests per concurrency level (at least 2 per stream)")
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=64, help="serve_load.py's prompt length")
    ap.add_argument("--floor-n", type=int, default=128, help="tokens the engine decodes for the floor")
    ap.add_argument("--mt", default="", help="extra arguments of serve_multiturn.py, e.g. '-k 2 -t 3 -n 16'")
    a = ap.parse_args()
    srv_args = ["-t", str(a.threads), "--parallel", str(a.parallel), "--batch-tokens", "512", "--queue", "1024"]
    load_rows, mt_rows, floors, loads = {}, {True: [], False: []}, [], []
    for rep in range(a.reps):
        loads.append(load())
        floors.append(engine_decode(a.ringlm, a.model, a.threads, a.floor_n))
        p, port = start(a.ringlm, a.model, srv_args)
        url = "http://127.0.0.1:%d" % port
        try:
            for C in [int(x) for x in a.c.split(",")]:
                r = max(2, a.requests // C)
                row = jsonl([sys.executable, os.path.join(HERE, "serve_load.py"), "--url", url, "-c", str(C), "-r",
                             str(r), "-n", str(a.n), "--prompt-words", str(a.prompt_words), "--json"])[0]
                load_rows.setdefault(C, []).append(row)
            for row in jsonl([sys.executable, os.path.join(HERE, "serve_multiturn.py"), "--url", url, "--json"] + a.mt.split()):
                mt_rows[row["cache"]].append(row)
        finally:
            p.terminate()
            p.wait()
        floors.append(engine_decode(a.ringlm, a.model, a.threads, a.floor_n))
        loads.append(load())
        print("rep %d done: load %s..%s, engine decode %.1f..%.1f tok/s" % (rep + 1, loads[-2], loads[-1], floors[-2],
                                                                            floors[-1]), file=sys.stderr, flush=True)
    print("server: `ringlm serve -m %s %s`; %d reps; 1-min load average around the reps: %s; engine single-stream "
          "decode (`ringlm bench -p 0 -n %d -t %d`) before/after each rep: %s tok/s (median %.1f)\n"
          % (a.model, " ".join(srv_args), a.reps, " ".join(loads), a.floor_n, a.threads,
             " ".join("%.0f" % f for f in floors), med(floors)))
    print("| streams | requests | gen tok/s | x engine decode | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for C, rows in sorted(load_rows.items()):
        tps = med([r["tok_s"] for r in rows])
        print("| %d | %d | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f |" % (
            C, rows[0]["requests"], tps, tps / med(floors), med([r["ttft_p50_ms"] for r in rows]),
            med([r["ttft_p99_ms"] for r in rows]), med([r["itl_p50_ms"] for r in rows]),
            med([r["itl_p99_ms"] for r in rows])))
    print("\n| prefix cache | prompt tokens | from the cache | share skipped | TTFT p50 ms | TTFT p90 ms |")
    print("|---|---|---|---|---|---|")
    for cache in (False, True):
        rows = mt_rows[cache]
        pt, ct = med([r["prompt_tokens"] for r in rows]), med([r["cached_tokens"] for r in rows])
        print("| %s | %d | %d | %.1f%% | %.1f | %.1f |" % ("on" if cache else "off", pt, ct, 100 * ct / pt,
                                                        med([r["ttft_p50_ms"] for r in rows]),
                                                        med([r["ttft_p90_ms"] for r in rows])))


if __name__ == "__main__":
    main()
