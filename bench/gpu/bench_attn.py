#!/usr/bin/env python3
"""Kernel benchmarks of the CUDA attention kernels (src/ops/cuda/attn_cuda.h)
against their peers, with the card's own floors measured in the same run.

  Lightning prefill  rl_cu_lightning, one span of T tokens  vs fla chunk_simple_gla
  Lightning decode   rl_cu_lightning, B spans of 1 token    vs fla fused_recurrent_simple_gla
  GQA prefill        rl_cu_kv_append + rl_cu_gqa            vs torch SDPA (flash backend)
  GQA decode         rl_cu_gqa, B spans of 1 token          vs torch SDPA (flash backend)

Our kernels are called through ctypes from a shared library built from the
.cu files (--lib), on torch-allocated buffers; everything is timed with CUDA
events after warm-up, median of the repetitions, inputs rotated so that a
repetition never finds its operands in L2 (50-60 MB). Ours take fp32
activations and a bf16 KV pool (the engine's contract); the peers get bf16
(their usual inputs) and, for fla prefill, fp32 too. Floors: copy bandwidth
(device-to-device copy, bytes read + written) and dense bf16 / tf32 GEMM rate.

  PYTHONPATH=.dev-fla python3 bench/gpu/bench_attn.py --lib /tmp/libcuattn.so [--quick]
"""
import argparse
import ctypes
import json
import math
import os
import sys
import types

import torch

P = argparse.ArgumentParser()
P.add_argument("--lib", required=True)
P.add_argument("--quick", action="store_true")
P.add_argument("--big", action="store_true", help="also T = 128K")
P.add_argument("--json", default="")
P.add_argument("--only", default="", help="comma list: linp,lind,gqap,gqad,gqadet (gqad's det rows alone)")
A = P.parse_args()
dev = torch.device("cuda")
torch.manual_seed(0)
RESULTS = []


def log(*a):
    print(*a, flush=True)


SLEEP_CYCLES = 400_000  # ~0.2 ms at 2 GHz


def median_ms(fn, reps=9, warm=2, setup=None):
    """CUDA-event median of fn(i) over reps, after warm calls."""
    for i in range(warm):
        fn(i)
    torch.cuda.synchronize()
    ts = []
    for i in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        # The stream sleeps while fn's launches are queued behind it, so the
        # events time the GPU work, not the host's launch latency (tens of us
        # through ctypes or Triton, more than a small decode kernel takes).
        torch.cuda._sleep(SLEEP_CYCLES)
        s.record()
        fn(warm + i)
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


# ---- our library -------------------------------------------------------------
L = ctypes.CDLL(A.lib)
vp, ci, cf = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
L.rl_cu_lightning.argtypes = [vp, ci, vp, ci, vp, ci, ci, vp, ci, ci, vp, cf, ci, vp]
L.rl_cu_kv_append.argtypes = [vp, ci, vp, ci, ci, vp, vp, ctypes.c_size_t, ci, ci, ci, ci, vp]
L.rl_cu_gqa.argtypes = [vp, ci, vp, ci, vp, ci, ci, vp, vp, ctypes.c_size_t, ci, ci, ci, ci, cf, ci, vp]
for f in (L.rl_cu_lightning, L.rl_cu_kv_append, L.rl_cu_gqa):
    f.restype = ci


def stream():
    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def ok(rc, what):
    if rc:
        raise RuntimeError(f"{what} returned {rc}")


def spans_tensor(rows):
    """rows: list of (row0, n, pos0, seq) -> device int32 [n, 4]"""
    return torch.tensor(rows, dtype=torch.int32, device=dev).contiguous()


