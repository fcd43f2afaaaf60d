/* libFuzzer harness for the server's request bodies: JSON parsing and the
 * field validation of /v1/chat/completions and /v1/completions
 * (src/server/api.c), plus the stop-string matcher fed in arbitrary pieces. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "server/stopstr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t je;
    json_t *b = json_loadb((const char *)data, size, 0, &je);
    char err[512];
    const char *param;
    for (int kind = 0; b && kind < 2; kind++) {
        rl_api_req r;
        if (rl_api_parse(b, kind, NULL, &r, err, sizeof err, &param) == 0) {
            /* the parsed stop strings against the body as generated text */
            rl_stopstr ss;
            if (rl_stopstr_init(&ss, r.gp.stop, r.gp.n_stop) == 0) {
                const char *o;
                size_t on;
                for (size_t i = 0; i < size; i += 1 + (data[i] & 7)) {
                    size_t n = size - i < 5 ? size - i : 5;
                    if (rl_stopstr_feed(&ss, (const char *)data + i, n, &o, &on) != 0) break;
                }
                rl_stopstr_finish(&ss, &o, &on);
                rl_stopstr_free(&ss);
            }
            rl_api_req_free(&r);
        } else {
            char *e = rl_api_error(400, err, param);
            free(e);
        }
    }
    json_decref(b);
    return 0;
}
