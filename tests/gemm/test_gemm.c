/* test_gemm.c — the packed f32 matmul kernel (codegen/cg_gemm*.c).
 *
 * Each group is one IR graph holding many independent matmuls (inputs a<i>,
 * b<i>, output c<i>), compiled once through the real path (tensor table,
 * schedule, codegen_build_so) and run with the runtime loader. The cases
 * cover every transpose variant (A.B, A.B^T, A^T.B, A^T.B^T), batched
 * operands, sizes 1, 5, 17, 63, 100, 257 and the edges just below and above
 * the micro-tile (6 x 16 on AVX2), the K block (256), the M block and the
 * N block (so tiles, K blocks and partial micro-tiles all occur), K a
 * multiple of 1024 or above 2048 (A's rows copied to a padded buffer, a
 * last K block not a multiple of the vector width), operands read in place
 * (A^T with few N panels, B with few M micro-panels: small M and N, whole
 * and partial panels, batched, several K blocks), partial micro-panels of
 * 1, 2, 4 or 8 rows (a smaller micro-kernel on C itself: M = 32 and 64 on
 * 14-row and 6-row tiles) and of other counts (the stack tile), operands
 * that are not stored (constants, evaluated inline while packing), and N
 * over two of the wider N blocks of A^T.B with K in a group of two K blocks
 * and a group of one (2 x 60 x 1100 x 700; several M blocks on 6-row tiles).
 *
 * Checks:
 *  - every element against a double-precision loop over the same f32
 *    inputs: |c - ref| <= K * 2^-23 * sum_k |a_k b_k| (a chain of K
 *    correctly rounded fmas, or mul+add pairs, errs by at most
 *    about K * 2^-24 * sum |a b|; the bound doubles that);
 *  - bitwise equality of the outputs between the serial run, uneven
 *    out-of-order chunkings (tcg_chunked with several seeds) and the
 *    runtime's 2-thread pool;
 *  - the same on a build for plain x86-64 (SSE: 4 lanes, no FMA, 6 x 8
 *    tiles), which runs on any host;
 *  - the tile shape follows the target: an AVX-512 build (compiled, not
 *    run) contains the 14 x 32 micro-kernel, the host AVX2 build the 6 x 16
 *    one (when the host has AVX2 and FMA);
 *  - stored operands go through one shared driver per variant (in-place
 *    operands are variants of their own), and every loop nest has the full
 *    micro-kernel and those of 1, 2, 4 rows (the partial last
 *    micro-panels, whose M mod mr the cases cover), each called on C and on
 *    the stack tile;
 *  - a fused matmul + add (the add as the kernel's epilogue) with K over
 *    two groups of K blocks and several M blocks: the epilogue runs once
 *    per tile, after the last group (host and plain x86-64 builds).
 */
#include <float.h>

#include "runtime/threadpool.h"
#include "tests/codegen/tcg.h"

typedef struct Mm {
    int64_t batch, M, N, K;
    int ta, tb;
    int aconst, bconst; /* operand is a constant (not stored) */
} Mm;

