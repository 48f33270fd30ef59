/* train_loop.c — dporun's training loop.
 *
 * train_run sets up (trainer_open; parameters from a checkpoint being
 * resumed, from --init, or from the seed; the online reference copied from
 * them; the data checked and scanned), then runs optimizer steps k = s+1 ..
 * total. One step:
 *   for each of grad_accum micro-batches: pack the next B pairs of the
 *     order, run train_step, add its outputs to the metrics, and (when
 *     accumulating) copy or add the gradients into the accumulator;
 *   grads = accumulator / grad_accum (an f32 division per element);
 *   norm = global L2 norm in double (fixed block order); clip by it;
 *   lr = schedule(k); AdamW through the step's optimizer_step, or SGD here;
 *   write the metrics line; evaluate and save when due.
 * Evaluation runs train_step (no update) over the held-out pairs in file
 * order, in full micro-batches (a last partial one is left out and said
 * so), so its loss is exactly the step's loss definition.
 * A metrics file is rewritten on resume to keep only the lines up to the
 * resumed step, then appended to; lines are flushed one by one.
 * On a dp x tp mesh (train_mesh.h, docs/mpi.md) each micro-batch is this
 * dp rank's block of a global one, the metrics and the norm are reduced
 * over the mesh, ZeRO-1 (train_zero.c) may replace optimizer_step, and
 * world rank 0 alone writes the metrics file (every rank logs to `log`,
 * which dporun points at /dev/null on ranks other than 0).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cpu_peak.h"
#include "kprof.h"
#include "train_hash.h"
#include "mesh.h"
#include "train_internal.h"
#include "train_mesh.h"
#include "train_ckpt_mesh.h"
#include "train_zero.h"
#include "train_params.h"

/* ---- the metrics file -------------------------------------------------------- */

/* Keeps the lines of an existing file whose "step" is <= upto (written to a
 * temporary name, fsynced, renamed), then opens it for appending. */
static FILE *metrics_open(const char *path, int resuming, uint64_t upto, char *err, size_t errlen) {
    if (!resuming) {
        FILE *f = fopen(path, "w");
        if (!f) snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return f;
    }
    FILE *in = fopen(path, "r");
    if (in) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *out = fopen(tmp, "w");
        if (!out) {
            fclose(in);
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            return NULL;
        }
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, in) > 0) {
            cJSON *j = cJSON_Parse(line);
            const cJSON *st = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
            if (cJSON_IsNumber(st) && st->valuedouble <= (double)upto) fputs(line, out);
            cJSON_Delete(j);
        }
        free(line);
        fclose(in);
        int bad = fflush(out) != 0 || fsync(fileno(out)) != 0;
        bad |= fclose(out) != 0;
        if (bad || rename(tmp, path) != 0) {
            snprintf(err, errlen, "cannot rewrite %s: %s", path, strerror(errno));
            return NULL;
        }
    }
    FILE *f = fopen(path, "a");
    if (!f) snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return f;
}

static int emit(FILE *f, MetricsLine *l, char *err, size_t errlen) {
    const char *text = metrics_line_end(l);
    if (!text) return snprintf(err, errlen, "out of memory"), -1;
    if (!f) return 0;
    if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0)
        return snprintf(err, errlen, "cannot write the metrics file: %s", strerror(errno)), -1;
    return 0;
}

/* ---- evaluation ------------------------------------------------------------------ */

