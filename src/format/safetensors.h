/* safetensors files: strict validation, mmap'd tensor views, and a writer.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...,
 *  "__metadata__": {str: str}}, then the data section. Offsets are relative
 * to the data section. Validation is strict: header length bounds, valid
 * JSON (an object of objects), known dtype (others refused by name), every
 * tensor inside the data section, byte length == numel * dtype size, and the
 * tensors, sorted by offset, contiguous, non-overlapping and covering the
 * data section exactly. Every failure names the file and the tensor, field
 * or byte offset at fault. */
#ifndef RL_FORMAT_SAFETENSORS_H
#define RL_FORMAT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"

#define RL_MAX_DIMS 8
/* Header length cap: real headers are < 2 MB; refuse absurd ones early. */
#define RL_ST_MAX_HEADER (100u << 20)

typedef struct rl_tensor {
    char *name;
    rl_dtype dtype;
    int ndim;
    int64_t shape[RL_MAX_DIMS];
    int64_t numel;
    const void *data; /* points into the mmap (or the caller's buffer); not
                         necessarily aligned to the element size */
    size_t nbytes;
    size_t offset; /* byte offset of data inside the data section */
} rl_tensor;

typedef struct rl_st_file {
    char *path;
    void *map; /* whole file mapping (NULL when parsed from a caller buffer) */
    size_t map_size;
    rl_tensor *tensors; /* sorted by name */
    int n_tensors;
} rl_st_file;

/* Opens, mmaps (read-only, no copy) and validates a file. */
int rl_st_open(const char *path, rl_st_file *f, rl_err *e);

/* Validates a complete in-memory file image (used by rl_st_open and by the
 * fuzz harness). `label` names the file in messages. Tensor views point into
 * buf, which must outlive f. */
int rl_st_parse(const uint8_t *buf, size_t len, const char *label, rl_st_file *f,
                rl_err *e);

/* Binary search by name; NULL when absent. */
const rl_tensor *rl_st_find(const rl_st_file *f, const char *name);

void rl_st_close(rl_st_file *f);

/* ---- writer ---------------------------------------------------------- */

typedef struct rl_st_entry {
    const char *name;
    rl_dtype dtype;
    int ndim;
    int64_t shape[RL_MAX_DIMS];
    const void *data; /* numel * dtype size bytes; NULL = ask `fill` */
} rl_st_entry;

/* Called to produce a tensor's bytes when entry.data is NULL (lets mkmodel
 * stream gigabytes of random weights without holding them). Writes nbytes
 * into buf (a scratch buffer of the writer, at most 16 MiB). A tensor larger
 * than the buffer is asked for in consecutive pieces, in order, by several
 * calls with the same index (each piece a whole number of elements); the
 * callback keeps its own position. Zero-size tensors are never asked for.
 * A non-zero return aborts the write (no file is left behind). */
typedef int (*rl_st_fill_fn)(void *ctx, int index, void *buf, size_t nbytes, rl_err *e);

/* Writes entries (in the given order) to path atomically (path.tmp, fsync,
 * rename). metadata_json: "{...}" (an object of strings) or NULL. progress:
 * NULL, or called after each tensor (and each piece of a streamed one) with
 * the file bytes written so far and the file's total size. */
int rl_st_write(const char *path, const rl_st_entry *entries, int n,
                const char *metadata_json, rl_st_fill_fn fill, void *fill_ctx,
                void (*progress)(void *ctx, size_t done, size_t total),
                void *progress_ctx, rl_err *e);

#endif
