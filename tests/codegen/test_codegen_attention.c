/* test_codegen_attention.c — the attention and attention_grad kernels against
 * the reference interpreter.
 *
 * Each case builds one graph: inputs q [..., M, D], k and v [..., T, D], the
 * segments [B0, T] and a gradient gin [..., M, D + 1] (random, its
 * log-sum-exp column included), with outputs att = attention(q, k, v, seg)
 * and grad = attention_grad(att, gin). It is compiled through the real path
 * (tcg.h) and both outputs are compared with ir_interp_run on the same input
 * values. The cases cover f64 and f32, causal or not, groups 1 and 2,
 * fewer query rows than keys (Tq < T), rank 3 and rank 4 batches, segments
 * with a prompt (0) and two responses (keys of the other response hidden),
 * i32 and float segments, and D = 4, 16 and 17; and, for the tiled f32
 * kernels (cg_attention_tiled.c), sizes that take several query blocks and
 * key tiles with partial last ones (and one case without), D = 16, 32 and
 * 64, blocks that straddle two groups, and responses long enough that
 * whole key tiles of one are hidden from whole query blocks of the other
 * (the tiles the kernels skip). A case marked tiled must have run
 * there: its forward call's work units are query blocks, fewer than its
 * query rows.
 *
 * Tolerances, relative to the largest magnitude of the output compared:
 *  - f64: 1e-12. The kernels do the interpreter's operations in its order;
 *    only a contracted multiply-add (fma) rounds differently, by far less.
 *  - f32: u * (2 D S + 2 T + M + 16), u = 2^-24 and S the largest sum_d
 *    |q_d k_d| of the case. A score carries up to D u S absolute error, which
 *    every weight exp(s - max) or P = exp(s - lse) takes as a relative error,
 *    once through s and once through the max or the log-sum-exp; the sums
 *    over keys (T terms) and, in the gradient, over query rows (M terms)
 *    add a relative u per term; exp and log are within 2 ulp.
 *
 * In f64, grad is also checked against central differences of the compiled
 * forward (L = sum(att * gin), every element of q, k and v): attention_grad
 * must be the gradient of attention, log-sum-exp column included.
 *
 * Determinism: the outputs must be bitwise the same whichever way the work
 * is split: serial, a thread pool of 1, 2 and 3 threads, and tcg_chunked
 * (uneven chunks, last first) with three seeds. One more case reads q
 * through a permute computed inside the attention kernels (a hand-fused
 * schedule, as passes/fuse.c would make it) and must give the unfused bits.
 */
#include <float.h>
#include <math.h>

#include "ir/interp.h"
#include "runtime/threadpool.h"
#include "tcg.h"

typedef struct AttnCase {
    const char *label;
    IrDType t, seg_t;
    int nlead;          /* leading dims: 1 ([B]) or 2 ([S, H]) */
    int64_t lead[2];
    int64_t M, T, D, groups;
    int causal;
    int segmented;      /* prompt zeros and two response ids; else all 0 */
    int permute_q;      /* q = permute of an input [S, M, H, D] (rank 4 only) */
    int tiled;          /* must run on the tiled f32 kernels (D a multiple of 16, q stored) */
} AttnCase;

enum { IN_Q, IN_K, IN_V, IN_SEG, IN_G, NIN };

typedef struct Built {
    IrGraph g;
    int32_t in[NIN], qin, att, grad;
    double *val[NIN];
    int64_t n[NIN];
} Built;

static double max_f32_rel, max_f64_rel;

/* uniform in [lo, hi], as values of dtype t */
static void fill(TcgRng *rng, IrDType t, double *v, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) {
        double x = tcg_uniform(rng, lo, hi);
        v[i] = t == DT_F32 ? (double)(float)x : x;
    }
}

/* segments row b0: a prompt of 1 + b0 % 2 positions (0), then response id
 * 3 + b0 up to the middle of the rest, then id 7 */
