/* cg_manifest.c — the step.so's self-description: JSON text and the exported
 * `dpoc_manifest` global.
 *
 * The JSON (built with cJSON, keys documented in docs/step-abi.md) holds the
 * ABI version, target, mesh, region sizes (the arena is the largest of the
 * entries' peaks), the tensor table, the distinct kernel functions, the
 * kernel call table in emission order (which is also the order of the
 * manifest's `kernels` pointer array: one pointer per call, the call's
 * shared function, so pointers repeat; each row names its function and the
 * (region, offset) places of its arguments), the
 * entry names, the caller's configuration JSON under "config", and each
 * entry's final IR text under "ir". The manifest global is a constant
 * struct laid out by LLVM with the target's data layout, field for field
 * as DpocManifest in runtime/dpoc_abi.h; it is the only symbol the step.so
 * exports.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"

static const char *const region_names[DPOC_R_COUNT] = {"params", "grads", "adam_m", "adam_v",
                                                       "ref_params", "inputs", "outputs", "arena"};
static const char *const role_names[] = {"param", "ref_param", "grad", "input", "output"};

static cJSON *shape_json(int ndim, const int64_t *shape) {
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < ndim; d++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)shape[d]));
    return a;
}

/* "full_shape" (the unsplit shape) and "shard": null or {"axis": "tp"|"dp",
 * "dim": k} — rank r of the axis holds the block [r*n/size, (r+1)*n/size) */
static void add_shard_json(cJSON *x, const TensorEntry *te, const CodegenOptions *o) {
    int64_t full[IR_MAX_DIMS];
    int dim = -1, axis = -1;
    for (int d = 0; d < te->ndim; d++) {
        full[d] = te->shape[d];
        int a = te->shard[d];
        if (a < 0 || a >= IR_MESH_AXES) continue;
        int size = a == IR_MESH_DP ? o->mesh_dp : o->mesh_tp;
        full[d] *= size > 1 ? size : 1;
        dim = d;
        axis = a;
    }
    cJSON_AddItemToObject(x, "full_shape", shape_json(te->ndim, full));
    if (dim < 0) {
        cJSON_AddNullToObject(x, "shard");
        return;
    }
    cJSON *sh = cJSON_AddObjectToObject(x, "shard");
    cJSON_AddStringToObject(sh, "axis", axis == IR_MESH_DP ? "dp" : "tp");
    cJSON_AddNumberToObject(sh, "dim", dim);
}

