/* Upload of the model's weights to the device, once: matrices become bf16
 * (bf16 copied as is; f32/f16 rounded to bf16; F8 E4M3 dequantized with its
 * block scales, then rounded), the router fp32 (its top-k must see the same
 * scores as the CPU's fp32 router), norms, expert bias and decay powers fp32.
 * A matrix without data (rl_model_skeleton) gets hashed random values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_cuda.h"

int rl_cu_fail(rl_err *e, int code, const char *what) {
    const char *s = cudaGetErrorString((cudaError_t)code);
    return rl_errf(e, code == cudaErrorMemoryAllocation ? RL_E_NOMEM : RL_E_UNSUPPORTED,
                   "CUDA error %d (%s) in %s", code, s ? s : "?", what);
}

static int dalloc(rl_cuda_engine *eng, void **p, size_t bytes, rl_err *e) {
    if (eng->n_allocs == eng->cap_allocs) {
        int cap = eng->cap_allocs ? 2 * eng->cap_allocs : 256;
        void **a = realloc(eng->allocs, sizeof(void *) * (size_t)cap);
        if (!a) return rl_errf(e, RL_E_NOMEM, "out of memory");
        eng->allocs = a;
        eng->cap_allocs = cap;
    }
    cudaError_t rc = cudaMalloc(p, bytes ? bytes : 16);
    if (rc != cudaSuccess)
        return rl_errf(e, RL_E_NOMEM, "cannot allocate %.3f GB on the device for the weights "
                       "(%.3f GB allocated so far): %s", (double)bytes / 1e9,
                       (double)eng->weight_bytes / 1e9, cudaGetErrorString(rc));
    eng->allocs[eng->n_allocs++] = *p;
    eng->weight_bytes += (int64_t)bytes;
    return RL_OK;
}

static uint64_t name_seed(uint64_t seed, int a, int b, int c) {
    uint64_t h = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    h = (h ^ (uint64_t)(a + 1)) * 1099511628211ull;
    h = (h ^ (uint64_t)(b + 1)) * 1099511628211ull;
    h = (h ^ (uint64_t)(c + 1)) * 1099511628211ull;
    return h;
}

/* Writes matrix W at dst (rows*cols elements): bf16, or fp32 when eng->wf32. */
static int put_mat(rl_cuda_engine *eng, const rl_wmat *W, void *dst, uint64_t seed, rl_err *e) {
    size_t n = (size_t)W->rows * (size_t)W->cols;
    if (!W->data)
        return rl_cu_fill_random_bf16(dst, n, seed, sqrtf(3.0f / (float)W->cols), eng->st)
                   ? rl_errf(e, RL_E_UNSUPPORTED, "random fill failed") : RL_OK;
    if (W->dtype == (eng->wf32 ? RL_F32 : RL_BF16)) {
        CU_TRY(cudaMemcpyAsync(dst, W->data, n * rl_dtype_size(W->dtype), cudaMemcpyHostToDevice,
                               eng->st));
        return RL_OK;
    }
    void *tmp = NULL;
    float *sc = NULL;
    size_t bytes = n * rl_dtype_size(W->dtype);
    int rc = RL_OK;
    if (cudaMalloc(&tmp, bytes) != cudaSuccess) return rl_errf(e, RL_E_NOMEM, "device staging");
    int cr = (int)cudaMemcpyAsync(tmp, W->data, bytes, cudaMemcpyHostToDevice, eng->st);
    if (!cr && W->dtype == RL_F8_E4M3) {
        int sr = (W->rows + W->sbr - 1) / W->sbr, scn = (W->cols + W->sbc - 1) / W->sbc;
        size_t sb = sizeof(float) * (size_t)sr * (size_t)scn;
        cr = (int)cudaMalloc((void **)&sc, sb);
        if (!cr) cr = (int)cudaMemcpyAsync(sc, W->scale, sb, cudaMemcpyHostToDevice, eng->st);
        if (!cr) cr = rl_cu_f8_dequant(tmp, W->rows, W->cols, sc, W->sbr, W->sbc, dst, eng->wf32,
                                       eng->st);
    } else if (!cr) {
        int dt = W->dtype == RL_F32 ? 0 : W->dtype == RL_F16 ? 1 : 2;
        cr = eng->wf32 ? rl_cu_convert_f32(tmp, dt, n, dst, eng->st)
                       : rl_cu_convert_bf16(tmp, dt, n, dst, eng->st);
    }
    if (!cr) cr = (int)cudaStreamSynchronize(eng->st);
    if (cr) rc = rl_cu_fail(e, cr, "weight conversion");
    cudaFree(tmp);
    if (sc) cudaFree(sc);
    return rc;
}

