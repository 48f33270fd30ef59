/* test_dporun_unit.c — the runtime pieces dporun is made of, against hand-computed values.
 *
 * Each check compares with a value worked out by hand (schedules, SGD,
 * clipping, accumulation, AdamW's derived scalars, packing a pair, the
 * metrics' definitions, JSON number formatting) or computed independently
 * by a short Python implementation of the documented algorithm (the
 * shuffle, the initialisation, the weights hash; the script is in the
 * comment above each table). The thread pool is checked to run every chunk
 * exactly once, and the norm to be the same bits for 1 and 4 threads; its
 * stack limit check (tpool_stack_ensure) in forked children.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/batch.h"
#include "runtime/cpu_peak.h"
#include "runtime/metrics.h"
#include "runtime/optim_sched.h"
#include "runtime/threadpool.h"
#include "runtime/train_hash.h"
#include "runtime/train_params.h"

static int failures;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                            \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

static void near(double got, double want, double tol, const char *what) {
    CHECK(fabs(got - want) <= tol, "%s: got %.17g, want %.17g", what, got, want);
}

/* ---- a fake step: tensors in a params region, for the plan and the hash ---- */

typedef struct Fake {
    DpocStep s;
    DpocTensorInfo t[3];
    char names[3][32];
} Fake;

static void fake_add(Fake *f, const char *name, int ndim, const int64_t *shape, int64_t offset, int decay,
                     DpocRole role) {
    DpocTensorInfo *t = &f->t[f->s.ntensors];
    snprintf(f->names[f->s.ntensors], sizeof f->names[0], "%s", name);
    memset(t, 0, sizeof *t);
    t->name = f->names[f->s.ntensors];
    t->dtype = DPOC_DT_F32;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d], t->numel *= shape[d];
    t->nbytes = t->numel * 4;
    t->region = role == DPOC_ROLE_REF_PARAM ? DPOC_R_REF_PARAMS : DPOC_R_PARAMS;
    t->offset = offset;
    t->role = role;
    t->decay = decay;
    f->s.ntensors++;
}

static void fake_init(Fake *f, int64_t bytes) {
    memset(f, 0, sizeof *f);
    f->s.tensors = f->t;
    f->s.regions[DPOC_R_PARAMS] = calloc(1, (size_t)bytes);
    f->s.regions[DPOC_R_REF_PARAMS] = calloc(1, (size_t)bytes);
    f->s.region_size[DPOC_R_PARAMS] = bytes;
    f->s.region_size[DPOC_R_REF_PARAMS] = bytes;
}

static void fake_free(Fake *f) {
    free(f->s.regions[DPOC_R_PARAMS]);
    free(f->s.regions[DPOC_R_REF_PARAMS]);
}

/* ---- schedules -------------------------------------------------------------- */

static void test_schedules(void) {
    near(opt_schedule_lr(OPT_SCHED_CONSTANT, 1e-3, 0, 100, 1), 1e-3, 0, "constant k=1");
    near(opt_schedule_lr(OPT_SCHED_CONSTANT, 1e-3, 0, 100, 100), 1e-3, 0, "constant k=100");
    near(opt_schedule_lr(OPT_SCHED_CONSTANT, 1.0, 4, 100, 1), 0.25, 0, "constant warm-up k=1 of 4");
    /* linear, lr 1, warm-up 10 of 110 steps */
    near(opt_schedule_lr(OPT_SCHED_LINEAR, 1.0, 10, 110, 5), 0.5, 1e-15, "linear warm-up k=5");
    near(opt_schedule_lr(OPT_SCHED_LINEAR, 1.0, 10, 110, 10), 1.0, 1e-15, "linear warm-up k=10");
    near(opt_schedule_lr(OPT_SCHED_LINEAR, 1.0, 10, 110, 11), 1.0, 1e-15, "linear k=11: p=0");
    near(opt_schedule_lr(OPT_SCHED_LINEAR, 1.0, 10, 110, 60), 0.51, 1e-15, "linear k=60: p=49/100");
    near(opt_schedule_lr(OPT_SCHED_LINEAR, 1.0, 10, 110, 110), 0.01, 1e-15, "linear k=110: p=99/100");
    /* cosine, lr 2, no warm-up, 100 steps: p = (k-1)/100 */
    near(opt_schedule_lr(OPT_SCHED_COSINE, 2.0, 0, 100, 1), 2.0, 1e-15, "cosine k=1");
    near(opt_schedule_lr(OPT_SCHED_COSINE, 2.0, 0, 100, 51), 1.0, 1e-15, "cosine k=51: p=1/2");
    near(opt_schedule_lr(OPT_SCHED_COSINE, 2.0, 0, 100, 26), 1.0 + sqrt(0.5), 1e-15, "cosine k=26: p=1/4");
    near(opt_schedule_lr(OPT_SCHED_COSINE, 2.0, 0, 100, 101), 0.0, 1e-15, "cosine past the end");
    CHECK(opt_schedule_parse("cosine") == OPT_SCHED_COSINE && opt_schedule_parse("exp") == -1, "schedule names");
}

