/* The device forward over spans (step_cuda.h): rl_step's layer loop (step.c)
 * with device kernels. One stream; one host->device copy of the step's
 * metadata; the attention kernels of attn_cuda.h; the logits copied to the
 * host at the end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_cuda.h"

bool rl_cuda_available(rl_err *e) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        rl_errf(e, RL_E_UNSUPPORTED, "no usable CUDA device: %s", cudaGetErrorString(rc));
        return false;
    }
    if (n == 0) {
        rl_errf(e, RL_E_UNSUPPORTED, "no CUDA device found");
        return false;
    }
    return true;
}

void rl_cuda_describe(int device, char *buf, size_t n) {
    rl_err e = {0};
    struct cudaDeviceProp p;
    if (!rl_cuda_available(&e)) {
        snprintf(buf, n, "%s", e.msg);
    } else if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
        snprintf(buf, n, "CUDA device %d: cannot read its properties", device);
    } else {
        int rt = 0, drv = 0;
        cudaRuntimeGetVersion(&rt);
        cudaDriverGetVersion(&drv);
        snprintf(buf, n, "%s (sm_%d%d, %d SMs, %.1f GiB; runtime %d.%d, driver %d.%d)", p.name,
                 p.major, p.minor, p.multiProcessorCount, (double)p.totalGlobalMem / 1073741824.0,
                 rt / 1000, rt % 1000 / 10, drv / 1000, drv % 1000 / 10);
    }
}

const char *const rl_cuda_prof_names[RL_CUDA_PROF_CATS] = {
    "embed+head", "norms", "lightning layers", "softmax layers", "dense MLP", "MoE routing",
    "MoE experts+combine", "shared expert"};

static void mark(rl_cuda_engine *eng, int cat) {
    if (!eng->prof || eng->n_ev >= 1024) return;
    cudaEventRecord(eng->ev[eng->n_ev], eng->st);
    eng->ev_cat[eng->n_ev++] = cat;
}

void rl_cuda_profile(rl_cuda_engine *eng, double out[RL_CUDA_PROF_CATS], bool reset) {
    for (int i = 0; i < RL_CUDA_PROF_CATS; i++) {
        if (out) out[i] = eng->prof_s[i];
        if (reset) eng->prof_s[i] = 0;
    }
}

static void collect(rl_cuda_engine *eng) {
    for (int k = 1; k < eng->n_ev; k++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, eng->ev[k - 1], eng->ev[k]) == cudaSuccess)
            eng->prof_s[eng->ev_cat[k]] += ms / 1e3;
    }
    eng->n_ev = 0;
}

static void free_work(cu_work *w) {
    void *ps[] = {w->X, w->A, w->QKV, w->G, w->O, w->U, w->M1, w->M2, w->R, w->WT, w->YK,
                  w->YS, w->LOG, w->RSCR, w->XB, w->MB, w->XL, w->ML, w->Y2, w->sel, w->rows,
                  w->counts, w->offs, w->toff, w->sync};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (ps[i]) cudaFree(ps[i]);
    if (w->LOGITS) cudaFree(w->LOGITS);
    memset(w, 0, sizeof *w);
}

void rl_cuda_engine_free(rl_cuda_engine *eng) {
    if (!eng) return;
    if (eng->st) cudaStreamSynchronize(eng->st);
    rl_cu_attn_release();
    free_work(&eng->w);
    rl_cu_samples_free(&eng->smp);
    rl_cu_free_weights(eng);
    if (eng->pool) cudaFree(eng->pool);
    if (eng->meta_h) cudaFreeHost(eng->meta_h);
    if (eng->meta_d) cudaFree(eng->meta_d);
    if (eng->rec_sel) cudaFree(eng->rec_sel);
    if (eng->gx) cudaGraphExecDestroy(eng->gx);
    if (eng->cb) cublasDestroy(eng->cb);
    if (eng->cb_ws) cudaFree(eng->cb_ws);
    if (eng->ev0) cudaEventDestroy(eng->ev0);
    if (eng->ev1) cudaEventDestroy(eng->ev1);
    for (int i = 0; eng->prof && i < 1024; i++) cudaEventDestroy(eng->ev[i]);
    if (eng->st) cudaStreamDestroy(eng->st);
    free(eng->refs);
    free(eng->free_list);
    free(eng);
}

int64_t rl_cuda_weight_bytes(const rl_cuda_engine *eng) { return eng->weight_bytes; }
int64_t rl_cuda_kv_pool_bytes(const rl_cuda_engine *eng) {
    return (int64_t)eng->max_pages * (int64_t)eng->page_elems * 2;
}
void rl_cuda_set_max_ctx(rl_cuda_engine *eng, int max_ctx) { eng->max_ctx = max_ctx; }

static int init(rl_cuda_engine *eng, rl_err *e) {
    const rl_config *c = &eng->m->cfg;
    /* what the attention kernels of attn_cuda.h implement */
    if (c->head_dim != 64 && c->head_dim != 128)
        return rl_errf(e, RL_E_UNSUPPORTED, "CUDA backend: head_dim %d is not supported (the "
                       "attention kernels take 64 or 128)", c->head_dim);
    CU_TRY(cudaSetDevice(eng->opt.device));
    CU_TRY(cudaStreamCreateWithFlags(&eng->st, cudaStreamNonBlocking));
    CU_TRY(cudaEventCreate(&eng->ev0));
    CU_TRY(cudaEventCreate(&eng->ev1));
    CUBLAS_TRY(cublasCreate(&eng->cb));
    if (getenv("RL_CUDA_PROFILE") && atoi(getenv("RL_CUDA_PROFILE")) > 0) {
        for (int i = 0; i < 1024; i++) CU_TRY(cudaEventCreate(&eng->ev[i]));
        eng->prof = 1;
    }
    CUBLAS_TRY(cublasSetStream(eng->cb, eng->st));
    /* after cublasSetStream (which resets it): one workspace for the handle's life, so a
     * captured GEMM never allocates and its graph keeps a valid address */
    CU_TRY(cudaMalloc(&eng->cb_ws, (size_t)32 << 20));
    CUBLAS_TRY(cublasSetWorkspace(eng->cb, eng->cb_ws, (size_t)32 << 20));
    const char *gv = getenv("RL_CUDA_GRAPHS");
    eng->graphs = !eng->prof && !(gv && atoi(gv) == 0);
    int rc = rl_cu_upload_weights(eng, e);
    if (rc) return rc;
    int H = c->num_attention_heads, D = c->head_dim, Hkv = c->num_key_value_heads;
    eng->lin_floats = (size_t)eng->m->n_linear * ((size_t)H * D * D + 2 * (size_t)RL_CHUNK * H * D);
    eng->page_elems = (size_t)eng->m->n_softmax * 2 * RL_KV_PAGE * (size_t)Hkv * D;
    eng->max_ctx = c->max_position_embeddings;
    if (eng->page_elems) {
        size_t page_bytes = eng->page_elems * 2, fr = 0, tot = 0;
        CU_TRY(cudaMemGetInfo(&fr, &tot));
        long long want = eng->opt.max_kv_pages;
        if (want <= 0) {
            want = 2LL * ((eng->max_ctx + RL_KV_PAGE - 1) / RL_KV_PAGE);
            long long cap = (long long)(fr / 2 / page_bytes);
            if (want > cap) want = cap;
            if (want < 1) want = 1;
        }
        if (want > (1LL << 30)) want = 1LL << 30;
        eng->max_pages = (int)want;
        cudaError_t ar = cudaMalloc((void **)&eng->pool, page_bytes * (size_t)want);
        if (ar != cudaSuccess)
            return rl_errf(e, RL_E_NOMEM, "cannot allocate the device KV pool (%lld pages, %.2f GB): %s",
                           want, (double)page_bytes * (double)want / 1e9, cudaGetErrorString(ar));
        /* zeros: a key slot after a row's position is masked (p = 0) but its value
         * still enters P V as 0 * v, and never-written memory may hold NaN or Inf
         * bit patterns (0 * NaN = NaN). Pages reused later hold finite values. */
        CU_TRY(cudaMemset(eng->pool, 0, page_bytes * (size_t)want));
        eng->refs = calloc((size_t)want, sizeof(int));
        eng->free_list = malloc(sizeof(int) * (size_t)want);
        if (!eng->refs || !eng->free_list) return rl_errf(e, RL_E_NOMEM, "out of memory");
        for (int i = 0; i < eng->max_pages; i++) eng->free_list[i] = eng->max_pages - 1 - i;
        eng->n_free = eng->max_pages;
    }
    return RL_OK;
}

