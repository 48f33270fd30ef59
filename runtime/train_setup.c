/* train_setup.c — opening a step for training and checking data against it.
 *
 * trainer_open loads the step.so (dpoc_step_open checks the ABI version and
 * the CPU features), then checks what this runtime needs of it, each refusal
 * naming what differs: the mesh (train_mesh.c: 1 x 1 without mpirun, else
 * the world's size), the entry points the job uses, the
 * inputs (batch_layout_init) and the outputs `loss` and `logps`. It reads
 * the loss's beta from the manifest's config, adds up the kernels' FLOP
 * estimates per entry, and starts the thread pool.
 *
 * trainer_open_data opens a .rec, refuses one whose vocabulary is larger
 * than the model's or, when the step takes a precomputed reference, one
 * without reference log-probs or whose reference weights' hash is not ours
 * (both hashes named; --force-ref overrides). It then reads every record
 * once: ids are checked against the model's vocabulary, pairs with a label
 * token cut by the sequence length are counted, and pairs that keep no label
 * token on one side are left out of the usable list (their log-probs would
 * be empty sums and the length-averaged losses would divide by zero).
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kprof.h"
#include "train_hash.h"
#include "train_internal.h"
#include "train_mesh.h"

double trainer_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void train_options_default(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->optimizer = TRAIN_ADAMW;
    o->lr = 5e-5;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0.0;
    o->schedule = OPT_SCHED_LINEAR;
    o->warmup_steps = -1;
    o->warmup_ratio = 0.0;
    o->max_grad_norm = 1.0;
    o->grad_accum = 1;
    o->shuffle = 1;
    o->progress = -1;
    o->kernel_grain = -1;
}

static const float *find_output(DpocStep *s, const char *name, int64_t numel, int required, char *err, size_t errlen,
                                int *bad) {
    DpocTensorInfo ti;
    const float *p = dpoc_step_find(s, name, DPOC_ROLE_OUTPUT, &ti);
    if (!p) {
        if (required) {
            snprintf(err, errlen, "the step has no output '%s'", name);
            *bad = 1;
        }
        return NULL;
    }
    if (ti.dtype != DPOC_DT_F32 || ti.numel != numel) {
        snprintf(err, errlen, "the step's output '%s' is %s with %lld elements; expected f32 with %lld", name,
                 dpoc_dtype_name(ti.dtype), (long long)ti.numel, (long long)numel);
        *bad = 1;
        return NULL;
    }
    return p;
}

static void read_loss_config(Trainer *t) {
    t->beta = 1.0;
    t->loss_name = "?";
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(t->step.json, "config");
    const cJSON *loss = c ? cJSON_GetObjectItemCaseSensitive(c, "loss") : NULL;
    const cJSON *name = loss ? cJSON_GetObjectItemCaseSensitive(loss, "name") : NULL;
    const cJSON *params = loss ? cJSON_GetObjectItemCaseSensitive(loss, "params") : NULL;
    const cJSON *beta = params ? cJSON_GetObjectItemCaseSensitive(params, "beta") : NULL;
    if (cJSON_IsString(name)) t->loss_name = name->valuestring;
    if (cJSON_IsNumber(beta)) t->beta = beta->valuedouble;
}

int trainer_open(Trainer *t, const TrainOptions *o, FILE *log, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->o = o;
    t->log = log;
    char sub[768];
    /* dlopen searches the library path for a name without a slash: ./name is the file here */
    char local[4096];
    const char *path = o->step_path;
    if (!strchr(path, '/') && (size_t)snprintf(local, sizeof local, "./%s", path) < sizeof local) path = local;
    if (dpoc_step_open(&t->step, path, err, errlen)) return -1;
    t->step_open = 1;
    DpocStep *s = &t->step;
    if (trainer_mesh_setup(t, err, errlen)) return -1;
    if (batch_layout_init(&t->L, s, sub, sizeof sub) || opt_plan_init(&t->plan, s, sub, sizeof sub)) {
        snprintf(err, errlen, "%s: %s", o->step_path, sub);
        return -1;
    }
    int bad = 0;
    int64_t rows = 2 * t->L.B;
    t->out_loss = find_output(s, "loss", 1, 0, sub, sizeof sub, &bad);
    if (!bad) t->out_logps = find_output(s, "logps", rows, 1, sub, sizeof sub, &bad);
    if (!bad) t->out_logits = find_output(s, "logits_sum", rows, 0, sub, sizeof sub, &bad);
    if (!bad) t->out_ref = find_output(s, "ref_logps", rows, 0, sub, sizeof sub, &bad);
    if (bad) return snprintf(err, errlen, "%s: %s", o->step_path, sub), -1;
    t->ref_mode = t->L.ref_logps ? TRAIN_REF_PRECOMPUTED : t->out_ref ? TRAIN_REF_ONLINE : TRAIN_REF_NONE;
    DpocTensorInfo ai;
    t->adamw = dpoc_step_find(s, "adamw", DPOC_ROLE_INPUT, &ai);
    if (t->adamw && (ai.dtype != DPOC_DT_F64 || ai.numel != 8))
        return snprintf(err, errlen, "%s: the step's input 'adamw' is not f64[8]", o->step_path), -1;
    read_loss_config(t);
    t->train_flops = kprof_entry_flops(s, "train_step", 0.0);
    t->masked_flops = kprof_entry_flops(s, "train_step", 1.0) - t->train_flops;
    t->opt_flops = kprof_entry_flops(s, "optimizer_step", 1.0);
    t->config_hash = train_config_hash(s);
    t->slot = calloc((size_t)t->L.B, sizeof *t->slot);
    t->labels = calloc((size_t)rows, sizeof *t->labels);
    t->idx = calloc((size_t)t->L.B, sizeof *t->idx);
    if (!t->slot || !t->labels || !t->idx) return snprintf(err, errlen, "out of memory"), -1;
    int threads = o->threads > 0 ? o->threads : tpool_default_threads();
    if (!(t->pool = tpool_create(threads, err, errlen))) return -1;
    if (trainer_mesh_services(t, tpool_services(t->pool))) return snprintf(err, errlen, "out of memory"), -1;
    double *costs = malloc((size_t)(s->nkernels ? s->nkernels : 1) * sizeof *costs);
    if (!costs) return snprintf(err, errlen, "out of memory"), -1;
    for (int k = 0; k < s->nkernels; k++) {
        const DpocKernelInfo *ki = &s->kernels[k];
        costs[k] = ((double)ki->flops + (double)ki->bytes) / (double)(ki->work > 0 ? ki->work : 1);
    }
    int bad_costs = tpool_set_costs(t->pool, s->manifest->kernels, costs, s->nkernels,
                                    o->kernel_grain < 0 ? TRAIN_KERNEL_GRAIN : o->kernel_grain);
    free(costs);
    if (bad_costs) return snprintf(err, errlen, "out of memory"), -1;
    return 0;
}