static void fill_segments(const AttnCase *ac, double *seg, int64_t B0) {
    for (int64_t b0 = 0; b0 < B0; b0++)
        for (int64_t j = 0; j < ac->T; j++) {
            int64_t prompt = 1 + b0 % 2, split = prompt + (ac->T - prompt) / 2;
            seg[b0 * ac->T + j] = !ac->segmented ? 0 : j < prompt ? 0 : j < split ? (double)(3 + b0) : 7;
        }
}

static int64_t shape_of(const AttnCase *ac, int64_t rows, int64_t cols, int64_t *s) {
    for (int i = 0; i < ac->nlead; i++) s[i] = ac->lead[i];
    s[ac->nlead] = rows;
    s[ac->nlead + 1] = cols;
    return tcg_numel(ac->nlead + 2, s);
}

static int build(const AttnCase *ac, Built *b, uint64_t seed) {
    memset(b, 0, sizeof *b);
    ir_init(&b->g);
    TcgRng rng = {seed * 0x9e3779b97f4a7c15ull + 5};
    int nd = ac->nlead + 2;
    int64_t sq[4], skv[4], sg[4], sseg[2] = {ac->lead[0], ac->T};
    b->n[IN_Q] = shape_of(ac, ac->M, ac->D, sq);
    b->n[IN_K] = b->n[IN_V] = shape_of(ac, ac->T, ac->D, skv);
    b->n[IN_G] = shape_of(ac, ac->M, ac->D + 1, sg);
    b->n[IN_SEG] = sseg[0] * sseg[1];
    if (ac->permute_q) { /* stored as [S, M, H, D], read as [S, H, M, D] */
        int64_t sp[4] = {sq[0], sq[2], sq[1], sq[3]};
        int perm[4] = {0, 2, 1, 3};
        b->qin = ir_input(&b->g, "q", ac->t, 4, sp);
        b->in[IN_Q] = ir_permute(&b->g, b->qin, perm);
    } else {
        b->in[IN_Q] = b->qin = ir_input(&b->g, "q", ac->t, nd, sq);
    }
    b->in[IN_K] = ir_input(&b->g, "k", ac->t, nd, skv);
    b->in[IN_V] = ir_input(&b->g, "v", ac->t, nd, skv);
    b->in[IN_SEG] = ir_input(&b->g, "seg", ac->seg_t, 2, sseg);
    b->in[IN_G] = ir_input(&b->g, "gin", ac->t, nd, sg);
    b->att = ir_attention(&b->g, b->in[IN_Q], b->in[IN_K], b->in[IN_V], b->in[IN_SEG], ac->groups, ac->causal);
    b->grad = ir_attention_grad(&b->g, b->att, b->in[IN_G]);
    CHECK_MSG(b->grad >= 0, "%s: building: %s", ac->label, b->g.err);
    if (b->grad < 0) return -1;
    CHECK(ir_add_output(&b->g, "att", b->att, IR_OUT_VALUE) == 0);
    CHECK(ir_add_output(&b->g, "grad", b->grad, IR_OUT_VALUE) == 0);
    char err[512];
    CHECK_MSG(ir_verify(&b->g, err, sizeof err) == 0, "%s: verify: %s", ac->label, err);
    for (int i = 0; i < NIN; i++) b->val[i] = malloc(sizeof(double) * (size_t)b->n[i]);
    fill(&rng, ac->t, b->val[IN_Q], b->n[IN_Q], -1.5, 1.5);
    fill(&rng, ac->t, b->val[IN_K], b->n[IN_K], -1.5, 1.5);
    fill(&rng, ac->t, b->val[IN_V], b->n[IN_V], -1, 1);
    fill(&rng, ac->t, b->val[IN_G], b->n[IN_G], -1, 1); /* the lse column too */
    fill_segments(ac, b->val[IN_SEG], sseg[0]);
    return 0;
}

static void built_free(Built *b) {
    for (int i = 0; i < NIN; i++) free(b->val[i]);
    ir_free(&b->g);
}

