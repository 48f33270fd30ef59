/* test_mesh_unit.c — the mesh pieces that need no MPI.
 *
 * 1. mesh_slice / mesh_unslice: tp rank r's block of dimension k is
 *    [r*n/T, (r+1)*n/T), checked element by element against the index
 *    formula on a [4, 6, 3] tensor split on each dimension, and the blocks
 *    of all ranks reassemble the full tensor exactly.
 * 2. ZeRO-1's ranged AdamW (zero_adamw_range, the moment offset adamw[7]):
 *    on a compiled step (argv[1]), the optimizer_step entry over the whole
 *    region and the kernel run on 3 (or 5) uneven ranges with moments kept
 *    per range give bitwise the same parameters and moments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/optim_sched.h"
#include "runtime/train_mesh.h"
#include "runtime/train_zero.h"

#include "tests/check.h"

static void test_slices(void) {
    const int64_t S[3] = {4, 6, 3};
    float full[72], back[72], local[72];
    for (int i = 0; i < 72; i++) full[i] = (float)i * 0.5f - 7.0f;
    for (int dim = 0; dim < 3; dim++) {
        TrainShard sh = {.dim = dim, .ndim = 3, .full = {4, 6, 3}, .full_numel = 72};
        int T = dim == 2 ? 3 : 2;
        memset(back, 0, sizeof back);
        for (int r = 0; r < T; r++) {
            mesh_slice(&sh, T, r, full, local);
            int64_t L[3] = {S[0], S[1], S[2]};
            L[dim] /= T;
            for (int64_t a = 0; a < L[0]; a++)
                for (int64_t b = 0; b < L[1]; b++)
                    for (int64_t c = 0; c < L[2]; c++) {
                        int64_t fa = a + (dim == 0 ? r * L[0] : 0), fb = b + (dim == 1 ? r * L[1] : 0),
                                fc = c + (dim == 2 ? r * L[2] : 0);
                        float want = full[(fa * S[1] + fb) * S[2] + fc];
                        float got = local[(a * L[1] + b) * L[2] + c];
                        CHECK_MSG(got == want, "dim %d rank %d local (%lld,%lld,%lld) = %g, want %g", dim, r, (long long)a,
                              (long long)b, (long long)c, got, want);
                    }
            mesh_unslice(&sh, T, r, local, back);
        }
        CHECK_MSG(!memcmp(back, full, sizeof full), "dim %d: the blocks do not reassemble the tensor", dim);
    }
    printf("slices: done\n");
}

static void fill(float *x, int64_t n, uint64_t seed, float scale, int positive) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = batch_mix64(seed * 1000003u + (uint64_t)i);
        float u = (float)((double)(z >> 11) / 9007199254740992.0) - 0.5f;
        x[i] = positive ? (u + 0.5f) * scale : u * scale;
    }
}

static void test_zero(const char *path) {
    DpocStep s;
    char err[512];
    if (dpoc_step_open(&s, path, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    double *adamw = dpoc_step_find(&s, "adamw", DPOC_ROLE_INPUT, NULL);
    int k = zero_find_kernel(&s);
    CHECK_MSG(adamw && k >= 0, "the step has no adamw input / kernel");
    if (!adamw || k < 0) {
        dpoc_step_close(&s);
        return;
    }
    int64_t N = s.region_size[DPOC_R_PARAMS] / 4;
    size_t bytes = (size_t)N * 4;
    float *init[4], *want[4];
    for (int r = 0; r < 4; r++) {
        init[r] = malloc(bytes);
        want[r] = malloc(bytes);
        fill(init[r], N, (uint64_t)r + 1, r == 3 ? 0.01f : 1.0f, r == 3);
    }
    opt_adamw_hparams(adamw, 1e-3, 0.9, 0.999, 1e-8, 0.1, 7);
    for (int r = 0; r < 4; r++) memcpy(s.regions[r], init[r], bytes);
    CHECK_MSG(dpoc_step_optimizer(&s, NULL, err, sizeof err) == 0, "optimizer_step: %s", err);
    for (int r = 0; r < 4; r++) memcpy(want[r], s.regions[r], bytes);
    for (int D = 3; D <= 5; D += 2) {
        memcpy(s.regions[DPOC_R_PARAMS], init[0], bytes);
        memcpy(s.regions[DPOC_R_GRADS], init[1], bytes);
        int64_t c = (N + D - 1) / D;
        for (int q = 0; q < D; q++) {
            int64_t lo = q * c < N ? q * c : N, hi = lo + c < N ? lo + c : N;
            float *m = malloc((size_t)(c ? c : 1) * 4), *v = malloc((size_t)(c ? c : 1) * 4);
            memcpy(m, init[2] + lo, (size_t)(hi - lo) * 4);
            memcpy(v, init[3] + lo, (size_t)(hi - lo) * 4);
            CHECK_MSG(zero_adamw_range(&s, NULL, k, lo, hi, m, v, adamw, err, sizeof err) == 0, "%s", err);
            CHECK_MSG(adamw[7] == 0, "adamw[7] not restored");
            CHECK_MSG(!memcmp(m, want[2] + lo, (size_t)(hi - lo) * 4) && !memcmp(v, want[3] + lo, (size_t)(hi - lo) * 4),
                  "D=%d range %d: moments differ from the whole-region update", D, q);
            free(m);
            free(v);
        }
        CHECK_MSG(!memcmp(s.regions[DPOC_R_PARAMS], want[0], bytes), "D=%d: parameters differ from the whole-region update", D);
    }
    printf("zero: %lld elements, ranged AdamW matches the whole-region update\n", (long long)N);
    for (int r = 0; r < 4; r++) {
        free(init[r]);
        free(want[r]);
    }
    dpoc_step_close(&s);
}

int main(int argc, char **argv) {
    test_slices();
    if (argc > 1) test_zero(argv[1]);
    return check_done("test_mesh_unit");
}
