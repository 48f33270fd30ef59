/* train_hash.c — FNV-1a hashes of parameter sets and of the step's config.
 *
 * See train_hash.h for the exact byte stream. Dimensions are serialised
 * byte by byte so the hash does not depend on the host's byte order for
 * the header part; tensor data is hashed as stored (dpoc targets
 * little-endian hosts only).
 */
#include "train_hash.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

uint64_t train_fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_u64le(uint64_t h, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    return train_fnv1a(h, b, (size_t)bytes);
}

uint64_t train_weights_hash(const DpocStep *s, DpocRole role) {
    uint64_t h = TRAIN_FNV_BASIS;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != role) continue;
        const char *name = t->name;
        if (role == DPOC_ROLE_REF_PARAM && strncmp(name, "ref:", 4) == 0) name += 4;
        h = train_fnv1a(h, name, strlen(name) + 1);
        h = hash_u64le(h, (uint64_t)t->ndim, 4);
        for (int d = 0; d < t->ndim; d++) h = hash_u64le(h, (uint64_t)t->shape[d], 8);
        h = train_fnv1a(h, s->regions[t->region] + t->offset, (size_t)t->nbytes);
    }
    return h ? h : 1;
}

uint64_t train_config_hash(const DpocStep *s) {
    const cJSON *c = s->json ? cJSON_GetObjectItemCaseSensitive(s->json, "config") : NULL;
    if (!c) return 0;
    /* the micro-batch and the generation settings are not the model:
     * without "pairs", "packed_len" and "generate" (a mesh step has no
     * generation entries), so that a run can resume on another mesh (dp
     * ranks x pairs), micro-batch size or row layout */
    cJSON *copy = cJSON_Duplicate(c, 1);
    if (!copy) return 0;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "pairs");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "packed_len");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "generate");
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!text) return 0;
    uint64_t h = train_fnv1a(TRAIN_FNV_BASIS, text, strlen(text));
    free(text);
    return h;
}
