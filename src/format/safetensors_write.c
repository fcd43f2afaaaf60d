/* safetensors writer: header in entry order (after "__metadata__", as the
 * reference implementation writes it), padded with spaces to a multiple of
 * 8 bytes; data streamed through a bounded scratch buffer; atomic replace. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/safetensors.h"

/* Scratch buffer for fill callbacks: bounded so multi-GB tensors stream. */
#define RL_ST_PIECE ((size_t)16 << 20)

static int write_all(int fd, const void *p, size_t n, const char *path, rl_err *e) {
    const char *c = p;
    while (n) {
        size_t k = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, c, k);
        if (w < 0) {
            if (errno == EINTR) continue;
            return rl_errf(e, RL_E_IO, "%s: write failed: %s", path, strerror(errno));
        }
        c += w;
        n -= (size_t)w;
    }
    return RL_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the entries and computes each one's byte size. */
static int check_entries(const char *path, const rl_st_entry *en, int n, size_t *nbytes,
                         rl_err *e) {
    for (int i = 0; i < n; i++) {
        const rl_st_entry *x = &en[i];
        if (!x->name)
            return rl_errf(e, RL_E_ARG, "%s: entry %d has no name", path, i);
        if (strcmp(x->name, "__metadata__") == 0)
            return rl_errf(e, RL_E_ARG, "%s: entry %d: \"__metadata__\" is reserved", path, i);
        if ((unsigned)x->dtype >= RL_DTYPE_COUNT)
            return rl_errf(e, RL_E_ARG, "%s: tensor '%s': bad dtype %d", path, x->name,
                           (int)x->dtype);
        if (x->ndim < 0 || x->ndim > RL_MAX_DIMS)
            return rl_errf(e, RL_E_ARG, "%s: tensor '%s': ndim %d out of range [0, %d]", path,
                           x->name, x->ndim, RL_MAX_DIMS);
        size_t numel = 1;
        int zero = 0, over = 0;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 0)
                return rl_errf(e, RL_E_ARG, "%s: tensor '%s': shape[%d] = %lld is negative",
                               path, x->name, d, (long long)x->shape[d]);
            if (x->shape[d] == 0) zero = 1;
            else if (numel > (size_t)INT64_MAX / (size_t)x->shape[d]) over = 1;
            else numel *= (size_t)x->shape[d];
        }
        if (zero) numel = 0, over = 0;
        size_t es = rl_dtype_size(x->dtype);
        if (over || numel > SIZE_MAX / es)
            return rl_errf(e, RL_E_ARG, "%s: tensor '%s': shape overflows", path, x->name);
        nbytes[i] = numel * es;
    }
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) return rl_errf(e, RL_E_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = en[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int rc = RL_OK;
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            rc = rl_errf(e, RL_E_ARG, "%s: duplicate tensor name '%s'", path, names[i]);
            break;
        }
    free(names);
    return rc;
}

/* Builds the padded header (without the length prefix). */
static int build_header(const char *path, const rl_st_entry *en, int n, const size_t *nbytes,
                        const char *metadata_json, char **out, size_t *out_len, rl_err *e) {
    json_t *root = json_object();
    json_t *meta = NULL;
    if (!root) return rl_errf(e, RL_E_NOMEM, "%s: out of memory", path);
    int rc = RL_OK;
    if (metadata_json) {
        json_error_t je;
        meta = json_loads(metadata_json, JSON_REJECT_DUPLICATES, &je);
        if (!meta || !json_is_object(meta)) {
            rc = rl_errf(e, RL_E_ARG, "%s: metadata is not a JSON object%s%s", path,
                         meta ? "" : ": ", meta ? "" : je.text);
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) {
            if (!json_is_string(v)) {
                rc = rl_errf(e, RL_E_ARG, "%s: metadata key '%s' is not a string", path, k);
                goto out;
            }
        }
        if (json_object_size(meta)) {
            json_object_set(root, "__metadata__", meta);
        }
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < en[i].ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)en[i].shape[d]));
        json_t *t = json_pack("{s:s, s:o, s:[I,I]}", "dtype", rl_dtype_name(en[i].dtype),
                              "shape", shape, "data_offsets", (json_int_t)off,
                              (json_int_t)(off + nbytes[i]));
        if (!t || json_object_set_new(root, en[i].name, t)) {
            rc = rl_errf(e, RL_E_NOMEM, "%s: cannot build header entry for '%s'", path,
                         en[i].name);
            goto out;
        }
        off += nbytes[i];
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) {
        rc = rl_errf(e, RL_E_NOMEM, "%s: cannot serialize header", path);
        goto out;
    }
    size_t len = strlen(s), padded = (len + 7) & ~(size_t)7;
    char *h = realloc(s, padded ? padded : 8);
    if (!h) {
        free(s);
        rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", path);
        goto out;
    }
    memset(h + len, ' ', padded - len);
    if (padded > RL_ST_MAX_HEADER) {
        free(h);
        rc = rl_errf(e, RL_E_ARG, "%s: header of %zu bytes exceeds the cap of %u", path,
                     padded, (unsigned)RL_ST_MAX_HEADER);
        goto out;
    }
    *out = h;
    *out_len = padded;
