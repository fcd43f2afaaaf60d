/* Jinja evaluation: statements, expressions, filters, tests, methods and
 * globals, with Jinja2's sandbox semantics (ImmutableSandboxedEnvironment,
 * default Undefined). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/jinja_internal.h"

typedef struct jframe {
    struct jframe *parent;
    bool captured; /* a macro closes over it: never reuse */
    size_t n, cap;
    const char **names;
    jv *vals;
} jframe;

enum { F_MACRO, F_CALLER, F_BUILTIN, F_METHOD };
enum { B_RANGE, B_NAMESPACE, B_DICT, B_RAISE, B_STRFTIME };

struct jfunc {
    int kind, builtin;
    const jnode *node;  /* F_MACRO: S_MACRO; F_CALLER: S_CALLBLOCK */
    jframe *closure;
    const char *name;   /* F_METHOD: method name */
    jv self;            /* F_METHOD */
};

struct jloop {
    size_t index0, length;
    jlist *items;
};

typedef struct ctx {
    jarena *a;
    rl_err *err;
    bool failed;
    uint64_t steps, max_steps;
    int depth, max_depth;
    jframe *fr;
    jbuf *out;
    jv hole;
    int64_t now;
} ctx;

typedef struct args {
    jv *pos;
    int npos;
    const char **kwn;
    jv *kwv;
    int nkw;
} args;

enum { X_OK = 0, X_ERR = -1, X_BREAK = 1, X_CONTINUE = 2 };

__attribute__((format(printf, 4, 5)))
static int fail(ctx *C, const jnode *n, const char *kind, const char *fmt, ...) {
    if (C->failed) return X_ERR;
    C->failed = true;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int code = strcmp(kind, "TemplateError") == 0 ? RL_E_ARG : RL_E_FORMAT;
    if (strcmp(kind, "LimitError") == 0) code = RL_E_CAPACITY;
    rl_errf(C->err, code, "line %d, column %d: %s: %s", n ? n->line : 0, n ? n->col : 0, kind, msg);
    return X_ERR;
}

static int oom(ctx *C, const jnode *n) {
    return fail(C, n, "LimitError", "template render exceeded its memory budget");
}
#define NEED(p) do { if (!(p)) return oom(C, n); } while (0)

static const char *hintf(ctx *C, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *hintf(ctx *C, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const char *p = ja_strndup(C->a, buf, strlen(buf));
    return p ? p : "undefined";
}

static int undef_err(ctx *C, const jnode *n, jv u) {
    if (u.fl & JF_UNSAFE) return fail(C, n, "SecurityError", "%s", u.u.hint ? u.u.hint : "unsafe");
    return fail(C, n, "UndefinedError", "%s", u.u.hint ? u.u.hint : "undefined");
}

/* object_type_repr of Jinja2 for undefined-attribute messages */
static const char *obj_repr(jv v) {
    switch (v.t) {
    case JT_NONE: return "None";
    case JT_BOOL: return "bool object";
    case JT_INT: return "int object";
    case JT_FLOAT: return "float object";
    case JT_STR: return "str object";
    case JT_LIST: return (v.fl & JF_GEN) ? "generator object" : (v.fl & JF_TUPLE) ? "tuple object" : "list object";
    case JT_DICT: return "dict object";
    case JT_NS: return "jinja2.utils.Namespace object";
    case JT_LOOP: return "jinja2.runtime.LoopContext object";
    case JT_FUNC: return "jinja2.runtime.Macro object";
    default: return "object";
    }
}

/* ---------------------------------------------------------------- frames */

static jframe *frame_new(ctx *C, jframe *parent) {
    jframe *f = ja_alloc(C->a, sizeof *f);
    if (f) f->parent = parent;
    return f;
}

static bool frame_set(ctx *C, jframe *f, const char *name, jv v) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) { f->vals[i] = v; return true; }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 8;
        const char **nn = ja_alloc(C->a, nc * sizeof *nn);
        jv *nv = ja_alloc(C->a, nc * sizeof *nv);
        if (!nn || !nv) return false;
        if (f->n) { memcpy(nn, f->names, f->n * sizeof *nn); memcpy(nv, f->vals, f->n * sizeof *nv); }
        f->names = nn; f->vals = nv; f->cap = nc;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
    return true;
}

static jv *lookup(jframe *f, const char *name) {
    for (; f; f = f->parent)
        for (size_t i = f->n; i-- > 0;)
            if (strcmp(f->names[i], name) == 0) return &f->vals[i];
    return NULL;
}

/* ---------------------------------------------------------------- strings */

static jv mkstr(ctx *C, const char *p, size_t n) {
    char *q = ja_strndup(C->a, p, n);
    return q ? jv_strn(q, n) : jv_undef(NULL);
}
#define STR_OK(v) ((v).t == JT_STR && ((v).u.s.p || (v).u.s.n == 0))

static bool is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

/* offsets of the code points of s (n+1 entries, last = length in bytes) */
static size_t *cp_offsets(ctx *C, const char *s, size_t n, size_t *count) {
    size_t cnt = ju_count(s, n);
    size_t *o = ja_alloc(C->a, (cnt + 1) * sizeof *o);
    if (!o) return NULL;
    size_t i = 0, k = 0, l;
    while (i < n) { o[k++] = i; ju_decode((const unsigned char *)s + i, n - i, &l); i += l; }
    o[k] = n;
    *count = cnt;
    return o;
}

static bool to_str(ctx *C, jv v, jv *out) {
    if (v.t == JT_STR) { *out = v; return true; }
    jbuf b = { C->a, NULL, 0, 0 };
    if (!jv_str(&b, v)) return false;
    *out = jv_strn(b.p ? b.p : "", b.n);
    return true;
}

static bool in_chars(uint32_t c, const char *chars, size_t nc) {
    size_t i = 0, l;
    while (i < nc) {
        if (ju_decode((const unsigned char *)chars + i, nc - i, &l) == c) return true;
        i += l;
    }
    return false;
}

/* Python str.strip family; chars NULL: whitespace */
static jv py_strip(jv s, const char *chars, size_t nc, bool left, bool right) {
    const char *p = s.u.s.p;
    size_t b = 0, e = s.u.s.n, l;
    if (left)
        while (b < e) {
            uint32_t c = ju_decode((const unsigned char *)p + b, e - b, &l);
            if (chars ? !in_chars(c, chars, nc) : !ju_isspace(c)) break;
            b += l;
        }
    if (right)
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)p[st] & 0xC0) == 0x80 && e - st < 4) st--;
            uint32_t c = ju_decode((const unsigned char *)p + st, e - st, &l);
            if (st + l != e) { st = e - 1; c = (unsigned char)p[st]; }
            if (chars ? !in_chars(c, chars, nc) : !ju_isspace(c)) break;
            e = st;
        }
    return jv_strn(p + b, e - b);
}

static char *map_ascii(ctx *C, const char *s, size_t n, int mode /* 0 lower 1 upper 2 swap */) {
    char *o = ja_alloc(C->a, n + 1);
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
        if ((mode == 1 || mode == 2) && lo) c = (char)(c - 32);
        else if ((mode == 0 || mode == 2) && up) c = (char)(c + 32);
        o[i] = c;
    }
    return o;
}

static bool is_alpha_cp(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && !ju_isspace(c) && c != 0xD7 && c != 0xF7); }

/* str.title(): first cased letter after a non-letter upper, others lower */
static char *py_title(ctx *C, const char *s, size_t n) {
    char *o = ja_alloc(C->a, n + 1);
    if (!o) return NULL;
    bool prev_alpha = false;
    size_t i = 0, l;
    while (i < n) {
        uint32_t c = ju_decode((const unsigned char *)s + i, n - i, &l);
        for (size_t k = 0; k < l; k++) o[i + k] = s[i + k];
        if (c < 128) {
            char ch = (char)c;
            if (prev_alpha && ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
            else if (!prev_alpha && ch >= 'a' && ch <= 'z') ch = (char)(ch - 32);
            o[i] = ch;
        }
        prev_alpha = is_alpha_cp(c);
        i += l;
    }
    return o;
}

static bool str_find(const char *h, size_t hn, const char *nd, size_t nn, size_t from, size_t *at) {
    if (nn == 0) { if (from <= hn) { *at = from; return true; } return false; }
    for (size_t i = from; i + nn <= hn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) { *at = i; return true; }
    return false;
}

static bool str_rfind(const char *h, size_t hn, const char *nd, size_t nn, size_t *at) {
    if (nn > hn) return false;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (memcmp(h + i, nd, nn) == 0) { *at = i; return true; }
    return false;
}

/* ---------------------------------------------------------------- iteration */

static int iterate(ctx *C, const jnode *n, jv v, jlist **out) {
    switch (v.t) {
    case JT_LIST: *out = v.u.l; return X_OK;
    case JT_UNDEF:
        if (v.fl & JF_UNSAFE) return undef_err(C, n, v);
        *out = jl_new(C->a, 0); NEED(*out); return X_OK;
    case JT_DICT: case JT_NS: {
        if (v.t == JT_NS) break;
        jlist *l = jl_new(C->a, v.u.d->n);
        NEED(l);
        for (size_t i = 0; i < v.u.d->n; i++) l->v[l->n++] = v.u.d->k[i];
        *out = l;
        return X_OK;
    }
    case JT_STR: {
        size_t cnt, *o = cp_offsets(C, v.u.s.p, v.u.s.n, &cnt);
        NEED(o);
        jlist *l = jl_new(C->a, cnt);
        NEED(l);
        for (size_t i = 0; i < cnt; i++) l->v[l->n++] = jv_strn(v.u.s.p + o[i], o[i + 1] - o[i]);
        *out = l;
        return X_OK;
    }
    case JT_LOOP: *out = v.u.loop->items; return X_OK;
    default: break;
    }
    return fail(C, n, "TypeError", "'%s' object is not iterable", jv_type_name(v));
}

/* ---------------------------------------------------------------- comparison */

static int py_lt(ctx *C, const jnode *n, jv a, jv b, const char *op, bool *res);

static int cmp3(ctx *C, const jnode *n, jv a, jv b, const char *op, int *res) {
    if (a.t == JT_UNDEF) return undef_err(C, n, a);
    if (b.t == JT_UNDEF) return undef_err(C, n, b);
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JT_FLOAT && b.t != JT_FLOAT) {
            int64_t x = a.t == JT_INT ? a.u.i : a.u.b, y = b.t == JT_INT ? b.u.i : b.u.b;
            *res = x < y ? -1 : x > y;
        } else {
            double x = jv_num(a), y = jv_num(b);
            *res = x < y ? -1 : x > y ? 1 : (x == y ? 0 : 2); /* 2: unordered (nan) */
        }
        return X_OK;
    }
    if (a.t == JT_STR && b.t == JT_STR) {
        size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = m ? memcmp(a.u.s.p, b.u.s.p, m) : 0;
        *res = c ? (c < 0 ? -1 : 1) : (a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n);
        return X_OK;
    }
    if (a.t == JT_LIST && b.t == JT_LIST && a.fl == b.fl && !(a.fl & JF_GEN)) {
        size_t m = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < m; i++) {
            if (jv_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            bool lt;
            if (py_lt(C, n, a.u.l->v[i], b.u.l->v[i], op, &lt)) return X_ERR;
            *res = lt ? -1 : 1;
            return X_OK;
        }
        *res = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return X_OK;
    }
    return fail(C, n, "TypeError", "'%s' not supported between instances of '%s' and '%s'", op, jv_type_name(a), jv_type_name(b));
}

static int py_lt(ctx *C, const jnode *n, jv a, jv b, const char *op, bool *res) {
    int c;
    if (cmp3(C, n, a, b, op, &c)) return X_ERR;
    *res = c == -1;
    return X_OK;
}

