/* step_load.c — dlopen a step.so, check it, parse its manifest, allocate.
 *
 * The order in dpoc_step_open is the order of trust: the symbol must exist,
 * the magic must say "DPOC", the ABI version must be ours (the message
 * names both versions), the CPU must have the features the code was built
 * for, and the JSON must parse and agree with itself (every tensor inside
 * its region, as many kernels as the manifest's pointer table, every
 * kernel's function index and argument places in range). Only then
 * are the regions allocated: zeroed, DPOC_REGION_ALIGN aligned, sizes
 * rounded up to the alignment (at least one alignment unit, so a region of
 * size 0 still has a valid base).
 *
 * The CPU check needs no LLVM: the x86 features LLVM names in the manifest
 * ("+avx2", "+fma", "+avx512f", ...) that the compiler's
 * __builtin_cpu_supports knows are tested one by one; others are skipped.
 */
#include "step_load.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const region_names[DPOC_R_COUNT] = {"params", "grads", "adam_m", "adam_v",
                                                       "ref_params", "inputs", "outputs", "arena"};
static const char *const role_names[DPOC_ROLE_COUNT] = {"param", "ref_param", "grad", "input",
                                                        "output", "adam_m", "adam_v"};
static const char *const dtype_names[DPOC_DT_COUNT] = {"f32", "f64", "i32"};
static const size_t dtype_sizes[DPOC_DT_COUNT] = {4, 8, 4};

const char *dpoc_dtype_name(DpocDType t) { return (unsigned)t < DPOC_DT_COUNT ? dtype_names[t] : "?"; }
size_t dpoc_dtype_size(DpocDType t) { return (unsigned)t < DPOC_DT_COUNT ? dtype_sizes[t] : 0; }
const char *dpoc_role_name(DpocRole r) { return (unsigned)r < DPOC_ROLE_COUNT ? role_names[r] : "?"; }

static int find_name(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (s && strcmp(names[i], s) == 0) return i;
    return -1;
}

/* ---- CPU features ---------------------------------------------------------- */
#if defined(__x86_64__) || defined(__i386__)
#define FEAT(n) {n, __builtin_cpu_supports(n)}
static int host_feature(const char *name, int *known) {
    __builtin_cpu_init();
    const struct {
        const char *name;
        int has;
    } t[] = {
        FEAT("cmov"), FEAT("mmx"), FEAT("popcnt"), FEAT("sse"), FEAT("sse2"), FEAT("sse3"), FEAT("ssse3"),
        FEAT("sse4.1"), FEAT("sse4.2"), FEAT("avx"), FEAT("avx2"), FEAT("sse4a"), FEAT("fma4"), FEAT("xop"),
        FEAT("fma"), FEAT("avx512f"), FEAT("bmi"), FEAT("bmi2"), FEAT("aes"), FEAT("pclmul"), FEAT("avx512vl"),
        FEAT("avx512bw"), FEAT("avx512dq"), FEAT("avx512cd"), FEAT("avx512vbmi"), FEAT("avx512ifma"),
        FEAT("avx512vpopcntdq"), FEAT("avx512vbmi2"), FEAT("gfni"), FEAT("vpclmulqdq"), FEAT("avx512vnni"),
        FEAT("avx512bitalg"), FEAT("avx512bf16"), FEAT("avx512fp16"), FEAT("f16c"), FEAT("lzcnt"), FEAT("movbe"),
        FEAT("avxvnni"),
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].name, name) == 0) {
            *known = 1;
            return t[i].has != 0;
        }
    *known = 0;
    return 0;
}
#undef FEAT
#else
static int host_feature(const char *name, int *known) {
    (void)name;
    *known = 0;
    return 0;
}
#endif

int dpoc_check_cpu_features(const char *features, char *err, size_t errlen) {
    char missing[256] = "";
    size_t mlen = 0;
    const char *p = features ? features : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 1 && len < 64 && p[0] == '+') {
            char name[64];
            memcpy(name, p + 1, len - 1);
            name[len - 1] = 0;
            int known;
            if (!host_feature(name, &known) && known && mlen + len + 2 < sizeof missing)
                mlen += (size_t)snprintf(missing + mlen, sizeof missing - mlen, "%s%s", mlen ? " " : "", name);
        }
        p += len;
        if (*p == ',') p++;
    }
    if (!mlen) return 0;
    snprintf(err, errlen, "this CPU lacks features the step was compiled for: %s (recompile it on this machine)", missing);
    return -1;
}

