#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

int rl_t_pass, rl_t_fail;

int rl_test_done(void) {
    printf("%d passed, %d failed\n", rl_t_pass, rl_t_fail);
    return rl_t_fail ? 1 : 0;
}

uint64_t rl_t_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float rl_t_uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((rl_t_rand(s) >> 40) * (1.0 / 16777216.0));
}

void rl_t_poison(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

const char *rl_t_tmpdir(void) {
    const char *d = getenv("RL_TEST_TMP");
    if (!d || !*d) d = "/tmp";
    mkdir(d, 0777);
    return d;
}
