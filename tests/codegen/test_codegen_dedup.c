/* test_codegen_dedup.c — kernel calls of the same structure share one function.
 *
 * sharing: one graph holds pairs of kernels that are structurally identical
 * (sqrt of two [2,3] inputs, a*2 and b*2, a*b and c*d, a slice of two [4,4]
 * inputs at the same start) and pairs that differ in exactly one thing: the
 * shape (sqrt of [2,3] vs [3,2]), the dtype (f32 vs f64), a constant's value
 * (a*2 vs a*3), an attribute (slice start 0 vs 1) and operand identity (a*a
 * vs a*b). Each output's kernel call is found in the manifest by its first
 * argument place (the output tensor's place); the identical pairs must name
 * one function and one pointer, the others different ones. Every output is
 * checked against a C reference (exact ops: sqrt, mul, slice), and two calls
 * of the shared a*b function are run alone through the manifest's kernel
 * table with argument arrays built by dpoc_step_kernel_args, which is what
 * a kernel benchmark does. With no_kernel_dedup every call has a function
 * of its own.
 *
 * alias_per_call: two calls of one function, the second scheduled (by hand)
 * with its output over part of its input: codegen must refuse it although
 * the function was already emitted for a call that was fine. Scheduled
 * exactly over its input (an in-place map, as concat placement makes) the
 * second call is accepted, gets a function of its own (no alias claim) and
 * computes the same values in place.
 *
 * model_bitwise: a 2-layer Qwen2-shaped model (the YAML is in this file)
 * compiled with and without sharing gives the same kernel table (names,
 * work, flops, bytes, argument places; only "fn" differs) and, run on the
 * same parameters and inputs (logps, train_step serial and with uneven
 * chunks, optimizer_step), bitwise the same memory in every region. The
 * same model with 4 layers has twice the layer kernels but exactly as many
 * functions as with 2.
 */
#include <cjson/cJSON.h>

