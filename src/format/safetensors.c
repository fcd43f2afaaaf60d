/* safetensors reader: strict validation of the header, then zero-copy views
 * into the caller's buffer or a read-only mmap of the file. */
#include "format/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor names come from untrusted files: quote them for messages with
 * control bytes escaped and long names cut, so a message stays readable. */
static const char *qname(const char *s, char *buf, size_t cap) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 8 < cap; p++) {
        if (o >= 160) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o] = 0;
    return buf;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static void shape_str(const rl_tensor *t, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < t->ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "",
                              (long long)t->shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static void free_tensors(rl_st_file *f) {
    if (f->tensors)
        for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    f->tensors = NULL;
    f->n_tensors = 0;
}

void rl_st_close(rl_st_file *f) {
    if (!f) return;
    free_tensors(f);
    if (f->map) munmap(f->map, f->map_size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Fills t from one header entry (dtype, shape, data_offsets); data_len is
 * the size of the data section. */
static int parse_entry(const char *label, const char *name, json_t *v, size_t data_len,
                       rl_tensor *t, rl_err *e) {
    char qn[200];
    if (!json_is_object(v))
        return rl_errf(e, RL_E_FORMAT, "%s: tensor '%s': entry is %s, not an object", label,
                       qname(name, qn, sizeof qn), json_kind(v));
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo)
        return rl_errf(e, RL_E_FORMAT, "%s: tensor '%s': missing field \"%s\"", label,
                       qname(name, qn, sizeof qn),
                       !jd ? "dtype" : !js ? "shape" : "data_offsets");
    if (!json_is_string(jd))
        return rl_errf(e, RL_E_FORMAT, "%s: tensor '%s': field \"dtype\" is %s, not a string",
                       label, qname(name, qn, sizeof qn), json_kind(jd));
    int dt = rl_dtype_parse(json_string_value(jd));
    if (dt < 0) {
        char qd[200];
        return rl_errf(e, RL_E_UNSUPPORTED,
                       "%s: tensor '%s': dtype \"%s\" is not supported (F32, F16, BF16, "
                       "F8_E4M3 are)",
                       label, qname(name, qn, sizeof qn),
                       qname(json_string_value(jd), qd, sizeof qd));
    }
    t->dtype = (rl_dtype)dt;

    if (!json_is_array(js))
        return rl_errf(e, RL_E_FORMAT, "%s: tensor '%s': field \"shape\" is %s, not an array",
                       label, qname(name, qn, sizeof qn), json_kind(js));
    size_t nd = json_array_size(js);
    if (nd > RL_MAX_DIMS)
        return rl_errf(e, RL_E_FORMAT, "%s: tensor '%s': shape has %zu dims (at most %d)",
                       label, qname(name, qn, sizeof qn), nd, RL_MAX_DIMS);
    t->ndim = (int)nd;
    int64_t numel = 1;
    bool overflow = false;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return rl_errf(e, RL_E_FORMAT,
                           "%s: tensor '%s': shape[%zu] is %s, not a non-negative integer",
                           label, qname(name, qn, sizeof qn), i,
                           json_is_integer(d) ? "negative" : json_kind(d));
        int64_t x = (int64_t)json_integer_value(d);
        t->shape[i] = x;
        if (!overflow && x != 0 && numel > INT64_MAX / x) overflow = true;
        if (!overflow) numel *= x;
    }
    /* A zero dim makes numel 0 whatever the other dims are. */
    for (size_t i = 0; i < nd; i++)
        if (t->shape[i] == 0) overflow = false, numel = 0;
    char sh[256];
    shape_str(t, sh, sizeof sh);
    size_t es = rl_dtype_size(t->dtype);
    if (overflow || (uint64_t)numel > SIZE_MAX / es)
        return rl_errf(e, RL_E_FORMAT, "%s: tensor '%s': shape %s overflows", label,
                       qname(name, qn, sizeof qn), sh);
    t->numel = numel;
    t->nbytes = (size_t)numel * es;

    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: tensor '%s': field \"data_offsets\" is %s, not [begin, end]", label,
                       qname(name, qn, sizeof qn),
                       json_is_array(jo) ? "an array of the wrong length" : json_kind(jo));
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < 0)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: tensor '%s': data_offsets must be two non-negative integers",
                       label, qname(name, qn, sizeof qn));
    uint64_t b = (uint64_t)json_integer_value(jb), en = (uint64_t)json_integer_value(je);
    if (b > en)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] has begin > end", label,
                       qname(name, qn, sizeof qn), (unsigned long long)b,
                       (unsigned long long)en);
    if (en > data_len)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] end past the data section "
                       "(%zu bytes; file truncated?)",
                       label, qname(name, qn, sizeof qn), (unsigned long long)b,
                       (unsigned long long)en, data_len);
    if (en - b != t->nbytes)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] but shape %s of %s needs "
                       "%zu bytes",
                       label, qname(name, qn, sizeof qn), (unsigned long long)b,
                       (unsigned long long)en, sh, rl_dtype_name(t->dtype), t->nbytes);
    t->offset = (size_t)b;
    return RL_OK;
}

static int check_metadata(const char *label, json_t *v, rl_err *e) {
    if (!json_is_object(v))
        return rl_errf(e, RL_E_FORMAT, "%s: \"__metadata__\" is %s, not an object", label,
                       json_kind(v));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (!json_is_string(x)) {
            char qk[200];
            return rl_errf(e, RL_E_FORMAT,
                           "%s: \"__metadata__\" key '%s' is %s, not a string", label,
                           qname(k, qk, sizeof qk), json_kind(x));
        }
    }
    return RL_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const rl_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const rl_tensor *)a)->name, ((const rl_tensor *)b)->name);
}