char *cg_manifest_json(Cg *c, const CodegenEntry *entries, int nentries, const TensorTable *tt,
                       const CodegenOptions *o, const CgTarget *t) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "abi_version", DPOC_ABI_VERSION);
    cJSON *tg = cJSON_AddObjectToObject(root, "target");
    cJSON_AddStringToObject(tg, "triple", t->triple);
    cJSON_AddStringToObject(tg, "cpu", t->cpu);
    cJSON_AddStringToObject(tg, "features", t->features);
    cJSON *mesh = cJSON_AddObjectToObject(root, "mesh");
    cJSON_AddNumberToObject(mesh, "dp", o->mesh_dp > 1 ? o->mesh_dp : 1);
    cJSON_AddNumberToObject(mesh, "tp", o->mesh_tp > 1 ? o->mesh_tp : 1);

    int64_t arena = 0;
    for (int i = 0; i < nentries; i++)
        if (entries[i].plan->arena_bytes > arena) arena = entries[i].plan->arena_bytes;
    cJSON *regions = cJSON_AddArrayToObject(root, "regions");
    for (int r = 0; r < DPOC_R_COUNT; r++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", region_names[r]);
        cJSON_AddNumberToObject(x, "size", (double)(r == DPOC_R_ARENA ? arena : tt->region_size[r]));
        cJSON_AddItemToArray(regions, x);
    }

    cJSON *tensors = cJSON_AddArrayToObject(root, "tensors");
    for (int i = 0; i < tt->n; i++) {
        const TensorEntry *te = &tt->t[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", te->name);
        cJSON_AddStringToObject(x, "dtype", ir_dtype_name(te->dtype));
        cJSON_AddItemToObject(x, "shape", shape_json(te->ndim, te->shape));
        cJSON_AddStringToObject(x, "region", region_names[te->region]);
        cJSON_AddNumberToObject(x, "offset", (double)te->offset);
        cJSON_AddStringToObject(x, "role", role_names[te->role]);
        cJSON_AddBoolToObject(x, "decay", te->decay != 0);
        add_shard_json(x, te, o);
        cJSON_AddItemToArray(tensors, x);
    }

    cJSON *funcs = cJSON_AddArrayToObject(root, "functions");
    for (int i = 0; i < c->nfuncs; i++) {
        const CgFunc *f = &c->funcs[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", f->name);
        cJSON_AddStringToObject(x, "op", f->op);
        cJSON_AddNumberToObject(x, "nargs", f->nargs);
        cJSON_AddNumberToObject(x, "calls", f->ncalls);
        cJSON_AddItemToArray(funcs, x);
    }

    cJSON *kernels = cJSON_AddArrayToObject(root, "kernels");
    for (int i = 0; i < c->nkernels; i++) {
        const CgKernelRec *k = &c->kernels[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", k->name);
        cJSON_AddStringToObject(x, "entry", k->entry);
        cJSON_AddStringToObject(x, "op", k->op);
        cJSON_AddNumberToObject(x, "work", (double)k->work);
        cJSON_AddNumberToObject(x, "flops", (double)k->flops);
        cJSON_AddNumberToObject(x, "bytes", (double)k->bytes);
        cJSON_AddNumberToObject(x, "fn", k->fn);
        cJSON *args = cJSON_AddArrayToObject(x, "args");
        for (int a = 0; a < k->nargs; a++) {
            cJSON *pl = cJSON_CreateArray();
            cJSON_AddItemToArray(pl, cJSON_CreateNumber(k->arg_region[a]));
            cJSON_AddItemToArray(pl, cJSON_CreateNumber((double)k->arg_offset[a]));
            cJSON_AddItemToArray(args, pl);
        }
        if (k->nargs > 0 && k->arg_node[0] >= 0) { /* graph kernels: the IR node of each argument */
            cJSON *nodes = cJSON_AddArrayToObject(x, "nodes");
            for (int a = 0; a < k->nargs; a++) cJSON_AddItemToArray(nodes, cJSON_CreateNumber(k->arg_node[a]));
        }
        cJSON_AddItemToArray(kernels, x);
    }

    cJSON *names = cJSON_AddArrayToObject(root, "entries");
    for (int i = 0; i < nentries; i++) cJSON_AddItemToArray(names, cJSON_CreateString(entries[i].name));
    if (o->with_optimizer) cJSON_AddItemToArray(names, cJSON_CreateString("optimizer_step"));

    if (o->config_json) {
        cJSON *cfg = cJSON_Parse(o->config_json);
        if (!cfg) {
            cJSON_Delete(root);
            cg_fail(c, "config JSON does not parse (near: %.40s)", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?");
            return NULL;
        }
        cJSON_AddItemToObject(root, "config", cfg);
    }

    cJSON *ir = cJSON_AddObjectToObject(root, "ir");
    for (int i = 0; i < nentries; i++) {
        char *text = ir_print_str(entries[i].g);
        if (!text) {
            cJSON_Delete(root);
            cg_fail(c, "out of memory printing the IR of %s", entries[i].name);
            return NULL;
        }
        cJSON_AddStringToObject(ir, entries[i].name, text);
        free(text);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) cg_fail(c, "out of memory building the manifest");
    return s;
}

static LLVMValueRef const_cstr(Cg *c, const char *s, const char *name) {
    size_t len = strlen(s);
    LLVMValueRef init = LLVMConstStringInContext2(c->ctx, s, len, 0);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    return gv;
}

void cg_emit_manifest(Cg *c, const char *json, const CgTarget *t, LLVMValueRef train, LLVMValueRef logps,
                      LLVMValueRef optim) {
    /* DpocManifest: magic, version, cpu, features, dp, tp, json, train_step,
     * logps, optimizer_step, prefill, decode, nkernels, kernels */
    LLVMTypeRef fields[14] = {c->i32, c->i32, c->ptr, c->ptr, c->i32, c->i32, c->ptr,
                              c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->i32, c->ptr};
    LLVMTypeRef mty = LLVMStructCreateNamed(c->ctx, "DpocManifest");
    LLVMStructSetBody(mty, fields, 14, 0);

    LLVMValueRef *fns = malloc(sizeof *fns * (size_t)(c->nkernels ? c->nkernels : 1));
    if (!fns) {
        cg_fail(c, "out of memory");
        return;
    }
    for (int i = 0; i < c->nkernels; i++) fns[i] = c->funcs[c->kernels[i].fn].fn;
    LLVMValueRef ktab = LLVMAddGlobal(c->mod, LLVMArrayType2(c->ptr, (uint64_t)c->nkernels), "dpoc_kernel_table");
    LLVMSetInitializer(ktab, LLVMConstArray2(c->ptr, fns, (uint64_t)c->nkernels));
    LLVMSetGlobalConstant(ktab, 1);
    LLVMSetLinkage(ktab, LLVMPrivateLinkage);
    free(fns);

    LLVMValueRef null = LLVMConstPointerNull(c->ptr);
    /* the generation entries, when emitted (cg_emit_entry names them dpoc_<entry>) */
    LLVMValueRef prefill = LLVMGetNamedFunction(c->mod, "dpoc_prefill");
    LLVMValueRef decode = LLVMGetNamedFunction(c->mod, "dpoc_decode");
    LLVMValueRef v[14] = {
        LLVMConstInt(c->i32, DPOC_ABI_MAGIC, 0),
        LLVMConstInt(c->i32, DPOC_ABI_VERSION, 0),
        const_cstr(c, t->cpu, "dpoc_target_cpu"),
        const_cstr(c, t->features, "dpoc_target_features"),
        LLVMConstInt(c->i32, (unsigned long long)c->mesh_dp, 0),
        LLVMConstInt(c->i32, (unsigned long long)c->mesh_tp, 0),
        const_cstr(c, json, "dpoc_json"),
        train ? train : null,
        logps ? logps : null,
        optim ? optim : null,
        prefill ? prefill : null,
        decode ? decode : null,
        LLVMConstInt(c->i32, (unsigned long long)c->nkernels, 0),
        ktab,
    };
    LLVMValueRef m = LLVMAddGlobal(c->mod, mty, "dpoc_manifest");
    LLVMSetInitializer(m, LLVMConstNamedStruct(mty, v, 14));
    LLVMSetGlobalConstant(m, 1);
    LLVMSetLinkage(m, LLVMExternalLinkage);
    LLVMSetVisibility(m, LLVMDefaultVisibility);
}