static int evaluate(Trainer *t, TrainData *ev, uint64_t step, double epoch, FILE *mf, MetricsLine *line, char *err,
                    size_t errlen) {
    int64_t B = t->L.B, G = B * t->svc.dp_size, nb = (int64_t)(ev->nusable / (uint64_t)G);
    MetricsAcc acc;
    metrics_reset(&acc, t->beta, (double)t->L.vocab);
    double t0 = trainer_now();
    for (int64_t b = 0; b < nb; b++) {
        int64_t tokens = 0;
        if (trainer_pack(t, ev->r, ev->usable + b * G + trainer_mesh_first(t), B, &tokens, err, errlen) ||
            trainer_forward(t, &acc, B, tokens, err, errlen))
            return -1;
    }
    if (trainer_mesh_metrics(t, &acc, err, errlen)) return -1;
    double dt = trainer_now() - t0;
    MetricsValues v;
    metrics_finish(&acc, &v);
    metrics_line_begin(line);
    metrics_line_int(line, "step", (int64_t)step);
    metrics_line_num(line, "epoch", epoch);
    metrics_line_values(line, "eval/", &v);
    metrics_line_int(line, "eval/pairs", v.pairs);
    if (!t->o->deterministic_metrics) metrics_line_num(line, "eval/tokens_per_second", dt > 0 ? (double)v.tokens / dt : 0);
    if (emit(mf, line, err, errlen)) return -1;
    fprintf(t->log,
            "%seval @ step %" PRIu64 ": loss %.4f rewards/accuracies %.4f rewards/margins %.4f rewards/chosen %.4f "
            "rewards/rejected %.4f (%" PRId64 " pairs)\n",
            t->tty ? "\r\033[K" : "", step, v.loss, v.rewards_accuracies,
            v.rewards_margins, v.rewards_chosen, v.rewards_rejected, v.pairs);
    return 0;
}

/* ---- setup ------------------------------------------------------------------------ */

static void config_from_options(TrainConfig *c, const TrainOptions *o) {
    memset(c, 0, sizeof *c);
    c->optimizer = o->optimizer;
    c->lr = o->lr;
    c->weight_decay = o->weight_decay;
    c->beta1 = o->beta1;
    c->beta2 = o->beta2;
    c->eps = o->eps;
    c->max_grad_norm = o->max_grad_norm;
    c->schedule = o->schedule;
    c->grad_accum = o->grad_accum;
    c->shuffle = o->shuffle;
    c->seed = o->seed;
}

static const char *ref_mode_name(TrainRefMode m) {
    return m == TRAIN_REF_PRECOMPUTED ? "precomputed" : m == TRAIN_REF_ONLINE ? "online" : "none";
}

static uint64_t plan_total(const TrainOptions *o, uint64_t usable, int64_t per_step) {
    if (o->steps) return o->steps;
    double e = o->epochs > 0 ? o->epochs : 1.0;
    double s = ceil(e * (double)usable / (double)per_step);
    return s < 1 ? 1 : (uint64_t)s;
}

typedef struct Run {
    Trainer t;
    TrainData data, eval;
    BatchOrder order;
    Ckpt *resume;
    FILE *mf;
    MetricsLine line;
    uint64_t start; /* optimizer steps done before this run */
} Run;