int rl_st_parse(const uint8_t *buf, size_t len, const char *label, rl_st_file *f,
                rl_err *e) {
    if (!f) return rl_errf(e, RL_E_ARG, "rl_st_parse: NULL file");
    memset(f, 0, sizeof *f);
    if (!label) label = "safetensors";
    if (!buf && len) return rl_errf(e, RL_E_ARG, "%s: NULL buffer", label);
    if (len < 8)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: file is %zu bytes, too short for the 8-byte header length", label,
                       len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n < 2)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: header length %llu (byte 0) is too small for a JSON object", label,
                       (unsigned long long)n);
    if (n > RL_ST_MAX_HEADER)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: header length %llu (byte 0) exceeds the cap of %u bytes", label,
                       (unsigned long long)n, (unsigned)RL_ST_MAX_HEADER);
    if (n > len - 8)
        return rl_errf(e, RL_E_FORMAT,
                       "%s: header length %llu (byte 0) runs past the end of the file (%zu "
                       "bytes after the length field; file truncated?)",
                       label, (unsigned long long)n, len - 8);
    const char *hdr = (const char *)buf + 8;
    size_t data_off = 8 + (size_t)n, data_len = len - data_off;

    json_error_t je;
    json_t *root = json_loadb(hdr, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return rl_errf(e, RL_E_FORMAT, "%s: header JSON invalid at file byte %lld: %s", label,
                       (long long)(8 + (je.position > 0 ? je.position : 0)), je.text);
    int rc = RL_OK;
    if (!json_is_object(root)) {
        rc = rl_errf(e, RL_E_FORMAT, "%s: header is %s, not a JSON object", label,
                     json_kind(root));
        goto out;
    }
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory for %zu tensors", label, cap);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = check_metadata(label, v, e))) goto out;
            continue;
        }
        rl_tensor *t = &f->tensors[f->n_tensors];
        memset(t, 0, sizeof *t);
        if ((rc = parse_entry(label, key, v, data_len, t, e))) goto out;
        t->name = strdup(key);
        if (!t->name) {
            rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", label);
            goto out;
        }
        t->data = buf + data_off + t->offset;
        f->n_tensors++;
    }

    /* Layout: sorted by offset, the tensors must tile the data section. */
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_offset);
    size_t pos = 0;
    const char *prev = NULL;
    char q1[200], q2[200];
    for (int i = 0; i < f->n_tensors; i++) {
        const rl_tensor *t = &f->tensors[i];
        if (t->offset > pos) {
            rc = prev ? rl_errf(e, RL_E_FORMAT,
                                "%s: gap of %zu bytes in the data section at data offset %zu "
                                "(file byte %zu) between tensor '%s' and tensor '%s'",
                                label, t->offset - pos, pos, data_off + pos,
                                qname(prev, q1, sizeof q1), qname(t->name, q2, sizeof q2))
                      : rl_errf(e, RL_E_FORMAT,
                                "%s: gap of %zu bytes at the start of the data section "
                                "(file byte %zu) before tensor '%s'",
                                label, t->offset, data_off, qname(t->name, q2, sizeof q2));
            goto out;
        }
        if (t->offset < pos) {
            rc = rl_errf(e, RL_E_FORMAT,
                         "%s: tensor '%s' (data offsets [%zu, %zu]) overlaps tensor '%s' "
                         "(which ends at data offset %zu)",
                         label, qname(t->name, q2, sizeof q2), t->offset,
                         t->offset + t->nbytes, qname(prev ? prev : "?", q1, sizeof q1), pos);
            goto out;
        }
        pos = t->offset + t->nbytes;
        prev = t->name;
    }
    if (pos != data_len) {
        rc = rl_errf(e, RL_E_FORMAT,
                     "%s: data section is %zu bytes but the tensors cover %zu: %zu extra bytes "
                     "at file byte %zu",
                     label, data_len, pos, data_len - pos, data_off + pos);
        goto out;
    }

    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_name);
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            rc = rl_errf(e, RL_E_FORMAT, "%s: duplicate tensor name '%s'", label,
                         qname(f->tensors[i].name, q1, sizeof q1));
            goto out;
        }
    f->path = strdup(label);
    if (!f->path) rc = rl_errf(e, RL_E_NOMEM, "%s: out of memory", label);

out:
    json_decref(root);
    if (rc) rl_st_close(f);
    return rc;
}

int rl_st_open(const char *path, rl_st_file *f, rl_err *e) {
    if (!f || !path) return rl_errf(e, RL_E_ARG, "rl_st_open: NULL argument");
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rl_errf(e, RL_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int er = errno;
        close(fd);
        return rl_errf(e, RL_E_IO, "%s: cannot stat: %s", path, strerror(er));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rl_errf(e, RL_E_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return rl_errf(e, RL_E_FORMAT,
                       "%s: file is %zu bytes, too short for the 8-byte header length", path,
                       size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int er = errno;
    close(fd);
    if (map == MAP_FAILED) return rl_errf(e, RL_E_IO, "%s: cannot mmap: %s", path, strerror(er));
    int rc = rl_st_parse(map, size, path, f, e);
    if (rc) {
        munmap(map, size);
        return rc;
    }
    f->map = map;
    f->map_size = size;
    return RL_OK;
}

const rl_tensor *rl_st_find(const rl_st_file *f, const char *name) {
    if (!f || !name || f->n_tensors == 0) return NULL;
    rl_tensor key;
    key.name = (char *)name;
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_name);
}
