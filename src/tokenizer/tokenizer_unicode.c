/* UTF-8, character classes and Unicode normalization (through ICU) for the
 * tokenizer. The classes are the ones the HF crate uses: Rust's char
 * methods and the regex crate's \w and \s. */
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "tokenizer/tokenizer_impl.h"

bool tk_buf_reserve(tk_buf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return true;
    size_t c = b->cap ? b->cap : 64;
    while (c < b->n + extra + 1) c *= 2;
    char *p = realloc(b->p, c);
    if (!p) return false;
    b->p = p;
    b->cap = c;
    return true;
}

bool tk_buf_put(tk_buf *b, const void *s, size_t n) {
    if (!tk_buf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

void tk_buf_free(tk_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

bool tk_ids_push(tk_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t c = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, c * sizeof *v);
        if (!v) return false;
        a->v = v;
        a->cap = c;
    }
    a->v[a->n++] = id;
    return true;
}

bool tk_pieces_push(tk_pieces *a, tk_piece p) {
    if (a->n == a->cap) {
        size_t c = a->cap ? a->cap * 2 : 64;
        tk_piece *v = realloc(a->v, c * sizeof *v);
        if (!v) return false;
        a->v = v;
        a->cap = c;
    }
    a->v[a->n++] = p;
    return true;
}

/* ---- UTF-8 ------------------------------------------------------------------ */

int32_t rl_utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    unsigned c = p[0];
    if (c < 0x80) { *i += 1; return (int32_t)c; }
    int len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else { *i += 1; return -1; }
    if (left < (size_t)len) { *i += 1; return -1; }
    for (int k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) { *i += 1; return -1; }
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) { *i += 1; return -1; }
    *i += (size_t)len;
    return (int32_t)cp;
}

size_t rl_utf8_valid_prefix(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) { i++; continue; }
        size_t j = i;
        if (rl_utf8_next(s, n, &j) < 0) return i;
        i = j;
    }
    return n;
}

int rl_utf8_put(uint32_t cp, char *o) {
    unsigned char *out = (unsigned char *)o;
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- classes ------------------------------------------------------------------ */

bool tk_is_whitespace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
    return u_isUWhiteSpace((UChar32)c);
}

bool tk_is_numeric(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    int8_t t = u_charType((UChar32)c);
    return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

bool tk_is_word(uint32_t c) {
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    if (c == 0x200C || c == 0x200D) return true;
    int8_t t = u_charType((UChar32)c);
    if (t == U_NON_SPACING_MARK || t == U_COMBINING_SPACING_MARK || t == U_ENCLOSING_MARK ||
        t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION)
        return true;
    return u_hasBinaryProperty((UChar32)c, UCHAR_ALPHABETIC);
}

/* The Unicode major version in which c was assigned (0: unassigned). */
static int age(uint32_t c) {
    UVersionInfo v;
    u_charAge((UChar32)c, v);
    return v[0];
}

bool tk_is_punct(uint32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    /* HF uses the unicode_categories crate (Unicode 8 tables) */
    if (age(c) > 8) return false;
    int8_t t = u_charType((UChar32)c);
    return t == U_CONNECTOR_PUNCTUATION || t == U_DASH_PUNCTUATION || t == U_START_PUNCTUATION ||
           t == U_END_PUNCTUATION || t == U_INITIAL_PUNCTUATION || t == U_FINAL_PUNCTUATION ||
           t == U_OTHER_PUNCTUATION;
}

bool tk_is_combining(uint32_t c) {
    if (c < 0x300) return false;
    if (age(c) > 9) return false; /* unicode-normalization-alignments: Unicode 9 tables */
    int8_t t = u_charType((UChar32)c);
    return t == U_NON_SPACING_MARK || t == U_COMBINING_SPACING_MARK || t == U_ENCLOSING_MARK;
}

/* ---- normalization ------------------------------------------------------------ */

static bool all_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

/* UTF-8 -> UTF-16 (malloc'd) */
static UChar *to16(const char *s, size_t n, int32_t *len16, rl_err *e) {
    if (n > (size_t)INT32_MAX / 2) {
        rl_errf(e, RL_E_ARG, "text too long for normalization (%zu bytes)", n);
        return NULL;
    }
    UChar *u = malloc((n + 1) * sizeof(UChar));
    if (!u) { rl_errf(e, RL_E_NOMEM, "out of memory"); return NULL; }
    UErrorCode st = U_ZERO_ERROR;
    u_strFromUTF8(u, (int32_t)n + 1, len16, s, (int32_t)n, &st);
    if (U_FAILURE(st)) {
        free(u);
        rl_errf(e, RL_E_ARG, "invalid UTF-8 (%s)", u_errorName(st));
        return NULL;
    }
    return u;
}

static int put16(const UChar *u, int32_t n, tk_buf *out, rl_err *e) {
    if (!tk_buf_reserve(out, (size_t)n * 3 + 4)) return rl_errf(e, RL_E_NOMEM, "out of memory");
    int32_t got = 0;
    UErrorCode st = U_ZERO_ERROR;
    u_strToUTF8(out->p + out->n, (int32_t)(out->cap - out->n), &got, u, n, &st);
    if (U_FAILURE(st)) return rl_errf(e, RL_E_ARG, "UTF-16 conversion failed (%s)", u_errorName(st));
    out->n += (size_t)got;
    out->p[out->n] = 0;
    return RL_OK;
}

static int normalize_run(int form, const char *s, size_t n, tk_buf *out, rl_err *e);

/* HF normalizes with unicode-normalization-alignments, whose tables are
 * Unicode 9.0: a character assigned later has no decomposition, combining
 * class 0 and no compositions there, so it is copied as is and splits the
 * text into runs normalized on their own (ICU knows a later Unicode). */
int tk_unicode_normalize(int form, const char *s, size_t n, tk_buf *out, rl_err *e) {
    if (all_ascii(s, n)) return tk_buf_put(out, s, n) ? RL_OK : rl_errf(e, RL_E_NOMEM, "out of memory");
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t c = tk_utf8_dec((const unsigned char *)s + i, &l);
        if (c >= 0x80 && age(c) > 9) {
            int rc = i > run ? normalize_run(form, s + run, i - run, out, e) : RL_OK;
            if (rc) return rc;
            if (!tk_buf_put(out, s + i, (size_t)l)) return rl_errf(e, RL_E_NOMEM, "out of memory");
            run = i + (size_t)l;
        }
        i += (size_t)l;
    }
    if (run == 0) return normalize_run(form, s, n, out, e);
    return run < n ? normalize_run(form, s + run, n - run, out, e) : RL_OK;
}

