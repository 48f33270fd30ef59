/* dpoc_models.h — the model YAMLs built into the dpoc binary.
 *
 * At configure time tools/CMakeLists.txt turns every models/ (every .yaml below it) into a
 * byte array of a generated C file (dpoc_models_data.c in the build tree),
 * so `dpoc list-models`, `dpoc copy-model` and `dpoc import-config --loss`
 * work without the source tree and write exactly the bytes shipped. path is
 * relative to models/ ("zoo/qwen2-0.5b.yaml", "losses/sigmoid.yaml"); data
 * is followed by a NUL byte that len does not count.
 */
#ifndef DPOC_MODELS_H
#define DPOC_MODELS_H

#include <stddef.h>

typedef struct DpocEmbeddedFile {
    const char *path;
    const unsigned char *data;
    size_t len;
} DpocEmbeddedFile;

extern const DpocEmbeddedFile dpoc_embedded_files[];
extern const size_t dpoc_embedded_count;

/* The embedded file at path (relative to models/), or NULL. */
const DpocEmbeddedFile *dpoc_embedded_find(const char *path);

#endif