int rl_cuda_engine_init(rl_cuda_engine **out, const rl_model *m, const rl_cuda_opts *o, rl_err *e) {
    *out = NULL;
    if (!rl_cuda_available(e)) return e ? e->code : RL_E_UNSUPPORTED;
    rl_cuda_engine *eng = calloc(1, sizeof *eng);
    if (!eng) return rl_errf(e, RL_E_NOMEM, "out of memory");
    eng->m = m;
    if (o) eng->opt = *o;
    const char *mm = getenv("RL_CUDA_MOE_MMA");
    eng->moe_mma = !(mm && strcmp(mm, "0") == 0);
    const char *sm = getenv("RL_CUDA_DECODE");
    eng->small = !(sm && strcmp(sm, "0") == 0);
    const char *st = getenv("RL_CUDA_SMALL_T"); /* tokens up to which the fused MoE path runs */
    eng->small_T = st ? atoi(st) : 16;
    const char *dm = getenv("RL_CUDA_DET_MMA");
    eng->det_mma = !(dm && strcmp(dm, "0") == 0);
    int rc = init(eng, e);
    if (rc) {
        rl_cuda_engine_free(eng);
        return rc;
    }
    *out = eng;
    return RL_OK;
}

/* ---- workspace ----------------------------------------------------------- */

static int grow(void **p, size_t bytes, rl_err *e) {
    if (*p) cudaFree(*p);
    *p = NULL;
    cudaError_t rc = cudaMalloc(p, bytes ? bytes : 16);
    if (rc != cudaSuccess)
        return rl_errf(e, RL_E_NOMEM, "cannot allocate %.3f GB of device workspace: %s",
                       (double)bytes / 1e9, cudaGetErrorString(rc));
    return RL_OK;
}

static int ensure_work(rl_cuda_engine *eng, int T, rl_err *e) {
    cu_work *w = &eng->w;
    if (T <= w->cap_T) return RL_OK;
    const rl_config *c = &eng->m->cfg;
    size_t cap = (size_t)(T > 2 * w->cap_T ? T : 2 * w->cap_T);
    size_t hid = (size_t)c->hidden_size, H = (size_t)c->num_attention_heads;
    size_t D = (size_t)c->head_dim, Hkv = (size_t)c->num_key_value_heads, HD = H * D;
    size_t qkvw = 3 * HD > (H + 2 * Hkv) * D ? 3 * HD : (H + 2 * Hkv) * D;
    size_t E = (size_t)c->num_experts, K = (size_t)(c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1);
    size_t G = (size_t)(c->n_group > 0 ? c->n_group : 1);
    size_t sI = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        if (eng->L[l].shared_I > (int)sI) sI = (size_t)eng->L[l].shared_I;
    size_t inter = (size_t)c->intermediate_size;
    size_t m12 = cap * inter;
    if (cap * K * (size_t)c->moe_intermediate_size > m12) m12 = cap * K * (size_t)c->moe_intermediate_size;
    if (cap * sI > m12) m12 = cap * sI;
    { /* the small-batch MoE path's H: T*K routed rows + T shared rows of max(I, sI) */
        size_t mi = (size_t)c->moe_intermediate_size > sI ? (size_t)c->moe_intermediate_size : sI;
        if (cap * (K + 1) * mi > m12) m12 = cap * (K + 1) * mi;
    }
    /* widest library GEMM output: the stacked hi/lo GEMM's scratch row */
    size_t y2n = (size_t)c->vocab_size;
    size_t outs[] = {qkvw, HD, hid, (size_t)c->intermediate_size, sI};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        if (outs[i] > y2n) y2n = outs[i];
    size_t xb = hid > HD ? hid : HD;
    if (inter > xb) xb = inter;
    if (sI > xb) xb = sI;
    cudaStreamSynchronize(eng->st);
    free_work(w);
    eng->gen++;
    struct { void **p; size_t bytes; } need[] = {
        {(void **)&w->X, cap * hid * 4}, {(void **)&w->A, cap * hid * 4},
        {(void **)&w->QKV, cap * qkvw * 4}, {(void **)&w->G, cap * HD * 4},
        {(void **)&w->O, cap * HD * 4}, {(void **)&w->U, cap * HD * 4},
        {(void **)&w->M1, m12 * 4}, {(void **)&w->M2, m12 * 4},
        {(void **)&w->R, cap * E * 4}, {(void **)&w->WT, cap * K * 4},
        {(void **)&w->YK, E ? cap * K * hid * 4 : 0}, {(void **)&w->YS, cap * hid * 4},
        {(void **)&w->LOG, cap * hid * 4}, {(void **)&w->RSCR, E ? cap * (3 * E + 2 * G) * 4 : 0},
        /* + RL_CU_STACK_T rows: a stacked GEMM's low parts follow the hi rows */
        {(void **)&w->XB, (cap + RL_CU_STACK_T) * xb * 2}, {(void **)&w->sel, cap * K * 4},
        {(void **)&w->Y2, (size_t)2 * RL_CU_STACK_T * y2n * 4},
        {(void **)&w->MB, E ? cap * K * (size_t)c->moe_intermediate_size * 2 : 0},
        {(void **)&w->ML, E ? cap * K * (size_t)c->moe_intermediate_size * 2 : 0},
        {(void **)&w->XL, cap * xb * 2},
        {(void **)&w->rows, cap * K * 4}, {(void **)&w->counts, (E + 1) * 4},
        {(void **)&w->offs, (E + 1) * 4}, {(void **)&w->toff, (E + 1) * 4},
        {(void **)&w->sync, 64 * 4},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        int rc = grow(need[i].p, need[i].bytes, e);
        if (rc) {
            free_work(w);
            return rc;
        }
    }
    /* on the engine's stream: a non-blocking stream does not wait for the legacy one */
    if (cudaMemsetAsync(w->sync, 0, 64 * 4, eng->st) != cudaSuccess) {
        free_work(w);
        return rl_errf(e, RL_E_NOMEM, "cannot clear the device counters");
    }
    w->cap_T = (int)cap;
    w->y2_n = y2n;
    return RL_OK;
}

