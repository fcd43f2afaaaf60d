/* Token files for training and the loader over them.
 *
 * A token file (written by `ringlm prepare-data`) is a 64-byte header and
 * then n_tokens little-endian uint32 ids; every document is followed by the
 * EOS id, so documents are separated by it:
 *
 *   0  "RLTOKENS"        magic
 *   8  u32 version (1)   12 u32 header bytes (64)
 *   16 u64 n_tokens      24 u64 n_docs
 *   32 u32 vocab_size    36 u32 eos_id        40..63 zero
 *
 * The loader cuts the ids into fixed windows of seq_len + 1 tokens (window
 * i starts at token i * seq_len: inputs and their next-token targets),
 * assigns each window to validation or training by a hash of its index
 * (the same split for every seed), and serves the training windows in a
 * shuffled order per epoch. Everything depends only on (file, seq_len,
 * val_fraction, seed), and the position is a small state (epoch, index)
 * that a checkpoint stores: a resumed loader continues with exactly the
 * windows an uninterrupted one would have served. */
#ifndef RL_TRAIN_DATA_H
#define RL_TRAIN_DATA_H

#include <stdint.h>
#include <stdio.h>

#include "base/status.h"

#define RL_DATA_HEADER_BYTES 64

typedef struct rl_data {
    char *path;
    void *map;
    size_t map_size;
    const uint32_t *ids;
    int64_t n_tokens, n_docs;
    int32_t vocab_size, eos_id;
} rl_data;

/* Maps and validates a token file (magic, version, size, every id below
 * vocab_size); errors name the file and the byte offset at fault. */
int rl_data_open(const char *path, rl_data *d, rl_err *e);
void rl_data_close(rl_data *d);

/* Writer: documents appended in order, each followed by eos; the file
 * appears (atomically) at rl_data_writer_finish. */
typedef struct rl_data_writer {
    FILE *f;
    char *path, *tmp;
    uint64_t n_tokens, n_docs;
    uint32_t vocab_size, eos_id;
} rl_data_writer;

int rl_data_writer_open(rl_data_writer *w, const char *path, int32_t vocab_size, int32_t eos_id,
                        rl_err *e);
int rl_data_writer_add(rl_data_writer *w, const int32_t *ids, size_t n, rl_err *e);
int rl_data_writer_finish(rl_data_writer *w, rl_err *e);
/* Abandons the file (no output left behind). */
void rl_data_writer_abort(rl_data_writer *w);

typedef struct rl_loader_state {
    uint64_t seed;
    int64_t epoch; /* 0-based */
    int64_t index; /* next position in this epoch's order */
} rl_loader_state;

typedef struct rl_loader {
    const rl_data *d;
    int seq_len;
    int64_t n_windows;
    int64_t *train, n_train; /* window numbers */
    int64_t *val, n_val;
    int64_t *order;          /* this epoch's order of train[] */
    rl_loader_state st;
} rl_loader;

/* val_fraction in [0, 1): each window is a validation window with this
 * probability (by a fixed hash of its number); at least one window goes to
 * each side when val_fraction > 0. */
int rl_loader_init(rl_loader *l, const rl_data *d, int seq_len, double val_fraction, uint64_t seed,
                   rl_err *e);
void rl_loader_free(rl_loader *l);
/* The next training window: out[0..seq_len] (seq_len + 1 ids). */
void rl_loader_next(rl_loader *l, int *out);
/* Validation window k (0 <= k < n_val), out[0..seq_len]. */
void rl_loader_val(const rl_loader *l, int64_t k, int *out);
/* The position (for checkpoints), and back. set fails on a state that does
 * not belong to this loader (seed differs, index out of range). */
rl_loader_state rl_loader_get(const rl_loader *l);
int rl_loader_set(rl_loader *l, rl_loader_state s, rl_err *e);

#endif
