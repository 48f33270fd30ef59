/* train_params.c — seeded initialisation and loading parameters from checkpoints.
 *
 * Initialisation runs element ranges of each tensor through tpool_for; each
 * element's value depends only on (seed, name, index), so splitting changes
 * nothing. Loading looks each tensor of the role up in the checkpoint's
 * table and decompresses it straight into its region (ckpt_read_tensor
 * checks size and checksum and names the tensor when they fail).
 */
#include "train_params.h"

#include "hf_map.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "train_hash.h"

static uint64_t tensor_key(uint64_t seed, const char *name) {
    return batch_mix64(train_fnv1a(TRAIN_FNV_BASIS, name, strlen(name)) ^ batch_mix64(seed));
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static float normal_at(uint64_t key, int64_t i) {
    uint64_t a = batch_mix64(key + 2 * (uint64_t)i), b = batch_mix64(key + 2 * (uint64_t)i + 1);
    double u1 = ((double)(a >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = ((double)(b >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return (float)(TRAIN_INIT_STD * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

float train_init_value(uint64_t seed, const char *name, int ndim, int64_t i) {
    if (ndim >= 2) return normal_at(tensor_key(seed, name), i);
    return ends_with(name, ".bias") ? 0.0f : 1.0f;
}

typedef struct InitJob {
    float *dst;
    uint64_t key;
} InitJob;

static void init_range(void *arg, int64_t b, int64_t e) {
    const InitJob *j = arg;
    for (int64_t i = b; i < e; i++) j->dst[i] = normal_at(j->key, i);
}

void train_init_params(DpocStep *s, uint64_t seed, ThreadPool *pool) {
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM || t->dtype != DPOC_DT_F32) continue;
        float *dst = (float *)(s->regions[t->region] + t->offset);
        if (t->ndim < 2) {
            float v = train_init_value(seed, t->name, t->ndim, 0);
            for (int64_t k = 0; k < t->numel; k++) dst[k] = v;
            continue;
        }
        InitJob j = {dst, tensor_key(seed, t->name)};
        if (pool)
            tpool_for(pool, init_range, &j, t->numel);
        else
            init_range(&j, 0, t->numel);
    }
}

int train_copy_ref(DpocStep *s, char *err, size_t errlen) {
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_REF_PARAM) continue;
        const char *base = strncmp(t->name, "ref:", 4) == 0 ? t->name + 4 : t->name;
        DpocTensorInfo src;
        void *from = dpoc_step_find(s, base, DPOC_ROLE_PARAM, &src);
        if (!from || src.nbytes != t->nbytes || src.dtype != t->dtype)
            return snprintf(err, errlen, "reference parameter %s has no parameter %s of the same shape to copy", t->name,
                            base),
                   -1;
        memcpy(s->regions[t->region] + t->offset, from, (size_t)t->nbytes);
    }
    return 0;
}

static void shape_str(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++) n += (size_t)snprintf(out + n, cap - n, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

int train_load_role(DpocStep *s, Ckpt *c, DpocRole role, const char *prefix, char *err, size_t errlen) {
    DpocRole table_role = (role == DPOC_ROLE_ADAM_M || role == DPOC_ROLE_ADAM_V) ? DPOC_ROLE_PARAM : role;
    DpocRegion region = role == DPOC_ROLE_ADAM_M ? DPOC_R_ADAM_M : role == DPOC_ROLE_ADAM_V ? DPOC_R_ADAM_V : DPOC_R_COUNT;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != table_role) continue;
        char name[sizeof ((CkptTensor *)0)->name];
        if ((size_t)snprintf(name, sizeof name, "%s%s", prefix, t->name) >= sizeof name)
            return snprintf(err, errlen, "tensor name %s%s is too long for a checkpoint", prefix, t->name), -1;
        int k = ckpt_find(c, name);
        if (k < 0) return snprintf(err, errlen, "%s: has no tensor %s", ckpt_path(c), name), -1;
        const CkptTensor *ct = ckpt_tensor(c, k);
        int same = ct->dtype == CKPT_F32 && t->dtype == DPOC_DT_F32 && ct->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = ct->shape[d] == t->shape[d];
        if (!same) {
            char a[128], b[128];
            shape_str(a, sizeof a, ct->ndim, ct->shape);
            shape_str(b, sizeof b, t->ndim, t->shape);
            return snprintf(err, errlen, "%s: tensor %s is %s %s; the step expects f32 %s", ckpt_path(c), name,
                            ct->dtype == CKPT_F32 ? "f32" : "not f32", a, b),
                   -1;
        }
        uint8_t *dst = s->regions[region == DPOC_R_COUNT ? t->region : region] + t->offset;
        if (ckpt_read_tensor(c, k, dst, (size_t)t->nbytes, err, errlen)) return -1;
    }
    return 0;
}

int train_load_init(DpocStep *s, const char *ckpt_path, const char *hf_path, char *err, size_t errlen) {
    if (hf_path) {
        HfArch arch;
        if (hf_arch_from_config(hf_path, &arch, err, errlen)) return -1;
        StSet *st = st_open(hf_path, err, errlen);
        if (!st) return -1;
        int rc = hf_import(s, st, arch, err, errlen);
        st_close(st);
        return rc;
    }
    Ckpt *c = ckpt_open(ckpt_path, err, errlen);
    if (!c) return -1;
    int rc = train_load_role(s, c, DPOC_ROLE_PARAM, "", err, errlen);
    ckpt_close(c);
    return rc;
}
