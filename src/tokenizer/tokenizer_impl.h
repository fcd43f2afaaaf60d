/* Internals of the tokenizer module (not for use outside src/tokenizer/). */
#ifndef RL_TOKENIZER_IMPL_H
#define RL_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

/* ---- growable byte buffer ---------------------------------------------- */
typedef struct tk_buf {
    char *p;
    size_t n, cap;
} tk_buf;
bool tk_buf_reserve(tk_buf *b, size_t extra);
bool tk_buf_put(tk_buf *b, const void *s, size_t n);
static inline bool tk_buf_putc(tk_buf *b, char c) { return tk_buf_put(b, &c, 1); }
void tk_buf_free(tk_buf *b);

/* ---- ids vector ---------------------------------------------------------- */
typedef struct tk_ids {
    int32_t *v;
    size_t n, cap;
} tk_ids;
bool tk_ids_push(tk_ids *a, int32_t id);

/* ---- Unicode (tokenizer_unicode.c) --------------------------------------- */
bool tk_is_whitespace(uint32_t c); /* White_Space (Rust char::is_whitespace, regex \s) */
bool tk_is_numeric(uint32_t c);    /* Nd | Nl | No (Rust char::is_numeric) */
bool tk_is_word(uint32_t c);       /* regex \w: Alphabetic | M | Nd | Pc | Join_Control */
bool tk_is_punct(uint32_t c);      /* ASCII punctuation or P* categories */
bool tk_is_combining(uint32_t c);  /* Mn (StripAccents) */
enum { TK_NFC, TK_NFD, TK_NFKC, TK_NFKD };
/* Appends the normalization form of s to out. */
int tk_unicode_normalize(int form, const char *s, size_t n, tk_buf *out, rl_err *e);
/* Appends the full lowercase mapping of s (Rust str::to_lowercase) to out. */
int tk_unicode_lower(const char *s, size_t n, tk_buf *out, rl_err *e);

/* ---- regex (tokenizer_regex.c): Oniguruma syntax run by PCRE2 ------------ */
typedef struct tk_regex {
    pcre2_code *code;
} tk_regex;
/* Compiles an Oniguruma-syntax pattern (as the HF crate gives to onig), or a
 * literal string when literal is set. Errors name the pattern. */
int tk_regex_compile(tk_regex *r, const char *pat, size_t len, bool literal, rl_err *e);
/* The same for a pattern the HF crate gives to the Rust regex crate. */
int tk_regex_compile_rust(tk_regex *r, const char *pat, size_t len, rl_err *e);
void tk_regex_free(tk_regex *r);

/* A split pattern: regex, a char predicate or one char; invert flips. */
enum { TK_PAT_REGEX, TK_PAT_PRED, TK_PAT_CHAR };
typedef struct tk_pattern {
    int kind;
    tk_regex re;
    bool (*pred)(uint32_t);
    uint32_t ch;
    bool invert;
} tk_pattern;
typedef struct tk_match {
    uint32_t s, e;
    bool m; /* is a match */
} tk_match;
typedef struct tk_matches {
    tk_match *v;
    size_t n, cap;
} tk_matches;
/* Per-call scratch for regex matching (PCRE2 match data, JIT stack). */
typedef struct tk_scratch {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
} tk_scratch;
int tk_scratch_init(tk_scratch *s, rl_err *e);
void tk_scratch_free(tk_scratch *s);
/* HF Pattern::find_matches: the pieces of s, in order, covering all of it,
 * each flagged match or not (empty s: one empty non-match). */
int tk_find_matches(const tk_pattern *p, const char *s, size_t n, tk_scratch *sc,
                    tk_matches *out, rl_err *e);
void tk_pattern_free(tk_pattern *p);

/* ---- pieces: spans of an arena during encoding --------------------------- */
typedef struct tk_piece {
    uint32_t off, len; /* in the arena */
    int32_t id;        /* >= 0: an added token, already an id */
    uint32_t zlen;     /* leading bytes aligned to original offset 0 (HF
                          offsets_original().0 == 0 iff zlen > 0; Metaspace "first") */
} tk_piece;
typedef struct tk_pieces {
    tk_piece *v;
    size_t n, cap;
} tk_pieces;
bool tk_pieces_push(tk_pieces *a, tk_piece p);

