/* Status and error messages.
 *
 * Library code never exits on bad input: a fallible function returns an int
 * status (RL_OK = 0) and, when it fails, fills an rl_err with a message that
 * names the file, field or byte offset at fault. Apps print err.msg. */
#ifndef RL_BASE_STATUS_H
#define RL_BASE_STATUS_H

#include <stddef.h>

enum {
    RL_OK = 0,
    RL_E_IO = 1,       /* open/read/mmap/write failed */
    RL_E_FORMAT = 2,   /* a file violates its format */
    RL_E_CONFIG = 3,   /* config.json missing key / wrong value */
    RL_E_SHAPE = 4,    /* tensor missing, wrong shape or dtype */
    RL_E_ARG = 5,      /* bad argument from the caller */
    RL_E_NOMEM = 6,    /* allocation failed */
    RL_E_UNSUPPORTED = 7,
    RL_E_CAPACITY = 8, /* out of slots / pages / context */
};

typedef struct rl_err {
    int code;
    char msg[1024];
} rl_err;

/* Formats a message into e (if non-NULL) and returns code. */
int rl_errf(rl_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (keeps the code). */
int rl_err_prefix(rl_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *rl_status_name(int code);

/* Evaluates a status-returning call and returns its status from the
 * enclosing function when it fails. */
#define RL_TRY(x)             \
    do {                      \
        int rl_rc_ = (x);     \
        if (rl_rc_) return rl_rc_; \
    } while (0)

#endif