static size_t esz(const rl_cuda_engine *eng) { return eng->wf32 ? 4 : 2; }

static int mat(rl_cuda_engine *eng, const rl_wmat *W, void **out, uint64_t seed, rl_err *e) {
    *out = NULL;
    if (W->rows == 0) return RL_OK; /* absent */
    int rc = dalloc(eng, out, (size_t)W->rows * W->cols * esz(eng), e);
    return rc ? rc : put_mat(eng, W, *out, seed, e);
}

static int vec(rl_cuda_engine *eng, const float *v, size_t n, float **out, rl_err *e) {
    *out = NULL;
    if (!v) return RL_OK;
    int rc = dalloc(eng, (void **)out, n * sizeof(float), e);
    if (rc) return rc;
    CU_TRY(cudaMemcpy(*out, v, n * sizeof(float), cudaMemcpyHostToDevice));
    return RL_OK;
}

/* experts of one kind ([E] matrices of equal shape) into one [E][rows][cols] buffer */
static int experts(rl_cuda_engine *eng, const rl_wmat *Ws, int E, void **out, uint64_t seed,
                   rl_err *e) {
    size_t per = (size_t)Ws[0].rows * Ws[0].cols * esz(eng);
    int rc = dalloc(eng, out, per * (size_t)E, e);
    for (int x = 0; !rc && x < E; x++)
        rc = put_mat(eng, &Ws[x], (char *)*out + per * x, seed + (uint64_t)x, e);
    return rc;
}

static int router(rl_cuda_engine *eng, const rl_wmat *W, float **out, uint64_t seed, rl_err *e) {
    size_t n = (size_t)W->rows * W->cols;
    int rc = dalloc(eng, (void **)out, n * sizeof(float), e);
    if (rc) return rc;
    if (!W->data) {
        uint16_t *t = NULL;
        CU_TRY(cudaMalloc((void **)&t, n * 2));
        int cr = rl_cu_fill_random_bf16(t, n, seed, sqrtf(3.0f / (float)W->cols), eng->st);
        if (!cr) cr = rl_cu_convert_f32(t, 2, n, *out, eng->st);
        if (!cr) cr = (int)cudaStreamSynchronize(eng->st);
        cudaFree(t);
        return cr ? rl_cu_fail(e, cr, "router fill") : RL_OK;
    }
    if (W->dtype == RL_F32) {
        CU_TRY(cudaMemcpy(*out, W->data, n * sizeof(float), cudaMemcpyHostToDevice));
        return RL_OK;
    }
    void *t = NULL;
    size_t bytes = n * rl_dtype_size(W->dtype);
    CU_TRY(cudaMalloc(&t, bytes));
    int cr = (int)cudaMemcpy(t, W->data, bytes, cudaMemcpyHostToDevice);
    if (!cr) cr = rl_cu_convert_f32(t, W->dtype == RL_F16 ? 1 : 2, n, *out, eng->st);
    if (!cr) cr = (int)cudaStreamSynchronize(eng->st);
    cudaFree(t);
    return cr ? rl_cu_fail(e, cr, "router conversion") : RL_OK;
}

/* Whether any matrix is stored in another dtype than bf16. */
static int needs_f32(const rl_model *m) {
    const rl_config *c = &m->cfg;
#define NB(w) ((w).data && (w).dtype != RL_BF16)
    if (NB(m->embed) || NB(m->lm_head)) return 1;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rl_layer *y = &m->layers[l];
        if (NB(y->qkv) || NB(y->dense) || NB(y->g_proj) || NB(y->gate) || NB(y->up) ||
            NB(y->down) || NB(y->s_gate) || NB(y->s_up) || NB(y->s_down))
            return 1;
        for (int x = 0; y->moe && x < c->num_experts; x++)
            if (NB(y->e_gate[x]) || NB(y->e_up[x]) || NB(y->e_down[x])) return 1;
    }
