/* Element types of stored weights and their scalar conversions. */
#ifndef RL_BASE_DTYPE_H
#define RL_BASE_DTYPE_H

#include <stdint.h>
#include <string.h>

typedef enum rl_dtype {
    RL_F32 = 0,
    RL_F16 = 1,
    RL_BF16 = 2,
    RL_F8_E4M3 = 3,
    RL_DTYPE_COUNT
} rl_dtype;

/* Bytes per element. */
static inline size_t rl_dtype_size(rl_dtype t) {
    switch (t) {
    case RL_F32: return 4;
    case RL_F16: return 2;
    case RL_BF16: return 2;
    case RL_F8_E4M3: return 1;
    default: return 0;
    }
}

/* safetensors name ("BF16", ...) of a dtype. */
const char *rl_dtype_name(rl_dtype t);
/* Parses a safetensors dtype name; returns -1 when not supported. */
int rl_dtype_parse(const char *name);

static inline float rl_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t rl_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float rl_f16_to_f32(uint16_t h);
uint16_t rl_f32_to_f16(float f);
/* OCP FP8 E4M3 (the "fn" variant: no infinities, 0x7f/0xff = NaN, max 448). */
float rl_f8e4m3_to_f32(uint8_t v);
uint8_t rl_f32_to_f8e4m3(float f);

/* Converts n elements of src (type t) to float. */
void rl_convert_to_f32(rl_dtype t, const void *src, float *dst, size_t n);

#endif
