/* ringlm template (placeholder until the chat template module lands). */
#include "apps/app.h"

int cmd_template(int argc, char **argv) {
    (void)argc; (void)argv;
    return app_fail("template: not implemented yet");
}
