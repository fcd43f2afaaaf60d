#include "train/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/checkpoint.h"

/* Writes text to path atomically. */
static int write_atomic(const char *path, const char *text, size_t n, rl_err *e) {
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return rl_errf(e, RL_E_IO, "%s: cannot write: %s", path, strerror(errno));
    bool ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return rl_errf(e, RL_E_IO, "%s: write failed", path);
    }
    return RL_OK;
}

int rl_train_copy_file(const char *src, const char *dst, rl_err *e) {
    char r1[PATH_MAX], r2[PATH_MAX];
    if (realpath(src, r1) && realpath(dst, r2) && strcmp(r1, r2) == 0) return RL_OK;
    char *txt;
    size_t n;
    int rc = rl_read_file(src, &txt, &n, e);
    if (rc) return rc;
    rc = write_atomic(dst, txt, n, e);
    free(txt);
    return rc;
}

/* ---- model.safetensors ------------------------------------------------- */

typedef struct src_ent {
    const float *f32;  /* values to convert (master or expert bias), or NULL */
    const void *raw;   /* bytes to copy as they are */
    rl_dtype dtype;
    int64_t pos;       /* elements written so far (pieces) */
} src_ent;

static int fill(void *ctx, int index, void *buf, size_t nbytes, rl_err *e) {
    (void)e;
    src_ent *s = &((src_ent *)ctx)[index];
    size_t es = rl_dtype_size(s->dtype), n = nbytes / es;
    if (!s->f32) {
        memcpy(buf, (const char *)s->raw + (size_t)s->pos * es, nbytes);
    } else {
        const float *x = s->f32 + s->pos;
        for (size_t i = 0; i < n; i++) {
            switch (s->dtype) {
            case RL_F32: ((float *)buf)[i] = x[i]; break;
            case RL_BF16: ((uint16_t *)buf)[i] = rl_f32_to_bf16(x[i]); break;
            case RL_F16: ((uint16_t *)buf)[i] = rl_f32_to_f16(x[i]); break;
            default: return rl_errf(e, RL_E_UNSUPPORTED, "cannot write %s", rl_dtype_name(s->dtype));
            }
        }
    }
    s->pos += (int64_t)n;
    return RL_OK;
}

static int cmp_param(const void *a, const void *b) {
    return strcmp((*(const rl_opt_param *const *)a)->name, (*(const rl_opt_param *const *)b)->name);
}

static const rl_opt_param *find_param(const rl_opt_param *const *sorted, int n, const char *name) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(sorted[mid]->name, name);
        if (!c) return sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* The expert bias of layer l when name is "model.layers.<l>.mlp.gate.expert_bias". */
static float *expert_bias_of(const rl_model *m, const char *name) {
    int l, k = 0;
    if (sscanf(name, "model.layers.%d.mlp.gate.expert_bias%n", &l, &k) != 1 || name[k]) return NULL;
    if (l < 0 || l >= m->cfg.num_hidden_layers || !m->layers[l].moe) return NULL;
    return m->layers[l].expert_bias;
}

static int save_model(const char *dir, const rl_model *m, const rl_adamw *opt, int64_t step, rl_err *e) {
    const rl_checkpoint *ck = &m->ckpt;
    int n = ck->n_tensors, rc = RL_OK;
    rl_st_entry *ent = calloc((size_t)n + 1, sizeof *ent);
    src_ent *src = calloc((size_t)n + 1, sizeof *src);
    const rl_opt_param **sorted = calloc((size_t)opt->n + 1, sizeof *sorted);
    if (!ent || !src || !sorted) {
        rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < opt->n; i++) sorted[i] = &opt->p[i];
    qsort(sorted, (size_t)opt->n, sizeof *sorted, cmp_param);
    for (int i = 0; i < n; i++) {
        const rl_tensor *t = ck->by_name[i];
        ent[i].name = t->name;
        ent[i].dtype = t->dtype;
        ent[i].ndim = t->ndim;
        memcpy(ent[i].shape, t->shape, sizeof t->shape);
        src[i].dtype = t->dtype;
        const rl_opt_param *p = find_param(sorted, opt->n, t->name);
        float *bias = p ? NULL : expert_bias_of(m, t->name);
        if (p && p->numel == t->numel) src[i].f32 = p->master;
        else if (bias) src[i].f32 = bias;
        else src[i].raw = t->data;
    }
    char path[PATH_MAX], meta[128];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(meta, sizeof meta, "{\"format\": \"pt\", \"ringlm_train_step\": \"%lld\"}", (long long)step);
    rc = rl_st_write(path, ent, n, meta, fill, src, NULL, NULL, e);
    if (rc) goto out;
    /* a sharded source leaves its index behind: the single file replaces it */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc = write_atomic(path, ck->config_json, strlen(ck->config_json), e);
out:
    free(ent);
    free(src);
    free(sorted);
    return rc;
}

/* ---- optimizer.safetensors + trainer_state.json ---------------------- */

