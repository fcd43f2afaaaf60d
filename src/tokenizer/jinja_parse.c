/* Jinja lexer and parser: template text -> syntax tree (jinja_internal.h).
 *
 * The lexer follows Jinja2's (3.1) with trim_blocks and lstrip_blocks on:
 * newlines are normalized to \n and one trailing newline is dropped; "{%-"
 * / "{{-" / "{#-" strip all whitespace before the tag, "-%}" / "-}}" / "-#}"
 * all whitespace after it; a block or comment tag that is the first thing
 * on its line takes the line's leading spaces/tabs with it (unless "{%+");
 * the first newline after a block or comment tag is removed (unless "+%}"). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_internal.h"

enum { T_EOF, T_DATA, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
       T_NAME, T_STRING, T_INT, T_FLOAT, T_OP };

/* operator tokens: single chars are their ASCII code, doubles below */
enum { TO_FLOORDIV = 256, TO_POW, TO_EQ, TO_NE, TO_LE, TO_GE };

typedef struct tok {
    int type, op;
    const char *p; /* T_NAME/T_STRING/T_DATA: text (decoded for strings/data) */
    size_t n;
    int64_t i;
    double f;
    size_t off; /* byte offset in the normalized source */
} tok;

typedef struct parser {
    jarena *a;
    const char *src;
    size_t len;
    size_t *lines; /* offsets of line starts */
    size_t nlines;
    tok *t;
    size_t nt, cap, pos;
    rl_err *err;
    bool failed;
    int depth;
} parser;

#define MAX_PARSE_DEPTH 200

static void pos_of(const parser *P, size_t off, int *line, int *col) {
    size_t lo = 0, hi = P->nlines;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (P->lines[mid] <= off) lo = mid; else hi = mid;
    }
    *line = (int)lo + 1;
    *col = (int)ju_count(P->src + P->lines[lo], off - P->lines[lo]) + 1;
}

__attribute__((format(printf, 3, 4)))
static void perr(parser *P, size_t off, const char *fmt, ...) {
    if (P->failed) return;
    P->failed = true;
    int line, col;
    pos_of(P, off, &line, &col);
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rl_errf(P->err, RL_E_FORMAT, "line %d, column %d: TemplateSyntaxError: %s", line, col, msg);
}

static bool push_tok(parser *P, tok t) {
    if (P->nt == P->cap) {
        size_t nc = P->cap ? P->cap * 2 : 256;
        tok *nt = realloc(P->t, nc * sizeof *nt);
        if (!nt) { P->failed = true; rl_errf(P->err, RL_E_NOMEM, "out of memory"); return false; }
        P->t = nt;
        P->cap = nc;
    }
    P->t[P->nt++] = t;
    return true;
}

/* ---------------------------------------------------------------- lexer */

static bool is_ws_at(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t cp = ju_decode((const unsigned char *)s + i, n - i, len);
    return ju_isspace(cp);
}

/* Length of text[0..n) after Python's rstrip(). */
static size_t rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        size_t st = n - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80 && n - st < 4) st--;
        size_t l;
        uint32_t cp = ju_decode((const unsigned char *)s + st, n - st, &l);
        if (st + l != n) { st = n - 1; cp = (unsigned char)s[st]; }
        if (!ju_isspace(cp)) break;
        n = st;
    }
    return n;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    size_t l;
    while (i < n && is_ws_at(s, n, i, &l)) i += l;
    return i;
}

static bool emit_data(parser *P, const char *p, size_t n, size_t off) {
    if (n == 0) return true;
    tok t = {0};
    t.type = T_DATA;
    t.p = p;
    t.n = n;
    t.off = off;
    return push_tok(P, t);
}

static bool is_name_start(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_name_char(int c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/* Decodes a string literal body with Python's unicode-escape rules. */
static char *unescape(parser *P, const char *s, size_t n, size_t *outn) {
    char *o = ja_alloc(P->a, n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) { o[k++] = s[i]; continue; }
        char c = s[++i];
        uint32_t cp;
        int digits = 0;
        switch (c) {
        case '\n': break; /* line continuation */
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = 7; break;
        case 'b': o[k++] = 8; break;
        case 'f': o[k++] = 12; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'v': o[k++] = 11; break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                cp = 0;
                int m = 0;
                while (m < 3 && i < n && s[i] >= '0' && s[i] <= '7') { cp = cp * 8 + (uint32_t)(s[i] - '0'); i++; m++; }
                i--;
                k += ju_encode(cp, o + k);
            } else {
                o[k++] = '\\';
                o[k++] = c;
            }
        }
        if (digits) {
            cp = 0;
            for (int d = 0; d < digits; d++) {
                char h = (i + 1 + (size_t)d < n) ? s[i + 1 + d] : 0;
                int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                      : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                if (v < 0) {
                    perr(P, (size_t)(s + i - P->src), "(unicode error) truncated \\%c escape", c);
                    return NULL;
                }
                cp = cp * 16 + (uint32_t)v;
            }
            if (cp > 0x10FFFF) { perr(P, (size_t)(s + i - P->src), "(unicode error) illegal Unicode character"); return NULL; }
            i += (size_t)digits;
            k += ju_encode(cp, o + k);
        }
    }
    o[k] = 0;
    *outn = k;
    return o;
}

/* Lexes the tokens inside a tag up to its end marker; returns the offset
 * after the end (and the trailing whitespace it strips). */
