/* Decoding: ids -> token strings -> the decoder chain (HF's decode_chain
 * over a list of strings, joined at the end), and the streaming decoder. */
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

#define OOM rl_errf(e, RL_E_NOMEM, "out of memory")

typedef struct { uint32_t off, len; } span;
typedef struct {
    tk_buf b;
    span *v;
    size_t n, cap;
} toks;

static bool tpush(toks *t, const char *s, size_t n) {
    if (t->n == t->cap) {
        size_t c = t->cap ? t->cap * 2 : 32;
        span *v = realloc(t->v, c * sizeof *v);
        if (!v) return false;
        t->v = v;
        t->cap = c;
    }
    size_t off = t->b.n;
    if (!tk_buf_put(&t->b, s, n)) return false;
    t->v[t->n++] = (span){(uint32_t)off, (uint32_t)n};
    return true;
}
/* starts a token that is then extended with tk_buf_put on t->b */
static bool tbegin(toks *t) { return tpush(t, "", 0); }
static bool text(toks *t, const char *s, size_t n) {
    if (!tk_buf_put(&t->b, s, n)) return false;
    t->v[t->n - 1].len += (uint32_t)n;
    return true;
}
static void tfree(toks *t) { tk_buf_free(&t->b); free(t->v); memset(t, 0, sizeof *t); }
static const char *tstr(const toks *t, size_t i) { return t->b.p + t->v[i].off; }

static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Rust's String::from_utf8_lossy: each maximal invalid subpart -> U+FFFD. */
static bool lossy(toks *o, const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            size_t j = i;
            while (j < n && s[j] < 0x80) j++;
            if (!text(o, (const char *)s + i, j - i)) return false;
            i = j;
            continue;
        }
        int need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else { if (!text(o, FFFD, 3)) return false; i++; continue; }
        size_t k = 1;
        bool ok = true;
        for (int q = 0; q < need; q++) {
            if (i + k >= n) { ok = false; break; }
            unsigned d = s[i + k];
            unsigned l = q == 0 ? lo : 0x80, h = q == 0 ? hi : 0xBF;
            if (d < l || d > h) { ok = false; break; }
            k++;
        }
        if (ok) { if (!text(o, (const char *)s + i, k)) return false; }
        else if (!text(o, FFFD, 3)) return false;
        i += k;
    }
    return true;
}

/* ByteFallback's "<0xNN>": the byte, or -1. u8::from_str_radix(s[3..5], 16)
 * takes two hex digits, or '+' and one. */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0, k = s[3] == '+' ? 4 : 3;
    for (; k < 5; k++) {
        char h = s[k];
        int dv = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
        if (dv < 0) return -1;
        v = v * 16 + dv;
    }
    return v;
}

static bool has_bytefallback(const tk_dec *d) {
    if (!d) return false;
    if (d->type == TD_BYTEFALLBACK) return true;
    for (int i = 0; i < d->n_items; i++)
        if (has_bytefallback(&d->items[i])) return true;
    return false;
}