/* ---- optimizer passes --------------------------------------------------------- */

static void test_passes(void) {
    Fake f;
    /* tensor a: 3 floats at 0 (decay); tensor b: 20000 floats at byte 64 (no decay) */
    fake_init(&f, 64 + 20000 * 4);
    fake_add(&f, "a", 2, (int64_t[]){3, 1}, 0, 1, DPOC_ROLE_PARAM);
    fake_add(&f, "b", 1, (int64_t[]){20000}, 64, 0, DPOC_ROLE_PARAM);
    OptPlan plan;
    char err[256];
    CHECK(opt_plan_init(&plan, &f.s, err, sizeof err) == 0, "plan: %s", err);
    CHECK(plan.nblocks == 3 && plan.nelems == 20003, "plan: %lld blocks, %lld elements", (long long)plan.nblocks,
          (long long)plan.nelems);
    float *g = calloc(16 + 20000, sizeof *g), *acc = calloc(16 + 20000, sizeof *acc);
    g[0] = 3, g[1] = 4, g[2] = 0;
    for (int i = 0; i < 20000; i++) g[16 + i] = 0.5f;
    ThreadPool *p4 = tpool_create(4, err, sizeof err);
    CHECK(p4 != NULL, "pool: %s", err);
    double n1 = opt_global_norm(&plan, NULL, g), n4 = opt_global_norm(&plan, p4, g);
    near(n1, sqrt(5025.0), 0, "global norm: sqrt(9 + 16 + 20000/4)");
    CHECK(memcmp(&n1, &n4, sizeof n1) == 0, "norm differs between 1 and 4 threads");
    near(opt_clip_coef(4.0, 1.0), 1.0 / (4.0 + 1e-6), 0, "clip coef 1/(4+1e-6)");
    near(opt_clip_coef(0.5, 1.0), 1.0, 0, "no clipping below the norm");
    near(opt_clip_coef(100.0, 0.0), 1.0, 0, "max_grad_norm 0 disables clipping");
    /* accumulate three micro-batches 1, 2, 4 then divide by 3 */
    for (int m = 0; m < 3; m++) {
        float v = (float)(1 << m);
        g[0] = v, g[16] = v;
        opt_accumulate(&plan, p4, acc, g, m == 0);
    }
    CHECK(acc[0] == 7.0f && acc[16] == 7.0f, "accumulated %g %g, want 7", acc[0], acc[16]);
    opt_divide(&plan, p4, g, acc, 3);
    CHECK(g[0] == 0x1.2aaaaap+1f, "7/3 in f32: got %a", (double)g[0]);
    opt_scale(&plan, NULL, g, 0.5);
    CHECK(g[16] == 0x1.2aaaaap+0f, "scaled by 1/2: got %a", (double)g[16]);
    /* SGD: p = p - lr (g + wd p) on decayed tensors, lr 0.25, wd 0.5 */
    float *params = (float *)f.s.regions[DPOC_R_PARAMS];
    params[0] = 1, params[1] = 2, params[2] = -4;
    g[0] = 0.5f, g[1] = -1, g[2] = 2;
    params[16] = 1, g[16] = 0.5f;
    opt_sgd(&plan, p4, params, g, 0.25, 0.5);
    CHECK(params[0] == 0.75f, "sgd a[0]: 1 - 0.25*(0.5 + 0.5) = 0.75, got %g", params[0]);
    CHECK(params[1] == 2.0f, "sgd a[1]: 2 - 0.25*(-1 + 1) = 2, got %g", params[1]);
    CHECK(params[2] == -4.0f, "sgd a[2]: -4 - 0.25*(2 - 2) = -4, got %g", params[2]);
    CHECK(params[16] == 0.875f, "sgd b[0] (no decay): 1 - 0.25*0.5 = 0.875, got %g", params[16]);
    double h[8];
    opt_adamw_hparams(h, 1e-3, 0.9, 0.999, 1e-8, 0.01, 2);
    near(h[5], 0.19, 1e-15, "bias_correction1 = 1 - 0.9^2");
    near(h[6], 0.001999, 1e-15, "bias_correction2 = 1 - 0.999^2");
    CHECK(h[0] == 1e-3 && h[1] == 0.9 && h[2] == 0.999 && h[3] == 1e-8 && h[4] == 0.01 && h[7] == 0, "adamw fields");
    tpool_destroy(p4);
    free(g);
    free(acc);
    opt_plan_free(&plan);
    fake_free(&f);
}