#include "frontend/frontend.h"
#include "tcg.h"

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* the kernel call writing output tensor `name` (its argument 0 is the
 * tensor's place), or -1 */
static int call_of(const DpocStep *s, const char *name) {
    DpocTensorInfo t;
    if (dpoc_step_lookup(s, name, DPOC_ROLE_OUTPUT, &t)) return -1;
    for (int k = 0; k < s->nkernels; k++) {
        const DpocKernelInfo *ki = &s->kernels[k];
        if (ki->nargs > 0 && ki->arg_region[0] == t.region && ki->arg_offset[0] == t.offset) return k;
    }
    return -1;
}

/* The function table agrees with itself: "functions" lists nfunctions
 * entries whose "calls" add up to the rows naming them, rows with one "fn"
 * have one pointer and that function's argument count, and there are as
 * many distinct pointers as functions. Returns nfunctions. */
static int check_functions(const DpocStep *s, const char *label) {
    const cJSON *funcs = jget(s->json, "functions");
    int nf = cJSON_GetArraySize(funcs);
    CHECK_MSG(nf == s->nfunctions && nf > 0, "%s: %d functions in JSON, %d loaded", label, nf, s->nfunctions);
    DpocKernelFn *ptr = calloc((size_t)(nf > 0 ? nf : 1), sizeof *ptr);
    int *calls = calloc((size_t)(nf > 0 ? nf : 1), sizeof *calls);
    int distinct = 0;
    for (int k = 0; k < s->nkernels; k++) {
        const DpocKernelInfo *ki = &s->kernels[k];
        if (ki->fn < 0 || ki->fn >= nf) {
            CHECK_MSG(0, "%s: call %s names function %d of %d", label, ki->name, ki->fn, nf);
            continue;
        }
        calls[ki->fn]++;
        const cJSON *f = cJSON_GetArrayItem(funcs, ki->fn);
        CHECK_MSG(jget(f, "nargs")->valueint == ki->nargs, "%s: call %s has %d arguments, its function %d", label,
                  ki->name, ki->nargs, jget(f, "nargs")->valueint);
        if (!ptr[ki->fn]) {
            ptr[ki->fn] = s->manifest->kernels[k];
            for (int j = 0; j < k; j++) CHECK(s->manifest->kernels[j] != s->manifest->kernels[k]);
            distinct++;
        }
        CHECK_MSG(ptr[ki->fn] == s->manifest->kernels[k], "%s: calls of function %d have different pointers", label, ki->fn);
    }
    for (int i = 0; i < nf; i++)
        CHECK_MSG(calls[i] == jget(cJSON_GetArrayItem(funcs, i), "calls")->valueint && calls[i] > 0,
                  "%s: function %d has %d calls", label, i, calls[i]);
    CHECK_MSG(distinct == nf, "%s: %d distinct pointers for %d functions", label, distinct, nf);
    free(ptr);
    free(calls);
    return nf;
}

/* ---- sharing -------------------------------------------------------------- */
static const int64_t S23[2] = {2, 3}, S32[2] = {3, 2}, S44[2] = {4, 4};

enum { NIN = 8 };
static const char *const in_names[NIN] = {"a", "b", "c", "d", "f", "h", "x4", "y4"};

static void build_sharing(IrGraph *g) {
    ir_init(g);
    int32_t a = ir_input(g, "a", DT_F32, 2, S23), b = ir_input(g, "b", DT_F32, 2, S23);
    int32_t c = ir_input(g, "c", DT_F32, 2, S23), d = ir_input(g, "d", DT_F32, 2, S23);
    int32_t f = ir_input(g, "f", DT_F32, 2, S32), h = ir_input(g, "h", DT_F64, 2, S23);
    int32_t x4 = ir_input(g, "x4", DT_F32, 2, S44), y4 = ir_input(g, "y4", DT_F32, 2, S44);
    struct {
        const char *name;
        int32_t id;
    } outs[] = {
        {"sa", ir_unary(g, OP_SQRT, a)},  {"sb", ir_unary(g, OP_SQRT, b)},  {"sf", ir_unary(g, OP_SQRT, f)},
        {"sh", ir_unary(g, OP_SQRT, h)},  {"m2a", ir_scale(g, a, 2.0)},     {"m2b", ir_scale(g, b, 2.0)},
        {"m3a", ir_scale(g, a, 3.0)},     {"aa", ir_mul(g, a, a)},          {"ab", ir_mul(g, a, b)},
        {"cd", ir_mul(g, c, d)},          {"s0", ir_slice(g, x4, 0, 0, 2)}, {"s1", ir_slice(g, x4, 0, 1, 3)},
        {"t0", ir_slice(g, y4, 0, 0, 2)},
    };
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        CHECK(ir_add_output(g, outs[i].name, outs[i].id, IR_OUT_VALUE) == 0);
    CHECK_MSG(!g->err[0], "%s", g->err);
}

/* input values: positive, distinct per tensor and element */
static double in_value(int t, int64_t i) { return 0.25 + 0.5 * t + 0.125 * (double)i; }

static double *get_out(DpocStep *s, const char *name, int64_t n) {
    double *v = calloc((size_t)n, sizeof *v);
    tcg_get(s, name, DPOC_ROLE_OUTPUT, v, n);
    return v;
}

static void check_sharing_values(DpocStep *s, const char *label) {
    double a[6], b[6], c[6], d[6], f[6], h[6], x4[16], y4[16];
    double *ins[NIN] = {a, b, c, d, f, h, x4, y4};
    for (int t = 0; t < NIN; t++) {
        int64_t n = t >= 6 && t <= 7 ? 16 : 6;
        for (int64_t i = 0; i < n; i++) ins[t][i] = in_value(t, i);
        tcg_set(s, in_names[t], DPOC_ROLE_INPUT, ins[t]);
    }
    if (tcg_run(s, NULL)) return;
    struct {
        const char *name;
        int64_t n;
    } outs[] = {{"sa", 6}, {"sb", 6}, {"sf", 6}, {"sh", 6}, {"m2a", 6}, {"m2b", 6}, {"m3a", 6},
                {"aa", 6}, {"ab", 6}, {"cd", 6}, {"s0", 8}, {"s1", 8}, {"t0", 8}};
    for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++) {
        double *v = get_out(s, outs[o].name, outs[o].n);
        for (int64_t i = 0; i < outs[o].n; i++) {
            const char *nm = outs[o].name;
            double want;
            if (!strcmp(nm, "sa")) want = sqrtf((float)a[i]);
            else if (!strcmp(nm, "sb")) want = sqrtf((float)b[i]);
            else if (!strcmp(nm, "sf")) want = sqrtf((float)f[i]);
            else if (!strcmp(nm, "sh")) want = sqrt(h[i]);
            else if (!strcmp(nm, "m2a")) want = (float)a[i] * 2.0f;
            else if (!strcmp(nm, "m2b")) want = (float)b[i] * 2.0f;
            else if (!strcmp(nm, "m3a")) want = (float)a[i] * 3.0f;
            else if (!strcmp(nm, "aa")) want = (float)a[i] * (float)a[i];
            else if (!strcmp(nm, "ab")) want = (float)a[i] * (float)b[i];
            else if (!strcmp(nm, "cd")) want = (float)c[i] * (float)d[i];
            else if (!strcmp(nm, "s0")) want = x4[i];          /* rows 0..1 */
            else if (!strcmp(nm, "s1")) want = x4[4 + i];      /* rows 1..2 */
            else want = y4[i];
            CHECK_MSG(v[i] == want, "%s: %s[%lld] = %.9g, want %.9g", label, nm, (long long)i, v[i], want);
        }
        free(v);
    }
}

