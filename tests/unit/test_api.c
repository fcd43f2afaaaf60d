/* The public C API (include/ringlm.h), used as an outside program would:
 * errors name their cause, text round-trips, and the step keeps the
 * determinism promises of DESIGN.md §2.4 through the API (whole prompt ==
 * token by token == forked continuation == batched with another sequence,
 * bitwise), failed steps leave sequences untouched, and ringlm_logprob
 * agrees with a log-softmax computed here in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/mkmodel.h"
#include "ringlm.h"
#include "testutil.h"

static void make_checkpoint(char *dir, size_t cap) {
    snprintf(dir, cap, "%s/api_model", rl_t_tmpdir());
    rl_config c;
    rl_err e = {0};
    CHECK(rl_config_preset("test", &c, &e) == 0, "%s", e.msg);
    rl_mkmodel_opts o = {.seed = 7, .shards = 2, .dtype = RL_BF16,
                         .router_dtype = RL_F32, .byte_tokenizer = true};
    CHECK(rl_mkmodel(&c, dir, &o, &e) == 0, "%s", e.msg);
}

static void test_errors(void) {
    ringlm_model *m = (ringlm_model *)1;
    ringlm_error err;
    int rc = ringlm_model_load("/nonexistent/ringlm-model", NULL, &m, &err);
    CHECK(rc == RINGLM_E_IO || rc == RINGLM_E_CONFIG, "missing dir: rc %d", rc);
    CHECK(err.code == rc, "err.code %d", err.code);
    CHECK(strstr(err.message, "/nonexistent/ringlm-model") != NULL, "message names the path: %s",
          err.message);
    CHECK(m == NULL, "out cleared on failure");
    ringlm_load_params p = ringlm_load_params_default();
    p.decay_convention = 5;
    CHECK(ringlm_model_load("/tmp", &p, &m, &err) == RINGLM_E_ARG, "bad params refused");
}

static void test_text(ringlm_model *m) {
    ringlm_error err;
    CHECK(ringlm_has_tokenizer(m) && ringlm_has_chat_template(m), "tokenizer and template found");
    const char *s = "In the beginning \xc3\xa9t\xc3\xa9 <|role_end|>!";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(ringlm_tokenize(m, s, strlen(s), 0, &ids, &n, &err) == 0, "%s", err.message);
    char *back = NULL;
    size_t len = 0;
    CHECK(ringlm_detokenize(m, ids, n, 0, &back, &len, &err) == 0, "%s", err.message);
    CHECK(back && len == strlen(s) && memcmp(back, s, len) == 0, "round trip: '%s'", back ? back : "");
    ringlm_free(ids);
    ringlm_free(back);
    CHECK(ringlm_tokenize(m, "a\xff", 2, 0, &ids, &n, &err) != 0 && strstr(err.message, "1"),
          "invalid UTF-8 refused with its offset: %s", err.message);
    char *chat = NULL;
    CHECK(ringlm_chat_apply(m, "[{\"role\":\"user\",\"content\":\"hi there\"}]", 1, &chat, &err) == 0,
          "%s", err.message);
    CHECK(chat && strstr(chat, "hi there"), "rendered: %s", chat ? chat : "");
    ringlm_free(chat);
    CHECK(ringlm_chat_apply(m, "{\"role\":1}", 1, &chat, &err) == RINGLM_E_ARG, "non-array refused");
    CHECK(ringlm_chat_apply(m, "[{", 1, &chat, &err) == RINGLM_E_ARG &&
              strstr(err.message, "column"),
          "bad JSON located: %s", err.message);
}

static void test_step(ringlm_model *m) {
    ringlm_error err;
    enum { N = 150, CUT = 70 }; /* crosses Lightning chunks (64) and KV pages (64) */
    int V = ringlm_n_vocab(m);
    int32_t toks[N];
    uint64_t r = 11;
    for (int i = 0; i < N; i++) toks[i] = (int32_t)(rl_t_rand(&r) % (uint64_t)V);
    float *all = malloc(sizeof(float) * (size_t)N * V), *one = malloc(sizeof(float) * V);
    float *fork_out = malloc(sizeof(float) * (size_t)(N - CUT) * V), *other = malloc(sizeof(float) * V);
    ringlm_seq *a, *b, *c, *d;
    CHECK(ringlm_seq_new(m, &a, &err) == 0 && ringlm_seq_new(m, &b, &err) == 0, "%s", err.message);
    /* whole prompt at once */
    rl_t_poison(all, (size_t)N * V);
    ringlm_span sa = {a, toks, N, RINGLM_LOGITS_ALL, all};
    CHECK(ringlm_step(m, &sa, 1, &err) == 0, "%s", err.message);
    CHECK(ringlm_seq_pos(a) == N, "pos %d", ringlm_seq_pos(a));
    /* token by token, fork at CUT; the fork continues with the rest in one
     * span batched beside another sequence d */
    int same = 1;
    for (int i = 0; i < CUT; i++) {
        rl_t_poison(one, V);
        ringlm_span sb = {b, &toks[i], 1, RINGLM_LOGITS_LAST, one};
        CHECK(ringlm_step(m, &sb, 1, &err) == 0, "%s", err.message);
        same &= memcmp(one, all + (size_t)i * V, sizeof(float) * V) == 0;
    }
    CHECK(same, "token-by-token logits == whole-prompt logits (bitwise)");
    CHECK(ringlm_seq_fork(b, &c, &err) == 0 && ringlm_seq_pos(c) == CUT, "fork: %s", err.message);
    CHECK(ringlm_seq_new(m, &d, &err) == 0, "%s", err.message);
    ringlm_span two[2] = {{d, toks, 5, RINGLM_LOGITS_LAST, other},
                          {c, toks + CUT, N - CUT, RINGLM_LOGITS_ALL, fork_out}};
    CHECK(ringlm_step(m, two, 2, &err) == 0, "%s", err.message);
    CHECK(memcmp(fork_out, all + (size_t)CUT * V, sizeof(float) * (size_t)(N - CUT) * V) == 0,
          "forked continuation batched beside another sequence == whole prompt (bitwise)");
    CHECK(memcmp(other, all + 4 * (size_t)V, sizeof(float) * V) == 0,
          "the other sequence's logits are its own");
    /* the original b continues independently of its fork */
    ringlm_span sb = {b, toks + CUT, 1, RINGLM_LOGITS_LAST, one};
    CHECK(ringlm_step(m, &sb, 1, &err) == 0 && memcmp(one, all + (size_t)CUT * V, sizeof(float) * V) == 0,
          "fork left its source intact");
    /* failed steps change nothing */
    int bad = -1, pos_b = ringlm_seq_pos(b);
    ringlm_span sbad[2] = {{d, toks, 1, RINGLM_LOGITS_NONE, NULL}, {b, &bad, 1, RINGLM_LOGITS_NONE, NULL}};
    CHECK(ringlm_step(m, sbad, 2, &err) == RINGLM_E_ARG && strstr(err.message, "-1"),
          "bad id named: %s", err.message);
    CHECK(ringlm_seq_pos(b) == pos_b && ringlm_seq_pos(d) == 5, "no sequence moved");
    ringlm_span dup[2] = {{d, toks, 1, RINGLM_LOGITS_NONE, NULL}, {d, toks, 1, RINGLM_LOGITS_NONE, NULL}};
    CHECK(ringlm_step(m, dup, 2, &err) == RINGLM_E_ARG, "same sequence twice refused");
    ringlm_span nobuf = {d, toks, 1, RINGLM_LOGITS_LAST, NULL};
    CHECK(ringlm_step(m, &nobuf, 1, &err) == RINGLM_E_ARG, "logits without a buffer refused");
    /* logprob against a double log-softmax */
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, all[i]);
    for (int i = 0; i < V; i++) sum += exp((double)all[i] - mx);
    double want = (double)all[toks[1]] - mx - log(sum);
    CHECK(fabs(ringlm_logprob(all, V, toks[1]) - want) < 1e-5, "logprob %g vs %g",
          ringlm_logprob(all, V, toks[1]), want);
    ringlm_seq_reset(b);
    CHECK(ringlm_seq_pos(b) == 0, "reset");
    ringlm_seq_free(a);
    ringlm_seq_free(b);
    ringlm_seq_free(c);
    ringlm_seq_free(d);
    free(all);
    free(one);
    free(fork_out);
    free(other);
}

