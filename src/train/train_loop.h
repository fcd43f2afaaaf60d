/* The training loop behind `ringlm train`: a model loaded for training
 * (weights writable, in their stored layout), its parameters bound to fp32
 * masters and to the gradient buffers of train/grad.h, AdamW steps over
 * shuffled windows of a token file, validation, checkpoints and resume. */
#ifndef RL_TRAIN_TRAIN_LOOP_H
#define RL_TRAIN_TRAIN_LOOP_H

#include <signal.h>

#include "engine/step.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/grad.h"
#include "train/optim.h"

typedef struct rl_train_cfg {
    int64_t steps;        /* optimizer steps in all (the schedule's length) */
    int seq_len;          /* tokens per window (each window: seq_len + 1 ids) */
    int batch_tokens;     /* tokens per step: batch_tokens / seq_len windows */
    rl_schedule sched;
    rl_adamw_cfg adam;
    float bias_rate;      /* expert_bias update rate per step (0 = off) */
    uint64_t seed;
    double val_fraction;
    int eval_every;       /* steps; 0 = only at the end */
    int eval_windows;     /* validation windows per evaluation (0 = all) */
    int save_every;       /* steps; 0 = only at the end */
    rl_recompute recompute; /* activation checkpointing (train/tape.h) */
} rl_train_cfg;

typedef struct rl_trainer {
    rl_train_cfg c;
    rl_model m;
    rl_engine eng;
    rl_grads g;
    rl_opt_param *params;
    float *masters;       /* one allocation for all masters */
    rl_adamw opt;
    rl_data data;
    rl_loader loader;
    rl_train_state st;
    int *load;            /* [L][E] expert loads of the last step */
    int *win;             /* [seq_len + 1] */
} rl_trainer;

/* What one step did. */
typedef struct rl_step_info {
    float loss;           /* mean over the step's windows */
    float lr;
    double grad_norm;     /* before clipping */
    int64_t tokens;       /* predicted tokens */
    double balance;       /* max/mean expert load, worst MoE layer (0: no MoE) */
    double balance_cv;    /* mean over MoE layers of the load's coefficient of variation */
} rl_step_info;

/* Loads the model in model_dir for training and opens the data. With
 * resume, restores the optimizer and loader state saved in model_dir. */
int rl_trainer_init(rl_trainer *t, const char *model_dir, const char *data_path, const rl_train_cfg *c,
                    bool resume, rl_err *e);
void rl_trainer_free(rl_trainer *t);
/* One optimizer step (st.step advances). */
int rl_trainer_step(rl_trainer *t, rl_step_info *info, rl_err *e);
/* Mean next-token loss over the first n validation windows (all when n <= 0
 * or larger than the set), by the trainer's forward (rl_train_logprobs). */
int rl_trainer_eval(rl_trainer *t, int n, double *loss, rl_err *e);
/* Saves into dir (see train/checkpoint.h). */
int rl_trainer_save(rl_trainer *t, const char *dir, const char *const *copy_files, const char *config_json,
                    rl_err *e);

#endif