/* ---- normalizers --------------------------------------------------------- */
enum { TN_SEQ, TN_NFC, TN_NFD, TN_NFKC, TN_NFKD, TN_LOWER, TN_REPLACE, TN_PREPEND, TN_STRIP,
       TN_STRIP_ACCENTS, TN_BYTELEVEL };
typedef struct tk_norm {
    int type;
    struct tk_norm *items;
    int n_items;
    tk_pattern pat;  /* Replace */
    char *str;       /* Replace content / Prepend */
    size_t str_len;
    bool left, right; /* Strip */
} tk_norm;
/* Normalizes s into out (cleared first); *zero_len tracks how many leading
 * bytes of the result align to the segment's first original char. */
int tk_norm_apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out, size_t *zero_len,
                  tk_scratch *sc, rl_err *e);
void tk_norm_free(tk_norm *nm);

/* ---- pre-tokenizers ------------------------------------------------------ */
enum { TP_SEQ, TP_BYTELEVEL, TP_SPLIT, TP_DIGITS, TP_METASPACE, TP_WHITESPACE, TP_WSSPLIT,
       TP_PUNCT };
enum { TB_REMOVED, TB_ISOLATED, TB_MERGED_PREV, TB_MERGED_NEXT, TB_CONTIGUOUS };
enum { TS_ALWAYS, TS_FIRST, TS_NEVER };
typedef struct tk_pretok {
    int type;
    struct tk_pretok *items;
    int n_items;
    tk_pattern pat;
    int behavior;
    bool add_prefix_space, use_regex;
    uint32_t replacement;
    int prepend_scheme;
    bool split;
} tk_pretok;
/* Transforms the text pieces of *ps (added-token pieces pass through). */
int tk_pretok_apply(const tk_pretok *pt, tk_buf *arena, tk_pieces *ps, tk_scratch *sc,
                    rl_err *e);
void tk_pretok_free(tk_pretok *pt);
extern const uint16_t tk_byte_to_char[256];

/* ---- BPE model (tokenizer_bpe.c) ----------------------------------------- */
typedef struct tk_sment {
    uint64_t hash;
    size_t off; /* key bytes in keys */
    uint32_t len;
    int32_t val;
} tk_sment;
typedef struct tk_strmap { /* string -> int32, open addressing */
    uint32_t *tab;         /* entry index + 1, 0 = empty */
    size_t cap;
    tk_sment *ent;
    size_t n, ecap;
    tk_buf keys;
} tk_strmap;
uint64_t tk_hash(const char *s, size_t n);
void tk_strmap_init(tk_strmap *m);
/* Inserts or replaces (the map keeps its own copy of key). */
bool tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v);
int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n); /* -1 if absent */
void tk_strmap_free(tk_strmap *m);

typedef struct tk_cache_ent tk_cache_ent;
typedef struct tk_bpe {
    tk_strmap vocab;
    char **vocab_r;     /* id -> token (NULL where none) */
    int32_t vocab_r_n;  /* one past the largest id */
    size_t vocab_len;   /* number of entries (HF get_vocab_size) */
    uint64_t *mkeys;    /* merges: (a<<32|b)+1, 0 = empty */
    uint64_t *mvals;    /* rank<<32 | new_id */
    size_t mcap, mn;
    char *unk;          /* unk_token or NULL */
    char *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix or NULL */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_id[256]; /* "<0xNN>" ids, -1 if absent */
    /* cache: pre-token string -> ids */
    pthread_mutex_t lock;
    bool lock_init;
    tk_cache_ent **cache;
    size_t cache_cap, cache_n;
} tk_bpe;
int tk_bpe_build(tk_bpe *b, rl_err *e); /* after vocab filled: vocab_r, byte ids, lock */
/* merges: pairs of strings; rank = index */
int tk_bpe_add_merge(tk_bpe *b, const char *a, size_t an, const char *bb, size_t bn, uint32_t rank,
                     const char *path, rl_err *e);
