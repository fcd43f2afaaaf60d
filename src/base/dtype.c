#include "base/dtype.h"

#include <math.h>

static const char *const names[RL_DTYPE_COUNT] = {"F32", "F16", "BF16", "F8_E4M3"};

const char *rl_dtype_name(rl_dtype t) {
    return (unsigned)t < RL_DTYPE_COUNT ? names[t] : "?";
}

int rl_dtype_parse(const char *name) {
    for (int i = 0; i < RL_DTYPE_COUNT; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

float rl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t rl_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (isnan(f)) return sign | 0x7e00u;
    float a = fabsf(f);
    if (a >= 65520.0f) return sign | 0x7c00u;
    if (a < 6.103515625e-05f) { /* subnormal range: quantum 2^-24 */
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    uint32_t au = u & 0x7fffffffu;
    au += 0xfffu + ((au >> 13) & 1u); /* round to nearest even at bit 13 */
    return sign | (uint16_t)(((au >> 23) - 112) << 10 | ((au >> 13) & 0x3ffu));
}

float rl_f8e4m3_to_f32(uint8_t v) {
    float sign = (v & 0x80) ? -1.0f : 1.0f;
    int exp = (v >> 3) & 0xf, man = v & 7;
    if (exp == 15 && man == 7) return NAN;
    if (exp == 0) return sign * ldexpf((float)man, -9); /* man/8 * 2^-6 */
    return sign * ldexpf(1.0f + (float)man / 8.0f, exp - 7);
}

uint8_t rl_f32_to_f8e4m3(float f) {
    if (isnan(f)) return 0x7f;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a > 448.0f) a = 448.0f; /* saturate, as torch's float8_e4m3fn cast does */
    /* brute force nearest (ties to even code): 127 candidates, only used offline */
    int best = 0;
    float bestd = INFINITY;
    for (int c = 0; c < 0x7f; c++) {
        float d = fabsf(rl_f8e4m3_to_f32((uint8_t)c) - a);
        if (d < bestd || (d == bestd && (c & 1) == 0)) { bestd = d; best = c; }
    }
    return sign | (uint8_t)best;
}

void rl_convert_to_f32(rl_dtype t, const void *src, float *dst, size_t n) {
    switch (t) {
    case RL_F32: memcpy(dst, src, n * 4); break;
    case RL_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = rl_bf16_to_f32(s[i]);
        break;
    }
    case RL_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = rl_f16_to_f32(s[i]);
        break;
    }
    case RL_F8_E4M3: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = rl_f8e4m3_to_f32(s[i]);
        break;
    }
    default: break;
    }
}
