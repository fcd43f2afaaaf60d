/* Jinja values with Python semantics: arena, containers, equality, str(),
 * repr(), json.dumps() and UTF-8 helpers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_internal.h"

/* ---------------------------------------------------------------- arena */

void *ja_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    ja_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ((size_t)64 << 10) ? n : ((size_t)64 << 10);
        if (a->limit && a->total + cap > a->limit) { a->over = true; return NULL; }
        c = malloc(sizeof *c + cap);
        if (!c) { a->over = true; return NULL; }
        c->cap = cap;
        c->used = 0;
        a->total += cap;
        if (n >= ((size_t)64 << 10) && a->head) {
            /* keep the current small chunk in front for later small allocations */
            c->next = a->head->next;
            a->head->next = c;
            c->used = n;
            memset(c->data, 0, n);
            return c->data;
        }
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void ja_free_all(jarena *a) {
    ja_chunk *c = a->head;
    while (c) { ja_chunk *n = c->next; free(c); c = n; }
    a->head = NULL;
    a->total = 0;
}

char *ja_strndup(jarena *a, const char *s, size_t n) {
    char *p = ja_alloc(a, n + 1);
    if (p) { memcpy(p, s, n); p[n] = 0; }
    return p;
}

/* ---------------------------------------------------------------- buffers */

bool jb_put(jbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *p = ja_alloc(b->a, nc);
        if (!p) return false;
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}
bool jb_putc(jbuf *b, char c) { return jb_put(b, &c, 1); }
bool jb_puts(jbuf *b, const char *s) { return jb_put(b, s, strlen(s)); }

/* ---------------------------------------------------------------- containers */

jlist *jl_new(jarena *a, size_t cap) {
    jlist *l = ja_alloc(a, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        l->v = ja_alloc(a, cap * sizeof(jv));
        if (!l->v) return NULL;
        l->cap = cap;
    }
    return l;
}

bool jl_push(jarena *a, jlist *l, jv v) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        jv *nv = ja_alloc(a, nc * sizeof(jv));
        if (!nv) return false;
        if (l->n) memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return true;
}

jdict *jd_new(jarena *a, size_t cap) {
    jdict *d = ja_alloc(a, sizeof *d);
    if (!d) return NULL;
    if (cap) {
        d->k = ja_alloc(a, cap * sizeof(jv));
        d->v = ja_alloc(a, cap * sizeof(jv));
        if (!d->k || !d->v) return NULL;
        d->cap = cap;
    }
    return d;
}

jv *jd_get(const jdict *d, jv k) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(d->k[i], k)) return &d->v[i];
    return NULL;
}

jv *jd_gets(const jdict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JT_STR && d->k[i].u.s.n == n && memcmp(d->k[i].u.s.p, k, n) == 0) return &d->v[i];
    return NULL;
}

bool jd_set(jarena *a, jdict *d, jv k, jv v) {
    jv *p = jd_get(d, k);
    if (p) { *p = v; return true; }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4;
        jv *nk = ja_alloc(a, nc * sizeof(jv)), *nv = ja_alloc(a, nc * sizeof(jv));
        if (!nk || !nv) return false;
        if (d->n) { memcpy(nk, d->k, d->n * sizeof(jv)); memcpy(nv, d->v, d->n * sizeof(jv)); }
        d->k = nk; d->v = nv; d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return true;
}

/* ---------------------------------------------------------------- semantics */

bool jv_is_num(jv v) { return v.t == JT_BOOL || v.t == JT_INT || v.t == JT_FLOAT; }
double jv_num(jv v) { return v.t == JT_FLOAT ? v.u.f : v.t == JT_INT ? (double)v.u.i : v.t == JT_BOOL ? (double)v.u.b : 0; }