static int py_in(ctx *C, const jnode *n, jv item, jv cont, bool *res) {
    switch (cont.t) {
    case JT_STR:
        if (item.t != JT_STR) {
            if (item.t == JT_UNDEF) return undef_err(C, n, item);
            return fail(C, n, "TypeError", "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        }
        { size_t at; *res = str_find(cont.u.s.p, cont.u.s.n, item.u.s.p, item.u.s.n, 0, &at); }
        return X_OK;
    case JT_LIST:
        *res = false;
        for (size_t i = 0; i < cont.u.l->n; i++) if (jv_eq(item, cont.u.l->v[i])) { *res = true; break; }
        return X_OK;
    case JT_DICT: *res = jd_get(cont.u.d, item) != NULL; return X_OK;
    case JT_UNDEF:
        if (cont.fl & JF_UNSAFE) return undef_err(C, n, cont);
        *res = false;
        return X_OK;
    case JT_LOOP: {
        jv l = jv_list(cont.u.loop->items, 0);
        return py_in(C, n, item, l, res);
    }
    default:
        return fail(C, n, "TypeError", "argument of type '%s' is not iterable", jv_type_name(cont));
    }
}

/* ---------------------------------------------------------------- arithmetic */

static int64_t floordiv64(int64_t a, int64_t b) { int64_t q = a / b; if ((a % b != 0) && ((a < 0) != (b < 0))) q--; return q; }
static int64_t mod64(int64_t a, int64_t b) { int64_t r = a % b; if (r != 0 && ((r < 0) != (b < 0))) r += b; return r; }

static int percent_format(ctx *C, const jnode *n, jv fmt, jv argv, jv *out);
static int html_escape(ctx *C, const jnode *n, jv v, jv *out);

static int arith(ctx *C, const jnode *n, int op, jv a, jv b, jv *out) {
    if (op == OP_CONCAT) {
        jv x, y;
        NEED(to_str(C, a, &x) && to_str(C, b, &y));
        jbuf buf = { C->a, NULL, 0, 0 };
        NEED(jb_put(&buf, x.u.s.p, x.u.s.n) && jb_put(&buf, y.u.s.p, y.u.s.n));
        *out = jv_strn(buf.p ? buf.p : "", buf.n);
        return X_OK;
    }
    if (a.t == JT_UNDEF) return undef_err(C, n, a);
    if (b.t == JT_UNDEF) return undef_err(C, n, b);
    static const char *names[] = { "", "+", "-", "*", "/", "//", "%", "**" };
    if (jv_is_num(a) && jv_is_num(b)) {
        bool fl = a.t == JT_FLOAT || b.t == JT_FLOAT;
        if (!fl) {
            int64_t x = a.t == JT_INT ? a.u.i : a.u.b, y = b.t == JT_INT ? b.u.i : b.u.b, r = 0;
            switch (op) {
            case OP_ADD: if (__builtin_add_overflow(x, y, &r)) goto ovf; *out = jv_int(r); return X_OK;
            case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) goto ovf; *out = jv_int(r); return X_OK;
            case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) goto ovf; *out = jv_int(r); return X_OK;
            case OP_DIV:
                if (y == 0) return fail(C, n, "ZeroDivisionError", "division by zero");
                *out = jv_float((double)x / (double)y);
                return X_OK;
            case OP_FLOORDIV:
                if (y == 0) return fail(C, n, "ZeroDivisionError", "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) goto ovf;
                *out = jv_int(floordiv64(x, y));
                return X_OK;
            case OP_MOD:
                if (y == 0) return fail(C, n, "ZeroDivisionError", "integer division or modulo by zero");
                if (y == -1) { *out = jv_int(0); return X_OK; }
                *out = jv_int(mod64(x, y));
                return X_OK;
            case OP_POW:
                if (y < 0) {
                    if (x == 0) return fail(C, n, "ZeroDivisionError", "0.0 cannot be raised to a negative power");
                    *out = jv_float(pow((double)x, (double)y));
                    return X_OK;
                }
                r = 1;
                for (int64_t i = 0; i < y; i++) {
                    if (__builtin_mul_overflow(r, x, &r)) goto ovf;
                    if (r == 0 || r == 1 || (r == -1 && i > 64)) { if (r == -1) r = (y % 2) ? -1 : 1; break; }
                }
                *out = jv_int(r);
                return X_OK;
            }
        } else {
            double x = jv_num(a), y = jv_num(b);
            switch (op) {
            case OP_ADD: *out = jv_float(x + y); return X_OK;
            case OP_SUB: *out = jv_float(x - y); return X_OK;
            case OP_MUL: *out = jv_float(x * y); return X_OK;
            case OP_DIV:
                if (y == 0) return fail(C, n, "ZeroDivisionError", "float division by zero");
                *out = jv_float(x / y);
                return X_OK;
            case OP_FLOORDIV: case OP_MOD: {
                if (y == 0) return fail(C, n, "ZeroDivisionError", op == OP_MOD ? "float modulo" : "float divmod()");
                double m = fmod(x, y);
                if (m != 0 && ((m < 0) != (y < 0))) m += y;
                if (op == OP_MOD) { *out = jv_float(m == 0 ? copysign(0.0, y) : m); return X_OK; }
                double q = (x - m) / y;
                if (q != 0) { double f = floor(q); if (q - f > 0.5) f += 1; q = f; }
                *out = jv_float(q);
                return X_OK;
            }
            case OP_POW:
                if (x == 0 && y < 0) return fail(C, n, "ZeroDivisionError", "0.0 cannot be raised to a negative power");
                if (x < 0 && y != floor(y)) return fail(C, n, "TypeError", "complex results are not supported");
                *out = jv_float(pow(x, y));
                return X_OK;
            }
        }
    }
    if (op == OP_ADD) {
        if (a.t == JT_STR && b.t == JT_STR && ((a.fl | b.fl) & JF_SAFE)) {
            /* Markup + str escapes the plain side */
            jv x = a, y = b;
            if (!(x.fl & JF_SAFE) && html_escape(C, n, x, &x)) return X_ERR;
            if (!(y.fl & JF_SAFE) && html_escape(C, n, y, &y)) return X_ERR;
            jbuf buf = { C->a, NULL, 0, 0 };
            NEED(jb_put(&buf, x.u.s.p, x.u.s.n) && jb_put(&buf, y.u.s.p, y.u.s.n));
            *out = jv_strn(buf.p ? buf.p : "", buf.n);
            out->fl = JF_SAFE;
            return X_OK;
        }
        if (a.t == JT_STR && b.t == JT_STR) {
            jbuf buf = { C->a, NULL, 0, 0 };
            NEED(jb_put(&buf, a.u.s.p, a.u.s.n) && jb_put(&buf, b.u.s.p, b.u.s.n));
            *out = jv_strn(buf.p ? buf.p : "", buf.n);
            return X_OK;
        }
        if (a.t == JT_LIST && b.t == JT_LIST && a.fl == b.fl && !(a.fl & JF_GEN)) {
            jlist *l = jl_new(C->a, a.u.l->n + b.u.l->n);
            NEED(l);
            for (size_t i = 0; i < a.u.l->n; i++) l->v[l->n++] = a.u.l->v[i];
            for (size_t i = 0; i < b.u.l->n; i++) l->v[l->n++] = b.u.l->v[i];
            *out = jv_list(l, a.fl);
            return X_OK;
        }
        if (a.t == JT_STR || a.t == JT_LIST)
            return fail(C, n, "TypeError", "can only concatenate %s (not \"%s\") to %s", jv_type_name(a), jv_type_name(b), jv_type_name(a));
    }
    if (op == OP_MUL) {
        jv s = a, k = b;
        if (b.t == JT_STR || b.t == JT_LIST) { s = b; k = a; }
        if ((s.t == JT_STR || s.t == JT_LIST) && (k.t == JT_INT || k.t == JT_BOOL)) {
            int64_t times = k.t == JT_INT ? k.u.i : k.u.b;
            if (times < 0) times = 0;
            size_t unit = s.t == JT_STR ? s.u.s.n : s.u.l->n;
            if (unit && (uint64_t)times > ((size_t)64 << 20) / unit) return oom(C, n);
            if (s.t == JT_STR) {
                char *p = ja_alloc(C->a, unit * (size_t)times + 1);
                NEED(p);
                for (int64_t i = 0; i < times; i++) memcpy(p + (size_t)i * unit, s.u.s.p, unit);
                *out = jv_strn(p, unit * (size_t)times);
            } else {
                jlist *l = jl_new(C->a, unit * (size_t)times);
                NEED(l);
                for (int64_t i = 0; i < times; i++) for (size_t j = 0; j < unit; j++) l->v[l->n++] = s.u.l->v[j];
                *out = jv_list(l, s.fl);
            }
            return X_OK;
        }
    }
    if (op == OP_MOD && a.t == JT_STR) return percent_format(C, n, a, b, out);
    return fail(C, n, "TypeError", "unsupported operand type(s) for %s: '%s' and '%s'", names[op], jv_type_name(a), jv_type_name(b));
ovf:
    return fail(C, n, "OverflowError", "integer result outside the 64-bit range (unsupported)");
}

/* printf-style '%' formatting: %s %r %d %i %f %% */
static int percent_format(ctx *C, const jnode *n, jv fmt, jv argv, jv *out) {
    jlist one = { 1, 1, &argv };
    jlist *al = (argv.t == JT_LIST && (argv.fl & JF_TUPLE)) ? argv.u.l : &one;
    size_t ai = 0;
    jbuf b = { C->a, NULL, 0, 0 };
    const char *p = fmt.u.s.p;
    size_t len = fmt.u.s.n;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '%') { NEED(jb_putc(&b, p[i])); continue; }
        if (++i >= len) return fail(C, n, "ValueError", "incomplete format");
        char c = p[i];
        if (c == '%') { NEED(jb_putc(&b, '%')); continue; }
        int width = -1, prec = -1;
        bool zero = false, minus = false;
        while (c == '0' || c == '-') { if (c == '0') zero = true; else minus = true; if (++i >= len) return fail(C, n, "ValueError", "incomplete format"); c = p[i]; }
        if (c >= '0' && c <= '9') { width = 0; while (i < len && p[i] >= '0' && p[i] <= '9') { width = width > 100000 ? width : width * 10 + (p[i] - '0'); i++; } if (i >= len) return fail(C, n, "ValueError", "incomplete format"); c = p[i]; }
        if (c == '.') { prec = 0; i++; while (i < len && p[i] >= '0' && p[i] <= '9') { prec = prec > 100000 ? prec : prec * 10 + (p[i] - '0'); i++; } if (i >= len) return fail(C, n, "ValueError", "incomplete format"); c = p[i]; }
        if (width > 1000 || prec > 100) return fail(C, n, "ValueError", "format width too large (unsupported)");
        if (ai >= al->n) return fail(C, n, "TypeError", "not enough arguments for format string");
        jv v = al->v[ai++];
        jbuf piece = { C->a, NULL, 0, 0 };
        char num[128];
        if (c == 's' || c == 'r') {
            NEED(c == 's' ? jv_str(&piece, v) : jv_repr(&piece, v));
        } else if (c == 'd' || c == 'i' || c == 'f' || c == 'F') {
            if (!jv_is_num(v)) return fail(C, n, "TypeError", "%%%c format: a real number is required, not %s", c, jv_type_name(v));
            if (c == 'f' || c == 'F') snprintf(num, sizeof num, "%.*f", prec < 0 ? 6 : prec, jv_num(v));
            else snprintf(num, sizeof num, "%lld", v.t == JT_FLOAT ? (long long)jv_num(v) : (long long)(v.t == JT_INT ? v.u.i : v.u.b));
            NEED(jb_puts(&piece, num));
        } else {
            return fail(C, n, "ValueError", "unsupported format character '%c'", c);
        }
        size_t plen = piece.n;
        const char *pp = piece.p ? piece.p : "";
        if (c == 's' && prec >= 0 && (size_t)prec < plen) plen = (size_t)prec;
        size_t cps = ju_count(pp, plen);
        if (width > 0 && (size_t)width > cps && !minus)
            for (size_t k = cps; k < (size_t)width; k++) NEED(jb_putc(&b, zero && c != 's' ? '0' : ' '));
        NEED(jb_put(&b, pp, plen));
        if (width > 0 && (size_t)width > cps && minus)
            for (size_t k = cps; k < (size_t)width; k++) NEED(jb_putc(&b, ' '));
    }
    if (ai < al->n && al != &one) return fail(C, n, "TypeError", "not all arguments converted during string formatting");
    *out = jv_strn(b.p ? b.p : "", b.n);
    return X_OK;
}

/* ---------------------------------------------------------------- access */

static bool is_str_method(const char *m) {
    static const char *const ms[] = { "startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip",
        "replace", "upper", "lower", "title", "capitalize", "swapcase", "casefold", "find", "rfind", "index",
        "rindex", "count", "format", "join", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower",
        "isnumeric", "isdecimal", "splitlines", "zfill", "center", "ljust", "rjust", "removeprefix",
        "removesuffix", "partition", "rpartition", NULL };
    for (int i = 0; ms[i]; i++) if (strcmp(ms[i], m) == 0) return true;
    return false;
}

static jv bound(ctx *C, jv self, const char *name) {
    jfunc *f = ja_alloc(C->a, sizeof *f);
    if (!f) return jv_undef(NULL);
    f->kind = F_METHOD;
    f->self = self;
    f->name = name;
    jv v = {0};
    v.t = JT_FUNC;
    v.u.fn = f;
    return v;
}

static jv unsafe(ctx *C, jv obj, const char *name) {
    jv u = jv_undef(hintf(C, "access to attribute '%s' of '%s' object is unsafe.", name, jv_type_name(obj)));
    u.fl = JF_UNSAFE;
    return u;
}

/* getattr(obj, name) then obj[name], as the sandbox does */
static int get_attr(ctx *C, const jnode *n, jv obj, const char *name, jv *out) {
    if (name[0] == '_' && obj.t != JT_DICT) { *out = unsafe(C, obj, name); return X_OK; }
    switch (obj.t) {
    case JT_UNDEF: return undef_err(C, n, obj);
    case JT_STR:
        if (is_str_method(name)) { *out = bound(C, obj, name); NEED(out->t == JT_FUNC); return X_OK; }
        break;
    case JT_LIST:
        if (!strcmp(name, "index") || !strcmp(name, "count") || !strcmp(name, "copy")) { *out = bound(C, obj, name); NEED(out->t == JT_FUNC); return X_OK; }
        if (!strcmp(name, "append") || !strcmp(name, "extend") || !strcmp(name, "insert") || !strcmp(name, "pop") ||
            !strcmp(name, "remove") || !strcmp(name, "reverse") || !strcmp(name, "sort") || !strcmp(name, "clear")) {
            *out = unsafe(C, obj, name);
            return X_OK;
        }
        break;
    case JT_DICT:
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values") || !strcmp(name, "get") || !strcmp(name, "copy")) {
            *out = bound(C, obj, name); NEED(out->t == JT_FUNC); return X_OK;
        }
        if (!strcmp(name, "pop") || !strcmp(name, "popitem") || !strcmp(name, "setdefault") || !strcmp(name, "update") || !strcmp(name, "clear")) {
            *out = unsafe(C, obj, name);
            return X_OK;
        }
        /* fallthrough */
    case JT_NS: {
        jv *v = jd_gets(obj.u.d, name, strlen(name));
        if (v) { *out = *v; return X_OK; }
        break;
    }
    case JT_LOOP: {
        jloop *L = obj.u.loop;
        size_t i = L->index0, len = L->length;
        if (!strcmp(name, "index")) *out = jv_int((int64_t)i + 1);
        else if (!strcmp(name, "index0")) *out = jv_int((int64_t)i);
        else if (!strcmp(name, "revindex")) *out = jv_int((int64_t)(len - i));
        else if (!strcmp(name, "revindex0")) *out = jv_int((int64_t)(len - i - 1));
        else if (!strcmp(name, "first")) *out = jv_bool(i == 0);
        else if (!strcmp(name, "last")) *out = jv_bool(i + 1 == len);
        else if (!strcmp(name, "length")) *out = jv_int((int64_t)len);
        else if (!strcmp(name, "depth")) *out = jv_int(1);
        else if (!strcmp(name, "depth0")) *out = jv_int(0);
        else if (!strcmp(name, "previtem")) *out = i > 0 ? L->items->v[i - 1] : jv_undef("there is no previous item");
        else if (!strcmp(name, "nextitem")) *out = i + 1 < len ? L->items->v[i + 1] : jv_undef("there is no next item");
        else if (!strcmp(name, "cycle")) { *out = bound(C, obj, name); NEED(out->t == JT_FUNC); }
        else break;
        return X_OK;
    }
    default: break;
    }
    *out = jv_undef(hintf(C, "'%s' has no attribute '%s'", obj_repr(obj), name));
    return X_OK;
}

static int slice_idx(ctx *C, const jnode *n, jv v, bool *none, int64_t *out) {
    *none = v.t == JT_NONE;
    if (*none) return X_OK;
    if (v.t == JT_INT) { *out = v.u.i; return X_OK; }
    if (v.t == JT_BOOL) { *out = v.u.b; return X_OK; }
    if (v.t == JT_UNDEF) return undef_err(C, n, v);
    return fail(C, n, "TypeError", "slice indices must be integers or None or have an __index__ method");
}