/* ---- JSON ------------------------------------------------------------------ */
static int json_i64(const cJSON *o, const char *key, int64_t *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9e15) return -1;
    *v = (int64_t)x->valuedouble;
    return 0;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static char *dup_str(const char *s) { return strdup(s ? s : ""); }

static int parse_tensors(DpocStep *s, char *err, size_t errlen) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(s->json, "tensors");
    if (!cJSON_IsArray(arr)) return snprintf(err, errlen, "manifest has no tensor list"), -1;
    int n = cJSON_GetArraySize(arr);
    s->tensors = calloc((size_t)(n ? n : 1), sizeof *s->tensors);
    if (!s->tensors) return snprintf(err, errlen, "out of memory"), -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        DpocTensorInfo *t = &s->tensors[s->ntensors];
        const char *name = json_str(it, "name");
        int dt = find_name(dtype_names, DPOC_DT_COUNT, json_str(it, "dtype"));
        int region = find_name(region_names, DPOC_R_COUNT, json_str(it, "region"));
        int role = find_name(role_names, DPOC_ROLE_ADAM_M, json_str(it, "role"));
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
        if (!name || dt < 0 || region < 0 || role < 0 || !cJSON_IsArray(shape) || json_i64(it, "offset", &t->offset) ||
            cJSON_GetArraySize(shape) > DPOC_MAX_DIMS)
            return snprintf(err, errlen, "manifest tensor %d is malformed", s->ntensors), -1;
        t->name = dup_str(name);
        s->ntensors++;
        if (!t->name) return snprintf(err, errlen, "out of memory"), -1;
        t->dtype = (DpocDType)dt;
        t->region = (DpocRegion)region;
        t->role = (DpocRole)role;
        t->decay = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "decay"));
        t->numel = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, shape) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 9e15)
                return snprintf(err, errlen, "tensor '%s' has a bad shape", name), -1;
            t->shape[t->ndim++] = (int64_t)d->valuedouble;
            t->numel *= (int64_t)d->valuedouble;
        }
        t->nbytes = t->numel * (int64_t)dtype_sizes[dt];
        if (t->offset + t->nbytes > s->region_size[region])
            return snprintf(err, errlen, "tensor '%s' (%lld bytes at %lld) lies outside region %s (%lld bytes)", name,
                            (long long)t->nbytes, (long long)t->offset, region_names[region],
                            (long long)s->region_size[region]),
                   -1;
    }
    return 0;
}

/* "fn" within "functions", "args" a list of [region, offset] inside the regions */
static int parse_kernel_args(DpocStep *s, const cJSON *it, DpocKernelInfo *k) {
    int64_t fn;
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(it, "args");
    if (json_i64(it, "fn", &fn) || fn >= s->nfunctions || !cJSON_IsArray(args)) return -1;
    k->fn = (int)fn;
    int n = cJSON_GetArraySize(args);
    if (n < 1) return -1;
    k->arg_region = calloc((size_t)n, sizeof *k->arg_region);
    k->arg_offset = calloc((size_t)n, sizeof *k->arg_offset);
    if (!k->arg_region || !k->arg_offset) return -1;
    const cJSON *a;
    cJSON_ArrayForEach(a, args) {
        const cJSON *r = cJSON_GetArrayItem(a, 0), *o = cJSON_GetArrayItem(a, 1);
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2 || !cJSON_IsNumber(r) || !cJSON_IsNumber(o) ||
            r->valuedouble < 0 || r->valuedouble >= DPOC_R_COUNT || r->valuedouble != (int)r->valuedouble ||
            o->valuedouble < 0 || o->valuedouble > (double)s->region_size[(int)r->valuedouble])
            return -1;
        k->arg_region[k->nargs] = (DpocRegion)(int)r->valuedouble;
        k->arg_offset[k->nargs++] = (int64_t)o->valuedouble;
    }
    return 0;
}

