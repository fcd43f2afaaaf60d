/* Split patterns: HF's Pattern::find_matches over regexes (Oniguruma syntax,
 * run by PCRE2 with Unicode properties and JIT), char predicates and chars.
 *
 * The HF crate compiles pre-tokenizer regexes with onig; PCRE2 reads nearly
 * the same syntax, but a few escapes mean other things: Oniguruma's \s is
 * the White_Space property (it includes U+0085), \w is Unicode's word class
 * (letters, marks, Nd, Pc, joiners), \h is a hex digit, (?m) is dot-all and
 * \uHHHH a code point. Those are rewritten to explicit classes; nested
 * classes and class intersection (&&), which PCRE2 lacks, are refused. */
#include <stdio.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

#define WS_ITEMS "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
/* Oniguruma's \w: Alphabetic, marks, Nd, Pc; below U+0100 its Latin-1 table,
 * which also counts the superscripts and fractions (measured against the
 * crate). The Rust regex crate's \w (HF's Whitespace pre-tokenizer) adds the
 * joiners instead. */
#define WORD_ITEMS "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\xB2\\xB3\\xB9\\xBC-\\xBE"
#define WORD_ITEMS_RUST "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
#define HEX_ITEMS "0-9a-fA-F"

static int translate(const char *p, size_t n, bool rust, tk_buf *o, rl_err *e) {
    bool in_class = false;
    size_t class_start = 0;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '\\') {
            if (i + 1 >= n) return rl_errf(e, RL_E_FORMAT, "trailing backslash");
            char d = p[i + 1];
            const char *rep = NULL;
            char tmp[32];
            switch (d) {
            case 's': rep = in_class ? WS_ITEMS : "[" WS_ITEMS "]"; break;
            case 'S': rep = in_class ? NULL : "[^" WS_ITEMS "]"; break;
            case 'w':
                rep = rust ? (in_class ? WORD_ITEMS_RUST : "[" WORD_ITEMS_RUST "]")
                           : (in_class ? WORD_ITEMS : "[" WORD_ITEMS "]");
                break;
            case 'W': rep = in_class ? NULL : rust ? "[^" WORD_ITEMS_RUST "]" : "[^" WORD_ITEMS "]"; break;
            case 'h': rep = in_class ? HEX_ITEMS : "[" HEX_ITEMS "]"; break;
            case 'H': rep = in_class ? NULL : "[^" HEX_ITEMS "]"; break;
            case 'u':
                if (i + 5 < n + 0 + 1 && i + 6 <= n) {
                    bool hex = true;
                    for (int k = 2; k < 6; k++) {
                        char h = p[i + k];
                        if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                            hex = false;
                    }
                    if (hex) {
                        snprintf(tmp, sizeof tmp, "\\x{%.4s}", p + i + 2);
                        if (!tk_buf_put(o, tmp, strlen(tmp))) return rl_errf(e, RL_E_NOMEM, "out of memory");
                        i += 6;
                        continue;
                    }
                }
                break;
            default: break;
            }
            if (rep) {
                if (!tk_buf_put(o, rep, strlen(rep))) return rl_errf(e, RL_E_NOMEM, "out of memory");
                i += 2;
                continue;
            }
            size_t l = (unsigned char)d < 0x80 ? 1 : (size_t)tk_utf8_len((unsigned char)d);
            if (i + 1 + l > n) l = n - i - 1;
            if (!tk_buf_put(o, p + i, 1 + l)) return rl_errf(e, RL_E_NOMEM, "out of memory");
            i += 1 + l;
            continue;
        }
        if (in_class) {
            if (c == '[') {
                if (i + 1 < n && p[i + 1] == ':') {
                    const char *end = memchr(p + i, ']', n - i);
                    if (!end) return rl_errf(e, RL_E_FORMAT, "unterminated POSIX class");
                    size_t l = (size_t)(end - (p + i)) + 1;
                    if (!tk_buf_put(o, p + i, l)) return rl_errf(e, RL_E_NOMEM, "out of memory");
                    i += l;
                    continue;
                }
                return rl_errf(e, RL_E_UNSUPPORTED, "nested character class at byte %zu is not supported", i);
            }
            if (c == '&' && i + 1 < n && p[i + 1] == '&')
                return rl_errf(e, RL_E_UNSUPPORTED, "class intersection (&&) at byte %zu is not supported", i);
            if (c == ']' && !(i == class_start || (i == class_start + 1 && p[class_start] == '^'))) {
                in_class = false;
            }
            if (!tk_buf_putc(o, c)) return rl_errf(e, RL_E_NOMEM, "out of memory");
            i++;
            continue;
        }
        if (c == '[') {
            in_class = true;
            class_start = i + 1;
            if (!tk_buf_putc(o, c)) return rl_errf(e, RL_E_NOMEM, "out of memory");
            i++;
            continue;
        }
        if (c == '(' && i + 1 < n && p[i + 1] == '?') {
            /* inline options: Oniguruma's m is PCRE2's s */
            size_t j = i + 2;
            while (j < n && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) j++;
            if (j > i + 2 && j < n && (p[j] == ')' || p[j] == ':')) {
                if (!tk_buf_put(o, "(?", 2)) return rl_errf(e, RL_E_NOMEM, "out of memory");
                for (size_t k = i + 2; k < j; k++)
                    if (!tk_buf_putc(o, p[k] == 'm' ? 's' : p[k])) return rl_errf(e, RL_E_NOMEM, "out of memory");
                i = j;
                continue;
            }
        }
        if (!tk_buf_putc(o, c)) return rl_errf(e, RL_E_NOMEM, "out of memory");
        i++;
    }
    return RL_OK;
}

