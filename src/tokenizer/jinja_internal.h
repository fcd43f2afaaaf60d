/* Internals shared by jinja_parse.c, jinja_value.c and jinja_eval.c. */
#ifndef RL_TOKENIZER_JINJA_INTERNAL_H
#define RL_TOKENIZER_JINJA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/jinja.h"

/* ---- arena: everything of one template or one render lives in one ---- */
typedef struct ja_chunk {
    struct ja_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} ja_chunk;

typedef struct jarena {
    ja_chunk *head;
    size_t total, limit; /* limit 0: none */
    bool over;           /* an allocation was refused */
} jarena;

void *ja_alloc(jarena *a, size_t n); /* zeroed; NULL when over the limit */
void ja_free_all(jarena *a);
char *ja_strndup(jarena *a, const char *s, size_t n);

/* ---- values (Python semantics) ---- */
enum {
    JT_UNDEF, JT_NONE, JT_BOOL, JT_INT, JT_FLOAT, JT_STR, JT_LIST, JT_DICT,
    JT_NS,    /* namespace(): a mutable dict with attribute access */
    JT_FUNC,  /* macro, global function or bound method */
    JT_LOOP,  /* the loop variable */
};
#define JF_TUPLE 1  /* JT_LIST: a tuple */
#define JF_UNSAFE 2 /* JT_UNDEF: sandbox-refused attribute */
#define JF_SAFE 8   /* JT_STR: markupsafe.Markup (from |safe, |escape): '+' escapes the other side */
#define JF_GEN 4    /* JT_LIST: a Python generator/iterator (map, select, ...): always true, no len(), not JSON */

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jloop jloop;

typedef struct jv {
    uint8_t t, fl;
    union {
        bool b;
        int64_t i;
        double f;
        struct { const char *p; size_t n; } s;
        jlist *l;
        jdict *d;
        jfunc *fn;
        jloop *loop;
        const char *hint; /* JT_UNDEF: the UndefinedError message */
    } u;
} jv;

struct jlist { size_t n, cap; jv *v; };
struct jdict { size_t n, cap; jv *k, *v; };

typedef struct jbuf { jarena *a; char *p; size_t n, cap; } jbuf;
bool jb_put(jbuf *b, const char *s, size_t n);
bool jb_putc(jbuf *b, char c);
bool jb_puts(jbuf *b, const char *s);

static inline jv jv_undef(const char *hint) { jv v = {0}; v.t = JT_UNDEF; v.u.hint = hint; return v; }
static inline jv jv_none(void) { jv v = {0}; v.t = JT_NONE; return v; }
static inline jv jv_bool(bool b) { jv v = {0}; v.t = JT_BOOL; v.u.b = b; return v; }
static inline jv jv_int(int64_t i) { jv v = {0}; v.t = JT_INT; v.u.i = i; return v; }
static inline jv jv_float(double f) { jv v = {0}; v.t = JT_FLOAT; v.u.f = f; return v; }
static inline jv jv_strn(const char *p, size_t n) { jv v = {0}; v.t = JT_STR; v.u.s.p = p; v.u.s.n = n; return v; }

jlist *jl_new(jarena *a, size_t cap);
bool jl_push(jarena *a, jlist *l, jv v);
jdict *jd_new(jarena *a, size_t cap);
bool jd_set(jarena *a, jdict *d, jv k, jv v);
jv *jd_get(const jdict *d, jv k);
jv *jd_gets(const jdict *d, const char *k, size_t n);
static inline jv jv_list(jlist *l, int fl) { jv v = {0}; v.t = JT_LIST; v.fl = (uint8_t)fl; v.u.l = l; return v; }
static inline jv jv_dict(jdict *d) { jv v = {0}; v.t = JT_DICT; v.u.d = d; return v; }

bool jv_truthy(jv v);
bool jv_eq(jv a, jv b);
bool jv_is_num(jv v); /* bool, int or float */
double jv_num(jv v);
const char *jv_type_name(jv v); /* Python's type name: 'str', 'NoneType' ... */

/* str(v) / repr(v) appended to b. false when out of memory. */
bool jv_str(jbuf *b, jv v);
bool jv_repr(jbuf *b, jv v);
/* Python's float repr. */
void jv_fmt_float(char *out, size_t cap, double f);

/* json.dumps(v, ensure_ascii, indent(<0: none; indent_str if set), separators, sort_keys).
 * Returns NULL on success or the TypeError message. */
typedef struct jjson_opts {
    bool ensure_ascii, sort_keys;
    const char *indent; /* NULL: no indentation */
    const char *item_sep, *key_sep;
} jjson_opts;
const char *jv_tojson(jbuf *b, jv v, const jjson_opts *o, int depth);

/* UTF-8 helpers: decode one code point (invalid bytes decode as themselves). */
uint32_t ju_decode(const unsigned char *s, size_t n, size_t *len);
size_t ju_encode(uint32_t cp, char *out);
bool ju_isspace(uint32_t cp);
size_t ju_count(const char *s, size_t n); /* code points */

/* ---- syntax tree ---- */
enum {
    /* expressions */
    N_CONST, N_NAME, N_GETATTR, N_GETITEM, N_SLICE, N_CALL, N_FILTER, N_TEST,
    N_BIN, N_UNARY, N_AND, N_OR, N_COND, N_LIST, N_TUPLE, N_DICT, N_CMP, N_HOLE,
    /* statements */
    S_DATA, S_OUT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_CALLBLOCK,
    S_FILTERBLOCK, S_BREAK, S_CONTINUE, S_WITH, S_BLOCK,
};
/* operators (N_BIN, N_UNARY, N_CMP) */
enum {
    OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_NOT, OP_NEG, OP_POS,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
};

typedef struct jnode jnode;
/* Field use per kind:
 *  N_CONST val | N_NAME s | N_GETATTR a.s | N_GETITEM a[b] | N_SLICE a:b:c
 *  N_CALL a(xs, names=ys) | N_FILTER a|s(xs, names=ys) (a NULL: N_HOLE)
 *  N_TEST a is [not:op] s(xs, names=ys) | N_BIN a op b | N_UNARY op a
 *  N_AND/N_OR a b | N_COND a if b else c | N_LIST/N_TUPLE xs | N_DICT xs:ys
 *  N_CMP a (ops[i] xs[i])...
 *  S_DATA val | S_OUT a | S_IF a: xs else ys | S_FOR a in b if c: xs else ys
 *  S_SET a = b | S_SETBLOCK a (filter c): xs | S_MACRO s(names=ys): xs
 *  S_CALLBLOCK call a, caller(names=ys): xs | S_FILTERBLOCK c: xs
 *  S_WITH names=ys: xs | S_BLOCK xs */
struct jnode {
    uint16_t k, op;
    int line, col;
    jv val;
    const char *s;
    jnode *a, *b, *c;
    jnode **xs, **ys;
    int nx, ny;
    const char **names;
    int *ops;
};

struct rl_jinja_tmpl {
    jarena arena;
    jnode *root; /* S_BLOCK */
};

#endif