static void set_inputs(DpocStep *s, const Built *b) {
    static const char *names[NIN] = {"q", "k", "v", "seg", "gin"};
    for (int i = 0; i < NIN; i++) tcg_set(s, names[i], DPOC_ROLE_INPUT, b->val[i]);
}

/* the input values as the interpreter's leaves; q is stored in the order
 * of its input node (permuted: [S, M, H, D]) */
static double **interp_reference(const AttnCase *ac, const Built *b) {
    double **leaf = calloc((size_t)b->g.n, sizeof *leaf);
    for (int i = 0; i < NIN; i++) leaf[i == IN_Q ? b->qin : b->in[i]] = b->val[i];
    char err[512];
    double **v = ir_interp_run(&b->g, leaf, 0, err, sizeof err);
    CHECK_MSG(v != NULL, "%s: interp: %s", ac->label, err);
    free(leaf);
    return v;
}

/* largest sum_d |q_d k_d| over query rows and keys of the same batch entry */
static double score_scale(const AttnCase *ac, const Built *b) {
    double S = 0;
    double **v = NULL;
    const double *q = b->val[IN_Q];
    if (ac->permute_q) { /* the permuted values, from the interpreter */
        v = interp_reference(ac, b);
        if (!v) return 0;
        q = v[b->in[IN_Q]];
    }
    int64_t batch = b->n[IN_Q] / (ac->M * ac->D);
    for (int64_t bi = 0; bi < batch; bi++)
        for (int64_t r = 0; r < ac->M; r++)
            for (int64_t j = 0; j < ac->T; j++) {
                double s = 0;
                for (int64_t d = 0; d < ac->D; d++)
                    s += fabs(q[(bi * ac->M + r) * ac->D + d] * b->val[IN_K][(bi * ac->T + j) * ac->D + d]);
                if (s > S) S = s;
            }
    if (v) ir_interp_free(&b->g, v);
    return S;
}

/* got vs ref: the largest difference relative to the largest |ref|, checked
 * against tol; non-finite references must be matched exactly */
static double compare(const char *label, const char *what, const double *got, const double *ref, int64_t n, double tol) {
    double scale = 0, worst = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) > scale) scale = fabs(ref[i]);
    CHECK_MSG(scale > 0, "%s: %s is all zeros", label, what);
    for (int64_t i = 0; i < n; i++) {
        double rel = isfinite(ref[i]) ? fabs(got[i] - ref[i]) / scale : (tcg_same(got[i], ref[i]) ? 0 : INFINITY);
        if (!(rel <= tol) && bad++ < 8)
            fprintf(stderr, "%s: %s[%lld] = %.17g, reference %.17g\n", label, what, (long long)i, got[i], ref[i]);
        if (!(rel <= worst)) worst = rel;
    }
    CHECK_MSG(bad == 0, "%s: %s: %d element(s) beyond %.3g relative (worst %.3g)", label, what, bad, tol, worst);
    return worst;
}

/* runs s with services svc (NULL: serial) and says whether its outputs are
 * the bytes of want */
static int same_outputs(DpocStep *s, const DpocServices *svc, const uint8_t *want) {
    size_t osz = (size_t)s->region_size[DPOC_R_OUTPUTS];
    memset(s->regions[DPOC_R_OUTPUTS], 0xA5, osz);
    tcg_run(s, svc);
    return memcmp(s->regions[DPOC_R_OUTPUTS], want, osz) == 0;
}

static void check_determinism(const char *label, DpocStep *s) {
    size_t osz = (size_t)s->region_size[DPOC_R_OUTPUTS];
    uint8_t *want = malloc(osz ? osz : 1);
    memcpy(want, s->regions[DPOC_R_OUTPUTS], osz);
    for (int threads = 1; threads <= 3; threads++) {
        char err[256];
        ThreadPool *tp = tpool_create(threads, err, sizeof err);
        CHECK_MSG(tp != NULL, "thread pool: %s", err);
        if (!tp) continue;
        DpocServices svc = tpool_services(tp);
        CHECK_MSG(same_outputs(s, &svc, want), "%s: %d thread(s) give other bits than the serial run", label, threads);
        tpool_destroy(tp);
    }
    for (int seed = 0; seed < 3; seed++) {
        tcg_chunk_seed = seed;
        CHECK_MSG(same_outputs(s, &tcg_chunked, want), "%s: chunked run (seed %d) gives other bits than the serial run",
                  label, seed);
    }
    free(want);
}