/* runs the call writing `out` alone, through the manifest's kernel table,
 * after clearing its output; the output must come back */
static void check_replay(DpocStep *s, const char *out, const char *label) {
    int k = call_of(s, out);
    CHECK_MSG(k >= 0, "%s: no call writes %s", label, out);
    if (k < 0) return;
    double before[6], after[6], zero[6] = {0};
    tcg_get(s, out, DPOC_ROLE_OUTPUT, before, 6);
    tcg_set(s, out, DPOC_ROLE_OUTPUT, zero);
    uint8_t *p[8];
    int n = dpoc_step_kernel_args(s, k, p, 8);
    CHECK(n == 3);
    CHECK(dpoc_step_kernel_args(s, k, p, 2) == -1 && dpoc_step_kernel_args(s, s->nkernels, p, 8) == -1);
    if (n != 3) return;
    s->manifest->kernels[k](p, 0, s->kernels[k].work);
    tcg_get(s, out, DPOC_ROLE_OUTPUT, after, 6);
    for (int i = 0; i < 6; i++) CHECK_MSG(after[i] == before[i] && after[i] != 0, "%s: replay of %s[%d]", label, out, i);
}

static void test_sharing(void) {
    IrGraph g;
    build_sharing(&g);
    char err[1024];
    for (int nodedup = 0; nodedup < 2; nodedup++) {
        const char *label = nodedup ? "sharing, no dedup" : "sharing";
        TcgGraphs gs = {{&g, NULL}, 0, NULL, NULL, nodedup};
        DpocStep s;
        if (tcg_compile_ex(&gs, &s, err, sizeof err)) {
            CHECK_MSG(0, "%s: compile: %s", label, err);
            continue;
        }
        int nf = check_functions(&s, label);
        static const char *const same[][2] = {{"sa", "sb"}, {"m2a", "m2b"}, {"ab", "cd"}, {"s0", "t0"}};
        static const char *const differ[][2] = {{"sa", "sf"}, {"sa", "sh"}, {"m2a", "m3a"}, {"ab", "aa"}, {"s0", "s1"}};
        for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
            int x = call_of(&s, same[i][0]), y = call_of(&s, same[i][1]);
            CHECK_MSG(x >= 0 && y >= 0 && x != y, "%s: calls of %s, %s not found", label, same[i][0], same[i][1]);
            if (x < 0 || y < 0) continue;
            int shared = s.kernels[x].fn == s.kernels[y].fn;
            CHECK_MSG(shared == !nodedup, "%s: %s and %s %s one function", label, same[i][0], same[i][1],
                      shared ? "share" : "do not share");
            CHECK((s.manifest->kernels[x] == s.manifest->kernels[y]) == shared);
            CHECK(s.kernels[x].arg_offset[0] != s.kernels[y].arg_offset[0]); /* and write different places */
        }
        for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
            int x = call_of(&s, differ[i][0]), y = call_of(&s, differ[i][1]);
            CHECK_MSG(x >= 0 && y >= 0, "%s: calls of %s, %s not found", label, differ[i][0], differ[i][1]);
            if (x < 0 || y < 0) continue;
            CHECK_MSG(s.kernels[x].fn != s.kernels[y].fn && s.manifest->kernels[x] != s.manifest->kernels[y],
                      "%s: %s and %s share a function", label, differ[i][0], differ[i][1]);
        }
        if (nodedup) CHECK_MSG(nf == s.nkernels, "%s: %d functions for %d calls", label, nf, s.nkernels);
        else CHECK_MSG(nf == s.nkernels - 4, "%s: %d functions for %d calls", label, nf, s.nkernels);
        check_sharing_values(&s, label);
        check_replay(&s, "ab", label);
        check_replay(&s, "cd", label);
        printf("  %-22s %2d calls, %2d functions\n", label, s.nkernels, nf);
        dpoc_step_close(&s);
    }
    ir_free(&g);
}