# ---- peers -------------------------------------------------------------------
def import_fla():
    try:
        from fla.ops.simple_gla import chunk_simple_gla, fused_recurrent_simple_gla
        return chunk_simple_gla, fused_recurrent_simple_gla, "fla (package import)"
    except Exception as e:  # fla/__init__ pulls optional modules: bypass it
        log(f"# fla package import failed ({type(e).__name__}: {e}); importing fla.ops.simple_gla alone")
        for m in [k for k in sys.modules if k == "fla" or k.startswith("fla.")]:
            del sys.modules[m]
        root = None
        for p in sys.path:
            if os.path.isdir(os.path.join(p, "fla", "ops", "simple_gla")):
                root = os.path.join(p, "fla")
                break
        if root is None:
            raise
        for name, path in (("fla", root), ("fla.ops", os.path.join(root, "ops"))):
            m = types.ModuleType(name)
            m.__path__ = [path]
            sys.modules[name] = m
        import importlib
        sg = importlib.import_module("fla.ops.simple_gla")
        return sg.chunk_simple_gla, sg.fused_recurrent_simple_gla, "fla (ops.simple_gla only)"


# ---- floors --------------------------------------------------------------------
FLOOR = {}


def floors():
    n = 1 << 28  # 1 GiB of fp32
    x = torch.randn(n, device=dev)
    y = torch.empty_like(x)
    t = median_ms(lambda i: y.copy_(x), reps=9)
    FLOOR["copy_GBs"] = 2 * n * 4 / t / 1e6
    del x, y
    m = 8192
    a = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
    b = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
    t = median_ms(lambda i: a @ b, reps=9)
    FLOOR["bf16_TFs"] = 2 * m ** 3 / t / 1e9
    torch.backends.cuda.matmul.allow_tf32 = True
    a, b = a.float(), b.float()
    t = median_ms(lambda i: a @ b, reps=5)
    FLOOR["tf32_TFs"] = 2 * m ** 3 / t / 1e9
    torch.backends.cuda.matmul.allow_tf32 = False
    del a, b
    log(f"floors: copy {FLOOR['copy_GBs']:.0f} GB/s, bf16 dense {FLOOR['bf16_TFs']:.0f} TFLOP/s, "
        f"tf32 dense {FLOOR['tf32_TFs']:.0f} TFLOP/s")


def floor_ms(flops, bytes_, rate_key):
    return max(flops / (FLOOR[rate_key] * 1e9), bytes_ / (FLOOR["copy_GBs"] * 1e6))


def report(kind, shape, ours_ms, peer_name, peer_ms, flops, bytes_, rate_key, extra=""):
    fl = floor_ms(flops, bytes_, rate_key)
    r = dict(kind=kind, shape=shape, ours_ms=ours_ms, peer=peer_name, peer_ms=peer_ms,
             floor_ms=fl, flops=flops, bytes=bytes_, extra=extra)
    RESULTS.append(r)
    sp = f"{peer_ms / ours_ms:5.2f}x" if peer_ms else "  -  "
    pm = f"{peer_ms:8.3f}" if peer_ms else "     -  "
    log(f"{kind:10s} {shape:34s} ours {ours_ms:8.3f} ms  {peer_name:12s} {pm} ms  speedup {sp}  "
        f"floor {fl:7.3f} ms ({fl / ours_ms * 100:5.1f}% of floor)  {extra}")


def decay_pw(H):
    """pw[h][n] = exp(g_h n), ALiBi-like slopes; returns (pw fp32 [H,65], g [H])."""
    slopes = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)], dtype=torch.float64)
    g = -slopes * 0.1
    n = torch.arange(65, dtype=torch.float64)
    pw = torch.exp(g[:, None] * n[None, :]).float().to(dev).contiguous()
    return pw, g.float().to(dev)


# ---- Lightning -------------------------------------------------------------------
def lin_states(nseq, H, D, scale=0.1):
    S = (torch.randn(nseq, H, D, D, device=dev) * scale).contiguous()
    ks = torch.randn(nseq, 64, H * D, device=dev) * 0.1
    vs = torch.randn(nseq, 64, H * D, device=dev) * 0.1
    ptr = torch.tensor([[S[i].data_ptr(), ks[i].data_ptr(), vs[i].data_ptr()] for i in range(nseq)],
                       dtype=torch.int64, device=dev)
    return S, ks, vs, ptr