static int do_slice(ctx *C, const jnode *n, jv obj, jv vs, jv ve, jv vst, jv *out) {
    if (obj.t == JT_UNDEF) return undef_err(C, n, obj);
    if ((obj.t != JT_STR && obj.t != JT_LIST) || (obj.fl & JF_GEN)) {
        *out = jv_undef(hintf(C, "'%s' has no element slice", obj_repr(obj)));
        return X_OK;
    }
    bool ns, ne, nst;
    int64_t s = 0, e = 0, st = 1;
    if (slice_idx(C, n, vs, &ns, &s) || slice_idx(C, n, ve, &ne, &e) || slice_idx(C, n, vst, &nst, &st)) return X_ERR;
    if (nst) st = 1;
    if (st == 0) return fail(C, n, "ValueError", "slice step cannot be zero");
    size_t cnt, *offs = NULL;
    bool ascii = obj.t == JT_STR && is_ascii(obj.u.s.p, obj.u.s.n);
    if (obj.t == JT_LIST) cnt = obj.u.l->n;
    else if (ascii) cnt = obj.u.s.n;
    else { offs = cp_offsets(C, obj.u.s.p, obj.u.s.n, &cnt); NEED(offs); }
    int64_t len = (int64_t)cnt;
    if (ns) s = st < 0 ? len - 1 : 0;
    else { if (s < 0) { s += len; if (s < 0) s = st < 0 ? -1 : 0; } else if (s >= len) s = st < 0 ? len - 1 : len; }
    if (ne) e = st < 0 ? -1 : len;
    else { if (e < 0) { e += len; if (e < 0) e = st < 0 ? -1 : 0; } else if (e >= len) e = st < 0 ? len - 1 : len; }
    if (obj.t == JT_LIST) {
        jlist *l = jl_new(C->a, 0);
        NEED(l);
        for (int64_t i = s; st > 0 ? i < e : i > e; i += st) NEED(jl_push(C->a, l, obj.u.l->v[i]));
        *out = jv_list(l, obj.fl);
        return X_OK;
    }
    jbuf b = { C->a, NULL, 0, 0 };
    for (int64_t i = s; st > 0 ? i < e : i > e; i += st) {
        if (ascii) NEED(jb_putc(&b, obj.u.s.p[i]));
        else NEED(jb_put(&b, obj.u.s.p + offs[i], offs[i + 1] - offs[i]));
    }
    *out = jv_strn(b.p ? b.p : "", b.n);
    return X_OK;
}

static int get_item(ctx *C, const jnode *n, jv obj, jv key, jv *out) {
    if (obj.t == JT_UNDEF) return undef_err(C, n, obj);
    if (obj.t == JT_LIST && (key.t == JT_INT || key.t == JT_BOOL) && !(obj.fl & JF_GEN)) {
        int64_t i = key.t == JT_INT ? key.u.i : key.u.b, len = (int64_t)obj.u.l->n;
        if (i < 0) i += len;
        if (i >= 0 && i < len) { *out = obj.u.l->v[i]; return X_OK; }
    } else if (obj.t == JT_STR && (key.t == JT_INT || key.t == JT_BOOL)) {
        int64_t i = key.t == JT_INT ? key.u.i : key.u.b;
        size_t cnt, *o = cp_offsets(C, obj.u.s.p, obj.u.s.n, &cnt);
        NEED(o);
        if (i < 0) i += (int64_t)cnt;
        if (i >= 0 && i < (int64_t)cnt) { *out = jv_strn(obj.u.s.p + o[i], o[i + 1] - o[i]); return X_OK; }
    } else if (obj.t == JT_DICT) {
        if (key.t == JT_LIST && !(key.fl & JF_TUPLE)) return fail(C, n, "TypeError", "unhashable type: 'list'");
        jv *v = jd_get(obj.u.d, key);
        if (v) { *out = *v; return X_OK; }
    }
    if (key.t == JT_STR) {
        char *name = ja_strndup(C->a, key.u.s.p, key.u.s.n);
        NEED(name);
        if (obj.t == JT_DICT) {
            /* a missing key: methods only */
            if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values") || !strcmp(name, "get"))
                return get_attr(C, n, obj, name, out);
            *out = jv_undef(hintf(C, "'%s' has no attribute '%s'", obj_repr(obj), name));
            return X_OK;
        }
        return get_attr(C, n, obj, name, out);
    }
    jbuf b = { C->a, NULL, 0, 0 };
    NEED(jv_repr(&b, key));
    *out = jv_undef(hintf(C, "'%s' has no element %.200s", obj_repr(obj), b.p ? b.p : ""));
    return X_OK;
}

/* ---------------------------------------------------------------- evaluation */

static int ev(ctx *C, const jnode *n, jv *out);
static int exec_body(ctx *C, jnode **xs, int nx);
static int call_value(ctx *C, const jnode *n, jv f, args *A, jv *out);
static int apply_filter(ctx *C, const jnode *n, const char *name, jv v, args *A, jv *out);
static int apply_test(ctx *C, const jnode *n, const char *name, jv v, args *A, bool *out);

static int step(ctx *C, const jnode *n) {
    if (++C->steps > C->max_steps)
        return fail(C, n, "LimitError", "template exceeded its step budget (%llu steps); does it loop forever?", (unsigned long long)C->max_steps);
    if (C->a->over) return oom(C, n);
    return X_OK;
}

static int eval_args(ctx *C, const jnode *n, args *A) {
    memset(A, 0, sizeof *A);
    if (n->nx) { A->pos = ja_alloc(C->a, (size_t)n->nx * sizeof(jv)); NEED(A->pos); }
    for (int i = 0; i < n->nx; i++) if (ev(C, n->xs[i], &A->pos[i])) return X_ERR;
    A->npos = n->nx;
    if (n->ny) { A->kwv = ja_alloc(C->a, (size_t)n->ny * sizeof(jv)); NEED(A->kwv); }
    for (int i = 0; i < n->ny; i++) if (ev(C, n->ys[i], &A->kwv[i])) return X_ERR;
    A->kwn = n->names;
    A->nkw = n->ny;
    return X_OK;
}

