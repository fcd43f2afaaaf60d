/* Hugging Face checkpoint directory: config.json, then either the single
 * model.safetensors or model.safetensors.index.json and its shards. The
 * index and the shards must agree exactly. */
#include "format/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rl_read_file(const char *path, char **out, size_t *len, rl_err *e) {
    if (!path || !out) return rl_errf(e, RL_E_ARG, "rl_read_file: NULL argument");
    *out = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rl_errf(e, RL_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int er = errno;
        close(fd);
        return rl_errf(e, RL_E_IO, "%s: %s", path,
                       S_ISREG(st.st_mode) ? strerror(er) : "not a regular file");
    }
    size_t cap = (size_t)st.st_size, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return rl_errf(e, RL_E_NOMEM, "%s: out of memory for %zu bytes", path, cap);
    }
    for (;;) {
        if (n == cap) { /* the file may have grown since fstat */
            char probe;
            ssize_t r = read(fd, &probe, 1);
            if (r == 0) break;
            if (r < 0) {
                if (errno == EINTR) continue;
                goto fail;
            }
            char *nb = realloc(buf, cap * 2 + 2);
            if (!nb) {
                free(buf);
                close(fd);
                return rl_errf(e, RL_E_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = cap * 2 + 1;
            buf[n++] = probe;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return RL_OK;
fail: {
    int er = errno;
    free(buf);
    close(fd);
    return rl_errf(e, RL_E_IO, "%s: read failed: %s", path, strerror(er));
}
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void rl_checkpoint_close(rl_checkpoint *c) {
    if (!c) return;
    for (int i = 0; i < c->n_shards; i++) rl_st_close(&c->shards[i]);
    free(c->shards);
    free((void *)c->by_name);
    free(c->config_json);
    free(c->dir);
    memset(c, 0, sizeof *c);
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    const rl_tensor *x = *(const rl_tensor *const *)a, *y = *(const rl_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Base name of a shard path (shards are opened as dir/name). */
static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const rl_st_file *shard_of(const rl_checkpoint *c, const rl_tensor *t) {
    for (int i = 0; i < c->n_shards; i++) {
        const rl_st_file *f = &c->shards[i];
        if (f->n_tensors && t >= f->tensors && t < f->tensors + f->n_tensors) return f;
    }
    return NULL;
}

/* Opens the shards named by the index; *rootp receives the parsed index. */
static int open_indexed(rl_checkpoint *c, const char *index_path, json_t **rootp, rl_err *e) {
    json_error_t je;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
    *rootp = root;
    if (!root)
        return rl_errf(e, RL_E_FORMAT, "%s: invalid JSON at line %d column %d: %s",
                       index_path, je.line, je.column, je.text);
    int rc = RL_OK;
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        rc = rl_errf(e, RL_E_FORMAT, "%s: missing \"weight_map\" object", index_path);
        goto out;
    }
    size_t nw = json_object_size(wm);
    c->shards = calloc(nw ? nw : 1, sizeof *c->shards);
    if (!c->shards) {
        rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", index_path);
        goto out;
    }
    /* Open each distinct shard once, in order of first mention. */
    const char *name;
    json_t *v;
    json_object_foreach(wm, name, v) {
        if (!json_is_string(v)) {
            rc = rl_errf(e, RL_E_FORMAT,
                         "%s: weight_map entry for tensor '%s' is not a file name string",
                         index_path, name);
            goto out;
        }
        const char *sh = json_string_value(v);
        if (!*sh || strchr(sh, '/') || strstr(sh, "..") || strchr(sh, '\\')) {
            rc = rl_errf(e, RL_E_FORMAT,
                         "%s: tensor '%s': shard file name \"%s\" is not a plain file name in "
                         "the checkpoint directory",
                         index_path, name, sh);
            goto out;
        }
        int known = 0;
        for (int i = 0; i < c->n_shards && !known; i++)
            known = strcmp(base(c->shards[i].path), sh) == 0;
        if (known) continue;
        char *p = join(c->dir, sh);
        if (!p) {
            rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", index_path);
            goto out;
        }
        rc = rl_st_open(p, &c->shards[c->n_shards], e);
        free(p);
        if (rc) {
            rl_err_prefix(e, "%s names shard \"%s\" (tensor '%s')", index_path, sh, name);
            goto out;
        }
        c->n_shards++;
    }
out:
    return rc;
}

/* The weight_map and the shards' contents must agree exactly. */
static int check_index(const rl_checkpoint *c, const char *index_path, json_t *root,
                       rl_err *e) {
    json_t *wm = json_object_get(root, "weight_map");
    const char *name;
    json_t *v;
    /* Each shard tensor must be mapped to that shard. */
    for (int s = 0; s < c->n_shards; s++) {
        const rl_st_file *f = &c->shards[s];
        for (int i = 0; i < f->n_tensors; i++) {
            const char *tn = f->tensors[i].name;
            json_t *m = json_object_get(wm, tn);
            if (!m) {
                return rl_errf(e, RL_E_FORMAT,
                             "%s: tensor '%s' is in shard %s but not in the index weight_map",
                             index_path, tn, f->path);
            }
            if (strcmp(json_string_value(m), base(f->path)) != 0) {
                return rl_errf(e, RL_E_FORMAT,
                             "%s: tensor '%s' is in shard %s but the index maps it to %s",
                             index_path, tn, f->path, json_string_value(m));
            }
        }
    }
    /* Each weight_map name must be in its shard. */
    json_object_foreach(wm, name, v) {
        const char *sh = json_string_value(v);
        for (int s = 0; s < c->n_shards; s++) {
            const rl_st_file *f = &c->shards[s];
            if (strcmp(base(f->path), sh) != 0) continue;
            if (!rl_st_find(f, name)) {
                return rl_errf(e, RL_E_SHAPE,
                               "%s: the index maps tensor '%s' to shard %s, which has no such "
                               "tensor",
                               index_path, name, f->path);
            }
        }
    }
    return RL_OK;
}

int rl_checkpoint_open(const char *dir, rl_checkpoint *c, rl_err *e) {
    if (!dir || !c) return rl_errf(e, RL_E_ARG, "rl_checkpoint_open: NULL argument");
    memset(c, 0, sizeof *c);
    int rc = RL_OK;
    char *cfg = NULL, *single = NULL, *index = NULL;
    json_t *index_root = NULL;
    c->dir = strdup(dir);
    cfg = join(dir, "config.json");
    single = join(dir, "model.safetensors");
    index = join(dir, "model.safetensors.index.json");
    if (!c->dir || !cfg || !single || !index) {
        rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", dir);
        goto out;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        rc = rl_errf(e, RL_E_IO, "%s: cannot open checkpoint directory: %s", dir,
                     strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = rl_errf(e, RL_E_IO, "%s: not a directory", dir);
        goto out;
    }
    if ((rc = rl_read_file(cfg, &c->config_json, NULL, e))) goto out;

    /* As transformers does: the single file wins when both are present. */
    if (file_exists(single)) {
        c->shards = calloc(1, sizeof *c->shards);
        if (!c->shards) {
            rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", dir);
            goto out;
        }
        if ((rc = rl_st_open(single, &c->shards[0], e))) goto out;
        c->n_shards = 1;
    } else if (file_exists(index)) {
        if ((rc = open_indexed(c, index, &index_root, e))) goto out;
    } else {
        rc = rl_errf(e, RL_E_IO,
                     "%s: no model.safetensors or model.safetensors.index.json in the directory",
                     dir);
        goto out;
    }

    int total = 0;
    for (int s = 0; s < c->n_shards; s++) total += c->shards[s].n_tensors;
    c->by_name = malloc((size_t)(total ? total : 1) * sizeof *c->by_name);
    if (!c->by_name) {
        rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", dir);
        goto out;
    }
    for (int s = 0; s < c->n_shards; s++)
        for (int i = 0; i < c->shards[s].n_tensors; i++)
            c->by_name[c->n_tensors++] = &c->shards[s].tensors[i];
    qsort((void *)c->by_name, (size_t)c->n_tensors, sizeof *c->by_name, cmp_tensor_ptr);
    for (int i = 1; i < c->n_tensors; i++)
        if (strcmp(c->by_name[i - 1]->name, c->by_name[i]->name) == 0) {
            rc = rl_errf(e, RL_E_FORMAT, "%s: tensor '%s' appears in both %s and %s", dir,
                         c->by_name[i]->name, shard_of(c, c->by_name[i - 1])->path,
                         shard_of(c, c->by_name[i])->path);
            goto out;
        }
    if (index_root) rc = check_index(c, index, index_root, e);
out:
    json_decref(index_root);
    free(cfg);
    free(single);
    free(index);
    if (rc) rl_checkpoint_close(c);
    return rc;
}

const rl_tensor *rl_checkpoint_find(const rl_checkpoint *c, const char *name) {
    if (!c || !name || !c->n_tensors) return NULL;
    rl_tensor key;
    key.name = (char *)name;
    const rl_tensor *kp = &key;
    const rl_tensor *const *r =
        bsearch(&kp, c->by_name, (size_t)c->n_tensors, sizeof *c->by_name, cmp_tensor_ptr);
    return r ? *r : NULL;
}

int rl_mkdir_p(const char *dir, rl_err *e) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return rl_errf(e, RL_E_ARG, "%s: path too long", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return rl_errf(e, RL_E_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    return RL_OK;
}
