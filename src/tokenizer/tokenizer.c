/* Encoding: added tokens on the raw text, the normalizer, added tokens on
 * the normalized text, the pre-tokenizer, the BPE model, the
 * post-processor -- the order of HF's TokenizerImpl::encode. */
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

#define OOM rl_errf(e, RL_E_NOMEM, "out of memory")

static bool is_word_at_end(const char *s, size_t n) {
    if (!n) return false;
    size_t k = n - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    int l;
    return tk_is_word(tk_utf8_dec((const unsigned char *)s + k, &l));
}

static bool is_word_at_start(const char *s, size_t n) {
    if (!n) return false;
    int l;
    return tk_is_word(tk_utf8_dec((const unsigned char *)s, &l));
}

/* HF AddedVocabulary::find_matches + split_with_indices over piece p. */
static int split_added(const rl_tok *t, const tk_trie *trie, const int32_t *pid, const int32_t *ptok,
                       const tk_buf *arena, const tk_piece *p, tk_pieces *out, rl_err *e) {
    const char *s = arena->p + p->off;
    size_t n = p->len, start_off = 0, from = 0, ms, me;
    int pat;
    while (from <= n && tk_trie_find(trie, s, n, from, &ms, &me, &pat)) {
        from = me;
        const tk_added *a = &t->added[ptok[pat]];
        size_t start = ms, stop = me;
        if (a->single_word) {
            bool start_space = start == 0 || !is_word_at_end(s, start);
            bool stop_space = stop == n || !is_word_at_start(s + stop, n - stop);
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t k = start;
            while (k > 0) {
                size_t q = k - 1;
                while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                int l;
                if (!tk_is_whitespace(tk_utf8_dec((const unsigned char *)s + q, &l))) break;
                k = q;
            }
            start = k > start_off ? k : start_off;
        }
        if (a->rstrip) {
            while (stop < n) {
                int l;
                if (!tk_is_whitespace(tk_utf8_dec((const unsigned char *)s + stop, &l))) break;
                stop += (size_t)l;
            }
        }
        if (start_off < start) {
            tk_piece q = {p->off + (uint32_t)start_off, (uint32_t)(start - start_off), -1,
                          start_off < p->zlen ? p->zlen - (uint32_t)start_off : 0};
            if (!tk_pieces_push(out, q)) return OOM;
        }
        tk_piece q = {p->off + (uint32_t)start, (uint32_t)(stop - start), pid[pat], 0};
        if (!tk_pieces_push(out, q)) return OOM;
        start_off = stop;
    }
    if (start_off < n) { /* HF: start_offset != len; a stripped stop never passes len */
        tk_piece q = {p->off + (uint32_t)start_off, (uint32_t)(n - start_off), -1,
                      start_off < p->zlen ? p->zlen - (uint32_t)start_off : 0};
        if (!tk_pieces_push(out, q)) return OOM;
    }
    return RL_OK;
}

static int post_apply(const tk_post *pp, tk_ids *ids, rl_err *e) {
    if (pp->type == TQ_SEQ) {
        for (int i = 0; i < pp->n_items; i++) {
            int rc = post_apply(&pp->items[i], ids, e);
            if (rc) return rc;
        }
        return RL_OK;
    }
    if (pp->type == TQ_BYTELEVEL) return RL_OK;
    tk_ids o = {0};
    for (size_t i = 0; i < pp->n_tmpl; i++) {
        if (pp->tmpl[i] == INT32_MIN) {
            for (size_t k = 0; k < ids->n; k++)
                if (!tk_ids_push(&o, ids->v[k])) { free(o.v); return OOM; }
        } else if (!tk_ids_push(&o, pp->tmpl[i])) { free(o.v); return OOM; }
    }
    free(ids->v);
    *ids = o;
    return RL_OK;
}