static int ev(ctx *C, const jnode *n, jv *out) {
    if (step(C, n)) return X_ERR;
    if (++C->depth > C->max_depth) return fail(C, n, "LimitError", "template nesting/recursion deeper than %d", C->max_depth);
    int rc = X_OK;
    jv a, b;
    switch (n->k) {
    case N_CONST: *out = n->val; break;
    case N_HOLE: *out = C->hole; break;
    case N_NAME: {
        jv *v = lookup(C->fr, n->s);
        *out = v ? *v : jv_undef(hintf(C, "'%s' is undefined", n->s));
        break;
    }
    case N_GETATTR:
        if ((rc = ev(C, n->a, &a))) break;
        rc = get_attr(C, n, a, n->s, out);
        break;
    case N_GETITEM:
        if ((rc = ev(C, n->a, &a))) break;
        if (n->b->k == N_SLICE) {
            jv s = jv_none(), e = jv_none(), st = jv_none();
            if ((n->b->a && (rc = ev(C, n->b->a, &s))) || (n->b->b && (rc = ev(C, n->b->b, &e))) ||
                (n->b->c && (rc = ev(C, n->b->c, &st)))) break;
            rc = do_slice(C, n, a, s, e, st, out);
        } else {
            if ((rc = ev(C, n->b, &b))) break;
            rc = get_item(C, n, a, b, out);
        }
        break;
    case N_CALL: {
        args A;
        if ((rc = ev(C, n->a, &a)) || (rc = eval_args(C, n, &A))) break;
        rc = call_value(C, n, a, &A, out);
        break;
    }
    case N_FILTER: {
        args A;
        if (n->a) { if ((rc = ev(C, n->a, &a))) break; } else a = C->hole;
        if ((rc = eval_args(C, n, &A))) break;
        rc = apply_filter(C, n, n->s, a, &A, out);
        break;
    }
    case N_TEST: {
        args A;
        bool r;
        if ((rc = ev(C, n->a, &a)) || (rc = eval_args(C, n, &A))) break;
        if ((rc = apply_test(C, n, n->s, a, &A, &r))) break;
        *out = jv_bool(n->op ? !r : r);
        break;
    }
    case N_BIN:
        if ((rc = ev(C, n->a, &a)) || (rc = ev(C, n->b, &b))) break;
        rc = arith(C, n, n->op, a, b, out);
        break;
    case N_UNARY:
        if ((rc = ev(C, n->a, &a))) break;
        if (n->op == OP_NOT) { *out = jv_bool(!jv_truthy(a)); break; }
        if (a.t == JT_UNDEF) { rc = undef_err(C, n, a); break; }
        if (a.t == JT_INT || a.t == JT_BOOL) {
            int64_t x = a.t == JT_INT ? a.u.i : a.u.b;
            if (n->op == OP_NEG && x == INT64_MIN) { rc = fail(C, n, "OverflowError", "integer result outside the 64-bit range (unsupported)"); break; }
            *out = jv_int(n->op == OP_NEG ? -x : x);
        } else if (a.t == JT_FLOAT) *out = jv_float(n->op == OP_NEG ? -a.u.f : a.u.f);
        else rc = fail(C, n, "TypeError", "bad operand type for unary %c: '%s'", n->op == OP_NEG ? '-' : '+', jv_type_name(a));
        break;
    case N_AND:
        if ((rc = ev(C, n->a, &a))) break;
        if (!jv_truthy(a)) { *out = a; break; }
        rc = ev(C, n->b, out);
        break;
    case N_OR:
        if ((rc = ev(C, n->a, &a))) break;
        if (jv_truthy(a)) { *out = a; break; }
        rc = ev(C, n->b, out);
        break;
    case N_COND:
        if ((rc = ev(C, n->b, &a))) break;
        if (jv_truthy(a)) rc = ev(C, n->a, out);
        else if (n->c) rc = ev(C, n->c, out);
        else *out = jv_undef(hintf(C, "the inline if-expression on line %d evaluated to false and no else section was defined.", n->line));
        break;
    case N_LIST: case N_TUPLE: {
        jlist *l = jl_new(C->a, (size_t)n->nx);
        if (!l) { rc = oom(C, n); break; }
        for (int i = 0; i < n->nx && !rc; i++) rc = ev(C, n->xs[i], &l->v[l->n++]);
        *out = jv_list(l, n->k == N_TUPLE ? JF_TUPLE : 0);
        break;
    }
    case N_DICT: {
        jdict *d = jd_new(C->a, (size_t)n->nx);
        if (!d) { rc = oom(C, n); break; }
        for (int i = 0; i < n->nx && !rc; i++) {
            if ((rc = ev(C, n->xs[i], &a)) || (rc = ev(C, n->ys[i], &b))) break;
            if ((a.t == JT_LIST && !(a.fl & JF_TUPLE)) || a.t == JT_DICT || a.t == JT_NS) {
                rc = fail(C, n, "TypeError", "unhashable type: '%s'", jv_type_name(a));
                break;
            }
            if (!jd_set(C->a, d, a, b)) rc = oom(C, n);
        }
        *out = jv_dict(d);
        break;
    }
    case N_CMP: {
        if ((rc = ev(C, n->a, &a))) break;
        bool res = true;
        for (int i = 0; i < n->nx && res; i++) {
            if ((rc = ev(C, n->xs[i], &b))) break;
            int op = n->ops[i], c;
            switch (op) {
            case OP_EQ: res = jv_eq(a, b); break;
            case OP_NE: res = !jv_eq(a, b); break;
            case OP_IN: rc = py_in(C, n, a, b, &res); break;
            case OP_NOTIN: rc = py_in(C, n, a, b, &res); res = !res; break;
            default: {
                static const char *const sym[] = { [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=" };
                if ((rc = cmp3(C, n, a, b, sym[op], &c))) break;
                res = c != 2 && (op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
            }
            }
            if (rc) break;
            a = b;
        }
        *out = jv_bool(res);
        break;
    }
    default:
        rc = fail(C, n, "TemplateError", "internal: unexpected node %d", n->k);
    }
    C->depth--;
    return rc;
}

/* ---------------------------------------------------------------- calls */

static bool arg_get(args *A, int pos, const char *name, jv *out) {
    if (pos >= 0 && pos < A->npos) { *out = A->pos[pos]; return true; }
    for (int i = 0; i < A->nkw; i++) if (strcmp(A->kwn[i], name) == 0) { *out = A->kwv[i]; return true; }
    return false;
}

static int check_args(ctx *C, const jnode *n, args *A, int maxpos, const char *const *kwnames, const char *fname) {
    if (A->npos > maxpos) return fail(C, n, "TypeError", "%s() takes at most %d positional argument(s) (%d given)", fname, maxpos, A->npos);
    for (int i = 0; i < A->nkw; i++) {
        bool ok = false;
        for (int k = 0; kwnames && kwnames[k]; k++) if (!strcmp(kwnames[k], A->kwn[i])) ok = true;
        if (!ok) return fail(C, n, "TypeError", "%s() got an unexpected keyword argument '%s'", fname, A->kwn[i]);
    }
    return X_OK;
}

static int need_str(ctx *C, const jnode *n, jv v, const char *what) {
    if (v.t == JT_STR) return X_OK;
    if (v.t == JT_UNDEF) return undef_err(C, n, v);
    return fail(C, n, "TypeError", "%s must be str, not %s", what, jv_type_name(v));
}

static int need_int(ctx *C, const jnode *n, jv v, int64_t *out, const char *what) {
    if (v.t == JT_INT) { *out = v.u.i; return X_OK; }
    if (v.t == JT_BOOL) { *out = v.u.b; return X_OK; }
    if (v.t == JT_UNDEF) return undef_err(C, n, v);
    return fail(C, n, "TypeError", "%s: '%s' object cannot be interpreted as an integer", what, jv_type_name(v));
}

static int call_macro(ctx *C, const jnode *n, jfunc *f, args *A, jv caller, jv *out) {
    const jnode *m = f->node;
    jframe *fr = frame_new(C, f->closure);
    NEED(fr);
    jlist *varargs = jl_new(C->a, 0);
    jdict *kwargs = jd_new(C->a, 0);
    NEED(varargs && kwargs);
    for (int i = 0; i < A->npos; i++) {
        if (i < m->ny) NEED(frame_set(C, fr, m->names[i], A->pos[i]));
        else NEED(jl_push(C->a, varargs, A->pos[i]));
    }
    for (int k = 0; k < A->nkw; k++) {
        int idx = -1;
        for (int i = 0; i < m->ny; i++) if (!strcmp(m->names[i], A->kwn[k])) idx = i;
        if (idx >= 0) {
            if (idx < A->npos) return fail(C, n, "TypeError", "macro '%s' got multiple values for argument '%s'", f->name ? f->name : "caller", A->kwn[k]);
            NEED(frame_set(C, fr, m->names[idx], A->kwv[k]));
        } else if (!strcmp(A->kwn[k], "caller") && f->kind == F_MACRO) {
            caller = A->kwv[k];
        } else {
            NEED(jd_set(C->a, kwargs, jv_strn(A->kwn[k], strlen(A->kwn[k])), A->kwv[k]));
        }
    }
    jframe *saved = C->fr;
    C->fr = fr;
    for (int i = A->npos; i < m->ny; i++) {
        bool given = false;
        for (int k = 0; k < A->nkw; k++) if (!strcmp(m->names[i], A->kwn[k])) given = true;
        if (given) continue;
        jv d;
        if (m->ys[i]) { if (ev(C, m->ys[i], &d)) { C->fr = saved; return X_ERR; } }
        else d = jv_undef(hintf(C, "parameter '%s' was not provided", m->names[i]));
        NEED(frame_set(C, fr, m->names[i], d));
    }
    NEED(frame_set(C, fr, "varargs", jv_list(varargs, JF_TUPLE)));
    NEED(frame_set(C, fr, "kwargs", jv_dict(kwargs)));
    if (caller.t != JT_UNDEF) NEED(frame_set(C, fr, "caller", caller));
    jbuf buf = { C->a, NULL, 0, 0 }, *saved_out = C->out;
    C->out = &buf;
    if (++C->depth > C->max_depth) { C->out = saved_out; C->fr = saved; return fail(C, n, "LimitError", "template nesting/recursion deeper than %d", C->max_depth); }
    int rc = exec_body(C, m->xs, m->nx);
    C->depth--;
    C->out = saved_out;
    C->fr = saved;
    if (rc == X_ERR) return X_ERR;
    *out = jv_strn(buf.p ? buf.p : "", buf.n);
    return X_OK;
}

static int call_method(ctx *C, const jnode *n, jv self, const char *m, args *A, jv *out);

static int call_builtin(ctx *C, const jnode *n, int which, args *A, jv *out) {
    switch (which) {
    case B_RANGE: {
        if (A->nkw) return fail(C, n, "TypeError", "range() takes no keyword arguments");
        if (A->npos < 1 || A->npos > 3) return fail(C, n, "TypeError", "range expected 1 to 3 arguments, got %d", A->npos);
        int64_t s = 0, e, st = 1;
        if (A->npos == 1) { if (need_int(C, n, A->pos[0], &e, "range")) return X_ERR; }
        else {
            if (need_int(C, n, A->pos[0], &s, "range") || need_int(C, n, A->pos[1], &e, "range")) return X_ERR;
            if (A->npos == 3 && need_int(C, n, A->pos[2], &st, "range")) return X_ERR;
        }
        if (st == 0) return fail(C, n, "ValueError", "range() arg 3 must not be zero");
        int64_t cnt = 0;
        if (st > 0 && e > s) cnt = (int64_t)(((__int128)e - s + st - 1) / st);
        if (st < 0 && e < s) cnt = (int64_t)(((__int128)s - e - st - 1) / -st);
        if (cnt > 100000) return fail(C, n, "OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        C->steps += (uint64_t)cnt; /* building the list is work too */
        if (step(C, n)) return X_ERR;
        jlist *l = jl_new(C->a, (size_t)cnt);
        NEED(l);
        for (int64_t i = 0; i < cnt; i++) l->v[l->n++] = jv_int(s + i * st);
        *out = jv_list(l, 0);
        return X_OK;
    }
    case B_NAMESPACE: case B_DICT: {
        jdict *d = jd_new(C->a, 0);
        NEED(d);
        if (A->npos > 1) return fail(C, n, "TypeError", "%s expected at most 1 argument, got %d", which == B_DICT ? "dict" : "namespace", A->npos);
        if (A->npos == 1) {
            jv s = A->pos[0];
            if (s.t == JT_DICT || s.t == JT_NS) {
                for (size_t i = 0; i < s.u.d->n; i++) NEED(jd_set(C->a, d, s.u.d->k[i], s.u.d->v[i]));
            } else if (s.t == JT_LIST) {
                for (size_t i = 0; i < s.u.l->n; i++) {
                    jv p = s.u.l->v[i];
                    if (p.t != JT_LIST || p.u.l->n != 2) return fail(C, n, "ValueError", "dictionary update sequence element #%zu has wrong length", i);
                    NEED(jd_set(C->a, d, p.u.l->v[0], p.u.l->v[1]));
                }
            } else if (s.t == JT_UNDEF) return undef_err(C, n, s);
            else return fail(C, n, "TypeError", "'%s' object is not iterable", jv_type_name(s));
        }
        for (int i = 0; i < A->nkw; i++) NEED(jd_set(C->a, d, jv_strn(A->kwn[i], strlen(A->kwn[i])), A->kwv[i]));
        out->t = which == B_DICT ? JT_DICT : JT_NS;
        out->fl = 0;
        out->u.d = d;
        return X_OK;
    }
    case B_RAISE: {
        jv m = A->npos ? A->pos[0] : jv_strn("", 0), s;
        NEED(to_str(C, m, &s));
        return fail(C, n, "TemplateError", "%.*s", (int)(s.u.s.n > 800 ? 800 : s.u.s.n), s.u.s.p);
    }
    case B_STRFTIME: {
        jv f;
        if (!arg_get(A, 0, "format", &f)) return fail(C, n, "TypeError", "strftime_now() missing 1 required positional argument: 'format'");
        if (need_str(C, n, f, "strftime_now() argument")) return X_ERR;
        time_t t = C->now >= 0 ? (time_t)C->now : time(NULL);
        struct tm tmv;
        if (C->now >= 0) gmtime_r(&t, &tmv); else localtime_r(&t, &tmv);
        char *fmt = ja_strndup(C->a, f.u.s.p, f.u.s.n);
        char buf[1024];
        NEED(fmt);
        size_t k = f.u.s.n ? strftime(buf, sizeof buf, fmt, &tmv) : 0;
        *out = mkstr(C, buf, k);
        NEED(STR_OK(*out));
        return X_OK;
    }
    }
    return fail(C, n, "TypeError", "not callable");
}

static int call_value(ctx *C, const jnode *n, jv f, args *A, jv *out) {
    if (f.t == JT_UNDEF) return undef_err(C, n, f);
    if (f.t != JT_FUNC) return fail(C, n, "TypeError", "'%s' object is not callable", jv_type_name(f));
    jfunc *fn = f.u.fn;
    switch (fn->kind) {
    case F_MACRO: case F_CALLER: return call_macro(C, n, fn, A, jv_undef(NULL), out);
    case F_BUILTIN: return call_builtin(C, n, fn->builtin, A, out);
    default: return call_method(C, n, fn->self, fn->name, A, out);
    }
}

/* str.split / rsplit */
static int py_split(ctx *C, const jnode *n, jv s, jv sep, int64_t maxsplit, bool right, jv *out) {
    jlist *l = jl_new(C->a, 0);
    NEED(l);
    const char *p = s.u.s.p;
    size_t len = s.u.s.n;
    if (sep.t == JT_NONE || sep.t == JT_UNDEF) {
        /* runs of whitespace; no empty strings */
        size_t i = 0, lw;
        jlist *parts = l;
        if (!right) {
            int64_t splits = 0;
            while (i < len) {
                while (i < len && ju_isspace(ju_decode((const unsigned char *)p + i, len - i, &lw))) i += lw;
                if (i >= len) break;
                if (maxsplit >= 0 && splits == maxsplit) {
                    jv rest = py_strip(jv_strn(p + i, len - i), NULL, 0, false, true);
                    NEED(jl_push(C->a, parts, rest));
                    break;
                }
                size_t st = i;
                while (i < len && !ju_isspace(ju_decode((const unsigned char *)p + i, len - i, &lw))) i += lw;
                NEED(jl_push(C->a, parts, jv_strn(p + st, i - st)));
                splits++;
            }
        } else {
            /* rsplit(None, maxsplit): split from the right */
            jlist *rev = jl_new(C->a, 0);
            NEED(rev);
            size_t cnt, *o = cp_offsets(C, p, len, &cnt);
            NEED(o);
            int64_t e = (int64_t)cnt, splits = 0;
            while (e > 0) {
                while (e > 0 && ju_isspace(ju_decode((const unsigned char *)p + o[e - 1], o[e] - o[e - 1], &lw))) e--;
                if (e <= 0) break;
                if (maxsplit >= 0 && splits == maxsplit) {
                    NEED(jl_push(C->a, rev, py_strip(jv_strn(p, o[e]), NULL, 0, true, false)));
                    break;
                }
                int64_t st = e;
                while (st > 0 && !ju_isspace(ju_decode((const unsigned char *)p + o[st - 1], o[st] - o[st - 1], &lw))) st--;
                NEED(jl_push(C->a, rev, jv_strn(p + o[st], o[e] - o[st])));
                e = st;
                splits++;
            }
            for (size_t k = rev->n; k-- > 0;) NEED(jl_push(C->a, l, rev->v[k]));
        }
        *out = jv_list(l, 0);
        return X_OK;
    }
    if (need_str(C, n, sep, "separator")) return X_ERR;
    if (sep.u.s.n == 0) return fail(C, n, "ValueError", "empty separator");
    if (!right) {
        size_t i = 0, at;
        int64_t splits = 0;
        while ((maxsplit < 0 || splits < maxsplit) && str_find(p, len, sep.u.s.p, sep.u.s.n, i, &at)) {
            NEED(jl_push(C->a, l, jv_strn(p + i, at - i)));
            i = at + sep.u.s.n;
            splits++;
            if (step(C, n)) return X_ERR;
        }
        NEED(jl_push(C->a, l, jv_strn(p + i, len - i)));
    } else {
        jlist *rev = jl_new(C->a, 0);
        NEED(rev);
        size_t e = len, at;
        int64_t splits = 0;
        while ((maxsplit < 0 || splits < maxsplit) && str_rfind(p, e, sep.u.s.p, sep.u.s.n, &at)) {
            NEED(jl_push(C->a, rev, jv_strn(p + at + sep.u.s.n, e - at - sep.u.s.n)));
            e = at;
            splits++;
        }
        NEED(jl_push(C->a, rev, jv_strn(p, e)));
        for (size_t k = rev->n; k-- > 0;) NEED(jl_push(C->a, l, rev->v[k]));
    }
    *out = jv_list(l, 0);
    return X_OK;
}

static bool is_linebreak(uint32_t c) {
    return c == '\n' || c == '\r' || c == 11 || c == 12 || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
}

static int py_splitlines(ctx *C, const jnode *n, jv s, bool keep, jlist **out) {
    jlist *l = jl_new(C->a, 0);
    NEED(l);
    const char *p = s.u.s.p;
    size_t len = s.u.s.n, i = 0, st = 0, lw;
    while (i < len) {
        uint32_t c = ju_decode((const unsigned char *)p + i, len - i, &lw);
        if (is_linebreak(c)) {
            size_t e = i + lw;
            if (c == '\r' && e < len && p[e] == '\n') e++;
            NEED(jl_push(C->a, l, jv_strn(p + st, (keep ? e : i) - st)));
            st = i = e;
        } else i += lw;
    }
    if (st < len) NEED(jl_push(C->a, l, jv_strn(p + st, len - st)));
    *out = l;
    return X_OK;
}

static int pad_str(ctx *C, const jnode *n, jv s, int64_t width, const char *fill, size_t fl, int mode /* 0 center 1 ljust 2 rjust 3 zfill */, jv *out) {
    size_t cps = ju_count(s.u.s.p, s.u.s.n);
    if (width > (1 << 24)) return oom(C, n);
    if (width <= (int64_t)cps) { *out = s; return X_OK; }
    size_t marg = (size_t)width - cps, left = 0;
    if (mode == 0) left = marg / 2 + (marg & (size_t)width & 1);
    else if (mode == 2 || mode == 3) left = marg;
    jbuf b = { C->a, NULL, 0, 0 };
    size_t start = 0;
    if (mode == 3 && s.u.s.n && (s.u.s.p[0] == '-' || s.u.s.p[0] == '+')) { NEED(jb_putc(&b, s.u.s.p[0])); start = 1; }
    for (size_t i = 0; i < left; i++) NEED(jb_put(&b, fill, fl));
    NEED(jb_put(&b, s.u.s.p + start, s.u.s.n - start));
    for (size_t i = left; i < marg; i++) NEED(jb_put(&b, fill, fl));
    *out = jv_strn(b.p, b.n);
    return X_OK;
}

static int str_replace(ctx *C, const jnode *n, jv s, jv old, jv new_, int64_t count, jv *out) {
    jbuf b = { C->a, NULL, 0, 0 };
    size_t i = 0, at;
    int64_t done = 0;
    if (old.u.s.n == 0) {
        /* Python inserts new between every character */
        size_t cnt, *o = cp_offsets(C, s.u.s.p, s.u.s.n, &cnt);
        NEED(o);
        for (size_t k = 0; k <= cnt; k++) {
            if (count < 0 || done < count) { NEED(jb_put(&b, new_.u.s.p, new_.u.s.n)); done++; }
            if (k < cnt) NEED(jb_put(&b, s.u.s.p + o[k], o[k + 1] - o[k]));
            if (step(C, n)) return X_ERR;
        }
    } else {
        while ((count < 0 || done < count) && str_find(s.u.s.p, s.u.s.n, old.u.s.p, old.u.s.n, i, &at)) {
            NEED(jb_put(&b, s.u.s.p + i, at - i) && jb_put(&b, new_.u.s.p, new_.u.s.n));
            i = at + old.u.s.n;
            done++;
            if (step(C, n)) return X_ERR;
        }
        NEED(jb_put(&b, s.u.s.p + i, s.u.s.n - i));
    }
    *out = jv_strn(b.p ? b.p : "", b.n);
    return X_OK;
}

/* str.format with {} {0} {name} (no format specs) */
static int str_format(ctx *C, const jnode *n, jv s, args *A, jv *out) {
    jbuf b = { C->a, NULL, 0, 0 };
    const char *p = s.u.s.p;
    size_t len = s.u.s.n;
    int autoi = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '{' && i + 1 < len && p[i + 1] == '{') { NEED(jb_putc(&b, '{')); i++; continue; }
        if (p[i] == '}' && i + 1 < len && p[i + 1] == '}') { NEED(jb_putc(&b, '}')); i++; continue; }
        if (p[i] == '}') return fail(C, n, "ValueError", "Single '}' encountered in format string");
        if (p[i] != '{') { NEED(jb_putc(&b, p[i])); continue; }
        size_t e = i + 1;
        while (e < len && p[e] != '}') e++;
        if (e >= len) return fail(C, n, "ValueError", "Single '{' encountered in format string");
        const char *f = p + i + 1;
        size_t fl = e - i - 1;
        if (memchr(f, ':', fl) || memchr(f, '!', fl) || memchr(f, '.', fl) || memchr(f, '[', fl))
            return fail(C, n, "ValueError", "str.format field '%.*s' uses a conversion or format spec (unsupported)", (int)fl, f);
        jv v;
        /* Python: a field of digits only is an index (ValueError past
         * Py_ssize_t); any other field, "0a" or "-1" included, a keyword */
        bool digits = fl > 0;
        for (size_t j = 0; j < fl; j++) digits = digits && f[j] >= '0' && f[j] <= '9';
        if (fl == 0) {
            if (autoi >= A->npos) return fail(C, n, "IndexError", "Replacement index %d out of range for positional args tuple", autoi);
            v = A->pos[autoi++];
        } else if (digits) {
            unsigned long long idx = 0;
            for (size_t j = 0; j < fl; j++) { /* CPython's get_integer bound */
                unsigned d = (unsigned)(f[j] - '0');
                if (idx > ((unsigned long long)INT64_MAX - d) / 10) return fail(C, n, "ValueError", "Too many decimal digits in format string");
                idx = idx * 10 + d;
            }
            if (idx >= (unsigned long long)A->npos) return fail(C, n, "IndexError", "Replacement index %llu out of range for positional args tuple", idx);
            v = A->pos[idx];
        } else {
            bool found = false;
            for (int k = 0; k < A->nkw; k++) if (strlen(A->kwn[k]) == fl && !memcmp(A->kwn[k], f, fl)) { v = A->kwv[k]; found = true; }
            if (!found) return fail(C, n, "KeyError", "'%.*s'", (int)fl, f);
        }
        NEED(jv_str(&b, v));
        i = e;
    }
    *out = jv_strn(b.p ? b.p : "", b.n);
    return X_OK;
}

static int call_method(ctx *C, const jnode *n, jv self, const char *m, args *A, jv *out) {
    jv a0 = jv_undef(NULL), a1 = jv_undef(NULL);
    bool h0 = A->npos > 0, h1 = A->npos > 1;
    if (h0) a0 = A->pos[0];
    if (h1) a1 = A->pos[1];
    if (self.t == JT_LOOP) {
        if (!strcmp(m, "cycle")) {
            if (A->npos == 0) return fail(C, n, "TypeError", "no items for cycling given");
            *out = A->pos[self.u.loop->index0 % (size_t)A->npos];
            return X_OK;
        }
    } else if (self.t == JT_DICT) {
        jdict *d = self.u.d;
        if (!strcmp(m, "items")) {
            jlist *l = jl_new(C->a, d->n);
            NEED(l);
            for (size_t i = 0; i < d->n; i++) {
                jlist *p = jl_new(C->a, 2);
                NEED(p);
                p->v[0] = d->k[i]; p->v[1] = d->v[i]; p->n = 2;
                l->v[l->n++] = jv_list(p, JF_TUPLE);
            }
            *out = jv_list(l, 0);
            return X_OK;
        }
        if (!strcmp(m, "keys") || !strcmp(m, "values")) {
            jlist *l = jl_new(C->a, d->n);
            NEED(l);
            for (size_t i = 0; i < d->n; i++) l->v[l->n++] = m[0] == 'k' ? d->k[i] : d->v[i];
            *out = jv_list(l, 0);
            return X_OK;
        }
        if (!strcmp(m, "get")) {
            jv k, dflt = jv_none();
            if (!arg_get(A, 0, "key", &k)) return fail(C, n, "TypeError", "get expected at least 1 argument, got 0");
            arg_get(A, 1, "default", &dflt);
            jv *v = jd_get(d, k);
            *out = v ? *v : dflt;
            return X_OK;
        }
        if (!strcmp(m, "copy")) { *out = self; return X_OK; }
    } else if (self.t == JT_LIST) {
        if (!strcmp(m, "copy")) { *out = self; return X_OK; }
        if (!strcmp(m, "count") || !strcmp(m, "index")) {
            if (!h0) return fail(C, n, "TypeError", "%s() takes exactly one argument (0 given)", m);
            int64_t c = 0;
            for (size_t i = 0; i < self.u.l->n; i++)
                if (jv_eq(self.u.l->v[i], a0)) { if (m[0] == 'i') { *out = jv_int((int64_t)i); return X_OK; } c++; }
            if (m[0] == 'i') return fail(C, n, "ValueError", "value is not in list");
            *out = jv_int(c);
            return X_OK;
        }
    } else if (self.t == JT_STR) {
        jv s = self;
        if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
            if (!h0) return fail(C, n, "TypeError", "%s() takes at least 1 argument (0 given)", m);
            jlist one = { 1, 1, &a0 };
            jlist *cands = (a0.t == JT_LIST && (a0.fl & JF_TUPLE)) ? a0.u.l : &one;
            bool r = false;
            for (size_t i = 0; i < cands->n && !r; i++) {
                jv c = cands->v[i];
                if (c.t != JT_STR) {
                    if (c.t == JT_UNDEF) return undef_err(C, n, c);
                    return fail(C, n, "TypeError", "%s first arg must be str or a tuple of str, not %s", m, jv_type_name(c));
                }
                if (c.u.s.n <= s.u.s.n)
                    r = m[0] == 's' ? memcmp(s.u.s.p, c.u.s.p, c.u.s.n) == 0
                                    : memcmp(s.u.s.p + s.u.s.n - c.u.s.n, c.u.s.p, c.u.s.n) == 0;
            }
            *out = jv_bool(r);
            return X_OK;
        }
        if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
            jv sep = jv_none(), ms = jv_int(-1);
            arg_get(A, 0, "sep", &sep);
            arg_get(A, 1, "maxsplit", &ms);
            int64_t maxsplit;
            if (need_int(C, n, ms, &maxsplit, "maxsplit")) return X_ERR;
            return py_split(C, n, s, sep, maxsplit, m[0] == 'r', out);
        }
        if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
            if (h0 && a0.t != JT_NONE) {
                if (need_str(C, n, a0, "strip arg")) return X_ERR;
                *out = py_strip(s, a0.u.s.p, a0.u.s.n, m[0] != 'r', m[0] != 'l');
            } else *out = py_strip(s, NULL, 0, m[0] != 'r', m[0] != 'l');
            return X_OK;
        }
        if (!strcmp(m, "replace")) {
            jv cnt = jv_int(-1);
            if (!h0 || !h1) return fail(C, n, "TypeError", "replace expected at least 2 arguments, got %d", A->npos);
            if (need_str(C, n, a0, "replace() argument 1") || need_str(C, n, a1, "replace() argument 2")) return X_ERR;
            arg_get(A, 2, "count", &cnt);
            int64_t c;
            if (need_int(C, n, cnt, &c, "count")) return X_ERR;
            return str_replace(C, n, s, a0, a1, c, out);
        }
        if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "casefold") || !strcmp(m, "swapcase")) {
            char *p = map_ascii(C, s.u.s.p, s.u.s.n, m[0] == 'u' ? 1 : m[0] == 's' ? 2 : 0);
            NEED(p);
            *out = jv_strn(p, s.u.s.n);
            return X_OK;
        }
        if (!strcmp(m, "title")) { char *p = py_title(C, s.u.s.p, s.u.s.n); NEED(p); *out = jv_strn(p, s.u.s.n); return X_OK; }
        if (!strcmp(m, "capitalize")) {
            char *p = map_ascii(C, s.u.s.p, s.u.s.n, 0);
            NEED(p);
            if (s.u.s.n && p[0] >= 'a' && p[0] <= 'z') p[0] = (char)(p[0] - 32);
            *out = jv_strn(p, s.u.s.n);
            return X_OK;
        }
        if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "rindex") || !strcmp(m, "count")) {
            if (!h0) return fail(C, n, "TypeError", "%s() takes at least 1 argument (0 given)", m);
            if (need_str(C, n, a0, "argument")) return X_ERR;
            size_t at;
            if (!strcmp(m, "count")) {
                int64_t c = 0;
                size_t i = 0;
                if (a0.u.s.n == 0) c = (int64_t)ju_count(s.u.s.p, s.u.s.n) + 1;
                else while (str_find(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n, i, &at)) { c++; i = at + a0.u.s.n; }
                *out = jv_int(c);
                return X_OK;
            }
            bool found = m[0] == 'r' ? str_rfind(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n, &at)
                                     : str_find(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n, 0, &at);
            if (!found && strstr(m, "index")) return fail(C, n, "ValueError", "substring not found");
            *out = jv_int(found ? (int64_t)ju_count(s.u.s.p, at) : -1);
            return X_OK;
        }
        if (!strcmp(m, "format")) return str_format(C, n, s, A, out);
        if (!strcmp(m, "join")) {
            if (!h0) return fail(C, n, "TypeError", "str.join() takes exactly one argument (0 given)");
            jlist *l;
            if (iterate(C, n, a0, &l)) return X_ERR;
            jbuf b = { C->a, NULL, 0, 0 };
            for (size_t i = 0; i < l->n; i++) {
                if (l->v[i].t != JT_STR) return fail(C, n, "TypeError", "sequence item %zu: expected str instance, %s found", i, jv_type_name(l->v[i]));
                if (i) NEED(jb_put(&b, s.u.s.p, s.u.s.n));
                NEED(jb_put(&b, l->v[i].u.s.p, l->v[i].u.s.n));
            }
            *out = jv_strn(b.p ? b.p : "", b.n);
            return X_OK;
        }
        if (!strncmp(m, "is", 2)) {
            bool r = s.u.s.n > 0, any_cased = false;
            size_t i = 0, l;
            while (i < s.u.s.n) {
                uint32_t c = ju_decode((const unsigned char *)s.u.s.p + i, s.u.s.n - i, &l);
                bool dig = c >= '0' && c <= '9', lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
                bool alpha = lo || up || (c >= 0x80 && is_alpha_cp(c));
                if (lo || up) any_cased = true;
                if (!strcmp(m, "isdigit") || !strcmp(m, "isnumeric") || !strcmp(m, "isdecimal")) r = r && dig;
                else if (!strcmp(m, "isalpha")) r = r && alpha;
                else if (!strcmp(m, "isalnum")) r = r && (alpha || dig);
                else if (!strcmp(m, "isspace")) r = r && ju_isspace(c);
                else if (!strcmp(m, "isupper")) r = r && !lo;
                else if (!strcmp(m, "islower")) r = r && !up;
                i += l;
            }
            if (!strcmp(m, "isupper") || !strcmp(m, "islower")) r = r && any_cased;
            *out = jv_bool(r);
            return X_OK;
        }
        if (!strcmp(m, "splitlines")) {
            jv keep = jv_bool(false);
            arg_get(A, 0, "keepends", &keep);
            jlist *l;
            if (py_splitlines(C, n, s, jv_truthy(keep), &l)) return X_ERR;
            *out = jv_list(l, 0);
            return X_OK;
        }
        if (!strcmp(m, "zfill") || !strcmp(m, "center") || !strcmp(m, "ljust") || !strcmp(m, "rjust")) {
            int64_t w;
            if (!h0) return fail(C, n, "TypeError", "%s() takes at least 1 argument (0 given)", m);
            if (need_int(C, n, a0, &w, m)) return X_ERR;
            const char *fill = " ";
            size_t fl = 1;
            if (h1) {
                if (need_str(C, n, a1, "fill character")) return X_ERR;
                if (ju_count(a1.u.s.p, a1.u.s.n) != 1) return fail(C, n, "TypeError", "The fill character must be exactly one character long");
                fill = a1.u.s.p; fl = a1.u.s.n;
            }
            int mode = m[0] == 'c' ? 0 : m[0] == 'l' ? 1 : m[0] == 'r' ? 2 : 3;
            if (mode == 3) { fill = "0"; fl = 1; }
            return pad_str(C, n, s, w, fill, fl, mode, out);
        }
        if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
            if (!h0 || need_str(C, n, a0, m)) return h0 ? X_ERR : fail(C, n, "TypeError", "%s() takes exactly one argument (0 given)", m);
            *out = s;
            if (a0.u.s.n <= s.u.s.n) {
                if (m[6] == 'p' && !memcmp(s.u.s.p, a0.u.s.p, a0.u.s.n)) *out = jv_strn(s.u.s.p + a0.u.s.n, s.u.s.n - a0.u.s.n);
                if (m[6] == 's' && !memcmp(s.u.s.p + s.u.s.n - a0.u.s.n, a0.u.s.p, a0.u.s.n)) *out = jv_strn(s.u.s.p, s.u.s.n - a0.u.s.n);
            }
            return X_OK;
        }
        if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) {
            if (!h0 || need_str(C, n, a0, m)) return h0 ? X_ERR : fail(C, n, "TypeError", "%s() takes exactly one argument (0 given)", m);
            if (a0.u.s.n == 0) return fail(C, n, "ValueError", "empty separator");
            size_t at;
            bool f = m[0] == 'r' ? str_rfind(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n, &at) : str_find(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n, 0, &at);
            jlist *l = jl_new(C->a, 3);
            NEED(l);
            l->n = 3;
            if (f) { l->v[0] = jv_strn(s.u.s.p, at); l->v[1] = a0; l->v[2] = jv_strn(s.u.s.p + at + a0.u.s.n, s.u.s.n - at - a0.u.s.n); }
            else if (m[0] == 'r') { l->v[0] = jv_strn("", 0); l->v[1] = jv_strn("", 0); l->v[2] = s; }
            else { l->v[0] = s; l->v[1] = jv_strn("", 0); l->v[2] = jv_strn("", 0); }
            *out = jv_list(l, JF_TUPLE);
            return X_OK;
        }
    }
    return fail(C, n, "AttributeError", "'%s' object has no attribute '%s'", jv_type_name(self), m);
}