static size_t lex_tag(parser *P, size_t i, int kind /* T_VAR_BEGIN | T_BLOCK_BEGIN */) {
    const char *s = P->src;
    size_t n = P->len;
    int balance = 0;
    char endc = kind == T_VAR_BEGIN ? '}' : '%';
    for (;;) {
        i = skip_ws(s, n, i);
        if (i >= n) {
            perr(P, n, "unexpected end of template, expected '%s'", kind == T_VAR_BEGIN ? "}}" : "%}");
            return n;
        }
        if (balance == 0) {
            /* end markers: -X} strips whitespace after; +%} keeps the newline */
            int sign = 0;
            size_t j = i;
            if ((s[j] == '-' || (s[j] == '+' && kind == T_BLOCK_BEGIN)) && j + 2 < n && s[j + 1] == endc && s[j + 2] == '}') { sign = s[j]; j++; }
            if (j + 1 < n && s[j] == endc && s[j + 1] == '}') {
                tok t = {0};
                t.type = kind == T_VAR_BEGIN ? T_VAR_END : T_BLOCK_END;
                t.off = i;
                push_tok(P, t);
                j += 2;
                if (sign == '-') j = skip_ws(s, n, j);
                else if (sign == 0 && kind == T_BLOCK_BEGIN && j < n && s[j] == '\n') j++;
                return j;
            }
        }
        tok t = {0};
        t.off = i;
        unsigned char c = (unsigned char)s[i];
        if (is_name_start(c)) {
            size_t j = i;
            while (j < n && is_name_char((unsigned char)s[j])) j++;
            t.type = T_NAME;
            t.p = s + i;
            t.n = j - i;
            i = j;
        } else if (is_digit(c)) {
            /* int: \d(_?\d)*; float: int.int, with optional exponent; not after '.' */
            bool after_dot = P->nt > 0 && P->t[P->nt - 1].type == T_OP && P->t[P->nt - 1].op == '.';
            size_t j = i;
            while (j < n && (is_digit((unsigned char)s[j]) || (s[j] == '_' && j + 1 < n && is_digit((unsigned char)s[j + 1])))) j++;
            bool isf = false;
            if (!after_dot) {
                size_t k = j;
                if (k + 1 < n && s[k] == '.' && is_digit((unsigned char)s[k + 1])) {
                    k++;
                    while (k < n && (is_digit((unsigned char)s[k]) || (s[k] == '_' && k + 1 < n && is_digit((unsigned char)s[k + 1])))) k++;
                    isf = true;
                    j = k;
                }
                if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                    size_t e = j + 1;
                    if (e < n && (s[e] == '+' || s[e] == '-')) e++;
                    if (e < n && is_digit((unsigned char)s[e])) {
                        while (e < n && (is_digit((unsigned char)s[e]) || (s[e] == '_' && e + 1 < n && is_digit((unsigned char)s[e + 1])))) e++;
                        isf = true;
                        j = e;
                    }
                }
            }
            char buf[128];
            size_t m = 0;
            for (size_t q = i; q < j && m < sizeof buf - 1; q++) if (s[q] != '_') buf[m++] = s[q];
            buf[m] = 0;
            if (j - i >= sizeof buf - 1) { perr(P, i, "number literal too long"); return n; }
            if (isf) {
                t.type = T_FLOAT;
                t.f = strtod(buf, NULL);
            } else {
                errno = 0;
                long long v = strtoll(buf, NULL, 10);
                if (errno) { perr(P, i, "integer literal too large (unsupported)"); return n; }
                t.type = T_INT;
                t.i = v;
            }
            i = j;
        } else if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != (char)c) {
                if (s[j] == '\\' && j + 1 < n) j++;
                j++;
            }
            if (j >= n) { perr(P, i, "unexpected char %s at %zu", c == '\'' ? "\"'\"" : "'\"'", i); return n; }
            t.type = T_STRING;
            t.p = unescape(P, s + i + 1, j - i - 1, &t.n);
            if (!t.p) { if (!P->failed) perr(P, i, "out of memory"); return n; }
            i = j + 1;
        } else {
            t.type = T_OP;
            char d = i + 1 < n ? s[i + 1] : 0;
            if (c == '/' && d == '/') { t.op = TO_FLOORDIV; i += 2; }
            else if (c == '*' && d == '*') { t.op = TO_POW; i += 2; }
            else if (c == '=' && d == '=') { t.op = TO_EQ; i += 2; }
            else if (c == '!' && d == '=') { t.op = TO_NE; i += 2; }
            else if (c == '<' && d == '=') { t.op = TO_LE; i += 2; }
            else if (c == '>' && d == '=') { t.op = TO_GE; i += 2; }
            else if (strchr("+-*/%~()[]{}<>=.:|,;", c) && c) {
                t.op = c;
                i++;
                if (c == '(' || c == '[' || c == '{') balance++;
                else if (c == ')' || c == ']' || c == '}') {
                    if (balance == 0) { perr(P, t.off, "unexpected '%c'", c); return n; }
                    balance--;
                }
            } else {
                perr(P, i, "unexpected char '%c' at %zu", c >= 32 && c < 127 ? c : '?', i);
                return n;
            }
        }
        if (!push_tok(P, t)) return n;
    }
}