/* ---- the alias check runs for every call ---------------------------------- */
static void test_alias_per_call(void) {
    IrGraph g;
    ir_init(&g);
    int32_t a = ir_input(&g, "a", DT_F32, 2, S23), b = ir_input(&g, "b", DT_F32, 2, S23);
    int32_t t1 = ir_scale(&g, a, 2.0), t2 = ir_scale(&g, b, 2.0);
    int32_t y1 = ir_unary(&g, OP_SQRT, t1), y2 = ir_unary(&g, OP_SQRT, t2);
    CHECK(ir_add_output(&g, "y1", y1, IR_OUT_VALUE) == 0 && ir_add_output(&g, "y2", y2, IR_OUT_VALUE) == 0);
    IrGraph *gp = &g;
    TensorTable tt;
    SchedPlan p;
    char err[1024], path[400];
    CHECK(tensor_table_build(&tt, &gp, 1, err, sizeof err) == 0);
    CHECK(sched_plan(&g, &tt, &p, err, sizeof err) == 0);
    CHECK(p.region[t2] == DPOC_R_ARENA && p.region[y2] == DPOC_R_OUTPUTS);
    snprintf(path, sizeof path, "%s/alias.so", tcg_tmpdir());
    CodegenEntry e = {"logps", &g, &p};
    CHECK_MSG(codegen_build_so(&e, 1, &tt, NULL, path, err, sizeof err) == 0, "%s", err);
    unlink(path);
    /* y2 exactly over its own input t2: an in-place map, in a function of its own */
    p.region[y2] = p.region[t2];
    p.offset[y2] = p.offset[t2];
    CHECK_MSG(codegen_build_so(&e, 1, &tt, NULL, path, err, sizeof err) == 0, "in place: %s", err);
    DpocStep s;
    if (dpoc_step_open(&s, path, err, sizeof err) == 0) {
        int x = -1, y = -1;
        for (int k = 0; k < s.nkernels; k++) {
            if (s.kernels[k].arg_offset[0] == p.offset[y1] && s.kernels[k].arg_region[0] == DPOC_R_OUTPUTS) x = k;
            if (s.kernels[k].arg_offset[0] == p.offset[y2] && s.kernels[k].arg_region[0] == DPOC_R_ARENA) y = k;
        }
        CHECK_MSG(x >= 0 && y >= 0 && s.kernels[x].fn != s.kernels[y].fn, "in place: the sqrt calls (%d, %d) share a function",
                  x, y);
        float *in = (float *)(s.regions[DPOC_R_INPUTS]), *arena = (float *)s.regions[DPOC_R_ARENA];
        DpocTensorInfo ti;
        CHECK(dpoc_step_lookup(&s, "b", DPOC_ROLE_INPUT, &ti) == 0);
        for (int i = 0; i < 6; i++) ((float *)((uint8_t *)in + ti.offset))[i] = (float)(i + 1);
        CHECK_MSG(dpoc_step_logps(&s, NULL, err, sizeof err) == 0, "in place: run: %s", err);
        for (int i = 0; i < 6; i++) {
            float want = sqrtf(2.0f * (float)(i + 1)), got = arena[p.offset[y2] / 4 + i];
            CHECK_MSG(got == want, "in place: y2[%d] = %g, want %g", i, (double)got, (double)want);
        }
        dpoc_step_close(&s);
    } else {
        CHECK_MSG(0, "in place: open: %s", err);
    }
    unlink(path);
    /* y2 over part of its input (one element along): refused */
    p.offset[y2] = p.offset[t2] + 4;
    CHECK(codegen_build_so(&e, 1, &tt, NULL, path, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "over its input") != NULL, "message: %s", err);
    CHECK(access(path, F_OK) != 0);
    sched_plan_free(&p);
    tensor_table_free(&tt);
    ir_free(&g);
    printf("  %-22s refused, exactly over it: in place\n", "output over input");
}