/* ---------------------------------------------------------------- filters */

static bool is_sortable_str(jv v) { return v.t == JT_STR; }

/* key for case-insensitive compare */
static jv fold(ctx *C, jv v, bool cs) {
    if (cs || !is_sortable_str(v)) return v;
    char *p = map_ascii(C, v.u.s.p, v.u.s.n, 0);
    return p ? jv_strn(p, v.u.s.n) : v;
}

/* attribute path "a.b.0" lookup as make_attrgetter (item first) */
static int attr_path(ctx *C, const jnode *n, jv item, jv attr, jv *out) {
    if (attr.t != JT_STR) return get_item(C, n, item, attr, out);
    const char *p = attr.u.s.p;
    size_t len = attr.u.s.n, i = 0;
    jv cur = item;
    while (i <= len) {
        size_t e = i;
        while (e < len && p[e] != '.') e++;
        jv key = jv_strn(p + i, e - i);
        bool digits = e > i;
        for (size_t k = i; k < e; k++) if (p[k] < '0' || p[k] > '9') digits = false;
        if (digits) key = jv_int(strtoll(p + i, NULL, 10));
        if (get_item(C, n, cur, key, &cur)) return X_ERR;
        i = e + 1;
        if (e >= len) break;
    }
    *out = cur;
    return X_OK;
}

typedef struct sortctx { ctx *C; const jnode *n; int err; bool rev; } sortctx;

/* stable merge sort with a fallible comparison */
static int msort(sortctx *S, jv *keys, size_t *idx, size_t *tmp, size_t cnt) {
    for (size_t w = 1; w < cnt; w *= 2) {
        for (size_t lo = 0; lo < cnt; lo += 2 * w) {
            size_t mid = lo + w < cnt ? lo + w : cnt, hi = lo + 2 * w < cnt ? lo + 2 * w : cnt;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if (cmp3(S->C, S->n, keys[idx[j]], keys[idx[i]], "<", &c)) return X_ERR;
                bool take_j = S->rev ? c > 0 && c != 2 : c < 0;
                if (S->rev) {
                    /* reverse=True keeps stability like Python: compare i < j */
                    int c2;
                    if (cmp3(S->C, S->n, keys[idx[i]], keys[idx[j]], "<", &c2)) return X_ERR;
                    take_j = c2 < 0;
                }
                tmp[k++] = take_j ? idx[j++] : idx[i++];
            }
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
            memcpy(idx + lo, tmp + lo, (hi - lo) * sizeof *idx);
        }
    }
    return X_OK;
}