static Mm cases[] = { /* ta, tb: set per variant by main */
    {0, 1, 1, 1, 0, 0, 0, 0},       {0, 5, 17, 63, 0, 0, 0, 0},     {0, 17, 5, 100, 0, 0, 0, 0},
    {0, 63, 100, 257, 0, 0, 0, 0},  {0, 100, 63, 17, 0, 0, 0, 0},   {0, 257, 33, 5, 0, 0, 0, 0},
    {0, 6, 16, 256, 0, 0, 0, 0},    {0, 7, 17, 255, 0, 0, 0, 0},    {0, 5, 15, 1, 0, 0, 0, 0},
    {0, 97, 385, 513, 0, 0, 0, 0},  {0, 200, 400, 300, 0, 0, 0, 0}, {0, 1, 257, 1, 0, 0, 0, 0},
    {0, 257, 1, 64, 0, 0, 0, 0},    {3, 5, 17, 63, 0, 0, 0, 0},     {2, 63, 33, 17, 0, 0, 0, 0},
    {4, 100, 20, 257, 0, 0, 0, 0},  {0, 12, 32, 40, 0, 0, 0, 1},    {0, 13, 31, 40, 0, 0, 1, 0},
    {0, 13, 40, 1024, 0, 0, 0, 0},  {2, 7, 17, 2048, 0, 0, 0, 0},   {0, 9, 20, 2101, 0, 0, 0, 0},
    {3, 20, 70, 300, 0, 0, 0, 0},   {0, 32, 64, 600, 0, 0, 0, 0},   {2, 64, 96, 520, 0, 0, 0, 0},
    {2, 60, 1100, 700, 0, 0, 0, 0},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static double *vals_a[NCASES], *vals_b[NCASES];

static void shapes(const Mm *m, int *nd, int64_t *sa, int64_t *sb, int64_t *sc) {
    int o = m->batch ? 1 : 0;
    *nd = 2 + o;
    sa[0] = sb[0] = sc[0] = m->batch;
    sa[o] = m->ta ? m->K : m->M;
    sa[o + 1] = m->ta ? m->M : m->K;
    sb[o] = m->tb ? m->N : m->K;
    sb[o + 1] = m->tb ? m->K : m->N;
    sc[o] = m->M;
    sc[o + 1] = m->N;
}

static int64_t nbatch(const Mm *m) { return m->batch ? m->batch : 1; }

/* the graph of one transpose variant: every case, set to it */
static void build(IrGraph *g, int ta, int tb) {
    ir_init(g);
    for (int i = 0; i < NCASES; i++) {
        Mm *m = &cases[i];
        m->ta = ta;
        m->tb = tb;
        int nd;
        int64_t sa[3], sb[3], sc[3];
        char name[32];
        shapes(m, &nd, sa, sb, sc);
        snprintf(name, sizeof name, "a%d", i);
        int32_t a = m->aconst ? ir_const(g, 0.375, DT_F32, nd, sa) : ir_input(g, name, DT_F32, nd, sa);
        snprintf(name, sizeof name, "b%d", i);
        int32_t b = m->bconst ? ir_const(g, -0.625, DT_F32, nd, sb) : ir_input(g, name, DT_F32, nd, sb);
        snprintf(name, sizeof name, "c%d", i);
        if (ir_add_output(g, name, ir_matmul(g, a, b, ta, tb), IR_OUT_VALUE)) {
            fprintf(stderr, "building case %d: %s\n", i, g->err);
            exit(2);
        }
    }
}

/* compiles g for (cpu, features) (NULL: host); opens it unless open == 0 */
static int compile(IrGraph *g, const char *cpu, const char *features, const char *llpath, DpocStep *step, int open) {
    char err[1024], path[400];
    IrGraph *graphs[1] = {g};
    TensorTable tt;
    SchedPlan plan;
    if (tensor_table_build(&tt, graphs, 1, err, sizeof err) || sched_plan(g, &tt, &plan, err, sizeof err)) {
        fprintf(stderr, "schedule: %s\n", err);
        check_failures++;
        return -1;
    }
    snprintf(path, sizeof path, "%s/gemm%d.so", tcg_tmpdir(), tcg_seq++);
    CodegenEntry e = {"train_step", g, &plan};
    CodegenOptions o = {.target_cpu = cpu, .target_features = features, .emit_llvm_path = llpath};
    int rc = codegen_build_so(&e, 1, &tt, &o, path, err, sizeof err);
    if (rc == 0 && open) rc = dpoc_step_open(step, path, err, sizeof err);
    if (rc) {
        fprintf(stderr, "compile: %s\n", err);
        check_failures++;
    }
    unlink(path);
    sched_plan_free(&plan);
    tensor_table_free(&tt);
    return rc;
}

static void serial_for(void *ctx, DpocKernelFn fn, uint8_t *const *args, int64_t n) {
    (void)ctx;
    fn(args, 0, n);
}
static const DpocServices serial = {.parallel_for = serial_for, .dp_size = 1, .tp_size = 1};

static double operand(const Mm *m, int which, const double *v, int64_t bi, int64_t i, int64_t k) {
    if (which == 0) {
        if (m->aconst) return 0.375;
        return v[bi * m->M * m->K + (m->ta ? k * m->M + i : i * m->K + k)];
    }
    if (m->bconst) return -0.625;
    return v[bi * m->K * m->N + (m->tb ? i * m->K + k : k * m->N + i)];
}

/* compares case i's output with the double reference; label names the build */
static void check_case(DpocStep *s, int i, const char *label) {
    const Mm *m = &cases[i];
    int64_t nc = nbatch(m) * m->M * m->N;
    double *c = malloc((size_t)nc * sizeof *c);
    char name[32];
    snprintf(name, sizeof name, "c%d", i);
    if (!c || tcg_get(s, name, DPOC_ROLE_OUTPUT, c, nc)) {
        free(c);
        return;
    }
    int bad = 0;
    double worst = 0;
    /* one batch's op(A) rows and op(B) columns, contiguous along k */
    double *ar = malloc((size_t)(m->M * m->K) * sizeof *ar), *bc = malloc((size_t)(m->N * m->K) * sizeof *bc);
    for (int64_t bi = 0; ar && bc && bi < nbatch(m); bi++) {
        for (int64_t r = 0; r < m->M; r++)
            for (int64_t k = 0; k < m->K; k++) ar[r * m->K + k] = operand(m, 0, vals_a[i], bi, r, k);
        for (int64_t j = 0; j < m->N; j++)
            for (int64_t k = 0; k < m->K; k++) bc[j * m->K + k] = operand(m, 1, vals_b[i], bi, j, k);
        for (int64_t r = 0; r < m->M; r++)
            for (int64_t j = 0; j < m->N; j++) {
                double sum = 0, sabs = 0;
                const double *x = ar + r * m->K, *y = bc + j * m->K;
                for (int64_t k = 0; k < m->K; k++) {
                    double p = x[k] * y[k];
                    sum += p;
                    sabs += fabs(p);
                }
                double got = c[(bi * m->M + r) * m->N + j];
                double bound = (double)m->K * ldexp(1.0, -23) * sabs;
                double err = fabs(got - sum);
                if (sabs > 0 && err / sabs > worst) worst = err / sabs;
                if (!(err <= bound)) {
                    if (bad++ < 3)
                        fprintf(stderr, "%s case %d (b%lld M%lld N%lld K%lld ta%d tb%d) [%lld,%lld,%lld]: %.9g vs %.9g\n",
                                label, i, (long long)m->batch, (long long)m->M, (long long)m->N, (long long)m->K, m->ta,
                                m->tb, (long long)bi, (long long)r, (long long)j, got, sum);
                }
            }
    }
    CHECK_MSG(ar && bc, "%s case %d: out of memory for the reference", label, i);
    CHECK_MSG(bad == 0, "%s case %d: %d elements outside the bound", label, i, bad);
    free(ar);
    free(bc);
    free(c);
}

/* copies the raw outputs of the variant's cases (for bitwise comparison) */
static float *raw_outputs(DpocStep *s, int ta, int tb, size_t *n) {
    size_t total = 0;
    for (int i = 0; i < NCASES; i++)
        if (cases[i].ta == ta && cases[i].tb == tb) total += (size_t)(nbatch(&cases[i]) * cases[i].M * cases[i].N);
    float *out = malloc(total * sizeof *out);
    size_t at = 0;
    for (int i = 0; out && i < NCASES; i++) {
        if (cases[i].ta != ta || cases[i].tb != tb) continue;
        char name[32];
        snprintf(name, sizeof name, "c%d", i);
        DpocTensorInfo ti;
        float *p = dpoc_step_find(s, name, DPOC_ROLE_OUTPUT, &ti);
        if (!p) continue;
        memcpy(out + at, p, (size_t)ti.numel * sizeof *p);
        at += (size_t)ti.numel;
    }
    *n = total;
    return out;
}

static void clear_outputs(DpocStep *s, int ta, int tb) {
    for (int i = 0; i < NCASES; i++) {
        if (cases[i].ta != ta || cases[i].tb != tb) continue;
        char name[32];
        snprintf(name, sizeof name, "c%d", i);
        DpocTensorInfo ti;
        float *p = dpoc_step_find(s, name, DPOC_ROLE_OUTPUT, &ti);
        if (p) memset(p, 0xff, (size_t)ti.numel * sizeof *p); /* NaN: nothing left from an earlier run */
    }
}

static void run_variant(int ta, int tb, const char *cpu, const char *features, const char *label) {
    IrGraph g;
    build(&g, ta, tb);
    DpocStep s;
    if (compile(&g, cpu, features, NULL, &s, 1)) {
        ir_free(&g);
        return;
    }
    for (int i = 0; i < NCASES; i++) {
        if (cases[i].ta != ta || cases[i].tb != tb) continue;
        char name[32];
        int nd;
        int64_t sa[3], sb[3], sc[3];
        shapes(&cases[i], &nd, sa, sb, sc);
        snprintf(name, sizeof name, "a%d", i);
        if (!cases[i].aconst) tcg_set(&s, name, DPOC_ROLE_INPUT, vals_a[i]);
        snprintf(name, sizeof name, "b%d", i);
        if (!cases[i].bconst) tcg_set(&s, name, DPOC_ROLE_INPUT, vals_b[i]);
    }
    clear_outputs(&s, ta, tb);
    char full[96];
    snprintf(full, sizeof full, "%s ta%d tb%d", label, ta, tb);
    if (tcg_run(&s, &serial) == 0) {
        for (int i = 0; i < NCASES; i++)
            if (cases[i].ta == ta && cases[i].tb == tb) check_case(&s, i, full);
        size_t n;
        float *ref = raw_outputs(&s, ta, tb, &n);
        char err[256];
        ThreadPool *pool = tpool_create(2, err, sizeof err);
        CHECK_MSG(pool != NULL, "%s", err);
        for (int split = 0; ref && split < 4; split++) {
            clear_outputs(&s, ta, tb);
            DpocServices svc;
            if (split < 3) {
                tcg_chunk_seed = split * 3;
                svc = tcg_chunked;
            } else {
                if (!pool) break;
                svc = tpool_services(pool);
            }
            if (tcg_run(&s, &svc)) break;
            size_t n2;
            float *got = raw_outputs(&s, ta, tb, &n2);
            CHECK_MSG(got && n2 == n && memcmp(got, ref, n * sizeof *ref) == 0, "%s: split %d differs from the serial run",
                      full, split);
            free(got);
        }
        tpool_destroy(pool);
        free(ref);
    }
    dpoc_step_close(&s);
    ir_free(&g);
}

/* lines of the file that contain needle */
static int file_count(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, f)) found += strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static int file_contains(const char *path, const char *needle) { return file_count(path, needle) > 0; }

