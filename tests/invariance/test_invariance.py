#!/usr/bin/python3
"""DESIGN §2.4 asserted bitwise: the float32 logits ringlm writes for a sequence do not depend on how
the sequence is split into steps, on the other sequences sharing those steps, nor on the thread count.

For 3 configs (MoE + both layer kinds, sequence of ~150 tokens crossing Lightning chunks of 64):
  whole sequence in one step == random --steps splits (several seeds)
                             == token by token (--steps 1,1,...)
                             == prefill of a prefix then decode (--steps P,1,1,...)
                             == the same with --companion sequences in the same steps
                             == -t 1 == -t 2
Comparison is on the raw bytes of the output files (memcmp), never a tolerance.

Env: RINGLM (default build/ringlm), RL_TEST_TMP (default /tmp/rl_test). --keep keeps files.
Ends with "N passed, N failed"; exits non-zero on any failure.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from test_logits import base  # noqa: E402  (the same config vocabulary as the model test)
import ring_ref  # noqa: E402

N = 150

CONFIGS = [
    # layers 0..3 linear, 4 softmax; MoE 1..4, 1 shared expert, group-limited routing; bf16
    ("hybrid_moe_bf16", base(), {}),
    # tail rule (softmax 2, 5, 6), 6 heads / 3 kv heads, hf decay, 2 shared experts; f32 weights
    ("tail_h6_hf_f32", base(num_hidden_layers=7, layer_group_size=3, hidden_size=48, num_attention_heads=6,
                            num_key_value_heads=3, head_dim=8, group_norm_size=3, num_shared_experts=2,
                            first_k_dense_replace=2, ringlm_decay_convention="hf"), {"dtype": "f32"}),
    # head_dim 32, GQA 4:1, full rotary, bf16 router, 2 shards
    ("hd32_gqa4_shards", base(hidden_size=96, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                              group_norm_size=2, partial_rotary_factor=1.0, num_hidden_layers=4,
                              layer_group_size=2, vocab_size=700),
     {"shards": 2, "router_dtype": "bf16"}),
]

RESULTS = []


def run(cmd, env=None):
    full = dict(os.environ, **env) if env else None
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=full)
    if p.returncode != 0:
        raise RuntimeError("%s\n  exit %d: %s" % (" ".join(cmd)[:300], p.returncode,
                                                  (p.stderr.strip() or p.stdout.strip())[-800:]))


def random_split(n, rng):
    """Random step sizes summing to n: a mix of single tokens, chunk-sized, and odd pieces."""
    out, left = [], n
    while left:
        k = rng.choice([1, 1, 1, 2, 3, 7, 30, 63, 64, 65, rng.randrange(1, 100)])
        k = min(k, left)
        out.append(k)
        left -= k
    return out


def csv(v):
    return ",".join(map(str, v))


def compare(name, base_bytes, path, V):
    try:
        with open(path, "rb") as f:
            got = f.read()
    except OSError as e:
        RESULTS.append((name, False))
        print("FAIL %s: %s" % (name, e))
        return
    if got == base_bytes:
        RESULTS.append((name, True))
        print("ok   %s" % name)
        return
    RESULTS.append((name, False))
    if len(got) != len(base_bytes):
        print("FAIL %s: %d bytes, baseline %d" % (name, len(got), len(base_bytes)))
        return
    a = np.frombuffer(base_bytes, dtype="<f4").reshape(-1, V)
    b = np.frombuffer(got, dtype="<f4").reshape(-1, V)
    diff_rows = np.nonzero((a.view(np.uint32) != b.view(np.uint32)).any(1))[0]
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    rel = np.linalg.norm(a.astype(np.float64) - b, axis=1) / np.linalg.norm(a.astype(np.float64), axis=1)
    print("FAIL %s: %d rows differ (first %d, rows %s...), max |diff| %.3e, max row rel %.3e"
          % (name, len(diff_rows), diff_rows[0], list(diff_rows[:8]), d.max(), rel.max()))


def main(argv):
    keep = "--keep" in argv
    exe = os.environ.get("RINGLM") or os.path.join(ROOT, "build", "ringlm")
    root = os.path.join(os.environ.get("RL_TEST_TMP") or "/tmp/rl_test", "invariance")
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        print("ringlm binary not found at %s (set RINGLM)" % exe)
        print("0 passed, 1 failed")
        return 1
    os.makedirs(root, exist_ok=True)
    t0 = time.time()
    for ci, (name, cfg, opts) in enumerate(CONFIGS):
        print("== %s" % name, flush=True)
        d = os.path.join(root, name)
        shutil.rmtree(d, ignore_errors=True)
        cfgp = os.path.join(root, name + ".config.json")
        with open(cfgp, "w") as f:
            json.dump(cfg, f, indent=1)
        V = cfg["vocab_size"]
        rng = random.Random(500 + ci)
        ids = [rng.randrange(V) for _ in range(N)]
        try:
            cmd = [exe, "mkmodel", "--config", cfgp, "-o", d, "--seed", str(77 + ci),
                   "--dtype", opts.get("dtype", "bf16"), "--router-dtype", opts.get("router_dtype", "f32")]
            if opts.get("shards", 1) > 1:
                cmd += ["--shards", str(opts["shards"])]
            run(cmd)
            basep = os.path.join(root, name + ".whole.f32")
            run([exe, "logits", "-m", d, "--ids", csv(ids), "--out", basep])
            with open(basep, "rb") as f:
                base_bytes = f.read()
            if len(base_bytes) != 4 * N * V:
                raise RuntimeError("baseline has %d bytes, expected %d" % (len(base_bytes), 4 * N * V))
        except Exception as e:  # noqa: BLE001
            RESULTS.append((name + " setup", False))
            print("FAIL %s setup: %s" % (name, e))
            continue

        # the invariant output must also be the right one (SPEC; tolerance as in test_logits)
        try:
            r = ring_ref.logits(d, ids).numpy()
            c = np.frombuffer(base_bytes, dtype="<f4").reshape(N, V).astype(np.float64)
            err = float(np.max(np.linalg.norm(c - r, axis=1) / np.linalg.norm(r, axis=1)))
            ok = err < 1e-3
        except Exception as e:  # noqa: BLE001
            err, ok = float("nan"), False
            print("  reference failed: %s" % e)
        RESULTS.append((name + " whole vs reference", ok))
        print("%-4s %s: whole sequence vs float64 reference, max row rel %.2e"
              % ("ok" if ok else "FAIL", name, err))

        comp_short = [[5, 9, 2, 7], [3, 3, 8]]
        comp_mixed = [[rng.randrange(V) for _ in range(40)], [rng.randrange(V) for _ in range(N)],
                      [rng.randrange(V) for _ in range(97)]]
        comp_long = [[rng.randrange(V) for _ in range(N + 37)]]
        variants = [("steps [%d] explicit" % N, ["--steps", str(N)])]
        for s in range(4):
            sp = random_split(N, random.Random(1000 * ci + s))
            variants.append(("steps seed %d %s" % (s, csv(sp) if len(sp) < 14 else csv(sp[:13]) + ",..."),
                             ["--steps", csv(sp)]))
        variants.append(("steps 7,1,1,64,30,...", ["--steps", csv([7, 1, 1, 64, 30] + [1] * (N - 103))]))
        variants.append(("token by token", ["--steps", csv([1] * N)]))
        for p in (1, 63, 64, 65, 128):
            variants.append(("prefill %d then decode" % p, ["--steps", csv([p] + [1] * (N - p))]))
        variants.append(("companions 5,9,2,7 + 3,3,8",
                         sum((["--companion", csv(c)] for c in comp_short), [])))
        sp = random_split(N, random.Random(99 + ci))
        variants.append(("companions (40,%d,97 tokens) + random steps" % N,
                         sum((["--companion", csv(c)] for c in comp_mixed), []) + ["--steps", csv(sp)]))
        variants.append(("companions + token by token",
                         sum((["--companion", csv(c)] for c in comp_mixed), []) + ["--steps", csv([1] * N)]))
        variants.append(("companion longer than main (%d tokens)" % (N + 37),
                         ["--companion", csv(comp_long[0])]))
        variants.append(("-t 1", ["-t", "1"]))
        variants.append(("-t 2", ["-t", "2"]))
        variants.append(("-t 2 + random steps + companions",
                         ["-t", "2", "--steps", csv(sp)] +
                         sum((["--companion", csv(c)] for c in comp_mixed), [])))
        variants.append(("-t 1 token by token", ["-t", "1", "--steps", csv([1] * N)]))
        # the CPU backend's packed weight layout must not change a bit
        variants.append(("weights as stored (RINGLM_NO_PACK=1) + random steps",
                         ["--steps", csv(sp)], {"RINGLM_NO_PACK": "1"}))
        for vi, variant in enumerate(variants):
            vname, extra = variant[0], variant[1]
            venv = variant[2] if len(variant) > 2 else None
            out = os.path.join(root, "%s.v%d.f32" % (name, vi))
            label = "%s: %s" % (name, vname)
            try:
                run([exe, "logits", "-m", d, "--ids", csv(ids), "--out", out] + extra, venv)
            except Exception as e:  # noqa: BLE001
                RESULTS.append((label, False))
                print("FAIL %s: %s" % (label, e))
                continue
            compare(label, base_bytes, out, V)
        if not keep:
            shutil.rmtree(d, ignore_errors=True)
    npass = sum(ok for _, ok in RESULTS)
    nfail = len(RESULTS) - npass
    print("(%.1fs)" % (time.time() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
