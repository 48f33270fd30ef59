/* test_fuse_exact.c — fusion changes where values live, never their bits.
 *
 * For every model YAML on the command line: the train_step and logps graphs
 * are built by the front end and run through the pipeline of `dpoc compile`
 * twice, once ending in `fuse` and once without it. Both are compiled
 * (tensor table, schedule, codegen) and loaded; parameters and inputs get
 * the same deterministic values (hashed from tensor name and element); then
 * logps and train_step run. Every byte of the OUTPUTS and GRADS regions
 * must be identical between the fused and the unfused step: codegen gives
 * every op the same rounding wherever it runs (cg_math.c), so the only
 * thing fusion may change is how many kernels run and how much arena they
 * need. The fused step is also run with uneven, out-of-order thread chunks
 * (tcg_chunked, three seeds) and must give the serial run's bytes. The
 * kernel counts and arena peaks of both are printed, and fusion must have
 * removed kernels and not grown the arena.
 *
 * A third build, fused with a dense head (BuildOptions.dense_head), checks
 * the masked head (matmul_masked on loss_mask, the default): every output
 * and gradient element must compare equal to the dense head's (as floats:
 * a product with a dead row's zero may be +0 in one and -0 in the other).
 * The loss mask leaves out the first half of every row (tiny: 8 rows, more
 * than a micro-panel) and single positions, never a whole row.
 *
 * Every model is checked twice: with its head whole and in vocabulary
 * chunks of 64 (BuildOptions.vocab_chunk). Chunked, the third build keeps
 * the chunks' logits for the backward (BuildOptions.head_keep) instead of
 * recomputing them: its outputs and gradients must be the fused step's
 * byte for byte, with exactly one matmul call per chunk fewer (the
 * backward's recomputation of the chunk's logits). Chunked, the head's weight
 * gradient is a concat of the chunks' gradients (simplify), and the fused
 * schedule computes each chunk's gradient straight into its rows of the
 * gradient (passes/sched_concat.c): with n chunks, at least n - 1 more
 * matmul calls of the fused train_step write the GRADS region than with the
 * head whole (where one matmul makes the head's whole gradient), and the
 * bytes must still be the unfused step's. A tied head's embedding gradient
 * is one scatter_add_into (the gathered rows added to the head's gradient)
 * in both builds, and chunked and fused it adds in place: its base, the
 * chunks' gradients, lies where it writes.
 */
#include "tests/codegen/tcg.h"

#include "frontend/frontend.h"

static uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* deterministic parameters and inputs, by tensor name and element */
static void fill(DpocStep *s, int64_t vocab) {
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM && t->role != DPOC_ROLE_INPUT) continue;
        uint64_t h = 1469598103934665603ull;
        for (const char *c = t->name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
        double *v = calloc((size_t)(t->numel ? t->numel : 1), sizeof *v);
        for (int64_t k = 0; k < t->numel; k++) {
            uint64_t r = mix(h + (uint64_t)k);
            double u = (double)(r >> 11) / 9007199254740992.0;
            if (t->dtype == DPOC_DT_I32) v[k] = (double)(r % (uint64_t)vocab);
            else if (strstr(t->name, "mask")) /* the first half of a row out (a prompt), and single positions */
                v[k] = k % t->shape[t->ndim - 1] >= t->shape[t->ndim - 1] / 2 && k % 7 != 3;
            else if (strstr(t->name, "ref_logps")) v[k] = -20.0 - 10.0 * u;
            else v[k] = (u - 0.5) * 0.5;
        }
        tcg_set(s, t->name, t->role, v);
        free(v);
    }
}

static int build(const ModelCfg *cfg, int fused, int dense_head, int64_t vocab_chunk, int head_keep, IrGraph g[2]) {
    char err[1024];
    for (int i = 0; i < 2; i++) {
        BuildOptions bo = {.dtype = DT_F32, .dense_head = dense_head, .vocab_chunk = vocab_chunk, .head_keep = head_keep};
        PassCtx pc;
        memset(&pc, 0, sizeof pc);
        pc.log = stderr;
        const char *passes = i == 0 ? (fused ? "simplify,autodiff,simplify,fuse" : "simplify,autodiff,simplify")
                                    : (fused ? "simplify,fuse" : "simplify");
        ir_init(&g[i]);
        err[0] = 0;
        if (model_build_graph(cfg, i == 0 ? BUILD_TRAIN : BUILD_LOGPS, &bo, &g[i], err, sizeof err) ||
            pass_pipeline_run(&g[i], &pc, passes)) {
            CHECK_MSG(0, "graph %d: %s%s", i, err, pc.err);
            ir_free(&g[i]);
            if (i) ir_free(&g[0]);
            return -1;
        }
    }
    return 0;
}

