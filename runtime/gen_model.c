/* gen_model.c — a step.so opened for generation, and its KV cache.
 *
 * gen_model_open finds what the generation graphs (docs/step-abi.md
 * "Generation") put in the tensor table: the inputs prefill_tokens i32[C],
 * decode_tokens i32[1], gen_pos i32[1], kv_cache.<l> [2, kv, M, d] for
 * layers l = 0, 1, ... and the outputs prefill_logits [C, V],
 * decode_logits [1, V], prefill_kv.<l> [2, kv, C, d], decode_kv.<l>
 * [2, kv, 1, d]; every shape is checked against the others. It starts a
 * thread pool with the kernels' costs, as training does.
 *
 * gen_model_feed walks the tokens: while two or more remain, a prefill call
 * takes up to C of them (a partial chunk is padded with token 0; the
 * padding's rows are never read), a single remaining token goes through
 * decode. After each call the valid positions' keys and values are copied
 * into the cache at their positions, and m->n advances.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"

/* FLOPs + bytes per thread below which a kernel is not split (as training) */
#define GEN_KERNEL_GRAIN 262144.0

static void *find(DpocStep *s, const char *name, DpocRole role, DpocDType dt, int ndim, const int64_t *shape,
                  const char *path, char *err, size_t errlen) {
    DpocTensorInfo ti;
    void *p = dpoc_step_find(s, name, role, &ti);
    if (!p) {
        snprintf(err, errlen, "%s: the step has no %s '%s'", path, dpoc_role_name(role), name);
        return NULL;
    }
    int ok = ti.dtype == dt && ti.ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || ti.shape[d] == shape[d];
    if (!ok) {
        snprintf(err, errlen, "%s: the step's %s '%s' does not have the shape the generation entries imply", path,
                 dpoc_role_name(role), name);
        return NULL;
    }
    return p;
}

static int setup_layers(GenModel *m, const char *path, char *err, size_t errlen) {
    DpocStep *s = &m->step;
    char name[64];
    DpocTensorInfo probe;
    for (;;) {
        snprintf(name, sizeof name, "kv_cache.%d", m->nlayers);
        if (dpoc_step_lookup(s, name, DPOC_ROLE_INPUT, &probe) != 0) break;
        m->nlayers++;
    }
    if (!m->nlayers) return snprintf(err, errlen, "%s: the step has no kv_cache.0 input", path), -1;
    m->layers = calloc((size_t)m->nlayers, sizeof *m->layers);
    if (!m->layers) return snprintf(err, errlen, "out of memory"), -1;
    for (int l = 0; l < m->nlayers; l++) {
        GenLayer *L = &m->layers[l];
        DpocTensorInfo ti;
        snprintf(name, sizeof name, "kv_cache.%d", l);
        L->cache = dpoc_step_find(s, name, DPOC_ROLE_INPUT, &ti);
        if (ti.dtype != DPOC_DT_F32 || ti.ndim != 4 || ti.shape[0] != 2 || (l == 0 && (m->M = ti.shape[2]) < 1) ||
            ti.shape[2] != m->M)
            return snprintf(err, errlen, "%s: the step's input %s is not f32 [2, kv_heads, %lld, head_dim]", path, name,
                            (long long)m->M),
                   -1;
        L->kv = ti.shape[1];
        L->d = ti.shape[3];
        int64_t sp[4] = {2, L->kv, m->C, L->d}, sd[4] = {2, L->kv, 1, L->d};
        snprintf(name, sizeof name, "prefill_kv.%d", l);
        if (!(L->new_prefill = find(s, name, DPOC_ROLE_OUTPUT, DPOC_DT_F32, 4, sp, path, err, errlen))) return -1;
        snprintf(name, sizeof name, "decode_kv.%d", l);
        if (!(L->new_decode = find(s, name, DPOC_ROLE_OUTPUT, DPOC_DT_F32, 4, sd, path, err, errlen))) return -1;
    }
    return 0;
}