def lin_prefill(H, D, T, chunk_fla, fla_name):
    HD = H * D
    qkv = torch.randn(T, 3 * HD, device=dev) * 0.3
    o = torch.empty(T, HD, device=dev)
    pw, g = decay_pw(H)
    S, ks, vs, st = lin_states(1, H, D)
    sp = spans_tensor([(0, T, 0, 0)])
    scale = D ** -0.5

    def ours(i):
        ok(L.rl_cu_lightning(qkv.data_ptr(), 3 * HD, o.data_ptr(), HD, sp.data_ptr(), 1, T,
                             st.data_ptr(), H, D, pw.data_ptr(), scale, 0, stream()), "lightning")
    t_ours = median_ms(ours, reps=7)
    nc = T // 64
    flops = nc * H * (2 * 64 * 64 * D * 2 + 2 * 64 * D * D * 2)  # QK^T, PV, qS, K^T V
    bytes_ = 4 * T * HD * 4 + 2 * H * D * D * 4
    peer = {}
    if chunk_fla:
        for dt in (torch.bfloat16, torch.float32):
            q = qkv[:, :HD].reshape(1, T, H, D).to(dt).contiguous()
            k = qkv[:, HD:2 * HD].reshape(1, T, H, D).to(dt).contiguous()
            v = qkv[:, 2 * HD:].reshape(1, T, H, D).to(dt).contiguous()
            h0 = S.clone()

            def run(i):
                chunk_fla(q, k, v, g_gamma=g, scale=scale, initial_state=h0, output_final_state=True)
            try:
                peer[dt] = median_ms(run, reps=7)
            except Exception as e:
                log(f"# fla chunk_simple_gla {dt} failed: {type(e).__name__}: {e}")
            del q, k, v
    shape = f"H={H} D={D} T={T // 1024}K"
    report("lin-pre", shape, t_ours, "fla-bf16", peer.get(torch.bfloat16), flops, bytes_, "tf32_TFs",
           f"fla-fp32 {peer[torch.float32]:.3f} ms" if torch.float32 in peer else "")
    del qkv, o, S, ks, vs


def lin_decode(H, D, B, fold, rec_fla):
    HD = H * D
    pw, g = decay_pw(H)
    per_set = B * H * D * D * 4
    nsets = max(1, min(64, math.ceil(256e6 / per_set)))
    sets = [lin_states(B, H, D) for _ in range(nsets)]
    pos = 127 if fold else 100  # fold: the token completes its chunk
    sp = spans_tensor([(b, 1, pos, b) for b in range(B)])
    qkvs = [torch.randn(B, 3 * HD, device=dev) * 0.3 for _ in range(nsets)]
    o = torch.empty(B, HD, device=dev)
    scale = D ** -0.5

    def ours(i):
        s = i % nsets
        ok(L.rl_cu_lightning(qkvs[s].data_ptr(), 3 * HD, o.data_ptr(), HD, sp.data_ptr(), B, 1,
                             sets[s][3].data_ptr(), H, D, pw.data_ptr(), scale, 0, stream()), "lightning")
    t_ours = median_ms(ours, reps=15, warm=3)
    i0 = pos % 64
    # S read (+ written on a fold), stash rows of the chunk so far, q/k/v, o
    bytes_ = B * (H * D * D * 4 * (2 if fold else 1) + 2 * i0 * HD * 4 + 3 * HD * 4 + HD * 4)
    flops = B * H * (2 * D * D + 4 * (i0 + 1) * D + (2 * 64 * D * D if fold else 0))
    # fla: recurrent step reads and writes the state every token
    t_peer = None
    if rec_fla:
        q = [qkvs[s][:, :HD].reshape(B, 1, H, D).to(torch.bfloat16) for s in range(nsets)]
        k = [qkvs[s][:, HD:2 * HD].reshape(B, 1, H, D).to(torch.bfloat16) for s in range(nsets)]
        v = [qkvs[s][:, 2 * HD:].reshape(B, 1, H, D).to(torch.bfloat16) for s in range(nsets)]
        hs = [sets[s][0] for s in range(nsets)]

        def run(i):
            s = i % nsets
            rec_fla(q[s], k[s], v[s], g_gamma=g, scale=scale, initial_state=hs[s], output_final_state=True)
        try:
            t_peer = median_ms(run, reps=15, warm=3)
        except Exception as e:
            log(f"# fla fused_recurrent_simple_gla failed: {type(e).__name__}: {e}")
    gbs = bytes_ / t_ours / 1e6
    report("lin-dec", f"H={H} D={D} B={B}{' fold' if fold else ''}", t_ours, "fla-rec-bf16", t_peer,
           flops, bytes_, "tf32_TFs", f"{gbs:.0f} GB/s = {gbs / FLOOR['copy_GBs'] * 100:.0f}% of copy")
    del sets, qkvs


