/* test_codegen_adamw.c — the compiled optimizer_step against a C AdamW.
 *
 * A graph with parameters of several shapes (matrices, which get weight
 * decay, and vectors, which do not) is compiled with the optimizer. For
 * three steps, random gradients are written into the GRADS region, the
 * `adamw` input gets {lr, beta1, beta2, eps, wd, 1 - beta1^t, 1 - beta2^t, 0}
 * and optimizer_step runs; parameters and both moments must equal, bit for
 * bit, a C loop doing PyTorch's AdamW step in the parameter dtype (the
 * kernel uses no fast-math flags, and neither does this file). The padding
 * between parameters, filled with NaN in every region, must stay untouched.
 * An out-of-order chunked run of each step gives the same bits. Done for
 * f32 and for f64 parameters.
 */
#include <math.h>

#include "tcg.h"

enum { NP = 4 };

typedef struct P {
    const char *name;
    int nd;
    int64_t shape[2];
} P;

static const P params[NP] = {{"w1", 2, {3, 5}}, {"b1", 1, {5}}, {"w2", 2, {4, 3}}, {"n", 1, {7}}};

/* PyTorch's AdamW, in T */
#define ADAMW_REF(T)                                                                                     \
    static void adamw_ref_##T(T *p, T *m, T *v, const T *g, int64_t n, int decay, const double *h) {     \
        T w1 = (T)(1.0 - h[1]), b2 = (T)h[2], w2 = (T)(1.0 - h[2]);                                      \
        T neg_step = (T)(-(h[0] / h[5])), bc2s = (T)sqrt(h[6]), eps = (T)h[3];                           \
        T dmul = decay ? (T)(1.0 - h[0] * h[4]) : (T)1.0;                                                \
        T w1c = (T)1.0 - w1;                                                                             \
        for (int64_t i = 0; i < n; i++) {                                                                \
            T pp = p[i] * dmul;                                                                          \
            T diff = g[i] - m[i];                                                                        \
            T mm = fabs((double)w1) < 0.5 ? m[i] + w1 * diff : g[i] - diff * w1c;                        \
            T vv = v[i] * b2 + w2 * g[i] * g[i];                                                         \
            T denom = (T)sqrt((double)vv) / bc2s + eps;                                                  \
            p[i] = pp + neg_step * mm / denom;                                                           \
            m[i] = mm;                                                                                   \
            v[i] = vv;                                                                                   \
        }                                                                                                \
    }
ADAMW_REF(float)
ADAMW_REF(double)