bool jv_truthy(jv v) {
    switch (v.t) {
    case JT_UNDEF: case JT_NONE: return false;
    case JT_BOOL: return v.u.b;
    case JT_INT: return v.u.i != 0;
    case JT_FLOAT: return v.u.f != 0;
    case JT_STR: return v.u.s.n != 0;
    case JT_LIST: return (v.fl & JF_GEN) || v.u.l->n != 0;
    case JT_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

bool jv_eq(jv a, jv b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JT_FLOAT && b.t != JT_FLOAT) {
            int64_t x = a.t == JT_INT ? a.u.i : a.u.b, y = b.t == JT_INT ? b.u.i : b.u.b;
            return x == y;
        }
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JT_UNDEF: case JT_NONE: return true;
    case JT_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case JT_LIST:
        if ((a.fl & JF_GEN) || (b.fl & JF_GEN)) return a.u.l == b.u.l && a.fl == b.fl;
        if ((a.fl & JF_TUPLE) != (b.fl & JF_TUPLE) || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JT_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jd_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_eq(a.u.d->v[i], *o)) return false;
        }
        return true;
    case JT_NS: return a.u.d == b.u.d;
    case JT_FUNC: return a.u.fn == b.u.fn;
    case JT_LOOP: return a.u.loop == b.u.loop;
    default: return false;
    }
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JT_UNDEF: return "Undefined";
    case JT_NONE: return "NoneType";
    case JT_BOOL: return "bool";
    case JT_INT: return "int";
    case JT_FLOAT: return "float";
    case JT_STR: return "str";
    case JT_LIST: return (v.fl & JF_GEN) ? "generator" : (v.fl & JF_TUPLE) ? "tuple" : "list";
    case JT_DICT: return "dict";
    case JT_NS: return "Namespace";
    case JT_FUNC: return "Macro";
    case JT_LOOP: return "LoopContext";
    }
    return "object";
}

/* ---------------------------------------------------------------- UTF-8 */

uint32_t ju_decode(const unsigned char *s, size_t n, size_t *len) {
    if (n == 0) { *len = 0; return 0; }
    unsigned c = s[0];
    if (c < 0x80) { *len = 1; return c; }
    int k = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (c >= 0xF5) k = 0;
    if (k == 0 || (size_t)k > n) { *len = 1; return c; }
    uint32_t cp = c & (0x7F >> k);
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) { *len = 1; return c; }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF))) { *len = 1; return c; }
    *len = (size_t)k;
    return cp;
}

size_t ju_encode(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) { o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); return 3; }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool ju_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t ju_count(const char *s, size_t n) {
    size_t c = 0, i = 0, l;
    while (i < n) { ju_decode((const unsigned char *)s + i, n - i, &l); i += l; c++; }
    return c;
}

/* ---------------------------------------------------------------- str/repr */

void jv_fmt_float(char *out, size_t cap, double f) {
    if (isnan(f)) { snprintf(out, cap, "nan"); return; }
    if (isinf(f)) { snprintf(out, cap, f < 0 ? "-inf" : "inf"); return; }
    if (f == 0) { snprintf(out, cap, signbit(f) ? "-0.0" : "0.0"); return; }
    char buf[64];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, f);
        if (strtod(buf, NULL) == f) break;
    }
    /* buf: [-]d.ddde[+-]XX */
    char digits[32];
    int nd = 0, neg = 0;
    const char *p = buf;
    if (*p == '-') { neg = 1; p++; }
    for (; *p && *p != 'e'; p++) if (*p != '.') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char *o = out;
    size_t rem = cap;
#define EMIT(...) do { int w_ = snprintf(o, rem, __VA_ARGS__); if (w_ < 0 || (size_t)w_ >= rem) return; o += w_; rem -= (size_t)w_; } while (0)
    if (neg) EMIT("-");
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            EMIT("0.");
            for (int i = 0; i < -exp - 1; i++) EMIT("0");
            EMIT("%s", digits);
        } else {
            for (int i = 0; i <= exp; i++) EMIT("%c", i < nd ? digits[i] : '0');
            EMIT(".");
            if (nd > exp + 1) EMIT("%s", digits + exp + 1);
            else EMIT("0");
        }
    } else {
        EMIT("%c", digits[0]);
        if (nd > 1) EMIT(".%s", digits + 1);
        EMIT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
#undef EMIT
}

static bool py_printable(uint32_t c) {
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0xA0) || c == 0xAD) return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) ||
        (c >= 0xD800 && c <= 0xDFFF) || (c >= 0xE000 && c <= 0xF8FF))
        return false;
    return true;
}

static bool repr_str(jbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    if (!jb_putc(b, q)) return false;
    size_t i = 0, l;
    while (i < n) {
        uint32_t c = ju_decode((const unsigned char *)s + i, n - i, &l);
        char e[16];
        if (c == (uint32_t)q || c == '\\') { e[0] = '\\'; e[1] = (char)c; e[2] = 0; }
        else if (c == '\n') strcpy(e, "\\n");
        else if (c == '\r') strcpy(e, "\\r");
        else if (c == '\t') strcpy(e, "\\t");
        else if (l == 1 && c >= 0x80) snprintf(e, sizeof e, "\\x%02x", c); /* invalid byte */
        else if (!py_printable(c)) {
            if (c < 0x100) snprintf(e, sizeof e, "\\x%02x", c);
            else if (c < 0x10000) snprintf(e, sizeof e, "\\u%04x", c);
            else snprintf(e, sizeof e, "\\U%08x", c);
        } else { if (!jb_put(b, s + i, l)) return false; i += l; continue; }
        if (!jb_puts(b, e)) return false;
        i += l;
    }
    return jb_putc(b, q);
}