static int ensure_logits(rl_cuda_engine *eng, size_t floats, rl_err *e) {
    cu_work *w = &eng->w;
    if (floats <= w->logits_cap) return RL_OK;
    cudaStreamSynchronize(eng->st);
    eng->gen++;
    int rc = grow((void **)&w->LOGITS, floats * 4, e);
    w->logits_cap = rc ? 0 : floats;
    return rc;
}

/* ---- the step ------------------------------------------------------------ */

typedef struct meta {
    int *ids, *lrows;
    float *cs;
    rl_cu_span *spans;
    const int **ptabs;
    rl_cu_lin_state *states; /* [n_linear][n_spans] */
} meta;

static size_t al16(size_t x) { return (x + 15) & ~(size_t)15; }

/* Lays out the step's metadata in the pinned staging buffer and copies it to
 * the device; d gets the device addresses. */
static int upload_meta(rl_cuda_engine *eng, const rl_cuda_span *spans, int n, int T, int nl,
                       meta *d, rl_err *e) {
    const rl_model *m = eng->m;
    const rl_config *c = &m->cfg;
    int rot = c->rotary_dim, R = rot / 2, nlin = m->n_linear;
    size_t tp = 0;
    for (int s = 0; s < n; s++) tp += (size_t)spans[s].seq->n_pages;
    size_t off_ids = 0, off_cs = al16(off_ids + sizeof(int) * T);
    size_t off_sp = al16(off_cs + sizeof(float) * (size_t)T * (rot ? rot : 1));
    /* the page ids last: every other offset depends only on (n, T, nl), so a decode
     * graph's baked addresses stay right while the sequences grow */
    size_t off_pt = al16(off_sp + sizeof(rl_cu_span) * n);
    size_t off_st = al16(off_pt + sizeof(int *) * n);
    size_t off_lr = al16(off_st + sizeof(rl_cu_lin_state) * (size_t)n * (nlin ? nlin : 1));
    size_t off_pg = al16(off_lr + sizeof(int) * (size_t)(nl ? nl : 1));
    size_t total = al16(off_pg + sizeof(int) * (tp ? tp : 1));
    if (total > eng->meta_cap) {
        size_t cap = total * 2;
        /* the pinned buffer may still feed a queued copy */
        CU_TRY(cudaStreamSynchronize(eng->st));
        eng->gen++;
        if (eng->meta_h) cudaFreeHost(eng->meta_h);
        if (eng->meta_d) cudaFree(eng->meta_d);
        eng->meta_h = eng->meta_d = NULL;
        eng->meta_cap = 0;
        CU_TRY(cudaMallocHost((void **)&eng->meta_h, cap));
        CU_TRY(cudaMalloc((void **)&eng->meta_d, cap));
        eng->meta_cap = cap;
    }
    char *h = eng->meta_h, *dv = eng->meta_d;
    int *ids = (int *)(h + off_ids), *pg = (int *)(h + off_pg), *lr = (int *)(h + off_lr);
    float *cs = (float *)(h + off_cs);
    rl_cu_span *sp = (rl_cu_span *)(h + off_sp);
    const int **pt = (const int **)(h + off_pt);
    rl_cu_lin_state *st = (rl_cu_lin_state *)(h + off_st);
    int t = 0, r = 0;
    size_t po = 0;
    size_t HDD = (size_t)c->num_attention_heads * c->head_dim * c->head_dim;
    size_t HD = (size_t)c->num_attention_heads * c->head_dim;
    size_t per = HDD + 2 * (size_t)RL_CHUNK * HD;
    for (int s = 0; s < n; s++) {
        const rl_cuda_span *a = &spans[s];
        sp[s] = (rl_cu_span){.row0 = t, .n = a->n, .pos0 = a->first_pos, .seq = s};
        pt[s] = (const int *)(dv + off_pg) + po;
        memcpy(pg + po, a->seq->pages, sizeof(int) * (size_t)a->seq->n_pages);
        po += (size_t)a->seq->n_pages;
        for (int li = 0; li < nlin; li++) {
            float *S = a->seq->lin + (size_t)li * per;
            st[(size_t)li * n + s] = (rl_cu_lin_state){S, S + HDD, S + HDD + (size_t)RL_CHUNK * HD};
        }
        for (int j = 0; j < a->n; j++, t++) {
            ids[t] = a->tokens[j];
            float *cc = cs + (size_t)t * rot;
            for (int q = 0; q < R; q++) { /* the CPU's angles (step.c rope_tables) */
                float ang = (float)(a->first_pos + j) * m->inv_freq[q];
                cc[q] = cosf(ang);
                cc[R + q] = sinf(ang);
            }
        }
        if (a->want == RL_LOGITS_ALL)
            for (int j = 0; j < a->n; j++) lr[r++] = sp[s].row0 + j;
        else if (a->want == RL_LOGITS_LAST)
            lr[r++] = sp[s].row0 + a->n - 1;
    }
    CU_TRY(cudaMemcpyAsync(dv, h, total, cudaMemcpyHostToDevice, eng->st));
    d->ids = (int *)(dv + off_ids);
    d->cs = (float *)(dv + off_cs);
    d->spans = (rl_cu_span *)(dv + off_sp);
    d->ptabs = (const int **)(dv + off_pt);
    d->states = (rl_cu_lin_state *)(dv + off_st);
    d->lrows = (int *)(dv + off_lr);
    return RL_OK;
}

