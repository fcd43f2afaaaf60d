/* Pre-tokenizers: HF's PreTokenizedString::split over the text pieces
 * (added-token pieces pass through untouched; empty pieces are dropped),
 * with the five split behaviors, plus ByteLevel's and Metaspace's rewrites. */
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

#define OOM rl_errf(e, RL_E_NOMEM, "out of memory")

static uint32_t sub_zlen(const tk_piece *p, uint32_t k) { return k < p->zlen ? p->zlen - k : 0; }

/* Splits piece p by pattern with a behavior, appending the kept pieces. */
static int split_piece(const tk_piece *p, const tk_buf *arena, const tk_pattern *pat, int behavior,
                       tk_scratch *sc, tk_matches *m, tk_pieces *out, rl_err *e) {
    int rc = tk_find_matches(pat, arena->p + p->off, p->len, sc, m, e);
    if (rc) return rc;
    size_t n = m->n, k = 0;
    tk_match *v = m->v;
    /* fold in place: v[0..k) are the resulting (s, e, m = remove) */
    switch (behavior) {
    case TB_ISOLATED:
        for (size_t i = 0; i < n; i++) v[i].m = false;
        k = n;
        break;
    case TB_REMOVED:
        k = n;
        break;
    case TB_CONTIGUOUS: {
        bool prev = false;
        for (size_t i = 0; i < n; i++) {
            bool im = v[i].m;
            if (im == prev && k > 0) v[k - 1].e = v[i].e;
            else v[k++] = (tk_match){v[i].s, v[i].e, false};
            prev = im;
        }
        break;
    }
    case TB_MERGED_PREV: {
        bool prev = false;
        for (size_t i = 0; i < n; i++) {
            bool im = v[i].m;
            if (im && !prev && k > 0) v[k - 1].e = v[i].e;
            else v[k++] = (tk_match){v[i].s, v[i].e, false};
            prev = im;
        }
        break;
    }
    case TB_MERGED_NEXT: {
        /* fold from the right into the tail of the array, then read forward */
        bool prev = false;
        size_t w = n; /* results occupy v[w..n) in forward order */
        for (size_t i = n; i-- > 0;) {
            tk_match cur = v[i];
            if (cur.m && !prev && w < n) v[w].s = cur.s;
            else v[--w] = (tk_match){cur.s, cur.e, false};
            prev = cur.m;
        }
        memmove(v, v + w, (n - w) * sizeof *v);
        k = n - w;
        break;
    }
    }
    for (size_t i = 0; i < k; i++) {
        if (v[i].m || v[i].e == v[i].s) continue;
        tk_piece q = {p->off + v[i].s, v[i].e - v[i].s, -1, sub_zlen(p, v[i].s)};
        if (!tk_pieces_push(out, q)) return OOM;
    }
    return RL_OK;
}

static int bytelevel_map(tk_piece *p, tk_buf *arena, rl_err *e) {
    size_t need = (size_t)p->len * 2;
    if (!tk_buf_reserve(arena, need)) return OOM;
    const unsigned char *s = (const unsigned char *)arena->p + p->off;
    char *o = arena->p + arena->n;
    size_t k = 0;
    uint32_t nz = 0;
    for (uint32_t i = 0; i < p->len; i++) {
        uint16_t c = tk_byte_to_char[s[i]];
        if (c < 0x80) o[k++] = (char)c;
        else { o[k++] = (char)(0xC0 | (c >> 6)); o[k++] = (char)(0x80 | (c & 0x3F)); }
        if (i < p->zlen) nz = (uint32_t)k;
    }
    p->off = (uint32_t)arena->n;
    p->len = (uint32_t)k;
    p->zlen = nz;
    arena->n += k;
    arena->p[arena->n] = 0;
    return RL_OK;
}

static const tk_pattern *bytelevel_regex(rl_err *e);

