/* ringlm prepare-data: text files -> a token file (train/data.h) for
 * `ringlm train`: each document's ids followed by the EOS id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/app.h"
#include "format/checkpoint.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

typedef struct doc {
    const char *p;
    size_t n;
    int32_t *ids;
    size_t n_ids;
    int rc;
    rl_err e;
} doc;

/* Splits text into documents: the whole text, or pieces separated by lines
 * that equal sep exactly (the separator lines are dropped, and so is the
 * newline that ends each document's last line). */
static doc *split_docs(const char *t, size_t n, const char *sep, size_t *nd) {
    size_t cap = 64, k = 0;
    doc *d = calloc(cap, sizeof *d);
    if (!d) return NULL;
    if (!sep) {
        d[0].p = t;
        d[0].n = n;
        *nd = 1;
        return d;
    }
    size_t sl = strlen(sep), start = 0, i = 0;
    while (i <= n) {
        const char *nl = i < n ? memchr(t + i, '\n', n - i) : NULL;
        size_t end = nl ? (size_t)(nl - t) : n; /* line [i, end) */
        size_t le = end;
        if (le > i && t[le - 1] == '\r') le--;
        bool is_sep = le - i == sl && memcmp(t + i, sep, sl) == 0;
        if (is_sep || end == n) {
            size_t dend = is_sep ? i : n;
            if (is_sep && dend > start && t[dend - 1] == '\n') dend--;
            if (dend > start) {
                if (k == cap) {
                    doc *nd2 = realloc(d, (cap *= 2) * sizeof *d);
                    if (!nd2) { free(d); return NULL; }
                    d = nd2;
                }
                memset(&d[k], 0, sizeof d[k]);
                d[k].p = t + start;
                d[k].n = dend - start;
                k++;
            }
            start = end + 1;
        }
        if (!nl) break;
        i = end + 1;
    }
    *nd = k;
    return d;
}

int cmd_prepare_data(int argc, char **argv) {
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    const char *tok_path = NULL, *out = NULL, *sep = NULL, *eos_tok = "<|endoftext|>";
    int n_in = 0, eos_id = -1, rc = 1;
    rl_tok *tok = NULL;
    rl_data_writer w = {0};
    if (!inputs) return app_fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ringlm prepare-data --tokenizer FILE --input FILE... -o data.bin [options]\n"
                   "Tokenizes text into a token file for `ringlm train`: a 64-byte header and\n"
                   "uint32 ids, each document followed by the EOS id (format: src/train/data.h).\n"
                   "  --tokenizer FILE   tokenizer.json (or a model directory holding one)\n"
                   "  --input FILE...    UTF-8 text files (several may follow one --input)\n"
                   "  --doc-sep LINE     a line equal to LINE ends a document (e.g. %% for fortune\n"
                   "                     files and scripts/fetch-corpus.sh); default: one document\n"
                   "                     per file\n"
                   "  --eos TOKEN        the separator token (default <|endoftext|>)\n"
                   "  --eos-id N         the separator id, for tokenizers without such a token\n"
                   "  -o, --out FILE     the token file to write\n");
            free(inputs);
            return 0;
        }
        if (!strcmp(a, "--input")) {
            int k = 0;
            while (i + 1 < argc && !(argv[i + 1][0] == '-' && argv[i + 1][1])) inputs[n_in++] = argv[++i], k++;
            if (!k) { app_fail("--input needs a file"); goto out; }
            continue;
        }
        if (!v) { app_fail("prepare-data: option '%s' is unknown or needs a value", a); goto out; }
        if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--doc-sep")) sep = v;
        else if (!strcmp(a, "--eos")) eos_tok = v;
        else if (!strcmp(a, "--eos-id")) {
            if (!app_int(a, v, 0, INT32_MAX - 1, &eos_id)) goto out;
        } else { app_fail("prepare-data: unknown option '%s'", a); goto out; }
        i++;
    }
    if (!tok_path || !n_in || !out) {
        app_fail("prepare-data needs --tokenizer FILE, --input FILE... and -o FILE (see --help)");
        goto out;
    }
    rl_err e = {0};
    char tp[4096];
    size_t tl = strlen(tok_path);
    if (tl < 5 || strcmp(tok_path + tl - 5, ".json") != 0) snprintf(tp, sizeof tp, "%s/tokenizer.json", tok_path);
    else snprintf(tp, sizeof tp, "%s", tok_path);
    if (rl_tok_load_file(tp, &tok, &e)) { app_fail("%s", e.msg); goto out; }
    if (eos_id < 0) {
        eos_id = rl_tok_added_id(tok, eos_tok);
        if (eos_id < 0) eos_id = rl_tok_token_to_id(tok, eos_tok, strlen(eos_tok));
        if (eos_id < 0) {
            app_fail("%s has no token '%s' (name the separator with --eos TOKEN or --eos-id N)", tp, eos_tok);
            goto out;
        }
    }
    int32_t V = rl_tok_vocab_size(tok);
    if (eos_id >= V) { app_fail("--eos-id %d is outside the vocabulary (%d)", eos_id, V); goto out; }
    if (rl_data_writer_open(&w, out, V, eos_id, &e)) { app_fail("%s", e.msg); goto out; }
    double t0 = app_now();
    size_t total_bytes = 0;
    for (int f = 0; f < n_in; f++) {
        char *txt;
        size_t len;
        if (rl_read_file(inputs[f], &txt, &len, &e)) { app_fail("%s", e.msg); goto out; }
        size_t nd;
        doc *d = split_docs(txt, len, sep, &nd);
        if (!d) { free(txt); app_fail("out of memory"); goto out; }
        /* documents are encoded in parallel and written in order */
#pragma omp parallel for schedule(dynamic, 16)
        for (size_t k = 0; k < nd; k++)
            d[k].rc = rl_tok_encode(tok, d[k].p, d[k].n, false, &d[k].ids, &d[k].n_ids, &d[k].e);
        int bad = 0;
        for (size_t k = 0; k < nd && !bad; k++) {
            if (d[k].rc) {
                app_fail("%s: byte %zu (document %zu): %s", inputs[f], (size_t)(d[k].p - txt), k, d[k].e.msg);
                bad = 1;
            } else if (rl_data_writer_add(&w, d[k].ids, d[k].n_ids, &e)) {
                app_fail("%s", e.msg);
                bad = 1;
            }
        }
        for (size_t k = 0; k < nd; k++) free(d[k].ids);
        free(d);
        free(txt);
        total_bytes += len;
        if (bad) goto out;
        if (isatty(2)) fprintf(stderr, "\rprepare-data: %d/%d files, %llu tokens", f + 1, n_in,
                               (unsigned long long)w.n_tokens);
    }
    if (isatty(2)) fputc('\n', stderr);
    unsigned long long nt = w.n_tokens, ndocs = w.n_docs;
    if (rl_data_writer_finish(&w, &e)) { app_fail("%s", e.msg); goto out; }
    fprintf(stderr, "prepare-data: %llu documents, %llu tokens (%.2f bytes/token, eos %d) in %.1f s -> %s\n",
            ndocs, nt, nt ? (double)total_bytes / (double)nt : 0.0, eos_id, app_now() - t0, out);
    rc = 0;
out:
    if (w.f) rl_data_writer_abort(&w);
    rl_tok_free(tok);
    free(inputs);
    return rc;
}
