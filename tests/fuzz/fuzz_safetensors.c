/* libFuzzer harness: the safetensors header validator on arbitrary bytes.
 * Accepted files must describe views that lie inside the buffer. */
#include <stdint.h>
#include <stdlib.h>

#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rl_st_file f;
    rl_err e;
    if (rl_st_parse(data, size, "fuzz.safetensors", &f, &e) == RL_OK) {
        size_t covered = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            const rl_tensor *t = &f.tensors[i];
            const uint8_t *p = t->data;
            if (p < data || p + t->nbytes > data + size) abort();
            if (rl_st_find(&f, t->name) != t) abort();
            /* Touch the first and last byte so ASan checks the view. */
            if (t->nbytes) covered += (size_t)p[0] + p[t->nbytes - 1];
        }
        (void)covered;
    }
    rl_st_close(&f);
    return 0;
}
