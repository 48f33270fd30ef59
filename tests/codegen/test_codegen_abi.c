/* test_codegen_abi.c — the step.so contract: manifest, JSON, loader, errors.
 *
 * A two-entry step (train_step with gradients, logps forward-only, plus the
 * optimizer) is compiled with a configuration and --emit-llvm; the test
 * checks the manifest struct (magic, version, mesh, entry pointers, host CPU
 * name), every JSON section (regions, tensors with roles and decay, kernels
 * with flops, entries, config equal to what was given, IR text that parses
 * back to the same graph), that the .ll file was written, and runs both
 * entries against C references.
 *
 * Then the failure paths: a bad configuration, an unknown entry name and a
 * missing compiler each fail with a message, leave an existing output file
 * as it was and leave no temporary files; the loader refuses files without
 * a manifest, with the wrong magic and with another ABI version (naming both
 * versions); the CPU-feature check names features this CPU lacks. A build
 * for a named CPU ("x86-64", "+sse2") records them and still runs.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <spawn.h>
#include <sys/wait.h>

#include "tcg.h"

extern char **environ;

typedef struct Pair {
    IrGraph train, logps;
} Pair;

static const int64_t XS[2] = {2, 4}, WS[2] = {4, 3}, LS[1] = {2};

/* logps = sum_j (x W)[i, j]; loss = sum(logps^2) */
static void build(IrGraph *g, int train) {
    ir_init(g);
    int32_t x = ir_input(g, "x", DT_F32, 2, XS);
    int32_t w = ir_param(g, "W", DT_F32, 2, WS, IR_PARAM_TRAINABLE);
    int32_t b = ir_param(g, "b", DT_F32, 1, LS, IR_PARAM_TRAINABLE);
    int32_t y = ir_matmul(g, x, w, 0, 0);
    int32_t s = ir_add(g, ir_reshape(g, ir_reduce(g, OP_REDUCE_SUM, y, 1), 1, LS), b);
    CHECK(ir_add_output(g, "logps", s, IR_OUT_VALUE) == 0);
    if (train) {
        CHECK(ir_add_output(g, "loss", tcg_sum_all(g, ir_mul(g, s, s)), IR_OUT_LOSS) == 0);
        PassCtx c;
        memset(&c, 0, sizeof c);
        CHECK_MSG(pass_autodiff(g, &c) == PASS_CHANGED, "%s", c.err);
    }
    CHECK_MSG(!g->err[0], "%s", g->err);
}

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static const cJSON *find_named(const cJSON *arr, const char *name, const char *role) {
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *n = jget(it, "name"), *r = jget(it, "role");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0 &&
            (!role || (cJSON_IsString(r) && strcmp(r->valuestring, role) == 0)))
            return it;
    }
    return NULL;
}

static int file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fclose(f);
    int r = strstr(buf, needle) != NULL;
    free(buf);
    return r;
}

