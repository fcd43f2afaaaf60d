/* The server's KV page accounting (src/server/kvbudget.h, pcache.h) on a
 * real pool: a sequence of 130 tokens holds 3 pages, snapshots at 64 and
 * 128 share its first 2; which pages evicting snapshots can give back is
 * counted from that construction (never from the code under test), and
 * rl_kv_make_room evicts only when that suffices, sparing the kept one. */
#include <stdio.h>
#include <string.h>

#include "model/mkmodel.h"
#include "server/kvbudget.h"
#include "server/pcache.h"
#include "testutil.h"

static void test_positions(void) {
    CHECK(rl_kv_pages_for(0) == 0 && rl_kv_pages_for(1) == 1 && rl_kv_pages_for(64) == 1 &&
              rl_kv_pages_for(65) == 2,
          "pages for positions");
    /* the last sampled token is never fed: prompt + max_tokens - 1 */
    CHECK(rl_kv_positions(100, 1, 4096) == 100, "max_tokens 1: the prompt only");
    CHECK(rl_kv_positions(100, 29, 4096) == 128, "prompt 100 + 28 fed tokens");
    CHECK(rl_kv_positions(100, -1, 4096) == 100, "unbounded: promised the prompt");
    CHECK(rl_kv_positions(100, 5000, 1024) == 1024, "capped at the context");
}

static void test_pool(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kvbudget_model", rl_t_tmpdir());
    rl_config c;
    rl_err e = {0};
    CHECK(rl_config_preset("test", &c, &e) == 0, "%s", e.msg);
    rl_mkmodel_opts mo = {.seed = 3, .shards = 1, .dtype = RL_BF16, .router_dtype = RL_F32};
    CHECK(rl_mkmodel(&c, dir, &mo, &e) == 0, "%s", e.msg);
    rl_model m;
    if (rl_model_load(dir, NULL, &m, &e)) {
        CHECK(0, "load: %s", e.msg);
        return;
    }
    rl_engine eng;
    CHECK(rl_engine_init(&eng, &m, 8, &e) == 0, "%s", e.msg);
    CHECK(rl_kv_budget_on(&eng.pool), "the test preset has softmax layers and a bound");
    rl_pcache pc;
    rl_pcache_init(&pc, &eng, (size_t)1 << 30);
    rl_slot a;
    CHECK(rl_slot_init(&a, &m, &e) == 0, "%s", e.msg);
    int toks[130];
    for (int i = 0; i < 130; i++) toks[i] = (i * 37 + 5) % 500;
    /* feed 64, snapshot, 64 more, snapshot, then 2: positions 0..129 = 3 pages */
    int at[] = {0, 64, 128, 130};
    for (int k = 0; k < 3; k++) {
        rl_span sp = {&a, toks + at[k], at[k + 1] - at[k], at[k], RL_LOGITS_NONE, NULL};
        CHECK(rl_step(&eng, &sp, 1, &e) == 0, "%s", e.msg);
        if (k < 2) CHECK(rl_pcache_insert(&pc, toks, &a, &e) == 0, "%s", e.msg);
    }
    CHECK(a.n_pages == 3 && pc.n == 2, "3 pages, 2 snapshots (%d, %d)", a.n_pages, pc.n);
    CHECK(rl_kv_free_pages(&eng.pool) == 5, "8 - 3 free: %d", rl_kv_free_pages(&eng.pool));
    CHECK(rl_pcache_freeable_pages(&pc, NULL) == 0, "the sequence holds every snapshot page");

    rl_slot_reset(&a, &eng.pool); /* page 2 goes back; pages 0, 1 stay with the snapshots */
    const rl_pcache_entry *s64 = rl_pcache_find(&pc, toks, 64), *s128 = rl_pcache_find(&pc, toks, 128);
    CHECK(s64 && s128 && s64->n == 64 && s128->n == 128, "both snapshots found");
    if (!s64 || !s128) return;
    const int32_t *k64 = s64->toks, *k128 = s128->toks; /* stable while the entries live */
    CHECK(rl_kv_free_pages(&eng.pool) == 6, "free after reset: %d", rl_kv_free_pages(&eng.pool));
    CHECK(rl_pcache_freeable_pages(&pc, NULL) == 2, "snapshot-only pages: %d", rl_pcache_freeable_pages(&pc, NULL));
    CHECK(rl_pcache_freeable_pages(&pc, k128) == 0, "keeping the 128 snapshot frees nothing");
    CHECK(rl_pcache_freeable_pages(&pc, k64) == 1, "keeping the 64 snapshot frees page 1");

    /* a sequence forked from a snapshot pins its pages */
    rl_slot b;
    CHECK(rl_slot_init(&b, &m, &e) == 0 && rl_slot_fork(&b, &s128->snap, &eng.pool, &e) == 0, "%s", e.msg);
    CHECK(rl_pcache_freeable_pages(&pc, NULL) == 0, "pages shared with a sequence are not freeable");
    rl_slot_reset(&b, &eng.pool);

    CHECK(rl_kv_make_room(&pc, 6, 9, NULL) == 6 && pc.n == 2, "cannot reach 9: nothing evicted");
    CHECK(rl_kv_make_room(&pc, 6, 7, k64) == 7 && pc.n == 1, "one page wanted, 64 kept: the 128 snapshot goes");
    CHECK(rl_pcache_find(&pc, toks, 128) && rl_pcache_find(&pc, toks, 128)->n == 64, "the 64 snapshot is left");
    CHECK(rl_kv_make_room(&pc, 7, 8, NULL) == 8 && pc.n == 0 && rl_kv_free_pages(&eng.pool) == 8,
          "the last page: the cache empties, the pool is whole");
    CHECK(rl_pcache_evict_lru(&pc, NULL) == 0, "nothing left to evict");

    rl_slot_free(&b, &eng.pool);
    rl_slot_free(&a, &eng.pool);
    rl_pcache_free(&pc);
    rl_engine_free(&eng);
    rl_model_free(&m);
}

int main(void) {
    test_positions();
    test_pool();
    return rl_test_done();
}
