/* ckpt_cmp.c — compare the f32 tensors of two checkpoints, for the MPI tests.
 *
 * usage: ckpt_cmp A B REL [PREFIX]
 * For every tensor of A whose name starts with PREFIX (default: all), B must
 * have the same name and shape, and max|a - b| <= REL * max|b| over the
 * tensor (a tolerance relative to the tensor's scale; REL 0 asks for
 * bitwise equality). Prints the worst relative difference per tensor kind
 * and "OK", or the first tensor that fails; exit 0 / 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ckpt.h"

int main(int argc, char **argv) {
    if (argc < 4) return fprintf(stderr, "usage: ckpt_cmp A B REL [PREFIX]\n"), 2;
    char err[512];
    Ckpt *a = ckpt_open(argv[1], err, sizeof err), *b = a ? ckpt_open(argv[2], err, sizeof err) : NULL;
    if (!a || !b) {
        fprintf(stderr, "ckpt_cmp: %s\n", err);
        if (a) ckpt_close(a);
        return 1;
    }
    double rel = atof(argv[3]), worst = 0;
    const char *prefix = argc > 4 ? argv[4] : "";
    int bad = 0, n = 0;
    for (int i = 0; i < ckpt_ntensors(a) && !bad; i++) {
        const CkptTensor *ta = ckpt_tensor(a, i);
        if (strncmp(ta->name, prefix, strlen(prefix)) || ta->dtype != CKPT_F32) continue;
        int j = ckpt_find(b, ta->name);
        const CkptTensor *tb = j >= 0 ? ckpt_tensor(b, j) : NULL;
        if (!tb || tb->nbytes != ta->nbytes || tb->ndim != ta->ndim || memcmp(ta->shape, tb->shape, sizeof ta->shape)) {
            printf("FAIL %s: missing or of another shape in %s\n", ta->name, argv[2]);
            bad = 1;
            break;
        }
        size_t ne = ta->nbytes / 4;
        float *x = malloc(ta->nbytes + 4), *y = malloc(ta->nbytes + 4);
        if (!x || !y || ckpt_read_tensor(a, i, x, ta->nbytes, err, sizeof err) ||
            ckpt_read_tensor(b, j, y, tb->nbytes, err, sizeof err)) {
            printf("FAIL %s: %s\n", ta->name, err);
            bad = 1;
        } else {
            double dmax = 0, ymax = 0;
            for (size_t k = 0; k < ne; k++) {
                double d = fabs((double)x[k] - (double)y[k]);
                if (d > dmax || isnan(d)) dmax = isnan(d) ? INFINITY : d;
                if (fabs((double)y[k]) > ymax) ymax = fabs((double)y[k]);
            }
            double r = dmax == 0 ? 0 : ymax > 0 ? dmax / ymax : INFINITY;
            if (r > worst) worst = r;
            if (rel == 0 ? memcmp(x, y, ta->nbytes) != 0 : !(r <= rel)) {
                printf("FAIL %s: max |a-b| %.3g, max |b| %.3g: relative %.3g > %.3g\n", ta->name, dmax, ymax, r, rel);
                bad = 1;
            }
            n++;
        }
        free(x);
        free(y);
    }
    ckpt_close(a);
    ckpt_close(b);
    if (!bad && n == 0) return printf("FAIL no tensor named %s*\n", prefix), 1;
    if (!bad) printf("OK %d tensors, worst relative difference %.3g\n", n, worst);
    return bad;
}