# ---- GQA -------------------------------------------------------------------------------
def make_pool(nseq, ctx, Hkv, D, nsets=1):
    """A bf16 pool (attn_cuda.h) with one layer; sequences own consecutive pages (shuffled per set)."""
    npg = (ctx + 63) // 64
    KD = Hkv * D
    pf = 2 * 64 * KD
    pool = (torch.randn(nsets * nseq * npg * pf, device=dev) * 0.5).to(torch.bfloat16)
    tabs, keep = [], []
    for s in range(nsets):
        ids = torch.randperm(nseq * npg, device=dev, dtype=torch.int64).to(torch.int32) + s * nseq * npg
        t = ids.reshape(nseq, npg).contiguous()
        keep.append(t)
        tabs.append(torch.tensor([t[i].data_ptr() for i in range(nseq)], dtype=torch.int64, device=dev))
    return pool, pf, tabs, keep


def sdpa_flash(q, k, v, causal):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)


def gqa_prefill(H, Hkv, D, T):
    HD, KD = H * D, Hkv * D
    W = HD + 2 * KD
    qkv = torch.randn(T, W, device=dev)
    o = torch.empty(T, HD, device=dev)
    pool, pf, tabs, keep = make_pool(1, T, Hkv, D)
    sp = spans_tensor([(0, T, 0, 0)])
    scale = D ** -0.5

    def attend(i):
        ok(L.rl_cu_gqa(qkv.data_ptr(), W, o.data_ptr(), HD, sp.data_ptr(), 1, T, tabs[0].data_ptr(),
                       pool.data_ptr(), pf, 0, H, Hkv, D, scale, 0, stream()), "gqa")

    def append(i):
        ok(L.rl_cu_kv_append(qkv.data_ptr(), W, sp.data_ptr(), 1, T, tabs[0].data_ptr(), pool.data_ptr(),
                             pf, 0, H, Hkv, D, stream()), "kv_append")
    append(0)
    t_att = median_ms(attend, reps=5)
    t_app = median_ms(append, reps=5)
    q = qkv[:, :HD].reshape(1, T, H, D).transpose(1, 2).to(torch.bfloat16).contiguous()
    k = qkv[:, HD:HD + KD].reshape(1, T, Hkv, D).transpose(1, 2).to(torch.bfloat16).contiguous()
    v = qkv[:, HD + KD:].reshape(1, T, Hkv, D).transpose(1, 2).to(torch.bfloat16).contiguous()
    t_peer = None
    try:
        t_peer = median_ms(lambda i: sdpa_flash(q, k, v, True), reps=5)
    except Exception as e:
        log(f"# SDPA flash failed: {type(e).__name__}: {e}")
    flops = 4 * H * D * T * (T + 1) / 2  # causal QK^T + PV
    bytes_ = T * HD * 2 * 4 + 2 * T * KD * 2  # q, o fp32; K, V bf16
    report("gqa-pre", f"H={H} Hkv={Hkv} D={D} T={T // 1024}K", t_att, "sdpa-flash", t_peer, flops,
           bytes_, "bf16_TFs", f"{flops / t_att / 1e9:.0f} TFLOP/s; kv_append {t_app:.3f} ms")
    del qkv, o, pool, q, k, v


