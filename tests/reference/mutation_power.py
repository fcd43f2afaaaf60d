#!/usr/bin/python3
"""How much power does test_logits.py have?  Re-runs the reference with one deliberate SPEC violation
at a time (a "mutant") against the ringlm outputs that `test_logits.py --keep` left behind, and
prints, per mutant, the largest per-row relative error over the table and which configs catch it
(error > 1e-3).  A mutant no config catches is a blind spot of the table.

usage: RL_TEST_TMP=... test_logits.py --keep ; RL_TEST_TMP=... mutation_power.py [mutant names]
"""
import math
import os
import random
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ring_ref as R  # noqa: E402
import test_logits as TL  # noqa: E402

F64 = torch.float64
ORIG = {k: getattr(R, k) for k in ("rope", "decay_factor", "alibi_slopes", "route", "moe",
                                    "lightning_recurrence", "linear_attention", "softmax_attention",
                                    "rms_norm")}


def rope_interleaved(x, pos, rotary_dim, theta):
    if rotary_dim == 0:
        return x
    half = rotary_dim // 2
    j = torch.arange(half, dtype=F64)
    ang = pos.to(F64)[:, None] * theta ** (-2.0 * j / rotary_dim)[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    y = x.clone()
    a, b = x[..., 0:rotary_dim:2], x[..., 1:rotary_dim:2]
    y[..., 0:rotary_dim:2] = a * cos - b * sin
    y[..., 1:rotary_dim:2] = b * cos + a * sin
    return y


def patch_cfg_attr(attr, fn):
    """Mutate a Config attribute after parsing."""
    orig_init = R.Config.__init__

    def init(self, d, conv=None):
        orig_init(self, d, conv)
        setattr(self, attr, fn(self))
    return ("Config.__init__", init, orig_init)


def with_gn(groups_fn):
    def la(cfg, W, pre, l, a, pos):
        g = cfg.group_norm_size
        cfg.group_norm_size = groups_fn(cfg)
        try:
            return ORIG["linear_attention"](cfg, W, pre, l, a, pos)
        finally:
            cfg.group_norm_size = g
    return la


def moe_variant(bias_in_weights=False, literal_norm=False, no_scale=False, no_shared=False):
    def moe(cfg, W, pre, x):
        E = cfg.num_experts
        sigma = torch.sigmoid(x @ W[pre + "gate.weight"].T)
        bias = W.get(pre + "gate.expert_bias", torch.zeros(E, dtype=F64))
        n = x.shape[0]
        wts = torch.zeros(n, E, dtype=F64)
        for t in range(n):
            chosen, _ = R.route(sigma[t], bias, cfg.n_group, cfg.topk_group, cfg.num_experts_per_tok)
            s = sigma[t, chosen] + (bias[chosen] if bias_in_weights else 0)
            if (cfg.norm_topk_prob if literal_norm else cfg.num_experts_per_tok > 1):
                s = s / (s.sum() + 1e-20)
            wts[t, chosen] = s * (1.0 if no_scale else cfg.routed_scaling_factor)
        y = torch.zeros_like(x)
        for e in range(E):
            p = pre + "experts.%d." % e
            y += wts[:, e:e + 1] * R.swiglu(x, W[p + "gate_proj.weight"], W[p + "up_proj.weight"],
                                            W[p + "down_proj.weight"])
        if cfg.num_shared_experts > 0 and not no_shared:
            p = pre + "shared_experts."
            y = y + R.swiglu(x, W[p + "gate_proj.weight"], W[p + "up_proj.weight"], W[p + "down_proj.weight"])
        return y
    return moe


def route_maxgroup(sigma, bias, n_group, topk_group, top_k):
    E = sigma.shape[0]
    b = (sigma + bias).tolist()
    gs = E // n_group
    gscore = [max(b[g * gs:(g + 1) * gs]) for g in range(n_group)]
    kept = sorted(sorted(range(n_group), key=lambda i: (-gscore[i], i))[:topk_group])
    cand = [e for g in kept for e in range(g * gs, (g + 1) * gs)]
    return sorted(cand, key=lambda e: (-b[e], e))[:top_k], float("inf")


def route_nogroups(sigma, bias, n_group, topk_group, top_k):
    return ORIG["route"](sigma, bias, 1, 1, top_k)


def recurrence_exclusive(q, k, v, g, scale):
    n, H, D = q.shape
    lam = torch.exp(g)[:, None, None]
    S = torch.zeros(H, D, v.shape[2], dtype=F64)
    out = torch.empty(n, H, v.shape[2], dtype=F64)
    for t in range(n):
        out[t] = scale * torch.einsum("hd,hde->he", q[t], S)
        S = lam * S + k[t][:, :, None] * v[t][:, None, :]
    return out


def slopes_naive(n):
    r = 2.0 ** (-8.0 / n)
    return [r ** (i + 1) for i in range(n)]


def softmax_gqa_modulo(cfg, W, pre, a, pos):
    # query head h uses kv head h % Hkv (wrong) instead of h // (H/Hkv)
    H, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    if H == Hkv:
        return ORIG["softmax_attention"](cfg, W, pre, a, pos)
    orig_arange = torch.arange

    def ar(*args, **kw):
        t = orig_arange(*args, **kw)
        if len(args) == 1 and args[0] == H and not kw:
            return t * 0 + (orig_arange(H) % Hkv) * (H // Hkv)
        return t
    torch.arange = ar
    try:
        return ORIG["softmax_attention"](cfg, W, pre, a, pos)
    finally:
        torch.arange = orig_arange


MUTANTS = {
    "decay_convention_swapped": [("decay_factor", lambda l, L, c: ORIG["decay_factor"](
        l, L, "hf" if c == "engine" else "engine"))],
    "decay_hf_clamped_l0": [("decay_factor", lambda l, L, c: ORIG["decay_factor"](
        max(l, 1) if c == "hf" else l, L, c))],
    "decay_no_layer_factor": [("decay_factor", lambda l, L, c: 1.0)],
    "slopes_naive_non_pow2": [("alibi_slopes", slopes_naive)],
    "rope_interleaved": [("rope", rope_interleaved)],
    "rope_full_dim": [("rope", lambda x, pos, R_, th: ORIG["rope"](x, pos, x.shape[-1], th))],
    "rope_none": [("rope", lambda x, pos, R_, th: x)],
    "groupnorm_per_head": [("linear_attention", with_gn(lambda c: c.num_attention_heads))],
    "groupnorm_one_group": [("linear_attention", with_gn(lambda c: 1))],
    "lightning_exclusive": [("lightning_recurrence", recurrence_exclusive)],
    "lightning_no_scale": [("lightning_recurrence", lambda q, k, v, g, s: ORIG["lightning_recurrence"](
        q, k, v, g, 1.0))],
    "moe_bias_in_weights": [("moe", moe_variant(bias_in_weights=True))],
    "moe_literal_norm_topk_prob": [("moe", moe_variant(literal_norm=True))],
    "moe_no_routed_scaling": [("moe", moe_variant(no_scale=True))],
    "moe_no_shared": [("moe", moe_variant(no_shared=True))],
    "route_group_max": [("route", route_maxgroup)],
    "route_no_groups": [("route", route_nogroups)],
    "gqa_modulo_mapping": [("softmax_attention", softmax_gqa_modulo)],
}

CFG_MUTANTS = {
    "schedule_no_tail_rule": lambda c: None,  # handled below
    "first_k_dense_off_by_one": lambda c: None,
}


def main(argv):
    root = os.path.join(TL.tmp_root(), "logits")
    sel = [a for a in argv if not a.startswith("--")]
    cases = []
    for i, (name, cfg, n, opts) in enumerate(TL.CASES):
        d = os.path.join(root, name)
        out = os.path.join(root, name + ".f32")
        if not (os.path.isdir(d) and os.path.exists(out)):
            continue
        rng = random.Random(1000 + i)
        ids = [rng.randrange(cfg["vocab_size"]) for _ in range(n)]
        c = np.fromfile(out, dtype="<f4").reshape(n, cfg["vocab_size"]).astype(np.float64)
        cases.append((name, d, ids, c, opts.get("decay_flag")))
    if not cases:
        print("no kept outputs under %s: run test_logits.py --keep first" % root)
        return 1
    models = {name: R.Model(d, flag) for name, d, _, _, flag in cases}
    names = list(MUTANTS) + ["schedule_no_tail_rule", "first_k_dense_off_by_one"]
    blind = []
    for mname in names:
        if sel and not any(s in mname for s in sel):
            continue
        for k, v in ORIG.items():
            setattr(R, k, v)
        for k, v in MUTANTS.get(mname, []):
            setattr(R, k, v)
        caught, worst = [], 0.0
        for name, d, ids, c, _ in cases:
            m = models[name]
            saved = (R.Config.is_softmax, R.Config.is_moe)
            if mname == "schedule_no_tail_rule":
                R.Config.is_softmax = lambda self, l: (l + 1) % self.layer_group_size == 0
            if mname == "first_k_dense_off_by_one":
                R.Config.is_moe = lambda self, l: self.num_experts > 0 and l > self.first_k_dense_replace
            try:
                r = m.forward(ids).numpy()
                e = float(np.max(np.linalg.norm(c - r, axis=1) / np.linalg.norm(r, axis=1)))
            except Exception as ex:  # noqa: BLE001  (a mutant may not fit a config's shapes)
                e = float("inf")
            finally:
                R.Config.is_softmax, R.Config.is_moe = saved
            worst = max(worst, e)
            if e > TL.TOL:
                caught.append("%s(%.0e)" % (name, e))
        for k, v in ORIG.items():
            setattr(R, k, v)
        print("%-28s max %.2e caught by %d: %s" % (mname, worst, len(caught), " ".join(caught)), flush=True)
        if not caught:
            blind.append(mname)
    print("blind spots: %s" % (", ".join(blind) or "none"))
    return 1 if blind else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
