/* Normalizers: NFC/NFD/NFKC/NFKD, Lowercase, Replace, Prepend, Strip,
 * StripAccents, ByteLevel and Sequence, as the HF crate applies them to
 * each piece of text between added tokens. */
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

/* GPT-2 bytes_to_unicode: byte -> char, and back (-1: not a byte char). */
const uint16_t tk_byte_to_char[256] = {
    256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271,
    272, 273, 274, 275, 276, 277, 278, 279, 280, 281, 282, 283, 284, 285, 286, 287,
    288, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
    48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 289,
    290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305,
    306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321,
    322, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 323, 174, 175,
    176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191,
    192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207,
    208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223,
    224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239,
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255};

const int16_t tk_char_byte_tab[324] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 33, 34, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71,
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125,
    126, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 161,
    162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, -1, 174, 175, 176, 177, 178, 179,
    180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197,
    198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215,
    216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233,
    234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251,
    252, 253, 254, 255, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
    14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143,
    144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 173};

static size_t first_char_len(const tk_buf *b) { return b->n ? (size_t)tk_utf8_len((unsigned char)b->p[0]) : 0; }

static int norm_one(const tk_norm *nm, const char *s, size_t n, tk_buf *out, size_t *zl,
                    tk_scratch *sc, rl_err *e) {
    out->n = 0;
    if (out->p) out->p[0] = 0;
    int rc = RL_OK;
    switch (nm->type) {
    case TN_NFC: case TN_NFD: case TN_NFKC: case TN_NFKD: {
        int form = nm->type == TN_NFC ? TK_NFC : nm->type == TN_NFD ? TK_NFD : nm->type == TN_NFKC ? TK_NFKC : TK_NFKD;
        rc = tk_unicode_normalize(form, s, n, out, e);
        if (*zl) *zl = first_char_len(out);
        break;
    }
    case TN_LOWER:
        rc = tk_unicode_lower(s, n, out, e);
        if (*zl) *zl = first_char_len(out);
        break;
    case TN_REPLACE: {
        tk_matches m = {0};
        rc = tk_find_matches(&nm->pat, s, n, sc, &m, e);
        for (size_t i = 0; !rc && i < m.n; i++) {
            bool ok = m.v[i].m ? tk_buf_put(out, nm->str, nm->str_len)
                               : tk_buf_put(out, s + m.v[i].s, m.v[i].e - m.v[i].s);
            if (!ok) rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        }
        free(m.v);
        if (!rc && !out->p && !tk_buf_reserve(out, 0)) rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        if (*zl) *zl = first_char_len(out);
        break;
    }
    case TN_PREPEND:
        if (n) {
            if (!tk_buf_put(out, nm->str, nm->str_len) || !tk_buf_put(out, s, n)) rc = rl_errf(e, RL_E_NOMEM, "out of memory");
            if (*zl) *zl += nm->str_len;
        } else if (!tk_buf_put(out, s, 0)) rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        break;
    case TN_STRIP: {
        size_t a = 0, b = n;
        if (nm->left) {
            while (a < b) {
                int l;
                uint32_t c = tk_utf8_dec((const unsigned char *)s + a, &l);
                if (!tk_is_whitespace(c)) break;
                a += (size_t)l;
            }
        }
        if (nm->right) {
            while (b > a) {
                size_t k = b - 1;
                while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
                int l;
                uint32_t c = tk_utf8_dec((const unsigned char *)s + k, &l);
                if (!tk_is_whitespace(c)) break;
                b = k;
            }
        }
        if (!tk_buf_put(out, s + a, b - a)) rc = rl_errf(e, RL_E_NOMEM, "out of memory");
        if (a > 0) *zl = 0;
        if (*zl > b - a) *zl = b - a;
        break;
    }
    case TN_STRIP_ACCENTS: {
        if (!tk_buf_reserve(out, n)) { rc = rl_errf(e, RL_E_NOMEM, "out of memory"); break; }
        bool first_kept = true;
        for (size_t i = 0; i < n;) {
            int l;
            uint32_t c = tk_utf8_dec((const unsigned char *)s + i, &l);
            if (!tk_is_combining(c)) tk_buf_put(out, s + i, (size_t)l);
            else if (i == 0) first_kept = false;
            i += (size_t)l;
        }
        if (!first_kept) *zl = 0;
        else if (*zl) *zl = first_char_len(out);
        break;
    }
    case TN_BYTELEVEL: {
        if (!tk_buf_reserve(out, n * 2)) { rc = rl_errf(e, RL_E_NOMEM, "out of memory"); break; }
        size_t nz = 0;
        for (size_t i = 0; i < n; i++) {
            char u[4];
            int l = rl_utf8_put(tk_byte_to_char[(unsigned char)s[i]], u);
            tk_buf_put(out, u, (size_t)l);
            if (i < *zl) nz = out->n;
        }
        *zl = nz;
        break;
    }
    default:
        rc = rl_errf(e, RL_E_UNSUPPORTED, "normalizer type %d", nm->type);
    }
    return rc;
}

int tk_norm_apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out, size_t *zl,
                  tk_scratch *sc, rl_err *e) {
    if (nm->type != TN_SEQ) return norm_one(nm, s, n, out, zl, sc, e);
    out->n = 0;
    if (!tk_buf_put(out, s, n)) return rl_errf(e, RL_E_NOMEM, "out of memory");
    tk_buf tmp = {0};
    int rc = RL_OK;
    for (int i = 0; i < nm->n_items && !rc; i++) {
        rc = tk_norm_apply(&nm->items[i], out->p, out->n, &tmp, zl, sc, e);
        if (!rc) { tk_buf t = *out; *out = tmp; tmp = t; }
    }
    tk_buf_free(&tmp);
    return rc;
}

void tk_norm_free(tk_norm *nm) {
    if (!nm) return;
    for (int i = 0; i < nm->n_items; i++) tk_norm_free(&nm->items[i]);
    free(nm->items);
    tk_pattern_free(&nm->pat);
    free(nm->str);
}