static void check_values(DpocStep *s, const char *what) {
    double x[8], w[12], b[2], lp[2], loss = 0, gw[12], gb[2];
    TcgRng rng = {5};
    for (int i = 0; i < 8; i++) x[i] = (float)tcg_uniform(&rng, -1, 1);
    for (int i = 0; i < 12; i++) w[i] = (float)tcg_uniform(&rng, -1, 1);
    b[0] = 0.25;
    b[1] = -0.5;
    tcg_set(s, "x", DPOC_ROLE_INPUT, x);
    tcg_set(s, "W", DPOC_ROLE_PARAM, w);
    tcg_set(s, "b", DPOC_ROLE_PARAM, b);
    /* reference in double; f32 rounding bounded by 16 u |terms| */
    double ref[2], mag[2];
    for (int i = 0; i < 2; i++) {
        ref[i] = b[i];
        mag[i] = fabs(b[i]);
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) {
                ref[i] += x[i * 4 + k] * w[k * 3 + j];
                mag[i] += fabs(x[i * 4 + k] * w[k * 3 + j]);
            }
    }
    char err[256];
    CHECK_MSG(dpoc_step_logps(s, NULL, err, sizeof err) == 0, "%s", err);
    tcg_get(s, "logps", DPOC_ROLE_OUTPUT, lp, 2);
    for (int i = 0; i < 2; i++)
        CHECK_MSG(fabs(lp[i] - ref[i]) <= 16 * 6e-8 * mag[i], "%s: logps[%d] = %.9g, reference %.9g", what, i, lp[i], ref[i]);
    memset(lp, 0, sizeof lp);
    CHECK_MSG(dpoc_step_train(s, NULL, err, sizeof err) == 0, "%s", err);
    tcg_get(s, "logps", DPOC_ROLE_OUTPUT, lp, 2);
    tcg_get(s, "loss", DPOC_ROLE_OUTPUT, &loss, 1);
    tcg_get(s, "W", DPOC_ROLE_GRAD, gw, 12);
    tcg_get(s, "b", DPOC_ROLE_GRAD, gb, 2);
    double rl = ref[0] * ref[0] + ref[1] * ref[1];
    CHECK_MSG(fabs(loss - rl) <= 1e-5 * (1 + rl), "%s: loss %.9g, reference %.9g", what, loss, rl);
    for (int i = 0; i < 2; i++) CHECK_MSG(fabs(gb[i] - 2 * ref[i]) <= 1e-5 * (1 + fabs(ref[i])), "%s: db[%d]", what, i);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 3; j++) {
            double want = 2 * (ref[0] * x[k] + ref[1] * x[4 + k]);
            CHECK_MSG(fabs(gw[k * 3 + j] - want) <= 1e-5 * (1 + fabs(want)), "%s: dW[%d,%d] %.9g vs %.9g", what, k, j,
                      gw[k * 3 + j], want);
        }
}

