/* dpoc_ckpt_mesh.c — `dpoc ckpt merge` and `dpoc ckpt reshard`.
 *
 * merge: a sharded checkpoint (runtime/ckpt_mesh.h: a directory whose
 * `latest` names a .mesh manifest, or the manifest itself) -> one full
 * checkpoint written with ckpt_save, mesh 1 x 1, no sharding; every full
 * tensor is assembled from the recorded shard specs, so no step.so is read.
 * reshard: a full or sharded checkpoint -> the layout of another mesh. The
 * tensors are first made full (in memory, one at a time), then, for tp > 1,
 * each tp rank's block of every split tensor is cut out and written as that
 * rank's shard, followed by the manifest. Which dimension a tensor splits
 * on comes from the source when it is sharded, else from --step STEP.so
 * (its tensor table's "shard" rows; `adam_m:`/`adam_v:` names take their
 * parameter's). tp = 1 writes a full checkpoint. Exit: 0 ok, 1 error, 2 usage.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpoc_cli.h"
#include "runtime/ckpt.h"
#include "runtime/ckpt_mesh.h"
#include "runtime/step_load.h"

/* A source: full tensors from a plain or a sharded checkpoint. */
typedef struct Src {
    Ckpt *c;
    CkptMesh *m;
} Src;

static int src_open(Src *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    char mp[4096];
    int r = ckpt_mesh_detect(path, mp, sizeof mp, err, errlen);
    if (r < 0) return -1;
    if (r == 1) return (s->m = ckpt_mesh_open(path, err, errlen)) ? 0 : -1;
    return (s->c = ckpt_open(path, err, errlen)) ? 0 : -1;
}
static void src_close(Src *s) {
    ckpt_close(s->c);
    ckpt_mesh_close(s->m);
}
static int src_n(const Src *s) { return s->m ? ckpt_mesh_ntensors(s->m) : ckpt_ntensors(s->c); }
static const CkptTensor *src_t(const Src *s, int i) { return s->m ? ckpt_mesh_tensor(s->m, i) : ckpt_tensor(s->c, i); }
static const CkptState *src_state(const Src *s) { return s->m ? ckpt_mesh_state(s->m) : ckpt_state(s->c); }
static int src_read(Src *s, int i, void *dst, size_t n, char *err, size_t errlen) {
    return s->m ? ckpt_mesh_read_full(s->m, i, dst, n, err, errlen) : ckpt_read_tensor(s->c, i, dst, n, err, errlen);
}

/* Reads every tensor full into ts[] (data malloc'ed). */
static int src_load_all(Src *s, CkptTensor **out, char *err, size_t errlen) {
    int n = src_n(s);
    CkptTensor *ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    if (!ts) return snprintf(err, errlen, "out of memory"), -1;
    *out = ts;
    for (int i = 0; i < n; i++) {
        ts[i] = *src_t(s, i);
        memset(ts[i].shard, 0, sizeof ts[i].shard);
        if (!(ts[i].data = malloc(ts[i].nbytes ? ts[i].nbytes : 1))) return snprintf(err, errlen, "out of memory"), -1;
        if (src_read(s, i, ts[i].data, ts[i].nbytes, err, errlen)) return -1;
    }
    return 0;
}

static void free_all(CkptTensor *ts, int n) {
    for (int i = 0; ts && i < n; i++) free(ts[i].data);
    free(ts);
}

int dpoc_ckpt_cmd_merge(const char *cmd, const char *synopsis, int argc, char **argv) {
    const char *out = NULL, *pos[1];
    DpocOpt opts[] = {{"output", 'o', OPT_STRING, &out, NULL, 0, "directory of the full checkpoint"}};
    int np = dpoc_opts_parse(cmd, synopsis, opts, 1, argc, argv, pos, 1);
    if (np == -2) return 0;
    if (np != 1 || !out) {
        if (np >= 0) fprintf(stderr, "dpoc %s: usage: dpoc %s %s\n", cmd, cmd, synopsis);
        return 2;
    }
    char err[1024];
    CkptMesh *m = ckpt_mesh_open(pos[0], err, sizeof err);
    if (!m) return fprintf(stderr, "dpoc %s: %s\n", cmd, err), 1;
    Src s = {.m = m};
    CkptTensor *ts = NULL;
    int n = ckpt_mesh_ntensors(m), rc = 1;
    if (src_load_all(&s, &ts, err, sizeof err) == 0 && ckpt_save(out, ckpt_mesh_state(m), ts, n, 0, err, sizeof err) == 0) {
        printf("%s: merged %d shards (mesh dp=%d tp=%d), %d tensors, into %s\n", ckpt_mesh_path(m), ckpt_mesh_nshards(m),
               ckpt_mesh_dp(m), ckpt_mesh_tp(m), n, out);
        rc = 0;
    } else
        fprintf(stderr, "dpoc %s: %s\n", cmd, err);
    free_all(ts, n);
    ckpt_mesh_close(m);
    return rc;
}