static int apply_one(const tk_pretok *pt, tk_buf *arena, const tk_piece *p, tk_scratch *sc,
                     tk_matches *m, tk_pieces *out, rl_err *e) {
    switch (pt->type) {
    case TP_SPLIT:
    case TP_DIGITS:
    case TP_WHITESPACE:
    case TP_WSSPLIT:
    case TP_PUNCT:
        return split_piece(p, arena, &pt->pat, pt->behavior, sc, m, out, e);
    case TP_BYTELEVEL: {
        tk_piece q = *p;
        if (pt->add_prefix_space && arena->p[q.off] != ' ') {
            if (arena->n > UINT32_MAX - q.len - 16 || !tk_buf_reserve(arena, q.len + 1)) return OOM;
            size_t off = arena->n;
            arena->p[arena->n++] = ' ';
            memcpy(arena->p + arena->n, arena->p + q.off, q.len);
            arena->n += q.len;
            arena->p[arena->n] = 0;
            q.off = (uint32_t)off;
            q.len += 1;
            if (q.zlen) q.zlen += 1;
        }
        size_t first = out->n;
        if (pt->use_regex) {
            const tk_pattern *re = bytelevel_regex(e);
            if (!re) return e ? e->code : RL_E_FORMAT;
            int rc = split_piece(&q, arena, re, TB_ISOLATED, sc, m, out, e);
            if (rc) return rc;
        } else if (!tk_pieces_push(out, q)) return OOM;
        for (size_t i = first; i < out->n; i++) {
            if (arena->n > UINT32_MAX / 2 - out->v[i].len) return rl_errf(e, RL_E_ARG, "text too long");
            int rc = bytelevel_map(&out->v[i], arena, e);
            if (rc) return rc;
        }
        return RL_OK;
    }
    case TP_METASPACE: {
        char rep[4];
        int rl = rl_utf8_put(pt->replacement, rep);
        const char *s0 = arena->p + p->off;
        size_t spaces = 0;
        for (uint32_t i = 0; i < p->len; i++) spaces += s0[i] == ' ';
        size_t need = p->len + spaces * (size_t)rl + (size_t)rl;
        if (arena->n > UINT32_MAX - need - 16 || !tk_buf_reserve(arena, need)) return OOM;
        const char *s = arena->p + p->off;
        char *o = arena->p + arena->n;
        size_t k = 0;
        uint32_t nz = 0;
        for (uint32_t i = 0; i < p->len; i++) {
            if (s[i] == ' ') { memcpy(o + k, rep, (size_t)rl); k += (size_t)rl; }
            else o[k++] = s[i];
            if (i < p->zlen) nz = (uint32_t)k;
        }
        bool starts = k >= (size_t)rl && memcmp(o, rep, (size_t)rl) == 0;
        bool prepend = !starts && (pt->prepend_scheme == TS_ALWAYS || (pt->prepend_scheme == TS_FIRST && p->zlen > 0));
        if (prepend) {
            memmove(o + rl, o, k);
            memcpy(o, rep, (size_t)rl);
            k += (size_t)rl;
            if (nz) nz += (uint32_t)rl;
        }
        tk_piece q = {(uint32_t)arena->n, (uint32_t)k, -1, nz};
        arena->n += k;
        arena->p[arena->n] = 0;
        if (pt->split) return split_piece(&q, arena, &pt->pat, TB_MERGED_NEXT, sc, m, out, e);
        if (k && !tk_pieces_push(out, q)) return OOM;
        return RL_OK;
    }
    }
    return rl_errf(e, RL_E_UNSUPPORTED, "pre-tokenizer type %d", pt->type);
}

int tk_pretok_apply(const tk_pretok *pt, tk_buf *arena, tk_pieces *ps, tk_scratch *sc, rl_err *e) {
    if (pt->type == TP_SEQ) {
        for (int i = 0; i < pt->n_items; i++) {
            int rc = tk_pretok_apply(&pt->items[i], arena, ps, sc, e);
            if (rc) return rc;
        }
        return RL_OK;
    }
    tk_pieces out = {0};
    tk_matches m = {0};
    int rc = RL_OK;
    for (size_t i = 0; i < ps->n && !rc; i++) {
        tk_piece p = ps->v[i];
        if (p.id >= 0) {
            if (!tk_pieces_push(&out, p)) rc = OOM;
            continue;
        }
        rc = apply_one(pt, arena, &p, sc, &m, &out, e);
    }
    free(m.v);
    if (rc) { free(out.v); return rc; }
    free(ps->v);
    *ps = out;
    return RL_OK;
}

void tk_pretok_free(tk_pretok *pt) {
    if (!pt) return;
    for (int i = 0; i < pt->n_items; i++) tk_pretok_free(&pt->items[i]);
    free(pt->items);
    tk_pattern_free(&pt->pat);
}

/* The ByteLevel regex, compiled once per process. */
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;
static tk_pattern bl_pat;
static int bl_rc;
static rl_err bl_err;

static void bl_init(void) {
    static const char re[] =
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    bl_pat.kind = TK_PAT_REGEX;
    bl_rc = tk_regex_compile(&bl_pat.re, re, strlen(re), false, &bl_err);
}

static const tk_pattern *bytelevel_regex(rl_err *e) {
    pthread_once(&bl_once, bl_init);
    if (bl_rc) {
        if (e) *e = bl_err;
        return NULL;
    }
    return &bl_pat;
}