def gqa_decode(H, Hkv, D, B, ctx, det):
    HD, KD = H * D, Hkv * D
    W = HD + 2 * KD
    kvbytes = B * ctx * 2 * KD * 2  # bf16 pool
    nsets = max(1, min(16, math.ceil(256e6 / kvbytes)))
    pool, pf, tabs, keep = make_pool(B, ctx, Hkv, D, nsets)
    sp = spans_tensor([(b, 1, ctx - 1, b) for b in range(B)])
    qkv = torch.randn(B, W, device=dev)
    o = torch.empty(B, HD, device=dev)
    scale = D ** -0.5

    def attend(i):
        ok(L.rl_cu_gqa(qkv.data_ptr(), W, o.data_ptr(), HD, sp.data_ptr(), B, 1, tabs[i % nsets].data_ptr(),
                       pool.data_ptr(), pf, 0, H, Hkv, D, scale, det, stream()), "gqa")
    t_ours = median_ms(attend, reps=9, warm=2)
    del pool
    t_peer = None
    if not det:
        pn = max(1, min(16, math.ceil(256e6 / kvbytes)))
        try:
            q = torch.randn(B, H, 1, D, device=dev, dtype=torch.bfloat16)
            kv = [(torch.randn(B, Hkv, ctx, D, device=dev, dtype=torch.bfloat16),
                   torch.randn(B, Hkv, ctx, D, device=dev, dtype=torch.bfloat16)) for _ in range(pn)]
            t_peer = median_ms(lambda i: sdpa_flash(q, kv[i % pn][0], kv[i % pn][1], False), reps=9)
            del kv
        except Exception as e:
            log(f"# SDPA flash decode failed: {type(e).__name__}: {e}")
    flops = 4 * B * H * D * ctx
    gbs = kvbytes / t_ours / 1e6
    report("gqa-dec", f"H={H} Hkv={Hkv} B={B} ctx={ctx // 1024}K{' det' if det else ''}", t_ours,
           "sdpa-flash", t_peer, flops, kvbytes, "bf16_TFs",
           f"KV bf16 {gbs:.0f} GB/s = {gbs / FLOOR['copy_GBs'] * 100:.0f}% of copy (peer: the same bytes)")


def main():
    only = set(A.only.split(",")) if A.only else {"linp", "lind", "gqap", "gqad"}
    p = torch.cuda.get_device_properties(0)
    log(f"card: {p.name}, {p.multi_processor_count} SMs, torch {torch.__version__}")
    floors()
    try:
        chunk_fla, rec_fla, fla_name = import_fla()
        log(f"# peer: {fla_name}")
    except Exception as e:
        log(f"# fla unavailable: {type(e).__name__}: {e}")
        chunk_fla = rec_fla = fla_name = None
    Ts = [4096, 16384] if A.quick else [4096, 16384, 32768] + ([131072] if A.big else [])
    shapes = [(16, 4, 128), (32, 4, 128)]
    if "linp" in only:
        for H, _, D in shapes:
            for T in Ts:
                lin_prefill(H, D, T, chunk_fla, fla_name)
    if "lind" in only:
        for H, _, D in shapes:
            for B in (1, 16, 64, 256):
                lin_decode(H, D, B, False, rec_fla)
            lin_decode(H, D, 64, True, rec_fla)
    if "gqap" in only:
        for H, Hkv, D in shapes:
            for T in Ts:
                gqa_prefill(H, Hkv, D, T)
    if "gqad" in only or "gqadet" in only:
        for H, Hkv, D in shapes:
            for ctx in (4096, 32768):
                for B in (1, 16, 64, 256) if "gqad" in only else ():
                    if B * ctx * 2 * Hkv * D * 4 > 40e9:
                        continue
                    gqa_decode(H, Hkv, D, B, ctx, 0)
                gqa_decode(H, Hkv, D, 16, ctx, 1)
    if A.json:
        with open(A.json, "w") as f:
            json.dump(dict(card=p.name, floors=FLOOR, results=RESULTS), f, indent=1)


main()