static int normalize_run(int form, const char *s, size_t n, tk_buf *out, rl_err *e) {
    if (all_ascii(s, n)) return tk_buf_put(out, s, n) ? RL_OK : rl_errf(e, RL_E_NOMEM, "out of memory");
    UErrorCode st = U_ZERO_ERROR;
    const UNormalizer2 *nm = form == TK_NFC    ? unorm2_getNFCInstance(&st)
                             : form == TK_NFD  ? unorm2_getNFDInstance(&st)
                             : form == TK_NFKC ? unorm2_getNFKCInstance(&st)
                                               : unorm2_getNFKDInstance(&st);
    if (U_FAILURE(st)) return rl_errf(e, RL_E_UNSUPPORTED, "ICU normalizer unavailable (%s)", u_errorName(st));
    int32_t n16;
    UChar *u = to16(s, n, &n16, e);
    if (!u) return e ? e->code : RL_E_ARG;
    int32_t cap = n16 * 4 + 16, got;
    UChar *d = malloc((size_t)cap * sizeof(UChar));
    if (!d) { free(u); return rl_errf(e, RL_E_NOMEM, "out of memory"); }
    got = unorm2_normalize(nm, u, n16, d, cap, &st);
    if (st == U_BUFFER_OVERFLOW_ERROR) {
        st = U_ZERO_ERROR;
        free(d);
        cap = got + 1;
        d = malloc((size_t)cap * sizeof(UChar));
        if (!d) { free(u); return rl_errf(e, RL_E_NOMEM, "out of memory"); }
        got = unorm2_normalize(nm, u, n16, d, cap, &st);
    }
    free(u);
    if (U_FAILURE(st)) { free(d); return rl_errf(e, RL_E_ARG, "normalization failed (%s)", u_errorName(st)); }
    int rc = put16(d, got, out, e);
    free(d);
    return rc;
}

/* HF's Lowercase maps each char with char::to_lowercase: the full mapping
 * (İ -> i + U+0307) but no context (a final capital sigma becomes σ). */
int tk_unicode_lower(const char *s, size_t n, tk_buf *out, rl_err *e) {
    if (!tk_buf_reserve(out, n)) return rl_errf(e, RL_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t c = tk_utf8_dec((const unsigned char *)s + i, &l);
        i += (size_t)l;
        if (c < 0x80) {
            char ch = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
            if (!tk_buf_putc(out, ch)) return rl_errf(e, RL_E_NOMEM, "out of memory");
            continue;
        }
        UChar src[2], dst[8];
        int32_t sn = 0;
        U16_APPEND_UNSAFE(src, sn, (UChar32)c);
        UErrorCode st = U_ZERO_ERROR;
        int32_t dn = u_strToLower(dst, 8, src, sn, "", &st);
        if (U_FAILURE(st)) return rl_errf(e, RL_E_ARG, "lowercase failed (%s)", u_errorName(st));
        if (put16(dst, dn, out, e)) return e ? e->code : RL_E_ARG;
    }
    return RL_OK;
}
