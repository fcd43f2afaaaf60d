#!/usr/bin/python3
"""Independent float64 PyTorch reference of the Ring-linear-2.0 forward (ringlm SPEC.md).

Written from /work/shared/SPEC.md only (never from the C sources): it is the oracle the C engine is
tested against.  Everything is computed in float64 from the stored weights (SPEC §0.2 says the engine
keeps activations in fp32; here nothing is rounded at all).

Conventions chosen where SPEC is silent (documented here and in the report):
  * Decay factor f(l) (SPEC §0.1 / §3.5.1): "engine" f(l) = 1 - l/(L-1) + 1e-5 (default),
    "hf" f(l) = 1 - (l-1)/(L-1) + 1e-5 (no clamp: layer 0 gets f > 1).  With L == 1 both formulas
    divide by zero; we use f = 1 + 1e-5 (the value both conventions give the layer whose offset is 0).
    (With the tail rule of SPEC §1.3 a one-layer model's only layer is softmax, so this value is never
    used by a forward; it is defined for completeness.)
  * Group top-k: groups are ranked by the sum of their min(2, group size) largest biased scores;
    exact ties between groups and between experts go to the lower index (SPEC §0.3).
  * Routed weights are normalized over the chosen experts (sigma / (sum + 1e-20)) whenever
    top_k > 1, whatever norm_topk_prob says (SPEC §3.7 step 5: HF ignores the flag; with top_k == 1
    the one weight stays sigma), then multiplied by routed_scaling_factor.
  * expert_bias: used if the tensor is present (selection only); absent -> zero bias.
  * linear_silu true: SiLU on the whole qkv vector before the split (SPEC §3.5 step 1).

CLI:  ring_ref.py logits DIR --ids 1,2,3 --out F [--decay-convention engine|hf]
      writes n*vocab float32 little-endian values (row-major [n, vocab]).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

F64 = torch.float64

# ------------------------------------------------------------------------------------------------
# safetensors reader


def _fp8_e4m3_table():
    t = np.zeros(256, dtype=np.float64)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e = (b >> 3) & 0xF
        m = b & 0x7
        if e == 0xF and m == 0x7:
            t[b] = float("nan")
        elif e == 0:
            t[b] = s * (m / 8.0) * 2.0 ** -6
        else:
            t[b] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return t


_FP8_TABLE = None


def _decode(dtype, raw, shape):
    global _FP8_TABLE
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        a = u.view(np.float32).astype(np.float64)
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
    elif dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    elif dtype == "F64":
        a = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    elif dtype == "F8_E4M3":
        if _FP8_TABLE is None:
            _FP8_TABLE = _fp8_e4m3_table()
        a = _FP8_TABLE[np.frombuffer(raw, dtype=np.uint8)]
    elif dtype in ("I8", "U8", "I16", "I32", "I64"):
        npd = {"I8": "<i1", "U8": "<u1", "I16": "<i2", "I32": "<i4", "I64": "<i8"}[dtype]
        a = np.frombuffer(raw, dtype=npd).astype(np.float64)
    else:
        raise ValueError("unsupported safetensors dtype %s" % dtype)
    return torch.from_numpy(a.reshape(shape).copy())


def read_safetensors(path):
    """Returns {name: (float64 tensor, stored dtype string)}."""
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = (_decode(info["dtype"], data[base + b:base + e], info["shape"]), info["dtype"])
    return out


def load_tensors(ckpt_dir):
    """All tensors of a checkpoint dir as float64, fp8 block scales applied."""
    idx = os.path.join(ckpt_dir, "model.safetensors.index.json")
    files = []
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        for fn in wm.values():
            if fn not in files:
                files.append(fn)
    else:
        files = sorted(fn for fn in os.listdir(ckpt_dir) if fn.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError("no .safetensors files in %s" % ckpt_dir)
    raw = {}
    for fn in files:
        for k, v in read_safetensors(os.path.join(ckpt_dir, fn)).items():
            if k in raw:
                raise ValueError("tensor %s appears twice" % k)
            raw[k] = v
    tensors = {}
    for k, (t, dt) in raw.items():
        if k.endswith("_scale_inv"):
            continue
        sk = k + "_scale_inv"
        if sk in raw:
            sc = raw[sk][0]
            rows, cols = t.shape
            assert sc.shape[0] == (rows + 127) // 128 and sc.shape[1] == (cols + 127) // 128, sk
            full = sc.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
            t = t * full
        tensors[k] = t
    return tensors


# ------------------------------------------------------------------------------------------------
# config


def _opt(d, k, default):
    v = d.get(k)
    return default if v is None else v


class Config:
    def __init__(self, d, decay_convention=None):
        def req(k):
            if k not in d:
                raise KeyError("config.json: missing required key '%s'" % k)
            return d[k]

        self.vocab_size = int(req("vocab_size"))
        self.hidden_size = int(req("hidden_size"))
        self.num_hidden_layers = int(req("num_hidden_layers"))
        self.num_attention_heads = int(req("num_attention_heads"))
        self.num_key_value_heads = int(d.get("num_key_value_heads", self.num_attention_heads))
        self.layer_group_size = int(req("layer_group_size"))
        self.head_dim = int(d.get("head_dim") or self.hidden_size // self.num_attention_heads)
        self.num_experts = int(d.get("num_experts") or 0)
        self.num_shared_experts = int(d.get("num_shared_experts") or 0)
        self.first_k_dense_replace = int(d.get("first_k_dense_replace", 0) or 0)
        self.n_group = int(d.get("n_group") or 1)
        self.topk_group = int(d.get("topk_group") or 1)
        rsf = d.get("routed_scaling_factor")
        self.routed_scaling_factor = float(1.0 if rsf is None else rsf)
        ntp = d.get("norm_topk_prob")
        self.norm_topk_prob = True if ntp is None else bool(ntp)
        qn = d.get("use_qk_norm")
        self.use_qk_norm = True if qn is None else bool(qn)
        self.rms_norm_eps = float(_opt(d, "rms_norm_eps", 1e-6))
        self.rope_theta = float(_opt(d, "rope_theta", 10000.0))
        prf = d.get("partial_rotary_factor")
        self.partial_rotary_factor = float(1.0 if prf is None else prf)
        self.group_norm_size = int(d.get("group_norm_size") or 1)
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings") or False)
        self.linear_silu = bool(d.get("linear_silu") or False)
        if self.rope_scaling_present(d):
            raise NotImplementedError("rope_scaling is not supported by the reference")
        if self.num_experts > 0:
            self.moe_intermediate_size = int(req("moe_intermediate_size"))
            self.num_experts_per_tok = int(req("num_experts_per_tok"))
            self.moe_shared_expert_intermediate_size = int(
                d.get("moe_shared_expert_intermediate_size") or self.moe_intermediate_size)
        if any(not self.is_moe(l) for l in range(self.num_hidden_layers)):
            self.intermediate_size = int(req("intermediate_size"))
        conv = decay_convention or d.get("ringlm_decay_convention") or "engine"
        if conv not in ("engine", "hf"):
            raise ValueError("ringlm_decay_convention must be 'engine' or 'hf', got %r" % conv)
        self.decay_convention = conv
        self.rotary_dim = int(self.head_dim * self.partial_rotary_factor)

    @staticmethod
    def rope_scaling_present(d):
        return d.get("rope_scaling") not in (None, {})

    def is_softmax(self, l):
        g = self.layer_group_size
        L = self.num_hidden_layers
        return (l + 1) % g == 0 or l >= (L // g) * g

    def is_moe(self, l):
        return self.num_experts > 0 and l >= self.first_k_dense_replace


# ------------------------------------------------------------------------------------------------
# building blocks


def rms_norm(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def alibi_slopes(n):
    """SPEC §3.5.1: ALiBi slopes (Lightning-Attention-2 recipe), float64."""
    def pow2(m):
        r = 2.0 ** (-(2.0 ** -(math.log2(m) - 3)))
        return [r ** (i + 1) for i in range(m)]
    if n & (n - 1) == 0:
        return pow2(n)
    p = 1 << (n.bit_length() - 1)  # largest power of two < n
    return pow2(p) + pow2(2 * p)[0::2][:n - p]


def decay_factor(l, L, convention):
    if L == 1:
        return 1.0 + 1e-5
    if convention == "engine":
        return 1.0 - l / (L - 1) + 1e-5
    return 1.0 - (l - 1) / (L - 1) + 1e-5


def layer_log_decay(cfg, l):
    """g_{l,h} = -s_h * f(l) for h in 0..H-1 (float64 tensor [H])."""
    s = torch.tensor(alibi_slopes(cfg.num_attention_heads), dtype=F64)
    return -s * decay_factor(l, cfg.num_hidden_layers, cfg.decay_convention)


def rope(x, pos, rotary_dim, theta):
    """Partial NeoX RoPE. x [n, heads, D]; pos [n] absolute positions.  Pairs (j, j + R/2), j < R/2."""
    R = rotary_dim
    if R == 0:
        return x
    half = R // 2
    j = torch.arange(half, dtype=F64)
    inv_freq = theta ** (-2.0 * j / R)
    ang = pos.to(F64)[:, None] * inv_freq[None, :]  # [n, half]
    cos = torch.cos(ang)[:, None, :]
    sin = torch.sin(ang)[:, None, :]
    x1 = x[..., :half]
    x2 = x[..., half:R]
    y = x.clone()
    y[..., :half] = x1 * cos - x2 * sin
    y[..., half:R] = x2 * cos + x1 * sin
    return y


def lightning_recurrence(q, k, v, g, scale):
    """SPEC §3.5 step 6, the plain recurrence.  q,k,v [n, H, D]; g [H] log-decay.
    S_h <- lambda_h S_h + k^T v ; o = scale * q S.  Returns o [n, H, D]."""
    n, H, D = q.shape
    lam = torch.exp(g)[:, None, None]
    S = torch.zeros(H, D, v.shape[2], dtype=F64)
    out = torch.empty(n, H, v.shape[2], dtype=F64)
    for t in range(n):
        S = lam * S + k[t][:, :, None] * v[t][:, None, :]
        out[t] = scale * torch.einsum("hd,hde->he", q[t], S)
    return out


def silu(x):
    return x * torch.sigmoid(x)


def swiglu(x, wg, wu, wd):
    return (silu(x @ wg.T) * (x @ wu.T)) @ wd.T


# routing diagnostics: smallest selection margin seen in the last forward (for near-tie reports)
ROUTING_STATS = {"min_margin": float("inf")}


def route(sigma, bias, n_group, topk_group, top_k):
    """Deterministic group-limited top-k for one token.  sigma, bias: float64 [E].
    Returns the sorted list of chosen expert indices and the selection margin."""
    E = sigma.shape[0]
    b = (sigma + bias).tolist()
    gs = E // n_group
    gscore = []
    for gi in range(n_group):
        vals = sorted(b[gi * gs:(gi + 1) * gs], reverse=True)
        gscore.append(sum(vals[:2]))
    gorder = sorted(range(n_group), key=lambda i: (-gscore[i], i))
    kept = gorder[:topk_group]
    margin = float("inf")
    if topk_group < n_group:
        margin = gscore[gorder[topk_group - 1]] - gscore[gorder[topk_group]]
    cand = [e for gi in sorted(kept) for e in range(gi * gs, (gi + 1) * gs)]
    order = sorted(cand, key=lambda e: (-b[e], e))
    if top_k > len(order):
        raise ValueError("top_k %d exceeds the %d experts of the kept groups" % (top_k, len(order)))
    chosen = order[:top_k]
    if top_k < len(order):
        margin = min(margin, b[order[top_k - 1]] - b[order[top_k]])
    return chosen, margin


def moe(cfg, W, pre, x):
    E = cfg.num_experts
    z = x @ W[pre + "gate.weight"].T  # [n, E]
    sigma = torch.sigmoid(z)
    bias = W.get(pre + "gate.expert_bias")
    if bias is None:
        bias = torch.zeros(E, dtype=F64)
    top_k = cfg.num_experts_per_tok
    n = x.shape[0]
    wts = torch.zeros(n, E, dtype=F64)
    for t in range(n):
        chosen, margin = route(sigma[t], bias, cfg.n_group, cfg.topk_group, top_k)
        ROUTING_STATS["min_margin"] = min(ROUTING_STATS["min_margin"], margin)
        s = sigma[t, chosen]
        if top_k > 1:
            s = s / (s.sum() + 1e-20)
        wts[t, chosen] = s * cfg.routed_scaling_factor
    y = torch.zeros_like(x)
    for e in range(E):
        rows = torch.nonzero(wts[:, e] != 0).flatten()
        if rows.numel() == 0:
            continue
        p = pre + "experts.%d." % e
        ye = swiglu(x[rows], W[p + "gate_proj.weight"], W[p + "up_proj.weight"],
                    W[p + "down_proj.weight"])
        y[rows] += wts[rows, e][:, None] * ye
    if cfg.num_shared_experts > 0:
        p = pre + "shared_experts."
        y = y + swiglu(x, W[p + "gate_proj.weight"], W[p + "up_proj.weight"],
                       W[p + "down_proj.weight"])
    return y


def linear_attention(cfg, W, pre, l, a, pos):
    H, D = cfg.num_attention_heads, cfg.head_dim
    n = a.shape[0]
    qkv = a @ W[pre + "query_key_value.weight"].T
    if cfg.linear_silu:
        qkv = silu(qkv)
    q = qkv[:, :H * D].reshape(n, H, D)
    k = qkv[:, H * D:2 * H * D].reshape(n, H, D)
    v = qkv[:, 2 * H * D:3 * H * D].reshape(n, H, D)
    if cfg.use_qk_norm:
        q = rms_norm(q, W[pre + "query_layernorm.weight"], cfg.rms_norm_eps)
        k = rms_norm(k, W[pre + "key_layernorm.weight"], cfg.rms_norm_eps)
    q = rope(q, pos, cfg.rotary_dim, cfg.rope_theta)
    k = rope(k, pos, cfg.rotary_dim, cfg.rope_theta)
    o = lightning_recurrence(q, k, v, layer_log_decay(cfg, l), D ** -0.5).reshape(n, H * D)
    G = cfg.group_norm_size
    og = o.reshape(n, G, H * D // G)
    og = og / torch.sqrt((og * og).mean(-1, keepdim=True) + cfg.rms_norm_eps)
    o_hat = og.reshape(n, H * D) * W[pre + "g_norm.weight"]
    gate = torch.sigmoid(a @ W[pre + "g_proj.weight"].T)
    return (o_hat * gate) @ W[pre + "dense.weight"].T


def softmax_attention(cfg, W, pre, a, pos):
    H, Hkv, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    n = a.shape[0]
    qkv = a @ W[pre + "query_key_value.weight"].T
    q = qkv[:, :H * D].reshape(n, H, D)
    k = qkv[:, H * D:(H + Hkv) * D].reshape(n, Hkv, D)
    v = qkv[:, (H + Hkv) * D:(H + 2 * Hkv) * D].reshape(n, Hkv, D)
    if cfg.use_qk_norm:
        q = rms_norm(q, W[pre + "query_layernorm.weight"], cfg.rms_norm_eps)
        k = rms_norm(k, W[pre + "key_layernorm.weight"], cfg.rms_norm_eps)
    q = rope(q, pos, cfg.rotary_dim, cfg.rope_theta)
    k = rope(k, pos, cfg.rotary_dim, cfg.rope_theta)
    rep = H // Hkv
    kh = k[:, torch.arange(H) // rep, :]  # [n, H, D]: query head h uses kv head h // rep
    vh = v[:, torch.arange(H) // rep, :]
    scores = torch.einsum("thd,shd->hts", q, kh) / math.sqrt(D)
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask[None], float("-inf"))
    p = torch.softmax(scores, dim=-1)
    o = torch.einsum("hts,shd->thd", p, vh).reshape(n, H * D)
    return o @ W[pre + "dense.weight"].T


# ------------------------------------------------------------------------------------------------
# model


class Model:
    def __init__(self, ckpt_dir, decay_convention=None):
        with open(os.path.join(ckpt_dir, "config.json")) as f:
            self.cfg = Config(json.load(f), decay_convention)
        self.W = load_tensors(ckpt_dir)
        self._check()

    def _check(self):
        c, W = self.cfg, self.W
        H, Hkv, D, hid = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.hidden_size
        assert H % Hkv == 0, "num_attention_heads must be a multiple of num_key_value_heads"
        assert (H * D) % c.group_norm_size == 0, "H*D must be divisible by group_norm_size"
        if c.num_experts:
            assert c.num_experts % c.n_group == 0
        def shp(name, shape):
            if name not in W:
                raise KeyError("missing tensor %s" % name)
            if tuple(W[name].shape) != tuple(shape):
                raise ValueError("%s: expected %s, found %s" % (name, shape, tuple(W[name].shape)))
        shp("model.word_embeddings.weight", (c.vocab_size, hid))
        shp("model.norm.weight", (hid,))
        if not c.tie_word_embeddings:
            shp("lm_head.weight", (c.vocab_size, hid))
        for l in range(c.num_hidden_layers):
            p = "model.layers.%d." % l
            shp(p + "input_layernorm.weight", (hid,))
            shp(p + "post_attention_layernorm.weight", (hid,))
            a = p + "attention."
            if c.is_softmax(l):
                shp(a + "query_key_value.weight", ((H + 2 * Hkv) * D, hid))
            else:
                shp(a + "query_key_value.weight", (3 * H * D, hid))
                shp(a + "g_proj.weight", (H * D, hid))
                shp(a + "g_norm.weight", (H * D,))
            if c.use_qk_norm:
                shp(a + "query_layernorm.weight", (D,))
                shp(a + "key_layernorm.weight", (D,))
            shp(a + "dense.weight", (hid, H * D))
            m = p + "mlp."
            if c.is_moe(l):
                shp(m + "gate.weight", (c.num_experts, hid))
                I = c.moe_intermediate_size
                for e in range(c.num_experts):
                    shp(m + "experts.%d.gate_proj.weight" % e, (I, hid))
                    shp(m + "experts.%d.up_proj.weight" % e, (I, hid))
                    shp(m + "experts.%d.down_proj.weight" % e, (hid, I))
                if c.num_shared_experts:
                    Is = W[m + "shared_experts.gate_proj.weight"].shape[0]
                    shp(m + "shared_experts.up_proj.weight", (Is, hid))
                    shp(m + "shared_experts.down_proj.weight", (hid, Is))
            else:
                I = c.intermediate_size
                shp(m + "gate_proj.weight", (I, hid))
                shp(m + "up_proj.weight", (I, hid))
                shp(m + "down_proj.weight", (hid, I))

    def forward(self, ids, return_hidden=False):
        c, W = self.cfg, self.W
        ROUTING_STATS["min_margin"] = float("inf")
        ids = torch.as_tensor(list(ids), dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= c.vocab_size):
            raise ValueError("token id out of range")
        pos = torch.arange(ids.numel())
        h = W["model.word_embeddings.weight"][ids]
        eps = c.rms_norm_eps
        for l in range(c.num_hidden_layers):
            p = "model.layers.%d." % l
            a = rms_norm(h, W[p + "input_layernorm.weight"], eps)
            if c.is_softmax(l):
                h = h + softmax_attention(c, W, p + "attention.", a, pos)
            else:
                h = h + linear_attention(c, W, p + "attention.", l, a, pos)
            m = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
            if c.is_moe(l):
                h = h + moe(c, W, p + "mlp.", m)
            else:
                h = h + swiglu(m, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                               W[p + "mlp.down_proj.weight"])
        h = rms_norm(h, W["model.norm.weight"], eps)
        head = W["model.word_embeddings.weight"] if c.tie_word_embeddings else W["lm_head.weight"]
        return h @ head.T


def grads(ckpt_dir, ids, decay_convention=None):
    """Autograd gradients (float64) of the mean next-token cross-entropy
    loss = mean_{i < n-1} -log softmax(logits[i])[ids[i+1]]
    w.r.t. every parameter tensor of the checkpoint (as stored, dequantized).  expert_bias only steers
    the selection (SPEC §3.7 step 3), and the selection is a discrete choice: it has no gradient and is
    left out.  Tensors the sequence never reaches (unselected experts) get zeros.
    Returns (loss, {name: float64 gradient}, smallest routing selection margin)."""
    m = Model(ckpt_dir, decay_convention)
    params = {}
    for k, v in m.W.items():
        if k.endswith("expert_bias") or k.endswith("inv_freq"):
            continue
        v = v.detach().clone().requires_grad_(True)
        m.W[k] = v
        params[k] = v
    ids = list(ids)
    if len(ids) < 2:
        raise ValueError("the loss needs at least 2 tokens")
    lg = m.forward(ids)
    tgt = torch.as_tensor(ids[1:], dtype=torch.long)
    lp = torch.log_softmax(lg[:-1], dim=-1)
    loss = -lp[torch.arange(len(ids) - 1), tgt].mean()
    loss.backward()
    out = {}
    for k, v in params.items():
        out[k] = v.grad.detach() if v.grad is not None else torch.zeros_like(v.detach())
    return float(loss), out, ROUTING_STATS["min_margin"]


def logits(ckpt_dir, ids, decay_convention=None):
    """float64 tensor [len(ids), vocab_size]."""
    return Model(ckpt_dir, decay_convention).forward(ids)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("dir")
    lg.add_argument("--ids", required=True, help="comma-separated token ids")
    lg.add_argument("--out", required=True, help="output file, float32 little-endian [n, vocab]")
    lg.add_argument("--decay-convention", choices=("engine", "hf"), default=None)
    args = ap.parse_args(argv)
    ids = [int(x) for x in args.ids.split(",") if x.strip() != ""]
    out = logits(args.dir, ids, args.decay_convention)
    out.numpy().astype("<f4").tofile(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