static int sort_list(ctx *C, const jnode *n, jlist *l, jv attr, bool cs, bool rev, jlist **out) {
    size_t cnt = l->n;
    jv *keys = ja_alloc(C->a, (cnt + 1) * sizeof *keys);
    size_t *idx = ja_alloc(C->a, (cnt + 1) * sizeof *idx), *tmp = ja_alloc(C->a, (cnt + 1) * sizeof *tmp);
    NEED(keys && idx && tmp);
    for (size_t i = 0; i < cnt; i++) {
        jv k = l->v[i];
        if (attr.t != JT_NONE && attr.t != JT_UNDEF && attr_path(C, n, k, attr, &k)) return X_ERR;
        keys[i] = fold(C, k, cs);
        idx[i] = i;
    }
    sortctx S = { C, n, 0, rev };
    if (msort(&S, keys, idx, tmp, cnt)) return X_ERR;
    jlist *r = jl_new(C->a, cnt);
    NEED(r);
    for (size_t i = 0; i < cnt; i++) r->v[r->n++] = l->v[idx[i]];
    *out = r;
    return X_OK;
}

static int to_int_filter(ctx *C, const jnode *n, jv v, jv dflt, int64_t base, jv *out) {
    if (v.t == JT_INT) { *out = v; return X_OK; }
    if (v.t == JT_BOOL) { *out = jv_int(v.u.b); return X_OK; }
    if (v.t == JT_FLOAT) {
        if (isnan(v.u.f) || isinf(v.u.f) || fabs(v.u.f) > 9.2e18) { *out = dflt; return X_OK; }
        *out = jv_int((int64_t)v.u.f);
        return X_OK;
    }
    if (v.t == JT_STR) {
        jv s = py_strip(v, NULL, 0, true, true);
        char buf[128];
        size_t k = 0;
        for (size_t i = 0; i < s.u.s.n && k < sizeof buf - 1; i++) if (s.u.s.p[i] != '_') buf[k++] = s.u.s.p[i];
        buf[k] = 0;
        if (k && s.u.s.n < sizeof buf) {
            char *end;
            long long r = strtoll(buf, &end, (int)base);
            if (*end == 0 && !(buf[0] == '0' && k > 1 && base == 10 && buf[1] != 0 && r != 0 && 0)) { *out = jv_int(r); return X_OK; }
            double d = strtod(buf, &end);
            if (*end == 0 && !isnan(d) && !isinf(d) && fabs(d) < 9.2e18) { *out = jv_int((int64_t)d); return X_OK; }
        }
    }
    (void)C; (void)n;
    *out = dflt;
    return X_OK;
}

static const char *const KNOWN_FILTERS[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list",
    "lower", "map", "max", "min", "pprint", "reject", "rejectattr", "replace", "reverse", "round", "safe",
    "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper",
    "wordcount", NULL };

static int html_escape(ctx *C, const jnode *n, jv v, jv *out) {
    jv s;
    NEED(to_str(C, v, &s));
    jbuf b = { C->a, NULL, 0, 0 };
    for (size_t i = 0; i < s.u.s.n; i++) {
        char c = s.u.s.p[i];
        const char *r = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&#34;" : c == '\'' ? "&#39;" : NULL;
        NEED(r ? jb_puts(&b, r) : jb_putc(&b, c));
    }
    *out = jv_strn(b.p ? b.p : "", b.n);
    return X_OK;
}

static int select_common(ctx *C, const jnode *n, jv v, args *A, bool attr_mode, bool want, jv *out) {
    jlist *l;
    if (!jv_truthy(v) && !(v.fl & JF_UNSAFE)) v = jv_undef(NULL); /* Jinja: "if value:" */
    if (iterate(C, n, v, &l)) return X_ERR;
    jlist *r = jl_new(C->a, 0);
    NEED(r);
    int first = 0;
    jv attr = jv_none();
    if (attr_mode) {
        if (A->npos < 1) return fail(C, n, "TypeError", "selectattr/rejectattr need an attribute name");
        attr = A->pos[0];
        first = 1;
    }
    const char *test = NULL;
    if (A->npos > first) {
        jv t = A->pos[first];
        if (need_str(C, n, t, "test name")) return X_ERR;
        test = ja_strndup(C->a, t.u.s.p, t.u.s.n);
        NEED(test);
    }
    args TA = { A->npos > first ? A->pos + first + 1 : NULL, A->npos > first ? A->npos - first - 1 : 0, A->kwn, A->kwv, A->nkw };
    for (size_t i = 0; i < l->n; i++) {
        jv item = l->v[i], x = item;
        if (attr_mode && attr_path(C, n, item, attr, &x)) return X_ERR;
        bool r2;
        if (test) { if (apply_test(C, n, test, x, &TA, &r2)) return X_ERR; }
        else r2 = jv_truthy(x);
        if (r2 == want) NEED(jl_push(C->a, r, item));
        if (step(C, n)) return X_ERR;
    }
    *out = jv_list(r, JF_GEN);
    return X_OK;
}

