#include "train/train_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The forward reads matrices where the checkpoint's mmap holds them (the
 * model is loaded without the packed copy): the private mapping is made
 * writable so that each optimizer step writes the new weights in place
 * (copy-on-write: the file itself is never modified). */
static int make_writable(rl_model *m, rl_err *e) {
    for (int i = 0; i < m->ckpt.n_shards; i++) {
        rl_st_file *f = &m->ckpt.shards[i];
        if (f->map && mprotect(f->map, f->map_size, PROT_READ | PROT_WRITE) != 0)
            return rl_errf(e, RL_E_IO, "%s: cannot make the mapping writable", f->path);
    }
    return RL_OK;
}

static int bind_params(rl_trainer *t, rl_err *e) {
    rl_grads *g = &t->g;
    int64_t total = 0;
    for (int i = 0; i < g->n; i++) total += g->p[i].numel;
    t->params = calloc((size_t)g->n + 1, sizeof *t->params);
    t->masters = malloc((size_t)(total ? total : 1) * sizeof(float));
    if (!t->params || !t->masters) return rl_errf(e, RL_E_NOMEM, "out of memory (master weights)");
    float *mw = t->masters;
    for (int i = 0; i < g->n; i++) {
        rl_grad_param *gp = &g->p[i];
        rl_opt_param *p = &t->params[i];
        const rl_tensor *tt = rl_checkpoint_find(&t->m.ckpt, gp->name);
        if (!tt || tt->numel != gp->numel)
            return rl_errf(e, RL_E_SHAPE, "%s: parameter '%s' not found in the checkpoint", t->m.ckpt.dir, gp->name);
        p->name = gp->name;
        p->ndim = gp->ndim;
        p->shape[0] = gp->shape[0];
        p->shape[1] = gp->shape[1];
        p->numel = gp->numel;
        p->master = mw;
        p->grad = gp->g;
        p->decay = rl_param_decays(gp->name, gp->ndim);
        p->dtype = tt->dtype;
        if (tt->dtype != RL_F32 && tt->dtype != RL_BF16 && tt->dtype != RL_F16)
            return rl_errf(e, RL_E_UNSUPPORTED, "%s: cannot train '%s' stored as %s (F32, BF16, F16 only)",
                           t->m.ckpt.dir, gp->name, rl_dtype_name(tt->dtype));
        /* masters start from the weights as stored */
        const uint8_t *src = tt->data;
        for (int64_t k = 0; k < p->numel; k++) {
            if (tt->dtype == RL_F32) memcpy(&mw[k], src + 4 * k, 4);
            else {
                uint16_t h;
                memcpy(&h, src + 2 * k, 2);
                mw[k] = tt->dtype == RL_BF16 ? rl_bf16_to_f32(h) : rl_f16_to_f32(h);
            }
        }
        if (gp->w) p->dst = (void *)gp->w->data;
        else p->dst_f32 = gp->vec;
        mw += p->numel;
    }
    return RL_OK;
}

int rl_trainer_init(rl_trainer *t, const char *model_dir, const char *data_path, const rl_train_cfg *c,
                    bool resume, rl_err *e) {
    memset(t, 0, sizeof *t);
    t->c = *c;
    if (c->seq_len < 1 || c->batch_tokens < c->seq_len)
        return rl_errf(e, RL_E_ARG, "batch tokens (%d) must be at least the sequence length (%d)",
                       c->batch_tokens, c->seq_len);
    rl_load_opts lo = {.decay_conv = -1, .no_pack = true};
    int rc = rl_model_load(model_dir, &lo, &t->m, e);
    if (rc) return rc;
    if ((rc = make_writable(&t->m, e))) goto fail;
    if ((rc = rl_engine_init(&t->eng, &t->m, 0, e))) goto fail;
    if ((rc = rl_grads_init(&t->g, &t->m, e))) goto fail;
    if ((rc = bind_params(t, e))) goto fail;
    if ((rc = rl_adamw_init(&t->opt, t->params, t->g.n, &c->adam, e))) goto fail;
    if ((rc = rl_data_open(data_path, &t->data, e))) goto fail;
    if (t->data.vocab_size > t->m.cfg.vocab_size) {
        rc = rl_errf(e, RL_E_ARG, "%s: token ids go up to %d, the model's vocabulary has %d", data_path,
                     t->data.vocab_size, t->m.cfg.vocab_size);
        goto fail;
    }
    if (c->seq_len + 1 > t->eng.max_ctx) {
        rc = rl_errf(e, RL_E_ARG, "sequence length %d exceeds the model's context %d", c->seq_len, t->eng.max_ctx);
        goto fail;
    }
    if ((rc = rl_loader_init(&t->loader, &t->data, c->seq_len, c->val_fraction, c->seed, e))) goto fail;
    int L = t->m.cfg.num_hidden_layers, E = t->m.cfg.num_experts > 0 ? t->m.cfg.num_experts : 1;
    t->load = calloc((size_t)L * (size_t)E, sizeof(int));
    t->win = malloc(((size_t)c->seq_len + 1) * sizeof(int));
    if (!t->load || !t->win) {
        rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        goto fail;
    }
    t->st.loader = rl_loader_get(&t->loader);
    if (resume) {
        if ((rc = rl_train_load(model_dir, &t->m, &t->opt, &t->st, e))) goto fail;
        if ((rc = rl_loader_set(&t->loader, t->st.loader, e))) goto fail;
    }
    return RL_OK;
fail:
    rl_trainer_free(t);
    return rc;
}