/* ---- hashes and initialisation -------------------------------------------------- */

/* Python, from the documented byte stream:
 *   h = FNV basis; for (name, shape, vals): h = fnv(h, name + b'\0');
 *   h = fnv(h, pack('<I', ndim)); h = fnv(h, pack('<Q', d) for d); h = fnv(h, pack('<f', v) for v)
 * a [2] = (1, 2), w [2,1] = (-0.5, 0.25)  ->  0xdeab1759e666c52b */
static void test_hash_and_init(void) {
    Fake f;
    fake_init(&f, 128);
    fake_add(&f, "a", 1, (int64_t[]){2}, 0, 0, DPOC_ROLE_PARAM);
    fake_add(&f, "w", 2, (int64_t[]){2, 1}, 64, 1, DPOC_ROLE_PARAM);
    fake_add(&f, "ref:a", 1, (int64_t[]){2}, 0, 0, DPOC_ROLE_REF_PARAM);
    float *p = (float *)f.s.regions[DPOC_R_PARAMS];
    p[0] = 1, p[1] = 2, p[16] = -0.5f, p[17] = 0.25f;
    uint64_t h = train_weights_hash(&f.s, DPOC_ROLE_PARAM);
    CHECK(h == 0xdeab1759e666c52bull, "weights hash %016llx", (unsigned long long)h);
    char err[256];
    CHECK(train_copy_ref(&f.s, err, sizeof err) == 0, "copy ref: %s", err);
    float *r = (float *)f.s.regions[DPOC_R_REF_PARAMS];
    CHECK(r[0] == 1 && r[1] == 2, "ref:a copied from a");
    fake_free(&f);
    /* Python: key = mix64(fnv1a(name) ^ mix64(seed)); u = ((mix64(key + 2i + j) >> 11) + 0.5) / 2^53;
     * f32(0.02 * sqrt(-2 ln u1) * cos(2 pi u2)) */
    const char *up = "model.layers.0.mlp.up_proj.weight";
    CHECK(train_init_value(42, up, 2, 0) == 0x1.0c1964p-7f, "init %s[0] = %a", up, (double)train_init_value(42, up, 2, 0));
    CHECK(train_init_value(42, up, 2, 1) == 0x1.98a1f6p-6f, "init %s[1]", up);
    CHECK(train_init_value(42, up, 2, 7) == 0x1.606b3cp-6f, "init %s[7]", up);
    CHECK(train_init_value(42, up, 2, 1000) == -0x1.cb1724p-8f, "init %s[1000]", up);
    CHECK(train_init_value(7, "model.embed_tokens.weight", 2, 3) == 0x1.eaf3a8p-8f, "init embed[3] seed 7");
    CHECK(train_init_value(7, "model.layers.0.self_attn.q_proj.bias", 1, 5) == 0.0f, "biases start at 0");
    CHECK(train_init_value(7, "model.norm.weight", 1, 5) == 1.0f, "norm weights start at 1");
    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        double v = train_init_value(3, "m.weight", 2, i);
        s += v, s2 += v * v;
    }
    double mean = s / 20000, sd = sqrt(s2 / 20000 - mean * mean);
    CHECK(fabs(mean) < 0.001 && fabs(sd - 0.02) < 0.0006, "init mean %g sd %g, want 0 and 0.02", mean, sd);
}