/* Every matmul whose operands are both stored calls the module's one shared
 * driver of its variant (runtime M, N, K; rows of A copied when K is a
 * multiple of 1024 or above 2048); a matmul with an operand computed inline
 * (the constant cases) keeps the loops in its own kernel */
static void check_shared(void) {
    IrGraph g;
    build(&g, 0, 1);
    char ll[400];
    snprintf(ll, sizeof ll, "%s/shared%d.ll", tcg_tmpdir(), tcg_seq);
    int plain = 0, rowcopy = 0;
    for (int i = 0; i < NCASES; i++) {
        if (cases[i].aconst || cases[i].bconst) continue;
        if (cases[i].K % 1024 == 0 || cases[i].K > 2048) rowcopy++;
        else plain++;
    }
    if (compile(&g, "x86-64", "+sse2", ll, NULL, 0) == 0) {
        CHECK_MSG(file_count(ll, "define internal void @dpoc_gemm_f32_nt(") == 1, "one definition of the nt driver");
        CHECK_MSG(file_count(ll, "define internal void @dpoc_gemm_f32_nt_rowcopy(") == 1, "one nt_rowcopy driver");
        int calls = file_count(ll, "call void @dpoc_gemm_f32_nt(");
        int rcalls = file_count(ll, "call void @dpoc_gemm_f32_nt_rowcopy(");
        CHECK_MSG(calls == plain, "%d calls of the nt driver, expected %d", calls, plain);
        CHECK_MSG(rcalls == rowcopy, "%d calls of the nt_rowcopy driver, expected %d", rcalls, rowcopy);
        /* the two constant-operand kernels pack through cg_eval: their own
         * loops, besides the two drivers'. Each of the four loop nests calls
         * each of the 6-, 1-, 2- and 4-row micro-kernels twice: on C (all
         * 8 columns, rows 6 or exactly 1, 2 or 4) and on the stack tile
         * (fewer columns, or 3 or 5 rows), and each is defined once */
        int ukr = file_count(ll, "call void @dpoc_gemm_ukr_f32_");
        CHECK_MSG(ukr == 4 * 2 * 4, "%d micro-kernel call sites, expected 32", ukr);
        CHECK_MSG(file_count(ll, "call void @dpoc_gemm_ukr_f32_6x8(") == 8, "8 calls of the 6-row micro-kernel");
        static const int rows[4] = {1, 2, 4, 6};
        for (int i = 0; i < 4; i++) {
            int r = rows[i];
            char name[80];
            snprintf(name, sizeof name, "define internal void @dpoc_gemm_ukr_f32_%dx8(", r);
            CHECK_MSG(file_count(ll, name) == 1, "one definition of the %d-row micro-kernel", r);
        }
    }
    unlink(ll);
    ir_free(&g);
}