out:
    json_decref(meta);
    json_decref(root);
    return rc;
}

int rl_st_write(const char *path, const rl_st_entry *entries, int n,
                const char *metadata_json, rl_st_fill_fn fill, void *fill_ctx,
                void (*progress)(void *ctx, size_t done, size_t total),
                void *progress_ctx, rl_err *e) {
    if (!path || n < 0 || (n > 0 && !entries))
        return rl_errf(e, RL_E_ARG, "rl_st_write: bad arguments");
    size_t *nbytes = calloc((size_t)(n ? n : 1), sizeof *nbytes);
    if (!nbytes) return rl_errf(e, RL_E_NOMEM, "%s: out of memory", path);
    char *hdr = NULL, *tmp = NULL;
    void *scratch = NULL;
    int fd = -1;
    size_t hlen = 0;
    int rc = check_entries(path, entries, n, nbytes, e);
    if (rc) goto out;
    size_t data_total = 0, max_fill = 0;
    for (int i = 0; i < n; i++) {
        if (!entries[i].data && nbytes[i]) {
            if (!fill) {
                rc = rl_errf(e, RL_E_ARG, "%s: tensor '%s' has no data and no fill callback",
                             path, entries[i].name);
                goto out;
            }
            if (nbytes[i] > max_fill) max_fill = nbytes[i];
        }
        data_total += nbytes[i];
    }
    if ((rc = build_header(path, entries, n, nbytes, metadata_json, &hdr, &hlen, e))) goto out;

    if (max_fill) {
        size_t sz = max_fill < RL_ST_PIECE ? max_fill : RL_ST_PIECE;
        scratch = malloc(sz);
        if (!scratch) {
            rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory for a %zu-byte buffer", path, sz);
            goto out;
        }
    }
    size_t plen = strlen(path);
    tmp = malloc(plen + 5);
    if (!tmp) {
        rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", path);
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = rl_errf(e, RL_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if ((rc = write_all(fd, lenbuf, 8, tmp, e))) goto out;
    if ((rc = write_all(fd, hdr, hlen, tmp, e))) goto out;
    size_t total = 8 + hlen + data_total, done = 8 + hlen;
    for (int i = 0; i < n; i++) {
        if (entries[i].data) {
            if ((rc = write_all(fd, entries[i].data, nbytes[i], tmp, e))) goto out;
            done += nbytes[i];
        } else {
            /* Pieces are whole elements: RL_ST_PIECE is a multiple of every size. */
            for (size_t o = 0; o < nbytes[i];) {
                size_t k = nbytes[i] - o < RL_ST_PIECE ? nbytes[i] - o : RL_ST_PIECE;
                rl_err fe = {0};
                if ((rc = fill(fill_ctx, i, scratch, k, &fe))) {
                    rc = rl_errf(e, rc ? rc : RL_E_IO, "%s: tensor '%s': %s", path,
                                 entries[i].name, fe.msg[0] ? fe.msg : "fill failed");
                    goto out;
                }
                if ((rc = write_all(fd, scratch, k, tmp, e))) goto out;
                o += k;
                done += k;
                if (progress && o < nbytes[i]) progress(progress_ctx, done, total);
            }
        }
        if (progress) progress(progress_ctx, done, total);
    }
    if (fsync(fd) != 0) {
        rc = rl_errf(e, RL_E_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = rl_errf(e, RL_E_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = rl_errf(e, RL_E_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    /* Make the rename itself durable. */
    char *dcopy = strdup(path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
out:
    if (fd >= 0) close(fd);
    if (rc && tmp) unlink(tmp);
    free(tmp);
    free(scratch);
    free(hdr);
    free(nbytes);
    return rc;
}