/* ---- data ------------------------------------------------------------------------- */

/* Python (docs/dporun.md, "Data order"):
 *   s = mix64(seed + G*(epoch+1)); next: s += G, mix64(s); below(m): reject x < (2^64 - m) % m, x % m
 *   for i in n-1..1: j = below(i+1); swap
 * shuffle(range(10), 1, 0) = [4, 2, 1, 3, 7, 9, 5, 0, 6, 8]
 * shuffle(range(10), 1, 1) = [8, 3, 1, 9, 4, 5, 7, 2, 0, 6]
 * shuffle(range(10), 42, 3) = [3, 4, 7, 8, 2, 0, 5, 6, 9, 1] */
static void test_order(void) {
    static const uint64_t want[3][10] = {
        {4, 2, 1, 3, 7, 9, 5, 0, 6, 8}, {8, 3, 1, 9, 4, 5, 7, 2, 0, 6}, {3, 4, 7, 8, 2, 0, 5, 6, 9, 1}};
    static const uint64_t seeds[3] = {1, 1, 42}, epochs[3] = {0, 1, 3};
    for (int c = 0; c < 3; c++) {
        uint64_t v[10];
        for (int i = 0; i < 10; i++) v[i] = (uint64_t)i;
        batch_shuffle(v, 10, seeds[c], epochs[c]);
        CHECK(memcmp(v, want[c], sizeof v) == 0, "shuffle seed %llu epoch %llu: %llu %llu %llu ...",
              (unsigned long long)seeds[c], (unsigned long long)epochs[c], (unsigned long long)v[0],
              (unsigned long long)v[1], (unsigned long long)v[2]);
    }
    /* the order wraps from epoch 0 into epoch 1 and can be re-entered by seek */
    uint64_t *usable = malloc(10 * sizeof *usable);
    for (int i = 0; i < 10; i++) usable[i] = (uint64_t)i;
    BatchOrder o;
    char err[128];
    CHECK(batch_order_init(&o, usable, 10, 1, 1, err, sizeof err) == 0, "order init: %s", err);
    uint64_t got[13];
    for (int i = 0; i < 13; i++) got[i] = batch_order_next(&o);
    CHECK(!memcmp(got, want[0], 10 * sizeof *got) && got[10] == 8 && got[11] == 3 && got[12] == 1,
          "stream over the epoch boundary");
    CHECK(o.epoch == 1 && o.pos == 3, "position after 13 pairs: epoch %llu pos %llu", (unsigned long long)o.epoch,
          (unsigned long long)o.pos);
    batch_order_seek(&o, 0, 10); /* the end of epoch 0 is the start of epoch 1 */
    CHECK(batch_order_next(&o) == 8, "seek to the end of an epoch");
    batch_order_seek(&o, 0, 4);
    CHECK(batch_order_next(&o) == 7, "seek back into epoch 0");
    batch_order_free(&o);
}

