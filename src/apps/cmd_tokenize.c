/* ringlm tokenize / detokenize: a tokenizer.json's encode and decode, the
 * same ids and text as Hugging Face's tokenizers. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "tokenizer/tokenizer.h"

static const char *tok_help =
    "usage: ringlm tokenize --tokenizer FILE (--text-file F | TEXT) [--no-special]\n"
    "\n"
    "Encodes TEXT (or the contents of F, byte for byte) with the tokenizer.json FILE\n"
    "and prints the token ids as one JSON array.\n"
    "\n"
    "  --tokenizer FILE   a Hugging Face tokenizer.json (a checkpoint directory works too)\n"
    "  --text-file F      read the text from F ('-' for stdin) instead of the argument\n"
    "  --no-special       do not add the post-processor's special tokens (BOS, ...);\n"
    "                     HF's add_special_tokens=False\n"
    "  --batch            read JSON lines from stdin and answer one JSON line each (tests):\n"
    "                     {\"encode\": TEXT, \"add_special\": B} -> {\"ids\": [...]}\n"
    "                     {\"decode\": [IDS], \"skip_special\": B} -> {\"text\": T}\n"
    "                     {\"stream\": [IDS], \"skip_special\": B} -> {\"chunks\": [T, ...]}\n"
    "                     (the streaming decoder's output per id, then its final flush);\n"
    "                     a failure answers {\"error\": MSG}\n";

static const char *detok_help =
    "usage: ringlm detokenize --tokenizer FILE --ids 1,2,3 [--skip-special]\n"
    "\n"
    "Decodes the comma-separated token ids (a JSON array such as [1, 2, 3] works too)\n"
    "with the tokenizer.json FILE and prints the text (no newline is added).\n"
    "\n"
    "  --tokenizer FILE   a Hugging Face tokenizer.json (a checkpoint directory works too)\n"
    "  --ids LIST         the ids\n"
    "  --skip-special     leave out special tokens (HF's skip_special_tokens=True)\n";

static int load(const char *path, rl_tok **t) {
    char buf[4096];
    size_t n = strlen(path);
    const char *p = path;
    if (n && (path[n - 1] == '/' || (n < 5 || strcmp(path + n - 5, ".json") != 0))) {
        FILE *f = fopen(path, "rb");
        bool is_dir = false;
        if (!f) is_dir = true;
        else {
            char c;
            is_dir = fread(&c, 1, 1, f) == 0 && ferror(f);
            fclose(f);
        }
        if (is_dir) {
            snprintf(buf, sizeof buf, "%s%stokenizer.json", path, path[n - 1] == '/' ? "" : "/");
            p = buf;
        }
    }
    rl_err e = {0};
    if (rl_tok_load_file(p, t, &e)) return app_fail("%s", e.msg);
    return 0;
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, k = 0, got;
    char *b = malloc(cap);
    while (b && (got = fread(b + k, 1, cap - k, f)) > 0) {
        k += got;
        if (k == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; }
            b = nb;
        }
    }
    bool err = ferror(f);
    if (f != stdin) fclose(f);
    if (err) { free(b); return NULL; }
    *n = k;
    return b;
}

static json_t *batch_one(rl_tok *t, json_t *job) {
    rl_err e = {0};
    json_t *x;
    if ((x = json_object_get(job, "encode")) && json_is_string(x)) {
        int32_t *ids;
        size_t k;
        json_t *sp = json_object_get(job, "add_special");
        if (rl_tok_encode(t, json_string_value(x), json_string_length(x), !sp || json_is_true(sp), &ids, &k, &e))
            return json_pack("{s:s}", "error", e.msg);
        json_t *a = json_array();
        for (size_t i = 0; i < k; i++) json_array_append_new(a, json_integer(ids[i]));
        free(ids);
        return json_pack("{s:o}", "ids", a);
    }
    bool stream = false;
    if (((x = json_object_get(job, "decode")) && json_is_array(x)) ||
        ((stream = true) && (x = json_object_get(job, "stream")) && json_is_array(x))) {
        size_t n = json_array_size(x);
        int32_t *v = malloc(sizeof *v * (n + 1));
        if (!v) return json_pack("{s:s}", "error", "out of memory");
        for (size_t i = 0; i < n; i++) v[i] = (int32_t)json_integer_value(json_array_get(x, i));
        bool skip = json_is_true(json_object_get(job, "skip_special"));
        json_t *res;
        if (!stream) {
            char *text;
            size_t len;
            if (rl_tok_decode(t, v, n, skip, &text, &len, &e)) res = json_pack("{s:s}", "error", e.msg);
            else { res = json_pack("{s:s%}", "text", text, len); free(text); }
        } else {
            rl_tok_stream *s = rl_tok_stream_new(t, skip);
            json_t *a = json_array();
            const char *o;
            size_t ol;
            int rc = 0;
            for (size_t i = 0; s && i < n && !rc; i++)
                if (!(rc = rl_tok_stream_feed(s, v[i], &o, &ol, &e))) json_array_append_new(a, json_stringn(o, ol));
            if (s && !rc && !(rc = rl_tok_stream_finish(s, &o, &ol, &e))) json_array_append_new(a, json_stringn(o, ol));
            if (!s || rc) { json_decref(a); res = json_pack("{s:s}", "error", s ? e.msg : "out of memory"); }
            else res = json_pack("{s:o}", "chunks", a);
            rl_tok_stream_free(s);
        }
        free(v);
        return res;
    }
    return json_pack("{s:s}", "error", "expected {\"encode\": ...}, {\"decode\": ...} or {\"stream\": ...}");
}

static int batch(rl_tok *t) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) > 0) {
        json_error_t je;
        json_t *job = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &je);
        json_t *res = job ? batch_one(t, job) : json_pack("{s:s}", "error", je.text);
        char *out = json_dumps(res, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (out) { fputs(out, stdout); fputc('\n', stdout); fflush(stdout); free(out); }
        json_decref(res);
        json_decref(job);
    }
    free(line);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *tokp = NULL, *text = NULL, *file = NULL;
    bool special = true, batch_mode = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(tok_help, stdout); return 0; }
        if (!strcmp(a, "--tokenizer") && i + 1 < argc) tokp = argv[++i];
        else if (!strcmp(a, "--text-file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(a, "--no-special")) special = false;
        else if (!strcmp(a, "--batch")) batch_mode = true;
        else if (!strcmp(a, "--") && i + 1 < argc) { if (text) return app_fail("tokenize: more than one TEXT"); text = argv[++i]; }
        else if (a[0] == '-' && a[1] == '-') return app_fail("tokenize: unknown option or missing value: %s (see --help)", a);
        else if (text) return app_fail("tokenize: more than one TEXT (quote it)");
        else text = a;
    }
    if (!tokp) return app_fail("tokenize: --tokenizer FILE is required (see --help)");
    if (batch_mode) {
        if (text || file) return app_fail("tokenize: --batch reads stdin; no TEXT or --text-file");
        rl_tok *bt;
        if (load(tokp, &bt)) return 1;
        int rc = batch(bt);
        rl_tok_free(bt);
        return rc;
    }
    if (!text == !file) return app_fail("tokenize: give either TEXT or --text-file F (see --help)");
    rl_tok *t;
    if (load(tokp, &t)) return 1;
    size_t n = 0;
    char *owned = NULL;
    if (file) {
        owned = read_all(file, &n);
        if (!owned) { rl_tok_free(t); return app_fail("tokenize: cannot read %s", file); }
        text = owned;
    } else {
        n = strlen(text);
    }
    int32_t *ids;
    size_t k;
    rl_err e = {0};
    int rc = rl_tok_encode(t, text, n, special, &ids, &k, &e);
    free(owned);
    if (rc) { rl_tok_free(t); return app_fail("%s", e.msg); }
    fputc('[', stdout);
    for (size_t i = 0; i < k; i++) printf(i ? ", %d" : "%d", ids[i]);
    fputs("]\n", stdout);
    free(ids);
    rl_tok_free(t);
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    const char *tokp = NULL, *idss = NULL;
    bool skip = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(detok_help, stdout); return 0; }
        if (!strcmp(a, "--tokenizer") && i + 1 < argc) tokp = argv[++i];
        else if (!strcmp(a, "--ids") && i + 1 < argc) idss = argv[++i];
        else if (!strcmp(a, "--skip-special")) skip = true;
        else return app_fail("detokenize: unknown option or missing value: %s (see --help)", a);
    }
    if (!tokp) return app_fail("detokenize: --tokenizer FILE is required (see --help)");
    if (!idss) return app_fail("detokenize: --ids 1,2,3 is required (see --help)");
    /* accept "1,2,3", "1, 2, 3" and "[1, 2, 3]" */
    char *clean = malloc(strlen(idss) + 1);
    if (!clean) return app_fail("out of memory");
    size_t c = 0;
    for (const char *p = idss; *p; p++)
        if (*p != ' ' && *p != '[' && *p != ']' && *p != '\n' && *p != '\t') clean[c++] = *p;
    clean[c] = 0;
    int n = 0;
    int *ids = NULL;
    if (c) {
        ids = app_parse_ids(clean, &n, "--ids");
        if (!ids) { free(clean); return 1; }
    }
    free(clean);
    rl_tok *t;
    if (load(tokp, &t)) { free(ids); return 1; }
    int32_t *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) { free(ids); rl_tok_free(t); return app_fail("out of memory"); }
    for (int i = 0; i < n; i++) v[i] = ids[i];
    free(ids);
    char *text;
    size_t len;
    rl_err e = {0};
    int rc = rl_tok_decode(t, v, (size_t)n, skip, &text, &len, &e);
    free(v);
    rl_tok_free(t);
    if (rc) return app_fail("%s", e.msg);
    fwrite(text, 1, len, stdout);
    free(text);
    return 0;
}
