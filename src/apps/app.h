/* Shared helpers of the ringlm command-line tools. */
#ifndef RL_APPS_APP_H
#define RL_APPS_APP_H

#include <stdbool.h>
#include <stdio.h>

#include "engine/sampler.h"
#include "engine/step.h"
#include "model/model.h"

/* Each command: argc/argv start at the command name. Returns the exit code. */
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_tokenizer_train(int argc, char **argv);
int cmd_prepare_data(int argc, char **argv);
int cmd_train(int argc, char **argv);

/* Prints "ringlm: error: msg" to stderr and returns 1. */
int app_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses "1,2,3" into a malloc'd array; NULL with a message on error. */
int *app_parse_ids(const char *s, int *n, const char *what);
/* Parses an int / float option value or fails with the option's name. */
bool app_int(const char *opt, const char *v, long lo, long hi, int *out);
bool app_float(const char *opt, const char *v, float *out);

/* Progress on a terminal (stderr is a tty): "label  42% (x/y)". */
void app_progress_layers(void *ctx, int done, int total);
void app_progress_bytes(void *ctx, size_t done, size_t total);

/* Options every model command shares. */
typedef struct app_model_opts {
    const char *dir;
    int threads;       /* 0: all cores */
    int decay_conv;    /* -1: config's */
    bool ref_ops;      /* --ref-ops: plain reference kernels (slow; for tests) */
    int device;        /* --device: APP_CPU or APP_CUDA */
    bool deterministic; /* --deterministic: batch-invariant GEMMs on the GPU */
    bool cuda_ok;      /* set by the commands that run on the GPU */
} app_model_opts;

enum { APP_CPU = 0, APP_CUDA = 1 };

/* Consumes a shared option at argv[*i] (advancing *i past its value);
 * returns 1 when consumed, 0 when not ours, -1 on a bad value. */
int app_model_opt(app_model_opts *o, int argc, char **argv, int *i);
/* Help text of the shared options. */
extern const char *const app_model_opts_help;
/* Loads the model (with progress), sets threads. Prints errors. */
int app_load(const app_model_opts *o, rl_model *m);

/* Consumes a sampling option (llama.cpp's names) at argv[*i]: 1 when
 * consumed, 0 when not ours, -1 on a bad value (printed). */
int app_sampler_opt(rl_sampler_params *sp, int argc, char **argv, int *i);
extern const char *const app_sampler_opts_help;

/* Parses the options of the commands that take a model, --ids and --out
 * (grad, score): returns 0 with ids (malloc'd, at least min_ids of them) and
 * out set, 1 after printing --help, -1 after printing an error. */
int app_ids_out_args(const char *cmd, const char *help, int argc, char **argv,
                     app_model_opts *mo, int min_ids, int **ids, int *n, const char **out);

double app_now(void);

#endif