static int dec_step(const tk_dec *d, toks *in, toks *out, bool abs0, rl_err *e) {
    switch (d->type) {
    case TD_BYTELEVEL: {
        tk_buf bytes = {0};
        for (size_t i = 0; i < in->n; i++) {
            const unsigned char *s = (const unsigned char *)tstr(in, i);
            size_t n = in->v[i].len, start = bytes.n;
            bool all = true;
            for (size_t k = 0; k < n;) {
                int l;
                uint32_t c = tk_utf8_dec(s + k, &l);
                int b = tk_char_to_byte(c);
                if (b < 0) { all = false; break; }
                char cb = (char)b;
                if (!tk_buf_put(&bytes, &cb, 1)) { tk_buf_free(&bytes); return OOM; }
                k += (size_t)l;
            }
            if (!all) {
                bytes.n = start;
                if (!tk_buf_put(&bytes, s, n)) { tk_buf_free(&bytes); return OOM; }
            }
        }
        bool ok = tbegin(out) && lossy(out, (const unsigned char *)bytes.p, bytes.n);
        tk_buf_free(&bytes);
        return ok ? RL_OK : OOM;
    }
    case TD_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            if (!tbegin(out)) return OOM;
            const unsigned char *s = (const unsigned char *)tstr(in, i);
            for (size_t k = 0; k < in->v[i].len;) {
                int l;
                uint32_t c = tk_utf8_dec(s + k, &l);
                if (c == d->ch) {
                    if (!(i == 0 && abs0 && d->prepend_scheme != TS_NEVER) && !text(out, " ", 1)) return OOM;
                } else if (!text(out, (const char *)s + k, (size_t)l)) return OOM;
                k += (size_t)l;
            }
        }
        return RL_OK;
    case TD_BYTEFALLBACK: {
        tk_buf bytes = {0};
        for (size_t i = 0; i <= in->n; i++) {
            int byte = i < in->n ? byte_token(tstr(in, i), in->v[i].len) : -1;
            if (byte >= 0) {
                char cb = (char)byte;
                if (!tk_buf_put(&bytes, &cb, 1)) { tk_buf_free(&bytes); return OOM; }
                continue;
            }
            if (bytes.n) {
                if (rl_utf8_valid_prefix(bytes.p, bytes.n) == bytes.n) {
                    if (!tpush(out, bytes.p, bytes.n)) { tk_buf_free(&bytes); return OOM; }
                } else {
                    for (size_t k = 0; k < bytes.n; k++)
                        if (!tpush(out, FFFD, 3)) { tk_buf_free(&bytes); return OOM; }
                }
                bytes.n = 0;
            }
            if (i < in->n && !tpush(out, tstr(in, i), in->v[i].len)) { tk_buf_free(&bytes); return OOM; }
        }
        tk_buf_free(&bytes);
        return RL_OK;
    }
    case TD_FUSE:
        if (!tbegin(out)) return OOM;
        for (size_t i = 0; i < in->n; i++)
            if (!text(out, tstr(in, i), in->v[i].len)) return OOM;
        return RL_OK;
    case TD_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = tstr(in, i);
            size_t n = in->v[i].len;
            /* char boundaries */
            size_t nch = 0;
            for (size_t k = 0; k < n; k += (size_t)tk_utf8_len((unsigned char)s[k])) nch++;
            size_t *pos = malloc((nch + 1) * sizeof *pos);
            if (!pos) return OOM;
            size_t c = 0;
            for (size_t k = 0; k < n; k += (size_t)tk_utf8_len((unsigned char)s[k])) pos[c++] = k;
            pos[nch] = n;
            size_t a = 0, b = nch;
            for (size_t k = 0; k < nch && k < (size_t)d->start; k++) {
                int l;
                if (tk_utf8_dec((const unsigned char *)s + pos[k], &l) == d->ch) a = k + 1;
                else break;
            }
            for (size_t k = 0; k < (size_t)d->stop && k < nch; k++) {
                size_t idx = nch - k - 1;
                int l;
                if (tk_utf8_dec((const unsigned char *)s + pos[idx], &l) == d->ch) b = idx;
                else break;
            }
            bool ok = a < b ? tpush(out, s + pos[a], pos[b] - pos[a]) : tpush(out, "", 0);
            free(pos);
            if (!ok) return OOM;
        }
        return RL_OK;
    case TD_REPLACE: {
        tk_scratch sc;
        int rc = tk_scratch_init(&sc, e);
        if (rc) return rc;
        tk_matches m = {0};
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = tstr(in, i);
            rc = tk_find_matches(&d->pat, s, in->v[i].len, &sc, &m, e);
            if (rc) break;
            if (!tbegin(out)) { rc = OOM; break; }
            s = tstr(in, i);
            for (size_t k = 0; k < m.n; k++) {
                bool ok = m.v[k].m ? text(out, d->content, d->content_len)
                                   : text(out, s + m.v[k].s, m.v[k].e - m.v[k].s);
                if (!ok) { rc = OOM; break; }
            }
        }
        free(m.v);
        tk_scratch_free(&sc);
        return rc;
    }
    case TD_SEQ: {
        toks a = {0}, b = {0};
        for (size_t i = 0; i < in->n; i++)
            if (!tpush(&a, tstr(in, i), in->v[i].len)) { tfree(&a); return OOM; }
        for (int k = 0; k < d->n_items; k++) {
            int rc = dec_step(&d->items[k], &a, &b, abs0, e);
            if (rc) { tfree(&a); tfree(&b); return rc; }
            tfree(&a);
            a = b;
            memset(&b, 0, sizeof b);
        }
        for (size_t i = 0; i < a.n; i++)
            if (!tpush(out, tstr(&a, i), a.v[i].len)) { tfree(&a); return OOM; }
        tfree(&a);
        return RL_OK;
    }
    }
    return rl_errf(e, RL_E_UNSUPPORTED, "decoder type %d", d->type);
}