void trainer_close(Trainer *t) {
    tpool_destroy(t->pool);
    opt_plan_free(&t->plan);
    free(t->acc);
    free(t->slot);
    free(t->labels);
    free(t->idx);
    free(t->shard);
    free(t->svc_ctx);
    if (t->step_open) dpoc_step_close(&t->step);
    memset(t, 0, sizeof *t);
}

/* ---- data -------------------------------------------------------------------- */

static int check_ids(const Trainer *t, const RecPair *p, const char *path, uint64_t i, char *err, size_t errlen) {
    for (int h = 0; h < 2; h++)
        for (uint32_t k = 0; k < p->len[h] && (int64_t)k <= t->L.T; k++)
            if (p->ids[h][k] < 0 || p->ids[h][k] >= t->L.vocab)
                return snprintf(err, errlen, "%s: record %" PRIu64 ": %s token %u is id %d, outside the model's vocabulary [0, %lld)",
                                path, i, h ? "rejected" : "chosen", k, p->ids[h][k], (long long)t->L.vocab),
                       -1;
    return 0;
}

int trainer_open_data(Trainer *t, TrainData *d, const char *path, int need_ref, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    d->path = path;
    if (!(d->r = rec_open(path, err, errlen))) return -1;
    const RecHeader *h = rec_header(d->r);
    d->npairs = h->npairs;
    if (h->vocab_size > 0 && h->vocab_size > t->L.vocab)
        return snprintf(err, errlen, "%s: its token ids range over a vocabulary of %d but the model's has %lld", path,
                        h->vocab_size, (long long)t->L.vocab),
               -1;
    if (need_ref) {
        if (!h->has_ref)
            return snprintf(err, errlen,
                            "%s has no reference log-probs, which %s needs (reference: precomputed); make them with "
                            "`dporun %s --data %s --ref-logps -o OUT.rec`",
                            path, t->o->step_path, t->o->step_path, path),
                   -1;
        if (h->ref_weights_hash != t->ref_hash) {
            if (!t->o->force_ref)
                return snprintf(err, errlen,
                                "%s: its reference log-probs were computed with weights of hash %016" PRIx64
                                " but the reference weights here hash to %016" PRIx64
                                " (recompute them with --ref-logps, or pass --force-ref to use them anyway)",
                                path, h->ref_weights_hash, t->ref_hash),
                       -1;
            fprintf(t->log,
                    "dporun: warning: %s: reference log-probs from weights %016" PRIx64 ", reference weights here %016" PRIx64
                    "; used anyway (--force-ref)\n",
                    path, h->ref_weights_hash, t->ref_hash);
        }
    }
    d->usable = malloc((d->npairs ? d->npairs : 1) * sizeof *d->usable);
    uint32_t longest = 0;
    if (!d->usable) return snprintf(err, errlen, "out of memory"), -1;
    for (uint64_t i = 0; i < d->npairs; i++) {
        RecPair p;
        if (rec_get(d->r, i, &p, err, errlen) || check_ids(t, &p, path, i, err, errlen)) return -1;
        if (need_ref && !p.has_ref)
            return snprintf(err, errlen, "%s: record %" PRIu64 " has no reference log-probs", path, i), -1;
        BatchPairInfo info;
        batch_pair_info(&p, t->L.T, &info);
        d->ntruncated += info.truncated != 0;
        if (t->L.positions && (int64_t)info.packed > t->L.row) {
            d->nunfit++;
            if (info.packed > longest) longest = info.packed;
            continue;
        }
        if (info.labels[0] > 0 && info.labels[1] > 0) d->usable[d->nusable++] = i;
    }
    if (d->nunfit)
        fprintf(t->log,
                "dporun: warning: %s: %" PRIu64 " of %" PRIu64 " pairs need more than the step's packed_len of %lld tokens "
                "(the longest %u) and are skipped; compile with a larger train.packed_len to keep them\n",
                path, d->nunfit, d->npairs, (long long)t->L.row, longest);
    if (d->ntruncated)
        fprintf(t->log, "dporun: warning: %s: %" PRIu64 " of %" PRIu64 " pairs are longer than the step's %lld tokens and lose label tokens\n",
                path, d->ntruncated, d->npairs, (long long)t->L.T);
    if (d->nusable + d->nunfit < d->npairs)
        fprintf(t->log, "dporun: warning: %s: %" PRIu64 " pairs have no label token within %lld tokens on one side and are skipped\n",
                path, d->npairs - d->nusable - d->nunfit, (long long)t->L.T);
    if (!d->nusable) return snprintf(err, errlen, "%s: no usable pairs", path), -1;
    return 0;
}

