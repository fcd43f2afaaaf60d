/* Runtime choice of the CPU ISA level, the per-level op tables, threads. */
#include <cpuid.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_ops.h"

static const char *const isa_names[RL_ISA_COUNT] = {"portable", "avx2", "avx512"};

const char *rl_cpu_isa_name(rl_isa isa) {
    return (unsigned)isa < RL_ISA_COUNT ? isa_names[isa] : "?";
}

/* F16C via CPUID leaf 1 (clang's __builtin_cpu_supports has no "f16c"). */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

int rl_cpu_isa_supported(rl_isa isa) {
    __builtin_cpu_init();
    switch (isa) {
    case RL_ISA_PORTABLE: return 1;
    case RL_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               has_f16c();
    case RL_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("fma") &&
               has_f16c();
    default: return 0;
    }
}

/* Portable and AVX2 levels take the reference for everything but matmul and
 * embed (those are the ops whose speed matters without AVX-512). */
static rl_ops tables[RL_ISA_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void) {
    rl_ops base = rl_ops_ref;
    base.embed = rl_embed_cpu;
    tables[RL_ISA_PORTABLE] = base;
    tables[RL_ISA_PORTABLE].name = "cpu-portable";
    tables[RL_ISA_PORTABLE].matmul = rl_matmul_portable;
    tables[RL_ISA_AVX2] = base;
    tables[RL_ISA_AVX2].name = "cpu-avx2";
    tables[RL_ISA_AVX2].matmul = rl_matmul_avx2;
    tables[RL_ISA_AVX512] = (rl_ops){
        .name = "cpu-avx512",
        .matmul = rl_matmul_avx512,
        .pack_size = rl_matmul_pack_size_avx512,
        .pack = rl_matmul_pack_avx512,
        .rmsnorm = rl_rmsnorm_avx512,
        .rope = rl_rope_avx512,
        .group_norm_gate = rl_group_norm_gate_avx512,
        .swiglu = rl_swiglu_avx512,
        .lightning_attend = rl_lightning_attend_avx512,
        .lightning_fold = rl_lightning_fold_avx512,
        .gqa_attend = rl_gqa_attend_avx512,
        .embed = rl_embed_cpu,
    };
}

const rl_ops *rl_ops_cpu_level(rl_isa isa) {
    if ((unsigned)isa >= RL_ISA_COUNT || !rl_cpu_isa_supported(isa)) return NULL;
    pthread_once(&tables_once, tables_init);
    return &tables[isa];
}

static rl_isa chosen;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    rl_isa best = RL_ISA_PORTABLE;
    for (int i = RL_ISA_COUNT - 1; i >= 0; i--)
        if (rl_cpu_isa_supported((rl_isa)i)) { best = (rl_isa)i; break; }
    const char *env = getenv("RINGLM_ISA");
    if (env && *env) {
        int want = -1;
        for (int i = 0; i < RL_ISA_COUNT; i++)
            if (strcmp(env, isa_names[i]) == 0) want = i;
        if (want < 0)
            fprintf(stderr, "ringlm: warning: RINGLM_ISA=%s is not one of portable|avx2|avx512; "
                            "using %s\n", env, isa_names[best]);
        else if (!rl_cpu_isa_supported((rl_isa)want))
            fprintf(stderr, "ringlm: warning: RINGLM_ISA=%s is not supported by this CPU; "
                            "using %s\n", env, isa_names[best]);
        else
            best = (rl_isa)want;
    }
    chosen = best;
}

const rl_ops *rl_ops_cpu(void) {
    pthread_once(&choose_once, choose);
    return rl_ops_cpu_level(chosen);
}

const char *rl_ops_cpu_isa(void) {
    pthread_once(&choose_once, choose);
    return isa_names[chosen];
}

static int n_threads; /* 0 = all cores */

void rl_set_threads(int n) {
    __atomic_store_n(&n_threads, n < 0 ? 0 : n, __ATOMIC_RELAXED);
    omp_set_num_threads(rl_get_threads()); /* the model's own parallel loops */
}

int rl_get_threads(void) {
    int n = __atomic_load_n(&n_threads, __ATOMIC_RELAXED);
    return n > 0 ? n : omp_get_num_procs();
}