/* Decodes ids; abs0: ids[0] is the first id of the whole sequence. */
static int decode_ids(const rl_tok *t, const int32_t *ids, size_t n, bool skip, bool abs0, tk_buf *out,
                      rl_err *e) {
    toks in = {0}, res = {0};
    out->n = 0;
    if (!tk_buf_reserve(out, 16)) return OOM;
    out->p[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *s = tk_id_str(t, ids[i], &l);
        if (!s) continue;
        if (skip && rl_tok_is_special(t, ids[i])) continue;
        if (!tpush(&in, s, l)) { tfree(&in); return OOM; }
    }
    int rc = RL_OK;
    if (!t->dec) {
        for (size_t i = 0; i < in.n && !rc; i++)
            if ((i && !tk_buf_put(out, " ", 1)) || !tk_buf_put(out, tstr(&in, i), in.v[i].len)) rc = OOM;
    } else {
        rc = dec_step(t->dec, &in, &res, abs0, e);
        for (size_t i = 0; !rc && i < res.n; i++)
            if (!tk_buf_put(out, tstr(&res, i), res.v[i].len)) rc = OOM;
    }
    tfree(&in);
    tfree(&res);
    return rc;
}

int tk_decode_ids(const rl_tok *t, const int32_t *ids, size_t n, bool skip, tk_buf *out, rl_err *e) {
    return decode_ids(t, ids, n, skip, true, out, e);
}

int rl_tok_decode(const rl_tok *t, const int32_t *ids, size_t n, bool skip, char **text_out,
                  size_t *len, rl_err *e) {
    tk_buf b = {0};
    *text_out = NULL;
    *len = 0;
    int rc = decode_ids(t, ids, n, skip, true, &b, e);
    if (rc) { tk_buf_free(&b); return rc; }
    *text_out = b.p;
    *len = b.n;
    return RL_OK;
}

/* ---- streaming ------------------------------------------------------------------
 * The window ids[win..] is decoded with the text already emitted from it
 * (prefix) as context: new text is what the window's decode adds after
 * prefix. Text ending in U+FFFD may be an incomplete sequence and is held
 * back. The window start moves up to the last emission point only when that
 * point's own decode is non-empty and is the tail of what was emitted, so
 * position-dependent decoders (Metaspace's first token, Strip after Fuse)
 * see the same context as the full decode. finish() checks the result
 * against the full decode. */
struct rl_tok_stream {
    const rl_tok *t;
    bool skip, open_bytes;
    tk_ids ids;
    size_t win, upto;
    tk_buf prefix, emitted, w, w2;
    tk_buf outb;
};

rl_tok_stream *rl_tok_stream_new(const rl_tok *t, bool skip) {
    rl_tok_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->skip = skip;
    return s;
}