/* sum of att * gin, from the step's last run */
static double weighted_loss(DpocStep *s, const Built *b) {
    DpocTensorInfo ti;
    const double *att = dpoc_step_find(s, "att", DPOC_ROLE_OUTPUT, &ti);
    double L = 0;
    for (int64_t i = 0; att && i < ti.numel; i++) L += att[i] * b->val[IN_G][i];
    return L;
}

/* f64: grad is the gradient of L = sum(att * gin) with respect to q, k and
 * v (the log-sum-exp column included), against central differences of the
 * compiled forward: |g - fd| / max(1, |g|, |fd|) <= 1e-6 with h = 1e-6, as
 * test_codegen_grad.c. Returns the worst error. */
static double check_central_differences(const AttnCase *ac, DpocStep *s, const Built *b, const double *grad) {
    static const char *names[3] = {"q", "k", "v"};
    const double h = 1e-6;
    int64_t rows = ac->M + 2 * ac->T, worst_at = -1;
    double worst = 0;
    for (int w = 0; w < 3; w++) {
        DpocTensorInfo ti;
        double *x = dpoc_step_find(s, names[w], DPOC_ROLE_INPUT, &ti);
        CHECK_MSG(x != NULL && ti.dtype == DPOC_DT_F64, "%s: no f64 input %s", ac->label, names[w]);
        if (!x || ti.dtype != DPOC_DT_F64) continue;
        int64_t per = (w == 0 ? ac->M : ac->T) * ac->D; /* elements per batch entry */
        int64_t first = w == 0 ? 0 : w == 1 ? ac->M : ac->M + ac->T; /* its first row in an entry's block */
        for (int64_t i = 0; i < ti.numel; i++) {
            double keep = x[i];
            x[i] = keep + h;
            tcg_run(s, NULL);
            double up = weighted_loss(s, b);
            x[i] = keep - h;
            tcg_run(s, NULL);
            double down = weighted_loss(s, b);
            x[i] = keep;
            double fd = (up - down) / (2 * h);
            double g = grad[(i / per) * rows * ac->D + first * ac->D + i % per];
            double err = fabs(g - fd) / fmax(1.0, fmax(fabs(g), fabs(fd)));
            if (!(err <= worst)) {
                worst = err;
                worst_at = w * 1000000 + i;
            }
        }
    }
    CHECK_MSG(worst <= 1e-6, "%s: attention_grad is not the gradient of attention: error %.3g at %s[%lld]", ac->label, worst,
              names[worst_at / 1000000], (long long)(worst_at % 1000000));
    tcg_run(s, NULL); /* the unmoved outputs again */
    return worst;
}

/* the schedule of b with q's permute computed inside both attention kernels */
static int compile_fused_q(Built *b, DpocStep *s) {
    char err[512] = "", path[400];
    IrGraph *gp = &b->g;
    TensorTable tt;
    SchedPlan plan;
    if (tensor_table_build(&tt, &gp, 1, err, sizeof err)) {
        CHECK_MSG(0, "fused q: %s", err);
        return -1;
    }
    int rc = sched_plan(&b->g, &tt, &plan, err, sizeof err);
    if (rc == 0) {
        int32_t mem[4] = {b->in[IN_Q], b->att, b->in[IN_Q], b->grad};
        SchedKernel ks[2] = {{b->att, 0, 2}, {b->grad, 2, 2}};
        SchedPlan fused = plan;
        fused.kernels = ks;
        fused.nkernels = 2;
        fused.members = mem;
        fused.ncopies = 0;
        CodegenEntry ent = {"train_step", &b->g, &fused};
        CodegenOptions o = {0};
        snprintf(path, sizeof path, "%s/fused_q.so", tcg_tmpdir());
        rc = codegen_build_so(&ent, 1, &tt, &o, path, err, sizeof err);
        if (rc == 0) {
            rc = dpoc_step_open(s, path, err, sizeof err);
            unlink(path);
        }
        sched_plan_free(&plan);
    }
    tensor_table_free(&tt);
    CHECK_MSG(rc == 0, "fused q: %s", err);
    return rc;
}

