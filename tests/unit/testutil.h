/* Minimal test harness: CHECK records a failure and continues; each test
 * program ends with rl_test_done(), which prints "N passed, N failed" and
 * returns the exit code. */
#ifndef RL_TESTUTIL_H
#define RL_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>

extern int rl_t_pass, rl_t_fail;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            rl_t_pass++;                                                        \
        } else {                                                                \
            rl_t_fail++;                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

int rl_test_done(void);

/* Deterministic random numbers for tests (splitmix64). */
uint64_t rl_t_rand(uint64_t *s);
float rl_t_uniform(uint64_t *s, float lo, float hi);
/* Fills n floats with the poison value NaN (outputs must be fully written). */
void rl_t_poison(float *p, size_t n);
/* Directory for temporary files ($RL_TEST_TMP or /tmp), created if needed. */
const char *rl_t_tmpdir(void);

#endif