void rl_trainer_free(rl_trainer *t) {
    rl_loader_free(&t->loader);
    rl_data_close(&t->data);
    rl_adamw_free(&t->opt);
    free(t->params);
    free(t->masters);
    if (t->g.p) rl_grads_free(&t->g);
    if (t->eng.m) rl_engine_free(&t->eng);
    if (t->m.layers) rl_model_free(&t->m);
    free(t->load);
    free(t->win);
    memset(t, 0, sizeof *t);
}

int rl_trainer_step(rl_trainer *t, rl_step_info *info, rl_err *e) {
    int S = t->c.seq_len, B = t->c.batch_tokens / S;
    rl_grads_zero(&t->g);
    double loss_sum = 0;
    for (int b = 0; b < B; b++) {
        rl_loader_next(&t->loader, t->win);
        float loss;
        int rc = rl_train_grad(&t->eng, t->win, S + 1, t->c.recompute, &t->g, &loss, e);
        if (rc) return rc;
        loss_sum += loss;
    }
    /* the step's gradient is the mean over its windows */
    if (B > 1) {
        float inv = 1.0f / (float)B;
        for (int i = 0; i < t->g.n; i++) {
            float *gg = t->g.p[i].g;
            for (int64_t k = 0; k < t->g.p[i].numel; k++) gg[k] *= inv;
        }
    }
    info->lr = rl_schedule_lr(&t->c.sched, t->st.step);
    info->grad_norm = rl_adamw_step(&t->opt, info->lr);
    info->loss = (float)(loss_sum / B);
    info->tokens = (int64_t)B * S;
    /* load statistics and the aux-loss-free bias update */
    const rl_config *cf = &t->m.cfg;
    int E = cf->num_experts, n_moe = 0;
    info->balance = 0;
    info->balance_cv = 0;
    for (int l = 0; l < cf->num_hidden_layers && E > 0; l++) {
        if (!t->m.layers[l].moe) continue;
        const int *ld = t->g.expert_load + (size_t)l * E;
        memcpy(t->load + (size_t)l * E, ld, sizeof(int) * (size_t)E);
        rl_expert_stats s;
        rl_expert_stats_of(ld, E, &s);
        if (s.max_over_mean > info->balance) info->balance = s.max_over_mean;
        info->balance_cv += s.cv;
        n_moe++;
        if (t->c.bias_rate > 0 && cf->moe_router_enable_expert_bias && t->m.layers[l].expert_bias)
            rl_expert_bias_update(t->m.layers[l].expert_bias, ld, E, t->c.bias_rate);
    }
    if (n_moe) info->balance_cv /= n_moe;
    t->st.step++;
    t->st.loader = rl_loader_get(&t->loader);
    return RL_OK;
}

int rl_trainer_eval(rl_trainer *t, int n, double *loss, rl_err *e) {
    int S = t->c.seq_len;
    int64_t nv = t->loader.n_val;
    if (n > 0 && n < nv) nv = n;
    float *lp = malloc((size_t)S * sizeof(float));
    if (!lp) return rl_errf(e, RL_E_NOMEM, "out of memory");
    double sum = 0;
    int rc = RL_OK;
    for (int64_t k = 0; k < nv && !rc; k++) {
        rl_loader_val(&t->loader, k, t->win);
        rc = rl_train_logprobs(&t->eng, t->win, S + 1, lp, e);
        for (int i = 0; i < S && !rc; i++) sum -= lp[i];
    }
    free(lp);
    *loss = nv > 0 ? sum / ((double)nv * S) : NAN;
    return rc;
}

int rl_trainer_save(rl_trainer *t, const char *dir, const char *const *copy_files, const char *config_json,
                    rl_err *e) {
    return rl_train_save(dir, &t->m, &t->opt, &t->st, copy_files, config_json, e);
}