static bool lex(parser *P) {
    const char *s = P->src;
    size_t n = P->len, pos = 0;
    while (pos < n && !P->failed) {
        /* find the next tag start */
        size_t i = pos;
        int kind = 0;
        for (; i + 1 < n; i++) {
            if (s[i] != '{') continue;
            char d = s[i + 1];
            if (d == '{') { kind = T_VAR_BEGIN; break; }
            if (d == '%') { kind = T_BLOCK_BEGIN; break; }
            if (d == '#') { kind = 1000; break; }
        }
        if (!kind) { emit_data(P, s + pos, n - pos, pos); break; }
        size_t j = i + 2;
        int sign = 0;
        if (j < n && (s[j] == '-' || s[j] == '+')) { sign = s[j]; j++; }
        /* raw block? */
        bool raw = false;
        if (kind == T_BLOCK_BEGIN) {
            size_t k = skip_ws(s, n, j);
            if (k + 3 <= n && memcmp(s + k, "raw", 3) == 0) {
                size_t e = skip_ws(s, n, k + 3);
                if (e < n && (s[e] == '-' || s[e] == '+')) e++;
                if (e + 1 < n && s[e] == '%' && s[e + 1] == '}') raw = true;
            }
        }
        size_t tlen = i - pos;
        if (sign == '-') tlen = rstrip_len(s + pos, tlen);
        else if (sign != '+' && kind != T_VAR_BEGIN) {
            size_t lp = tlen;
            while (lp > 0 && s[pos + lp - 1] != '\n') lp--;
            bool line_start = lp > 0 || pos == 0 || s[pos - 1] == '\n';
            if (line_start && lp < tlen && skip_ws(s + pos, tlen, lp) == tlen) tlen = lp;
        }
        emit_data(P, s + pos, tlen, pos);
        if (kind == 1000) { /* comment */
            size_t k = j;
            for (; k + 1 < n; k++) if (s[k] == '#' && s[k + 1] == '}') break;
            if (k + 1 >= n) { perr(P, i, "missing end of comment tag"); return false; }
            size_t e = k + 2;
            if (k > j && s[k - 1] == '-') e = skip_ws(s, n, e);
            else if (e < n && s[e] == '\n') e++;
            pos = e;
            continue;
        }
        if (raw) {
            /* skip "{% raw %}" then find "{% endraw %}" */
            size_t e = j;
            while (e + 1 < n && !(s[e] == '%' && s[e + 1] == '}')) e++;
            bool strip_after = e > 0 && s[e - 1] == '-';
            e += 2;
            if (strip_after) e = skip_ws(s, n, e);
            else if (!(e > 0 && s[e - 3] == '+') && e < n && s[e] == '\n') e++;
            size_t body = e, k = e;
            for (;; k++) {
                if (k + 1 >= n) { perr(P, i, "missing end of raw directive"); return false; }
                if (s[k] != '{' || s[k + 1] != '%') continue;
                size_t q = k + 2;
                int sg = 0;
                if (q < n && (s[q] == '-' || s[q] == '+')) { sg = s[q]; q++; }
                q = skip_ws(s, n, q);
                if (q + 6 > n || memcmp(s + q, "endraw", 6) != 0) continue;
                q = skip_ws(s, n, q + 6);
                int esg = 0;
                if (q < n && (s[q] == '-' || s[q] == '+')) { esg = s[q]; q++; }
                if (!(q + 1 < n && s[q] == '%' && s[q + 1] == '}')) continue;
                size_t blen = k - body;
                if (sg == '-') blen = rstrip_len(s + body, blen);
                else if (sg != '+') {
                    size_t lp = blen;
                    while (lp > 0 && s[body + lp - 1] != '\n') lp--;
                    bool line_start = lp > 0 || s[body - 1] == '\n';
                    if (line_start && lp < blen && skip_ws(s + body, blen, lp) == blen) blen = lp;
                }
                emit_data(P, s + body, blen, body);
                q += 2;
                if (esg == '-') q = skip_ws(s, n, q);
                else if (esg != '+' && q < n && s[q] == '\n') q++;
                pos = q;
                break;
            }
            continue;
        }
        tok t = {0};
        t.type = kind;
        t.off = i;
        if (!push_tok(P, t)) return false;
        pos = lex_tag(P, j, kind);
    }
    tok t = {0};
    t.type = T_EOF;
    t.off = n;
    push_tok(P, t);
    return !P->failed;
}

/* ---------------------------------------------------------------- parser */

static tok *cur(parser *P) { return &P->t[P->pos]; }
static tok *peek(parser *P, size_t k) { size_t i = P->pos + k; return &P->t[i < P->nt ? i : P->nt - 1]; }
static void adv(parser *P) { if (P->pos + 1 < P->nt) P->pos++; }
static bool is_op(tok *t, int op) { return t->type == T_OP && t->op == op; }
static bool is_name(tok *t, const char *nm) { return t->type == T_NAME && strlen(nm) == t->n && memcmp(t->p, nm, t->n) == 0; }

static const char *tok_desc(tok *t, char *buf, size_t cap) {
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_DATA: return "template data";
    case T_VAR_BEGIN: return "begin of print statement";
    case T_VAR_END: return "end of print statement";
    case T_BLOCK_BEGIN: return "begin of statement block";
    case T_BLOCK_END: return "end of statement block";
    case T_NAME: snprintf(buf, cap, "'%.*s'", (int)(t->n > 60 ? 60 : t->n), t->p); return buf;
    case T_STRING: return "string";
    case T_INT: return "integer";
    case T_FLOAT: return "float";
    default:
        if (t->op < 256) snprintf(buf, cap, "'%c'", t->op);
        else snprintf(buf, cap, "'%s'", t->op == TO_FLOORDIV ? "//" : t->op == TO_POW ? "**" : t->op == TO_EQ ? "==" : t->op == TO_NE ? "!=" : t->op == TO_LE ? "<=" : ">=");
        return buf;
    }
}

static void unexpected(parser *P, const char *want) {
    char b[96];
    tok *t = cur(P);
    if (want) perr(P, t->off, "expected %s, got %s", want, tok_desc(t, b, sizeof b));
    else perr(P, t->off, "unexpected %s", tok_desc(t, b, sizeof b));
}

static bool expect_op(parser *P, int op) {
    if (is_op(cur(P), op)) { adv(P); return true; }
    char w[8];
    snprintf(w, sizeof w, "'%c'", op);
    unexpected(P, w);
    return false;
}

static jnode *mk(parser *P, int k, size_t off) {
    jnode *n = ja_alloc(P->a, sizeof *n);
    if (!n) { if (!P->failed) perr(P, off, "out of memory"); return NULL; }
    n->k = (uint16_t)k;
    pos_of(P, off, &n->line, &n->col);
    return n;
}

static const char *tok_name(parser *P, tok *t) { return ja_strndup(P->a, t->p, t->n); }

/* growable node arrays */
typedef struct nvec { jnode **v; int n, cap; const char **names; } nvec;
static bool nv_push(parser *P, nvec *v, jnode *x, const char *name) {
    if (v->n == v->cap) {
        int nc = v->cap ? v->cap * 2 : 4;
        jnode **nv = ja_alloc(P->a, (size_t)nc * sizeof *nv);
        const char **nn = ja_alloc(P->a, (size_t)nc * sizeof *nn);
        if (!nv || !nn) { perr(P, 0, "out of memory"); return false; }
        if (v->n) { memcpy(nv, v->v, (size_t)v->n * sizeof *nv); memcpy(nn, v->names, (size_t)v->n * sizeof *nn); }
        v->v = nv; v->names = nn; v->cap = nc;
    }
    v->names[v->n] = name;
    v->v[v->n++] = x;
    return true;
}

static jnode *p_expr(parser *P);
static jnode *p_tuple(parser *P, bool with_condexpr, bool explicit_parens_ok);
static jnode *p_unary(parser *P, bool with_filter);
static jnode *p_or(parser *P);