static void run_case(const AttnCase *ac, uint64_t seed) {
    Built b;
    if (build(ac, &b, seed)) {
        built_free(&b);
        return;
    }
    if (ac->segmented) { /* the case must hide keys by segment: a query position that cannot see some key before it */
        int hidden = 0;
        for (int64_t p = ac->T - ac->M / ac->groups; p < ac->T; p++)
            for (int64_t j = 0; j < p; j++) {
                double sj = b.val[IN_SEG][j], sp = b.val[IN_SEG][p];
                hidden += sj != 0 && sj != sp;
            }
        CHECK_MSG(hidden > 0, "%s: the segments hide no key", ac->label);
    }
    double **ref = interp_reference(ac, &b);
    DpocStep s;
    if (!ref || tcg_compile(&b.g, &s)) {
        if (ref) ir_interp_free(&b.g, ref);
        built_free(&b);
        return;
    }
    set_inputs(&s, &b);
    int64_t n_att = ir_numel(ir_node(&b.g, b.att)), n_grad = ir_numel(ir_node(&b.g, b.grad));
    size_t osz = (size_t)s.region_size[DPOC_R_OUTPUTS];
    memset(s.regions[DPOC_R_OUTPUTS], 0xA5, osz); /* every output element must be written */
    tcg_run(&s, NULL);
    double *got_att = malloc(sizeof(double) * (size_t)n_att), *got_grad = malloc(sizeof(double) * (size_t)n_grad);
    tcg_get(&s, "att", DPOC_ROLE_OUTPUT, got_att, n_att);
    tcg_get(&s, "grad", DPOC_ROLE_OUTPUT, got_grad, n_grad);
    double tol = 1e-12;
    if (ac->t == DT_F32)
        tol = 0x1p-24 * (2.0 * (double)ac->D * score_scale(ac, &b) + 2.0 * (double)ac->T + (double)ac->M + 16.0);
    double e_att = compare(ac->label, "att", got_att, ref[b.att], n_att, tol);
    double e_grad = compare(ac->label, "grad", got_grad, ref[b.grad], n_grad, tol);
    double *worst = ac->t == DT_F32 ? &max_f32_rel : &max_f64_rel;
    if (e_att > *worst) *worst = e_att;
    if (e_grad > *worst) *worst = e_grad;
    check_determinism(ac->label, &s);
    if (ac->tiled) {
        int64_t rows = n_att / (ac->D + 1), work = -1;
        for (int i = 0; i < s.nkernels; i++)
            if (!strcmp(s.kernels[i].op, "attention")) work = s.kernels[i].work;
        CHECK_MSG(work > 0 && work < rows, "%s: the attention call has %lld work units for %lld query rows: not tiled",
                  ac->label, (long long)work, (long long)rows);
    }
    double fd_err = -1;
    if (ac->t == DT_F64 && !ac->permute_q) fd_err = check_central_differences(ac, &s, &b, got_grad);
    if (ac->permute_q) {
        DpocStep f;
        if (compile_fused_q(&b, &f) == 0) {
            set_inputs(&f, &b);
            CHECK_MSG(same_outputs(&f, NULL, s.regions[DPOC_R_OUTPUTS]), "%s: q computed inside the kernels gives other bits",
                      ac->label);
            check_determinism(ac->label, &f);
            dpoc_step_close(&f);
        }
    }
    printf("  %-44s att %.2e  grad %.2e  (tolerance %.2e)", ac->label, e_att, e_grad, tol);
    if (fd_err >= 0) printf("  central differences %.2e", fd_err);
    printf("\n");
    free(got_att);
    free(got_grad);
    dpoc_step_close(&s);
    ir_interp_free(&b.g, ref);
    built_free(&b);
}