static int setup(Run *r, const TrainOptions *o, FILE *log, char *err, size_t errlen) {
    Trainer *t = &r->t;
    if (trainer_open(t, o, log, err, errlen)) return -1;
    DpocStep *s = &t->step;
    if (!s->manifest->train_step) return snprintf(err, errlen, "%s has no train_step entry", o->step_path), -1;
    if (!t->out_loss) return snprintf(err, errlen, "%s: the step has no output 'loss'", o->step_path), -1;
    config_from_options(&t->cfg, o);
    uint64_t epoch = 0, pos = 0;
    if (o->resume_path) {
        if (!(r->resume = trainer_open_ckpt(t, o->resume_path, err, errlen))) return -1;
        if (trainer_resume(t, r->resume, &r->start, &epoch, &pos, err, errlen)) return -1;
    } else {
        if (o->init_path || o->init_hf_path) {
            if (trainer_mesh_load_init(t, err, errlen)) return -1;
        } else {
            trainer_mesh_init_params(t, t->cfg.seed);
        }
        if (train_copy_ref(s, err, errlen)) return -1;
        if (trainer_mesh_weights_hash(t, &t->ref_hash, err, errlen)) return -1;
    }
    if (t->cfg.optimizer == TRAIN_ADAMW && (!s->manifest->optimizer_step || !t->adamw))
        return snprintf(err, errlen, "%s was compiled without the AdamW optimizer_step entry; use --optimizer sgd",
                        o->step_path),
               -1;
    if (t->cfg.grad_accum < 1) return snprintf(err, errlen, "--grad-accum must be at least 1"), -1;
    if (trainer_zero_setup(t, err, errlen)) return -1;
    int need_ref = t->ref_mode == TRAIN_REF_PRECOMPUTED;
    if (trainer_open_data(t, &r->data, o->data_path, need_ref, err, errlen)) return -1;
    if (o->eval_path) {
        if (trainer_open_data(t, &r->eval, o->eval_path, need_ref, err, errlen)) return -1;
        uint64_t G = (uint64_t)(t->L.B * t->svc.dp_size); /* the global micro-batch */
        if (r->eval.nusable < G)
            return snprintf(err, errlen, "%s: %" PRIu64 " usable pairs, fewer than one micro-batch of %lld",
                            o->eval_path, r->eval.nusable, (long long)G),
                   -1;
        if (r->eval.nusable % G)
            fprintf(log, "dporun: note: evaluation uses the first %" PRIu64 " of %" PRIu64 " usable pairs of %s (whole micro-batches of %lld)\n",
                    r->eval.nusable / G * G, r->eval.nusable, o->eval_path, (long long)G);
    }
    if (r->resume && t->saved_usable >= 0 && t->saved_usable != (double)r->data.nusable)
        fprintf(log, "dporun: warning: %s has %" PRIu64 " usable pairs but the resumed run's data had %.0f; the data "
                     "order will not continue the original run's\n",
                o->data_path, r->data.nusable, t->saved_usable);
    int64_t per_step = t->L.B * t->svc.dp_size * t->cfg.grad_accum;
    if (!o->resume_path || (o->set & TRAIN_SET_STEPS)) t->cfg.total = plan_total(o, r->data.nusable, per_step);
    if (!o->resume_path || (o->set & TRAIN_SET_WARMUP))
        t->cfg.warmup = o->warmup_steps >= 0 ? (uint64_t)o->warmup_steps
                                             : (uint64_t)llround(o->warmup_ratio * (double)t->cfg.total);
    if (t->cfg.grad_accum > 1) {
        size_t bytes = ((size_t)s->region_size[DPOC_R_PARAMS] + 63) / 64 * 64;
        if (!(t->acc = aligned_alloc(64, bytes ? bytes : 64))) return snprintf(err, errlen, "out of memory"), -1;
        memset(t->acc, 0, bytes);
    }
    uint64_t *usable = r->data.usable;
    r->data.usable = NULL;
    if (batch_order_init(&r->order, usable, r->data.nusable, t->cfg.seed, t->cfg.shuffle, err, errlen)) return -1;
    if (r->resume) batch_order_seek(&r->order, epoch, pos);
    if (o->metrics_path && trainer_writes(t) && !(r->mf = metrics_open(o->metrics_path, r->resume != NULL, r->start, err, errlen)))
        return -1;
    return 0;
}

static void print_plan(const Run *r) {
    const Trainer *t = &r->t;
    const TrainConfig *c = &t->cfg;
    fprintf(t->log,
            "dporun: %s: %lld parameters, micro-batch %lld pairs x %lld tokens, loss %s (beta %g), reference %s, "
            "%d threads\n",
            t->o->step_path, (long long)t->plan.nelems, (long long)t->L.B, (long long)t->L.T, t->loss_name, t->beta,
            ref_mode_name(t->ref_mode), tpool_threads(t->pool));
    fprintf(t->log, "dporun: %s: %" PRIu64 " usable pairs; %" PRIu64 " steps of %d x %lld pairs (%.3g epochs)%s\n",
            r->data.path, r->data.nusable, c->total, c->grad_accum, (long long)(t->L.B * t->svc.dp_size),
            (double)c->total * (double)c->grad_accum * (double)(t->L.B * t->svc.dp_size) / (double)r->data.nusable,
            r->resume ? ", resumed" : "");
    if (t->mesh)
        fprintf(t->log, "dporun: mesh dp=%d x tp=%d: %d processes, %lld pairs per dp rank\n", t->svc.dp_size,
                t->svc.tp_size, t->svc.dp_size * t->svc.tp_size, (long long)t->L.B);
    if (c->optimizer == TRAIN_ADAMW)
        fprintf(t->log, "dporun: adamw lr %g betas (%g, %g) eps %g weight decay %g", c->lr, c->beta1, c->beta2, c->eps,
                c->weight_decay);
    else
        fprintf(t->log, "dporun: sgd lr %g weight decay %g", c->lr, c->weight_decay);
    fprintf(t->log, ", %s schedule, %" PRIu64 " warm-up steps, clipping %s", opt_schedule_name(c->schedule), c->warmup,
            c->max_grad_norm > 0 ? "on" : "off");
    if (c->max_grad_norm > 0) fprintf(t->log, " at %g", c->max_grad_norm);
    fprintf(t->log, "\n");
    if (r->resume)
        fprintf(t->log, "dporun: resuming %s at step %" PRIu64 " (epoch %" PRIu64 ", position %" PRIu64 ")\n",
                ckpt_path(r->resume), r->start, r->order.epoch, r->order.pos);
    if (r->start >= c->total)
        fprintf(t->log, "dporun: nothing to do: the run is at step %" PRIu64 " of %" PRIu64 " (--steps sets a new total)\n",
                r->start, c->total);
}

