/* ringlm tokenize / detokenize (placeholder until the tokenizer module lands). */
#include "apps/app.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    return app_fail("tokenize: not implemented yet");
}

int cmd_detokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    return app_fail("detokenize: not implemented yet");
}