int main(void) {
    static const AttnCase cases[] = {
        /* label                                    t       seg_t   nl lead    M    T    D   G  caus seg perm tiled */
        {"f64 rank 3 causal G1 D4",                 DT_F64, DT_I32, 1, {3, 0}, 6,   6,   4,  1, 1, 0, 0, 0},
        {"f64 rank 3 full G1 D4",                   DT_F64, DT_I32, 1, {3, 0}, 6,   6,   4,  1, 0, 0, 0, 0},
        {"f64 rank 3 causal G2 D16",                DT_F64, DT_I32, 1, {2, 0}, 14,  7,   16, 2, 1, 1, 0, 0},
        {"f64 rank 3 causal G2 Tq<T D17",           DT_F64, DT_F64, 1, {2, 0}, 6,   5,   17, 2, 1, 1, 0, 0},
        {"f64 rank 4 causal G2 Tq<T segments D17",  DT_F64, DT_I32, 2, {2, 2}, 6,   5,   17, 2, 1, 1, 0, 0},
        {"f64 rank 4 full G1 segments D16",         DT_F64, DT_I32, 2, {2, 2}, 9,   9,   16, 1, 0, 1, 0, 0},
        {"f64 rank 4 causal G2 segments permuted q",DT_F64, DT_I32, 2, {2, 2}, 16,  8,   4,  2, 1, 1, 1, 0},
        {"f32 rank 3 causal G1 D4",                 DT_F32, DT_I32, 1, {3, 0}, 6,   6,   4,  1, 1, 0, 0, 0},
        {"f32 rank 3 full G2 D16",                  DT_F32, DT_F32, 1, {2, 0}, 14,  7,   16, 2, 0, 1, 0, 1},
        {"f32 rank 4 causal G2 Tq<T segments D17",  DT_F32, DT_I32, 2, {2, 2}, 6,   5,   17, 2, 1, 1, 0, 0},
        {"f32 rank 4 full G1 segments D17",         DT_F32, DT_I32, 2, {2, 2}, 9,   9,   17, 1, 0, 1, 0, 0},
        {"f32 rank 4 causal G1 Tq<T segments D16",  DT_F32, DT_F32, 2, {2, 2}, 3,   5,   16, 1, 1, 1, 0, 1},
        {"f32 rank 4 full G2 segments permuted q",  DT_F32, DT_I32, 2, {2, 2}, 16,  8,   16, 2, 0, 1, 1, 1},
        {"f32 tiles rank 3 causal G2 segments D64", DT_F32, DT_I32, 1, {2, 0}, 300, 150, 64, 2, 1, 1, 0, 1},
        {"f32 tiles rank 4 full G1 Tq<T D32",       DT_F32, DT_F32, 2, {2, 2}, 70,  200, 32, 1, 0, 1, 0, 1},
        {"f32 tiles rank 3 causal G1 D16",          DT_F32, DT_I32, 1, {1, 0}, 130, 130, 16, 1, 1, 0, 0, 1},
        {"f32 tiles rank 4 causal G7 Tq<T D64",     DT_F32, DT_I32, 2, {1, 2}, 63,  75,  64, 7, 1, 1, 0, 1},
        {"f32 tiles rank 3 full G1 whole tiles D32", DT_F32, DT_I32, 1, {1, 0}, 128, 128, 32, 1, 0, 1, 0, 1},
        {"f32 tiles rank 3 causal G1 two responses D32", DT_F32, DT_I32, 1, {1, 0}, 400, 400, 32, 1, 1, 1, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], i + 1);
    printf("  largest error relative to the output's largest magnitude: f64 %.3g, f32 %.3g\n", max_f64_rel, max_f32_rel);
    return check_done("test_codegen_attention");
}