static void test_pack(void) {
    int32_t tokens[2 * 4], targets[2 * 4];
    float mask[2 * 4], ref[2];
    BatchLayout L = {1, 4, 64, tokens, targets, mask, ref, 4, NULL, NULL};
    static const int32_t chosen[] = {5, 6, 7, 8, 9}, rejected[] = {5, 6, 7, 10};
    static const RecSpan sc[] = {{3, 5}}, sr[] = {{3, 4}};
    RecPair p = {3, {5, 4}, {chosen, rejected}, {1, 1}, {sc, sr}, 1, {-1.5f, -2.5f}};
    BatchPairInfo info;
    char err[256];
    batch_clear(&L);
    CHECK(batch_put(&L, 0, &p, 0, &info, err, sizeof err) == 0, "pack: %s", err);
    static const int32_t wt[] = {5, 6, 7, 8, 5, 6, 7, 10}, wg[] = {6, 7, 8, 9, 6, 7, 10, 0};
    static const float wm[] = {0, 0, 1, 1, 0, 0, 1, 0};
    CHECK(!memcmp(tokens, wt, sizeof wt), "tokens");
    CHECK(!memcmp(targets, wg, sizeof wg), "targets: next ids, 0 past the end");
    CHECK(!memcmp(mask, wm, sizeof wm), "mask: 1 where position t+1 is a label");
    CHECK(ref[0] == -1.5f && ref[1] == -2.5f, "ref_logps");
    CHECK(info.labels[0] == 2 && info.labels[1] == 1 && !info.truncated && info.tokens[0] == 4 && info.tokens[1] == 4,
          "info: labels %u %u tokens %u %u truncated %d", info.labels[0], info.labels[1], info.tokens[0],
          info.tokens[1], info.truncated);
    /* T = 3: the chosen label at position 4 is cut */
    BatchLayout L3 = {1, 3, 64, tokens, targets, mask, NULL, 3, NULL, NULL};
    CHECK(batch_put(&L3, 0, &p, 0, &info, err, sizeof err) == 0, "pack T=3: %s", err);
    CHECK(info.labels[0] == 1 && info.labels[1] == 1 && info.truncated, "T=3: labels %u %u truncated %d",
          info.labels[0], info.labels[1], info.truncated);
    static const float wm3[] = {0, 0, 1, 0, 0, 1};
    CHECK(!memcmp(mask, wm3, sizeof wm3), "T=3 mask");
    /* an id outside the vocabulary is refused, naming the record */
    BatchLayout Lv = {1, 4, 8, tokens, targets, mask, NULL, 4, NULL, NULL};
    CHECK(batch_put(&Lv, 0, &p, 17, &info, err, sizeof err) == -1 && strstr(err, "record 17") &&
              strstr(err, "id 8"),
          "vocabulary check: %s", err);
}

/* ---- metrics ------------------------------------------------------------------------ */

