/* train_reflogps.c — `dporun STEP --data x.rec --ref-logps -o y.rec`.
 *
 * Precomputes the reference log-probs a step with `reference: precomputed`
 * trains against. The parameters are the ones training would start from
 * (--init CKPT, or the seeded initialisation), and their hash
 * (train_weights_hash) goes into y.rec's header so that training can check
 * it used the same reference. Pairs are packed exactly as training packs
 * them (same truncation) in micro-batches of the step's B, in file order;
 * the last micro-batch's unused slots stay empty (rows are independent in
 * the forward pass, so they change nothing). Each record is then read again
 * and written with its two summed log-probs; y.rec is written under a
 * temporary name and renamed when complete.
 * On a mesh (train_mesh.h) each global micro-batch of dp x B pairs is cut
 * into the dp ranks' blocks, the log-probs are gathered over dp, and world
 * rank 0 alone writes y.rec.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train_hash.h"
#include "mesh.h"
#include "train_internal.h"
#include "train_mesh.h"
#include "train_params.h"

int train_ref_logps(const TrainOptions *o, FILE *log, char *err, size_t errlen) {
    if (!o->out_path) return snprintf(err, errlen, "--ref-logps needs -o OUT.rec"), -1;
    if (!strcmp(o->out_path, o->data_path))
        return snprintf(err, errlen, "-o %s would overwrite the input; choose another name", o->out_path), -1;
    Trainer *t = calloc(1, sizeof *t);
    if (!t) return snprintf(err, errlen, "out of memory"), -1;
    RecReader *r = NULL;
    RecWriter *w = NULL;
    float *vals = NULL;
    int rc = -1;
    if (trainer_open(t, o, log, err, errlen)) goto out;
    DpocStep *s = &t->step;
    if (!s->manifest->logps) {
        snprintf(err, errlen, "%s has no logps entry", o->step_path);
        goto out;
    }
    if (o->init_path || o->init_hf_path) {
        if (trainer_mesh_load_init(t, err, errlen)) goto out;
    } else {
        trainer_mesh_init_params(t, o->seed);
    }
    if (train_copy_ref(s, err, errlen)) goto out;
    uint64_t hash;
    if (trainer_mesh_weights_hash(t, &hash, err, errlen)) goto out;
    if (!(r = rec_open(o->data_path, err, errlen))) goto out;
    RecHeader h = *rec_header(r);
    if (h.vocab_size > 0 && h.vocab_size > t->L.vocab) {
        snprintf(err, errlen, "%s: its token ids range over a vocabulary of %d but the model's has %lld", o->data_path,
                 h.vocab_size, (long long)t->L.vocab);
        goto out;
    }
    h.has_ref = 1;
    h.ref_weights_hash = hash;
    int64_t B = t->L.B, D = t->svc.dp_size, G = B * D, first = trainer_mesh_first(t);
    int writer = trainer_writes(t);
    if (!(vals = malloc((size_t)(2 * G) * sizeof *vals))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (writer && !(w = rec_writer_open(o->out_path, &h, err, errlen))) goto out;
    uint64_t n = h.npairs, truncated = 0;
    double t0 = trainer_now(), last = t0;
    char sub[768];
    for (uint64_t i = 0; i < n; i += (uint64_t)G) {
        if (o->stop && *o->stop) {
            snprintf(err, errlen, "interrupted after %" PRIu64 " of %" PRIu64 " pairs; %s not written", i, n, o->out_path);
            goto out;
        }
        int64_t m = (int64_t)(n - i < (uint64_t)G ? n - i : (uint64_t)G); /* pairs of this global batch */
        int64_t mine = m - first < 0 ? 0 : m - first > B ? B : m - first;
        for (int64_t k = 0; k < mine; k++) t->idx[k] = i + (uint64_t)(first + k);
        int64_t tokens = 0;
        if (trainer_pack(t, r, t->idx, mine, &tokens, sub, sizeof sub)) {
            snprintf(err, errlen, "%s: %s", o->data_path, sub);
            goto out;
        }
        if (dpoc_step_logps(s, &t->svc, err, errlen)) goto out;
        if (D == 1)
            memcpy(vals, t->out_logps, (size_t)(2 * B) * sizeof *vals);
        else if (t->mesh->all_gather(t->mesh->ctx, DPOC_AXIS_DP, t->out_logps, vals, 2 * B * (int64_t)sizeof *vals)) {
            snprintf(err, errlen, "gathering log-probs over dp: %s", t->mesh->error(t->mesh->ctx));
            goto out;
        }
        for (int64_t k = 0; k < mine; k++) truncated += t->slot[k].truncated != 0;
        for (int64_t q = 0; writer && q < m; q++) {
            RecPair p;
            const float *v = vals + (q / B) * 2 * B; /* rank q / B's [chosen B | rejected B] */
            if (rec_get(r, i + (uint64_t)q, &p, err, errlen)) goto out;
            p.has_ref = 1;
            p.ref_logps[0] = v[q % B];
            p.ref_logps[1] = v[B + q % B];
            if (rec_writer_add(w, &p, err, errlen)) goto out;
        }
        double now = trainer_now();
        if (now - last > 2.0 && isatty(fileno(log))) {
            fprintf(log, "\r\033[Kdporun: reference log-probs: %" PRIu64 "/%" PRIu64 " pairs", i + (uint64_t)m, n);
            fflush(log);
            last = now;
        }
    }
    if (D > 1) { /* every rank counted its own pairs */
        double tr = (double)truncated;
        if (t->mesh->all_reduce_sum(t->mesh->ctx, DPOC_AXIS_DP, &tr, 1, DPOC_COLL_F64)) {
            snprintf(err, errlen, "reducing over dp: %s", t->mesh->error(t->mesh->ctx));
            goto out;
        }
        truncated = (uint64_t)tr;
    }
    RecWriter *done = w;
    w = NULL;
    if (done && rec_writer_close(done, err, errlen)) goto out;
    if (isatty(fileno(log)) && trainer_now() - t0 > 2.0) fprintf(log, "\n");
    fprintf(log, "dporun: wrote %s: %" PRIu64 " pairs with reference log-probs of weights %016" PRIx64 " (%.1f s)\n",
            o->out_path, n, hash, trainer_now() - t0);
    if (truncated)
        fprintf(log, "dporun: warning: %" PRIu64 " pairs are longer than the step's %lld tokens and lose label tokens\n",
                truncated, (long long)t->L.T);
    rc = 0;
out:
    if (w) rec_writer_abort(w);
    free(vals);
    rec_close(r);
    trainer_close(t);
    free(t);
    return rc;
}
