/* cfg_mesh.c — the dp x tp mesh of a model: `parallel:` in the YAML, the
 * `--mesh dp=D,tp=T` text of `dpoc compile`, and the divisibility check.
 *
 * The mesh is D data-parallel ranks times T tensor-parallel ranks. `pairs`
 * in `train:` stays the micro-batch of ONE dp rank (as the per-device batch
 * of MindRLHF/XTuner): the compiler builds the global graph over D * pairs
 * and the shard pass cuts it back to one rank. Tensor parallelism splits
 * attention heads, kv heads, the MLP's intermediate size and the
 * vocabulary over T, so each must be a multiple of T; the check names the
 * module (by its YAML position) and the sizes when one is not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_internal.h"

enum { MESH_MAX = 4096 };

int mesh_cfg_read(YDoc *d, yaml_node_t *n, SrcLoc at, ModelCfg *cfg, char *err, size_t errlen) {
    static const char *const keys[] = {"dp", "tp"};
    yaml_node_t *v[2];
    cfg->parallel_loc = at;
    if (ynode_is_null(n)) return fe_error(err, errlen, at, "expected a mapping with dp and/or tp for 'parallel', got nothing");
    if (ymap_read(d, n, "'parallel'", keys, 2, v, NULL, err, errlen)) return -1;
    if (v[0] && yread_pos_int(d, v[0], "'dp'", MESH_MAX, &cfg->mesh_dp, err, errlen)) return -1;
    if (v[1] && yread_pos_int(d, v[1], "'tp'", MESH_MAX, &cfg->mesh_tp, err, errlen)) return -1;
    return 0;
}

int model_mesh_parse(const char *text, int64_t *dp, int64_t *tp, char *err, size_t errlen) {
    int64_t val[2] = {1, 1};
    int seen[2] = {0, 0};
    const char *p = text;
    if (!*p) goto bad;
    while (*p) {
        int k;
        if (strncmp(p, "dp=", 3) == 0) k = 0;
        else if (strncmp(p, "tp=", 3) == 0) k = 1;
        else goto bad;
        if (seen[k]) {
            snprintf(err, errlen, "--mesh '%s': %s given twice", text, k ? "tp" : "dp");
            return -1;
        }
        seen[k] = 1;
        p += 3;
        if (*p < '0' || *p > '9') goto bad;
        char *end;
        long long x = strtoll(p, &end, 10);
        if (x < 1 || x > MESH_MAX) {
            snprintf(err, errlen, "--mesh '%s': %s must be in 1..%d", text, k ? "tp" : "dp", MESH_MAX);
            return -1;
        }
        val[k] = x;
        p = end;
        if (*p == ',') {
            p++;
            if (!*p) goto bad;
        } else if (*p) {
            goto bad;
        }
    }
    *dp = val[0];
    *tp = val[1];
    return 0;
bad:
    snprintf(err, errlen, "--mesh '%s': expected dp=D,tp=T (positive integers, e.g. dp=2,tp=2)", text);
    return -1;
}

static int check_div(const char *what, int64_t n, int64_t tp, SrcLoc at, char *err, size_t errlen) {
    if (n % tp == 0) return 0;
    return fe_error(err, errlen, at, "%s is %lld, which tp=%lld does not divide", what, (long long)n, (long long)tp);
}

int model_mesh_check(const ModelCfg *cfg, int64_t dp, int64_t tp, char *err, size_t errlen) {
    (void)dp;
    if (tp <= 1) return 0;
    if (check_div("vocab_size", cfg->vocab_size, tp, cfg->embedding.loc, err, errlen)) return -1;
    for (int b = 0; b < cfg->nblocks; b++)
        for (int gi = 0; gi < cfg->blocks[b].ngroups; gi++)
            for (int mi = 0; mi < cfg->blocks[b].groups[gi].nmods; mi++) {
                const ModuleCfg *m = &cfg->blocks[b].groups[gi].mods[mi];
                if (m->kind == MOD_ATTENTION) {
                    if (check_div("attention heads", m->heads, tp, m->loc, err, errlen)) return -1;
                    if (check_div("attention kv_heads", m->kv_heads, tp, m->loc, err, errlen)) return -1;
                } else if (m->kind == MOD_MLP) {
                    if (check_div("mlp intermediate_size", m->intermediate_size, tp, m->loc, err, errlen)) return -1;
                }
            }
    return 0;
}
