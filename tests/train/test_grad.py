#!/usr/bin/python3
"""Gradient test: `ringlm grad` vs the float64 autograd of the independent reference
(tests/reference/ring_ref.py grads()).

For each config of a table of tiny random checkpoints (f32 weights, so the comparison is about the
math; one bf16 case):
  $RINGLM mkmodel --config CFG.json -o DIR --seed S --dtype D
  $RINGLM grad -m DIR --ids <random ids> --out G.safetensors
and for every parameter tensor  ||g - g_ref|| / ||g_ref|| < 1e-4  (tensors the reference leaves at
zero, e.g. unselected experts, must be exactly zero). The set of names must match the reference's.
The smallest routing margin is reported (a near-tie could let fp32 and float64 pick other experts).
Every case also runs with --recompute on (activations recomputed layer by layer in the backward):
the gradient file must be byte-identical to --recompute off's. One case also runs with -t 1 and
-t 3 (with recompute): byte-identical to the default thread count.

Env: RINGLM (default build/ringlm), RL_TEST_TMP (default /tmp/rl_test).
Args: optional case names (substring match). Ends with "N passed, N failed".
"""
import os
import random
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import ring_ref  # noqa: E402
from test_logits import base, dense, make_model, run, ringlm_bin, tmp_root  # noqa: E402

TOL = 1e-4

# name, config, sequence length, mkmodel options
CASES = [
    # dense MLPs, both layer kinds (layers 0,1 Lightning, 2 softmax), 3 chunks of 64
    ("dense_hybrid_150", dense(num_hidden_layers=3, layer_group_size=3, vocab_size=300), 150,
     {"dtype": "f32"}),
    # MoE with group-limited routing, a shared expert, GQA 8:2, dense first layer
    ("moe_gqa4_shared_150", base(num_hidden_layers=3, layer_group_size=3, vocab_size=300), 150,
     {"dtype": "f32"}),
    # tied embeddings, two shared experts, GQA 8:4, SiLU on Lightning qkv, hf decay convention
    ("tied_sh2_silu_hf", base(tie_word_embeddings=True, num_shared_experts=2, num_key_value_heads=4,
                              num_hidden_layers=4, layer_group_size=2, linear_silu=True,
                              ringlm_decay_convention="hf", vocab_size=256), 100, {"dtype": "f32"}),
    # no QK-norm, full rotary, top-2 of 8 without groups, no shared expert, large eps
    ("noqk_rot1_top2", base(use_qk_norm=False, partial_rotary_factor=1.0, num_experts=8,
                            num_experts_per_tok=2, n_group=1, topk_group=1, num_shared_experts=0,
                            first_k_dense_replace=0, rms_norm_eps=0.1, num_hidden_layers=3,
                            layer_group_size=3, vocab_size=200), 130, {"dtype": "f32"}),
    # GQA 6:2, head_dim 16, groups of 3 heads; top-1 without normalization
    ("h6kv2_top1", base(hidden_size=48, num_attention_heads=6, num_key_value_heads=2, head_dim=16,
                        group_norm_size=2, num_experts=8, num_experts_per_tok=1, norm_topk_prob=False,
                        n_group=1, topk_group=1, routed_scaling_factor=1.0, num_hidden_layers=4,
                        layer_group_size=2, vocab_size=200), 70, {"dtype": "f32"}),
    # bf16 weights (the gradient is w.r.t. the stored bf16 values, in fp32)
    ("bf16_moe", base(num_hidden_layers=2, layer_group_size=2, vocab_size=256), 80, {"dtype": "bf16"}),
]


def same_bytes(a, b):
    with open(a, "rb") as f1, open(b, "rb") as f2:
        return f1.read() == f2.read()


def rel(c, r):
    nr = float(np.linalg.norm(r))
    nd = float(np.linalg.norm(c - r))
    if nr == 0.0:
        return 0.0 if nd == 0.0 else float("inf")
    return nd / nr


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    exe = ringlm_bin()
    root = os.path.join(tmp_root(), "grad")
    os.makedirs(root, exist_ok=True)
    passed = failed = 0
    for ci, (name, cfg, n, opts) in enumerate(CASES):
        if args and not any(a in name for a in args):
            continue
        t0 = time.time()
        try:
            d = make_model(exe, name, cfg, 1000 + ci, opts, root)
            rnd = random.Random(ci)
            ids = [rnd.randrange(cfg["vocab_size"]) for _ in range(n)]
            out = os.path.join(root, name + ".grad.safetensors")
            p = run([exe, "grad", "-m", d, "--ids", ",".join(map(str, ids)), "--out", out,
                     "--recompute", "off"])
            closs = float(p.stdout.split()[-1])
            cg = {k: v.numpy() for k, (v, _) in ring_ref.read_safetensors(out).items()}
            rloss, rg, margin = ring_ref.grads(d, ids)
            problems = []
            if set(cg) != set(rg):
                problems.append("names differ: only C %s, only ref %s" % (
                    sorted(set(cg) - set(rg))[:4], sorted(set(rg) - set(cg))[:4]))
            worst, wname = 0.0, ""
            for k in sorted(set(cg) & set(rg)):
                r = rg[k].numpy()
                if cg[k].shape != r.shape:
                    problems.append("%s: shape %s vs %s" % (k, cg[k].shape, r.shape))
                    continue
                e = rel(cg[k].astype(np.float64), r)
                if not e <= worst:
                    worst, wname = e, k
                if not e < TOL:
                    problems.append("%s: rel err %.2e" % (k, e))
            lerr = abs(closs - rloss) / abs(rloss)
            if not lerr < 1e-5:
                problems.append("loss %.9g vs ref %.9g" % (closs, rloss))
            detail = "%d tensors, worst %.1e (%s), loss %.6f (ref %.6f)" % (
                len(cg), worst, wname, closs, rloss)
            if margin < float("inf"):
                detail += ", route_margin %.1e" % margin
                if margin < 1e-6:
                    detail += " (NEAR-TIE)"
            # recomputation reruns the forward's own code: the same gradients, bitwise
            outr = os.path.join(root, name + ".rc.grad.safetensors")
            run([exe, "grad", "-m", d, "--ids", ",".join(map(str, ids)), "--out", outr,
                 "--recompute", "on"])
            if not same_bytes(out, outr):
                problems.append("gradients with --recompute on differ from --recompute off")
            else:
                detail += ", recompute bitwise equal"
            if ci == 1:
                # the backward splits outputs, never reductions, across threads: bitwise equal
                for t, rc in (("1", "off"), ("3", "on")):
                    out1 = os.path.join(root, name + ".t%s.grad.safetensors" % t)
                    run([exe, "grad", "-m", d, "--ids", ",".join(map(str, ids)), "--out", out1,
                         "-t", t, "--recompute", rc])
                    if not same_bytes(out, out1):
                        problems.append("gradients with -t %s differ from the default thread count" % t)
                detail += ", -t 1/3 bitwise equal" if not problems else ""
            ok = not problems
        except Exception as ex:  # noqa: BLE001
            ok, detail = False, "exception: %s" % ex
            problems = []
        print("%s %-22s %s [%.1fs]" % ("PASS" if ok else "FAIL", name, detail, time.time() - t0))
        for pr in problems[:8]:
            print("      " + pr)
        sys.stdout.flush()
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
