/* ringlm tokenizer-train: learns a byte-level BPE tokenizer.json (Ring
 * pre-tokenizer regex, chosen special tokens) from text files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/app.h"
#include "format/checkpoint.h"
#include "train/tokenizer_train.h"

static void progress(void *ctx, int done, int total) {
    (void)ctx;
    static double last;
    if (!isatty(2)) return;
    double now = app_now();
    if (done < total && now - last < 0.2) return;
    last = now;
    fprintf(stderr, "\rtokenizer-train: merges %d/%d", done, total);
}

int cmd_tokenizer_train(int argc, char **argv) {
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    const char **specials = calloc((size_t)argc, sizeof *specials);
    int n_in = 0, n_sp = 0, vocab = 0, minf = 2, rc = 1;
    const char *out = NULL;
    rl_bpe_trainer *t = NULL;
    if (!inputs || !specials) return app_fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ringlm tokenizer-train --input FILE... --vocab-size N [--special TOKEN...]\n"
                   "                              -o tokenizer.json\n"
                   "Learns a byte-level BPE on words split by the Ring pre-tokenizer regex (SPEC 4)\n"
                   "and writes a Hugging Face tokenizer.json. The most frequent pair is merged\n"
                   "first; ties go to the smaller (left id, right id), so the result depends only\n"
                   "on the input text and its order.\n"
                   "  --input FILE...      UTF-8 text files (several may follow one --input)\n"
                   "  --vocab-size N       final vocabulary: 256 bytes + learned tokens + specials\n"
                   "  --special TOKEN...   special tokens, ids after the vocabulary in this order\n"
                   "                       (their text in the input takes no part in merges)\n"
                   "  --min-frequency N    do not merge pairs seen fewer than N times (default 2)\n"
                   "  -o, --out FILE       the tokenizer.json to write\n");
            free(inputs);
            free(specials);
            return 0;
        }
        if (!strcmp(a, "--input") || !strcmp(a, "--special")) {
            bool in = a[2] == 'i';
            int k = 0;
            /* values run to the next option: "--x" or "-o" (inputs: any "-x") */
            while (i + 1 < argc) {
                const char *nx = argv[i + 1];
                bool opt = !strncmp(nx, "--", 2) || !strcmp(nx, "-o") || !strcmp(nx, "-h") ||
                           (in && nx[0] == '-' && nx[1]);
                if (opt) break;
                if (in) inputs[n_in++] = argv[++i];
                else specials[n_sp++] = argv[++i];
                k++;
            }
            if (!k) { app_fail("%s needs a value", a); goto out; }
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { app_fail("tokenizer-train: option '%s' is unknown or needs a value", a); goto out; }
        if (!strcmp(a, "--vocab-size")) {
            if (!app_int(a, v, 1, 1 << 24, &vocab)) goto out;
        } else if (!strcmp(a, "--min-frequency")) {
            if (!app_int(a, v, 1, 1 << 30, &minf)) goto out;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            out = v;
        } else {
            app_fail("tokenizer-train: unknown option '%s'", a);
            goto out;
        }
        i++;
    }
    if (!n_in || !vocab || !out) {
        app_fail("tokenizer-train needs --input FILE..., --vocab-size N and -o FILE (see --help)");
        goto out;
    }
    rl_err e = {0};
    if (rl_bpe_trainer_new(specials, n_sp, &t, &e)) { app_fail("%s", e.msg); goto out; }
    for (int i = 0; i < n_in; i++) {
        char *txt;
        size_t len;
        if (rl_read_file(inputs[i], &txt, &len, &e)) { app_fail("%s", e.msg); goto out; }
        int r = rl_bpe_trainer_feed(t, txt, len, inputs[i], &e);
        free(txt);
        if (r) { app_fail("%s", e.msg); goto out; }
    }
    int64_t distinct, total;
    rl_bpe_trainer_counts(t, &distinct, &total);
    fprintf(stderr, "tokenizer-train: %lld words, %lld distinct\n", (long long)total, (long long)distinct);
    rl_bpe_train_opts o = {.vocab_size = vocab, .min_frequency = minf, .specials = specials,
                           .n_specials = n_sp, .progress = progress};
    int nm, nv;
    if (rl_bpe_trainer_train(t, &o, out, &nm, &nv, &e)) { app_fail("%s", e.msg); goto out; }
    if (isatty(2)) fputc('\n', stderr);
    fprintf(stderr, "tokenizer-train: %d merges, vocabulary %d%s -> %s\n", nm, nv,
            nv < vocab ? " (no more pairs above --min-frequency)" : "", out);
    rc = 0;
out:
    rl_bpe_trainer_free(t);
    free(inputs);
    free(specials);
    return rc;
}