static int apply_filter(ctx *C, const jnode *n, const char *f, jv v, args *A, jv *out) {
    jv a0 = A->npos > 0 ? A->pos[0] : jv_undef(NULL);
#define IS(x) (strcmp(f, x) == 0)
    if (IS("tojson")) {
        static const char *const kw[] = { "ensure_ascii", "indent", "separators", "sort_keys", NULL };
        if (check_args(C, n, A, 4, kw, "tojson")) return X_ERR;
        jv ea = jv_bool(false), ind = jv_none(), sep = jv_none(), sk = jv_bool(false);
        arg_get(A, 0, "ensure_ascii", &ea);
        arg_get(A, 1, "indent", &ind);
        arg_get(A, 2, "separators", &sep);
        arg_get(A, 3, "sort_keys", &sk);
        jjson_opts o = { jv_truthy(ea), jv_truthy(sk), NULL, ", ", ": " };
        if (ind.t == JT_INT || ind.t == JT_BOOL) {
            int64_t k = ind.t == JT_INT ? ind.u.i : ind.u.b;
            if (k > 1000) return fail(C, n, "ValueError", "indent too large (unsupported)");
            char *sp = ja_alloc(C->a, (size_t)(k > 0 ? k : 0) + 1);
            NEED(sp);
            for (int64_t i = 0; i < k; i++) sp[i] = ' ';
            o.indent = sp;
            o.item_sep = ",";
        } else if (ind.t == JT_STR) {
            o.indent = ja_strndup(C->a, ind.u.s.p, ind.u.s.n);
            NEED(o.indent);
            o.item_sep = ",";
        } else if (ind.t != JT_NONE) return fail(C, n, "TypeError", "indent must be an int, a str or None");
        if (sep.t == JT_LIST) {
            if (sep.u.l->n != 2 || sep.u.l->v[0].t != JT_STR || sep.u.l->v[1].t != JT_STR)
                return fail(C, n, "ValueError", "separators must be a (item_separator, key_separator) pair of str");
            o.item_sep = ja_strndup(C->a, sep.u.l->v[0].u.s.p, sep.u.l->v[0].u.s.n);
            o.key_sep = ja_strndup(C->a, sep.u.l->v[1].u.s.p, sep.u.l->v[1].u.s.n);
            NEED(o.item_sep && o.key_sep);
        } else if (sep.t != JT_NONE) return fail(C, n, "TypeError", "separators must be a (item_separator, key_separator) pair of str");
        jbuf b = { C->a, NULL, 0, 0 };
        const char *e = jv_tojson(&b, v, &o, 0);
        if (e) {
            if (!strcmp(e, "out of memory")) return oom(C, n);
            return fail(C, n, "TypeError", "%s", e);
        }
        *out = jv_strn(b.p ? b.p : "", b.n);
        return X_OK;
    }
    if (IS("length") || IS("count")) {
        switch (v.t) {
        case JT_STR: *out = jv_int((int64_t)ju_count(v.u.s.p, v.u.s.n)); return X_OK;
        case JT_LIST:
            if (v.fl & JF_GEN) return fail(C, n, "TypeError", "object of type 'generator' has no len()");
            *out = jv_int((int64_t)v.u.l->n);
            return X_OK;
        case JT_DICT: *out = jv_int((int64_t)v.u.d->n); return X_OK;
        case JT_UNDEF: *out = jv_int(0); return X_OK;
        case JT_LOOP: *out = jv_int((int64_t)v.u.loop->length); return X_OK;
        default: return fail(C, n, "TypeError", "object of type '%s' has no len()", jv_type_name(v));
        }
    }
    if (IS("default") || IS("d")) {
        jv dv = jv_strn("", 0), bo = jv_bool(false);
        arg_get(A, 0, "default_value", &dv);
        arg_get(A, 1, "boolean", &bo);
        *out = (v.t == JT_UNDEF || (jv_truthy(bo) && !jv_truthy(v))) ? dv : v;
        return X_OK;
    }
    if (IS("trim") || IS("upper") || IS("lower") || IS("title") || IS("capitalize") || IS("string") || IS("safe") ||
        IS("wordcount") || IS("center") || IS("replace") || IS("indent") || IS("format") || IS("e") || IS("escape") ||
        IS("forceescape")) {
        if (IS("e") || IS("escape") || IS("forceescape")) {
            if (v.t == JT_STR && (v.fl & JF_SAFE) && !IS("forceescape")) { *out = v; return X_OK; }
            if (html_escape(C, n, v, out)) return X_ERR;
            out->fl = JF_SAFE;
            return X_OK;
        }
        jv s;
        NEED(to_str(C, v, &s));
        if (IS("string")) { *out = s; return X_OK; }
        if (IS("safe")) { *out = s; out->fl = JF_SAFE; return X_OK; }
        if (IS("trim")) {
            jv ch = jv_none();
            arg_get(A, 0, "chars", &ch);
            if (ch.t == JT_STR) *out = py_strip(s, ch.u.s.p, ch.u.s.n, true, true);
            else *out = py_strip(s, NULL, 0, true, true);
            return X_OK;
        }
        if (IS("upper") || IS("lower")) { char *p = map_ascii(C, s.u.s.p, s.u.s.n, f[0] == 'u'); NEED(p); *out = jv_strn(p, s.u.s.n); return X_OK; }
        if (IS("capitalize")) {
            args none = {0};
            return call_method(C, n, s, "capitalize", &none, out);
        }
        if (IS("title")) {
            /* Jinja: words split at runs of [-\s({[<], first char upper, rest lower */
            char *p = map_ascii(C, s.u.s.p, s.u.s.n, 0);
            NEED(p);
            bool start = true;
            size_t i = 0, l;
            while (i < s.u.s.n) {
                uint32_t c = ju_decode((const unsigned char *)s.u.s.p + i, s.u.s.n - i, &l);
                bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || ju_isspace(c);
                if (start && !sep && p[i] >= 'a' && p[i] <= 'z') p[i] = (char)(p[i] - 32);
                start = sep;
                i += l;
            }
            *out = jv_strn(p, s.u.s.n);
            return X_OK;
        }
        if (IS("wordcount")) {
            int64_t cnt = 0;
            bool in = false;
            size_t i = 0, l;
            while (i < s.u.s.n) {
                uint32_t c = ju_decode((const unsigned char *)s.u.s.p + i, s.u.s.n - i, &l);
                bool w = (c >= '0' && c <= '9') || c == '_' || is_alpha_cp(c);
                if (w && !in) cnt++;
                in = w;
                i += l;
            }
            *out = jv_int(cnt);
            return X_OK;
        }
        if (IS("center")) {
            jv w = jv_int(80);
            arg_get(A, 0, "width", &w);
            int64_t wi;
            if (need_int(C, n, w, &wi, "center")) return X_ERR;
            return pad_str(C, n, s, wi, " ", 1, 0, out);
        }
        if (IS("replace")) {
            jv old, nw, cnt = jv_none();
            if (!arg_get(A, 0, "old", &old) || !arg_get(A, 1, "new", &nw)) return fail(C, n, "TypeError", "replace() needs old and new");
            arg_get(A, 2, "count", &cnt);
            if (need_str(C, n, old, "replace() argument 1")) return X_ERR;
            jv ns;
            NEED(to_str(C, nw, &ns));
            int64_t c = -1;
            if (cnt.t != JT_NONE && need_int(C, n, cnt, &c, "count")) return X_ERR;
            return str_replace(C, n, s, old, ns, c, out);
        }
        if (IS("indent")) {
            jv w = jv_int(4), first = jv_bool(false), blank = jv_bool(false);
            arg_get(A, 0, "width", &w);
            arg_get(A, 1, "first", &first);
            arg_get(A, 2, "blank", &blank);
            jv ind;
            if (w.t == JT_STR) ind = w;
            else {
                int64_t wi;
                if (need_int(C, n, w, &wi, "indent")) return X_ERR;
                if (wi > 1000) return fail(C, n, "ValueError", "indent too large (unsupported)");
                char *sp = ja_alloc(C->a, (size_t)(wi > 0 ? wi : 0) + 1);
                NEED(sp);
                for (int64_t i = 0; i < wi; i++) sp[i] = ' ';
                ind = jv_strn(sp, (size_t)(wi > 0 ? wi : 0));
            }
            jbuf sb = { C->a, NULL, 0, 0 };
            NEED(jb_put(&sb, s.u.s.p, s.u.s.n) && jb_putc(&sb, '\n'));
            jlist *lines;
            if (py_splitlines(C, n, jv_strn(sb.p, sb.n), false, &lines)) return X_ERR;
            jbuf b = { C->a, NULL, 0, 0 };
            if (jv_truthy(first)) NEED(jb_put(&b, ind.u.s.p, ind.u.s.n));
            for (size_t i = 0; i < lines->n; i++) {
                jv ln = lines->v[i];
                if (i) {
                    NEED(jb_putc(&b, '\n'));
                    if (jv_truthy(blank) || ln.u.s.n) NEED(jb_put(&b, ind.u.s.p, ind.u.s.n));
                }
                NEED(jb_put(&b, ln.u.s.p, ln.u.s.n));
            }
            *out = jv_strn(b.p ? b.p : "", b.n);
            return X_OK;
        }
        if (IS("format")) {
            jlist *l = jl_new(C->a, (size_t)A->npos);
            NEED(l);
            for (int i = 0; i < A->npos; i++) l->v[l->n++] = A->pos[i];
            return percent_format(C, n, s, jv_list(l, JF_TUPLE), out);
        }
    }
    if (IS("items")) {
        if (v.t == JT_UNDEF) { jlist *l = jl_new(C->a, 0); NEED(l); *out = jv_list(l, JF_GEN); return X_OK; }
        if (v.t != JT_DICT) return fail(C, n, "TypeError", "Can only get item pairs from a mapping.");
        args none = {0};
        if (call_method(C, n, v, "items", &none, out)) return X_ERR;
        out->fl = JF_GEN;
        return X_OK;
    }
    if (IS("list")) {
        jlist *l;
        if (iterate(C, n, v, &l)) return X_ERR;
        jlist *c = jl_new(C->a, l->n);
        NEED(c);
        for (size_t i = 0; i < l->n; i++) c->v[c->n++] = l->v[i];
        *out = jv_list(c, 0);
        return X_OK;
    }
    if (IS("join")) {
        jv d = jv_strn("", 0), attr = jv_none();
        arg_get(A, 0, "d", &d);
        arg_get(A, 1, "attribute", &attr);
        jlist *l;
        if (iterate(C, n, v, &l)) return X_ERR;
        jv ds;
        NEED(to_str(C, d, &ds));
        jbuf b = { C->a, NULL, 0, 0 };
        for (size_t i = 0; i < l->n; i++) {
            jv x = l->v[i];
            if (attr.t != JT_NONE && attr_path(C, n, x, attr, &x)) return X_ERR;
            if (i) NEED(jb_put(&b, ds.u.s.p, ds.u.s.n));
            NEED(jv_str(&b, x));
            if (step(C, n)) return X_ERR;
        }
        *out = jv_strn(b.p ? b.p : "", b.n);
        return X_OK;
    }
    if (IS("first") || IS("last")) {
        jlist *l;
        if (iterate(C, n, v, &l)) return X_ERR;
        if (f[0] == 'l' && (v.fl & JF_GEN)) return fail(C, n, "TypeError", "'generator' object is not reversible");
        if (l->n == 0) { *out = jv_undef(f[0] == 'f' ? "No first item, sequence was empty." : "No last item, sequence was empty."); return X_OK; }
        *out = l->v[f[0] == 'f' ? 0 : l->n - 1];
        return X_OK;
    }
    if (IS("reverse")) {
        if (v.t == JT_STR) return do_slice(C, n, v, jv_none(), jv_none(), jv_int(-1), out);
        jlist *l;
        if (iterate(C, n, v, &l)) return X_ERR;
        jlist *r = jl_new(C->a, l->n);
        NEED(r);
        for (size_t i = l->n; i-- > 0;) r->v[r->n++] = l->v[i];
        *out = jv_list(r, (v.fl & JF_GEN) ? 0 : JF_GEN);
        return X_OK;
    }
    if (IS("int")) {
        jv dflt = jv_int(0), base = jv_int(10);
        arg_get(A, 0, "default", &dflt);
        arg_get(A, 1, "base", &base);
        int64_t b;
        if (need_int(C, n, base, &b, "base")) return X_ERR;
        if (b < 2 || b > 36) b = 10;
        return to_int_filter(C, n, v, dflt, b, out);
    }
    if (IS("float")) {
        jv dflt = jv_float(0);
        arg_get(A, 0, "default", &dflt);
        if (jv_is_num(v)) { *out = jv_float(jv_num(v)); return X_OK; }
        if (v.t == JT_STR) {
            jv s = py_strip(v, NULL, 0, true, true);
            char buf[128];
            if (s.u.s.n && s.u.s.n < sizeof buf) {
                memcpy(buf, s.u.s.p, s.u.s.n);
                buf[s.u.s.n] = 0;
                char *end;
                double d = strtod(buf, &end);
                if (*end == 0 && !(buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))) { *out = jv_float(d); return X_OK; }
            }
        }
        *out = dflt;
        return X_OK;
    }
    if (IS("abs")) {
        if (v.t == JT_INT) { if (v.u.i == INT64_MIN) return fail(C, n, "OverflowError", "integer result outside the 64-bit range (unsupported)"); *out = jv_int(v.u.i < 0 ? -v.u.i : v.u.i); return X_OK; }
        if (v.t == JT_BOOL) { *out = jv_int(v.u.b); return X_OK; }
        if (v.t == JT_FLOAT) { *out = jv_float(fabs(v.u.f)); return X_OK; }
        if (v.t == JT_UNDEF) return undef_err(C, n, v);
        return fail(C, n, "TypeError", "bad operand type for abs(): '%s'", jv_type_name(v));
    }
    if (IS("round")) {
        jv prec = jv_int(0), meth = jv_strn("common", 6);
        arg_get(A, 0, "precision", &prec);
        arg_get(A, 1, "method", &meth);
        int64_t p;
        if (need_int(C, n, prec, &p, "precision")) return X_ERR;
        if (need_str(C, n, meth, "method")) return X_ERR;
        if (!jv_is_num(v)) { if (v.t == JT_UNDEF) return undef_err(C, n, v); return fail(C, n, "TypeError", "type %s doesn't define __round__ method", jv_type_name(v)); }
        bool common = meth.u.s.n == 6 && !memcmp(meth.u.s.p, "common", 6);
        bool floor_ = meth.u.s.n == 5 && !memcmp(meth.u.s.p, "floor", 5);
        bool ceil_ = meth.u.s.n == 4 && !memcmp(meth.u.s.p, "ceil", 4);
        if (!common && !floor_ && !ceil_) return fail(C, n, "FilterArgumentError", "method must be common, ceil or floor");
        if (common && v.t != JT_FLOAT && p >= 0) { *out = v.t == JT_BOOL ? jv_int(v.u.b) : v; return X_OK; }
        double x = jv_num(v);
        if (p > 300) p = 300;
        if (p < -300) p = -300;
        if (common) {
            if (p >= 0) {
                char buf[512];
                snprintf(buf, sizeof buf, "%.*f", (int)p, x);
                *out = jv_float(strtod(buf, NULL));
            } else {
                double m = pow(10.0, (double)-p);
                *out = jv_float(nearbyint(x / m) * m);
            }
        } else {
            double m = pow(10.0, (double)p);
            *out = jv_float((floor_ ? floor(x * m) : ceil(x * m)) / m);
        }
        return X_OK;
    }
    if (IS("map")) {
        jlist *l;
        if (!jv_truthy(v) && !(v.fl & JF_UNSAFE)) v = jv_undef(NULL); /* Jinja: "if value:" */
        if (iterate(C, n, v, &l)) return X_ERR;
        jlist *r = jl_new(C->a, l->n);
        NEED(r);
        jv attr, dflt = jv_undef(NULL);
        bool has_attr = arg_get(A, -1, "attribute", &attr);
        bool has_dflt = arg_get(A, -1, "default", &dflt);
        const char *fname = NULL;
        if (!has_attr) {
            if (A->npos < 1) return fail(C, n, "FilterArgumentError", "map requires a filter argument");
            if (need_str(C, n, a0, "filter name")) return X_ERR;
            fname = ja_strndup(C->a, a0.u.s.p, a0.u.s.n);
            NEED(fname);
        }
        args FA = { A->npos ? A->pos + 1 : NULL, A->npos ? A->npos - 1 : 0, A->kwn, A->kwv, A->nkw };
        for (size_t i = 0; i < l->n; i++) {
            jv x;
            if (has_attr) {
                if (attr_path(C, n, l->v[i], attr, &x)) return X_ERR;
                if (x.t == JT_UNDEF && has_dflt) x = dflt;
            } else if (apply_filter(C, n, fname, l->v[i], &FA, &x)) return X_ERR;
            r->v[r->n++] = x;
            if (step(C, n)) return X_ERR;
        }
        *out = jv_list(r, JF_GEN);
        return X_OK;
    }
    if (IS("select")) return select_common(C, n, v, A, false, true, out);
    if (IS("reject")) return select_common(C, n, v, A, false, false, out);
    if (IS("selectattr")) return select_common(C, n, v, A, true, true, out);
    if (IS("rejectattr")) return select_common(C, n, v, A, true, false, out);
    if (IS("sort") || IS("unique") || IS("max") || IS("min") || IS("dictsort")) {
        jv rev = jv_bool(false), cs = jv_bool(false), attr = jv_none();
        jlist *l;
        if (IS("dictsort")) {
            jv by = jv_strn("key", 3);
            arg_get(A, 0, "case_sensitive", &cs);
            arg_get(A, 1, "by", &by);
            arg_get(A, 2, "reverse", &rev);
            if (v.t != JT_DICT) return fail(C, n, "TypeError", "dictsort needs a mapping");
            jv items;
            args none = {0};
            if (call_method(C, n, v, "items", &none, &items)) return X_ERR;
            bool byval = by.t == JT_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5);
            if (sort_list(C, n, items.u.l, jv_int(byval ? 1 : 0), jv_truthy(cs), jv_truthy(rev), &l)) return X_ERR;
            *out = jv_list(l, 0);
            return X_OK;
        }
        if (iterate(C, n, v, &l)) return X_ERR;
        if (IS("sort")) {
            arg_get(A, 0, "reverse", &rev);
            arg_get(A, 1, "case_sensitive", &cs);
            arg_get(A, 2, "attribute", &attr);
            jlist *r;
            if (sort_list(C, n, l, attr, jv_truthy(cs), jv_truthy(rev), &r)) return X_ERR;
            *out = jv_list(r, 0);
            return X_OK;
        }
        arg_get(A, 0, "case_sensitive", &cs);
        arg_get(A, 1, "attribute", &attr);
        if (IS("unique")) {
            jlist *r = jl_new(C->a, 0);
            jlist *seen = jl_new(C->a, 0);
            NEED(r && seen);
            for (size_t i = 0; i < l->n; i++) {
                jv k = l->v[i];
                if (attr.t != JT_NONE && attr_path(C, n, k, attr, &k)) return X_ERR;
                k = fold(C, k, jv_truthy(cs));
                bool dup = false;
                for (size_t j = 0; j < seen->n && !dup; j++) dup = jv_eq(seen->v[j], k);
                if (!dup) { NEED(jl_push(C->a, seen, k) && jl_push(C->a, r, l->v[i])); }
                if (step(C, n)) return X_ERR;
            }
            *out = jv_list(r, JF_GEN);
            return X_OK;
        }
        if (l->n == 0) { *out = jv_undef(IS("max") ? "No aggregated item, sequence was empty." : "No aggregated item, sequence was empty."); return X_OK; }
        size_t best = 0;
        jv bk = l->v[0];
        if (attr.t != JT_NONE && attr_path(C, n, bk, attr, &bk)) return X_ERR;
        bk = fold(C, bk, jv_truthy(cs));
        for (size_t i = 1; i < l->n; i++) {
            jv k = l->v[i];
            if (attr.t != JT_NONE && attr_path(C, n, k, attr, &k)) return X_ERR;
            k = fold(C, k, jv_truthy(cs));
            int c;
            if (cmp3(C, n, k, bk, "<", &c)) return X_ERR;
            if (IS("max") ? c == 1 : c == -1) { best = i; bk = k; }
        }
        *out = l->v[best];
        return X_OK;
    }
    if (IS("sum")) {
        jv attr = jv_none(), start = jv_int(0);
        arg_get(A, 0, "attribute", &attr);
        arg_get(A, 1, "start", &start);
        jlist *l;
        if (iterate(C, n, v, &l)) return X_ERR;
        jv acc = start;
        for (size_t i = 0; i < l->n; i++) {
            jv x = l->v[i];
            if (attr.t != JT_NONE && attr_path(C, n, x, attr, &x)) return X_ERR;
            if (arith(C, n, OP_ADD, acc, x, &acc)) return X_ERR;
        }
        *out = acc;
        return X_OK;
    }
    if (IS("attr")) {
        if (need_str(C, n, a0, "attribute name")) return X_ERR;
        char *nm = ja_strndup(C->a, a0.u.s.p, a0.u.s.n);
        NEED(nm);
        if (v.t == JT_DICT) {
            /* attr() is getattr only: dict keys are not attributes */
            if (!strcmp(nm, "items") || !strcmp(nm, "keys") || !strcmp(nm, "values") || !strcmp(nm, "get")) return get_attr(C, n, v, nm, out);
            *out = jv_undef(hintf(C, "'dict object' has no attribute '%s'", nm));
            return X_OK;
        }
        return get_attr(C, n, v, nm, out);
    }
    if (IS("batch")) {
        jv cnt, fill = jv_none();
        if (!arg_get(A, 0, "linecount", &cnt)) return fail(C, n, "TypeError", "batch() needs linecount");
        bool has_fill = arg_get(A, 1, "fill_with", &fill);
        int64_t k;
        if (need_int(C, n, cnt, &k, "linecount")) return X_ERR;
        if (k <= 0) return fail(C, n, "ValueError", "batch size must be positive");
        jlist *l;
        if (iterate(C, n, v, &l)) return X_ERR;
        jlist *r = jl_new(C->a, 0), *cur = NULL;
        NEED(r);
        for (size_t i = 0; i < l->n; i++) {
            if (!cur || cur->n == (size_t)k) { cur = jl_new(C->a, 0); NEED(cur); NEED(jl_push(C->a, r, jv_list(cur, 0))); }
            NEED(jl_push(C->a, cur, l->v[i]));
        }
        if (cur && has_fill && fill.t != JT_NONE) while (cur->n < (size_t)k) NEED(jl_push(C->a, cur, fill));
        *out = jv_list(r, JF_GEN);
        return X_OK;
    }
    if (IS("pprint")) {
        jbuf b = { C->a, NULL, 0, 0 };
        NEED(jv_repr(&b, v));
        *out = jv_strn(b.p ? b.p : "", b.n);
        return X_OK;
    }
#undef IS
    for (int i = 0; KNOWN_FILTERS[i]; i++) (void)0;
    return fail(C, n, "TemplateAssertionError", "No filter named '%s'.", f);
}

/* ---------------------------------------------------------------- tests */