static void teardown(Run *r) {
    if (r->mf) fclose(r->mf);
    if (r->resume) ckpt_close(r->resume);
    metrics_line_free(&r->line);
    batch_order_free(&r->order);
    trainer_close_data(&r->data);
    trainer_close_data(&r->eval);
    trainer_close(&r->t);
}

/* ---- one optimizer step -------------------------------------------------------- */

/* *flops: the work done, for mfu (the masked head's matmuls on each
 * micro-batch's loss-mask rows, kprof.h) */
static int one_step(Run *r, uint64_t k, MetricsValues *v, double *norm, double *lr, double *flops, char *err,
                    size_t errlen) {
    Trainer *t = &r->t;
    DpocStep *s = &t->step;
    const TrainConfig *c = &t->cfg;
    int64_t B = t->L.B;
    uint64_t *idx = t->idx;
    int64_t G = B * t->svc.dp_size, first = trainer_mesh_first(t);
    MetricsAcc acc;
    metrics_reset(&acc, t->beta, (double)t->L.vocab);
    float *grads = (float *)s->regions[DPOC_R_GRADS];
    for (int m = 0; m < c->grad_accum; m++) {
        for (int64_t q = 0; q < G; q++) { /* the global micro-batch; this dp rank's block of it */
            uint64_t x = batch_order_next(&r->order);
            if (q >= first && q < first + B) idx[q - first] = x;
        }
        int64_t tokens = 0;
        if (trainer_pack(t, r->data.r, idx, B, &tokens, err, errlen)) return -1;
        *flops += t->train_flops + t->masked_flops * kprof_live_share(s);
        if (trainer_forward(t, &acc, B, tokens, err, errlen)) return -1;
        if (c->grad_accum > 1) opt_accumulate(&t->plan, t->pool, t->acc, grads, m == 0);
    }
    if (c->grad_accum > 1) opt_divide(&t->plan, t->pool, grads, t->acc, c->grad_accum);
    if (trainer_mesh_metrics(t, &acc, err, errlen) || trainer_mesh_norm(t, grads, norm, err, errlen)) return -1;
    double coef = opt_clip_coef(*norm, c->max_grad_norm);
    if (coef < 1.0) opt_scale(&t->plan, t->pool, grads, coef);
    *lr = opt_schedule_lr(c->schedule, c->lr, c->warmup, c->total, k);
    if (c->optimizer == TRAIN_ADAMW) {
        opt_adamw_hparams(t->adamw, *lr, c->beta1, c->beta2, c->eps, c->weight_decay, k);
        if (t->zero ? trainer_zero_step(t, err, errlen) : dpoc_step_optimizer(s, &t->svc, err, errlen)) return -1;
    } else {
        opt_sgd(&t->plan, t->pool, (float *)s->regions[DPOC_R_PARAMS], grads, *lr, c->weight_decay);
    }
    metrics_finish(&acc, v);
    return 0;
}