static void test_metrics(void) {
    /* B = 2: chosen rows 0,1, rejected rows 2,3; beta 0.1; vocab 4 */
    const float logps[] = {-1, -2, -3, -4}, ref[] = {-1.5f, -2, -3, -5}, logits[] = {12, 6, 3, 9};
    const uint32_t labels[] = {2, 4, 1, 2};
    MetricsAcc a;
    metrics_reset(&a, 0.1, 4);
    metrics_add(&a, 0.7, 2, 2, logps, ref, logits, labels, 20);
    metrics_add(&a, 0.5, 2, 0, logps, ref, logits, labels, 0); /* a micro-batch with no real pair: loss only */
    MetricsValues v;
    metrics_finish(&a, &v);
    /* rewards: chosen 0.1*0.5 = 0.05 and 0; rejected 0 and 0.1*1 = 0.1 */
    near(v.loss, 0.6, 1e-15, "loss: mean of micro-batch losses");
    near(v.rewards_chosen, 0.025, 1e-15, "rewards/chosen");
    near(v.rewards_rejected, 0.05, 1e-15, "rewards/rejected");
    near(v.rewards_accuracies, 0.5, 0, "rewards/accuracies (0.05 > 0 yes, 0 > 0.1 no)");
    near(v.rewards_margins, -0.025, 1e-15, "rewards/margins");
    near(v.logps_chosen, -1.5, 0, "logps/chosen");
    near(v.logps_rejected, -3.5, 0, "logps/rejected");
    near(v.logits_chosen, 18.0 / (6 * 4), 1e-15, "logits/chosen = 18 / (6 labels x 4)");
    near(v.logits_rejected, 12.0 / (3 * 4), 1e-15, "logits/rejected = 12 / (3 labels x 4)");
    near(v.nll_loss, 3.0 / 6.0, 1e-15, "nll_loss = 3 / 6 chosen labels");
    CHECK(v.pairs == 2 && v.tokens == 20, "counts");
    /* no reference: rewards are beta * policy */
    metrics_reset(&a, 0.1, 4);
    metrics_add(&a, 0.7, 2, 2, logps, NULL, logits, labels, 20);
    metrics_finish(&a, &v);
    near(v.rewards_chosen, -0.15, 1e-15, "reference-free rewards/chosen");
    char b[40];
    metrics_format_double(b, sizeof b, 0.1);
    CHECK(!strcmp(b, "0.1"), "format 0.1: %s", b);
    metrics_format_double(b, sizeof b, 1.0 / 3.0);
    CHECK(!strcmp(b, "0.3333333333333333"), "format 1/3: %s", b);
    metrics_format_double(b, sizeof b, 100);
    CHECK(!strcmp(b, "100"), "format 100: %s", b);
    metrics_format_double(b, sizeof b, NAN);
    CHECK(!strcmp(b, "null"), "format NaN: %s", b);
    double x = 0.6931471805599453;
    metrics_format_double(b, sizeof b, x);
    CHECK(strtod(b, NULL) == x, "round trip of ln 2: %s", b);
    MetricsLine l = {0};
    metrics_line_begin(&l);
    metrics_line_int(&l, "step", 3);
    metrics_line_num(&l, "loss", 0.5);
    const char *text = metrics_line_end(&l);
    CHECK(text && !strcmp(text, "{\"step\":3,\"loss\":0.5}"), "line: %s", text ? text : "(null)");
    metrics_line_free(&l);
}

/* The FMA issue rate by CPU (cpu_peak.h): one full-width FMA per cycle
 * where AMD splits it into halves (Zen 1's AVX, Zen 4's AVX-512), else two;
 * and the peak's product, by hand: 2 x 2.6 x 16 x 2 x 1 = 166.4. */
static void test_cpu_peak(void) {
    const char *why = NULL;
    CHECK(cpu_fma_units_for("AuthenticAMD", 0x19, 0x11, 16, &why) == 1 && strstr(why, "Zen 4"),
          "Zen 4 EPYC (19h model 11h) with AVX-512: 1");
    CHECK(cpu_fma_units_for("AuthenticAMD", 0x19, 0x61, 16, NULL) == 1, "Zen 4 desktop (19h model 61h): 1");
    CHECK(cpu_fma_units_for("AuthenticAMD", 0x19, 0x01, 8, NULL) == 2, "Zen 3 (19h, AVX2 only): 2");
    CHECK(cpu_fma_units_for("AuthenticAMD", 0x17, 0x01, 8, &why) == 1 && strstr(why, "Zen 1"), "Zen 1 (17h model 01h): 1");
    CHECK(cpu_fma_units_for("AuthenticAMD", 0x17, 0x31, 8, NULL) == 2, "Zen 2 (17h model 31h): 2");
    CHECK(cpu_fma_units_for("AuthenticAMD", 0x1A, 0x02, 16, NULL) == 2, "Zen 5 (1Ah): 2");
    CHECK(cpu_fma_units_for("GenuineIntel", 6, 0x55, 16, NULL) == 2, "Skylake-SP: 2");
    CHECK(cpu_fma_units_for("", 0, 0, 4, NULL) == 2, "unknown: 2");
    CpuVector v = {16, 1, "AVX-512", "test"};
    char how[384];
    double p = cpu_peak_gflops(2, 2.6, &v, how, sizeof how);
    near(p, 166.4, 1e-12, "peak of 2 threads on a 2.6 GHz Zen 4");
    CHECK(strstr(how, "x 1 FMA/cycle (test)") != NULL, "how names the issue rate: %s", how);
    CpuVector here = cpu_vector_detect();
    CHECK(here.lanes >= 4 && (here.fma_units == 1 || here.fma_units == 2) && here.isa && here.why, "this CPU: %d x %d",
          here.lanes, here.fma_units);
}

