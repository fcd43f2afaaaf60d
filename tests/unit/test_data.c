/* Token files and the loader: the writer's file reads back; windows are the
 * file's ids; the split is the same for every seed; each epoch serves every
 * training window once in a seed-determined order; a loader restored from
 * a saved state continues exactly as an uninterrupted one; malformed files
 * are refused naming the byte. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "train/data.h"

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

int main(void) {
    char path[4096], bad[4096];
    snprintf(path, sizeof path, "%s/test_data.bin", rl_t_tmpdir());
    snprintf(bad, sizeof bad, "%s/test_data_bad.bin", rl_t_tmpdir());
    enum { V = 1000, EOS = 7 };
    rl_err e = {0};
    rl_data_writer w;
    CHECK(rl_data_writer_open(&w, path, V, EOS, &e) == 0, "%s", e.msg);
    int32_t doc[300];
    int64_t expect_n = 0;
    uint64_t rs = 11;
    for (int d = 0; d < 20; d++) {
        int n = (int)(rl_t_rand(&rs) % 300);
        for (int i = 0; i < n; i++) doc[i] = (int32_t)(rl_t_rand(&rs) % V);
        CHECK(rl_data_writer_add(&w, doc, (size_t)n, &e) == 0, "%s", e.msg);
        expect_n += n + 1;
    }
    CHECK(rl_data_writer_add(&w, (int32_t[]){V}, 1, &e) != 0, "id outside the vocabulary refused");
    CHECK(rl_data_writer_finish(&w, &e) == 0, "%s", e.msg);
    rl_data d;
    CHECK(rl_data_open(path, &d, &e) == 0, "%s", e.msg);
    CHECK(d.n_tokens == expect_n && d.n_docs == 20 && d.vocab_size == V && d.eos_id == EOS,
          "header: %lld tokens %lld docs", (long long)d.n_tokens, (long long)d.n_docs);
    int64_t n_eos = 0;
    for (int64_t i = 0; i < d.n_tokens; i++) n_eos += d.ids[i] == EOS;
    CHECK(d.ids[d.n_tokens - 1] == EOS && n_eos >= 20, "documents end with EOS");

    /* windows */
    enum { S = 32 };
    rl_loader a, b, c;
    CHECK(rl_loader_init(&a, &d, S, 0.1, 42, &e) == 0, "%s", e.msg);
    CHECK(rl_loader_init(&b, &d, S, 0.1, 42, &e) == 0, "%s", e.msg);
    CHECK(rl_loader_init(&c, &d, S, 0.1, 43, &e) == 0, "%s", e.msg);
    CHECK(a.n_windows == (d.n_tokens - 1) / S && a.n_train + a.n_val == a.n_windows && a.n_val > 0,
          "%lld windows, %lld val", (long long)a.n_windows, (long long)a.n_val);
    CHECK(a.n_val == c.n_val && memcmp(a.val, c.val, (size_t)a.n_val * 8) == 0, "split independent of seed");
    int wa[S + 1], wb[S + 1], wc[S + 1];
    bool same_ab = true, same_ac = true, in_file = true;
    int64_t *seen = calloc((size_t)a.n_windows, sizeof *seen);
    for (int64_t k = 0; k < 3 * a.n_train; k++) {
        int64_t wnum = a.order[a.st.index < a.n_train ? a.st.index : 0];
        bool wrap = a.st.index >= a.n_train;
        rl_loader_next(&a, wa);
        if (wrap) wnum = a.order[0];
        rl_loader_next(&b, wb);
        rl_loader_next(&c, wc);
        same_ab &= memcmp(wa, wb, sizeof wa) == 0;
        same_ac &= memcmp(wa, wc, sizeof wa) == 0;
        for (int i = 0; i <= S; i++) in_file &= wa[i] == (int)d.ids[wnum * S + i];
        seen[wnum]++;
    }
    CHECK(same_ab, "same seed, same windows");
    CHECK(!same_ac, "another seed, another order");
    CHECK(in_file, "a window is ids[w*S .. w*S+S]");
    bool once = true;
    for (int64_t k = 0; k < a.n_train; k++) once &= seen[a.train[k]] == 3;
    for (int64_t k = 0; k < a.n_val; k++) once &= seen[a.val[k]] == 0;
    CHECK(once, "3 epochs serve each training window 3 times and no validation window");
    CHECK(a.st.epoch == 2 || a.st.epoch == 3, "epoch %lld", (long long)a.st.epoch);
    rl_loader_val(&a, 0, wa);
    CHECK(wa[0] == (int)d.ids[a.val[0] * S], "validation window");

    /* resume: save the state mid-epoch, restore it into a fresh loader */
    rl_loader r1, r2;
    rl_loader_init(&r1, &d, S, 0.1, 9, &e);
    for (int k = 0; k < (int)r1.n_train + 5; k++) rl_loader_next(&r1, wa);
    rl_loader_state st = rl_loader_get(&r1);
    rl_loader_init(&r2, &d, S, 0.1, 9, &e);
    CHECK(rl_loader_set(&r2, st, &e) == 0, "%s", e.msg);
    bool cont = true;
    for (int k = 0; k < 2 * (int)r1.n_train; k++) {
        rl_loader_next(&r1, wa);
        rl_loader_next(&r2, wb);
        cont &= memcmp(wa, wb, sizeof wa) == 0;
    }
    CHECK(cont, "restored loader continues bitwise");
    st.seed++;
    CHECK(rl_loader_set(&r2, st, &e) != 0 && strstr(e.msg, "seed"), "state of another seed refused: %s", e.msg);
    rl_loader_free(&r1);
    rl_loader_free(&r2);
    CHECK(rl_loader_init(&r1, &d, (int)d.n_tokens, 0.1, 0, &e) != 0, "too few windows refused");
    rl_loader_free(&a);
    rl_loader_free(&b);
    rl_loader_free(&c);
    free(seen);

    /* malformed files */
    size_t n = 64 + 4 * 8;
    uint8_t *img = malloc(n);
    memcpy(img, d.map, n);
    memcpy(img + 16, &(uint64_t){8}, 8);
    write_file(bad, img, n);
    rl_data x;
    CHECK(rl_data_open(bad, &x, &e) == 0, "a valid prefix file: %s", e.msg);
    rl_data_close(&x);
    memcpy(img + 64 + 12, &(uint32_t){V + 5}, 4);
    write_file(bad, img, n);
    CHECK(rl_data_open(bad, &x, &e) != 0 && strstr(e.msg, "byte 76"), "id out of range names its byte: %s", e.msg);
    write_file(bad, img, n - 2);
    CHECK(rl_data_open(bad, &x, &e) != 0 && strstr(e.msg, "byte 16"), "truncated: %s", e.msg);
    img[0] = 'X';
    write_file(bad, img, n);
    CHECK(rl_data_open(bad, &x, &e) != 0 && strstr(e.msg, "magic"), "bad magic: %s", e.msg);
    write_file(bad, img, 10);
    CHECK(rl_data_open(bad, &x, &e) != 0 && strstr(e.msg, "header"), "short: %s", e.msg);
    free(img);
    unlink(bad);
    rl_data_close(&d);
    unlink(path);
    return rl_test_done();
}