#undef NB
    return 0;
}

int rl_cu_upload_weights(rl_cuda_engine *eng, rl_err *e) {
    const rl_model *m = eng->m;
    const rl_config *c = &m->cfg;
    uint64_t sd = eng->opt.random_seed;
    eng->wf32 = needs_f32(m);
    RL_TRY(mat(eng, &m->embed, &eng->embed, name_seed(sd, -1, 0, 0), e));
    if (c->tie_word_embeddings) eng->lm_head = eng->embed;
    else RL_TRY(mat(eng, &m->lm_head, &eng->lm_head, name_seed(sd, -1, 1, 0), e));
    RL_TRY(vec(eng, m->final_norm, (size_t)c->hidden_size, &eng->final_norm, e));
    int Lc = c->num_hidden_layers, H = c->num_attention_heads, D = c->head_dim;
    eng->L = calloc((size_t)Lc, sizeof(cu_layer));
    if (!eng->L) return rl_errf(e, RL_E_NOMEM, "out of memory");
    for (int l = 0; l < Lc; l++) {
        const rl_layer *ly = &m->layers[l];
        cu_layer *d = &eng->L[l];
        size_t hid = (size_t)c->hidden_size;
        d->qkv_rows = ly->qkv.rows;
        RL_TRY(vec(eng, ly->in_norm, hid, &d->in_norm, e));
        RL_TRY(vec(eng, ly->post_norm, hid, &d->post_norm, e));
        RL_TRY(vec(eng, ly->q_norm, (size_t)D, &d->q_norm, e));
        RL_TRY(vec(eng, ly->k_norm, (size_t)D, &d->k_norm, e));
        RL_TRY(mat(eng, &ly->qkv, &d->qkv, name_seed(sd, l, 0, 0), e));
        RL_TRY(mat(eng, &ly->dense, &d->dense, name_seed(sd, l, 1, 0), e));
        if (!ly->softmax) {
            RL_TRY(mat(eng, &ly->g_proj, &d->g_proj, name_seed(sd, l, 2, 0), e));
            RL_TRY(vec(eng, ly->g_norm, (size_t)H * D, &d->g_norm, e));
            RL_TRY(vec(eng, ly->decay_pw, (size_t)H * (RL_CHUNK + 1), &d->decay_pw, e));
        }
        if (!ly->moe) {
            RL_TRY(mat(eng, &ly->gate, &d->gate, name_seed(sd, l, 3, 0), e));
            RL_TRY(mat(eng, &ly->up, &d->up, name_seed(sd, l, 4, 0), e));
            RL_TRY(mat(eng, &ly->down, &d->down, name_seed(sd, l, 5, 0), e));
            continue;
        }
        int E = c->num_experts;
        RL_TRY(router(eng, &ly->router, &d->router, name_seed(sd, l, 6, 0), e));
        RL_TRY(vec(eng, ly->expert_bias, (size_t)E, &d->ebias, e));
        RL_TRY(experts(eng, ly->e_gate, E, &d->e_gate, name_seed(sd, l, 7, 0), e));
        RL_TRY(experts(eng, ly->e_up, E, &d->e_up, name_seed(sd, l, 8, 0), e));
        RL_TRY(experts(eng, ly->e_down, E, &d->e_down, name_seed(sd, l, 9, 0), e));
        if (ly->has_shared) {
            d->shared_I = ly->s_gate.rows;
            RL_TRY(mat(eng, &ly->s_gate, &d->s_gate, name_seed(sd, l, 10, 0), e));
            RL_TRY(mat(eng, &ly->s_up, &d->s_up, name_seed(sd, l, 11, 0), e));
            RL_TRY(mat(eng, &ly->s_down, &d->s_down, name_seed(sd, l, 12, 0), e));
        }
    }
    CU_TRY(cudaStreamSynchronize(eng->st));
    return RL_OK;
}

void rl_cu_free_weights(rl_cuda_engine *eng) {
    for (int i = 0; i < eng->n_allocs; i++) cudaFree(eng->allocs[i]);
    free(eng->allocs);
    free(eng->L);
    eng->allocs = NULL;
    eng->L = NULL;
    eng->n_allocs = eng->cap_allocs = 0;
}