static void test_context_limit(const char *dir) {
    ringlm_error err;
    ringlm_load_params p = ringlm_load_params_default();
    p.max_context = 8;
    ringlm_model *m;
    CHECK(ringlm_model_load(dir, &p, &m, &err) == 0, "%s", err.message);
    if (!m) return;
    CHECK(ringlm_n_ctx(m) == 8, "n_ctx %d", ringlm_n_ctx(m));
    ringlm_seq *s;
    CHECK(ringlm_seq_new(m, &s, &err) == 0, "%s", err.message);
    int32_t t[9] = {3, 4, 5, 6, 7, 8, 9, 10, 11};
    ringlm_span sp = {s, t, 9, RINGLM_LOGITS_NONE, NULL};
    CHECK(ringlm_step(m, &sp, 1, &err) == RINGLM_E_CAPACITY, "over context: %s", err.message);
    CHECK(ringlm_seq_pos(s) == 0, "sequence untouched");
    sp.n = 8;
    CHECK(ringlm_step(m, &sp, 1, &err) == 0, "%s", err.message);
    ringlm_seq_free(s);
    ringlm_model_free(m);
}

int main(void) {
    char dir[4096];
    make_checkpoint(dir, sizeof dir);
    test_errors();
    ringlm_model *m = NULL;
    ringlm_error err;
    CHECK(ringlm_model_load(dir, NULL, &m, &err) == 0, "%s", err.message);
    if (m) {
        CHECK(ringlm_n_layer(m) == 4 && ringlm_n_layer_linear(m) == 2 && ringlm_n_embd(m) == 64,
              "shape: %d layers, %d linear, %d wide", ringlm_n_layer(m), ringlm_n_layer_linear(m),
              ringlm_n_embd(m));
        /* the Ring chat template ends a turn with <|role_end|>; a letter ends nothing */
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(ringlm_tokenize(m, "<|role_end|>a", 13, 0, &ids, &n, &err) == 0 && n == 2, "%s", err.message);
        if (n == 2) CHECK(ringlm_is_eog(m, ids[0]) && !ringlm_is_eog(m, ids[1]), "end-of-generation ids");
        ringlm_free(ids);
        test_text(m);
        test_step(m);
        ringlm_model_free(m);
    }
    test_context_limit(dir);
    return rl_test_done();
}
