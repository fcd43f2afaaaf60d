#include "apps/app.h"
int cmd_prepare_data(int argc, char **argv) { (void)argc; (void)argv; return app_fail("not yet"); }