static bool repr_depth(jbuf *b, jv v, int depth);

static bool str_depth(jbuf *b, jv v, int depth) {
    char num[64];
    switch (v.t) {
    case JT_UNDEF: return true;
    case JT_NONE: return jb_puts(b, "None");
    case JT_BOOL: return jb_puts(b, v.u.b ? "True" : "False");
    case JT_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); return jb_puts(b, num);
    case JT_FLOAT: jv_fmt_float(num, sizeof num, v.u.f); return jb_puts(b, num);
    case JT_STR: return jb_put(b, v.u.s.p, v.u.s.n);
    default: return repr_depth(b, v, depth);
    }
}

static bool repr_depth(jbuf *b, jv v, int depth) {
    if (depth > 200) return jb_puts(b, "...");
    switch (v.t) {
    case JT_STR: return repr_str(b, v.u.s.p, v.u.s.n);
    case JT_UNDEF: return jb_puts(b, "Undefined");
    case JT_LIST: {
        if (v.fl & JF_GEN) return jb_puts(b, "<generator object>");
        bool tup = v.fl & JF_TUPLE;
        if (!jb_putc(b, tup ? '(' : '[')) return false;
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i && !jb_puts(b, ", ")) return false;
            if (!repr_depth(b, v.u.l->v[i], depth + 1)) return false;
        }
        if (tup && v.u.l->n == 1 && !jb_putc(b, ',')) return false;
        return jb_putc(b, tup ? ')' : ']');
    }
    case JT_DICT: case JT_NS: {
        if (v.t == JT_NS && !jb_puts(b, "<Namespace ")) return false;
        if (!jb_putc(b, '{')) return false;
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i && !jb_puts(b, ", ")) return false;
            if (!repr_depth(b, v.u.d->k[i], depth + 1) || !jb_puts(b, ": ") ||
                !repr_depth(b, v.u.d->v[i], depth + 1)) return false;
        }
        if (!jb_putc(b, '}')) return false;
        return v.t == JT_NS ? jb_putc(b, '>') : true;
    }
    case JT_FUNC: return jb_puts(b, "<Macro>");
    case JT_LOOP: return jb_puts(b, "<LoopContext>");
    case JT_NONE: case JT_BOOL: case JT_INT: case JT_FLOAT: return str_depth(b, v, depth);
    default: return jb_puts(b, "<object>"); /* no type reaches here; never back into str_depth */
    }
}

bool jv_str(jbuf *b, jv v) { return str_depth(b, v, 0); }
bool jv_repr(jbuf *b, jv v) { return repr_depth(b, v, 0); }

/* ---------------------------------------------------------------- json.dumps */

