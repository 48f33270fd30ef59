/* codegen.c — codegen_build_so: the order of the whole job.
 *
 * 1. Copy the tensor table, adding the `adamw` hyper-parameter input when
 *    the optimizer is wanted (codegen.h explains its layout).
 * 2. Target machine first (the module needs its data layout), then every
 *    entry's kernels (shared across entries too: the forward kernels of
 *    logps are train_step's) and entry function, the AdamW kernel, the manifest
 *    JSON (it lists the kernels, so it comes after them) and the manifest
 *    global.
 * 3. Verify, optionally print, optimise, write the object next to out_so
 *    under a temporary name, link it to another temporary name, and rename
 *    that onto out_so: out_so is either the old file or the complete new
 *    one. Temporaries are removed on every path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"

static int64_t align_up(int64_t x) { return (x + DPOC_REGION_ALIGN - 1) / DPOC_REGION_ALIGN * DPOC_REGION_ALIGN; }

/* tt plus the adamw input; 0 or -1 */
static int table_with_adamw(const TensorTable *tt, int with_optimizer, TensorTable *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->cap = tt->n + 1;
    out->t = calloc((size_t)out->cap, sizeof *out->t);
    if (!out->t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (tt->n) memcpy(out->t, tt->t, (size_t)tt->n * sizeof *tt->t);
    out->n = tt->n;
    memcpy(out->region_size, tt->region_size, sizeof out->region_size);
    if (!with_optimizer) return 0;
    if (tensor_table_find(tt, CODEGEN_ADAMW_INPUT, TR_INPUT)) {
        snprintf(err, errlen, "the graph already has an input named '%s', which the optimizer reserves", CODEGEN_ADAMW_INPUT);
        return -1;
    }
    TensorEntry *e = &out->t[out->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", CODEGEN_ADAMW_INPUT);
    e->dtype = DT_F64;
    memset(e->shard, -1, sizeof e->shard); /* IR_SHARD_NONE: replicated */
    e->ndim = 1;
    e->shape[0] = CODEGEN_ADAMW_N;
    e->region = DPOC_R_INPUTS;
    e->role = TR_INPUT;
    e->offset = align_up(out->region_size[DPOC_R_INPUTS]);
    out->region_size[DPOC_R_INPUTS] = align_up(e->offset + CODEGEN_ADAMW_N * 8);
    return 0;
}

static int check_entries(const CodegenEntry *entries, int nentries, char *err, size_t errlen) {
    for (int i = 0; i < nentries; i++) {
        const char *n = entries[i].name;
        if (!n || (strcmp(n, "train_step") != 0 && strcmp(n, "logps") != 0 && strcmp(n, "prefill") != 0 &&
                   strcmp(n, "decode") != 0)) {
            snprintf(err, errlen, "entry '%s' is not one the ABI knows (train_step, logps, prefill, decode)",
                     n ? n : "(null)");
            return -1;
        }
        if (!entries[i].g || !entries[i].plan) {
            snprintf(err, errlen, "entry '%s' has no graph or schedule", n);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(entries[j].name, n) == 0) {
                snprintf(err, errlen, "entry '%s' given twice", n);
                return -1;
            }
    }
    return 0;
}

/* "<out>.XXXXXX<suffix>" created empty; NULL on failure */
static char *temp_beside(const char *out, const char *suffix) {
    size_t n = strlen(out) + strlen(suffix) + 16;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s.XXXXXX%s", out, suffix);
    int fd = mkstemps(p, (int)strlen(suffix));
    if (fd < 0) {
        free(p);
        return NULL;
    }
    close(fd);
    return p;
}

int codegen_build_so(const CodegenEntry *entries, int nentries, const TensorTable *tt, const CodegenOptions *o,
                     const char *out_so, char *err, size_t errlen) {
    static const CodegenOptions defaults;
    if (!o) o = &defaults;
    if (check_entries(entries, nentries, err, errlen)) return -1;
    TensorTable tab;
    if (table_with_adamw(tt, o->with_optimizer, &tab, err, errlen)) {
        free(tab.t);
        return -1;
    }
    Cg c;
    CgTarget t;
    memset(&t, 0, sizeof t);
    char *json = NULL, *obj = NULL, *so = NULL;
    LLVMValueRef train = NULL, logps = NULL, optim = NULL;
    int rc = -1;
    cg_init(&c, "dpoc_step");
    const char *nd = getenv("DPOC_NO_KERNEL_DEDUP");
    c.no_dedup = o->no_kernel_dedup || (nd && *nd && strcmp(nd, "0") != 0);
    c.bucket_bytes = o->bucket_bytes > 0 ? o->bucket_bytes : (int64_t)16 << 20;
    c.mesh_dp = o->mesh_dp > 1 ? o->mesh_dp : 1;
    c.mesh_tp = o->mesh_tp > 1 ? o->mesh_tp : 1;
    if (cg_target_prepare(&c, o, &t)) goto done;

    for (int i = 0; i < nentries; i++) {
        LLVMValueRef fn = cg_emit_entry(&c, &entries[i]);
        if (!fn) goto done;
        if (strcmp(entries[i].name, "train_step") == 0) train = fn;
        else if (strcmp(entries[i].name, "logps") == 0) logps = fn;
        /* prefill and decode: cg_emit_manifest finds dpoc_prefill / dpoc_decode by name */
    }
    if (o->with_optimizer) {
        optim = cg_emit_optimizer(&c, &tab, tensor_table_find(&tab, CODEGEN_ADAMW_INPUT, TR_INPUT));
        if (!optim) goto done;
    }
    json = cg_manifest_json(&c, entries, nentries, &tab, o, &t);
    if (!json) goto done;
    cg_emit_manifest(&c, json, &t, train, logps, optim);
    if (c.failed) goto done;

    obj = temp_beside(out_so, ".o");
    so = temp_beside(out_so, "");
    if (!obj || !so) {
        cg_fail(&c, "cannot create a temporary file beside %s: %s", out_so, strerror(errno));
        goto done;
    }
    if (cg_emit_object(&c, o, &t, obj)) goto done;
    if (cg_link_shared(obj, so, c.err, sizeof c.err)) {
        c.failed = 1;
        goto done;
    }
    if (rename(so, out_so) != 0) {
        cg_fail(&c, "cannot rename %s to %s: %s", so, out_so, strerror(errno));
        goto done;
    }
    free(so);
    so = NULL;
    rc = 0;
done:
    if (rc) snprintf(err, errlen, "%s", c.err[0] ? c.err : "code generation failed");
    if (obj) {
        unlink(obj);
        free(obj);
    }
    if (so) {
        unlink(so);
        free(so);
    }
    free(json);
    free(tab.t);
    cg_target_free(&t);
    cg_dispose(&c);
    return rc;
}
