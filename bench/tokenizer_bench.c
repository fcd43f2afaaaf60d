/* Single-thread encode throughput of ringlm's tokenizer on a text file.
 *   tokenizer_bench TOKENIZER.json TEXT [RUNS]
 * Prints one JSON line: bytes, tokens, best and median seconds, MB/s, and an
 * FNV-1a hash of the ids (to compare with bench/tokenizer_bench.js). Built
 * and run by bench/tokenizer_bench.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s TOKENIZER.json TEXT [RUNS]\n", argv[0]); return 2; }
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (runs < 1) runs = 1;
    rl_tok *t;
    rl_err e;
    if (rl_tok_load_file(argv[1], &t, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "read failed\n"); return 1; }
    fclose(f);
    double *ts = malloc(sizeof *ts * (size_t)runs);
    size_t k = 0;
    unsigned long long h = 0;
    for (int r = 0; r < runs; r++) {
        int32_t *ids;
        double t0 = now();
        if (rl_tok_encode(t, text, (size_t)n, false, &ids, &k, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
        ts[r] = now() - t0;
        h = 1469598103934665603ull;
        for (size_t i = 0; i < k; i++) { h ^= (unsigned long long)ids[i]; h *= 1099511628211ull; }
        free(ids);
    }
    qsort(ts, (size_t)runs, sizeof *ts, cmp);
    printf("{\"impl\":\"ringlm\",\"bytes\":%ld,\"tokens\":%zu,\"best_s\":%.4f,\"median_s\":%.4f,\"mb_per_s\":%.2f,\"ids_fnv\":\"%llx\"}\n",
           n, k, ts[0], ts[runs / 2], n / 1e6 / ts[0], h);
    free(ts);
    free(text);
    rl_tok_free(t);
    return 0;
}