static bool json_str(jbuf *b, const char *s, size_t n, bool ascii) {
    if (!jb_putc(b, '"')) return false;
    size_t i = 0, l;
    while (i < n) {
        uint32_t c = ju_decode((const unsigned char *)s + i, n - i, &l);
        char e[16];
        if (c == '"') strcpy(e, "\\\"");
        else if (c == '\\') strcpy(e, "\\\\");
        else if (c == '\n') strcpy(e, "\\n");
        else if (c == '\r') strcpy(e, "\\r");
        else if (c == '\t') strcpy(e, "\\t");
        else if (c == '\b') strcpy(e, "\\b");
        else if (c == '\f') strcpy(e, "\\f");
        else if (c < 0x20) snprintf(e, sizeof e, "\\u%04x", c);
        else if (ascii && c >= 0x80) {
            if (c >= 0x10000) {
                uint32_t v = c - 0x10000;
                snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else snprintf(e, sizeof e, "\\u%04x", c);
        } else { if (!jb_put(b, s + i, l)) return false; i += l; continue; }
        if (!jb_puts(b, e)) return false;
        i += l;
    }
    return jb_putc(b, '"');
}

static bool json_float(jbuf *b, double f) {
    char num[64];
    if (isnan(f)) return jb_puts(b, "NaN");
    if (isinf(f)) return jb_puts(b, f < 0 ? "-Infinity" : "Infinity");
    jv_fmt_float(num, sizeof num, f);
    return jb_puts(b, num);
}

static bool newline_indent(jbuf *b, const jjson_opts *o, int level) {
    if (!jb_putc(b, '\n')) return false;
    for (int i = 0; i < level; i++) if (!jb_puts(b, o->indent)) return false;
    return true;
}

static int cmp_keys(const void *x, const void *y) {
    const jv *a = *(const jv *const *)x, *b = *(const jv *const *)y;
    size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    int c = memcmp(a->u.s.p, b->u.s.p, n);
    if (c) return c;
    return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
}

static const char *oom = "out of memory";

const char *jv_tojson(jbuf *b, jv v, const jjson_opts *o, int depth) {
    char num[64];
    if (depth > 500) return "maximum recursion depth exceeded while encoding a JSON object";
    switch (v.t) {
    case JT_NONE: return jb_puts(b, "null") ? NULL : oom;
    case JT_BOOL: return jb_puts(b, v.u.b ? "true" : "false") ? NULL : oom;
    case JT_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); return jb_puts(b, num) ? NULL : oom;
    case JT_FLOAT: return json_float(b, v.u.f) ? NULL : oom;
    case JT_STR: return json_str(b, v.u.s.p, v.u.s.n, o->ensure_ascii) ? NULL : oom;
    case JT_LIST: {
        if (v.fl & JF_GEN) return "Object of type generator is not JSON serializable";
        if (v.u.l->n == 0) return jb_puts(b, "[]") ? NULL : oom;
        if (!jb_putc(b, '[')) return oom;
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i && !jb_puts(b, o->item_sep)) return oom;
            if (o->indent && !newline_indent(b, o, depth + 1)) return oom;
            const char *e = jv_tojson(b, v.u.l->v[i], o, depth + 1);
            if (e) return e;
        }
        if (o->indent && !newline_indent(b, o, depth)) return oom;
        return jb_putc(b, ']') ? NULL : oom;
    }
    case JT_DICT: {
        jdict *d = v.u.d;
        if (d->n == 0) return jb_puts(b, "{}") ? NULL : oom;
        /* keys: str, or int/float/bool/None converted like json.dumps */
        jv *keys = ja_alloc(b->a, d->n * sizeof(jv));
        const jv **order = ja_alloc(b->a, d->n * sizeof(jv *));
        if (!keys || !order) return oom;
        for (size_t i = 0; i < d->n; i++) {
            jv k = d->k[i];
            jbuf kb = { b->a, NULL, 0, 0 };
            switch (k.t) {
            case JT_STR: keys[i] = k; break;
            case JT_BOOL: keys[i] = jv_strn(k.u.b ? "true" : "false", k.u.b ? 4 : 5); break;
            case JT_NONE: keys[i] = jv_strn("null", 4); break;
            case JT_INT: snprintf(num, sizeof num, "%lld", (long long)k.u.i); jb_puts(&kb, num); keys[i] = jv_strn(kb.p, kb.n); break;
            case JT_FLOAT:
                if (isnan(k.u.f)) jb_puts(&kb, "NaN");
                else if (isinf(k.u.f)) jb_puts(&kb, k.u.f < 0 ? "-Infinity" : "Infinity");
                else { jv_fmt_float(num, sizeof num, k.u.f); jb_puts(&kb, num); }
                keys[i] = jv_strn(kb.p, kb.n);
                break;
            default: return "keys must be str, int, float, bool or None";
            }
            if (!keys[i].u.s.p) return oom;
            order[i] = &keys[i];
        }
        if (o->sort_keys) {
            for (size_t i = 0; i < d->n; i++)
                if (d->k[i].t != JT_STR) return "'<' not supported between instances of mixed key types";
            qsort(order, d->n, sizeof *order, cmp_keys);
        }
        if (!jb_putc(b, '{')) return oom;
        for (size_t i = 0; i < d->n; i++) {
            size_t idx = (size_t)(order[i] - keys);
            if (i && !jb_puts(b, o->item_sep)) return oom;
            if (o->indent && !newline_indent(b, o, depth + 1)) return oom;
            if (!json_str(b, keys[idx].u.s.p, keys[idx].u.s.n, o->ensure_ascii) || !jb_puts(b, o->key_sep)) return oom;
            const char *e = jv_tojson(b, d->v[idx], o, depth + 1);
            if (e) return e;
        }
        if (o->indent && !newline_indent(b, o, depth)) return oom;
        return jb_putc(b, '}') ? NULL : oom;
    }
    case JT_UNDEF: return "Object of type Undefined is not JSON serializable";
    case JT_NS: return "Object of type Namespace is not JSON serializable";
    case JT_FUNC: return "Object of type Macro is not JSON serializable";
    default: return "Object of type LoopContext is not JSON serializable";
    }
}