static void test_manifest(void) {
    Pair p;
    build(&p.train, 1);
    build(&p.logps, 0);
    char ll[400], err[1024];
    snprintf(ll, sizeof ll, "%s/step.ll", tcg_tmpdir());
    const char *config = "{\"model\": {\"layers\": 2, \"name\": \"tiny\"}, \"loss\": \"sigmoid\"}";
    TcgGraphs gs = {{&p.train, &p.logps}, 1, config, ll, 0};
    DpocStep s;
    if (tcg_compile_ex(&gs, &s, err, sizeof err)) {
        CHECK_MSG(0, "compile: %s", err);
        return;
    }
    const DpocManifest *m = s.manifest;
    CHECK(m->magic == DPOC_ABI_MAGIC && m->abi_version == DPOC_ABI_VERSION);
    CHECK(m->mesh_dp == 1 && m->mesh_tp == 1);
    CHECK(m->train_step && m->logps && m->optimizer_step);
    char *host = LLVMGetHostCPUName();
    CHECK_MSG(strcmp(m->target_cpu, host) == 0, "target cpu %s, host %s", m->target_cpu, host);
    LLVMDisposeMessage(host);
    CHECK(strlen(m->target_features) > 0);

    const cJSON *j = s.json;
    CHECK(cJSON_IsNumber(jget(j, "abi_version")) && jget(j, "abi_version")->valueint == (int)DPOC_ABI_VERSION);
    const cJSON *tg = jget(j, "target");
    CHECK(tg && cJSON_IsString(jget(tg, "cpu")) && strcmp(jget(tg, "cpu")->valuestring, m->target_cpu) == 0);
    CHECK(tg && cJSON_IsString(jget(tg, "features")) && strcmp(jget(tg, "features")->valuestring, m->target_features) == 0);
    const cJSON *mesh = jget(j, "mesh");
    CHECK(mesh && jget(mesh, "dp")->valueint == 1 && jget(mesh, "tp")->valueint == 1);
    CHECK(cJSON_GetArraySize(jget(j, "regions")) == DPOC_R_COUNT);
    CHECK(s.region_size[DPOC_R_ARENA] > 0 && s.region_size[DPOC_R_ARENA] % DPOC_REGION_ALIGN == 0);
    CHECK(s.region_size[DPOC_R_GRADS] == s.region_size[DPOC_R_PARAMS]);

    const cJSON *t = jget(j, "tensors");
    const cJSON *w = find_named(t, "W", "param");
    CHECK(w && cJSON_IsTrue(jget(w, "decay")) && strcmp(jget(w, "region")->valuestring, "params") == 0);
    CHECK(w && strcmp(jget(w, "dtype")->valuestring, "f32") == 0 && cJSON_GetArraySize(jget(w, "shape")) == 2);
    const cJSON *b = find_named(t, "b", "param");
    CHECK(b && cJSON_IsFalse(jget(b, "decay")));
    CHECK(find_named(t, "W", "grad") && find_named(t, "x", "input") && find_named(t, "logps", "output") &&
          find_named(t, "loss", "output"));
    const cJSON *ad = find_named(t, "adamw", "input");
    CHECK(ad && strcmp(jget(ad, "dtype")->valuestring, "f64") == 0);
    DpocTensorInfo wi, mi;
    CHECK(dpoc_step_lookup(&s, "W", DPOC_ROLE_PARAM, &wi) == 0 && dpoc_step_lookup(&s, "W", DPOC_ROLE_ADAM_M, &mi) == 0);
    CHECK(mi.region == DPOC_R_ADAM_M && mi.offset == wi.offset);
    CHECK(dpoc_step_find(&s, "nope", DPOC_ROLE_PARAM, NULL) == NULL);

    const cJSON *ks = jget(j, "kernels");
    CHECK(cJSON_GetArraySize(ks) == m->nkernels && s.nkernels == m->nkernels);
    int ntrain = 0, nlogps = 0, nopt = 0, matmuls = 0;
    for (int i = 0; i < s.nkernels; i++) {
        const DpocKernelInfo *k = &s.kernels[i];
        CHECK(m->kernels[i] != NULL && k->work > 0);
        ntrain += strcmp(k->entry, "train_step") == 0;
        nlogps += strcmp(k->entry, "logps") == 0;
        nopt += strcmp(k->entry, "optimizer_step") == 0;
        CHECK_MSG(strncmp(k->name, k->entry, strlen(k->entry)) == 0, "kernel %s of %s", k->name, k->entry);
        if (strcmp(k->op, "matmul") == 0 && strcmp(k->entry, "logps") == 0) {
            matmuls++;
            /* work: output tiles (codegen/cg_gemm.c); a 2 x 4 result is one */
            CHECK_MSG(k->flops == 2 * 2 * 3 * 4 && k->work == 1, "matmul kernel flops %lld work %lld", (long long)k->flops,
                      (long long)k->work);
            CHECK(k->bytes == (8 + 12 + 6) * 4);
        }
    }
    CHECK(ntrain > nlogps && nlogps >= 3 && nopt == 1 && matmuls == 1);
    const cJSON *ents = jget(j, "entries");
    CHECK(cJSON_GetArraySize(ents) == 3);

    cJSON *cfg = cJSON_Parse(config);
    CHECK(cJSON_Compare(cfg, jget(j, "config"), 1));
    cJSON_Delete(cfg);
    const cJSON *ir = jget(j, "ir");
    const IrGraph *graphs[2] = {&p.train, &p.logps};
    const char *names[2] = {"train_step", "logps"};
    for (int i = 0; i < 2; i++) {
        const cJSON *txt = jget(ir, names[i]);
        CHECK(cJSON_IsString(txt));
        if (!cJSON_IsString(txt)) continue;
        char *mine = ir_print_str(graphs[i]);
        CHECK_MSG(strcmp(mine, txt->valuestring) == 0, "IR text of %s differs", names[i]);
        IrGraph back;
        ir_init(&back);
        CHECK_MSG(ir_parse(&back, txt->valuestring, names[i], err, sizeof err) == 0, "%s", err);
        char *again = ir_print_str(&back);
        CHECK(again && strcmp(again, mine) == 0);
        free(again);
        free(mine);
        ir_free(&back);
    }
    CHECK(file_contains(ll, "define internal void @fn0_")); /* kernel functions are internal */
    CHECK(file_contains(ll, "@dpoc_manifest = constant"));
    unlink(ll);
    check_values(&s, "host build");
    printf("  manifest: %d kernels (%d train_step, %d logps, %d optimizer), JSON %zu bytes\n", s.nkernels, ntrain,
           nlogps, nopt, strlen(m->json));
    dpoc_step_close(&s);

#if defined(__x86_64__)
    /* an explicit, baseline target */
    IrGraph *gl[2] = {&p.train, &p.logps};
    TensorTable tt;
    SchedPlan pl[2];
    CHECK(tensor_table_build(&tt, gl, 2, err, sizeof err) == 0);
    CHECK(sched_plan(&p.train, &tt, &pl[0], err, sizeof err) == 0);
    CHECK(sched_plan(&p.logps, &tt, &pl[1], err, sizeof err) == 0);
    CodegenEntry e[2] = {{"train_step", &p.train, &pl[0]}, {"logps", &p.logps, &pl[1]}};
    CodegenOptions o = {.target_cpu = "x86-64", .target_features = "+sse2"};
    char path[400];
    snprintf(path, sizeof path, "%s/baseline.so", tcg_tmpdir());
    CHECK_MSG(codegen_build_so(e, 2, &tt, &o, path, err, sizeof err) == 0, "%s", err);
    if (dpoc_step_open(&s, path, err, sizeof err) == 0) {
        CHECK(strcmp(s.manifest->target_cpu, "x86-64") == 0 && strcmp(s.manifest->target_features, "+sse2") == 0);
        CHECK(s.manifest->optimizer_step == NULL);
        check_values(&s, "x86-64 build");
        dpoc_step_close(&s);
    } else {
        CHECK_MSG(0, "%s", err);
    }
    unlink(path);
    sched_plan_free(&pl[0]);
    sched_plan_free(&pl[1]);
    tensor_table_free(&tt);
#endif
    ir_free(&p.train);
    ir_free(&p.logps);
}

