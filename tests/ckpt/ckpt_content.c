/* ckpt_content.c — see ckpt_content.h. Values come from splitmix64 seeded
 * with the step and the tensor's index; sizes of two tensors depend on the
 * step, so consecutive checkpoints differ in layout as well as content. */
#include "ckpt_content.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t ckpt_content_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void add(CkptContent *c, const char *name, int dtype, int ndim, const int64_t *shape) {
    CkptTensor *t = &c->t[c->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = (uint8_t)dtype;
    t->ndim = (uint8_t)ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    t->nbytes = numel * ckpt_dtype_size(dtype);
    t->data = t->nbytes ? malloc(t->nbytes) : NULL;
}

void ckpt_content_make(CkptContent *c, uint64_t step, int big) {
    memset(c, 0, sizeof *c);
    uint64_t r = step * 1000003u + 17;
    c->st.step = step;
    c->st.epoch = step / 10;
    c->st.data_pos = step * 3 % 1000;
    for (int i = 0; i < 4; i++) c->st.rng[i] = ckpt_content_rand(&r);
    c->st.config_hash = 0xC0FFEE0012345678ull;
    c->st.mesh_dp = 1;
    c->st.mesh_tp = 1;
    snprintf(c->st.extra_json, sizeof c->st.extra_json, "{\"step\": %llu, \"lr\": 0.001}", (unsigned long long)step);

    add(c, "model.embed_tokens.weight", CKPT_F32, 2, (int64_t[]){96, 64});
    float *f = c->t[c->n - 1].data;
    for (int i = 0; i < 96 * 64; i++) f[i] = (float)((int64_t)(ckpt_content_rand(&r) >> 40) - (1 << 23)) / (1 << 23);

    add(c, "optimizer.adam_m", CKPT_F64, 2, (int64_t[]){(int64_t)(step % 7) + 1, 100});
    double *g = c->t[c->n - 1].data;
    for (int i = 0; i < (int)(step % 7 + 1) * 100; i++) g[i] = (double)step + i * 0.25;

    add(c, "data.order", CKPT_I32, 1, (int64_t[]){1000});
    int32_t *o = c->t[c->n - 1].data;
    for (int i = 0; i < 1000; i++) o[i] = (int32_t)(((uint64_t)i * 7919u + step) % 1000);

    add(c, "model.norm.weight", CKPT_BF16, 1, (int64_t[]){64});
    uint16_t *b = c->t[c->n - 1].data;
    for (int i = 0; i < 64; i++) b[i] = (uint16_t)ckpt_content_rand(&r);

    add(c, "mask", CKPT_U8, 1, (int64_t[]){(int64_t)(step % 100) + 4000});
    unsigned char *m = c->t[c->n - 1].data;
    for (size_t i = 0; i < c->t[c->n - 1].nbytes; i++) m[i] = (unsigned char)((i / 37 + step) & 3);

    add(c, "step_scalar", CKPT_F16, 0, NULL);
    *(uint16_t *)c->t[c->n - 1].data = (uint16_t)step;

    add(c, "empty", CKPT_F32, 2, (int64_t[]){0, 5});

    if (big) {
        add(c, "model.layers.0.mlp.up_proj.weight", CKPT_F32, 2, (int64_t[]){128, 512});
        uint32_t *u = c->t[c->n - 1].data;
        for (int i = 0; i < 128 * 512; i += 2) {
            uint64_t v = ckpt_content_rand(&r);
            u[i] = (uint32_t)v;
            u[i + 1] = (uint32_t)(v >> 32);
        }
    }
}

void ckpt_content_free(CkptContent *c) {
    for (int i = 0; i < c->n; i++) free(c->t[i].data);
    c->n = 0;
}