static int parse_kernels(DpocStep *s, char *err, size_t errlen) {
    const cJSON *funcs = cJSON_GetObjectItemCaseSensitive(s->json, "functions");
    if (!cJSON_IsArray(funcs)) return snprintf(err, errlen, "manifest has no function list"), -1;
    s->nfunctions = cJSON_GetArraySize(funcs);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(s->json, "kernels");
    if (!cJSON_IsArray(arr)) return snprintf(err, errlen, "manifest has no kernel list"), -1;
    int n = cJSON_GetArraySize(arr);
    if (n != s->manifest->nkernels)
        return snprintf(err, errlen, "manifest lists %d kernels in JSON but %d function pointers", n, s->manifest->nkernels), -1;
    s->kernels = calloc((size_t)(n ? n : 1), sizeof *s->kernels);
    if (!s->kernels) return snprintf(err, errlen, "out of memory"), -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        DpocKernelInfo *k = &s->kernels[s->nkernels++];
        k->name = dup_str(json_str(it, "name"));
        k->entry = dup_str(json_str(it, "entry"));
        k->op = dup_str(json_str(it, "op"));
        if (!k->name || !k->entry || !k->op) return snprintf(err, errlen, "out of memory"), -1;
        if (json_i64(it, "work", &k->work) || json_i64(it, "flops", &k->flops) || json_i64(it, "bytes", &k->bytes))
            return snprintf(err, errlen, "manifest kernel '%s' is malformed", k->name), -1;
        if (parse_kernel_args(s, it, k))
            return snprintf(err, errlen, "manifest kernel '%s' has a bad function index or argument list", k->name), -1;
    }
    return 0;
}

int dpoc_step_kernel_args(const DpocStep *s, int k, uint8_t **p, int cap) {
    if (k < 0 || k >= s->nkernels || s->kernels[k].nargs > cap) return -1;
    const DpocKernelInfo *ki = &s->kernels[k];
    for (int i = 0; i < ki->nargs; i++) p[i] = s->regions[ki->arg_region[i]] + ki->arg_offset[i];
    return ki->nargs;
}

static int alloc_regions(DpocStep *s, char *err, size_t errlen) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(s->json, "regions");
    if (!cJSON_IsArray(arr)) return snprintf(err, errlen, "manifest has no region list"), -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        int r = find_name(region_names, DPOC_R_COUNT, json_str(it, "name"));
        int64_t size;
        if (r < 0 || json_i64(it, "size", &size)) return snprintf(err, errlen, "manifest region entry is malformed"), -1;
        s->region_size[r] = size;
    }
    for (int r = 0; r < DPOC_R_COUNT; r++) {
        int64_t sz = (s->region_size[r] + DPOC_REGION_ALIGN - 1) / DPOC_REGION_ALIGN * DPOC_REGION_ALIGN;
        if (sz == 0) sz = DPOC_REGION_ALIGN;
        s->regions[r] = aligned_alloc(DPOC_REGION_ALIGN, (size_t)sz);
        if (!s->regions[r])
            return snprintf(err, errlen, "cannot allocate region %s (%lld bytes)", region_names[r], (long long)sz), -1;
        memset(s->regions[r], 0, (size_t)sz);
    }
    return 0;
}

static void serial_for(void *ctx, DpocKernelFn fn, uint8_t *const *regions, int64_t n) {
    (void)ctx;
    if (n > 0) fn(regions, 0, n);
}

