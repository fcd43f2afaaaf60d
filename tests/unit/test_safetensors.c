/* safetensors reader/writer and checkpoint directories: round trips, and one
 * case per kind of malformed input, each checked for its code and message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/checkpoint.h"
#include "format/safetensors.h"
#include "testutil.h"

static char g_dir[512];

static const char *tpath(const char *name) {
    static char buf[8][768];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 768, "%s/%s", g_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

/* Builds a file image: u64 length of hdr (or `len_override` when != ~0),
 * hdr bytes, then `data_len` bytes of data. Caller frees. */
static uint8_t *image(const char *hdr, uint64_t len_override, size_t data_len, size_t *out) {
    size_t h = strlen(hdr);
    uint64_t n = len_override != ~(uint64_t)0 ? len_override : h;
    uint8_t *b = calloc(8 + h + data_len + 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
    memcpy(b + 8, hdr, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (uint8_t)(i * 7 + 1);
    *out = 8 + h + data_len;
    return b;
}

/* Parses hdr + data_len bytes; expects failure with code and substring. */
static void expect_bad(const char *what, const char *hdr, uint64_t len_override,
                       size_t data_len, int code, const char *needle) {
    size_t n;
    uint8_t *b = image(hdr, len_override, data_len, &n);
    rl_st_file f;
    rl_err e = {0};
    int rc = rl_st_parse(b, n, "bad.safetensors", &f, &e);
    CHECK(rc == code, "%s: rc %d (want %d): %s", what, rc, code, e.msg);
    CHECK(strstr(e.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, e.msg, needle);
    CHECK(strstr(e.msg, "bad.safetensors") != NULL, "%s: message '%s' lacks the file", what,
          e.msg);
    CHECK(f.tensors == NULL && f.n_tensors == 0, "%s: file not reset on failure", what);
    rl_st_close(&f);
    free(b);
}

static void expect_ok(const char *what, const char *hdr, size_t data_len, int n_tensors) {
    size_t n;
    uint8_t *b = image(hdr, ~(uint64_t)0, data_len, &n);
    rl_st_file f;
    rl_err e = {0};
    int rc = rl_st_parse(b, n, "ok.safetensors", &f, &e);
    CHECK(rc == RL_OK, "%s: %s", what, e.msg);
    CHECK(rc || f.n_tensors == n_tensors, "%s: %d tensors", what, f.n_tensors);
    rl_st_close(&f);
    free(b);
}

/* ---- writer + reader round trip ---------------------------------------- */

typedef struct {
    int calls;
    uint64_t seed;
} fill_ctx;

/* Deterministic bytes: byte j of tensor i is (i*31 + j) & 0xff, produced in
 * pieces; ctx tracks the position within the current tensor. */
static int last_index = -1;
static size_t fill_pos;
static int fill_fn(void *ctx, int index, void *buf, size_t nbytes, rl_err *e) {
    (void)e;
    fill_ctx *c = ctx;
    c->calls++;
    if (index != last_index) last_index = index, fill_pos = 0;
    uint8_t *p = buf;
    for (size_t j = 0; j < nbytes; j++) p[j] = (uint8_t)((size_t)index * 31 + fill_pos + j);
    fill_pos += nbytes;
    return RL_OK;
}

static int fail_fill(void *ctx, int index, void *buf, size_t nbytes, rl_err *e) {
    (void)ctx, (void)index, (void)buf, (void)nbytes;
    return rl_errf(e, RL_E_IO, "generator broke");
}

static size_t prog_done, prog_total;
static int prog_calls;
static void progress(void *ctx, size_t done, size_t total) {
    (void)ctx;
    CHECK(done >= prog_done && done <= total, "progress %zu of %zu", done, total);
    prog_done = done, prog_total = total, prog_calls++;
}

static void test_roundtrip(void) {
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, 65504};
    uint16_t bf[6], f16[5];
    uint8_t f8[7];
    for (int i = 0; i < 6; i++) bf[i] = rl_f32_to_bf16(f32[i] * 3);
    for (int i = 0; i < 5; i++) f16[i] = rl_f32_to_f16(f32[i] / 2);
    for (int i = 0; i < 7; i++) f8[i] = rl_f32_to_f8e4m3((float)i - 3);
    float scalar = 42.0f;
    rl_st_entry en[] = {
        {"z.f32", RL_F32, 2, {2, 3}, f32},
        {"a.bf16", RL_BF16, 3, {1, 2, 3}, bf},
        {"m.f16", RL_F16, 1, {5}, f16},
        {"f8", RL_F8_E4M3, 1, {7}, f8},
        {"scalar", RL_F32, 0, {0}, &scalar},
        {"empty", RL_BF16, 2, {0, 4}, NULL},
        {"empty2", RL_F32, 1, {0}, f32},
        {"filled", RL_F16, 2, {3, 300}, NULL},
    };
    int n = (int)(sizeof en / sizeof en[0]);
    const char *path = tpath("rt.safetensors");
    fill_ctx fc = {0};
    rl_err e = {0};
    prog_done = prog_total = 0, prog_calls = 0;
    int rc = rl_st_write(path, en, n, "{\"format\":\"pt\",\"note\":\"hi \\\"x\\\"\"}", fill_fn,
                         &fc, progress, NULL, &e);
    CHECK(rc == RL_OK, "write: %s", e.msg);
    CHECK(fc.calls == 1, "fill calls %d (the zero-size tensor needs none)", fc.calls);
    CHECK(prog_calls == n, "progress calls %d", prog_calls);
    CHECK(prog_done == prog_total, "progress ends at %zu of %zu", prog_done, prog_total);
    CHECK(access(tpath("rt.safetensors.tmp"), F_OK) != 0, "tmp file left behind");

    /* Header: padded to 8 with spaces, metadata first, entries in order. */
    FILE *fp = fopen(path, "rb");
    uint8_t lenb[8];
    CHECK(fp && fread(lenb, 1, 8, fp) == 8, "read len");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | lenb[i];
    CHECK(hl % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hl);
    char *hdr = calloc(hl + 1, 1);
    CHECK(fread(hdr, 1, hl, fp) == hl, "read header");
    fclose(fp);
    CHECK(strncmp(hdr, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0, "header starts %.40s",
          hdr);
    const char *pz = strstr(hdr, "\"z.f32\""), *pa = strstr(hdr, "\"a.bf16\"");
    CHECK(pz && pa && pz < pa, "entries not in given order: %s", hdr);
    CHECK(strstr(hdr, "\"z.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"),
          "z.f32 entry: %s", hdr);
    CHECK(strstr(hdr, "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":"),
          "scalar entry: %s", hdr);
    free(hdr);

    rl_st_file f;
    rc = rl_st_open(path, &f, &e);
    CHECK(rc == RL_OK, "open: %s", e.msg);
    if (rc) return;
    CHECK(f.n_tensors == n, "n_tensors %d", f.n_tensors);
    CHECK(f.map != NULL, "mapped");
    for (int i = 1; i < f.n_tensors; i++)
        CHECK(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0, "not sorted by name");
    for (int i = 0; i < n; i++) {
        const rl_tensor *t = rl_st_find(&f, en[i].name);
        CHECK(t != NULL, "find %s", en[i].name);
        if (!t) continue;
        CHECK(t->dtype == en[i].dtype, "%s dtype", en[i].name);
        CHECK(t->ndim == en[i].ndim, "%s ndim %d", en[i].name, t->ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == en[i].shape[d], "%s shape[%d]", en[i].name, d);
            numel *= en[i].shape[d];
        }
        CHECK(t->numel == numel, "%s numel %lld", en[i].name, (long long)t->numel);
        CHECK(t->nbytes == (size_t)numel * rl_dtype_size(t->dtype), "%s nbytes", en[i].name);
        CHECK((const uint8_t *)t->data >= (const uint8_t *)f.map &&
                  (const uint8_t *)t->data + t->nbytes <= (const uint8_t *)f.map + f.map_size,
              "%s data outside the map", en[i].name);
        if (en[i].data) {
            CHECK(memcmp(t->data, en[i].data, t->nbytes) == 0, "%s data", en[i].name);
        } else {
            int ok = 1;
            for (size_t j = 0; j < t->nbytes; j++)
                ok &= ((const uint8_t *)t->data)[j] == (uint8_t)((size_t)i * 31 + j);
            CHECK(ok, "%s filled data", en[i].name);
        }
    }
    const rl_tensor *s = rl_st_find(&f, "scalar");
    CHECK(s && s->ndim == 0 && s->numel == 1 && s->nbytes == 4 &&
              memcmp(s->data, &scalar, 4) == 0,
          "scalar");
    const rl_tensor *bt = rl_st_find(&f, "a.bf16");
    if (bt) {
        float v[6];
        rl_convert_to_f32(RL_BF16, bt->data, v, 6);
        CHECK(v[2] == 10.5f, "bf16 value %g", v[2]);
    }
    CHECK(rl_st_find(&f, "nope") == NULL, "absent name found");
    CHECK(rl_st_find(&f, "") == NULL, "empty name found");
    rl_st_close(&f);
    rl_st_close(&f); /* idempotent */

    /* No tensors at all, no metadata. */
    rc = rl_st_write(tpath("empty.safetensors"), NULL, 0, NULL, NULL, NULL, NULL, NULL, &e);
    CHECK(rc == RL_OK, "empty write: %s", e.msg);
    rc = rl_st_open(tpath("empty.safetensors"), &f, &e);
    CHECK(rc == RL_OK && f.n_tensors == 0, "empty open: %s", e.msg);
    rl_st_close(&f);

    /* Writer refusals. */
    rl_st_entry dup[] = {{"x", RL_F32, 1, {1}, f32}, {"x", RL_F32, 1, {1}, f32}};
    rc = rl_st_write(tpath("dup.safetensors"), dup, 2, NULL, NULL, NULL, NULL, NULL, &e);
    CHECK(rc == RL_E_ARG && strstr(e.msg, "duplicate tensor name 'x'"), "dup write: %s",
          e.msg);
    rl_st_entry neg[] = {{"n", RL_F32, 2, {2, -1}, f32}};
    rc = rl_st_write(tpath("neg.safetensors"), neg, 1, NULL, NULL, NULL, NULL, NULL, &e);
    CHECK(rc == RL_E_ARG && strstr(e.msg, "negative"), "neg write: %s", e.msg);
    rc = rl_st_write(tpath("meta.safetensors"), en, 1, "{\"a\":1}", NULL, NULL, NULL, NULL,
                     &e);
    CHECK(rc == RL_E_ARG && strstr(e.msg, "metadata key 'a'"), "meta write: %s", e.msg);
    rl_st_entry nodata[] = {{"d", RL_F32, 1, {4}, NULL}};
    rc = rl_st_write(tpath("nodata.safetensors"), nodata, 1, NULL, NULL, NULL, NULL, NULL, &e);
    CHECK(rc == RL_E_ARG && strstr(e.msg, "'d'"), "no fill: %s", e.msg);
    rc = rl_st_write(tpath("failfill.safetensors"), nodata, 1, NULL, fail_fill, NULL, NULL,
                     NULL, &e);
    CHECK(rc == RL_E_IO && strstr(e.msg, "generator broke") && strstr(e.msg, "'d'"),
          "fail fill: %s", e.msg);
    CHECK(access(tpath("failfill.safetensors"), F_OK) != 0 &&
              access(tpath("failfill.safetensors.tmp"), F_OK) != 0,
          "failed write left files");
    rc = rl_st_write("/nonexistent-dir/x.safetensors", en, 1, NULL, NULL, NULL, NULL, NULL, &e);
    CHECK(rc == RL_E_IO && strstr(e.msg, "/nonexistent-dir/x.safetensors.tmp"), "io: %s",
          e.msg);
}

/* A tensor larger than the writer's scratch buffer streams in pieces. */
static void test_streaming(void) {
    rl_st_entry big[] = {{"big", RL_F8_E4M3, 2, {5, (int64_t)7 << 20}, NULL},
                         {"tail", RL_BF16, 1, {3}, NULL}};
    fill_ctx fc = {0};
    rl_err e = {0};
    last_index = -1;
    prog_done = prog_total = 0, prog_calls = 0;
    const char *path = tpath("big.safetensors");
    int rc = rl_st_write(path, big, 2, NULL, fill_fn, &fc, progress, NULL, &e);
    CHECK(rc == RL_OK, "big write: %s", e.msg);
    CHECK(fc.calls >= 4, "35 MiB tensor filled in %d calls", fc.calls);
    CHECK(prog_calls > 2 && prog_done == prog_total, "progress %d calls", prog_calls);
    rl_st_file f;
    rc = rl_st_open(path, &f, &e);
    CHECK(rc == RL_OK, "big open: %s", e.msg);
    if (!rc) {
        const rl_tensor *t = rl_st_find(&f, "big");
        int ok = t && t->nbytes == (size_t)35 << 20;
        for (size_t j = 0; ok && j < t->nbytes; j += 4093)
            ok = ((const uint8_t *)t->data)[j] == (uint8_t)j;
        CHECK(ok, "big data continuous across pieces");
        t = rl_st_find(&f, "tail");
        CHECK(t && ((const uint8_t *)t->data)[5] == (uint8_t)(31 + 5), "tail data");
    }
    rl_st_close(&f);
    unlink(path);
}

/* ---- malformed files --------------------------------------------------- */

#define NONE (~(uint64_t)0)

static void test_malformed(void) {
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_ok("good", good, 8, 1);
    expect_ok("empty header", "{}", 0, 0);
    expect_ok("metadata only", "{\"__metadata__\":{\"k\":\"v\"}}", 0, 0);
    expect_ok("padded header", "{}      ", 0, 0);
    expect_ok("unsorted offsets",
              "{\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[4,6]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
              6, 2);
    expect_ok("zero-size in the middle",
              "{\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[4,6]},"
              "\"z\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
              6, 3);

    /* Truncation. */
    {
        rl_st_file f;
        rl_err e = {0};
        uint8_t few[5] = {1, 0, 0, 0, 0};
        int rc = rl_st_parse(few, 5, "tiny.safetensors", &f, &e);
        CHECK(rc == RL_E_FORMAT && strstr(e.msg, "tiny.safetensors: file is 5 bytes"),
              "short: %s", e.msg);
        write_bytes(tpath("tiny.safetensors"), few, 5);
        rc = rl_st_open(tpath("tiny.safetensors"), &f, &e);
        CHECK(rc == RL_E_FORMAT && strstr(e.msg, "tiny.safetensors: file is 5 bytes"),
              "short file: %s", e.msg);
        write_bytes(tpath("zero.safetensors"), few, 0);
        rc = rl_st_open(tpath("zero.safetensors"), &f, &e);
        CHECK(rc == RL_E_FORMAT && strstr(e.msg, "file is 0 bytes"), "empty file: %s", e.msg);
        rc = rl_st_open(tpath("missing.safetensors"), &f, &e);
        CHECK(rc == RL_E_IO && strstr(e.msg, "missing.safetensors: cannot open"),
              "missing: %s", e.msg);
        /* Header cut short: a valid file truncated inside its header. */
        size_t n;
        uint8_t *b = image(good, NONE, 8, &n);
        write_bytes(tpath("cut.safetensors"), b, 30);
        rc = rl_st_open(tpath("cut.safetensors"), &f, &e);
        CHECK(rc == RL_E_FORMAT && strstr(e.msg, "runs past the end of the file") &&
                  strstr(e.msg, "cut.safetensors"),
              "header cut: %s", e.msg);
        /* Data cut short. */
        write_bytes(tpath("cutdata.safetensors"), b, n - 3);
        rc = rl_st_open(tpath("cutdata.safetensors"), &f, &e);
        CHECK(rc == RL_E_FORMAT && strstr(e.msg, "cutdata.safetensors: tensor 'a'") &&
                  strstr(e.msg, "end past the data section (5 bytes"),
              "data cut: %s", e.msg);
        free(b);
    }
    /* Header length lies. */
    expect_bad("length too big", good, 1000, 8, RL_E_FORMAT, "header length 1000 (byte 0)");
    expect_bad("length 0", good, 0, 8, RL_E_FORMAT, "header length 0 (byte 0) is too small");
    expect_bad("length over cap", good, (uint64_t)RL_ST_MAX_HEADER + 1, 8, RL_E_FORMAT,
               "exceeds the cap");
    expect_bad("length huge", good, ~(uint64_t)0 - 5, 8, RL_E_FORMAT, "exceeds the cap");
    expect_bad("length short", good, 20, 8, RL_E_FORMAT, "header JSON invalid at file byte");

    /* JSON structure. */
    expect_bad("invalid json", "{\"a\":{\"dtype\":\"F32\",", NONE, 0, RL_E_FORMAT,
               "header JSON invalid");
    expect_bad("not an object", "[1,2]", NONE, 0, RL_E_FORMAT, "header is an array");
    expect_bad("trailing junk", "{}x", NONE, 0, RL_E_FORMAT, "header JSON invalid");
    expect_bad("entry not object", "{\"w\":[1]}", NONE, 0, RL_E_FORMAT,
               "tensor 'w': entry is an array, not an object");
    expect_bad("metadata not object", "{\"__metadata__\":3}", NONE, 0, RL_E_FORMAT,
               "\"__metadata__\" is an integer");
    expect_bad("metadata value", "{\"__metadata__\":{\"k\":[]}}", NONE, 0, RL_E_FORMAT,
               "\"__metadata__\" key 'k' is an array");
    expect_bad("missing field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[]}}", NONE, 0,
               RL_E_FORMAT, "tensor 'w': missing field \"data_offsets\"");
    expect_bad("duplicate key",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               NONE, 8, RL_E_FORMAT, "duplicate");

    /* dtype. */
    expect_bad("I64", "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
               NONE, 8, RL_E_UNSUPPORTED, "tensor 'w': dtype \"I64\" is not supported");
    expect_bad("F8_E5M2", "{\"w\":{\"dtype\":\"F8_E5M2\",\"shape\":[1],\"data_offsets\":[0,1]}}",
               NONE, 1, RL_E_UNSUPPORTED, "dtype \"F8_E5M2\"");
    expect_bad("BOOL", "{\"w\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[0,1]}}",
               NONE, 1, RL_E_UNSUPPORTED, "dtype \"BOOL\"");
    expect_bad("dtype number", "{\"w\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,1]}}",
               NONE, 1, RL_E_FORMAT, "field \"dtype\" is an integer");

    /* shape. */
    expect_bad("negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}",
               NONE, 0, RL_E_FORMAT, "tensor 'w': shape[1] is negative");
    expect_bad("real dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
               NONE, 8, RL_E_FORMAT, "shape[0] is a real number");
    expect_bad("string dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
               NONE, 8, RL_E_FORMAT, "shape[0] is a string");
    expect_bad("shape not array", "{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}",
               NONE, 8, RL_E_FORMAT, "field \"shape\" is an integer");
    expect_bad("too many dims",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               NONE, 4, RL_E_FORMAT, "shape has 9 dims");
    expect_bad("overflow",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,0]}}",
               NONE, 0, RL_E_FORMAT, "shape [4294967296,4294967296] overflows");
    expect_bad("overflow by dtype",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
               "\"data_offsets\":[0,0]}}",
               NONE, 0, RL_E_FORMAT, "overflows");

    /* offsets. */
    expect_bad("offsets out of range",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", NONE, 8,
               RL_E_FORMAT, "tensor 'w': data_offsets [8, 16] end past the data section (8");
    expect_bad("begin > end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}",
               NONE, 8, RL_E_FORMAT, "begin > end");
    expect_bad("negative offset",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", NONE, 8,
               RL_E_FORMAT, "two non-negative integers");
    expect_bad("offsets length", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
               NONE, 4, RL_E_FORMAT, "array of the wrong length");
    expect_bad("byte length",
               "{\"a.weight\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}",
               NONE, 10, RL_E_FORMAT,
               "bad.safetensors: tensor 'a.weight': data_offsets [0, 10] but shape [2,3] of "
               "BF16 needs 12 bytes");
    expect_bad("overlap",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               NONE, 12, RL_E_FORMAT,
               "tensor 'b' (data offsets [4, 12]) overlaps tensor 'a' (which ends at data "
               "offset 8)");
    expect_bad("same offsets",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               NONE, 8, RL_E_FORMAT, "overlaps tensor 'a'");
    expect_bad("gap",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
               NONE, 16, RL_E_FORMAT,
               "gap of 4 bytes in the data section at data offset 8 (file byte");
    expect_bad("gap at start", "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               NONE, 8, RL_E_FORMAT, "gap of 4 bytes at the start of the data section");
    expect_bad("data longer", good, NONE, 11, RL_E_FORMAT,
               "data section is 11 bytes but the tensors cover 8: 3 extra bytes at file byte");
    expect_bad("data without tensors", "{}", NONE, 1, RL_E_FORMAT, "1 extra bytes");
    /* Names are quoted safely in messages. */
    expect_bad("control name", "{\"a\\u0001b\":[]}", NONE, 0, RL_E_FORMAT,
               "tensor 'a\\x01b': entry is an array");
}

/* ---- checkpoint directories -------------------------------------------- */

static const char *cfg_text = "{\"hidden_size\": 8}";

static void mkdir_p(const char *d) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", d, d);
    if (system(cmd) != 0) exit(2);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char p[768];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_bytes(p, text, strlen(text));
}