int train_run(const TrainOptions *o, FILE *log, char *err, size_t errlen) {
    Run *r = calloc(1, sizeof *r);
    if (!r) return snprintf(err, errlen, "out of memory"), -1;
    int rc = -1;
    if (setup(r, o, log, err, errlen)) goto out;
    Trainer *t = &r->t;
    const TrainConfig *c = &t->cfg;
    print_plan(r);
    int tty = t->tty = o->progress == 1 || (o->progress < 0 && isatty(fileno(log)));
    uint64_t log_every = o->log_every ? o->log_every : (c->total >= 20 ? c->total / 20 : 1);
    char how[384];
    CpuVector vec = cpu_vector_detect();
    double peak = o->peak_gflops > 0 ? o->peak_gflops
                                     : cpu_peak_gflops(tpool_threads(t->pool), cpu_max_clock_ghz(), &vec, how, sizeof how);
    if (!(o->peak_gflops > 0)) fprintf(log, "dporun: peak estimate for mfu: %s\n", how);
    double epoch_now = (double)r->order.epoch + (double)r->order.pos / (double)r->order.n;
    if (o->eval_path && o->eval_first && !r->resume &&
        evaluate(t, &r->eval, r->start, epoch_now, r->mf, &r->line, err, errlen))
        goto out;
    double run_t0 = trainer_now();
    uint64_t k = r->start;
    int stopped = 0;
    while (k < c->total) {
        k++;
        double t0 = trainer_now(), norm, lr, c0 = trainer_mesh_comm(t, NULL);
        double step_flops = c->optimizer == TRAIN_ADAMW ? t->opt_flops : 0;
        MetricsValues v;
        if (one_step(r, k, &v, &norm, &lr, &step_flops, err, errlen)) goto out;
        double dt = trainer_now() - t0;
        epoch_now = (double)r->order.epoch + (double)r->order.pos / (double)r->order.n;
        MetricsLine *l = &r->line;
        metrics_line_begin(l);
        metrics_line_int(l, "step", (int64_t)k);
        metrics_line_num(l, "epoch", epoch_now);
        metrics_line_values(l, "", &v);
        metrics_line_num(l, "grad_norm", norm);
        metrics_line_num(l, "learning_rate", lr);
        double tok_s = dt > 0 ? (double)v.tokens / dt : 0;
        if (!o->deterministic_metrics) {
            metrics_line_num(l, "tokens_per_second", tok_s);
            metrics_line_num(l, "mfu", dt > 0 && peak > 0 ? step_flops / dt / (peak * 1e9) : 0);
            if (t->mesh) metrics_line_num(l, "comm_seconds", trainer_mesh_comm(t, NULL) - c0);
        }
        if (emit(r->mf, l, err, errlen)) goto out;
        double elapsed = trainer_now() - run_t0;
        double eta = elapsed / (double)(k - r->start) * (double)(c->total - k);
        if (tty || k % log_every == 0 || k == c->total)
            metrics_progress(log, tty, k, c->total, v.loss, v.rewards_accuracies, tok_s, eta);
        if (o->stop && *o->stop) stopped = 1;
        if (t->mesh && trainer_mesh_agree(t, &stopped, err, errlen)) goto out;
        if (o->eval_path && ((o->eval_every && k % o->eval_every == 0) || k == c->total)) {
            if (evaluate(t, &r->eval, k, epoch_now, r->mf, &r->line, err, errlen)) goto out;
        }
        if (o->save_dir && ((o->save_every && k % o->save_every == 0) || k == c->total || stopped)) {
            if (trainer_save(t, o->save_dir, k, &r->order, err, errlen)) goto out;
        }
        if (stopped) break;
    }
    if (tty) fprintf(log, "\n");
    if (stopped) {
        fprintf(log, "dporun: stopped after step %" PRIu64 " of %" PRIu64 "%s\n", k, c->total,
                o->save_dir ? "; checkpoint saved" : "");
        rc = 1;
    } else {
        fprintf(log, "dporun: done: %" PRIu64 " steps in %.1f s\n", k - r->start, trainer_now() - run_t0);
        if (t->mesh && k > r->start) {
            int64_t calls = 0;
            double cs = trainer_mesh_comm(t, &calls);
            fprintf(log, "dporun: rank 0 spent %.3f s in %lld collectives (%.1f ms per step)\n", cs, (long long)calls,
                    1e3 * cs / (double)(k - r->start));
        }
        rc = 0;
        const char *dbg = getenv("DPOC_DEBUG"); /* per-kernel table (runtime/kprof.h) */
        if (dbg && atoi(dbg) >= 2 && kprof_print(&t->step, &t->svc, "train_step", 3, atoi(dbg) >= 3 ? 0 : 30, log)) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
out:
    teardown(r);
    free(r);
    return rc;
}