int rl_tok_encode(const rl_tok *tc, const char *text, size_t len, bool add_special, int32_t **ids_out,
                  size_t *n_out, rl_err *e) {
    rl_tok *t = (rl_tok *)tc; /* only the BPE cache changes, under its lock */
    *ids_out = NULL;
    *n_out = 0;
    if (!text && len) return rl_errf(e, RL_E_ARG, "encode: NULL text");
    size_t valid = rl_utf8_valid_prefix(text, len);
    if (valid != len) return rl_errf(e, RL_E_ARG, "encode: invalid UTF-8 at byte offset %zu", valid);
    if (len > (UINT32_MAX / 4) - 64) return rl_errf(e, RL_E_ARG, "encode: text too long (%zu bytes)", len);
    tk_buf arena = {0}, nb = {0};
    tk_pieces ps = {0}, ps2 = {0};
    tk_ids ids = {0};
    tk_scratch sc;
    int rc = tk_scratch_init(&sc, e);
    if (rc) return rc;
    if (!tk_buf_reserve(&arena, len * 3 + 64) || !tk_buf_put(&arena, text, len)) { rc = OOM; goto out; }
    tk_piece whole = {0, (uint32_t)len, -1, len ? (uint32_t)tk_utf8_len((unsigned char)text[0]) : 0};
    /* 1. added tokens that match the raw text */
    rc = split_added(t, &t->trie_raw, t->trie_raw_id, t->trie_raw_tok, &arena, &whole, &ps, e);
    if (rc) goto out;
    /* 2. normalize the other pieces, then added tokens that match normalized text */
    for (size_t i = 0; i < ps.n; i++) {
        tk_piece p = ps.v[i];
        if (p.id >= 0) {
            if (!tk_pieces_push(&ps2, p)) { rc = OOM; goto out; }
            continue;
        }
        if (t->norm) {
            size_t zl = p.zlen;
            rc = tk_norm_apply(t->norm, arena.p + p.off, p.len, &nb, &zl, &sc, e);
            if (rc) goto out;
            if (arena.n > UINT32_MAX / 2 - nb.n) { rc = rl_errf(e, RL_E_ARG, "encode: text too long"); goto out; }
            p.off = (uint32_t)arena.n;
            p.len = (uint32_t)nb.n;
            p.zlen = (uint32_t)zl;
            if (!tk_buf_put(&arena, nb.p, nb.n)) { rc = OOM; goto out; }
        }
        if (p.len == 0) continue;
        rc = split_added(t, &t->trie_norm, t->trie_norm_id, t->trie_norm_tok, &arena, &p, &ps2, e);
        if (rc) goto out;
    }
    /* 3. pre-tokenize */
    if (t->pre) {
        rc = tk_pretok_apply(t->pre, &arena, &ps2, &sc, e);
        if (rc) goto out;
    }
    /* 4. the model */
    for (size_t i = 0; i < ps2.n; i++) {
        const tk_piece *p = &ps2.v[i];
        if (p->id >= 0) {
            if (!tk_ids_push(&ids, p->id)) { rc = OOM; goto out; }
        } else if (p->len) {
            rc = tk_bpe_tokenize(&t->bpe, arena.p + p->off, p->len, &ids, e);
            if (rc) goto out;
        }
    }
    /* 5. post-process */
    if (add_special && t->post) {
        rc = post_apply(t->post, &ids, e);
        if (rc) goto out;
    }
    if (!ids.v && !(ids.v = malloc(sizeof(int32_t)))) { rc = OOM; goto out; }
    *ids_out = ids.v;
    *n_out = ids.n;
    ids.v = NULL;
out:
    free(ids.v);
    free(ps.v);
    free(ps2.v);
    tk_buf_free(&arena);
    tk_buf_free(&nb);
    tk_scratch_free(&sc);
    if (rc && e) rl_err_prefix(e, "%s", t->label);
    return rc;
}

int32_t rl_tok_vocab_size(const rl_tok *t) { return t->vocab_size; }

const char *tk_id_str(const rl_tok *t, int32_t id, size_t *len) {
    if (id < 0) return NULL;
    if (id < t->added_r_n && t->added_r[id]) {
        int32_t k = t->added_r_idx[id];
        *len = t->added[k].len;
        return t->added[k].content;
    }
    if (id < t->bpe.vocab_r_n && t->bpe.vocab_r[id]) {
        *len = strlen(t->bpe.vocab_r[id]);
        return t->bpe.vocab_r[id];
    }
    return NULL;
}

const char *rl_tok_id_to_token(const rl_tok *t, int32_t id) {
    size_t l;
    return tk_id_str(t, id, &l);
}

int32_t rl_tok_token_to_id(const rl_tok *t, const char *tok, size_t len) {
    int32_t id = tk_strmap_get(&t->added_map, tok, len);
    return id >= 0 ? id : tk_strmap_get(&t->bpe.vocab, tok, len);
}

bool rl_tok_is_special(const rl_tok *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && t->special_id[id];
}

int32_t rl_tok_added_id(const rl_tok *t, const char *content) {
    return tk_strmap_get(&t->added_map, content, strlen(content));
}

void rl_tok_free(rl_tok *t) {
    if (!t) return;
    tk_bpe_free(&t->bpe);
    if (t->norm) { tk_norm_free(t->norm); free(t->norm); }
    if (t->pre) { tk_pretok_free(t->pre); free(t->pre); }
    if (t->post) { tk_post_free(t->post); free(t->post); }
    if (t->dec) { tk_dec_free(t->dec); free(t->dec); }
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    tk_strmap_free(&t->added_map);
    tk_strmap_free(&t->special_set);
    free(t->added_r);
    free(t->added_r_idx);
    tk_trie_free(&t->trie_raw);
    tk_trie_free(&t->trie_norm);
    free(t->trie_raw_id);
    free(t->trie_norm_id);
    free(t->trie_raw_tok);
    free(t->trie_norm_tok);
    free(t->special_id);
    free(t->label);
    free(t);
}

void tk_post_free(tk_post *p) {
    if (!p) return;
    for (int i = 0; i < p->n_items; i++) tk_post_free(&p->items[i]);
    free(p->items);
    free(p->tmpl);
}