int dpoc_step_open(DpocStep *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->serial.parallel_for = serial_for;
    s->serial.dp_size = s->serial.tp_size = 1;
    s->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!s->dl) {
        const char *e = dlerror();
        snprintf(err, errlen, "cannot load %s: %s", path, e ? e : "unknown error");
        return -1;
    }
    s->manifest = (const DpocManifest *)dlsym(s->dl, "dpoc_manifest");
    const DpocManifest *m = s->manifest;
    char sub[400];
    if (!m) {
        snprintf(err, errlen, "%s is not a dpoc step: it exports no dpoc_manifest", path);
        goto fail;
    }
    if (m->magic != DPOC_ABI_MAGIC) {
        snprintf(err, errlen, "%s is not a dpoc step: manifest magic 0x%08x, expected 0x%08x", path, m->magic, DPOC_ABI_MAGIC);
        goto fail;
    }
    if (m->abi_version != DPOC_ABI_VERSION) {
        snprintf(err, errlen, "%s was built for step ABI version %u but this runtime implements version %u; recompile it",
                 path, m->abi_version, DPOC_ABI_VERSION);
        goto fail;
    }
    if (dpoc_check_cpu_features(m->target_features, sub, sizeof sub)) {
        snprintf(err, errlen, "%s: %s", path, sub);
        goto fail;
    }
    s->json = cJSON_Parse(m->json ? m->json : "");
    if (!s->json) {
        snprintf(err, errlen, "%s: manifest JSON does not parse", path);
        goto fail;
    }
    if (alloc_regions(s, sub, sizeof sub) || parse_tensors(s, sub, sizeof sub) || parse_kernels(s, sub, sizeof sub)) {
        snprintf(err, errlen, "%s: %s", path, sub);
        goto fail;
    }
    return 0;
fail:
    dpoc_step_close(s);
    return -1;
}

void dpoc_step_close(DpocStep *s) {
    for (int i = 0; i < s->ntensors; i++) free(s->tensors[i].name);
    free(s->tensors);
    for (int i = 0; i < s->nkernels; i++) {
        free(s->kernels[i].name);
        free(s->kernels[i].entry);
        free(s->kernels[i].op);
        free(s->kernels[i].arg_region);
        free(s->kernels[i].arg_offset);
    }
    free(s->kernels);
    for (int r = 0; r < DPOC_R_COUNT; r++) free(s->regions[r]);
    cJSON_Delete(s->json);
    if (s->dl) dlclose(s->dl);
    memset(s, 0, sizeof *s);
}

int dpoc_step_lookup(const DpocStep *s, const char *name, DpocRole role, DpocTensorInfo *out) {
    DpocRole want = role == DPOC_ROLE_ADAM_M || role == DPOC_ROLE_ADAM_V ? DPOC_ROLE_PARAM : role;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != want || strcmp(t->name, name) != 0) continue;
        *out = *t;
        if (role != want) {
            out->role = role;
            out->region = role == DPOC_ROLE_ADAM_M ? DPOC_R_ADAM_M : DPOC_R_ADAM_V;
        }
        return 0;
    }
    return -1;
}

void *dpoc_step_find(DpocStep *s, const char *name, DpocRole role, DpocTensorInfo *info) {
    DpocTensorInfo t;
    if (dpoc_step_lookup(s, name, role, &t)) return NULL;
    if (t.offset + t.nbytes > s->region_size[t.region]) return NULL;
    if (info) *info = t;
    return s->regions[t.region] + t.offset;
}

int dpoc_step_run(DpocStep *s, DpocEntryFn fn, const DpocServices *svc) {
    if (!fn) return -1;
    return fn(s->regions, svc ? svc : &s->serial);
}

static int run_named(DpocStep *s, DpocEntryFn fn, const char *name, const DpocServices *svc, char *err, size_t errlen) {
    if (!fn) {
        snprintf(err, errlen, "the step has no %s entry point", name);
        return -1;
    }
    int rc = dpoc_step_run(s, fn, svc);
    if (rc) snprintf(err, errlen, "%s returned %d", name, rc);
    return rc;
}

int dpoc_step_train(DpocStep *s, const DpocServices *svc, char *err, size_t errlen) {
    return run_named(s, s->manifest->train_step, "train_step", svc, err, errlen);
}

int dpoc_step_logps(DpocStep *s, const DpocServices *svc, char *err, size_t errlen) {
    return run_named(s, s->manifest->logps, "logps", svc, err, errlen);
}

int dpoc_step_optimizer(DpocStep *s, const DpocServices *svc, char *err, size_t errlen) {
    return run_named(s, s->manifest->optimizer_step, "optimizer_step", svc, err, errlen);
}
