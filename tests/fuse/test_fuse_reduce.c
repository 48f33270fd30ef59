/* test_fuse_reduce.c — reductions over the last axis: the lane order, bit
 * for bit, with a fused producer, for any thread split.
 *
 * cg_kernel.c sums a row of R >= 16 elements in 8 lanes (lane j takes the
 * elements r = j mod 8 below R8 = R - R mod 8, in increasing r), combines
 * the lanes as ((l0 l1)(l2 l3))((l4 l5)(l6 l7)) and then adds the last
 * R mod 8 elements in order; shorter rows are summed in order. The
 * reference below is that order written out in C, in the dtype's own
 * arithmetic, so the comparison is bitwise. The sums read x*x + y and the
 * maxima x*y + x, computed inline (the fuse pass makes each reduction's
 * producers members of its kernel: one kernel per reduction) for R in {5, 16, 23, 64, 1001}, f32 and f64, sum and
 * max. The step is also run with uneven, out-of-order chunks (three seeds)
 * and must give the same bytes. Each f32 sum is also checked against the
 * double-precision sum to a bound of R * 2^-24 * sum|v| (the usual
 * worst-case bound of recursive summation), so the lane order is no less
 * accurate than the plain one.
 */
#include "tests/codegen/tcg.h"

enum { ROWS = 3, NR = 5 };
static const int64_t Rs[NR] = {5, 16, 23, 64, 1001};

static double comb(int is_max, int f32, double a, double b) {
    if (is_max) return a > b ? a : (b > a ? b : a);
    return f32 ? (double)((float)a + (float)b) : a + b;
}

/* the order of cg_kernel.c's emit_reduce for inner == 1 */
static double ref_row(const double *v, int64_t R, int is_max, int f32) {
    double init = is_max ? -INFINITY : 0.0, acc = init;
    int64_t R8 = R >= 16 ? R / 8 * 8 : 0;
    if (R8) {
        double lane[8];
        for (int j = 0; j < 8; j++) lane[j] = init;
        for (int64_t r = 0; r < R8; r++) lane[r % 8] = comb(is_max, f32, lane[r % 8], v[r]);
        for (int w = 8; w > 1; w /= 2)
            for (int j = 0; j < w / 2; j++) lane[j] = comb(is_max, f32, lane[2 * j], lane[2 * j + 1]);
        acc = lane[0];
    }
    for (int64_t r = R8; r < R; r++) acc = comb(is_max, f32, acc, v[r]);
    return acc;
}

int main(void) {
    IrGraph g;
    ir_init(&g);
    TcgRng rng = {0x9e3779b97f4a7c15ull};
    double *xs[2][NR], *ys[2][NR];
    char name[64];
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < NR; i++) {
            IrDType dt = t ? DT_F64 : DT_F32;
            int64_t shape[2] = {ROWS, Rs[i]};
            int64_t n = ROWS * Rs[i];
            xs[t][i] = malloc(sizeof(double) * (size_t)n);
            ys[t][i] = malloc(sizeof(double) * (size_t)n);
            for (int64_t e = 0; e < n; e++) {
                xs[t][i][e] = tcg_round(t ? DPOC_DT_F64 : DPOC_DT_F32, tcg_uniform(&rng, -3, 3));
                ys[t][i][e] = tcg_round(t ? DPOC_DT_F64 : DPOC_DT_F32, tcg_uniform(&rng, -1, 1));
            }
            snprintf(name, sizeof name, "x%d_%d", t, i);
            int32_t x = ir_input(&g, name, dt, 2, shape);
            snprintf(name, sizeof name, "y%d_%d", t, i);
            int32_t y = ir_input(&g, name, dt, 2, shape);
            int32_t v = ir_add(&g, ir_mul(&g, x, x), y);
            snprintf(name, sizeof name, "sum%d_%d", t, i);
            CHECK(ir_add_output(&g, name, ir_reduce(&g, OP_REDUCE_SUM, v, 1), IR_OUT_VALUE) == 0);
            snprintf(name, sizeof name, "max%d_%d", t, i);
            int32_t w = ir_add(&g, ir_mul(&g, x, y), x);
            CHECK(ir_add_output(&g, name, ir_reduce(&g, OP_REDUCE_MAX, w, 1), IR_OUT_VALUE) == 0);
        }
    PassCtx pc;
    memset(&pc, 0, sizeof pc);
    CHECK_MSG(pass_pipeline_run(&g, &pc, "fuse") == 0, "%s", pc.err);
    DpocStep s;
    if (tcg_compile(&g, &s)) return check_done("fuse_reduce");
    CHECK_MSG(s.nkernels == 4 * NR, "%d kernels, expected one per reduction (%d)", s.nkernels, 4 * NR);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < NR; i++) {
            snprintf(name, sizeof name, "x%d_%d", t, i);
            tcg_set(&s, name, DPOC_ROLE_INPUT, xs[t][i]);
            snprintf(name, sizeof name, "y%d_%d", t, i);
            tcg_set(&s, name, DPOC_ROLE_INPUT, ys[t][i]);
        }
    tcg_run(&s, NULL);
    int64_t osz = s.region_size[DPOC_R_OUTPUTS];
    uint8_t *snap = malloc((size_t)osz + 1);
    memcpy(snap, s.regions[DPOC_R_OUTPUTS], (size_t)osz);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < NR; i++)
            for (int k = 0; k < 2; k++) {
                int64_t R = Rs[i];
                double got[ROWS], v[1001];
                snprintf(name, sizeof name, "%s%d_%d", k ? "max" : "sum", t, i);
                if (tcg_get(&s, name, DPOC_ROLE_OUTPUT, got, ROWS)) continue;
                for (int row = 0; row < ROWS; row++) {
                    double exact = 0, mag = 0;
                    for (int64_t r = 0; r < R; r++) {
                        double a = xs[t][i][row * R + r], b = ys[t][i][row * R + r];
                        if (k) v[r] = t ? a * b + a : (double)((float)((float)a * (float)b) + (float)a);
                        else v[r] = t ? a * a + b : (double)((float)((float)a * (float)a) + (float)b);
                        exact += v[r];
                        mag += fabs(v[r]);
                    }
                    double ref = ref_row(v, R, k, !t);
                    CHECK_MSG(tcg_same(got[row], ref), "%s row %d: %.17g, lane-order reference %.17g", name, row,
                              got[row], ref);
                    if (!t && !k)
                        CHECK_MSG(fabs(got[row] - exact) <= (double)R * 0x1p-24 * mag, "%s row %d: %.9g vs exact %.9g",
                                  name, row, got[row], exact);
                }
            }
    for (int seed = 0; seed < 3; seed++) {
        tcg_chunk_seed = seed;
        memset(s.regions[DPOC_R_OUTPUTS], 0xA5, (size_t)osz);
        tcg_run(&s, &tcg_chunked);
        for (int t = 0; t < s.ntensors; t++) {
            const DpocTensorInfo *ti = &s.tensors[t];
            if (ti->role != DPOC_ROLE_OUTPUT) continue;
            CHECK_MSG(memcmp(snap + ti->offset, s.regions[DPOC_R_OUTPUTS] + ti->offset, (size_t)ti->nbytes) == 0,
                      "chunked run (seed %d): %s differs from the serial run", seed, ti->name);
        }
    }
    printf("  %d reductions over the last axis, R in {5, 16, 23, 64, 1001}: lane order exact\n", 4 * NR);
    free(snap);
    dpoc_step_close(&s);
    ir_free(&g);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < NR; i++) {
            free(xs[t][i]);
            free(ys[t][i]);
        }
    return check_done("fuse_reduce");
}
