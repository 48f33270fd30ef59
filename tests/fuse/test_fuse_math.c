/* test_fuse_math.c — the f32 polynomial exp, log, log1p and sigmoid of
 * codegen/cg_math.c against the C library, in ulps.
 *
 * One graph with an input per function and its result as an output is
 * compiled through the real path (tensor table, schedule, codegen) and run
 * on dense sweeps of 2^18 values each: exp over [-105, 90] (every overflow/underflow threshold
 * and the whole denormal output range), log over positive floats, one
 * bit pattern (stride 8051) from the smallest denormal to ~2^124, log1p over (-1, 1e6]
 * with extra density near 0 and -1, sigmoid over [-110, 110]; then the edge
 * cases: +-0, denormals, FLT_MIN, FLT_MAX, +-inf, NaN, exactly -1, the
 * overflow threshold of expf (88.72283935546875) and its neighbours.
 *
 * The reference is the double-precision C library rounded to float
 * ((float)exp((double)x) and so on: within half an ulp of the true value but
 * for a double rounding, so distances below are "at most", not "exactly").
 * The distance between two floats is their distance in the ordered integer
 * encoding (so the step from FLT_MAX to inf is 1 ulp, and +0/-0 are 0 apart);
 * two NaNs are equal; NaN against a number fails.
 *
 * Stated bounds: exp 1 ulp, log 1 ulp, log1p 2 ulp, sigmoid 2 ulp
 * (sigmoid = 1/(1+e) or e/(1+e) with e = exp(-|x|): one ulp from exp, one
 * from the division). The maximum seen for each is printed.
 */
#include "tests/codegen/tcg.h"

#include <float.h>

enum { NSWEEP = 1 << 18, NEDGE = 40, N = NSWEEP + NEDGE };

static int64_t ordered(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : (int64_t)i;
}

static int64_t ulps(float a, float b) {
    if (isnan(a) && isnan(b)) return 0;
    if (isnan(a) || isnan(b)) return INT64_MAX;
    int64_t d = ordered(a) - ordered(b);
    return d < 0 ? -d : d;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double ref_sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

typedef struct Fn {
    const char *in, *out;
    IrOp op;
    int64_t bound;
    double *x;
} Fn;

static void fill_edges(double *x) {
    const float e[NEDGE] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, -1e-40f, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX,
                            INFINITY, -INFINITY, NAN, -1.0f, 1.0f, 0.5f, 2.0f, 88.72283935546875f,
                            nextafterf(88.72283935546875f, 0.0f), nextafterf(88.72283935546875f, 100.0f), 88.8f,
                            -87.33654475f, -103.9720840454f, -104.0f, -150.0f, 1e-7f, -1e-7f, 1e-30f, 0.69314718f,
                            -0.69314718f, 3.4e38f, 1e10f, -0.999999940395f, -0.5f, 0.99999994f, 1.00000012f,
                            20.0f, -20.0f, 100.0f, -100.0f};
    for (int i = 0; i < NEDGE; i++) x[NSWEEP + i] = e[i];
}

int main(void) {
    Fn fns[4] = {{"x_exp", "exp", OP_EXP, 1, NULL},
                 {"x_log", "log", OP_LOG, 1, NULL},
                 {"x_log1p", "log1p", OP_LOG1P, 2, NULL},
                 {"x_sigmoid", "sigmoid", OP_SIGMOID, 2, NULL}};
    for (int f = 0; f < 4; f++) fns[f].x = calloc(N, sizeof(double));
    for (int i = 0; i < NSWEEP; i++) {
        double u = (double)i / NSWEEP;
        fns[0].x[i] = (float)(-105.0 + 195.0 * u);
        fns[1].x[i] = from_bits(1u + (uint32_t)i * 97u * 83u); /* 1 .. ~0x7f7e0000: every exponent */
        /* log1p: a quarter near -1, a quarter tiny, the rest logarithmically up to 1e6 */
        if (i < NSWEEP / 4) fns[2].x[i] = (float)(-1.0 + pow(2.0, -24.0 + 23.0 * (4.0 * u)));
        else if (i < NSWEEP / 2) fns[2].x[i] = (float)((i & 1 ? -1 : 1) * pow(2.0, -40.0 + 40.0 * (4.0 * u - 1.0)));
        else fns[2].x[i] = (float)pow(10.0, -3.0 + 9.0 * (2.0 * u - 1.0));
        fns[3].x[i] = (float)(-110.0 + 220.0 * u);
    }
    for (int f = 0; f < 4; f++) fill_edges(fns[f].x);

    IrGraph g;
    ir_init(&g);
    int64_t shape[1] = {N};
    for (int f = 0; f < 4; f++) {
        int32_t x = ir_input(&g, fns[f].in, DT_F32, 1, shape);
        CHECK(ir_add_output(&g, fns[f].out, ir_unary(&g, fns[f].op, x), IR_OUT_VALUE) == 0);
    }
    PassCtx pc;
    memset(&pc, 0, sizeof pc);
    CHECK_MSG(pass_pipeline_run(&g, &pc, "fuse") == 0, "%s", pc.err);
    DpocStep s;
    if (tcg_compile(&g, &s)) return check_done("fuse_math");
    for (int f = 0; f < 4; f++) tcg_set(&s, fns[f].in, DPOC_ROLE_INPUT, fns[f].x);
    tcg_run(&s, NULL);
    double *got = calloc(N, sizeof *got);
    for (int f = 0; f < 4; f++) {
        if (tcg_get(&s, fns[f].out, DPOC_ROLE_OUTPUT, got, N)) continue;
        int64_t worst = 0;
        int bad = 0;
        for (int i = 0; i < N; i++) {
            double x = fns[f].x[i];
            float ref = fns[f].op == OP_EXP ? (float)exp(x)
                        : fns[f].op == OP_LOG ? (float)log(x)
                        : fns[f].op == OP_LOG1P ? (float)log1p(x)
                        : (float)ref_sigmoid(x);
            int64_t d = ulps((float)got[i], ref);
            if (d > worst) worst = d;
            if (d > fns[f].bound && bad++ < 8)
                fprintf(stderr, "%s(%.9g) = %.9g, reference %.9g (%lld ulp)\n", fns[f].out, x, got[i], (double)ref,
                        d == INT64_MAX ? -1LL : (long long)d);
            if (d > fns[f].bound) check_failures++;
        }
        printf("  %-8s max %lld ulp over %d values (bound %lld)\n", fns[f].out, (long long)worst, N,
               (long long)fns[f].bound);
    }
    free(got);
    dpoc_step_close(&s);
    ir_free(&g);
    for (int f = 0; f < 4; f++) free(fns[f].x);
    return check_done("fuse_math");
}