void trainer_close_data(TrainData *d) {
    rec_close(d->r);
    free(d->usable);
    memset(d, 0, sizeof *d);
}

int trainer_pack(Trainer *t, RecReader *r, const uint64_t *idx, int64_t n, int64_t *tokens, char *err,
                 size_t errlen) {
    batch_clear(&t->L);
    memset(t->slot, 0, (size_t)t->L.B * sizeof *t->slot);
    char sub[512];
    for (int64_t k = 0; k < n; k++) {
        RecPair p;
        if (rec_get(r, idx[k], &p, err, errlen)) return -1;
        if (batch_put(&t->L, k, &p, idx[k], &t->slot[k], sub, sizeof sub))
            return snprintf(err, errlen, "%s", sub), -1;
        *tokens += (int64_t)t->slot[k].tokens[0] + t->slot[k].tokens[1];
    }
    return 0;
}

int trainer_forward(Trainer *t, MetricsAcc *acc, int64_t n, int64_t tokens, char *err, size_t errlen) {
    if (dpoc_step_train(&t->step, &t->svc, err, errlen)) {
        const char *me = trainer_mesh_error(t);
        if (me) {
            size_t n = strlen(err);
            if (n < errlen) snprintf(err + n, errlen - n, " (%s)", me);
        }
        return -1;
    }
    int64_t B = t->L.B;
    for (int64_t k = 0; k < B; k++) {
        t->labels[k] = t->slot[k].labels[0];
        t->labels[B + k] = t->slot[k].labels[1];
    }
    const float *ref = t->ref_mode == TRAIN_REF_PRECOMPUTED ? t->L.ref_logps
                       : t->ref_mode == TRAIN_REF_ONLINE    ? t->out_ref
                                                            : NULL;
    double loss = t->out_loss ? (double)*t->out_loss : 0.0;
    metrics_add(acc, loss, B, n, t->out_logps, ref, t->out_logits, t->labels, tokens);
    return 0;
}
