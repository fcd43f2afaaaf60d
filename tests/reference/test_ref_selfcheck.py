#!/usr/bin/python3
"""Self-checks of the float64 reference (tests/reference/ring_ref.py); needs no ringlm binary.

- the Lightning recurrence equals an independently written chunked form (C = 16, 64) to 1e-12;
- group top-k routing picks the lower index on exact ties (experts and groups);
- RoPE rotates the pairs (j, j + R/2) (NeoX), partial rotary leaves the tail untouched;
- ALiBi slopes / decay factors / layer schedule reproduce the numbers quoted in SPEC.md;
- the safetensors reader round-trips BF16/F16/F32/F8_E4M3 (+ block scales) and sharded checkpoints;
- a random model is causal (logits of a prefix == the first rows of the full sequence).
Ends with "N passed, N failed"; exits non-zero on failure.
"""
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ring_ref as R  # noqa: E402

F64 = torch.float64

# ------------------------------------------------------------------------------------------------
# a tiny safetensors writer (test-only) to build checkpoints without the ringlm binary


def _encode(t, dtype):
    a = t.detach().cpu().numpy()
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "F64":
        return a.astype("<f8").tobytes()
    if dtype == "BF16":
        u = a.astype(np.float32).view(np.uint32)
        # round to nearest even
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
        return u.tobytes()
    if dtype == "F8_E4M3":
        tab = R._fp8_e4m3_table()
        finite = np.where(np.isnan(tab), np.inf, tab)
        idx = np.abs(a.reshape(-1, 1) - finite[None, :]).argmin(1).astype(np.uint8)
        return idx.tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: {name: (tensor, dtype)}"""
    header, blobs, off = {}, [], 0
    for name, (t, dt) in tensors.items():
        b = _encode(t, dt)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def random_tensors(cfg, seed):
    """Random weights for a config dict (float64 tensors)."""
    g = torch.Generator().manual_seed(seed)
    c = R.Config(cfg)
    H, Hkv, D, hid = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.hidden_size
    T = {}

    def lin(o, i):
        return torch.randn(o, i, generator=g, dtype=F64) / math.sqrt(i)

    def nrm(n):
        return 1.0 + 0.1 * torch.randn(n, generator=g, dtype=F64)

    T["model.word_embeddings.weight"] = torch.randn(c.vocab_size, hid, generator=g, dtype=F64)
    T["model.norm.weight"] = nrm(hid)
    if not c.tie_word_embeddings:
        T["lm_head.weight"] = lin(c.vocab_size, hid)
    for l in range(c.num_hidden_layers):
        p = "model.layers.%d." % l
        T[p + "input_layernorm.weight"] = nrm(hid)
        T[p + "post_attention_layernorm.weight"] = nrm(hid)
        a = p + "attention."
        if c.is_softmax(l):
            T[a + "query_key_value.weight"] = lin((H + 2 * Hkv) * D, hid)
        else:
            T[a + "query_key_value.weight"] = lin(3 * H * D, hid)
            T[a + "g_proj.weight"] = lin(H * D, hid)
            T[a + "g_norm.weight"] = nrm(H * D)
        T[a + "query_layernorm.weight"] = nrm(D)
        T[a + "key_layernorm.weight"] = nrm(D)
        T[a + "dense.weight"] = lin(hid, H * D)
        m = p + "mlp."
        if c.is_moe(l):
            I = c.moe_intermediate_size
            T[m + "gate.weight"] = lin(c.num_experts, hid)
            T[m + "gate.expert_bias"] = 0.1 * torch.randn(c.num_experts, generator=g, dtype=F64)
            for e in range(c.num_experts):
                T[m + "experts.%d.gate_proj.weight" % e] = lin(I, hid)
                T[m + "experts.%d.up_proj.weight" % e] = lin(I, hid)
                T[m + "experts.%d.down_proj.weight" % e] = lin(hid, I)
            if c.num_shared_experts:
                Is = c.moe_shared_expert_intermediate_size * c.num_shared_experts
                T[m + "shared_experts.gate_proj.weight"] = lin(Is, hid)
                T[m + "shared_experts.up_proj.weight"] = lin(Is, hid)
                T[m + "shared_experts.down_proj.weight"] = lin(hid, Is)
        else:
            I = c.intermediate_size
            T[m + "gate_proj.weight"] = lin(I, hid)
            T[m + "up_proj.weight"] = lin(I, hid)
            T[m + "down_proj.weight"] = lin(hid, I)
    return T


def write_checkpoint(d, cfg, tensors, dtype="F32", shards=1):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    names = list(tensors)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"),
                          {k: (tensors[k], "F32" if k.endswith("expert_bias") else dtype) for k in names})
        return
    wm = {}
    for s in range(shards):
        fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        part = names[s::shards]
        write_safetensors(os.path.join(d, fn), {k: (tensors[k], dtype) for k in part})
        for k in part:
            wm[k] = fn
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)


# ------------------------------------------------------------------------------------------------
# checks

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print("%-4s %s %s" % ("ok" if ok else "FAIL", name, detail))


def chunked_lightning(q, k, v, g, scale, C):
    """SPEC §3.5.2 chunked form, written independently of the recurrence; vectorized over heads."""
    n, H, D = q.shape
    Dv = v.shape[2]
    S = torch.zeros(H, D, Dv, dtype=F64)
    out = torch.empty(n, H, Dv, dtype=F64)
    gg = g[:, None, None]
    for c0 in range(0, n, C):
        b = min(C, n - c0)
        Q = q[c0:c0 + b].transpose(0, 1)  # [H, b, D]
        K = k[c0:c0 + b].transpose(0, 1)
        V = v[c0:c0 + b].transpose(0, 1)
        i = torch.arange(b, dtype=F64)
        diff = i[:, None] - i[None, :]
        causal = diff >= 0
        M = torch.where(causal[None], torch.exp(gg * diff.clamp(min=0)[None]), torch.zeros(1, dtype=F64))
        intra = scale * ((Q @ K.transpose(1, 2)) * M) @ V
        inter = scale * torch.exp(gg * (i[None, :, None] + 1)) * (Q @ S)
        out[c0:c0 + b] = (intra + inter).transpose(0, 1)
        wk = torch.exp(gg * (b - 1 - i)[None, :, None])  # [H, b, 1]
        S = torch.exp(g * b)[:, None, None] * S + (K * wk).transpose(1, 2) @ V
    return out


def test_chunked_equals_recurrence():
    torch.manual_seed(0)
    for n in (1, 15, 16, 17, 63, 64, 65, 200):
        H, D = 6, 16
        q = torch.randn(n, H, D, dtype=F64)
        k = torch.randn(n, H, D, dtype=F64)
        v = torch.randn(n, H, D, dtype=F64)
        s = torch.tensor(R.alibi_slopes(H), dtype=F64)
        g = -s * 1.0526  # includes the fastest decay of SPEC (~0.475)
        g[0] = -8.0  # and a very fast one
        rec = R.lightning_recurrence(q, k, v, g, D ** -0.5)
        # brute force closed form o_t = scale * sum_{s<=t} lambda^{t-s} (q_t.k_s) v_s
        t_ = torch.arange(n, dtype=F64)
        dif = t_[:, None] - t_[None, :]
        Mf = torch.where(dif >= 0, torch.exp(g[:, None, None] * dif.clamp(min=0)), torch.zeros(1, dtype=F64))
        closed = (D ** -0.5) * torch.einsum("hts,tshd->thd",
                                            Mf * torch.einsum("thd,shd->hts", q, k),
                                            v[None].expand(n, n, H, D))
        scale_ref = rec.abs().max().item()
        e0 = (rec - closed).abs().max().item() / scale_ref
        check("recurrence == closed form n=%d" % n, e0 < 1e-12, "rel %.2e" % e0)
        for C in (16, 64):
            ch = chunked_lightning(q, k, v, g, D ** -0.5, C)
            e = (rec - ch).abs().max().item() / scale_ref
            check("recurrence == chunked C=%d n=%d" % (C, n), e < 1e-12, "rel %.2e" % e)


def test_routing_ties():
    E = 16
    # exact tie between experts 3 and 9 for the last slot of top-2 in one group
    sigma = torch.full((E,), 0.1, dtype=F64)
    bias = torch.zeros(E, dtype=F64)
    sigma[5] = 0.9
    sigma[3] = 0.5
    sigma[9] = 0.5
    chosen, margin = R.route(sigma, bias, 1, 1, 2)
    check("expert tie -> lower index", chosen == [5, 3] and margin == 0.0, str(chosen))
    # tie decided with the bias: sigma differs but sigma+bias equal (values exact in binary)
    sigma = torch.full((E,), 0.25, dtype=F64)
    bias = torch.zeros(E, dtype=F64)
    sigma[12], bias[12] = 0.5, 0.25
    sigma[7], bias[7] = 0.75, 0.0
    chosen, _ = R.route(sigma, bias, 1, 1, 1)
    check("biased-score tie -> lower index", chosen == [7], str(chosen))
    # group tie: 4 groups of 4; groups 1 and 3 have equal top-2 sums, keep 1 group
    sigma = torch.full((E,), 0.125, dtype=F64)
    bias = torch.zeros(E, dtype=F64)
    sigma[4], sigma[6] = 0.5, 0.25       # group 1: 0.75
    sigma[13], sigma[15] = 0.375, 0.375  # group 3: 0.75
    chosen, _ = R.route(sigma, bias, 4, 1, 2)
    check("group tie -> lower group", chosen == [4, 6], str(chosen))
    # group score is the sum of the TOP-2 only: group 0 has three 0.3 (sum of all = 0.9) but top-2
    # sum 0.6 < group 2's 0.7
    sigma = torch.full((E,), 0.0, dtype=F64)
    sigma[0] = sigma[1] = sigma[2] = 0.3
    sigma[8], sigma[9] = 0.6, 0.1
    chosen, _ = R.route(sigma, bias, 4, 1, 2)
    check("group score = sum of top-2", chosen == [8, 9], str(chosen))
    # bias for selection only: weights come from the unbiased sigma
    cfg = {"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1,
           "layer_group_size": 2, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 2,
           "routed_scaling_factor": 2.5, "n_group": 2, "topk_group": 1}
    c = R.Config(cfg)
    W = {"gate.weight": torch.zeros(4, 4, dtype=F64), "gate.expert_bias": torch.tensor([0, 0, 1.0, 0.5], dtype=F64)}
    for e in range(4):
        W["experts.%d.gate_proj.weight" % e] = torch.eye(2, 4, dtype=F64)
        W["experts.%d.up_proj.weight" % e] = torch.eye(2, 4, dtype=F64) * (e + 1)
        W["experts.%d.down_proj.weight" % e] = torch.eye(4, 2, dtype=F64)
    x = torch.tensor([[1.0, 2.0, 0.0, 0.0]], dtype=F64)
    y = R.moe(c, W, "", x)
    # sigma = 0.5 everywhere; group 1 (experts 2,3) chosen; weights 0.5/(1.0)*2.5 = 1.25 each
    ex = lambda e: R.swiglu(x, W["experts.%d.gate_proj.weight" % e], W["experts.%d.up_proj.weight" % e],
                             W["experts.%d.down_proj.weight" % e])
    want = 1.25 * ex(2) + 1.25 * ex(3)
    check("bias selects, sigma weighs, scaling applied", torch.allclose(y, want, rtol=0, atol=1e-15))


def test_rope_pairs():
    D, Rd = 16, 8
    x = torch.zeros(1, 1, D, dtype=F64)
    pos = torch.tensor([3])
    ok = True
    for j in range(Rd // 2):
        xx = x.clone()
        xx[0, 0, j] = 1.0
        y = R.rope(xx, pos, Rd, 10000.0)
        th = 3 * 10000.0 ** (-2.0 * j / Rd)
        nz = set(torch.nonzero(y[0, 0].abs() > 1e-15).flatten().tolist())
        ok &= nz <= {j, j + Rd // 2}
        ok &= abs(y[0, 0, j].item() - math.cos(th)) < 1e-15
        ok &= abs(y[0, 0, j + Rd // 2].item() - math.sin(th)) < 1e-15
        xx = x.clone()
        xx[0, 0, j + Rd // 2] = 1.0
        y = R.rope(xx, pos, Rd, 10000.0)
        ok &= abs(y[0, 0, j].item() + math.sin(th)) < 1e-15
        ok &= abs(y[0, 0, j + Rd // 2].item() - math.cos(th)) < 1e-15
    xx = torch.randn(1, 1, D, dtype=F64)
    y = R.rope(xx, pos, Rd, 10000.0)
    ok &= torch.equal(y[..., Rd:], xx[..., Rd:])
    y0 = R.rope(xx, torch.tensor([0]), Rd, 10000.0)
    ok &= torch.equal(y0, xx)
    check("RoPE rotates (j, j+R/2), tail untouched, p=0 identity", ok)


def test_spec_numbers():
    s16 = R.alibi_slopes(16)
    ok = abs(s16[0] - 0.707107) < 1e-6 and abs(s16[1] - 0.5) < 1e-12 and abs(s16[-1] - 2 ** -8) < 1e-15
    s32 = R.alibi_slopes(32)
    ok &= abs(s32[0] - 0.840896) < 1e-6 and abs(s32[-1] - 2 ** -8) < 1e-15
    s8 = R.alibi_slopes(8)
    s6 = R.alibi_slopes(6)  # slopes(4) + even-indexed entries of slopes(8), first 2
    s4 = R.alibi_slopes(4)
    ok &= s6 == s4 + [s8[0], s8[2]]
    ok &= R.alibi_slopes(1) == [2 ** -8]
    check("ALiBi slopes (16, 32, 6, 1 heads)", ok, "s6=%s" % ["%.4f" % v for v in s6])
    f = lambda l, L, c: R.decay_factor(l, L, c)
    ok = all(abs(a - b) < 1e-6 for a, b in [
        (f(0, 20, "hf"), 1.052642), (f(0, 20, "engine"), 1.000010), (f(1, 20, "hf"), 1.000010),
        (f(1, 20, "engine"), 0.947378), (f(18, 20, "hf"), 0.105273), (f(18, 20, "engine"), 0.052642),
        (f(0, 32, "hf"), 1.032268), (f(30, 32, "hf"), 0.064526), (f(30, 32, "engine"), 0.032268),
        (f(0, 1, "hf"), 1.00001), (f(0, 1, "engine"), 1.00001)])
    check("decay factors f(l) of SPEC §3.5.1", ok)
    base = {"vocab_size": 8, "hidden_size": 8, "num_attention_heads": 1, "intermediate_size": 8}
    c = R.Config(dict(base, num_hidden_layers=20, layer_group_size=5))
    sm = [l for l in range(20) if c.is_softmax(l)]
    c2 = R.Config(dict(base, num_hidden_layers=32, layer_group_size=8))
    sm2 = [l for l in range(32) if c2.is_softmax(l)]
    c3 = R.Config(dict(base, num_hidden_layers=7, layer_group_size=3))
    sm3 = [l for l in range(7) if c3.is_softmax(l)]
    check("layer schedule (20/5, 32/8, tail 7/3)",
          sm == [4, 9, 14, 19] and sm2 == [7, 15, 23, 31] and sm3 == [2, 5, 6], "%s" % sm3)
    try:
        R.Config({"vocab_size": 8})
        ok = False
    except KeyError as e:
        ok = "hidden_size" in str(e)
    check("missing required key names the key", ok)


def test_reader(tmp):
    torch.manual_seed(1)
    t = torch.randn(5, 7, dtype=F64)
    p = os.path.join(tmp, "x.safetensors")
    write_safetensors(p, {"a": (t, "F32"), "b": (t, "BF16"), "c": (t, "F16"), "d": (t, "F64")})
    r = R.read_safetensors(p)
    ok = torch.equal(r["a"][0], t.float().double())
    ok &= torch.equal(r["c"][0], t.half().double())
    ok &= (r["b"][0] - t).abs().max().item() <= 2 ** -8 * t.abs().max().item()
    ok &= torch.equal(r["d"][0], t)
    ok &= r["b"][1] == "BF16"
    check("safetensors F32/BF16/F16/F64", ok)
    tab = R._fp8_e4m3_table()
    ok = tab[0x38] == 1.0 and tab[0x7E] == 448.0 and tab[0x01] == 2 ** -9 and tab[0xB8] == -1.0 \
        and math.isnan(tab[0x7F])
    check("fp8 e4m3 decode table", ok)
    # fp8 with block scales on a 130x260 matrix (3 column blocks, 2 row blocks)
    w8 = torch.tensor(tab[np.random.RandomState(0).randint(0, 0x7E, size=(130, 260))], dtype=F64)
    sc = torch.tensor([[0.5, 2.0, 4.0], [0.25, 1.0, 8.0]], dtype=F64)
    d = os.path.join(tmp, "fp8")
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"),
                      {"w": (w8, "F8_E4M3"), "w_scale_inv": (sc, "F32")})
    W = R.load_tensors(d)
    want = w8.clone()
    for i in range(130):
        for j in range(260):
            want[i, j] *= sc[i // 128, j // 128]
    check("fp8 block scales", set(W) == {"w"} and torch.equal(W["w"], want))


def tiny_cfg(**kw):
    c = {"vocab_size": 97, "hidden_size": 32, "num_hidden_layers": 5, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 8, "layer_group_size": 3, "intermediate_size": 48,
         "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 16, "num_shared_experts": 1,
         "first_k_dense_replace": 1, "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5,
         "norm_topk_prob": True, "use_qk_norm": True, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
         "partial_rotary_factor": 0.5, "group_norm_size": 2, "tie_word_embeddings": False}
    c.update(kw)
    return c


def test_model(tmp):
    cfg = tiny_cfg()
    T = random_tensors(cfg, 3)
    d1, d3 = os.path.join(tmp, "m1"), os.path.join(tmp, "m3")
    write_checkpoint(d1, cfg, T, "F32", 1)
    write_checkpoint(d3, cfg, T, "F32", 3)
    ids = [int(x) for x in torch.randint(0, 97, (70,), generator=torch.Generator().manual_seed(4))]
    a = R.logits(d1, ids)
    b = R.logits(d3, ids)
    check("sharded == single file", torch.equal(a, b))
    check("logits finite, shape", torch.isfinite(a).all().item() and tuple(a.shape) == (70, 97))
    p = R.logits(d1, ids[:40])
    e = (p - a[:40]).abs().max().item() / a.abs().max().item()
    check("causality: prefix logits == first rows", e < 1e-12, "rel %.1e" % e)
    hf = R.logits(d1, ids, "hf")
    check("decay convention changes the logits", (hf - a).abs().max().item() > 1e-6)
    cfgh = dict(cfg, ringlm_decay_convention="hf")
    dh = os.path.join(tmp, "mh")
    write_checkpoint(dh, cfgh, T, "F32", 1)
    check("config key ringlm_decay_convention", torch.equal(R.logits(dh, ids), hf))
    # tied embeddings use the embedding as LM head
    cfgt = dict(cfg, tie_word_embeddings=True)
    Tt = {k: v for k, v in T.items() if k != "lm_head.weight"}
    dt = os.path.join(tmp, "mt")
    write_checkpoint(dt, cfgt, Tt, "F32", 1)
    m = R.Model(dt)
    h_ok = torch.isfinite(m.forward(ids[:5])).all().item()
    check("tied embeddings", h_ok)
    # CLI writes float32 LE
    out = os.path.join(tmp, "o.f32")
    R.main(["logits", d1, "--ids", ",".join(map(str, ids[:9])), "--out", out])
    got = np.fromfile(out, dtype="<f4").reshape(9, 97)
    check("CLI float32 output", np.array_equal(got, a[:9].numpy().astype(np.float32)))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        test_chunked_equals_recurrence()
        test_routing_ties()
        test_rope_pairs()
        test_spec_numbers()
        test_reader(tmp)
        test_model(tmp)
    npass = sum(ok for _, ok in RESULTS)
    nfail = len(RESULTS) - npass
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