/* A^T.B on 6 x 8 tiles: A^T is read in place when N has at most 8 panels
 * of 8 (N <= 64), B when M has at most 12 micro-panels of 6 (M <= 72); the
 * cases make all four drivers (M = 5 N = 17: both; M = 257 N = 1: A^T;
 * M = 1 N = 257: B; M = 200 N = 400: neither) */
static void check_in_place(void) {
    IrGraph g;
    build(&g, 1, 0);
    char ll[400];
    snprintf(ll, sizeof ll, "%s/inplace%d.ll", tcg_tmpdir(), tcg_seq);
    if (compile(&g, "x86-64", "+sse2", ll, NULL, 0) == 0) {
        static const char *const drivers[4] = {"tn_ain_bin", "tn_ain", "tn_bin", "tn"};
        for (int i = 0; i < 4; i++) {
            char name[80];
            snprintf(name, sizeof name, "define internal void @dpoc_gemm_f32_%s(", drivers[i]);
            CHECK_MSG(file_count(ll, name) == 1, "one definition of the %s driver", drivers[i]);
        }
    }
    unlink(ll);
    ir_free(&g);
}

/* the micro-kernel of a build for (cpu, features) is named after its tile */
static void check_tile(const char *cpu, const char *features, const char *ukr) {
    IrGraph g;
    build(&g, 0, 1);
    char ll[400];
    snprintf(ll, sizeof ll, "%s/tile%d.ll", tcg_tmpdir(), tcg_seq);
    if (compile(&g, cpu, features, ll, NULL, 0) == 0)
        CHECK_MSG(file_contains(ll, ukr), "the %s build has no %s", cpu ? cpu : "host", ukr);
    unlink(ll);
    ir_free(&g);
}