static bool enter(parser *P) {
    if (++P->depth > MAX_PARSE_DEPTH) { perr(P, cur(P)->off, "expression nested too deeply"); return false; }
    return true;
}

/* (args, name=value) after '(' has been consumed */
static bool p_args(parser *P, jnode *call) {
    nvec pos = {0}, kw = {0};
    while (!is_op(cur(P), ')')) {
        if (pos.n + kw.n > 0 && !expect_op(P, ',')) return false;
        if (is_op(cur(P), ')')) break;
        if (is_op(cur(P), '*')) { perr(P, cur(P)->off, "*args / **kwargs at a call site are not supported"); return false; }
        if (is_op(cur(P), TO_POW)) { perr(P, cur(P)->off, "*args / **kwargs at a call site are not supported"); return false; }
        if (cur(P)->type == T_NAME && is_op(peek(P, 1), '=')) {
            const char *nm = tok_name(P, cur(P));
            adv(P); adv(P);
            jnode *v = p_expr(P);
            if (!v || !nv_push(P, &kw, v, nm)) return false;
        } else {
            if (kw.n) { perr(P, cur(P)->off, "invalid syntax for function call expression"); return false; }
            jnode *v = p_expr(P);
            if (!v || !nv_push(P, &pos, v, NULL)) return false;
        }
    }
    adv(P);
    call->xs = pos.v; call->nx = pos.n;
    call->ys = kw.v; call->ny = kw.n; call->names = kw.names;
    return true;
}

static jnode *p_primary(parser *P) {
    tok *t = cur(P);
    jnode *n = NULL;
    if (t->type == T_NAME) {
        if (is_name(t, "true") || is_name(t, "True")) { n = mk(P, N_CONST, t->off); if (n) n->val = jv_bool(true); }
        else if (is_name(t, "false") || is_name(t, "False")) { n = mk(P, N_CONST, t->off); if (n) n->val = jv_bool(false); }
        else if (is_name(t, "none") || is_name(t, "None")) { n = mk(P, N_CONST, t->off); if (n) n->val = jv_none(); }
        else { n = mk(P, N_NAME, t->off); if (n) n->s = tok_name(P, t); }
        adv(P);
    } else if (t->type == T_STRING) {
        /* adjacent string literals concatenate */
        jbuf b = { P->a, NULL, 0, 0 };
        size_t off = t->off;
        while (cur(P)->type == T_STRING) { jb_put(&b, cur(P)->p, cur(P)->n); adv(P); }
        n = mk(P, N_CONST, off);
        if (n) n->val = jv_strn(b.p ? b.p : "", b.n);
    } else if (t->type == T_INT) {
        n = mk(P, N_CONST, t->off); if (n) n->val = jv_int(t->i); adv(P);
    } else if (t->type == T_FLOAT) {
        n = mk(P, N_CONST, t->off); if (n) n->val = jv_float(t->f); adv(P);
    } else if (is_op(t, '(')) {
        adv(P);
        n = p_tuple(P, true, true);
        if (n && !expect_op(P, ')')) return NULL;
    } else if (is_op(t, '[')) {
        n = mk(P, N_LIST, t->off);
        adv(P);
        nvec v = {0};
        while (n && !is_op(cur(P), ']')) {
            if (v.n && !expect_op(P, ',')) return NULL;
            if (is_op(cur(P), ']')) break;
            jnode *x = p_expr(P);
            if (!x || !nv_push(P, &v, x, NULL)) return NULL;
        }
        adv(P);
        if (n) { n->xs = v.v; n->nx = v.n; }
    } else if (is_op(t, '{')) {
        n = mk(P, N_DICT, t->off);
        adv(P);
        nvec ks = {0}, vs = {0};
        while (n && !is_op(cur(P), '}')) {
            if (ks.n && !expect_op(P, ',')) return NULL;
            if (is_op(cur(P), '}')) break;
            jnode *k = p_expr(P);
            if (!k || !expect_op(P, ':')) return NULL;
            jnode *x = p_expr(P);
            if (!x || !nv_push(P, &ks, k, NULL) || !nv_push(P, &vs, x, NULL)) return NULL;
        }
        adv(P);
        if (n) { n->xs = ks.v; n->nx = ks.n; n->ys = vs.v; n->ny = vs.n; }
    } else {
        unexpected(P, NULL);
        return NULL;
    }
    return n;
}

static jnode *p_subscript_part(parser *P) {
    /* expr | [expr]:[expr][:[expr]] */
    size_t off = cur(P)->off;
    jnode *args[3] = {0};
    if (!is_op(cur(P), ':')) {
        jnode *e = p_expr(P);
        if (!e) return NULL;
        if (!is_op(cur(P), ':')) return e;
        args[0] = e;
    }
    adv(P); /* ':' */
    if (!is_op(cur(P), ']') && !is_op(cur(P), ',') && !is_op(cur(P), ':')) { args[1] = p_expr(P); if (!args[1]) return NULL; }
    if (is_op(cur(P), ':')) {
        adv(P);
        if (!is_op(cur(P), ']') && !is_op(cur(P), ',')) { args[2] = p_expr(P); if (!args[2]) return NULL; }
    }
    jnode *s = mk(P, N_SLICE, off);
    if (s) { s->a = args[0]; s->b = args[1]; s->c = args[2]; }
    return s;
}

static jnode *p_postfix(parser *P, jnode *n) {
    while (n && !P->failed) {
        tok *t = cur(P);
        if (is_op(t, '.')) {
            adv(P);
            tok *a = cur(P);
            if (a->type == T_NAME) {
                jnode *g = mk(P, N_GETATTR, a->off);
                if (!g) return NULL;
                g->a = n; g->s = tok_name(P, a);
                adv(P);
                n = g;
            } else if (a->type == T_INT) {
                jnode *g = mk(P, N_GETITEM, a->off), *c = mk(P, N_CONST, a->off);
                if (!g || !c) return NULL;
                c->val = jv_int(a->i);
                g->a = n; g->b = c;
                adv(P);
                n = g;
            } else { unexpected(P, "name or number"); return NULL; }
        } else if (is_op(t, '[')) {
            adv(P);
            nvec v = {0};
            while (!is_op(cur(P), ']')) {
                if (v.n && !expect_op(P, ',')) return NULL;
                if (is_op(cur(P), ']')) break;
                jnode *x = p_subscript_part(P);
                if (!x || !nv_push(P, &v, x, NULL)) return NULL;
            }
            if (v.n == 0) { unexpected(P, "subscript"); return NULL; }
            adv(P);
            jnode *g = mk(P, N_GETITEM, t->off);
            if (!g) return NULL;
            g->a = n;
            if (v.n == 1) g->b = v.v[0];
            else { jnode *tp = mk(P, N_TUPLE, t->off); if (!tp) return NULL; tp->xs = v.v; tp->nx = v.n; g->b = tp; }
            n = g;
        } else if (is_op(t, '(')) {
            adv(P);
            jnode *c = mk(P, N_CALL, t->off);
            if (!c) return NULL;
            c->a = n;
            if (!p_args(P, c)) return NULL;
            n = c;
        } else break;
    }
    return n;
}