static int64_t arena_of(IrGraph g[2], int *nk) {
    IrGraph *gp[2] = {&g[0], &g[1]};
    TensorTable tt;
    SchedPlan p;
    char err[512];
    int64_t peak = -1;
    *nk = 0;
    if (tensor_table_build(&tt, gp, 2, err, sizeof err)) return -1;
    for (int i = 0; i < 2; i++) {
        if (sched_plan(gp[i], &tt, &p, err, sizeof err)) {
            CHECK_MSG(0, "schedule: %s", err);
            break;
        }
        if (p.arena_bytes > peak) peak = p.arena_bytes;
        *nk += p.nkernels;
        sched_plan_free(&p);
    }
    tensor_table_free(&tt);
    return peak;
}

static int run_all(DpocStep *s, const DpocServices *svc) {
    char err[256];
    int rc = dpoc_step_logps(s, svc, err, sizeof err);
    if (!rc) rc = dpoc_step_train(s, svc, err, sizeof err);
    CHECK_MSG(rc == 0, "run: %s", err);
    return rc;
}

/* matmul calls of train_step */
static int matmul_calls(const DpocStep *s) {
    int n = 0;
    for (int k = 0; k < s->nkernels; k++) n += !strcmp(s->kernels[k].entry, "train_step") && strstr(s->kernels[k].op, "matmul");
    return n;
}

/* matmul calls of train_step whose output is in the GRADS region */
static int matmuls_into_grads(const DpocStep *s) {
    int n = 0;
    for (int k = 0; k < s->nkernels; k++)
        n += !strcmp(s->kernels[k].entry, "train_step") && strstr(s->kernels[k].op, "matmul") &&
             s->kernels[k].arg_region[0] == DPOC_R_GRADS;
    return n;
}

/* scatter_add_into calls of train_step that add into their output where
 * it lies (an argument besides the output at the output's place: the base
 * hosted there), and all scatter_add_into calls in *all */
static int scatters_in_place(const DpocStep *s, int *all) {
    int n = 0;
    *all = 0;
    for (int k = 0; k < s->nkernels; k++) {
        const DpocKernelInfo *ki = &s->kernels[k];
        if (strcmp(ki->entry, "train_step") || strcmp(ki->op, "scatter_add_into")) continue;
        ++*all;
        int here = 0;
        for (int a = 1; a < ki->nargs; a++)
            here |= ki->arg_region[a] == ki->arg_region[0] && ki->arg_offset[a] == ki->arg_offset[0];
        n += here;
    }
    return n;
}

/* every f32 output and gradient of a against b's of the same name: equal
 * bytes (bitwise) or equal as floats (+0 == -0); the elements that differ,
 * *nval = those compared (> 0 is checked) */
static int64_t compare_outputs(const char *path, const DpocStep *a, const DpocStep *b, int bitwise, const char *what,
                               int64_t *nval) {
    int64_t nbad = 0;
    *nval = 0;
    for (int t = 0; t < a->ntensors; t++) {
        const DpocTensorInfo *ta = &a->tensors[t];
        if (ta->role != DPOC_ROLE_OUTPUT && ta->role != DPOC_ROLE_GRAD) continue;
        int u = -1;
        for (int j = 0; j < b->ntensors; j++)
            if (!strcmp(b->tensors[j].name, ta->name) && b->tensors[j].role == ta->role) u = j;
        int same = u >= 0 && b->tensors[u].nbytes == ta->nbytes && ta->dtype == DPOC_DT_F32;
        CHECK_MSG(same, "%s: %s missing or shaped differently between %s", path, ta->name, what);
        if (!same) continue;
        const float *x = (const float *)(a->regions[ta->region] + ta->offset);
        const float *y = (const float *)(b->regions[b->tensors[u].region] + b->tensors[u].offset);
        int64_t n = ta->nbytes / 4, bad = 0;
        double worst = 0;
        for (int64_t e = 0; e < n; e++) {
            bad += bitwise ? memcmp(&x[e], &y[e], 4) != 0 : !(x[e] == y[e]);
            if (fabs((double)x[e] - y[e]) > worst) worst = fabs((double)x[e] - y[e]);
        }
        CHECK_MSG(bad == 0, "%s: %s: %lld of %lld elements differ between %s (largest difference %.3g)", path, ta->name,
                  (long long)bad, (long long)n, what, worst);
        nbad += bad;
        *nval += n;
    }
    CHECK_MSG(*nval > 0, "%s: nothing compared between %s", path, what);
    return nbad;
}