/* A matmul whose kernel ends in an epilogue (fuse: out = matmul + r): the
 * epilogue runs once, after a tile's last K block. K = 1100 is five K
 * blocks, which A read in place runs in groups (several K blocks per M
 * block, codegen/cg_gemm.c), and M = 130 is several M blocks: an
 * epilogue run after the first group instead of the last would add r
 * twice. Checked against the double loop (the matmul's bound plus one
 * rounding of the add) on the serial run and bitwise on the 2-thread pool. */
static void check_epilogue(const char *cpu, const char *features, const char *label) {
    enum { EM = 130, EN = 45, EK = 1100 };
    IrGraph g;
    ir_init(&g);
    int32_t x = ir_input(&g, "x", DT_F32, 2, (int64_t[]){EM, EK});
    int32_t w = ir_input(&g, "w", DT_F32, 2, (int64_t[]){EK, EN});
    int32_t r = ir_input(&g, "r", DT_F32, 2, (int64_t[]){EM, EN});
    PassCtx pc;
    memset(&pc, 0, sizeof pc);
    if (ir_add_output(&g, "e", ir_add(&g, ir_matmul(&g, x, w, 0, 0), r), IR_OUT_VALUE) ||
        pass_pipeline_run(&g, &pc, "fuse")) {
        CHECK_MSG(0, "%s epilogue graph: %s%s", label, g.err, pc.err);
        ir_free(&g);
        return;
    }
    CHECK_MSG(g.nkernels == 1 && g.kernels[0].n == 1, "%s: %d kernels, expected the add with the matmul inline",
              label, g.nkernels);
    double *vx = malloc(sizeof(double) * EM * EK), *vw = malloc(sizeof(double) * EK * EN);
    double *vr = malloc(sizeof(double) * EM * EN), *got = malloc(sizeof(double) * EM * EN);
    TcgRng rng = {0x2545f4914f6cdd1dull};
    for (int64_t i = 0; i < EM * EK; i++) vx[i] = (double)(float)tcg_uniform(&rng, -1, 1);
    for (int64_t i = 0; i < EK * EN; i++) vw[i] = (double)(float)tcg_uniform(&rng, -1, 1);
    for (int64_t i = 0; i < EM * EN; i++) vr[i] = (double)(float)tcg_uniform(&rng, -4, 4);
    DpocStep s;
    if (compile(&g, cpu, features, NULL, &s, 1) == 0) {
        tcg_set(&s, "x", DPOC_ROLE_INPUT, vx);
        tcg_set(&s, "w", DPOC_ROLE_INPUT, vw);
        tcg_set(&s, "r", DPOC_ROLE_INPUT, vr);
        int bad = 0;
        if (tcg_run(&s, &serial) == 0 && tcg_get(&s, "e", DPOC_ROLE_OUTPUT, got, EM * EN) == 0)
            for (int64_t i = 0; i < EM; i++)
                for (int64_t j = 0; j < EN; j++) {
                    double sum = 0, sabs = 0;
                    for (int64_t k = 0; k < EK; k++) {
                        sum += vx[i * EK + k] * vw[k * EN + j];
                        sabs += fabs(vx[i * EK + k] * vw[k * EN + j]);
                    }
                    double ref = sum + vr[i * EN + j];
                    double bound = (double)EK * ldexp(1.0, -23) * sabs + ldexp(1.0, -23) * fabs(ref);
                    if (!(fabs(got[i * EN + j] - ref) <= bound) && bad++ < 3)
                        fprintf(stderr, "%s epilogue [%lld,%lld]: %.9g vs %.9g\n", label, (long long)i, (long long)j,
                                got[i * EN + j], ref);
                }
        CHECK_MSG(bad == 0, "%s: matmul + epilogue, %d elements outside the bound", label, bad);
        char err[256];
        ThreadPool *pool = tpool_create(2, err, sizeof err);
        CHECK_MSG(pool != NULL, "%s", err);
        double *two = malloc(sizeof(double) * EM * EN);
        if (pool) {
            DpocServices svc = tpool_services(pool);
            CHECK_MSG(tcg_run(&s, &svc) == 0 && tcg_get(&s, "e", DPOC_ROLE_OUTPUT, two, EM * EN) == 0 &&
                          memcmp(two, got, sizeof(double) * EM * EN) == 0,
                      "%s: matmul + epilogue on 2 threads differs from the serial run", label);
            tpool_destroy(pool);
        }
        free(two);
        dpoc_step_close(&s);
    }
    free(vx);
    free(vw);
    free(vr);
    free(got);
    ir_free(&g);
}