/* Appends the ids of one pre-token. */
int tk_bpe_tokenize(tk_bpe *b, const char *s, size_t n, tk_ids *out, rl_err *e);
void tk_bpe_free(tk_bpe *b);

/* ---- added tokens (tokenizer_added.c) ------------------------------------ */
typedef struct tk_added {
    char *content;
    uint32_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} tk_added;
typedef struct tk_trie {
    /* node 0 = root; edges in a hash-free sorted list per node */
    int32_t *first, *next, *term; /* child list head, sibling, pattern index or -1 */
    uint8_t *byte;
    int32_t root[256];           /* root's children by byte */
    size_t n, cap;
    int n_patterns;
} tk_trie;
void tk_trie_init(tk_trie *t);
bool tk_trie_add(tk_trie *t, const char *s, size_t n, int pattern);
/* Leftmost-longest match in s[from..n): returns 1 and sets ms, me, pat; or 0. */
int tk_trie_find(const tk_trie *t, const char *s, size_t n, size_t from, size_t *ms, size_t *me,
                 int *pat);
void tk_trie_free(tk_trie *t);

/* ---- post-processors ----------------------------------------------------- */
enum { TQ_SEQ, TQ_TEMPLATE, TQ_BYTELEVEL, TQ_BERT };
typedef struct tk_post {
    int type;
    struct tk_post *items;
    int n_items;
    /* template single: items; seq marker = INT32_MIN */
    int32_t *tmpl;
    size_t n_tmpl;
} tk_post;
void tk_post_free(tk_post *p);

/* ---- decoders ------------------------------------------------------------ */
enum { TD_SEQ, TD_BYTELEVEL, TD_METASPACE, TD_BYTEFALLBACK, TD_FUSE, TD_STRIP, TD_REPLACE };
typedef struct tk_dec {
    int type;
    struct tk_dec *items;
    int n_items;
    tk_pattern pat;
    char *content;
    size_t content_len;
    uint32_t ch;
    long start, stop;
    int prepend_scheme;
} tk_dec;
void tk_dec_free(tk_dec *d);

/* ---- the tokenizer ------------------------------------------------------- */
struct rl_tok {
    char *label;
    tk_bpe bpe;
    tk_norm *norm;
    tk_pretok *pre;
    tk_post *post;
    tk_dec *dec;
    /* added vocabulary, as HF's AddedVocabulary */
    tk_added *added; /* every added token kept by add_tokens, in order */
    size_t n_added;
    tk_strmap added_map;   /* content -> id */
    char **added_r;        /* id -> content (index < added_r_n), NULL if none */
    int32_t *added_r_idx;  /* id -> index into added of the token stored for it */
    int32_t added_r_n;
    tk_strmap special_set; /* contents of special tokens */
    tk_trie trie_raw, trie_norm;
    int32_t *trie_raw_id, *trie_norm_id;  /* pattern -> id */
    int32_t *trie_raw_tok, *trie_norm_tok; /* pattern -> index into added */
    int32_t vocab_size;
    uint8_t *special_id; /* per id < vocab_size: decodes to a special token */
};

/* tokenizer_decode.c: decode tokens[first..] as the decoder chain does;
 * abs0 says tokens[0] is the first token of the whole sequence. */
int tk_decode_ids(const rl_tok *t, const int32_t *ids, size_t n, bool skip_special, tk_buf *out,
                  rl_err *e);
/* The token string of an id for decoding, or NULL. */
const char *tk_id_str(const rl_tok *t, int32_t id, size_t *len);

/* UTF-8 decode without checks (input known valid). */
static inline uint32_t tk_utf8_dec(const unsigned char *p, int *len) {
    unsigned c = p[0];
    if (c < 0x80) { *len = 1; return c; }
    if (c < 0xE0) { *len = 2; return ((c & 0x1F) << 6) | (p[1] & 0x3F); }
    if (c < 0xF0) { *len = 3; return ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F); }
    *len = 4;
    return ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}
static inline int tk_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
extern const int16_t tk_char_byte_tab[324];
static inline int tk_char_to_byte(uint32_t c) { return c < 324 ? tk_char_byte_tab[c] : -1; }

#endif