/* ---- a multi-layer model, shared vs per-call functions -------------------- */
static const char MODEL_YAML[] =
    "name: dedup\n"
    "dtype: f32\n"
    "vocab_size: 32\n"
    "hidden_size: 16\n"
    "architecture:\n"
    "  - embedding\n"
    "  - repeat: %d\n"
    "    block:\n"
    "      - residual:\n"
    "          - rmsnorm: {eps: 1.0e-6}\n"
    "          - attention: {heads: 2, kv_heads: 1, head_dim: 8, rope_theta: 10000, causal: true, qkv_bias: true}\n"
    "      - residual:\n"
    "          - rmsnorm: {eps: 1.0e-6}\n"
    "          - mlp: {intermediate_size: 32}\n"
    "  - rmsnorm: {eps: 1.0e-6}\n"
    "  - lm_head: {tied: true}\n"
    "loss:\n"
    "  use: sigmoid\n"
    "  params: {beta: 0.1, label_smoothing: 0.0}\n"
    "reference: precomputed\n"
    "train:\n"
    "  pairs: 2\n"
    "  seq_len: 8\n";
enum { MODEL_VOCAB = 32 };

/* train_step and logps graphs of the model with `layers` layers; 0 ok */
static int build_model(int layers, IrGraph g[2]) {
    char text[2048], err[1024];
    snprintf(text, sizeof text, MODEL_YAML, layers);
    ModelCfg cfg;
    if (model_cfg_load_str(text, strlen(text), "dedup.yaml", &cfg, err, sizeof err)) {
        CHECK_MSG(0, "model: %s", err);
        model_cfg_free(&cfg);
        return -1;
    }
    int rc = 0, built = 0;
    for (int i = 0; i < 2 && !rc; i++, built++) {
        BuildOptions bo = {.dtype = DT_F32};
        PassCtx pc;
        memset(&pc, 0, sizeof pc);
        pc.log = stderr;
        ir_init(&g[i]);
        if (model_build_graph(&cfg, i == 0 ? BUILD_TRAIN : BUILD_LOGPS, &bo, &g[i], err, sizeof err) ||
            pass_pipeline_run(&g[i], &pc, i == 0 ? "simplify,autodiff,simplify" : "simplify")) {
            CHECK_MSG(0, "model graph %d: %s%s", i, err, pc.err);
            rc = -1;
        }
    }
    model_cfg_free(&cfg);
    if (rc)
        for (int i = 0; i < built; i++) ir_free(&g[i]);
    return rc;
}

static uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* deterministic parameters and inputs, by tensor name and element */
static void fill_model(DpocStep *s) {
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM && t->role != DPOC_ROLE_INPUT) continue;
        uint64_t h = 1469598103934665603ull;
        for (const char *c = t->name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
        double *v = calloc((size_t)t->numel, sizeof *v);
        for (int64_t k = 0; k < t->numel; k++) {
            uint64_t r = mix(h + (uint64_t)k);
            double u = (double)(r >> 11) / 9007199254740992.0; /* [0, 1) */
            if (t->dtype == DPOC_DT_I32) v[k] = (double)(r % MODEL_VOCAB);
            else if (!strcmp(t->name, "loss_mask")) v[k] = k % 8 >= 3; /* response positions */
            else if (!strcmp(t->name, "ref_logps")) v[k] = -20.0 - 10.0 * u;
            else v[k] = (u - 0.5) * 0.5;
        }
        if (!strcmp(t->name, CODEGEN_ADAMW_INPUT) && t->numel == CODEGEN_ADAMW_N) {
            const double hp[CODEGEN_ADAMW_N] = {1e-2, 0.9, 0.999, 1e-8, 0.01, 1 - 0.9, 1 - 0.999, 0};
            memcpy(v, hp, sizeof hp);
        }
        tcg_set(s, t->name, t->role, v);
        free(v);
    }
}