static void run(IrDType dt) {
    IrGraph g;
    ir_init(&g);
    int32_t loss = -1;
    for (int i = 0; i < NP; i++) {
        int32_t p = ir_param(&g, params[i].name, dt, params[i].nd, params[i].shape, IR_PARAM_TRAINABLE);
        int32_t s = tcg_sum_all(&g, ir_mul(&g, p, p));
        loss = loss < 0 ? s : ir_add(&g, loss, s);
    }
    CHECK(ir_add_output(&g, "loss", loss, IR_OUT_LOSS) == 0);
    CHECK_MSG(!g.err[0], "%s", g.err);
    DpocStep s;
    char err[512];
    TcgGraphs gs = {{&g, NULL}, 1, NULL, NULL, 0};
    if (tcg_compile_ex(&gs, &s, err, sizeof err)) {
        CHECK_MSG(0, "compile: %s", err);
        ir_free(&g);
        return;
    }
    CHECK(s.manifest->optimizer_step != NULL);
    DpocTensorInfo hi;
    double *hyper = dpoc_step_find(&s, "adamw", DPOC_ROLE_INPUT, &hi);
    CHECK(hyper && hi.dtype == DPOC_DT_F64 && hi.numel == 8);
    /* NaN in every byte of the parameter-shaped regions, then the tensors */
    int esz = dt == DT_F32 ? 4 : 8;
    int64_t psz = s.region_size[DPOC_R_PARAMS];
    for (int r = DPOC_R_PARAMS; r <= DPOC_R_ADAM_V; r++) memset(s.regions[r], 0xFF, (size_t)psz);
    TcgRng rng = {11 + (uint64_t)dt};
    int64_t total = 0;
    for (int i = 0; i < NP; i++) {
        int64_t n = tcg_numel(params[i].nd, params[i].shape);
        double *v = malloc(sizeof *v * (size_t)n), *z = calloc((size_t)n, sizeof *z);
        for (int64_t e = 0; e < n; e++) v[e] = tcg_uniform(&rng, -1, 1);
        tcg_set(&s, params[i].name, DPOC_ROLE_PARAM, v);
        tcg_set(&s, params[i].name, DPOC_ROLE_ADAM_M, z);
        tcg_set(&s, params[i].name, DPOC_ROLE_ADAM_V, z);
        free(v);
        free(z);
        total += n;
    }
    /* the reference works on copies of the regions */
    uint8_t *ref[4], *snap[4];
    for (int r = 0; r < 4; r++) {
        ref[r] = malloc((size_t)psz);
        snap[r] = malloc((size_t)psz);
        memcpy(ref[r], s.regions[DPOC_R_PARAMS + r], (size_t)psz);
    }
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < NP; i++) {
            DpocTensorInfo ti;
            uint8_t *gp = dpoc_step_find(&s, params[i].name, DPOC_ROLE_GRAD, &ti);
            CHECK(gp != NULL);
            if (!gp) continue;
            double *v = malloc(sizeof *v * (size_t)ti.numel);
            for (int64_t e = 0; e < ti.numel; e++) v[e] = tcg_uniform(&rng, -2, 2);
            tcg_set(&s, params[i].name, DPOC_ROLE_GRAD, v);
            free(v);
            memcpy(ref[1] + ti.offset, gp, (size_t)ti.nbytes);
        }
        double h[8] = {lr, b1, b2, eps, wd, 1 - pow(b1, t), 1 - pow(b2, t), 0};
        memcpy(hyper, h, sizeof h);
        for (int r = 0; r < 4; r++) memcpy(snap[r], s.regions[DPOC_R_PARAMS + r], (size_t)psz);
        tcg_chunk_seed = t;
        CHECK(dpoc_step_optimizer(&s, &tcg_chunked, err, sizeof err) == 0);
        uint8_t *chunked[4];
        for (int r = 0; r < 4; r++) {
            chunked[r] = malloc((size_t)psz);
            memcpy(chunked[r], s.regions[DPOC_R_PARAMS + r], (size_t)psz);
            memcpy(s.regions[DPOC_R_PARAMS + r], snap[r], (size_t)psz);
        }
        CHECK(dpoc_step_optimizer(&s, NULL, err, sizeof err) == 0);
        for (int r = 0; r < 4; r++) {
            CHECK_MSG(memcmp(chunked[r], s.regions[DPOC_R_PARAMS + r], (size_t)psz) == 0,
                      "%s step %d: chunked run differs in region %d", ir_dtype_name(dt), t, r);
            free(chunked[r]);
        }
        for (int i = 0; i < NP; i++) {
            DpocTensorInfo ti;
            CHECK(dpoc_step_lookup(&s, params[i].name, DPOC_ROLE_PARAM, &ti) == 0);
            void *p = ref[0] + ti.offset, *gr = ref[1] + ti.offset, *m = ref[2] + ti.offset, *v = ref[3] + ti.offset;
            if (dt == DT_F32) adamw_ref_float(p, m, v, gr, ti.numel, ti.decay, h);
            else adamw_ref_double(p, m, v, gr, ti.numel, ti.decay, h);
            CHECK_MSG(ti.decay == (params[i].nd == 2), "%s: decay flag %d", params[i].name, ti.decay);
        }
        static const char *const rn[4] = {"params", "grads", "adam_m", "adam_v"};
        for (int r = 0; r < 4; r++) {
            int bad = 0;
            for (int64_t off = 0; off < psz; off += esz)
                if (memcmp(ref[r] + off, s.regions[DPOC_R_PARAMS + r] + off, (size_t)esz) != 0 && bad++ < 5) {
                    double a = dt == DT_F32 ? *(float *)(ref[r] + off) : *(double *)(ref[r] + off);
                    double b = dt == DT_F32 ? *(float *)(s.regions[DPOC_R_PARAMS + r] + off)
                                            : *(double *)(s.regions[DPOC_R_PARAMS + r] + off);
                    fprintf(stderr, "%s step %d %s at byte %lld: compiled %.9g, reference %.9g\n", ir_dtype_name(dt), t,
                            rn[r], (long long)off, b, a);
                }
            CHECK_MSG(bad == 0, "%s step %d: %d elements of %s differ from the reference (padding included)",
                      ir_dtype_name(dt), t, bad, rn[r]);
        }
    }
    printf("  adamw %s: %lld parameters, 3 steps, bitwise equal\n", ir_dtype_name(dt), (long long)total);
    for (int r = 0; r < 4; r++) {
        free(ref[r]);
        free(snap[r]);
    }
    dpoc_step_close(&s);
    ir_free(&g);
}

int main(void) {
    run(DT_F32);
    run(DT_F64);
    return check_done("codegen adamw");
}
