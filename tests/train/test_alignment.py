#!/usr/bin/python3
"""Alignment test: the trainer's log-probs are the server's, bitwise (DESIGN §2.3-2.4).

For tiny random checkpoints and prompts that end before, at and across Lightning chunk boundaries:
  $RINGLM generate -m DIR --ids PROMPT -n N --ignore-eos [--temp 0 | --seed S ...]
          --ids-out IDS.json --logprobs-out LP.f32
  $RINGLM score -m DIR --ids PROMPT+GENERATED --out SC.f32
and  memcmp(LP, SC[len(PROMPT)-1:]) == 0  for greedy and sampled generations. Generation is also
re-run with other step splits (the prompt extended by the first k generated tokens, so that those
positions are prefilled instead of decoded; and 1 vs 2 threads): its log-probs must equal the same
slice of the score bitwise too.

Env: RINGLM (default build/ringlm), RL_TEST_TMP (default /tmp/rl_test).
Ends with "N passed, N failed".
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from test_logits import base, dense, make_model, run, ringlm_bin, tmp_root  # noqa: E402

MODELS = [
    ("moe_hybrid_bf16", base(num_hidden_layers=4, layer_group_size=2, vocab_size=300), {}),
    ("dense_tied_f32", dense(num_hidden_layers=3, layer_group_size=3, tie_word_embeddings=True,
                             vocab_size=257, linear_silu=True), {"dtype": "f32"}),
]
PROMPT_LENS = [1, 5, 63, 64, 65, 130]
N_GEN = 40
SAMPLED = ["--temp", "0.9", "--top-k", "0", "--top-p", "1", "--min-p", "0"]


def generate(exe, d, root, tag, prompt, extra):
    ids_f = os.path.join(root, tag + ".ids.json")
    lp_f = os.path.join(root, tag + ".lp.f32")
    run([exe, "generate", "-m", d, "--ids", ",".join(map(str, prompt)), "-n", str(N_GEN),
         "--ignore-eos", "--ids-out", ids_f, "--logprobs-out", lp_f] + extra)
    with open(ids_f) as f:
        gen = json.load(f)
    with open(lp_f, "rb") as f:
        lp = f.read()
    return gen, lp


def score(exe, d, root, tag, ids, extra=()):
    out = os.path.join(root, tag + ".score.f32")
    run([exe, "score", "-m", d, "--ids", ",".join(map(str, ids)), "--out", out] + list(extra))
    with open(out, "rb") as f:
        return f.read()


def main():
    exe = ringlm_bin()
    assert N_GEN > 33
    root = os.path.join(tmp_root(), "alignment")
    os.makedirs(root, exist_ok=True)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print("%s %s %s" % ("PASS" if ok else "FAIL", name, detail))
        sys.stdout.flush()
        passed += ok
        failed += not ok

    for mi, (mname, cfg, opts) in enumerate(MODELS):
        d = make_model(exe, mname, cfg, 77 + mi, opts, root)
        rnd = random.Random(mi)
        for P in PROMPT_LENS:
            prompt = [rnd.randrange(cfg["vocab_size"]) for _ in range(P)]
            for mode, extra in (("greedy", ["--temp", "0"]), ("sampled", SAMPLED + ["--seed", str(P)])):
                tag = "%s.p%d.%s" % (mname, P, mode)
                try:
                    gen, lp = generate(exe, d, root, tag, prompt, extra)
                    sc = score(exe, d, root, tag, prompt + gen)
                    want = sc[4 * (P - 1):]
                    ok = len(gen) == N_GEN and lp == want
                    nd = sum(lp[i:i + 4] != want[i:i + 4] for i in range(0, min(len(lp), len(want)), 4))
                    check("%s prompt %d %s" % (mname, P, mode), ok,
                          "" if ok else "(%d of %d log-probs differ)" % (nd, len(gen)))
                    if mode == "greedy":
                        # other step splits: the first k generated tokens prefilled with the prompt
                        kb = (64 - P % 64) % 64  # the new prompt ends at a chunk boundary
                        for k in (1, 17, kb if 0 < kb < N_GEN and kb not in (1, 17) else 33):
                            g2, lp2 = generate(exe, d, root, tag + ".k%d" % k, prompt + gen[:k],
                                               ["--temp", "0", "-n", str(N_GEN - k)])
                            w2 = sc[4 * (P + k - 1):]
                            ok2 = g2 == gen[k:] and lp2 == w2
                            check("%s prompt %d greedy, %d generated tokens prefilled" % (mname, P, k),
                                  ok2)
                    if P == 65:
                        # threads: generation on 1 thread, scoring on 2
                        g3, lp3 = generate(exe, d, root, tag + ".t1", prompt, extra + ["-t", "1"])
                        sc3 = score(exe, d, root, tag + ".t2", prompt + g3, ["-t", "2"])
                        check("%s prompt %d %s, generate -t 1 vs score -t 2" % (mname, P, mode),
                              g3 == gen and lp3 == sc3[4 * (P - 1):] and sc3 == sc)
                except Exception as ex:  # noqa: BLE001
                    check("%s prompt %d %s" % (mname, P, mode), False, "exception: %s" % ex)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