/* y[T][N] (+)= x[T][K] . W[N][K]^T. xb_ready: eng->w.XB already holds x in
 * bf16 (row stride K) for the library GEMM (default mode only). */
static int gemm(rl_cuda_engine *eng, const void *W, int N, int K, const float *x, int ldx,
                int T, float *y, int ldy, int acc, int xb_ready, rl_err *e) {
    if (T <= 0) return RL_OK;
    if (eng->opt.deterministic) {
        /* Batch-invariant GEMMs. bf16 weights with K % 8 == 0 (and aligned; all of it fixed
         * per matrix, never per step): tensor cores, rl_cu_moe_mma's fixed-order kernel in
         * its dense form over x = hi + lo (split here: the deterministic norms write no
         * bf16 copy), the same kernel for every T. Otherwise (fp32 weights, odd K):
         * rl_cu_wgemm. */
        if (eng->det_mma && !eng->wf32 && rl_cu_moe_mma_ok(K, K, eng->w.XB, W, 0)) {
            CU_TRY(rl_cu_split_bf16(x, T, K, ldx, eng->w.XB, eng->w.XL, eng->st));
            rl_cu_moe_mma_args g = {.W = W, .N = N, .K = K, .x = eng->w.XB, .x_lo = eng->w.XL,
                                    .ldx = K, .xdiv = 1, .y = y, .ldy = ldy, .accumulate = acc,
                                    .T = T, .fixed_order = 1};
            CU_TRY(rl_cu_moe_mma(&g, eng->st));
            return RL_OK;
        }
        rl_cu_gemm g = {.W = W, .w_f32 = eng->wf32, .N = N, .K = K, .x = x, .ldx = ldx, .xdiv = 1,
                        .y = y, .ldy = ldy, .accumulate = acc, .T = T};
        CU_TRY(rl_cu_wgemm(&g, eng->st));
        return RL_OK;
    }
    float alpha = 1.0f, beta = acc ? 1.0f : 0.0f;
    if (eng->wf32) { /* fp32 weights (f32/f16/F8 checkpoints): full fp32 GEMM */
        CUBLAS_TRY(cublasGemmEx(eng->cb, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &alpha, W, CUDA_R_32F,
                                K, x, CUDA_R_32F, ldx, &beta, y, CUDA_R_32F, ldy,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return RL_OK;
    }
    if (eng->small && T <= RL_CU_GEMV_T && rl_cu_gemv_ok(K, ldx, x, W)) {
        /* few rows (decode): one GEMV reading W once, fp32 activations */
        rl_cu_gemv_args g = {.W = {W}, .y = {y}, .N = {N}, .ldy = {ldy}, .n = 1, .K = K, .x = x,
                             .ldx = ldx, .T = T, .accumulate = acc};
        CU_TRY(rl_cu_gemv(&g, eng->st));
        return RL_OK;
    }
    /* Activations are fp32 (SPEC §0.2): x = hi + lo with hi = bf16(x) (XB) and
     * lo = bf16(x - hi) (XL), two bf16 GEMMs into the same fp32 output carry
     * ~16 bits of x's mantissa. One bf16 rounding alone cost up to 1.7e-2
     * relative error per logits row on the test models (H200, 2026-11-27). The
     * second GEMM re-reads W: decode pays one more pass over the dense weights. */
    if (!xb_ready) CU_TRY(rl_cu_to_bf16(x, T, K, ldx, eng->w.XB, eng->st));
    if (T <= RL_CU_STACK_T && (size_t)N <= eng->w.y2_n) {
        /* few rows (decode): one GEMM over [hi rows; lo rows] reads W once,
         * then y (+)= top half + bottom half */
        float zero = 0.0f;
        CU_TRY(rl_cu_bf16_lo(x, T, K, ldx, eng->w.XB + (size_t)T * K, eng->st));
        CUBLAS_TRY(cublasGemmEx(eng->cb, CUBLAS_OP_T, CUBLAS_OP_N, N, 2 * T, K, &alpha, W,
                                CUDA_R_16BF, K, eng->w.XB, CUDA_R_16BF, K, &zero, eng->w.Y2,
                                CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CU_TRY(rl_cu_add_halves(eng->w.Y2, T, N, y, ldy, acc, eng->st));
        return RL_OK;
    }
    CU_TRY(rl_cu_bf16_lo(x, T, K, ldx, eng->w.XL, eng->st));
    CUBLAS_TRY(cublasGemmEx(eng->cb, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &alpha, W, CUDA_R_16BF, K,
                            eng->w.XB, CUDA_R_16BF, K, &beta, y, CUDA_R_32F, ldy,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    float one = 1.0f;
    CUBLAS_TRY(cublasGemmEx(eng->cb, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &alpha, W, CUDA_R_16BF, K,
                            eng->w.XL, CUDA_R_16BF, K, &one, y, CUDA_R_32F, ldy,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return RL_OK;
}

/* RMSNorm of rows of x into y (and XB in bf16 outside the deterministic mode) */
static int norm(rl_cuda_engine *eng, const float *x, int T, int dim, const float *w, float *y,
                rl_err *e) {
    float eps = eng->m->cfg.rms_norm_eps;
    if (eng->opt.deterministic)
        CU_TRY(rl_cu_rmsnorm(x, T, dim, w, eps, y, NULL, eng->st));
    else if (eng->small)
        CU_TRY(rl_cu_rmsnorm_fast(x, T, dim, w, eps, y, eng->w.XB, eng->st));
    else
        CU_TRY(rl_cu_rmsnorm(x, T, dim, w, eps, y, eng->w.XB, eng->st));
    return RL_OK;
}

typedef struct stepctx {
    rl_cuda_engine *eng;
    const meta *md;
    int n, T, max_n, layer;
    /* the small MoE path left its combine to the next norm (rl_cu_moe_combine_norm):
     * the MoE layer whose YK/WT/YS wait */
    const rl_layer *pend;
} stepctx;

static int attention(const stepctx *x, const rl_layer *ly, const cu_layer *d, rl_err *e) {
    rl_cuda_engine *eng = x->eng;
    const rl_config *c = &eng->m->cfg;
    cu_work *w = &eng->w;
    int hid = c->hidden_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int D = c->head_dim, HD = H * D, T = x->T;
    float eps = c->rms_norm_eps, scale = 1.0f / sqrtf((float)D);
    int det = eng->opt.deterministic;
    if (ly->softmax) {
        int W = (H + 2 * Hkv) * D;
        RL_TRY(gemm(eng, d->qkv, W, hid, w->A, hid, T, w->QKV, W, 0, 1, e));
        CU_TRY(rl_cu_qk_prep(w->QKV, T, W, H, Hkv, D, 0, d->q_norm, d->k_norm, eps, c->rotary_dim,
                             x->md->cs, eng->st));
        CU_TRY(rl_cu_kv_append(w->QKV, W, x->md->spans, x->n, x->max_n, x->md->ptabs, eng->pool,
                               eng->page_elems, ly->kind_index, H, Hkv, D, eng->st));
        CU_TRY(rl_cu_gqa(w->QKV, W, w->O, HD, x->md->spans, x->n, x->max_n, x->md->ptabs,
                         eng->pool, eng->page_elems, ly->kind_index, H, Hkv, D, scale, det,
                         eng->st));
        return gemm(eng, d->dense, hid, HD, w->O, HD, T, w->X, hid, 1, 0, e);
    }
    if (eng->small && !det && !eng->wf32 && T <= RL_CU_GEMV_T &&
        rl_cu_gemv_ok(hid, hid, w->A, d->qkv) && rl_cu_gemv_ok(hid, hid, w->A, d->g_proj)) {
        /* QKV and the gate projection read the same rows: one launch */
        rl_cu_gemv_args g = {.W = {d->qkv, d->g_proj}, .y = {w->QKV, w->G}, .N = {3 * HD, HD},
                             .ldy = {3 * HD, HD}, .n = 2, .K = hid, .x = w->A, .ldx = hid, .T = T};
        CU_TRY(rl_cu_gemv(&g, eng->st));
    } else {
        RL_TRY(gemm(eng, d->qkv, 3 * HD, hid, w->A, hid, T, w->QKV, 3 * HD, 0, 1, e));
        RL_TRY(gemm(eng, d->g_proj, HD, hid, w->A, hid, T, w->G, HD, 0, 1, e));
    }
    CU_TRY(rl_cu_qk_prep(w->QKV, T, 3 * HD, H, H, D, c->linear_silu ? 3 * HD : 0, d->q_norm,
                         d->k_norm, eps, c->rotary_dim, x->md->cs, eng->st));
    CU_TRY(rl_cu_lightning(w->QKV, 3 * HD, w->O, HD, x->md->spans, x->n, x->max_n,
                           x->md->states + (size_t)ly->kind_index * x->n, H, D, d->decay_pw,
                           scale, det, eng->st));
    CU_TRY(rl_cu_group_norm_gate(w->O, w->G, T, HD, c->group_norm_size, d->g_norm, eps, w->U,
                                 eng->st));
    return gemm(eng, d->dense, hid, HD, w->U, HD, T, w->X, hid, 1, 0, e);
}

static int mlp(stepctx *x, const rl_layer *ly, const cu_layer *d, rl_err *e) {
    rl_cuda_engine *eng = x->eng;
    const rl_config *c = &eng->m->cfg;
    cu_work *w = &eng->w;
    int hid = c->hidden_size, T = x->T;
    if (!ly->moe) {
        int I = ly->gate.rows;
        RL_TRY(gemm(eng, d->gate, I, hid, w->A, hid, T, w->M1, I, 0, 1, e));
        RL_TRY(gemm(eng, d->up, I, hid, w->A, hid, T, w->M2, I, 0, 1, e));
        CU_TRY(rl_cu_swiglu(w->M1, w->M2, (size_t)T * I, eng->st));
        return gemm(eng, d->down, hid, I, w->M1, I, T, w->X, hid, 1, 0, e);
    }
    int E = c->num_experts, K = c->num_experts_per_tok, I = ly->e_gate[0].rows, TK = T * K;
    if (eng->small && !eng->opt.deterministic && !eng->wf32 && T <= eng->small_T &&
        rl_cu_moe_small_ok(E, T, K, c->n_group) && I % 8 == 0 && d->shared_I % 8 == 0 &&
        rl_cu_gemv_ok(hid, hid, w->A, d->e_gate) && rl_cu_gemv_ok(hid, hid, w->A, d->router)) {
        /* Few tokens (decode): the router, routing and bucketing in one launch, then the
         * chosen experts and the shared expert as GEMVs over the sorted rows (gate + up +
         * SwiGLU, then down), fp32 activations; the combine waits for the next norm. */
        int sI = ly->has_shared ? d->shared_I : 0;
        rl_cu_route_small_args ra = {.router = d->router, .x = w->A, .bias = d->ebias, .route = 1,
                                     .ldx = hid,
                                     .hid = hid, .T = T, .E = E, .K = K, .G = c->n_group,
                                     .topk_group = c->topk_group,
                                     .scale = c->routed_scaling_factor, .logits = w->R,
                                     .wt = w->WT, .sel = w->sel, .offsets = w->offs,
                                     .rows = w->rows, .act = w->toff, .counter = w->sync};
        CU_TRY(rl_cu_moe_route_small(&ra, eng->st));
        if (eng->opt.record_routing)
            CU_TRY(cudaMemcpyAsync(eng->rec_sel + (size_t)x->layer * eng->rec_cap, w->sel,
                                   sizeof(int) * (size_t)TK, cudaMemcpyDeviceToDevice, eng->st));
        mark(eng, 5);
        int ldh = I > sI ? I : sI;
        rl_cu_moe_small_args ma = {.e_gate = d->e_gate, .e_up = d->e_up, .e_down = d->e_down,
                                   .s_gate = sI ? d->s_gate : NULL, .s_up = sI ? d->s_up : NULL,
                                   .s_down = sI ? d->s_down : NULL, .hid = hid, .I = I,
                                   .sI = sI, .T = T, .K = K, .E = E, .x = w->A, .ldx = hid,
                                   .h = w->M1, .ldh = ldh, .yk = w->YK, .ys = w->YS,
                                   .offsets = w->offs, .rows = w->rows, .act = w->toff};
        CU_TRY(rl_cu_moe_experts_small(&ma, eng->st));
        mark(eng, 6);
        x->pend = ly;
        return RL_OK;
    }
    if (eng->small && !eng->opt.deterministic && !eng->wf32 && T <= 256 &&
        rl_cu_gemv_ok(hid, hid, w->A, d->router)) {
        /* rl_cu_moe_route_small's router alone (bitwise rl_cu_wgemm's scores, more
         * blocks for a few dozen tokens) */
        rl_cu_route_small_args ra = {.router = d->router, .x = w->A, .route = 0, .ldx = hid,
                                     .hid = hid, .T = T, .E = E, .K = K, .logits = w->R};
        CU_TRY(rl_cu_moe_route_small(&ra, eng->st));
    } else if (eng->opt.deterministic || (eng->small && !eng->wf32)) {
        /* the fixed-order router; the default mode too (with the small path), so that
         * its scores are those of rl_cu_moe_route_small for any batch */
        rl_cu_gemm r = {.W = d->router, .w_f32 = 1, .N = E, .K = hid, .x = w->A, .ldx = hid,
                        .xdiv = 1, .y = w->R, .ldy = E, .T = T};
        CU_TRY(rl_cu_wgemm(&r, eng->st));
    } else { /* full fp32 (no TF32): top-k sees scores as close to the CPU's as wgemm's */
        float one = 1.0f, zero = 0.0f;
        CUBLAS_TRY(cublasGemmEx(eng->cb, CUBLAS_OP_T, CUBLAS_OP_N, E, T, hid, &one, d->router,
                                CUDA_R_32F, hid, w->A, CUDA_R_32F, hid, &zero, w->R, CUDA_R_32F,
                                E, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    CU_TRY(rl_cu_route(w->R, T, E, K, c->n_group, c->topk_group, c->routed_scaling_factor,
                       d->ebias, w->RSCR, w->sel, w->WT, eng->st));
    /* bf16 weights: the experts on tensor cores (rl_cu_moe_mma with the activations split
     * in bf16 hi + lo, tiles of RL_CU_MMA_TOKENS rows found on the device). Default mode:
     * at about 2 rows per expert or more (decode of fewer tokens measured slower there at
     * ~1 row per expert), its fastest kernel. Deterministic mode: for every T (a threshold
     * on T would make a token's result depend on its batch), the fixed-order kernel.
     * Otherwise (fp32 weights, the shapes or thresholds not met) rl_cu_wgemm. */
    int det = eng->opt.deterministic;
    int mma = !eng->wf32 && (det ? eng->det_mma
                                 : eng->moe_mma && TK >= RL_CU_MMA_TOKENS && TK >= 2 * E) &&
              rl_cu_moe_mma_ok(hid, hid, w->XB, d->e_gate, (size_t)I * hid) &&
              rl_cu_moe_mma_ok(hid, hid, w->XB, d->e_up, (size_t)I * hid) &&
              rl_cu_moe_mma_ok(I, I, w->MB, d->e_down, (size_t)hid * I);
    CU_TRY(rl_cu_moe_bucket(w->sel, TK, E, mma ? RL_CU_MMA_TOKENS : 8, w->counts, w->offs,
                            w->toff, w->rows, eng->st));
    if (eng->opt.record_routing)
        CU_TRY(cudaMemcpyAsync(eng->rec_sel + (size_t)x->layer * eng->rec_cap, w->sel,
                               sizeof(int) * (size_t)TK, cudaMemcpyDeviceToDevice, eng->st));
    mark(eng, 5);
    if (mma) {
        /* gate and up of the sorted rows in one launch; x = bf16(A) left in XB by the
         * norm (the deterministic mode's norm does not: split here), plus its low part */
        if (det)
            CU_TRY(rl_cu_split_bf16(w->A, T, hid, hid, w->XB, w->XL, eng->st));
        else
            CU_TRY(rl_cu_bf16_lo(w->A, T, hid, hid, w->XL, eng->st));
        rl_cu_moe_mma_args g = {.W = d->e_gate, .W2 = d->e_up, .N = I, .K = hid,
                                .wstride = (size_t)I * hid, .x = w->XB, .x_lo = w->XL, .ldx = hid,
                                .xrow = w->rows, .xdiv = K, .y = w->M1, .y2 = w->M2, .ldy = I,
                                .offsets = w->offs, .tile_off = w->toff, .E = E,
                                .max_tiles = (TK + RL_CU_MMA_TOKENS - 1) / RL_CU_MMA_TOKENS +
                                             (E < TK ? E : TK),
                                .fixed_order = det};
        CU_TRY(rl_cu_moe_mma(&g, eng->st));
        CU_TRY(rl_cu_swiglu_bf16(w->M1, w->M2, (size_t)TK * I, w->MB, w->ML, eng->st));
        rl_cu_moe_mma_args dn = g;
        dn.W = d->e_down;
        dn.W2 = NULL;
        dn.N = hid;
        dn.K = I;
        dn.wstride = (size_t)hid * I;
        dn.x = w->MB;
        dn.x_lo = w->ML;
        dn.ldx = I;
        dn.xrow = NULL;
        dn.xdiv = 1;
        dn.y = w->YK;
        dn.y2 = NULL;
        dn.ldy = hid;
        dn.yrow = w->rows;
        CU_TRY(rl_cu_moe_mma(&dn, eng->st));
    } else {
        rl_cu_gemm g = {.W = d->e_gate, .w_f32 = eng->wf32, .N = I, .K = hid,
                        .wstride = (size_t)I * hid, .x = w->A, .ldx = hid, .xrow = w->rows,
                        .xdiv = K, .y = w->M1, .ldy = I, .T = TK, .offsets = w->offs,
                        .tile_off = w->toff, .E = E,
                        .max_tiles = (TK + 7) / 8 + (E < TK ? E : TK)};
        CU_TRY(rl_cu_wgemm(&g, eng->st));
        g.W = d->e_up;
        g.y = w->M2;
        CU_TRY(rl_cu_wgemm(&g, eng->st));
        CU_TRY(rl_cu_swiglu(w->M1, w->M2, (size_t)TK * I, eng->st));
        rl_cu_gemm dn = g;
        dn.W = d->e_down;
        dn.N = hid;
        dn.K = I;
        dn.wstride = (size_t)hid * I;
        dn.x = w->M1;
        dn.ldx = I;
        dn.xrow = NULL;
        dn.xdiv = 1;
        dn.y = w->YK;
        dn.ldy = hid;
        dn.yrow = w->rows;
        CU_TRY(rl_cu_wgemm(&dn, eng->st));
    }
    if (ly->has_shared) {
        mark(eng, 6);
        int sI = d->shared_I;
        /* XB still holds bf16(A): the experts read it, nothing since the norm wrote it
         * (default mode; the deterministic mode's gemm() splits A itself) */
        RL_TRY(gemm(eng, d->s_gate, sI, hid, w->A, hid, T, w->M1, sI, 0, 1, e));
        RL_TRY(gemm(eng, d->s_up, sI, hid, w->A, hid, T, w->M2, sI, 0, 1, e));
        CU_TRY(rl_cu_swiglu(w->M1, w->M2, (size_t)T * sI, eng->st));
        RL_TRY(gemm(eng, d->s_down, hid, sI, w->M1, sI, T, w->YS, hid, 0, 0, e));
    }
    if (ly->has_shared) mark(eng, 7);
    CU_TRY(rl_cu_moe_combine(w->X, w->YK, w->WT, ly->has_shared ? w->YS : NULL, T, K, hid,
                             eng->st));
    mark(eng, 6);
    return RL_OK;
}

static int check(rl_cuda_engine *eng, const rl_cuda_span *spans, int n, rl_err *e) {
    const rl_config *c = &eng->m->cfg;
    if (n <= 0) return rl_errf(e, RL_E_ARG, "rl_cuda_step: no spans");
    for (int s = 0; s < n; s++) {
        const rl_cuda_span *sp = &spans[s];
        if (!sp->seq || !sp->tokens || sp->n <= 0)
            return rl_errf(e, RL_E_ARG, "rl_cuda_step: span %d is empty or has no sequence", s);
        if (sp->seq->eng != eng)
            return rl_errf(e, RL_E_ARG, "rl_cuda_step: span %d's sequence belongs to another engine", s);
        if (sp->first_pos != sp->seq->pos)
            return rl_errf(e, RL_E_ARG, "rl_cuda_step: span %d starts at position %d but its "
                           "sequence is at %d", s, sp->first_pos, sp->seq->pos);
        if (sp->sample && (sp->want != RL_LOGITS_LAST || !sp->sample->smp))
            return rl_errf(e, RL_E_ARG, "rl_cuda_step: span %d asks for a sample without "
                           "RL_LOGITS_LAST or without a sampler", s);
        if (sp->want != RL_LOGITS_NONE && !sp->logits && !sp->sample)
            return rl_errf(e, RL_E_ARG, "rl_cuda_step: span %d wants logits but has no buffer", s);
        for (int r = 0; r < s; r++)
            if (spans[r].seq == sp->seq)
                return rl_errf(e, RL_E_ARG, "rl_cuda_step: spans %d and %d use the same sequence", r, s);
        if ((long long)sp->first_pos + sp->n > eng->max_ctx)
            return rl_errf(e, RL_E_CAPACITY, "sequence would reach %lld tokens, above the context "
                           "length %d", (long long)sp->first_pos + sp->n, eng->max_ctx);
        for (int j = 0; j < sp->n; j++)
            if (sp->tokens[j] < 0 || sp->tokens[j] >= c->vocab_size)
                return rl_errf(e, RL_E_ARG, "token id %d at index %d is outside the vocabulary "
                               "[0, %d)", sp->tokens[j], j, c->vocab_size);
    }
    return RL_OK;
}

/* The device work of a step after its metadata upload: embedding, layers,
 * final norm and LM head into w->LOGITS. Launches only (no host sync, no
 * allocation once the step's buffers exist), so it can be captured. */
static int forward(rl_cuda_engine *eng, stepctx *x, int nl, rl_err *e) {
    const rl_model *m = eng->m;
    const rl_config *c = &m->cfg;
    const meta *md = x->md;
    cu_work *w = &eng->w;
    int hid = c->hidden_size, T = x->T;
    float eps = c->rms_norm_eps;
    size_t V = (size_t)c->vocab_size;
    eng->n_ev = 0;
    mark(eng, 0);
    CU_TRY(rl_cu_embed(eng->embed, eng->wf32, md->ids, T, hid, w->X, eng->st));
    mark(eng, 0);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rl_layer *ly = &m->layers[l];
        const cu_layer *d = &eng->L[l];
        x->layer = l;
        if (x->pend) {
            CU_TRY(rl_cu_moe_combine_norm(w->X, w->YK, w->WT, x->pend->has_shared ? w->YS : NULL,
                                          T, c->num_experts_per_tok, hid, d->in_norm, eps, w->A,
                                          w->XB, eng->st));
            x->pend = NULL;
        } else {
            RL_TRY(norm(eng, w->X, T, hid, d->in_norm, w->A, e));
        }
        mark(eng, 1);
        RL_TRY(attention(x, ly, d, e));
        mark(eng, ly->softmax ? 3 : 2);
        RL_TRY(norm(eng, w->X, T, hid, d->post_norm, w->A, e));
        mark(eng, 1);
        RL_TRY(mlp(x, ly, d, e));
        if (!ly->moe) mark(eng, 4);
    }
    if (x->pend) {
        CU_TRY(rl_cu_moe_combine(w->X, w->YK, w->WT, x->pend->has_shared ? w->YS : NULL, T,
                                 c->num_experts_per_tok, hid, eng->st));
        x->pend = NULL;
        mark(eng, 6);
    }
    if (nl) {
        CU_TRY(rl_cu_gather_rows(w->X, md->lrows, nl, hid, w->LOG, eng->st));
        RL_TRY(norm(eng, w->LOG, nl, hid, eng->final_norm, w->LOG, e));
        RL_TRY(gemm(eng, eng->lm_head, (int)V, hid, w->LOG, hid, nl, w->LOGITS, (int)V, 0, 1, e));
    }
    mark(eng, 0);
    return RL_OK;
}

/* Captures forward() into a graph and launches it. A capture that fails for
 * any reason (an API the capture refuses, a driver without support) turns
 * graphs off for this engine and runs the step eagerly instead: nothing ran
 * during the failed capture, so the step is simply done the plain way. */
static int capture_and_launch(rl_cuda_engine *eng, stepctx *x, int nl, unsigned wsgen,
                              rl_err *e) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t gx = NULL;
    rl_err ce = {0};
    int ok = cudaStreamBeginCapture(eng->st, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    if (ok) {
        int rc = forward(eng, x, nl, &ce);
        cudaError_t er = cudaStreamEndCapture(eng->st, &g);
        ok = !rc && er == cudaSuccess && g && cudaGraphInstantiate(&gx, g, 0) == cudaSuccess;
        if (g) cudaGraphDestroy(g);
    }
    if (!ok || wsgen != rl_cu_attn_ws_gen()) {
        if (gx) cudaGraphExecDestroy(gx);
        (void)cudaGetLastError(); /* the capture's error, not sticky */
        eng->graphs = 0;
        if (getenv("RL_CUDA_GRAPHS_DEBUG"))
            fprintf(stderr, "ringlm cuda: graph capture failed (%s); decode runs eagerly\n",
                    ce.msg[0] ? ce.msg : "capture or instantiate refused");
        return forward(eng, x, nl, e);
    }
    if (getenv("RL_CUDA_GRAPHS_DEBUG"))
        fprintf(stderr, "ringlm cuda: decode graph captured (%d spans, %d logit rows)\n", x->n, nl);
    if (eng->gx) cudaGraphExecDestroy(eng->gx);
    eng->gx = gx;
    eng->gx_n = x->n;
    eng->gx_nl = nl;
    eng->gx_gen = eng->gen;
    eng->gx_wsgen = wsgen;
    CU_TRY(cudaGraphLaunch(eng->gx, eng->st));
    return RL_OK;
}

int rl_cuda_step(rl_cuda_engine *eng, const rl_cuda_span *spans, int n, rl_err *e) {
    const rl_model *m = eng->m;
    const rl_config *c = &m->cfg;
    RL_TRY(check(eng, spans, n, e));
    int T = 0, nl = 0, max_n = 0;
    for (int s = 0; s < n; s++) {
        T += spans[s].n;
        nl += spans[s].want == RL_LOGITS_ALL ? spans[s].n : spans[s].want == RL_LOGITS_LAST;
        if (spans[s].n > max_n) max_n = spans[s].n;
    }
    for (int s = 0; s < n; s++) RL_TRY(rl_cu_seq_reserve(spans[s].seq, spans[s].n, e));
    RL_TRY(ensure_work(eng, T, e));
    size_t V = (size_t)c->vocab_size;
    if (nl) RL_TRY(ensure_logits(eng, (size_t)nl * V, e));
    meta md = {0};
    RL_TRY(upload_meta(eng, spans, n, T, nl, &md, e));
    size_t K = (size_t)(c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1);
    if (eng->opt.record_routing && c->num_experts && (size_t)T * K > eng->rec_cap) {
        CU_TRY(cudaStreamSynchronize(eng->st));
        eng->gen++;
        if (eng->rec_sel) cudaFree(eng->rec_sel);
        eng->rec_sel = NULL;
        eng->rec_cap = 0;
        CU_TRY(cudaMalloc((void **)&eng->rec_sel,
                          sizeof(int) * (size_t)T * K * (size_t)c->num_hidden_layers));
        eng->rec_cap = (size_t)T * K;
    }
    stepctx x = {eng, &md, n, T, max_n, 0, NULL};
    cu_work *w = &eng->w;
    CU_TRY(cudaEventRecord(eng->ev0, eng->st));
    /* decode steps: replay the graph of this shape, or capture it when the last
     * decode step had the same shape and no buffer moved since (so the capture
     * allocates nothing), or run eagerly and remember the shape */
    int decode = eng->graphs && max_n == 1;
    unsigned wsgen = rl_cu_attn_ws_gen();
    if (decode && eng->gx && eng->gx_n == n && eng->gx_nl == nl && eng->gx_gen == eng->gen &&
        eng->gx_wsgen == wsgen) {
        CU_TRY(cudaGraphLaunch(eng->gx, eng->st));
    } else if (decode && eng->seen_n == n && eng->seen_nl == nl && eng->seen_gen == eng->gen &&
               eng->seen_wsgen == wsgen) {
        RL_TRY(capture_and_launch(eng, &x, nl, wsgen, e));
    } else {
        RL_TRY(forward(eng, &x, nl, e));
        if (decode) {
            eng->seen_n = n;
            eng->seen_nl = nl;
            eng->seen_gen = eng->gen;
            eng->seen_wsgen = rl_cu_attn_ws_gen(); /* after the step's own scratch growth */
        }
    }
    RL_TRY(rl_cu_samples_launch(eng, spans, n, e));
    CU_TRY(cudaEventRecord(eng->ev1, eng->st));
    size_t r = 0;
    for (int s = 0; s < n; s++) {
        const rl_cuda_span *sp = &spans[s];
        size_t rows = sp->want == RL_LOGITS_ALL ? (size_t)sp->n : sp->want == RL_LOGITS_LAST;
        if (rows && sp->logits)
            CU_TRY(cudaMemcpyAsync(sp->logits, w->LOGITS + r * V, sizeof(float) * rows * V,
                                   cudaMemcpyDeviceToHost, eng->st));
        r += rows;
    }
    CU_TRY(cudaStreamSynchronize(eng->st));
    CU_TRY(cudaGetLastError());
    rl_cu_samples_finish(eng, spans, n);
    if (eng->prof) collect(eng);
    eng->last_T = T;
    for (int s = 0; s < n; s++) spans[s].seq->pos += spans[s].n;
    return RL_OK;
}

int rl_cuda_last_routing(rl_cuda_engine *eng, int layer, int *sel, rl_err *e) {
    const rl_config *c = &eng->m->cfg;
    if (!eng->opt.record_routing || !eng->rec_sel || layer < 0 ||
        layer >= c->num_hidden_layers || !eng->m->layers[layer].moe)
        return rl_errf(e, RL_E_ARG, "rl_cuda_last_routing: no routing recorded for layer %d", layer);
    CU_TRY(cudaMemcpy(sel, eng->rec_sel + (size_t)layer * eng->rec_cap,
                      sizeof(int) * (size_t)eng->last_T * c->num_experts_per_tok,
                      cudaMemcpyDeviceToHost));
    return RL_OK;
}

double rl_cuda_last_step_seconds(rl_cuda_engine *eng) {
    float ms = 0;
    if (cudaEventSynchronize(eng->ev1) != cudaSuccess) return 0;
    if (cudaEventElapsedTime(&ms, eng->ev0, eng->ev1) != cudaSuccess) return 0;
    return ms / 1e3;
}