/* names in tcg_tmpdir() that start with prefix */
static int count_files(const char *prefix) {
    DIR *d = opendir(tcg_tmpdir());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    if (d) closedir(d);
    return n;
}

static void test_codegen_errors(void) {
    IrGraph g;
    build(&g, 0);
    IrGraph *gp = &g;
    TensorTable tt;
    SchedPlan pl;
    char err[1024], path[400];
    CHECK(tensor_table_build(&tt, &gp, 1, err, sizeof err) == 0);
    CHECK(sched_plan(&g, &tt, &pl, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/keep.so", tcg_tmpdir());
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);

    CodegenEntry e = {"logps", &g, &pl};
    CodegenOptions bad_cfg = {.config_json = "{\"model\": "};
    CHECK(codegen_build_so(&e, 1, &tt, &bad_cfg, path, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "config") != NULL, "message: %s", err);

    CodegenEntry unknown = {"sample", &g, &pl}; /* decode and prefill are ABI entries since v3 */
    CHECK(codegen_build_so(&unknown, 1, &tt, NULL, path, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "sample") != NULL, "message: %s", err);

    setenv("DPOC_CC", "/nonexistent/cc", 1);
    CHECK(codegen_build_so(&e, 1, &tt, NULL, path, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "/nonexistent/cc") != NULL, "message: %s", err);
    setenv("DPOC_CC", "false", 1); /* a compiler that runs and fails */
    CHECK(codegen_build_so(&e, 1, &tt, NULL, path, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "failed") != NULL, "message: %s", err);
    unsetenv("DPOC_CC");

    CHECK(file_contains(path, "old"));
    CHECK_MSG(count_files("keep.so") == 1, "temporary files left beside keep.so");
    /* and the same call with a good configuration replaces the file */
    CHECK_MSG(codegen_build_so(&e, 1, &tt, NULL, path, err, sizeof err) == 0, "%s", err);
    CHECK(!file_contains(path, "old") && count_files("keep.so") == 1);
    unlink(path);
    sched_plan_free(&pl);
    tensor_table_free(&tt);
    ir_free(&g);
}

/* builds a tiny shared object from C source; 0 ok */
static int build_fake(const char *src, const char *so) {
    char cpath[400];
    snprintf(cpath, sizeof cpath, "%s/fake.c", tcg_tmpdir());
    FILE *f = fopen(cpath, "w");
    fputs(src, f);
    fclose(f);
    char *argv[] = {"cc", "-shared", "-fPIC", "-I" DPOC_SOURCE_DIR, "-o", (char *)so, cpath, NULL};
    pid_t pid;
    int status = 0;
    if (posix_spawnp(&pid, "cc", NULL, NULL, argv, environ) != 0) return -1;
    waitpid(pid, &status, 0);
    unlink(cpath);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_loader_errors(void) {
    char so[400], err[1024];
    DpocStep s;
    snprintf(so, sizeof so, "%s/fake.so", tcg_tmpdir());
    CHECK(dpoc_step_open(&s, "/nonexistent/step.so", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "cannot load") != NULL, "%s", err);

    CHECK(build_fake("int not_a_manifest = 1;\n", so) == 0);
    CHECK(dpoc_step_open(&s, so, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "exports no dpoc_manifest") != NULL, "%s", err);

    CHECK(build_fake("#include \"runtime/dpoc_abi.h\"\n"
                     "const DpocManifest dpoc_manifest = {0x12345678u, DPOC_ABI_VERSION, \"\", \"\", 1, 1, \"{}\"};\n",
                     so) == 0);
    CHECK(dpoc_step_open(&s, so, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "magic 0x12345678") != NULL, "%s", err);

    CHECK(build_fake("#include \"runtime/dpoc_abi.h\"\n"
                     "const DpocManifest dpoc_manifest = {DPOC_ABI_MAGIC, 99u, \"\", \"\", 1, 1, \"{}\"};\n",
                     so) == 0);
    CHECK(dpoc_step_open(&s, so, err, sizeof err) == -1);
    char want[128];
    snprintf(want, sizeof want, "version 99 but this runtime implements version %u", DPOC_ABI_VERSION);
    CHECK_MSG(strstr(err, want) != NULL, "%s", err);

    CHECK(build_fake("#include \"runtime/dpoc_abi.h\"\n"
                     "const DpocManifest dpoc_manifest = {DPOC_ABI_MAGIC, DPOC_ABI_VERSION, \"\", \"\", 1, 1,\n"
                     "  \"{\\\"regions\\\": [{\\\"name\\\": \\\"params\\\", \\\"size\\\": 64}],\"\n"
                     "  \" \\\"tensors\\\": [{\\\"name\\\": \\\"w\\\", \\\"dtype\\\": \\\"f32\\\", \\\"shape\\\": [100],\"\n"
                     "  \" \\\"region\\\": \\\"params\\\", \\\"offset\\\": 0, \\\"role\\\": \\\"param\\\"}], \\\"kernels\\\": []}\"};\n",
                     so) == 0);
    CHECK(dpoc_step_open(&s, so, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "outside region params") != NULL, "%s", err);
    unlink(so);

#if defined(__x86_64__)
    /* fma4 and xop exist only on AMD CPUs of 2011-2015; the loader must say which are missing */
    int has_fma4 = __builtin_cpu_supports("fma4"), has_xop = __builtin_cpu_supports("xop");
    int rc = dpoc_check_cpu_features("+sse2,+fma4,-avx512f,+xop,+not-a-feature", err, sizeof err);
    CHECK(rc == ((has_fma4 && has_xop) ? 0 : -1));
    if (!has_fma4) CHECK_MSG(strstr(err, "fma4") != NULL, "%s", err);
    if (!has_xop) CHECK_MSG(strstr(err, "xop") != NULL, "%s", err);
    CHECK(dpoc_check_cpu_features("+sse2,-xop,+not-a-feature", err, sizeof err) == 0);
#endif
    printf("  loader and codegen error paths\n");
}

int main(void) {
    test_manifest();
    test_codegen_errors();
    test_loader_errors();
    return check_done("codegen abi");
}