int main(void) {
    TcgRng rng = {0x9e3779b97f4a7c15ull};
    for (int i = 0; i < NCASES; i++) {
        int64_t na = nbatch(&cases[i]) * cases[i].M * cases[i].K, nb = nbatch(&cases[i]) * cases[i].K * cases[i].N;
        vals_a[i] = malloc((size_t)na * sizeof(double));
        vals_b[i] = malloc((size_t)nb * sizeof(double));
        for (int64_t j = 0; j < na; j++) vals_a[i][j] = (double)(float)tcg_uniform(&rng, -1, 1);
        for (int64_t j = 0; j < nb; j++) vals_b[i][j] = (double)(float)tcg_uniform(&rng, -1, 1);
    }
    /* every case in all four transpose variants */
    for (int v = 0; v < 4; v++) {
        int ta = v >> 1, tb = v & 1;
        run_variant(ta, tb, NULL, NULL, "host");
        run_variant(ta, tb, "x86-64", "+sse2,+sse4.1", "x86-64");
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !__builtin_cpu_supports("avx512f"))
        check_tile(NULL, NULL, "dpoc_gemm_ukr_f32_6x16");
    check_tile("skylake-avx512", "+avx512f,+avx2,+avx,+fma", "dpoc_gemm_ukr_f32_14x32");
    check_tile("x86-64", "+sse2", "dpoc_gemm_ukr_f32_6x8");
    check_shared();
    check_in_place();
    check_epilogue(NULL, NULL, "host");
    check_epilogue("x86-64", "+sse2,+sse4.1", "x86-64");
    for (int i = 0; i < NCASES; i++) {
        free(vals_a[i]);
        free(vals_b[i]);
    }
    return check_done("test_gemm");
}
