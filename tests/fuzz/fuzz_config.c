/* libFuzzer harness: config.json parsing and schedule derivation on
 * arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    rl_config c;
    rl_err e;
    memset(&c, 0, sizeof c);
    if (rl_config_parse(text, "fuzz/config.json", &c, &e) == RL_OK &&
        rl_config_finish(&c, "fuzz/config.json", &e) == RL_OK) {
        char *j = rl_config_to_json(&c);
        free(j);
    }
    free(text);
    return 0;
}