static int parse_mesh(const char *s, int *dp, int *tp) {
    *dp = *tp = 1;
    char buf[128];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *end;
        int *dst = !strncmp(tok, "dp=", 3) ? dp : !strncmp(tok, "tp=", 3) ? tp : NULL;
        if (!dst) return -1;
        long v = strtol(tok + 3, &end, 10);
        if (*end || end == tok + 3 || v < 1 || v > 4096) return -1;
        *dst = (int)v;
    }
    return 0;
}

/* The split dimension (-1: replicated) of a tensor name, from the step's
 * JSON tensor rows. */
static int step_split(const DpocStep *st, const char *name) {
    const char *base = name;
    if (!strncmp(base, "adam_m:", 7) || !strncmp(base, "adam_v:", 7)) base += 7;
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(st->json, "tensors")) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(row, "name");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(row, "role");
        if (!cJSON_IsString(nm) || strcmp(nm->valuestring, base) || !cJSON_IsString(role) ||
            (strcmp(role->valuestring, "param") && strcmp(role->valuestring, "ref_param")))
            continue;
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(row, "shard");
        const cJSON *ax = cJSON_GetObjectItemCaseSensitive(sh, "axis");
        const cJSON *dim = cJSON_GetObjectItemCaseSensitive(sh, "dim");
        if (cJSON_IsObject(sh) && cJSON_IsString(ax) && !strcmp(ax->valuestring, "tp") && cJSON_IsNumber(dim))
            return dim->valueint;
        return -1;
    }
    return -2; /* not in the step */
}

int dpoc_ckpt_cmd_reshard(const char *cmd, const char *synopsis, int argc, char **argv) {
    const char *out = NULL, *mesh = NULL, *step = NULL, *pos[1];
    DpocOpt opts[] = {{"output", 'o', OPT_STRING, &out, NULL, 0, "output checkpoint directory"},
                      {"mesh", 0, OPT_STRING, &mesh, NULL, 0, "target mesh: dp=D,tp=T"},
                      {"step", 0, OPT_STRING, &step, NULL, 0, "a mesh step.so: which dimension each tensor splits on"}};
    int np = dpoc_opts_parse(cmd, synopsis, opts, 3, argc, argv, pos, 1);
    if (np == -2) return 0;
    if (np != 1 || !out || !mesh) {
        if (np >= 0) fprintf(stderr, "dpoc %s: usage: dpoc %s %s\n", cmd, cmd, synopsis);
        return 2;
    }
    int dp, tp;
    if (parse_mesh(mesh, &dp, &tp))
        return fprintf(stderr, "dpoc %s: --mesh %s: expected dp=D,tp=T with D, T >= 1\n", cmd, mesh), 2;
    char err[1024];
    Src s;
    DpocStep st;
    int step_open = 0, rc = 1, n = 0;
    CkptTensor *ts = NULL, *loc = NULL;
    int *split = NULL;
    memset(&st, 0, sizeof st);
    if (src_open(&s, pos[0], err, sizeof err)) goto fail;
    n = src_n(&s);
    if (src_load_all(&s, &ts, err, sizeof err)) goto fail;
    if (!(split = calloc((size_t)(n ? n : 1), sizeof *split)) || !(loc = calloc((size_t)(n ? n : 1), sizeof *loc))) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (tp > 1 && !s.m && !step) {
        snprintf(err, sizeof err, "%s is a full checkpoint: --step STEP.so (a step compiled with --mesh) must say "
                                  "which dimension each tensor splits on", pos[0]);
        goto fail;
    }
    if (tp > 1 && step) {
        if (dpoc_step_open(&st, step, err, sizeof err)) goto fail;
        step_open = 1;
    }
    for (int i = 0; i < n; i++) {
        split[i] = -1;
        if (tp == 1) continue;
        if (step_open) {
            split[i] = step_split(&st, ts[i].name);
            if (split[i] == -2) {
                snprintf(err, sizeof err, "%s: tensor '%s' is not a parameter of %s", pos[0], ts[i].name, step);
                goto fail;
            }
        } else {
            const CkptTensor *l = ckpt_tensor(ckpt_mesh_shard(s.m, 0), i);
            for (int d = 0; d < l->ndim; d++)
                if (l->shard[d] == CKPT_SHARD_TP) split[i] = d;
        }
        if (split[i] >= ts[i].ndim || (split[i] >= 0 && ts[i].shape[split[i]] % tp)) {
            snprintf(err, sizeof err, "%s: tensor '%s': dimension %d (%" PRId64 ") cannot be split into tp=%d blocks",
                     pos[0], ts[i].name, split[i], split[i] >= 0 && split[i] < ts[i].ndim ? ts[i].shape[split[i]] : 0,
                     tp);
            goto fail;
        }
    }
    CkptState state = *src_state(&s);
    if (tp == 1) { /* a full checkpoint (any dp resumes from it) */
        if (ckpt_save(out, &state, ts, n, 0, err, sizeof err)) goto fail;
        printf("%s: wrote a full checkpoint (mesh dp=%d tp=1) to %s\n", pos[0], dp, out);
        rc = 0;
        goto done;
    }
    state.mesh_dp = dp;
    state.mesh_tp = tp;
    for (int r = 0; r < tp; r++) {
        state.rank = r;
        for (int i = 0; i < n; i++) {
            loc[i] = ts[i];
            loc[i].data = NULL;
            if (split[i] < 0) {
                loc[i].data = ts[i].data;
                continue;
            }
            int k = split[i];
            loc[i].shape[k] = ts[i].shape[k] / tp;
            loc[i].shard[k] = CKPT_SHARD_TP;
            loc[i].nbytes = ts[i].nbytes / (size_t)tp;
            if (!(loc[i].data = malloc(loc[i].nbytes ? loc[i].nbytes : 1))) {
                snprintf(err, sizeof err, "out of memory");
                goto fail;
            }
            int64_t off[CKPT_MAX_DIMS] = {0};
            off[k] = (int64_t)r * loc[i].shape[k];
            ckpt_mesh_block(ts[i].ndim, ts[i].shape, loc[i].shape, off, ckpt_dtype_size(ts[i].dtype), ts[i].data,
                            loc[i].data, 0);
        }
        int e = ckpt_mesh_save_shard(out, &state, r, loc, n, err, sizeof err);
        for (int i = 0; i < n; i++)
            if (split[i] >= 0) free(loc[i].data);
        if (e) goto fail;
    }
    if (ckpt_mesh_save_manifest(out, state.step, dp, tp, 0, err, sizeof err)) goto fail;
    printf("%s: wrote %d shards (mesh dp=%d tp=%d) and the manifest to %s\n", pos[0], tp, dp, tp, out);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "dpoc %s: %s\n", cmd, err);