static jnode *p_filter_tail(parser *P, jnode *n, bool start_inline) {
    /* after '|' consumed (or start_inline: at the filter name) */
    (void)start_inline;
    tok *t = cur(P);
    if (t->type != T_NAME) { unexpected(P, "filter name"); return NULL; }
    jbuf b = { P->a, NULL, 0, 0 };
    jb_put(&b, t->p, t->n);
    size_t off = t->off;
    adv(P);
    while (is_op(cur(P), '.') && peek(P, 1)->type == T_NAME) {
        adv(P);
        jb_putc(&b, '.');
        jb_put(&b, cur(P)->p, cur(P)->n);
        adv(P);
    }
    jb_putc(&b, 0);
    jnode *f = mk(P, N_FILTER, off);
    if (!f) return NULL;
    f->s = b.p;
    f->a = n;
    if (is_op(cur(P), '(')) { adv(P); if (!p_args(P, f)) return NULL; }
    return f;
}

static jnode *p_filter_expr(parser *P, jnode *n) {
    while (n && !P->failed) {
        if (is_op(cur(P), '|')) {
            adv(P);
            n = p_filter_tail(P, n, false);
        } else if (is_name(cur(P), "is")) {
            size_t off = cur(P)->off;
            adv(P);
            bool neg = false;
            if (is_name(cur(P), "not")) { neg = true; adv(P); }
            tok *t = cur(P);
            if (t->type != T_NAME) { unexpected(P, "test name"); return NULL; }
            jbuf b = { P->a, NULL, 0, 0 };
            jb_put(&b, t->p, t->n);
            adv(P);
            while (is_op(cur(P), '.') && peek(P, 1)->type == T_NAME) {
                adv(P); jb_putc(&b, '.'); jb_put(&b, cur(P)->p, cur(P)->n); adv(P);
            }
            jb_putc(&b, 0);
            jnode *x = mk(P, N_TEST, off);
            if (!x) return NULL;
            x->s = b.p; x->a = n; x->op = neg;
            tok *u = cur(P);
            if (is_op(u, '(')) { adv(P); if (!p_args(P, x)) return NULL; }
            else if ((u->type == T_NAME || u->type == T_STRING || u->type == T_INT || u->type == T_FLOAT ||
                      is_op(u, '[') || is_op(u, '{') || is_op(u, '-') || is_op(u, '+')) &&
                     !(is_name(u, "else") || is_name(u, "or") || is_name(u, "and"))) {
                if (is_name(u, "is")) { perr(P, u->off, "You cannot chain multiple tests with is"); return NULL; }
                jnode *arg = p_primary(P);
                arg = p_postfix(P, arg);
                if (!arg) return NULL;
                jnode **xs = ja_alloc(P->a, sizeof *xs);
                if (!xs) return NULL;
                xs[0] = arg;
                x->xs = xs; x->nx = 1;
            }
            n = x;
        } else break;
    }
    return n;
}

static jnode *p_unary(parser *P, bool with_filter) {
    if (!enter(P)) return NULL;
    tok *t = cur(P);
    jnode *n;
    if (is_op(t, '-') || is_op(t, '+')) {
        adv(P);
        n = mk(P, N_UNARY, t->off);
        if (!n) return NULL;
        n->op = is_op(t, '-') ? OP_NEG : OP_POS;
        n->a = p_unary(P, false);
        if (!n->a) return NULL;
    } else {
        n = p_primary(P);
    }
    n = p_postfix(P, n);
    if (with_filter) n = p_filter_expr(P, n);
    P->depth--;
    return n;
}

static jnode *binop(parser *P, int op, jnode *l, jnode *r, size_t off) {
    if (!l || !r) return NULL;
    jnode *n = mk(P, N_BIN, off);
    if (!n) return NULL;
    n->op = (uint16_t)op; n->a = l; n->b = r;
    return n;
}