static int compile(tk_regex *r, const char *pat, size_t len, bool literal, bool rust, rl_err *e);

int tk_regex_compile(tk_regex *r, const char *pat, size_t len, bool literal, rl_err *e) {
    return compile(r, pat, len, literal, false, e);
}

int tk_regex_compile_rust(tk_regex *r, const char *pat, size_t len, rl_err *e) {
    return compile(r, pat, len, false, true, e);
}

static int compile(tk_regex *r, const char *pat, size_t len, bool literal, bool rust, rl_err *e) {
    memset(r, 0, sizeof *r);
    tk_buf t = {0};
    const char *src = pat;
    size_t sn = len;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE; /* onig: ^ and $ are line anchors */
    if (literal) {
        opts = PCRE2_UTF | PCRE2_LITERAL;
    } else {
        int rc = translate(pat, len, rust, &t, e);
        if (rc) { tk_buf_free(&t); return rc; }
        src = t.p ? t.p : "";
        sn = t.n;
    }
    int ec;
    PCRE2_SIZE eo;
    r->code = pcre2_compile((PCRE2_SPTR)src, sn, opts, &ec, &eo, NULL);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        tk_buf_free(&t);
        return rl_errf(e, RL_E_FORMAT, "bad regex: %s (at offset %zu)", (char *)msg, (size_t)eo);
    }
    tk_buf_free(&t);
    pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    return RL_OK;
}

void tk_regex_free(tk_regex *r) {
    if (r->code) pcre2_code_free(r->code);
    r->code = NULL;
}

void tk_pattern_free(tk_pattern *p) {
    if (p->kind == TK_PAT_REGEX) tk_regex_free(&p->re);
}

int tk_scratch_init(tk_scratch *s, rl_err *e) {
    memset(s, 0, sizeof *s);
    s->md = pcre2_match_data_create(4, NULL);
    s->mc = pcre2_match_context_create(NULL);
    s->js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    if (!s->md || !s->mc) { tk_scratch_free(s); return rl_errf(e, RL_E_NOMEM, "out of memory"); }
    if (s->js) pcre2_jit_stack_assign(s->mc, NULL, s->js);
    return RL_OK;
}

void tk_scratch_free(tk_scratch *s) {
    if (s->md) pcre2_match_data_free(s->md);
    if (s->mc) pcre2_match_context_free(s->mc);
    if (s->js) pcre2_jit_stack_free(s->js);
    memset(s, 0, sizeof *s);
}

static bool mpush(tk_matches *o, uint32_t s, uint32_t en, bool m) {
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 64;
        tk_match *v = realloc(o->v, c * sizeof *v);
        if (!v) return false;
        o->v = v;
        o->cap = c;
    }
    o->v[o->n++] = (tk_match){s, en, m};
    return true;
}

int tk_find_matches(const tk_pattern *p, const char *s, size_t n, tk_scratch *sc,
                    tk_matches *out, rl_err *e) {
    out->n = 0;
    if (n == 0) {
        if (!mpush(out, 0, 0, p->invert)) return rl_errf(e, RL_E_NOMEM, "out of memory");
        return RL_OK;
    }
    if (n > UINT32_MAX - 8) return rl_errf(e, RL_E_ARG, "text piece too long");
    if (p->kind == TK_PAT_REGEX) {
        size_t prev = 0, last_end = 0;
        long long last_match_end = -1;
        while (last_end <= n) {
            int rc = pcre2_match(p->re.code, (PCRE2_SPTR)s, n, last_end, PCRE2_NO_UTF_CHECK, sc->md, sc->mc);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return rl_errf(e, RL_E_ARG, "regex match failed: %s", (char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
            size_t ms = ov[0], me = ov[1];
            if (me < ms) me = ms; /* \K tricks */
            if (ms == me && last_match_end == (long long)me) {
                /* onig's FindMatches: no empty match right after the last match */
                last_end += last_end < n ? (size_t)tk_utf8_len((unsigned char)s[last_end]) : 1;
                continue;
            }
            last_end = me;
            last_match_end = (long long)me;
            if (prev != ms && !mpush(out, (uint32_t)prev, (uint32_t)ms, false)) goto oom;
            if (!mpush(out, (uint32_t)ms, (uint32_t)me, true)) goto oom;
            prev = me;
        }
        if (prev != n && !mpush(out, (uint32_t)prev, (uint32_t)n, false)) goto oom;
    } else {
        size_t last_off = 0, last_seen = 0, i = 0;
        while (i < n) {
            int l;
            uint32_t c = tk_utf8_dec((const unsigned char *)s + i, &l);
            last_seen = i + (size_t)l;
            bool hit = p->kind == TK_PAT_CHAR ? c == p->ch : p->pred(c);
            if (hit) {
                if (last_off < i && !mpush(out, (uint32_t)last_off, (uint32_t)i, false)) goto oom;
                if (!mpush(out, (uint32_t)i, (uint32_t)(i + (size_t)l), true)) goto oom;
                last_off = i + (size_t)l;
            }
            i += (size_t)l;
        }
        if (last_seen > last_off && !mpush(out, (uint32_t)last_off, (uint32_t)last_seen, false)) goto oom;
    }
    if (p->invert)
        for (size_t i = 0; i < out->n; i++) out->v[i].m = !out->v[i].m;
    return RL_OK;
oom:
    return rl_errf(e, RL_E_NOMEM, "out of memory");
}
