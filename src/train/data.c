#include "train/data.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char magic[8] = {'R', 'L', 'T', 'O', 'K', 'E', 'N', 'S'};

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

int rl_data_open(const char *path, rl_data *d, rl_err *e) {
    memset(d, 0, sizeof *d);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rl_errf(e, RL_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return rl_errf(e, RL_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size;
    if (size < RL_DATA_HEADER_BYTES) {
        close(fd);
        return rl_errf(e, RL_E_FORMAT, "%s: %zu bytes is shorter than the %d-byte header", path, size,
                       RL_DATA_HEADER_BYTES);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return rl_errf(e, RL_E_IO, "%s: cannot mmap: %s", path, strerror(errno));
    const uint8_t *h = map;
    int rc = RL_OK;
    if (memcmp(h, magic, 8) != 0) {
        rc = rl_errf(e, RL_E_FORMAT, "%s: byte 0: not a token file (magic \"RLTOKENS\" expected)", path);
        goto fail;
    }
    if (rd32(h + 8) != 1) {
        rc = rl_errf(e, RL_E_FORMAT, "%s: byte 8: unsupported version %u", path, rd32(h + 8));
        goto fail;
    }
    if (rd32(h + 12) != RL_DATA_HEADER_BYTES) {
        rc = rl_errf(e, RL_E_FORMAT, "%s: byte 12: header size %u, expected %d", path, rd32(h + 12),
                     RL_DATA_HEADER_BYTES);
        goto fail;
    }
    uint64_t n = rd64(h + 16);
    if (n != (size - RL_DATA_HEADER_BYTES) / 4 || (size - RL_DATA_HEADER_BYTES) % 4) {
        rc = rl_errf(e, RL_E_FORMAT, "%s: byte 16: %llu tokens declared, but the file holds %zu bytes of ids",
                     path, (unsigned long long)n, size - RL_DATA_HEADER_BYTES);
        goto fail;
    }
    uint32_t V = rd32(h + 32), eos = rd32(h + 36);
    if (V == 0 || V > INT32_MAX || eos >= V) {
        rc = rl_errf(e, RL_E_FORMAT, "%s: byte 32: vocab_size %u / eos_id %u invalid", path, V, eos);
        goto fail;
    }
    const uint32_t *ids = (const uint32_t *)(h + RL_DATA_HEADER_BYTES);
    for (uint64_t i = 0; i < n; i++)
        if (ids[i] >= V) {
            rc = rl_errf(e, RL_E_FORMAT, "%s: byte %llu: id %u >= vocab_size %u", path,
                         (unsigned long long)(RL_DATA_HEADER_BYTES + 4 * i), ids[i], V);
            goto fail;
        }
    d->path = strdup(path);
    d->map = map;
    d->map_size = size;
    d->ids = ids;
    d->n_tokens = (int64_t)n;
    d->n_docs = (int64_t)rd64(h + 24);
    d->vocab_size = (int32_t)V;
    d->eos_id = (int32_t)eos;
    if (!d->path) {
        rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        goto fail;
    }
    return RL_OK;
fail:
    munmap(map, size);
    memset(d, 0, sizeof *d);
    return rc;
}

void rl_data_close(rl_data *d) {
    if (d->map) munmap(d->map, d->map_size);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* ---- writer -------------------------------------------------------------- */

int rl_data_writer_open(rl_data_writer *w, const char *path, int32_t vocab_size, int32_t eos_id,
                        rl_err *e) {
    memset(w, 0, sizeof *w);
    if (vocab_size <= 0 || eos_id < 0 || eos_id >= vocab_size)
        return rl_errf(e, RL_E_ARG, "eos id %d outside the vocabulary (%d)", eos_id, vocab_size);
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 5);
    if (!w->path || !w->tmp) {
        rl_data_writer_abort(w);
        return rl_errf(e, RL_E_NOMEM, "out of memory");
    }
    sprintf(w->tmp, "%s.tmp", path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int er = errno;
        rl_data_writer_abort(w);
        return rl_errf(e, RL_E_IO, "%s: cannot write: %s", path, strerror(er));
    }
    w->vocab_size = (uint32_t)vocab_size;
    w->eos_id = (uint32_t)eos_id;
    uint8_t h[RL_DATA_HEADER_BYTES] = {0};
    if (fwrite(h, 1, sizeof h, w->f) != sizeof h) {
        rl_data_writer_abort(w);
        return rl_errf(e, RL_E_IO, "%s: write failed", path);
    }
    return RL_OK;
}

int rl_data_writer_add(rl_data_writer *w, const int32_t *ids, size_t n, rl_err *e) {
    uint8_t buf[4096];
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        uint32_t v = i < n ? (uint32_t)ids[i] : w->eos_id;
        if (i < n && (ids[i] < 0 || v >= w->vocab_size))
            return rl_errf(e, RL_E_ARG, "id %d outside the vocabulary (%u)", ids[i], w->vocab_size);
        wr32(buf + k, v);
        k += 4;
        if (k == sizeof buf || i == n) {
            if (fwrite(buf, 1, k, w->f) != k) return rl_errf(e, RL_E_IO, "%s: write failed", w->path);
            k = 0;
        }
    }
    w->n_tokens += n + 1;
    w->n_docs++;
    return RL_OK;
}

int rl_data_writer_finish(rl_data_writer *w, rl_err *e) {
    uint8_t h[RL_DATA_HEADER_BYTES] = {0};
    memcpy(h, magic, 8);
    wr32(h + 8, 1);
    wr32(h + 12, RL_DATA_HEADER_BYTES);
    wr64(h + 16, w->n_tokens);
    wr64(h + 24, w->n_docs);
    wr32(h + 32, w->vocab_size);
    wr32(h + 36, w->eos_id);
    int ok = fseek(w->f, 0, SEEK_SET) == 0 && fwrite(h, 1, sizeof h, w->f) == sizeof h &&
             fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
    ok &= fclose(w->f) == 0;
    w->f = NULL;
    if (!ok || rename(w->tmp, w->path) != 0) {
        int rc = rl_errf(e, RL_E_IO, "%s: write failed: %s", w->path, strerror(errno));
        rl_data_writer_abort(w);
        return rc;
    }
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
    return RL_OK;
}

void rl_data_writer_abort(rl_data_writer *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

/* ---- loader -------------------------------------------------------------- */

static uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Fisher-Yates over train[] with a generator seeded by (seed, epoch). */
static void shuffle(rl_loader *l) {
    uint64_t s = splitmix(l->st.seed ^ splitmix((uint64_t)l->st.epoch + 0x5eed));
    for (int64_t i = 0; i < l->n_train; i++) l->order[i] = l->train[i];
    for (int64_t i = l->n_train - 1; i > 0; i--) {
        s = splitmix(s);
        /* unbiased enough for any realistic count: 128-bit multiply-shift */
        int64_t j = (int64_t)(((unsigned __int128)s * (uint64_t)(i + 1)) >> 64);
        int64_t t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
}

int rl_loader_init(rl_loader *l, const rl_data *d, int seq_len, double val_fraction, uint64_t seed,
                   rl_err *e) {
    memset(l, 0, sizeof *l);
    if (seq_len < 1) return rl_errf(e, RL_E_ARG, "sequence length must be >= 1");
    if (!(val_fraction >= 0 && val_fraction < 1)) return rl_errf(e, RL_E_ARG, "validation fraction must be in [0, 1)");
    int64_t nw = d->n_tokens > seq_len ? (d->n_tokens - 1) / seq_len : 0;
    int64_t need = val_fraction > 0 ? 2 : 1;
    if (nw < need)
        return rl_errf(e, RL_E_ARG, "%s: %lld tokens make %lld windows of %d+1 tokens; need at least %lld",
                       d->path ? d->path : "data", (long long)d->n_tokens, (long long)nw, seq_len,
                       (long long)need);
    l->d = d;
    l->seq_len = seq_len;
    l->n_windows = nw;
    l->train = malloc((size_t)nw * sizeof *l->train);
    l->val = malloc((size_t)nw * sizeof *l->val);
    l->order = malloc((size_t)nw * sizeof *l->order);
    if (!l->train || !l->val || !l->order) {
        rl_loader_free(l);
        return rl_errf(e, RL_E_NOMEM, "out of memory");
    }
    /* the split ignores the seed: every run validates on the same windows */
    uint64_t thr = (uint64_t)(val_fraction * 18446744073709551616.0);
    for (int64_t i = 0; i < nw; i++) {
        if (val_fraction > 0 && splitmix((uint64_t)i ^ 0x76616c6964ull) < thr) l->val[l->n_val++] = i;
        else l->train[l->n_train++] = i;
    }
    if (val_fraction > 0 && l->n_val == 0) { /* the last window validates */
        l->val[l->n_val++] = l->train[--l->n_train];
    } else if (l->n_train == 0) {
        l->train[l->n_train++] = l->val[--l->n_val];
    }
    l->st.seed = seed;
    shuffle(l);
    return RL_OK;
}

void rl_loader_free(rl_loader *l) {
    free(l->train);
    free(l->val);
    free(l->order);
    memset(l, 0, sizeof *l);
}

static void window(const rl_loader *l, int64_t w, int *out) {
    const uint32_t *p = l->d->ids + w * l->seq_len;
    for (int i = 0; i <= l->seq_len; i++) out[i] = (int)p[i];
}

void rl_loader_next(rl_loader *l, int *out) {
    if (l->st.index >= l->n_train) {
        l->st.epoch++;
        l->st.index = 0;
        shuffle(l);
    }
    window(l, l->order[l->st.index++], out);
}

void rl_loader_val(const rl_loader *l, int64_t k, int *out) { window(l, l->val[k], out); }

rl_loader_state rl_loader_get(const rl_loader *l) { return l->st; }

int rl_loader_set(rl_loader *l, rl_loader_state s, rl_err *e) {
    if (s.seed != l->st.seed)
        return rl_errf(e, RL_E_ARG, "loader state was saved with seed %llu, this run has %llu",
                       (unsigned long long)s.seed, (unsigned long long)l->st.seed);
    if (s.epoch < 0 || s.index < 0 || s.index > l->n_train)
        return rl_errf(e, RL_E_ARG, "loader state (epoch %lld, index %lld) does not fit %lld training windows",
                       (long long)s.epoch, (long long)s.index, (long long)l->n_train);
    bool new_epoch = s.epoch != l->st.epoch;
    l->st = s;
    if (new_epoch) shuffle(l);
    return RL_OK;
}