/* ---- thread pool ------------------------------------------------------------------------ */

typedef struct Hits {
    int *count;
} Hits;

static void hit(void *arg, int64_t b, int64_t e) {
    Hits *h = arg;
    for (int64_t i = b; i < e; i++) h->count[i]++;
}

/* like hit, but chunks other than the caller's (the first) take ~3 ms when slow */
typedef struct SlowHits {
    int *count;
    int slow;
} SlowHits;
static void slow_hit(void *arg, int64_t b, int64_t e) {
    SlowHits *h = arg;
    if (h->slow && b > 0) nanosleep(&(struct timespec){0, 3000000}, NULL);
    for (int64_t i = b; i < e; i++) h->count[i]++;
}

/* a kernel that counts its calls (one per chunk) */
static atomic_int kernel_calls;
static void counting_kernel(uint8_t *const *p, int64_t b, int64_t e) {
    (void)p;
    if (e > b) atomic_fetch_add(&kernel_calls, 1);
}

static int calls_for(const DpocServices *svc, int64_t n) {
    atomic_store(&kernel_calls, 0);
    svc->parallel_for(svc->ctx, counting_kernel, NULL, n);
    return atomic_load(&kernel_calls);
}

static void test_pool(void) {
    int64_t b, e;
    tpool_chunk(10, 3, 0, &b, &e);
    CHECK(b == 0 && e == 4, "chunk 0 of 10/3: [%lld, %lld)", (long long)b, (long long)e);
    tpool_chunk(10, 3, 2, &b, &e);
    CHECK(b == 7 && e == 10, "chunk 2 of 10/3: [%lld, %lld)", (long long)b, (long long)e);
    char err[128];
    ThreadPool *p = tpool_create(4, err, sizeof err);
    CHECK(p != NULL, "pool: %s", err);
    int count[37];
    memset(count, 0, sizeof count);
    Hits h = {count};
    for (int rep = 0; rep < 2000; rep++) tpool_for(p, hit, &h, 1 + rep % 37);
    int bad = 0;
    for (int i = 0; i < 37; i++) {
        int want = 0;
        for (int rep = 0; rep < 2000; rep++) want += i < 1 + rep % 37;
        bad += count[i] != want;
    }
    CHECK(!bad, "every index visited exactly once per call");
    /* the sleeping paths: gaps longer than the spin window put the workers
     * to sleep before a job arrives, and slow worker chunks put the caller
     * to sleep before they finish; no wake-up may be lost (a lost one hangs
     * here) and every index is still visited once */
    memset(count, 0, sizeof count);
    SlowHits sh = {count, 0};
    for (int rep = 0; rep < 24; rep++) {
        if (rep % 2) nanosleep(&(struct timespec){0, 3000000}, NULL);
        sh.slow = rep % 3 == 0;
        tpool_for(p, slow_hit, &sh, 37);
    }
    bad = 0;
    for (int i = 0; i < 37; i++) bad += count[i] != 24;
    CHECK(!bad, "sleeping workers and caller: every index visited exactly once per call");
    /* services: a kernel of unit cost 10 with grain 100 gets n * 10 / 100 chunks, at most 4 */
    DpocServices svc = tpool_services(p);
    CHECK(calls_for(&svc, 1000) == 4, "unknown kernel: one chunk per thread");
    DpocKernelFn fns[2] = {counting_kernel, counting_kernel};
    double costs[2] = {5, 10}; /* listed twice: the larger cost counts */
    CHECK(tpool_set_costs(p, fns, costs, 2, 100) == 0, "set costs");
    CHECK(calls_for(&svc, 5) == 1, "n=5: 0.5 chunks -> runs on the caller");
    CHECK(calls_for(&svc, 25) == 2, "n=25: 2.5 -> 2 chunks");
    CHECK(calls_for(&svc, 1000) == 4, "n=1000: capped at 4 threads");
    CHECK(tpool_set_costs(p, fns, costs, 2, 0) == 0 && calls_for(&svc, 2) == 2, "grain 0 splits everything");
    tpool_destroy(p);
    CHECK(tpool_create(0, err, sizeof err) == NULL && strstr(err, "thread count"), "0 threads refused: %s", err);
    CHECK(tpool_cpu_count() >= 1, "cpu count");
}