static int apply_test(ctx *C, const jnode *n, const char *t, jv v, args *A, bool *out) {
    jv a0 = A->npos > 0 ? A->pos[0] : jv_undef("missing test argument");
#define IS(x) (strcmp(t, x) == 0)
    if (IS("defined")) { *out = v.t != JT_UNDEF; return X_OK; }
    if (IS("undefined")) { *out = v.t == JT_UNDEF; return X_OK; }
    if (IS("none")) { *out = v.t == JT_NONE; return X_OK; }
    if (IS("boolean")) { *out = v.t == JT_BOOL; return X_OK; }
    if (IS("false")) { *out = v.t == JT_BOOL && !v.u.b; return X_OK; }
    if (IS("true")) { *out = v.t == JT_BOOL && v.u.b; return X_OK; }
    if (IS("integer")) { *out = v.t == JT_INT; return X_OK; }
    if (IS("float")) { *out = v.t == JT_FLOAT; return X_OK; }
    if (IS("number")) { *out = jv_is_num(v); return X_OK; }
    if (IS("string")) { *out = v.t == JT_STR; return X_OK; }
    if (IS("mapping")) { *out = v.t == JT_DICT; return X_OK; }
    if (IS("iterable")) { *out = v.t == JT_STR || v.t == JT_LIST || v.t == JT_DICT || v.t == JT_UNDEF || v.t == JT_LOOP; return X_OK; }
    if (IS("sequence")) { *out = v.t == JT_STR || (v.t == JT_LIST && !(v.fl & JF_GEN)) || v.t == JT_DICT || v.t == JT_UNDEF; return X_OK; }
    if (IS("callable")) { *out = v.t == JT_FUNC || (v.t == JT_UNDEF && false); return X_OK; }
    if (IS("escaped")) { *out = false; return X_OK; }
    if (IS("sameas")) {
        if (v.t != a0.t) { *out = false; return X_OK; }
        switch (v.t) {
        case JT_NONE: case JT_UNDEF: *out = v.t == JT_NONE; break;
        case JT_BOOL: *out = v.u.b == a0.u.b; break;
        case JT_INT: *out = v.u.i == a0.u.i && v.u.i >= -5 && v.u.i <= 256; break;
        case JT_STR: *out = v.u.s.p == a0.u.s.p && v.u.s.n == a0.u.s.n; break;
        case JT_LIST: *out = v.u.l == a0.u.l; break;
        case JT_DICT: case JT_NS: *out = v.u.d == a0.u.d; break;
        default: *out = jv_eq(v, a0);
        }
        return X_OK;
    }
    if (IS("odd") || IS("even") || IS("divisibleby")) {
        int64_t x, d = 2;
        if (v.t == JT_FLOAT || a0.t == JT_FLOAT) {
            double fx = jv_num(v), fd = IS("divisibleby") ? jv_num(a0) : 2;
            if (!jv_is_num(v) || (IS("divisibleby") && !jv_is_num(a0))) return fail(C, n, "TypeError", "unsupported operand type(s) for %%");
            if (fd == 0) return fail(C, n, "ZeroDivisionError", "float modulo");
            double m = fmod(fx, fd);
            *out = IS("odd") ? fabs(m) == 1 : m == 0;
            return X_OK;
        }
        if (need_int(C, n, v, &x, t)) return X_ERR;
        if (IS("divisibleby") && need_int(C, n, a0, &d, t)) return X_ERR;
        if (d == 0) return fail(C, n, "ZeroDivisionError", "integer division or modulo by zero");
        int64_t m = d == -1 ? 0 : mod64(x, d);
        *out = IS("odd") ? m == 1 : m == 0;
        return X_OK;
    }
    if (IS("eq") || IS("equalto") || IS("==")) { *out = jv_eq(v, a0); return X_OK; }
    if (IS("ne") || IS("!=")) { *out = !jv_eq(v, a0); return X_OK; }
    if (IS("lt") || IS("lessthan") || IS("<") || IS("le") || IS("<=") || IS("gt") || IS("greaterthan") || IS(">") || IS("ge") || IS(">=")) {
        int c;
        if (cmp3(C, n, v, a0, "<", &c)) return X_ERR;
        bool lt = IS("lt") || IS("lessthan") || IS("<"), le = IS("le") || IS("<="), gt = IS("gt") || IS("greaterthan") || IS(">");
        *out = c != 2 && (lt ? c < 0 : le ? c <= 0 : gt ? c > 0 : c >= 0);
        return X_OK;
    }
    if (IS("in")) return py_in(C, n, v, a0, out);
    if (IS("lower") || IS("upper")) {
        jv s, r;
        NEED(to_str(C, v, &s));
        args none = {0};
        if (call_method(C, n, s, IS("lower") ? "islower" : "isupper", &none, &r)) return X_ERR;
        *out = r.u.b;
        return X_OK;
    }
    if (IS("filter") || IS("test")) {
        if (v.t != JT_STR) { *out = false; return X_OK; }
        char *nm = ja_strndup(C->a, v.u.s.p, v.u.s.n);
        NEED(nm);
        static const char *const tests[] = { "defined", "undefined", "none", "boolean", "false", "true", "integer", "float",
            "number", "string", "mapping", "iterable", "sequence", "callable", "escaped", "sameas", "odd", "even",
            "divisibleby", "eq", "equalto", "ne", "lt", "lessthan", "le", "gt", "greaterthan", "ge", "in", "lower",
            "upper", "filter", "test", "==", "!=", "<", "<=", ">", ">=", NULL };
        const char *const *list = IS("filter") ? KNOWN_FILTERS : tests;
        *out = false;
        for (int i = 0; list[i]; i++) if (!strcmp(list[i], nm)) *out = true;
        return X_OK;
    }
#undef IS
    return fail(C, n, "TemplateAssertionError", "No test named '%s'.", t);
}

/* ---------------------------------------------------------------- statements */

static int assign(ctx *C, const jnode *n, const jnode *target, jv v) {
    if (target->k == N_NAME) { NEED(frame_set(C, C->fr, target->s, v)); return X_OK; }
    if (target->k == N_GETATTR) {
        jv *ns = lookup(C->fr, target->a->s);
        if (!ns || ns->t != JT_NS) return fail(C, n, "TemplateRuntimeError", "cannot assign attribute on non-namespace object");
        NEED(jd_set(C->a, ns->u.d, jv_strn(target->s, strlen(target->s)), v));
        return X_OK;
    }
    /* tuple unpacking */
    jlist *l;
    if (iterate(C, n, v, &l)) return X_ERR;
    if (l->n != (size_t)target->nx)
        return fail(C, n, "ValueError", l->n > (size_t)target->nx ? "too many values to unpack (expected %d)" : "not enough values to unpack (expected %d)", target->nx);
    for (int i = 0; i < target->nx; i++) if (assign(C, n, target->xs[i], l->v[i])) return X_ERR;
    return X_OK;
}

static int capture(ctx *C, jnode **xs, int nx, jv *out) {
    jbuf buf = { C->a, NULL, 0, 0 }, *saved = C->out;
    C->out = &buf;
    int rc = exec_body(C, xs, nx);
    C->out = saved;
    if (rc == X_ERR) return rc;
    *out = jv_strn(buf.p ? buf.p : "", buf.n);
    return rc;
}

static void capture_frames(jframe *f) {
    for (; f && !f->captured; f = f->parent) f->captured = true;
}

static int exec_node(ctx *C, const jnode *n) {
    if (step(C, n)) return X_ERR;
    jv v;
    switch (n->k) {
    case S_DATA:
        NEED(jb_put(C->out, n->val.u.s.p, n->val.u.s.n));
        return X_OK;
    case S_OUT:
        if (ev(C, n->a, &v)) return X_ERR;
        NEED(jv_str(C->out, v));
        return X_OK;
    case S_IF:
        if (ev(C, n->a, &v)) return X_ERR;
        return jv_truthy(v) ? exec_body(C, n->xs, n->nx) : exec_body(C, n->ys, n->ny);
    case S_FOR: {
        if (ev(C, n->b, &v)) return X_ERR;
        jlist *items;
        if (iterate(C, n, v, &items)) return X_ERR;
        jframe *outer = C->fr;
        if (n->c) {
            jlist *kept = jl_new(C->a, 0);
            NEED(kept);
            for (size_t i = 0; i < items->n; i++) {
                C->fr = frame_new(C, outer);
                NEED(C->fr);
                jv ok;
                if (assign(C, n, n->a, items->v[i]) || ev(C, n->c, &ok)) { C->fr = outer; return X_ERR; }
                C->fr = outer;
                if (jv_truthy(ok)) NEED(jl_push(C->a, kept, items->v[i]));
            }
            items = kept;
        }
        if (items->n == 0) {
            C->fr = frame_new(C, outer);
            NEED(C->fr);
            int rc = exec_body(C, n->ys, n->ny);
            C->fr = outer;
            return rc == X_ERR ? X_ERR : X_OK;
        }
        jloop *L = ja_alloc(C->a, sizeof *L);
        NEED(L);
        L->items = items;
        L->length = items->n;
        jv lv = {0};
        lv.t = JT_LOOP;
        lv.u.loop = L;
        jframe *it = NULL;
        for (size_t i = 0; i < items->n; i++) {
            L->index0 = i;
            /* a fresh scope per iteration; reuse the last one unless captured */
            if (it && !it->captured) it->n = 0;
            else { it = frame_new(C, outer); NEED(it); }
            C->fr = it;
            if (step(C, n)) { C->fr = outer; return X_ERR; }
            if (assign(C, n, n->a, items->v[i])) { C->fr = outer; return X_ERR; }
            NEED(frame_set(C, C->fr, "loop", lv));
            int rc = exec_body(C, n->xs, n->nx);
            C->fr = outer;
            if (rc == X_ERR) return X_ERR;
            if (rc == X_BREAK) break;
        }
        return X_OK;
    }
    case S_SET:
        if (ev(C, n->b, &v)) return X_ERR;
        return assign(C, n, n->a, v);
    case S_SETBLOCK: {
        int rc = capture(C, n->xs, n->nx, &v);
        if (rc == X_ERR) return rc;
        if (n->c) {
            jv saved = C->hole;
            C->hole = v;
            rc = ev(C, n->c, &v);
            C->hole = saved;
            if (rc) return rc;
        }
        return assign(C, n, n->a, v);
    }
    case S_FILTERBLOCK: {
        int rc = capture(C, n->xs, n->nx, &v);
        if (rc == X_ERR) return rc;
        jv saved = C->hole;
        C->hole = v;
        rc = ev(C, n->c, &v);
        C->hole = saved;
        if (rc) return rc;
        NEED(jv_str(C->out, v));
        return X_OK;
    }
    case S_MACRO: {
        jfunc *f = ja_alloc(C->a, sizeof *f);
        NEED(f);
        f->kind = F_MACRO;
        f->node = n;
        f->closure = C->fr;
        capture_frames(C->fr);
        f->name = n->s;
        jv fv = {0};
        fv.t = JT_FUNC;
        fv.u.fn = f;
        NEED(frame_set(C, C->fr, n->s, fv));
        return X_OK;
    }
    case S_CALLBLOCK: {
        jfunc *cf = ja_alloc(C->a, sizeof *cf);
        NEED(cf);
        cf->kind = F_CALLER;
        cf->node = n;
        cf->closure = C->fr;
        capture_frames(C->fr);
        cf->name = "caller";
        jv callerv = {0};
        callerv.t = JT_FUNC;
        callerv.u.fn = cf;
        const jnode *call = n->a;
        jv f;
        args A;
        if (ev(C, call->a, &f) || eval_args(C, call, &A)) return X_ERR;
        if (f.t == JT_FUNC && f.u.fn->kind == F_MACRO) {
            if (call_macro(C, call, f.u.fn, &A, callerv, &v)) return X_ERR;
        } else if (call_value(C, call, f, &A, &v)) return X_ERR;
        NEED(jv_str(C->out, v));
        return X_OK;
    }
    case S_WITH: {
        jframe *outer = C->fr, *fr = frame_new(C, outer);
        NEED(fr);
        for (int i = 0; i < n->ny; i++) {
            if (ev(C, n->ys[i], &v)) return X_ERR;
            NEED(frame_set(C, fr, n->names[i], v));
        }
        C->fr = fr;
        int rc = exec_body(C, n->xs, n->nx);
        C->fr = outer;
        return rc;
    }
    case S_BLOCK: return exec_body(C, n->xs, n->nx);
    case S_BREAK: return X_BREAK;
    case S_CONTINUE: return X_CONTINUE;
    }
    return fail(C, n, "TemplateError", "internal: unexpected statement %d", n->k);
}

static int exec_body(ctx *C, jnode **xs, int nx) {
    for (int i = 0; i < nx; i++) {
        int rc = exec_node(C, xs[i]);
        if (rc) return rc;
    }
    return X_OK;
}

/* ---------------------------------------------------------------- entry */

static jv from_json(ctx *C, const json_t *j, int depth) {
    if (depth > 1000) return jv_undef("JSON input nested too deeply");
    switch (json_typeof(j)) {
    case JSON_NULL: return jv_none();
    case JSON_TRUE: return jv_bool(true);
    case JSON_FALSE: return jv_bool(false);
    case JSON_INTEGER: return jv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_STRING: return jv_strn(json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        jlist *l = jl_new(C->a, json_array_size(j));
        if (!l) return jv_undef(NULL);
        for (size_t i = 0; i < json_array_size(j); i++) l->v[l->n++] = from_json(C, json_array_get(j, i), depth + 1);
        return jv_list(l, 0);
    }
    case JSON_OBJECT: {
        jdict *d = jd_new(C->a, json_object_size(j));
        if (!d) return jv_undef(NULL);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            d->k[d->n] = jv_strn(k, strlen(k));
            d->v[d->n++] = from_json(C, v, depth + 1);
        }
        return jv_dict(d);
    }
    }
    return jv_none();
}

int rl_jinja_render(const rl_jinja_tmpl *t, const json_t *vars, const rl_jinja_opts *opts,
                    char **out, size_t *out_len, rl_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    rl_jinja_opts o = opts ? *opts : (rl_jinja_opts){ 0, 0, 0, -1 };
    jarena a = {0};
    a.limit = o.max_memory ? o.max_memory : (size_t)256 << 20;
    ctx C = {0};
    C.a = &a;
    C.err = err;
    C.max_steps = o.max_steps ? o.max_steps : 10000000;
    C.max_depth = o.max_depth ? o.max_depth * 4 : 1024;
    C.now = o.now;
    jframe *g = frame_new(&C, NULL);
    jbuf buf = { &a, NULL, 0, 0 };
    C.out = &buf;
    int rc = X_ERR;
    if (!g) goto oom;
    static const struct { const char *name; int b; } builtins[] = {
        { "range", B_RANGE }, { "namespace", B_NAMESPACE }, { "dict", B_DICT },
        { "raise_exception", B_RAISE }, { "strftime_now", B_STRFTIME } };
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        jfunc *f = ja_alloc(&a, sizeof *f);
        if (!f) goto oom;
        f->kind = F_BUILTIN;
        f->builtin = builtins[i].b;
        f->name = builtins[i].name;
        jv fv = {0};
        fv.t = JT_FUNC;
        fv.u.fn = f;
        if (!frame_set(&C, g, builtins[i].name, fv)) goto oom;
    }
    if (vars && json_is_object(vars)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)vars, k, v) {
            jv x = from_json(&C, v, 0);
            if (a.over || !frame_set(&C, g, k, x)) goto oom;
        }
    }
    C.fr = frame_new(&C, g);
    if (!C.fr) goto oom;
    rc = exec_body(&C, t->root->xs, t->root->nx);
    if (rc == X_ERR) goto done;
    rc = X_OK;
    *out = malloc(buf.n + 1);
    if (!*out) goto oom;
    if (buf.n) memcpy(*out, buf.p, buf.n);
    (*out)[buf.n] = 0;
    if (out_len) *out_len = buf.n;
    goto done;
oom:
    rc = X_ERR;
    if (!C.failed) { C.failed = true; rl_errf(err, RL_E_CAPACITY, "template render exceeded its memory budget"); }
done:
    ja_free_all(&a);
    if (rc == X_OK) return RL_OK;
    return err ? (err->code ? err->code : RL_E_FORMAT) : RL_E_FORMAT;
}

char *rl_jinja_json_dumps(const json_t *v, size_t *len) {
    jarena a = {0};
    a.limit = (size_t)1 << 30;
    ctx C = {0};
    C.a = &a;
    jbuf b = { &a, NULL, 0, 0 };
    jjson_opts o = { false, false, NULL, ", ", ": " };
    char *res = NULL;
    jv x = from_json(&C, v, 0);
    if (!a.over && !jv_tojson(&b, x, &o, 0)) {
        res = malloc(b.n + 1);
        if (res) {
            if (b.n) memcpy(res, b.p, b.n);
            res[b.n] = 0;
            if (len) *len = b.n;
        }
    }
    ja_free_all(&a);
    return res;
}