int gen_model_open(GenModel *m, const char *step_path, int threads, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char local[4096];
    const char *path = step_path;
    if (!strchr(path, '/') && (size_t)snprintf(local, sizeof local, "./%s", path) < sizeof local) path = local;
    if (dpoc_step_open(&m->step, path, err, errlen)) return -1;
    m->open = 1;
    DpocStep *s = &m->step;
    if (!s->manifest->prefill || !s->manifest->decode) {
        snprintf(err, errlen,
                 "%s has no prefill/decode entries (it was compiled by an older dpoc): recompile it with this dpoc",
                 step_path);
        goto fail;
    }
    DpocTensorInfo ti;
    if (dpoc_step_lookup(s, "prefill_logits", DPOC_ROLE_OUTPUT, &ti) != 0 || ti.ndim != 2) {
        snprintf(err, errlen, "%s: the step has no output prefill_logits [chunk, vocab]", step_path);
        goto fail;
    }
    m->C = ti.shape[0];
    m->V = ti.shape[1];
    int64_t sc[1] = {m->C}, s1[1] = {1}, sv[2] = {m->C, m->V}, sv1[2] = {1, m->V};
    if (!(m->prefill_tokens = find(s, "prefill_tokens", DPOC_ROLE_INPUT, DPOC_DT_I32, 1, sc, step_path, err, errlen)) ||
        !(m->decode_tokens = find(s, "decode_tokens", DPOC_ROLE_INPUT, DPOC_DT_I32, 1, s1, step_path, err, errlen)) ||
        !(m->pos = find(s, "gen_pos", DPOC_ROLE_INPUT, DPOC_DT_I32, 1, s1, step_path, err, errlen)) ||
        !(m->prefill_logits = find(s, "prefill_logits", DPOC_ROLE_OUTPUT, DPOC_DT_F32, 2, sv, step_path, err, errlen)) ||
        !(m->decode_logits = find(s, "decode_logits", DPOC_ROLE_OUTPUT, DPOC_DT_F32, 2, sv1, step_path, err, errlen)) ||
        setup_layers(m, step_path, err, errlen))
        goto fail;
    if (!(m->pool = tpool_create(threads > 0 ? threads : tpool_cpu_count(), err, errlen))) goto fail;
    m->svc = tpool_services(m->pool);
    double *costs = malloc((size_t)(s->nkernels ? s->nkernels : 1) * sizeof *costs);
    if (!costs) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int k = 0; k < s->nkernels; k++) {
        const DpocKernelInfo *ki = &s->kernels[k];
        costs[k] = ((double)ki->flops + (double)ki->bytes) / (double)(ki->work > 0 ? ki->work : 1);
    }
    int bad = tpool_set_costs(m->pool, s->manifest->kernels, costs, s->nkernels, GEN_KERNEL_GRAIN);
    free(costs);
    if (bad) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return 0;
fail:
    gen_model_close(m);
    return -1;
}

void gen_model_close(GenModel *m) {
    tpool_destroy(m->pool);
    free(m->layers);
    if (m->open) dpoc_step_close(&m->step);
    memset(m, 0, sizeof *m);
}

/* copies rows [0, count) of a call's new keys/values ([2, kv, c, d]) to positions pos.. */
static void store_kv(GenModel *m, int decode, int64_t count) {
    int64_t c = decode ? 1 : m->C;
    for (int l = 0; l < m->nlayers; l++) {
        GenLayer *L = &m->layers[l];
        const float *src = decode ? L->new_decode : L->new_prefill;
        for (int64_t sh = 0; sh < 2 * L->kv; sh++)
            memcpy(L->cache + (sh * m->M + m->n) * L->d, src + sh * c * L->d, (size_t)(count * L->d) * sizeof(float));
    }
}

int gen_model_feed(GenModel *m, const int32_t *ids, int64_t n, float *logits_all, float *last, char *err,
                   size_t errlen) {
    if (n < 0 || m->n + n > m->M)
        return snprintf(err, errlen, "%lld tokens after %lld do not fit the step's context of %lld tokens",
                        (long long)n, (long long)m->n, (long long)m->M),
               -1;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->V)
            return snprintf(err, errlen, "token id %d is outside the model's vocabulary [0, %lld)", ids[i],
                            (long long)m->V),
                   -1;
    int64_t done = 0;
    while (done < n) {
        int64_t left = n - done, count = left >= 2 ? (left < m->C ? left : m->C) : 1;
        int decode = count == 1;
        *m->pos = (int32_t)m->n;
        if (decode) {
            m->decode_tokens[0] = ids[done];
        } else {
            memcpy(m->prefill_tokens, ids + done, (size_t)count * sizeof *ids);
            for (int64_t i = count; i < m->C; i++) m->prefill_tokens[i] = 0;
        }
        DpocEntryFn fn = decode ? m->step.manifest->decode : m->step.manifest->prefill;
        int rc = dpoc_step_run(&m->step, fn, &m->svc);
        if (rc) return snprintf(err, errlen, "the step's %s entry failed (status %d)", decode ? "decode" : "prefill", rc), -1;
        store_kv(m, decode, count);
        const float *lg = decode ? m->decode_logits : m->prefill_logits;
        if (logits_all) memcpy(logits_all + done * m->V, lg, (size_t)(count * m->V) * sizeof(float));
        if (last && done + count == n) memcpy(last, lg + (count - 1) * m->V, (size_t)m->V * sizeof(float));
        m->n += count;
        done += count;
    }
    return 0;
}