static void write_shard(const char *dir, const char *name, const char **tensors, int n) {
    static float vals[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    rl_st_entry en[8];
    for (int i = 0; i < n; i++) {
        memset(&en[i], 0, sizeof en[i]);
        en[i].name = tensors[i];
        en[i].dtype = RL_F32;
        en[i].ndim = 1;
        en[i].shape[0] = 1 + i;
        en[i].data = vals;
    }
    char p[768];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    rl_err e = {0};
    int rc = rl_st_write(p, en, n, NULL, NULL, NULL, NULL, NULL, &e);
    CHECK(rc == RL_OK, "write shard %s: %s", p, e.msg);
}

static const char *index_json =
    "{\"metadata\": {\"total_size\": 40},\n"
    " \"weight_map\": {\"x.a\": \"model-00001-of-00002.safetensors\",\n"
    "                \"x.b\": \"model-00001-of-00002.safetensors\",\n"
    "                \"y.c\": \"model-00002-of-00002.safetensors\",\n"
    "                \"y.d\": \"model-00002-of-00002.safetensors\"}}";

static void make_sharded(const char *dir) {
    mkdir_p(dir);
    write_text(dir, "config.json", cfg_text);
    const char *s1[] = {"x.b", "x.a"}, *s2[] = {"y.c", "y.d"};
    write_shard(dir, "model-00001-of-00002.safetensors", s1, 2);
    write_shard(dir, "model-00002-of-00002.safetensors", s2, 2);
    write_text(dir, "model.safetensors.index.json", index_json);
}

static void expect_ckpt_bad(const char *what, const char *dir, int code, const char *needle,
                            const char *needle2) {
    rl_checkpoint c;
    rl_err e = {0};
    int rc = rl_checkpoint_open(dir, &c, &e);
    CHECK(rc == code, "%s: rc %d (want %d): %s", what, rc, code, e.msg);
    CHECK(strstr(e.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, e.msg, needle);
    CHECK(!needle2 || strstr(e.msg, needle2) != NULL, "%s: message '%s' lacks '%s'", what,
          e.msg, needle2);
    CHECK(c.shards == NULL && c.by_name == NULL, "%s: not reset", what);
    rl_checkpoint_close(&c);
}

static void replace_index(const char *dir, const char *from, const char *to) {
    char *s = malloc(strlen(index_json) + 256);
    const char *p = strstr(index_json, from);
    if (!p) exit(3);
    size_t k = (size_t)(p - index_json);
    memcpy(s, index_json, k);
    strcpy(s + k, to);
    strcat(s, p + strlen(from));
    write_text(dir, "model.safetensors.index.json", s);
    free(s);
}

static void test_checkpoint(void) {
    char dir[640];
    snprintf(dir, sizeof dir, "%s/ckpt2", g_dir);
    make_sharded(dir);
    rl_checkpoint c;
    rl_err e = {0};
    int rc = rl_checkpoint_open(dir, &c, &e);
    CHECK(rc == RL_OK, "sharded open: %s", e.msg);
    if (!rc) {
        CHECK(c.n_shards == 2 && c.n_tensors == 4, "%d shards %d tensors", c.n_shards,
              c.n_tensors);
        CHECK(c.config_json && strcmp(c.config_json, cfg_text) == 0, "config_json");
        const char *names[] = {"x.a", "x.b", "y.c", "y.d"};
        for (int i = 0; i < 4; i++) {
            CHECK(strcmp(c.by_name[i]->name, names[i]) == 0, "by_name[%d] %s", i,
                  c.by_name[i]->name);
            const rl_tensor *t = rl_checkpoint_find(&c, names[i]);
            CHECK(t && strcmp(t->name, names[i]) == 0, "find %s", names[i]);
        }
        const rl_tensor *t = rl_checkpoint_find(&c, "y.d");
        CHECK(t && t->shape[0] == 2 && ((const float *)t->data)[1] == 2.0f, "y.d data");
        CHECK(rl_checkpoint_find(&c, "z") == NULL, "absent");
    }
    rl_checkpoint_close(&c);

    /* Single file. */
    char one[640];
    snprintf(one, sizeof one, "%s/ckpt1", g_dir);
    mkdir_p(one);
    write_text(one, "config.json", cfg_text);
    const char *s1[] = {"w"};
    write_shard(one, "model.safetensors", s1, 1);
    rc = rl_checkpoint_open(one, &c, &e);
    CHECK(rc == RL_OK && c.n_shards == 1 && c.n_tensors == 1 && rl_checkpoint_find(&c, "w"),
          "single: %s", e.msg);
    rl_checkpoint_close(&c);

    /* Failures. */
    char bad[640];
    snprintf(bad, sizeof bad, "%s/ckptbad", g_dir);
    expect_ckpt_bad("no dir", bad, RL_E_IO, "ckptbad", NULL);
    mkdir_p(bad);
    expect_ckpt_bad("no config", bad, RL_E_IO, "config.json: cannot open", NULL);
    write_text(bad, "config.json", cfg_text);
    expect_ckpt_bad("no weights", bad, RL_E_IO, "no model.safetensors", NULL);

    make_sharded(bad);
    replace_index(bad, "\"y.d\": \"model-00002-of-00002.safetensors\"",
                  "\"y.d\": \"model-00003-of-00002.safetensors\"");
    expect_ckpt_bad("missing shard", bad, RL_E_IO, "model-00003-of-00002.safetensors",
                    "cannot open");

    make_sharded(bad);
    replace_index(bad, "\"y.d\": \"model-00002-of-00002.safetensors\"}",
                  "\"y.d\": \"model-00002-of-00002.safetensors\", "
                  "\"y.e\": \"model-00002-of-00002.safetensors\"}");
    expect_ckpt_bad("index names absent tensor", bad, RL_E_SHAPE,
                    "maps tensor 'y.e' to shard", "model-00002-of-00002.safetensors");

    make_sharded(bad);
    replace_index(bad, ",\n                \"y.d\": \"model-00002-of-00002.safetensors\"", "");
    expect_ckpt_bad("tensor not in index", bad, RL_E_FORMAT,
                    "tensor 'y.d' is in shard", "not in the index weight_map");

    make_sharded(bad);
    replace_index(bad, "\"x.b\": \"model-00001-of-00002.safetensors\"",
                  "\"x.b\": \"model-00002-of-00002.safetensors\"");
    expect_ckpt_bad("wrong shard", bad, RL_E_FORMAT, "tensor 'x.b' is in shard",
                    "the index maps it to model-00002-of-00002.safetensors");

    make_sharded(bad);
    replace_index(bad, "\"y.d\": \"model-00002-of-00002.safetensors\"",
                  "\"y.d\": \"../ckpt2/model-00002-of-00002.safetensors\"");
    expect_ckpt_bad("dotdot", bad, RL_E_FORMAT, "tensor 'y.d': shard file name",
                    "../ckpt2");
    replace_index(bad, "\"y.d\": \"model-00002-of-00002.safetensors\"",
                  "\"y.d\": \"..\"");
    expect_ckpt_bad("dotdot alone", bad, RL_E_FORMAT, "not a plain file name", NULL);
    replace_index(bad, "\"y.d\": \"model-00002-of-00002.safetensors\"",
                  "\"y.d\": \"/etc/passwd\"");
    expect_ckpt_bad("absolute", bad, RL_E_FORMAT, "\"/etc/passwd\"", NULL);

    /* The same tensor in two shards. */
    make_sharded(bad);
    const char *dupt[] = {"y.c", "x.a"};
    write_shard(bad, "model-00002-of-00002.safetensors", dupt, 2);
    expect_ckpt_bad("dup across shards", bad, RL_E_FORMAT, "tensor 'x.a' appears in both",
                    "model-00001-of-00002.safetensors");

    /* A malformed shard: the message names the shard and the tensor. */
    make_sharded(bad);
    {
        char p[768];
        snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", bad);
        FILE *fp = fopen(p, "r+b");
        fseek(fp, 0, SEEK_END);
        long sz = ftell(fp);
        fclose(fp);
        if (truncate(p, sz - 4) != 0) exit(2);
    }
    expect_ckpt_bad("truncated shard", bad, RL_E_FORMAT,
                    "model-00002-of-00002.safetensors: tensor 'y.d'", "end past the data");

    make_sharded(bad);
    write_text(bad, "model.safetensors.index.json", "{\"weight_map\": [1]}");
    expect_ckpt_bad("bad weight_map", bad, RL_E_FORMAT, "missing \"weight_map\" object", NULL);
    write_text(bad, "model.safetensors.index.json", "{\"weight_map\": {\"a\": 1}}");
    expect_ckpt_bad("bad weight_map value", bad, RL_E_FORMAT,
                    "weight_map entry for tensor 'a'", NULL);
    write_text(bad, "model.safetensors.index.json", "{\"weight_map\": {");
    expect_ckpt_bad("index json", bad, RL_E_FORMAT, "model.safetensors.index.json: invalid JSON",
                    NULL);

    /* rl_read_file. */
    char *txt;
    size_t len;
    rc = rl_read_file(tpath("ckpt2/config.json"), &txt, &len, &e);
    CHECK(rc == RL_OK && len == strlen(cfg_text) && strcmp(txt, cfg_text) == 0, "read_file");
    free(txt);
    rc = rl_read_file(tpath("ckpt2/none.json"), &txt, &len, &e);
    CHECK(rc == RL_E_IO && txt == NULL && strstr(e.msg, "none.json: cannot open"), "%s",
          e.msg);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_safetensors", rl_t_tmpdir());
    mkdir_p(g_dir);
    test_roundtrip();
    test_streaming();
    test_malformed();
    test_checkpoint();
    return rl_test_done();
}