/* the fused train_step's matmul calls into GRADS, or -1 */
static int check_model(const char *path, int64_t vocab_chunk) {
    ModelCfg cfg;
    char err[1024];
    if (model_cfg_load(path, &cfg, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return -1;
    }
    IrGraph g[3][2];
    DpocStep s[3];
    int ok[3] = {0, 0, 0}, opened[3] = {0, 0, 0}, nk[3] = {0, 0, 0};
    int64_t arena[3] = {0, 0, 0};
    int chunked = vocab_chunk > 0;
    /* unfused, fused, and fused with a dense head (whole) or with the chunks' logits kept (chunked) */
    static const char *const what[2][3] = {{"unfused", "fused", "dense head"}, {"unfused", "fused", "logits kept"}};
    for (int f = 0; f < 3; f++) {
        if (build(&cfg, f > 0, f == 2 && !chunked, vocab_chunk, f == 2 && chunked, g[f])) continue;
        arena[f] = arena_of(g[f], &nk[f]);
        TcgGraphs gs = {{&g[f][0], &g[f][1]}, 0, NULL, NULL, 0};
        ok[f] = opened[f] = tcg_compile_ex(&gs, &s[f], err, sizeof err) == 0;
        CHECK_MSG(ok[f], "%s (%s): compile: %s", path, what[chunked][f], err);
        ir_free(&g[f][0]);
        ir_free(&g[f][1]);
        if (!ok[f]) continue;
        fill(&s[f], cfg.vocab_size);
        ok[f] = run_all(&s[f], NULL) == 0;
    }
    if (ok[0] && ok[1]) {
        const int regs[2] = {DPOC_R_OUTPUTS, DPOC_R_GRADS};
        for (int r = 0; r < 2; r++) {
            int R = regs[r];
            CHECK_MSG(s[0].region_size[R] == s[1].region_size[R], "%s: region %d sizes differ", path, R);
            if (s[0].region_size[R] == s[1].region_size[R])
                CHECK_MSG(memcmp(s[0].regions[R], s[1].regions[R], (size_t)s[0].region_size[R]) == 0,
                          "%s: region %d differs between the fused and the unfused step", path, R);
        }
        /* the fused step split unevenly over "threads": every output and
         * gradient tensor (not the padding between them) rewritten alike */
        int64_t osz = s[1].region_size[DPOC_R_OUTPUTS], gsz = s[1].region_size[DPOC_R_GRADS];
        uint8_t *o0 = malloc((size_t)osz + 1), *g0 = malloc((size_t)gsz + 1);
        memcpy(o0, s[1].regions[DPOC_R_OUTPUTS], (size_t)osz);
        memcpy(g0, s[1].regions[DPOC_R_GRADS], (size_t)gsz);
        for (int seed = 0; seed < 3; seed++) {
            tcg_chunk_seed = seed;
            memset(s[1].regions[DPOC_R_OUTPUTS], 0xA5, (size_t)osz);
            memset(s[1].regions[DPOC_R_GRADS], 0xA5, (size_t)gsz);
            if (run_all(&s[1], &tcg_chunked)) break;
            for (int t = 0; t < s[1].ntensors; t++) {
                const DpocTensorInfo *ti = &s[1].tensors[t];
                const uint8_t *ref = ti->region == DPOC_R_OUTPUTS ? o0 : ti->region == DPOC_R_GRADS ? g0 : NULL;
                if (!ref || (ti->role != DPOC_ROLE_OUTPUT && ti->role != DPOC_ROLE_GRAD)) continue;
                CHECK_MSG(memcmp(ref + ti->offset, s[1].regions[ti->region] + ti->offset, (size_t)ti->nbytes) == 0,
                          "%s: chunked fused run (seed %d): %s differs from the serial run", path, seed, ti->name);
            }
        }
        free(o0);
        free(g0);
        CHECK_MSG(nk[1] < nk[0], "%s: fusion left %d kernels of %d", path, nk[1], nk[0]);
        CHECK_MSG(arena[1] <= arena[0], "%s: fusion grew the arena from %lld to %lld bytes", path,
                  (long long)arena[0], (long long)arena[1]);
        /* a tied head: the embedding's gradient is the head's plus the
         * gathered rows', added by one scatter_add_into (both builds: simplify
         * makes it); fused and chunked, its base (the chunks' gradients) is
         * hosted in the gradient slot, so it adds the rows in place */
        int tied = cfg.lm_head.tied;
        int all0, all1, here = scatters_in_place(&s[1], &all1);
        scatters_in_place(&s[0], &all0);
        CHECK_MSG(all0 == tied && all1 == tied, "%s: %d / %d scatter_add_into calls (unfused / fused), expected %d", path,
                  all0, all1, tied);
        CHECK_MSG(!chunked || here == tied, "%s: the tied gradient's scatter_add_into %s in place", path,
                  here ? "is" : "is not");
        printf("%-40s head chunk %4lld: kernels %4d -> %4d, arena %9lld -> %9lld bytes, step.so kernels %d -> %d, "
               "%d matmuls into gradients: OK\n",
               path, (long long)vocab_chunk, nk[0], nk[1], (long long)arena[0], (long long)arena[1], s[0].nkernels,
               s[1].nkernels, matmuls_into_grads(&s[1]));
    }
    if (ok[1] && ok[2] && chunked) {
        int64_t nval = 0, nbad = compare_outputs(path, &s[1], &s[2], 1, "the recomputed and the kept head logits", &nval);
        int64_t nchunks = (cfg.vocab_size + vocab_chunk - 1) / vocab_chunk;
        int m1 = matmul_calls(&s[1]), m2 = matmul_calls(&s[2]);
        CHECK_MSG(m1 - m2 == nchunks, "%s: %d matmul calls with the head's logits recomputed, %d kept: expected %lld fewer",
                  path, m1, m2, (long long)nchunks);
        printf("%-40s head chunk %4lld, logits kept: %lld values, %lld differ, matmul calls %d -> %d, arena %lld -> "
               "%lld bytes\n", path, (long long)vocab_chunk, (long long)nval, (long long)nbad, m1, m2,
               (long long)arena[1], (long long)arena[2]);
    }
    if (ok[1] && ok[2] && !chunked) {
        int64_t nval = 0, nbad = compare_outputs(path, &s[1], &s[2], 0, "the masked and the dense head", &nval);
        printf("%-40s masked head = dense head: %lld values, %lld differ, step.so kernels %d (dense %d)\n", path,
               (long long)nval, (long long)nbad, s[1].nkernels, s[2].nkernels);
    }
    int into = ok[1] ? matmuls_into_grads(&s[1]) : -1;
    for (int f = 0; f < 3; f++)
        if (opened[f]) dpoc_step_close(&s[f]);
    model_cfg_free(&cfg);
    return into;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.yaml...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        ModelCfg cfg;
        char err[1024];
        if (model_cfg_load(argv[i], &cfg, err, sizeof err)) {
            CHECK_MSG(0, "%s", err);
            continue;
        }
        int64_t chunks = (cfg.vocab_size + 63) / 64;
        model_cfg_free(&cfg);
        int whole = check_model(argv[i], 0), chunked = check_model(argv[i], 64);
        CHECK_MSG(whole >= 0 && chunked >= whole + chunks - 1,
                  "%s: %d matmul calls write the gradients with the head in %lld chunks, %d with it whole: the chunks' "
                  "gradients are not computed in place",
                  argv[i], chunked, (long long)chunks, whole);
    }
    return check_done("fuse_exact");
}