done:
    if (step_open) dpoc_step_close(&st);
    free_all(ts, n);
    free(loc);
    free(split);
    src_close(&s);
    return rc;
}

/* `dpoc ckpt info` / `verify` of a sharded checkpoint (called by dpoc_ckpt.c
 * when the path is one): the manifest, then each shard's file. */
int dpoc_ckpt_mesh_info(const char *cmd, const char *path, int verify) {
    char err[1024];
    CkptMesh *m = ckpt_mesh_open(path, err, sizeof err);
    if (!m) return fprintf(stderr, "dpoc %s: %s\n", cmd, err), 1;
    const CkptState *s = ckpt_mesh_state(m);
    if (verify) {
        int bad = ckpt_mesh_verify(m, stderr, err, sizeof err);
        int n = 0;
        for (int i = 0; i < ckpt_mesh_nshards(m); i++) n += ckpt_ntensors(ckpt_mesh_shard(m, i));
        if (bad)
            printf("%s: %d of %d tensors are damaged\n", ckpt_mesh_path(m), bad, n);
        else
            printf("%s: OK (step %" PRIu64 ", %d shards, %d tensors)\n", ckpt_mesh_path(m), s->step, ckpt_mesh_nshards(m),
                   n);
        ckpt_mesh_close(m);
        return bad ? 1 : 0;
    }
    printf("manifest     %s\n", ckpt_mesh_path(m));
    printf("format       dpoc sharded checkpoint, version 1\n");
    printf("step         %" PRIu64 "\n", s->step);
    printf("mesh         dp=%d tp=%d (%d shard files, one per tp rank)\n", ckpt_mesh_dp(m), ckpt_mesh_tp(m),
           ckpt_mesh_nshards(m));
    printf("extra_json   %s\n", s->extra_json[0] ? s->extra_json : "(empty)");
    for (int i = 0; i < ckpt_mesh_nshards(m); i++) printf("shard tp=%d   %s\n", i, ckpt_path(ckpt_mesh_shard(m, i)));
    printf("\n  %-40s  %-5s  %s\n", "name", "dtype", "full shape");
    for (int i = 0; i < ckpt_mesh_ntensors(m); i++) {
        const CkptTensor *t = ckpt_mesh_tensor(m, i);
        const CkptTensor *l = ckpt_tensor(ckpt_mesh_shard(m, 0), i);
        char shape[160];
        size_t u = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim && u < sizeof shape; d++)
            u += (size_t)snprintf(shape + u, sizeof shape - u, "%s%" PRId64 "%s", d ? "," : "", t->shape[d],
                                  l->shard[d] == CKPT_SHARD_TP ? "@tp" : "");
        if (u < sizeof shape) snprintf(shape + u, sizeof shape - u, "]");
        printf("  %-40s  %-5s  %s\n", t->name, ckpt_dtype_name(t->dtype), shape);
    }
    ckpt_mesh_close(m);
    return 0;
}