static jnode *p_pow(parser *P) {
    jnode *l = p_unary(P, true);
    while (l && is_op(cur(P), TO_POW)) { size_t off = cur(P)->off; adv(P); l = binop(P, OP_POW, l, p_unary(P, true), off); }
    return l;
}
static jnode *p_math2(parser *P) {
    jnode *l = p_pow(P);
    for (;;) {
        tok *t = cur(P);
        int op = is_op(t, '*') ? OP_MUL : is_op(t, '/') ? OP_DIV : is_op(t, TO_FLOORDIV) ? OP_FLOORDIV : is_op(t, '%') ? OP_MOD : 0;
        if (!op || !l) return l;
        adv(P);
        l = binop(P, op, l, p_pow(P), t->off);
    }
}
static jnode *p_concat(parser *P) {
    jnode *l = p_math2(P);
    while (l && is_op(cur(P), '~')) { size_t off = cur(P)->off; adv(P); l = binop(P, OP_CONCAT, l, p_math2(P), off); }
    return l;
}
static jnode *p_math1(parser *P) {
    jnode *l = p_concat(P);
    for (;;) {
        tok *t = cur(P);
        int op = is_op(t, '+') ? OP_ADD : is_op(t, '-') ? OP_SUB : 0;
        if (!op || !l) return l;
        adv(P);
        l = binop(P, op, l, p_concat(P), t->off);
    }
}
static jnode *p_compare(parser *P) {
    size_t off = cur(P)->off;
    jnode *l = p_math1(P);
    if (!l) return NULL;
    nvec v = {0};
    int ops[64], nops = 0;
    for (;;) {
        tok *t = cur(P);
        int op = is_op(t, TO_EQ) ? OP_EQ : is_op(t, TO_NE) ? OP_NE : is_op(t, '<') ? OP_LT : is_op(t, TO_LE) ? OP_LE
               : is_op(t, '>') ? OP_GT : is_op(t, TO_GE) ? OP_GE : is_name(t, "in") ? OP_IN : 0;
        if (!op && is_name(t, "not") && is_name(peek(P, 1), "in")) { op = OP_NOTIN; adv(P); }
        if (!op) break;
        adv(P);
        if (nops == 64) { perr(P, t->off, "comparison chain too long"); return NULL; }
        jnode *r = p_math1(P);
        if (!r || !nv_push(P, &v, r, NULL)) return NULL;
        ops[nops++] = op;
    }
    if (!nops) return l;
    jnode *n = mk(P, N_CMP, off);
    if (!n) return NULL;
    n->a = l; n->xs = v.v; n->nx = v.n;
    n->ops = ja_alloc(P->a, (size_t)nops * sizeof(int));
    if (!n->ops) return NULL;
    memcpy(n->ops, ops, (size_t)nops * sizeof(int));
    return n;
}
static jnode *p_not(parser *P) {
    if (is_name(cur(P), "not")) {
        if (!enter(P)) return NULL;
        size_t off = cur(P)->off;
        adv(P);
        jnode *n = mk(P, N_UNARY, off);
        if (!n) return NULL;
        n->op = OP_NOT;
        n->a = p_not(P);
        P->depth--;
        return n->a ? n : NULL;
    }
    return p_compare(P);
}
static jnode *p_and(parser *P) {
    jnode *l = p_not(P);
    while (l && is_name(cur(P), "and")) {
        size_t off = cur(P)->off; adv(P);
        jnode *r = p_not(P), *n = mk(P, N_AND, off);
        if (!r || !n) return NULL;
        n->a = l; n->b = r; l = n;
    }
    return l;
}
static jnode *p_or(parser *P) {
    jnode *l = p_and(P);
    while (l && is_name(cur(P), "or")) {
        size_t off = cur(P)->off; adv(P);
        jnode *r = p_and(P), *n = mk(P, N_OR, off);
        if (!r || !n) return NULL;
        n->a = l; n->b = r; l = n;
    }
    return l;
}
static jnode *p_condexpr(parser *P) {
    if (!enter(P)) return NULL;
    jnode *l = p_or(P);
    while (l && is_name(cur(P), "if")) {
        size_t off = cur(P)->off;
        adv(P);
        jnode *n = mk(P, N_COND, off);
        if (!n) return NULL;
        n->a = l;
        n->b = p_or(P);
        if (!n->b) return NULL;
        if (is_name(cur(P), "else")) { adv(P); n->c = p_condexpr(P); if (!n->c) return NULL; }
        l = n;
    }
    P->depth--;
    return l;
}
static jnode *p_expr(parser *P) { return p_condexpr(P); }

static jnode *p_tuple(parser *P, bool with_condexpr, bool explicit_parens) {
    size_t off = cur(P)->off;
    nvec v = {0};
    bool is_tuple = false;
    for (;;) {
        if (v.n) {
            if (!is_op(cur(P), ',')) break;
            adv(P);
            is_tuple = true;
        }
        tok *t = cur(P);
        if (t->type == T_VAR_END || t->type == T_BLOCK_END || is_op(t, ')') || (v.n && (is_name(t, "if") || is_name(t, "in") || is_op(t, '=')))) break;
        if (explicit_parens && v.n == 0 && is_op(t, ')')) break;
        jnode *x = with_condexpr ? p_expr(P) : p_or(P);
        if (!x || !nv_push(P, &v, x, NULL)) return NULL;
    }
    if (!is_tuple) {
        if (v.n == 1) return v.v[0];
        if (!explicit_parens) { unexpected(P, "an expression"); return NULL; }
    }
    jnode *n = mk(P, N_TUPLE, off);
    if (n) { n->xs = v.v; n->nx = v.n; }
    return n;
}

/* assignment target: name | name, name | (for set) name.attr */
static jnode *p_target(parser *P, bool allow_attr, bool allow_tuple) {
    size_t off = cur(P)->off;
    nvec v = {0};
    for (;;) {
        tok *t = cur(P);
        if (t->type != T_NAME) { unexpected(P, "name"); return NULL; }
        jnode *n = mk(P, N_NAME, t->off);
        if (!n) return NULL;
        n->s = tok_name(P, t);
        adv(P);
        if (allow_attr && is_op(cur(P), '.') && peek(P, 1)->type == T_NAME) {
            adv(P);
            jnode *g = mk(P, N_GETATTR, cur(P)->off);
            if (!g) return NULL;
            g->a = n; g->s = tok_name(P, cur(P));
            adv(P);
            return g;
        }
        if (!nv_push(P, &v, n, NULL)) return NULL;
        if (!allow_tuple || !is_op(cur(P), ',')) break;
        adv(P);
    }
    if (v.n == 1) return v.v[0];
    jnode *n = mk(P, N_TUPLE, off);
    if (n) { n->xs = v.v; n->nx = v.n; }
    return n;
}

static bool block_end(parser *P) {
    if (cur(P)->type == T_BLOCK_END) { adv(P); return true; }
    unexpected(P, "end of statement block");
    return false;
}

/* Parses statements until a block tag whose name is one of ends
 * ("a|b|c"); leaves the parser at that name (after "{%"). */
static bool p_body(parser *P, const char *ends, nvec *out, const char *stmt, size_t stmt_off);