void rl_tok_stream_free(rl_tok_stream *s) {
    if (!s) return;
    free(s->ids.v);
    tk_buf_free(&s->prefix);
    tk_buf_free(&s->emitted);
    tk_buf_free(&s->w);
    tk_buf_free(&s->w2);
    tk_buf_free(&s->outb);
    free(s);
}

static bool ends_fffd(const tk_buf *b) { return b->n >= 3 && memcmp(b->p + b->n - 3, FFFD, 3) == 0; }

int rl_tok_stream_feed(rl_tok_stream *s, int32_t id, const char **out, size_t *out_len, rl_err *e) {
    *out = "";
    *out_len = 0;
    if (!tk_ids_push(&s->ids, id)) return OOM;
    size_t n = s->ids.n;
    int rc = decode_ids(s->t, s->ids.v + s->win, n - s->win, s->skip, s->win == 0, &s->w, e);
    if (rc) return rc;
    /* an open run of ByteFallback byte tokens may still turn into U+FFFDs */
    size_t bl;
    const char *bs = has_bytefallback(s->t->dec) ? tk_id_str(s->t, id, &bl) : NULL;
    if (bs && !(s->skip && rl_tok_is_special(s->t, id))) s->open_bytes = byte_token(bs, bl) >= 0;
    if (s->open_bytes) return RL_OK;
    if (ends_fffd(&s->w) || s->w.n < s->prefix.n || (s->prefix.n && memcmp(s->w.p, s->prefix.p, s->prefix.n) != 0))
        return RL_OK; /* hold */
    s->outb.n = 0;
    if (!tk_buf_put(&s->outb, s->w.p + s->prefix.n, s->w.n - s->prefix.n)) return OOM;
    if (!tk_buf_put(&s->emitted, s->outb.p, s->outb.n)) return OOM;
    size_t last = s->upto;
    s->upto = n;
    /* try to move the window to the previous emission point */
    bool moved = false;
    if (last > s->win) {
        rc = decode_ids(s->t, s->ids.v + last, n - last, s->skip, false, &s->w2, e);
        if (rc) return rc;
        if (s->w2.n > 0 && s->w2.n <= s->w.n && memcmp(s->w.p + s->w.n - s->w2.n, s->w2.p, s->w2.n) == 0) {
            s->win = last;
            s->prefix.n = 0;
            if (!tk_buf_put(&s->prefix, s->w2.p, s->w2.n)) return OOM;
            moved = true;
        }
    }
    if (!moved) {
        s->prefix.n = 0;
        if (!tk_buf_put(&s->prefix, s->w.p, s->w.n)) return OOM;
    }
    *out = s->outb.p;
    *out_len = s->outb.n;
    return RL_OK;
}

int rl_tok_stream_finish(rl_tok_stream *s, const char **out, size_t *out_len, rl_err *e) {
    *out = "";
    *out_len = 0;
    int rc = decode_ids(s->t, s->ids.v, s->ids.n, s->skip, true, &s->w, e);
    if (rc) return rc;
    if (s->w.n < s->emitted.n || memcmp(s->w.p, s->emitted.p ? s->emitted.p : "", s->emitted.n) != 0)
        return rl_errf(e, RL_E_FORMAT, "stream decode diverged from the full decode after %zu ids", s->ids.n);
    s->outb.n = 0;
    if (!tk_buf_put(&s->outb, s->w.p + s->emitted.n, s->w.n - s->emitted.n)) return OOM;
    if (!tk_buf_put(&s->emitted, s->outb.p, s->outb.n)) return OOM;
    *out = s->outb.p;
    *out_len = s->outb.n;
    return RL_OK;
}

void tk_dec_free(tk_dec *d) {
    if (!d) return;
    for (int i = 0; i < d->n_items; i++) tk_dec_free(&d->items[i]);
    free(d->items);
    tk_pattern_free(&d->pat);
    free(d->content);
}