/* logps, train_step serially, train_step again split unevenly (same
 * result expected), optimizer_step */
static void run_model(DpocStep *s, const char *label) {
    char err[256];
    CHECK_MSG(dpoc_step_logps(s, NULL, err, sizeof err) == 0, "%s: %s", label, err);
    tcg_run(s, NULL);
    double loss;
    tcg_get(s, "loss", DPOC_ROLE_OUTPUT, &loss, 1);
    CHECK_MSG(isfinite(loss) && loss > 0, "%s: loss %g", label, loss);
    tcg_run(s, &tcg_chunked);
    double again;
    tcg_get(s, "loss", DPOC_ROLE_OUTPUT, &again, 1);
    CHECK(again == loss);
    CHECK_MSG(dpoc_step_optimizer(s, NULL, err, sizeof err) == 0, "%s: %s", label, err);
}

static int compile_model(IrGraph g[2], int nodedup, DpocStep *s) {
    char err[1024];
    TcgGraphs gs = {{&g[0], &g[1]}, 1, NULL, NULL, nodedup};
    if (tcg_compile_ex(&gs, s, err, sizeof err)) {
        CHECK_MSG(0, "compile (dedup %s): %s", nodedup ? "off" : "on", err);
        return -1;
    }
    return 0;
}

static void test_model_bitwise(void) {
    IrGraph g2[2], g4[2];
    DpocStep on, off, four;
    if (build_model(2, g2)) return;
    if (build_model(4, g4)) goto free2;
    if (compile_model(g2, 0, &on)) goto free4;
    if (compile_model(g2, 1, &off)) {
        dpoc_step_close(&on);
        goto free4;
    }
    int nf_on = check_functions(&on, "2 layers");
    int nf_off = check_functions(&off, "2 layers, no dedup");
    CHECK_MSG(on.nkernels == off.nkernels && nf_off == off.nkernels && nf_on * 3 < nf_off,
              "%d calls: %d functions shared, %d not", on.nkernels, nf_on, nf_off);
    /* the same calls, in the same order, with the same places */
    for (int k = 0; k < on.nkernels && on.nkernels == off.nkernels; k++) {
        const DpocKernelInfo *x = &on.kernels[k], *y = &off.kernels[k];
        int same = !strcmp(x->name, y->name) && !strcmp(x->entry, y->entry) && !strcmp(x->op, y->op) &&
                   x->work == y->work && x->flops == y->flops && x->bytes == y->bytes && x->nargs == y->nargs;
        for (int a = 0; same && a < x->nargs; a++)
            same = x->arg_region[a] == y->arg_region[a] && x->arg_offset[a] == y->arg_offset[a];
        CHECK_MSG(same, "kernel row %d (%s) differs with and without dedup", k, x->name);
    }
    fill_model(&on);
    fill_model(&off);
    run_model(&on, "dedup");
    run_model(&off, "no dedup");
    for (int r = 0; r < DPOC_R_COUNT; r++) {
        CHECK(on.region_size[r] == off.region_size[r]);
        if (on.region_size[r] != off.region_size[r]) continue;
        CHECK_MSG(memcmp(on.regions[r], off.regions[r], (size_t)on.region_size[r]) == 0,
                  "region %d differs between shared and per-call kernels", r);
    }
    if (compile_model(g4, 0, &four) == 0) {
        int nf4 = check_functions(&four, "4 layers");
        CHECK_MSG(nf4 == nf_on && four.nkernels > on.nkernels, "4 layers: %d calls, %d functions (2 layers: %d, %d)",
                  four.nkernels, nf4, on.nkernels, nf_on);
        printf("  %-22s %d calls, %d functions\n", "model, 4 layers", four.nkernels, nf4);
        dpoc_step_close(&four);
    }
    printf("  %-22s %d calls, %d functions (%d without dedup), bitwise equal\n", "model, 2 layers", on.nkernels, nf_on,
           nf_off);
    dpoc_step_close(&on);
    dpoc_step_close(&off);
free4:
    for (int i = 0; i < 2; i++) ir_free(&g4[i]);
free2:
    for (int i = 0; i < 2; i++) ir_free(&g2[i]);
}

int main(void) {
    test_sharing();
    test_alias_per_call();
    test_model_bitwise();
    return check_done("codegen dedup");
}