static bool name_in(tok *t, const char *list) {
    if (t->type != T_NAME) return false;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == t->n && memcmp(p, t->p, l) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static jnode *mk_block(parser *P, nvec *v, size_t off) {
    jnode *b = mk(P, S_BLOCK, off);
    if (b) { b->xs = v->v; b->nx = v->n; }
    return b;
}

static bool p_params(parser *P, nvec *params) {
    /* (a, b=default, ...) after '(' */
    while (!is_op(cur(P), ')')) {
        if (params->n && !expect_op(P, ',')) return false;
        if (is_op(cur(P), ')')) break;
        tok *t = cur(P);
        if (t->type != T_NAME) { unexpected(P, "parameter name"); return false; }
        const char *nm = tok_name(P, t);
        adv(P);
        jnode *def = NULL;
        if (is_op(cur(P), '=')) { adv(P); def = p_expr(P); if (!def) return false; }
        else if (params->n && params->v[params->n - 1]) { perr(P, t->off, "non-default argument follows default argument"); return false; }
        if (!nv_push(P, params, def, nm)) return false;
    }
    adv(P);
    return true;
}

static jnode *p_filter_chain(parser *P) {
    /* name(args) | name ... applied to a hole */
    jnode *h = mk(P, N_HOLE, cur(P)->off);
    if (!h) return NULL;
    jnode *f = p_filter_tail(P, h, true);
    while (f && is_op(cur(P), '|')) { adv(P); f = p_filter_tail(P, f, true); }
    return f;
}

static jnode *p_stmt(parser *P) {
    /* at the statement name, after "{%" */
    tok *t = cur(P);
    size_t off = t->off;
    if (t->type != T_NAME) { unexpected(P, "statement name"); return NULL; }
    if (!enter(P)) return NULL;
    jnode *n = NULL;
    if (is_name(t, "if")) {
        adv(P);
        n = mk(P, S_IF, off);
        if (!n || !(n->a = p_tuple(P, true, false)) || !block_end(P)) return NULL;
        nvec body = {0};
        if (!p_body(P, "elif|else|endif", &body, "if", off)) return NULL;
        n->xs = body.v; n->nx = body.n;
        jnode *tail = n;
        for (;;) {
            tok *e = cur(P);
            if (is_name(e, "elif")) {
                adv(P);
                jnode *m = mk(P, S_IF, e->off);
                if (!m || !(m->a = p_tuple(P, true, false)) || !block_end(P)) return NULL;
                nvec b2 = {0};
                if (!p_body(P, "elif|else|endif", &b2, "if", off)) return NULL;
                m->xs = b2.v; m->nx = b2.n;
                jnode **one = ja_alloc(P->a, sizeof *one);
                if (!one) return NULL;
                one[0] = m;
                tail->ys = one; tail->ny = 1;
                tail = m;
            } else if (is_name(e, "else")) {
                adv(P);
                if (!block_end(P)) return NULL;
                nvec b2 = {0};
                if (!p_body(P, "endif", &b2, "if", off)) return NULL;
                tail->ys = b2.v; tail->ny = b2.n;
            } else { adv(P); if (!block_end(P)) return NULL; break; }
        }
    } else if (is_name(t, "for")) {
        adv(P);
        n = mk(P, S_FOR, off);
        if (!n || !(n->a = p_target(P, false, true))) return NULL;
        if (!is_name(cur(P), "in")) { unexpected(P, "'in'"); return NULL; }
        adv(P);
        if (!(n->b = p_tuple(P, false, false))) return NULL;
        if (is_name(cur(P), "if")) { adv(P); if (!(n->c = p_expr(P))) return NULL; }
        if (is_name(cur(P), "recursive")) { perr(P, cur(P)->off, "recursive for loops are not supported"); return NULL; }
        if (!block_end(P)) return NULL;
        nvec body = {0}, els = {0};
        if (!p_body(P, "endfor|else", &body, "for", off)) return NULL;
        if (is_name(cur(P), "else")) {
            adv(P);
            if (!block_end(P) || !p_body(P, "endfor", &els, "for", off)) return NULL;
        }
        adv(P);
        if (!block_end(P)) return NULL;
        n->xs = body.v; n->nx = body.n; n->ys = els.v; n->ny = els.n;
    } else if (is_name(t, "set")) {
        adv(P);
        jnode *target = p_target(P, true, true);
        if (!target) return NULL;
        if (is_op(cur(P), '=')) {
            adv(P);
            n = mk(P, S_SET, off);
            if (!n || !(n->b = p_tuple(P, true, false)) || !block_end(P)) return NULL;
            n->a = target;
        } else {
            n = mk(P, S_SETBLOCK, off);
            if (!n) return NULL;
            n->a = target;
            if (is_op(cur(P), '|')) { adv(P); if (!(n->c = p_filter_chain(P))) return NULL; }
            if (!block_end(P)) return NULL;
            nvec body = {0};
            if (!p_body(P, "endset", &body, "set", off)) return NULL;
            adv(P);
            if (!block_end(P)) return NULL;
            n->xs = body.v; n->nx = body.n;
        }
    } else if (is_name(t, "macro")) {
        adv(P);
        if (cur(P)->type != T_NAME) { unexpected(P, "macro name"); return NULL; }
        n = mk(P, S_MACRO, off);
        if (!n) return NULL;
        n->s = tok_name(P, cur(P));
        adv(P);
        if (!expect_op(P, '(')) return NULL;
        nvec params = {0}, body = {0};
        if (!p_params(P, &params) || !block_end(P)) return NULL;
        if (!p_body(P, "endmacro", &body, "macro", off)) return NULL;
        adv(P);
        if (cur(P)->type == T_NAME) adv(P);
        if (!block_end(P)) return NULL;
        n->names = params.names; n->ys = params.v; n->ny = params.n;
        n->xs = body.v; n->nx = body.n;
    } else if (is_name(t, "call")) {
        adv(P);
        n = mk(P, S_CALLBLOCK, off);
        if (!n) return NULL;
        nvec params = {0}, body = {0};
        if (is_op(cur(P), '(')) { adv(P); if (!p_params(P, &params)) return NULL; }
        jnode *c = p_expr(P);
        if (!c) return NULL;
        if (c->k != N_CALL) { perr(P, off, "expected call"); return NULL; }
        if (!block_end(P) || !p_body(P, "endcall", &body, "call", off)) return NULL;
        adv(P);
        if (!block_end(P)) return NULL;
        n->a = c;
        n->names = params.names; n->ys = params.v; n->ny = params.n;
        n->xs = body.v; n->nx = body.n;
    } else if (is_name(t, "filter")) {
        adv(P);
        n = mk(P, S_FILTERBLOCK, off);
        if (!n || !(n->c = p_filter_chain(P)) || !block_end(P)) return NULL;
        nvec body = {0};
        if (!p_body(P, "endfilter", &body, "filter", off)) return NULL;
        adv(P);
        if (!block_end(P)) return NULL;
        n->xs = body.v; n->nx = body.n;
    } else if (is_name(t, "with")) {
        adv(P);
        n = mk(P, S_WITH, off);
        if (!n) return NULL;
        nvec as = {0}, body = {0};
        while (cur(P)->type != T_BLOCK_END) {
            if (as.n && !expect_op(P, ',')) return NULL;
            if (cur(P)->type != T_NAME) { unexpected(P, "name"); return NULL; }
            const char *nm = tok_name(P, cur(P));
            adv(P);
            if (!expect_op(P, '=')) return NULL;
            jnode *v = p_expr(P);
            if (!v || !nv_push(P, &as, v, nm)) return NULL;
        }
        adv(P);
        if (!p_body(P, "endwith", &body, "with", off)) return NULL;
        adv(P);
        if (!block_end(P)) return NULL;
        n->names = as.names; n->ys = as.v; n->ny = as.n;
        n->xs = body.v; n->nx = body.n;
    } else if (is_name(t, "generation")) {
        /* transformers' AssistantTracker: renders its body */
        adv(P);
        if (!block_end(P)) return NULL;
        nvec body = {0};
        if (!p_body(P, "endgeneration", &body, "generation", off)) return NULL;
        adv(P);
        if (!block_end(P)) return NULL;
        n = mk_block(P, &body, off);
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        n = mk(P, is_name(t, "break") ? S_BREAK : S_CONTINUE, off);
        adv(P);
        if (!n || !block_end(P)) return NULL;
    } else if (name_in(t, "extends|block|include|import|from|do|autoescape|trans|pluralize")) {
        perr(P, off, "the '%.*s' statement is not supported", (int)t->n, t->p);
        return NULL;
    } else {
        perr(P, off, "Encountered unknown tag '%.*s'.", (int)(t->n > 60 ? 60 : t->n), t->p);
        return NULL;
    }
    P->depth--;
    return n;
}

static bool p_body(parser *P, const char *ends, nvec *out, const char *stmt, size_t stmt_off) {
    for (;;) {
        if (P->failed) return false;
        tok *t = cur(P);
        if (t->type == T_EOF) {
            if (ends) {
                int line, col;
                pos_of(P, stmt_off, &line, &col);
                perr(P, t->off, "Unexpected end of template. Jinja was looking for the following tags: '%s'. The innermost block that needs to be closed is '%s' (line %d).", ends, stmt, line);
                return false;
            }
            return true;
        }
        if (t->type == T_DATA) {
            jnode *n = mk(P, S_DATA, t->off);
            if (!n) return false;
            n->val = jv_strn(t->p, t->n);
            if (!nv_push(P, out, n, NULL)) return false;
            adv(P);
        } else if (t->type == T_VAR_BEGIN) {
            adv(P);
            jnode *n = mk(P, S_OUT, t->off);
            if (!n || !(n->a = p_tuple(P, true, false))) return false;
            if (cur(P)->type != T_VAR_END) { unexpected(P, "end of print statement"); return false; }
            adv(P);
            if (!nv_push(P, out, n, NULL)) return false;
        } else if (t->type == T_BLOCK_BEGIN) {
            adv(P);
            tok *nm = cur(P);
            if (ends && name_in(nm, ends)) return true;
            if (name_in(nm, "endif|endfor|endset|endmacro|endcall|endfilter|endwith|endgeneration|elif|else")) {
                if (ends) perr(P, nm->off, "Encountered unknown tag '%.*s'. Jinja was looking for the following tags: '%s'. The innermost block that needs to be closed is '%s'.", (int)nm->n, nm->p, ends, stmt);
                else perr(P, nm->off, "Encountered unknown tag '%.*s'.", (int)nm->n, nm->p);
                return false;
            }
            jnode *n = p_stmt(P);
            if (!n || !nv_push(P, out, n, NULL)) return false;
        } else {
            unexpected(P, NULL);
            return false;
        }
    }
}

int rl_jinja_parse(const char *src, size_t len, rl_jinja_tmpl **out, rl_err *err) {
    *out = NULL;
    rl_jinja_tmpl *T = calloc(1, sizeof *T);
    if (!T) return rl_errf(err, RL_E_NOMEM, "out of memory");
    T->arena.limit = (size_t)64 << 20;
    parser P = {0};
    P.a = &T->arena;
    P.err = err;
    /* normalize newlines, drop one trailing newline */
    char *s = ja_alloc(P.a, len + 1);
    size_t nl = 1;
    if (!s) goto oom;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') { s[k++] = '\n'; if (i + 1 < len && src[i + 1] == '\n') i++; }
        else s[k++] = src[i];
    }
    if (k > 0 && s[k - 1] == '\n') k--;
    s[k] = 0;
    P.src = s;
    P.len = k;
    for (size_t i = 0; i < k; i++) if (s[i] == '\n') nl++;
    P.lines = ja_alloc(P.a, nl * sizeof(size_t));
    if (!P.lines) goto oom;
    P.lines[0] = 0;
    P.nlines = 1;
    for (size_t i = 0; i < k; i++) if (s[i] == '\n') P.lines[P.nlines++] = i + 1;
    if (!lex(&P)) goto fail;
    nvec body = {0};
    if (!p_body(&P, NULL, &body, NULL, 0)) goto fail;
    T->root = mk_block(&P, &body, 0);
    if (!T->root) goto fail;
    free(P.t);
    *out = T;
    return RL_OK;
oom:
    rl_errf(err, RL_E_NOMEM, "out of memory");
    P.failed = true;
fail:
    free(P.t);
    ja_free_all(&T->arena);
    free(T);
    if (!P.failed || (err && err->code == 0)) return rl_errf(err, RL_E_FORMAT, "template parse failed");
    return err ? err->code : RL_E_FORMAT;
}

void rl_jinja_free(rl_jinja_tmpl *t) {
    if (!t) return;
    ja_free_all(&t->arena);
    free(t);
}
