/* safetensors.h — reading and writing Hugging Face safetensors files.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end)}, ... and an
 * optional "__metadata__" object of strings}) and the data area: every
 * tensor's row-major little-endian bytes at [8 + N + begin, 8 + N + end).
 *
 * st_open takes a .safetensors file or a directory (its
 * model.safetensors.index.json, whose weight_map names the shard holding each
 * tensor, or else its model.safetensors). Each shard is memory-mapped
 * read-only; its header is parsed with cJSON and every field checked against
 * the file size before any tensor is used: dtype F32, BF16 or F16 (other
 * dtypes refused by name), shape of non-negative integers, data offsets
 * inside the data area, end - begin = numel x dtype size, no two tensors
 * overlapping, no hole in the data area, names unique across shards.
 * Errors name the file and the tensor:
 *   "model.safetensors: tensor 'model.norm.weight': data_offsets [10, 20)
 *    exceed the data area (16 bytes)"
 *
 * st_write writes tensors given as f32 in F32, BF16 or F16 (rounding to the
 * nearest even), in one file or, past max_shard bytes, in shards
 * model-0000K-of-0000N.safetensors plus model.safetensors.index.json; each
 * file goes to a temporary name, is fsynced and renamed.
 */
#ifndef DPOC_SAFETENSORS_H
#define DPOC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum StDType { ST_F32 = 0, ST_BF16 = 1, ST_F16 = 2 } StDType;

enum { ST_MAX_DIMS = 8 };

typedef struct StTensor {
    char *name;
    StDType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    uint64_t nbytes;
    const uint8_t *data; /* inside the mapped file */
    int shard;           /* index of the file holding it */
} StTensor;

typedef struct StSet StSet;

/* path: a .safetensors file or a directory (see above). */
StSet *st_open(const char *path, char *err, size_t errlen);
void st_close(StSet *s);
int st_count(const StSet *s);
const StTensor *st_tensor(const StSet *s, int i);
int st_find(const StSet *s, const char *name); /* index or -1 */
const char *st_shard_path(const StSet *s, int shard);

/* Parses and checks a whole file's bytes (label names it in errors). The
 * tensors' data pointers point into buf. 0 and *out (free with
 * st_tensors_free), or -1 with a message. */
int st_parse(const char *label, const uint8_t *buf, size_t size, StTensor **out, int *n, char *err, size_t errlen);
void st_tensors_free(StTensor *t, int n);

/* Converts t's elements to f32 (exactly: bf16 and f16 widen). */
void st_to_f32(const StTensor *t, float *dst);

const char *st_dtype_name(StDType t); /* "F32", "BF16", "F16" */
size_t st_dtype_size(StDType t);
/* "f32" / "bf16" / "f16" (either case) -> dtype; -1 when unknown */
int st_dtype_parse(const char *s);
uint16_t st_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */
uint16_t st_f32_to_f16(float f);  /* round to nearest even; overflow -> inf */
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);

typedef struct StWriteTensor {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data; /* numel f32 values */
} StWriteTensor;

/* Writes t[0..n) converted to dtype into dir (created if missing):
 * dir/model.safetensors, or shards of at most max_shard bytes of tensor data
 * each (a bigger tensor gets a shard of its own; max_shard 0: one file) with
 * dir/model.safetensors.index.json. 0, or -1 with a message. */
int st_write(const char *dir, const StWriteTensor *t, int n, StDType dtype, uint64_t max_shard, char *err,
             size_t errlen);

/* "2GB", "500MB", "10KB", "123" (bytes; K/M/G are powers of 1000, KiB/MiB/GiB
 * of 1024) -> bytes; -1 when malformed. */
int st_parse_size(const char *s, uint64_t *out);

#endif