/* tpool_stack_ensure in forked children (a lowered hard limit cannot be
 * raised again): a 1 MiB soft limit under a higher hard one is raised to
 * 8 MiB (or the hard limit); 6 MiB hard gives 6 MiB; 1 MiB hard makes
 * tpool_create fail with the limits and the ulimit to use in the message. */
static int stack_child(rlim_t soft, rlim_t hard, int want_ok, rlim_t want_soft, const char *want_msg) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {soft, hard};
        char err[256] = "";
        if (setrlimit(RLIMIT_STACK, &rl) != 0) _exit(3);
        ThreadPool *p = tpool_create(2, err, sizeof err);
        if ((p != NULL) != want_ok) {
            fprintf(stderr, "stack %llu/%llu: tpool_create %s (%s)\n", (unsigned long long)soft,
                    (unsigned long long)hard, p ? "succeeded" : "failed", err);
            _exit(1);
        }
        if (p) tpool_destroy(p);
        if (want_msg && !strstr(err, want_msg)) {
            fprintf(stderr, "stack message \"%s\" lacks \"%s\"\n", err, want_msg);
            _exit(1);
        }
        if (getrlimit(RLIMIT_STACK, &rl) != 0 || (want_ok && rl.rlim_cur != want_soft)) {
            fprintf(stderr, "stack soft limit %llu, want %llu\n", (unsigned long long)rl.rlim_cur,
                    (unsigned long long)want_soft);
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_stack_limit(void) {
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_STACK, &rl) == 0, "getrlimit");
    rlim_t hard = rl.rlim_max, mib = 1 << 20;
    if (hard != RLIM_INFINITY && hard < 8 * mib) {
        printf("test_stack_limit: hard stack limit %llu KiB below 8 MiB, raise checks skipped\n",
               (unsigned long long)hard / 1024);
    } else {
        rlim_t raised = hard == RLIM_INFINITY || hard >= TPOOL_STACK_BYTES ? TPOOL_STACK_BYTES : hard;
        CHECK(stack_child(mib, hard, 1, raised, NULL) == 0, "1 MiB soft stack limit not raised");
        CHECK(stack_child(mib, 6 * mib, 1, 6 * mib, NULL) == 0, "1 MiB soft / 6 MiB hard not raised to 6 MiB");
        if (hard == RLIM_INFINITY || hard >= 16 * mib)
            CHECK(stack_child(16 * mib, 16 * mib, 1, 16 * mib, NULL) == 0, "a 16 MiB stack limit changed");
    }
    CHECK(stack_child(mib, mib, 0, 0, "stack size limit is 1024 KiB (hard limit 1024 KiB)") == 0 &&
              stack_child(mib, mib, 0, 0, "ulimit -s 8192") == 0,
          "1 MiB hard stack limit not refused with its message");
}

int main(void) {
    test_schedules();
    test_passes();
    test_hash_and_init();
    test_order();
    test_pack();
    test_metrics();
    test_cpu_peak();
    test_pool();
    test_stack_limit();
    if (failures) {
        fprintf(stderr, "test_dporun_unit: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_dporun_unit: OK\n");
    return 0;
}
