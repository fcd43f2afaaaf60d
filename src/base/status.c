#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rl_errf(rl_err *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

int rl_err_prefix(rl_err *e, const char *fmt, ...) {
    if (!e) return RL_E_ARG;
    char pre[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
    memcpy(e->msg, pre, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3, ol = strlen(old);
    if (ol > rest) ol = rest;
    memcpy(e->msg + n + 2, old, ol);
    e->msg[n + 2 + ol] = 0;
    return e->code;
}

const char *rl_status_name(int code) {
    switch (code) {
    case RL_OK: return "ok";
    case RL_E_IO: return "io error";
    case RL_E_FORMAT: return "format error";
    case RL_E_CONFIG: return "config error";
    case RL_E_SHAPE: return "shape error";
    case RL_E_ARG: return "bad argument";
    case RL_E_NOMEM: return "out of memory";
    case RL_E_UNSUPPORTED: return "unsupported";
    case RL_E_CAPACITY: return "out of capacity";
    default: return "error";
    }
}
