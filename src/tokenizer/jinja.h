/* A Jinja2 subset interpreter for Hugging Face chat templates.
 *
 * It renders templates the way transformers does (Jinja2's
 * ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the
 * loopcontrols extension; globals raise_exception, strftime_now, range,
 * namespace, dict; transformers' tojson filter) and aims at byte-for-byte
 * equal output, Python value semantics included (str() of floats, lists and
 * dicts, int/float arithmetic, Undefined).
 *
 * Not supported, refused at parse time with an error naming line and column:
 * extends, block, include, import, from, recursive for loops, star-args and double-star-kwargs at
 * call sites, line statements. Known deviations: upper/lower/title/capitalize
 * change only ASCII letters; str.format knows only {} {0} {name} without
 * format specs; '%' string formatting knows %s %d %i %r %f %%.
 *
 * A render is bounded: a step budget (expression/statement evaluations and
 * loop iterations), a call/expression depth budget, and a memory budget;
 * exceeding one is an error, never a hang or a crash. */
#ifndef RL_TOKENIZER_JINJA_H
#define RL_TOKENIZER_JINJA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct rl_jinja_tmpl rl_jinja_tmpl;

typedef struct rl_jinja_opts {
    uint64_t max_steps;  /* 0: 10,000,000 */
    int max_depth;       /* 0: 256 (macro calls + nested expressions / 4) */
    size_t max_memory;   /* 0: 256 MiB of values and output */
    int64_t now;         /* strftime_now's clock, Unix seconds (UTC); <0: time() local */
} rl_jinja_opts;

/* Parses template text (need not be NUL-terminated). On failure *out is NULL
 * and err says "line L, column C: ...". */
int rl_jinja_parse(const char *src, size_t len, rl_jinja_tmpl **out, rl_err *err);
void rl_jinja_free(rl_jinja_tmpl *t);

/* Renders with the variables of the JSON object vars (may be NULL). The
 * result is malloc'd, NUL-terminated, its length in *out_len. Errors (also
 * raise_exception) name line and column; raise_exception's message is
 * "line L, column C: TemplateError: <message>" with code RL_E_ARG; other runtime
 * errors carry the Python exception name, e.g. "UndefinedError: ...". */
int rl_jinja_render(const rl_jinja_tmpl *t, const json_t *vars, const rl_jinja_opts *opts,
                    char **out, size_t *out_len, rl_err *err);

/* json.dumps(v, ensure_ascii=False) as Python writes it (", " and ": "
 * separators, float repr). malloc'd; NULL when out of memory. */
char *rl_jinja_json_dumps(const json_t *v, size_t *len);

#endif