static int save_optimizer(const char *dir, const rl_model *m, const rl_adamw *opt, rl_err *e) {
    int L = m->cfg.num_hidden_layers, cap = 3 * opt->n + L, n = 0;
    rl_st_entry *ent = calloc((size_t)cap + 1, sizeof *ent);
    char (*names)[200] = calloc((size_t)cap + 1, sizeof *names);
    if (!ent || !names) {
        free(ent);
        free(names);
        return rl_errf(e, RL_E_NOMEM, "out of memory");
    }
    static const char *const suffix[3] = {"master", "exp_avg", "exp_avg_sq"};
    for (int i = 0; i < opt->n; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(names[n], sizeof names[n], "%s.%s", opt->p[i].name, suffix[k]);
            ent[n] = (rl_st_entry){.name = names[n], .dtype = RL_F32, .ndim = 1,
                                   .shape = {opt->p[i].numel},
                                   .data = k == 0 ? opt->p[i].master : k == 1 ? opt->m[i] : opt->v[i]};
            n++;
        }
    for (int l = 0; l < L; l++)
        if (m->layers[l].moe && m->layers[l].expert_bias) {
            snprintf(names[n], sizeof names[n], "model.layers.%d.mlp.gate.expert_bias", l);
            ent[n] = (rl_st_entry){.name = names[n], .dtype = RL_F32, .ndim = 1,
                                   .shape = {m->cfg.num_experts}, .data = m->layers[l].expert_bias};
            n++;
        }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    int rc = rl_st_write(path, ent, n, NULL, NULL, NULL, NULL, NULL, e);
    free(ent);
    free(names);
    return rc;
}

int rl_train_save(const char *dir, const rl_model *m, const rl_adamw *opt, const rl_train_state *st,
                  const char *const *copy_files, const char *config_json, rl_err *e) {
    int rc = rl_mkdir_p(dir, e);
    if (rc) return rc;
    if ((rc = save_model(dir, m, opt, st->step, e))) return rc;
    for (int i = 0; copy_files && copy_files[i]; i++) {
        const char *base = strrchr(copy_files[i], '/');
        char dst[PATH_MAX];
        snprintf(dst, sizeof dst, "%s/%s", dir, base ? base + 1 : copy_files[i]);
        if ((rc = rl_train_copy_file(copy_files[i], dst, e))) return rc;
    }
    if ((rc = save_optimizer(dir, m, opt, e))) return rc;
    json_t *cfg = config_json ? json_loads(config_json, 0, NULL) : NULL;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)st->loader.seed);
    json_t *j = json_pack("{s:I, s:I, s:{s:s, s:I, s:I}, s:o}", "step", (json_int_t)st->step, "adam_step",
                          (json_int_t)opt->t, "loader", "seed", seed, "epoch", (json_int_t)st->loader.epoch,
                          "index", (json_int_t)st->loader.index, "config", cfg ? cfg : json_object());
    char *txt = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!txt) return rl_errf(e, RL_E_NOMEM, "out of memory");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    rc = write_atomic(path, txt, strlen(txt), e);
    free(txt);
    return rc;
}

int rl_train_load(const char *dir, rl_model *m, rl_adamw *opt, rl_train_state *st, rl_err *e) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return rl_errf(e, RL_E_FORMAT, "%s: %s (line %d)", path, je.text, je.line);
    json_int_t step = -1, t = -1, epoch = -1, index = -1;
    const char *seed = NULL;
    int bad = json_unpack_ex(j, &je, 0, "{s:I, s:I, s:{s:s, s:I, s:I}}", "step", &step, "adam_step", &t,
                             "loader", "seed", &seed, "epoch", &epoch, "index", &index);
    if (bad) {
        int rc = rl_errf(e, RL_E_FORMAT, "%s: %s", path, je.text);
        json_decref(j);
        return rc;
    }
    st->step = step;
    st->loader.seed = strtoull(seed, NULL, 10);
    st->loader.epoch = epoch;
    st->loader.index = index;
    opt->t = t;
    json_decref(j);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    rl_st_file f;
    int rc = rl_st_open(path, &f, e);
    if (rc) return rc;
    static const char *const suffix[3] = {"master", "exp_avg", "exp_avg_sq"};
    for (int i = 0; i < opt->n && !rc; i++)
        for (int k = 0; k < 3 && !rc; k++) {
            char name[200];
            snprintf(name, sizeof name, "%s.%s", opt->p[i].name, suffix[k]);
            const rl_tensor *tt = rl_st_find(&f, name);
            if (!tt || tt->dtype != RL_F32 || tt->numel != opt->p[i].numel) {
                rc = rl_errf(e, RL_E_SHAPE, "%s: tensor '%s' missing or not F32[%lld]", path, name,
                             (long long)opt->p[i].numel);
                break;
            }
            float *dst = k == 0 ? opt->p[i].master : k == 1 ? opt->m[i] : opt->v[i];
            memcpy(dst, tt->data, tt->nbytes);
        }
    for (int l = 0; l < m->cfg.num_hidden_layers && !rc; l++) {
        if (!m->layers[l].moe || !m->layers[l].expert_bias) continue;
        char name[200];
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate.expert_bias", l);
        const rl_tensor *tt = rl_st_find(&f, name);
        if (tt && tt->dtype == RL_F32 && tt->numel == m->cfg.num_experts)
            memcpy(m->layers[l].expert_bias, tt->data, tt->nbytes);
    }
    rl_st_close(&f);
    return rc;
}
