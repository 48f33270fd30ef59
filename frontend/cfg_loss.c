/* cfg_loss.c — the model's `loss:` entry and the loss files it can use.
 *
 * A loss is a name, hyper-parameters (`params:`, name -> number), optional
 * named sub-expressions (`let:`, in order) and the expression (`expr:`).
 * The model either writes these inline, or says `use: NAME` to take them
 * from a loss file (the same keys, models/losses/NAME.yaml) and overrides
 * some of the file's params with its own `params:`. `loss: NAME` alone is
 * `use: NAME` with the file's defaults. A `use:` name is looked up in
 * losses/ next to the model, then among the shipped losses (DPOC_LOSS_DIR,
 * the source tree's models/losses); a value with a '/' or ending in .yaml
 * is a path relative to the model's directory.
 *
 * Texts keep a byte-to-position map (ytext_map), so the expression parser
 * reports errors at the exact column inside the file the text came from.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fe_internal.h"

#ifndef DPOC_LOSS_DIR
#define DPOC_LOSS_DIR ""
#endif

static int is_ident(const char *s) {
    if (!isalpha((unsigned char)*s) && *s != '_') return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return 0;
    return 1;
}

void loss_cfg_free(LossCfg *l) {
    for (int i = 0; i < l->nparams; i++) free(l->params[i].name);
    free(l->params);
    for (int i = 0; i < l->nlets; i++) {
        free(l->lets[i].name);
        loss_text_free(&l->lets[i].expr);
    }
    free(l->lets);
    loss_text_free(&l->expr);
    free(l->name);
    free(l->path);
    free(l->use);
    memset(l, 0, sizeof *l);
}

static int check_new_name(YDoc *d, yaml_node_t *k, const LossCfg *l, const char *what, char *err, size_t errlen) {
    const char *s = yscalar(k);
    if (!is_ident(s))
        return fe_error(err, errlen, ydoc_loc(d, k), "%s name '%s' is not a name (letters, digits and _, not starting with a digit)",
                        what, s);
    if (loss_name_reserved(s))
        return fe_error(err, errlen, ydoc_loc(d, k), "%s name '%s' is a built-in name of the loss language", what, s);
    for (int i = 0; i < l->nparams; i++)
        if (!strcmp(l->params[i].name, s))
            return fe_error(err, errlen, ydoc_loc(d, k), "%s name '%s' is already a parameter", what, s);
    return 0;
}

static int read_params(YDoc *d, yaml_node_t *n, LossCfg *l, char *err, size_t errlen) {
    if (ynode_is_null(n)) return 0;
    if (ymap_check(d, n, "'params'", err, errlen)) return -1;
    int np = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    l->params = calloc((size_t)np + 1, sizeof *l->params);
    if (!l->params) return fe_error(err, errlen, ydoc_loc(d, n), "out of memory");
    for (int i = 0; i < np; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = ydoc_node(d, p->key), *v = ydoc_node(d, p->value);
        if (check_new_name(d, k, l, "parameter", err, errlen)) return -1;
        char what[96];
        snprintf(what, sizeof what, "'%.80s'", yscalar(k));
        LossParam *lp = &l->params[l->nparams];
        if (yread_num(d, v, what, &lp->value, err, errlen)) return -1;
        lp->loc = ydoc_loc(d, v);
        if (!(lp->name = fe_strdup(yscalar(k)))) return fe_error(err, errlen, lp->loc, "out of memory");
        l->nparams++;
    }
    return 0;
}

static int read_lets(YDoc *d, yaml_node_t *n, LossCfg *l, char *err, size_t errlen) {
    if (ynode_is_null(n)) return 0;
    if (ymap_check(d, n, "'let'", err, errlen)) return -1;
    int nl = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    l->lets = calloc((size_t)nl + 1, sizeof *l->lets);
    if (!l->lets) return fe_error(err, errlen, ydoc_loc(d, n), "out of memory");
    for (int i = 0; i < nl; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = ydoc_node(d, p->key), *v = ydoc_node(d, p->value);
        if (check_new_name(d, k, l, "let", err, errlen)) return -1;
        char what[96];
        snprintf(what, sizeof what, "'%.80s'", yscalar(k));
        const char *s;
        if (yread_str(d, v, what, &s, err, errlen)) return -1;
        LossLet *lt = &l->lets[l->nlets];
        lt->loc = ydoc_loc(d, k);
        if (!(lt->name = fe_strdup(yscalar(k)))) return fe_error(err, errlen, lt->loc, "out of memory");
        l->nlets++;
        if (ytext_map(d, v, &lt->expr, err, errlen)) return -1;
    }
    return 0;
}

static int read_expr(YDoc *d, yaml_node_t *n, SrcLoc kloc, LossCfg *l, char *err, size_t errlen) {
    if (!n) return fe_error(err, errlen, kloc, "the loss is missing the required key 'expr'");
    const char *s;
    if (yread_str(d, n, "'expr'", &s, err, errlen)) return -1;
    return ytext_map(d, n, &l->expr, err, errlen);
}

/* name/params/let/expr of a loss file's root (or of an inline loss). */
enum { K_NAME, K_PARAMS, K_LET, K_EXPR, K_USE, K_COUNT };
static const char *const loss_keys[K_COUNT] = {"name", "params", "let", "expr", "use"};

static int read_body(YDoc *d, yaml_node_t **v, SrcLoc at, const char *default_name, LossCfg *l, char *err, size_t errlen) {
    const char *name = default_name;
    if (v[K_NAME] && yread_str(d, v[K_NAME], "'name'", &name, err, errlen)) return -1;
    if (!(l->name = fe_strdup(name))) return fe_error(err, errlen, at, "out of memory");
    if (read_params(d, v[K_PARAMS], l, err, errlen)) return -1;
    if (read_lets(d, v[K_LET], l, err, errlen)) return -1;
    return read_expr(d, v[K_EXPR], at, l, err, errlen);
}

/* ---- use: -------------------------------------------------------------------- */

static char *join(const char *dir, const char *a, const char *b, const char *c) {
    size_t n = strlen(dir) + strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s%s", dir, a, b, c);
    return p;
}

/* The loss file for `use`, or NULL (with *oom set when allocation failed). */
static char *find_loss_file(const char *model_path, const char *use, int *oom) {
    *oom = 0;
    const char *slash = strrchr(model_path, '/');
    size_t dl = slash ? (size_t)(slash - model_path + 1) : 0;
    char *dir = malloc(dl + 1);
    if (!dir) {
        *oom = 1;
        return NULL;
    }
    memcpy(dir, model_path, dl);
    dir[dl] = 0;
    size_t ul = strlen(use);
    char *cand = NULL;
    if (strchr(use, '/') || (ul > 5 && !strcmp(use + ul - 5, ".yaml"))) {
        cand = use[0] == '/' ? fe_strdup(use) : join(dir, use, "", "");
    } else {
        cand = join(dir, "losses/", use, ".yaml");
        if (cand && access(cand, R_OK) != 0 && DPOC_LOSS_DIR[0]) {
            free(cand);
            cand = join(DPOC_LOSS_DIR, "/", use, ".yaml");
        }
    }
    free(dir);
    if (!cand) {
        *oom = 1;
        return NULL;
    }
    if (access(cand, R_OK) != 0) {
        free(cand);
        return NULL;
    }
    return cand;
}

/* The stem of a path: "models/losses/ipo.yaml" -> "ipo". */
static void path_stem(const char *path, char *buf, size_t len) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".yaml")) n -= 5;
    snprintf(buf, len, "%.*s", (int)n, b);
}

static int load_use(YDoc *d, yaml_node_t *usev, LossCfg *l, char *err, size_t errlen) {
    const char *use;
    if (yread_str(d, usev, "'use'", &use, err, errlen)) return -1;
    size_t ul = strlen(use);
    int is_path = strchr(use, '/') || (ul > 5 && !strcmp(use + ul - 5, ".yaml"));
    if (!is_path && !is_ident(use))
        return fe_error(err, errlen, ydoc_loc(d, usev), "expected a loss name or a path ending in .yaml for 'use', got '%s'", use);
    if (!(l->use = fe_strdup(use))) return fe_error(err, errlen, ydoc_loc(d, usev), "out of memory");
    int oom;
    l->path = find_loss_file(d->file, use, &oom);
    if (!l->path) {
        if (oom) return fe_error(err, errlen, ydoc_loc(d, usev), "out of memory");
        if (is_path) return fe_error(err, errlen, ydoc_loc(d, usev), "cannot read the loss file '%s'", use);
        return fe_error(err, errlen, ydoc_loc(d, usev),
                        "unknown loss '%s': no losses/%s.yaml next to the model or among the shipped losses", use, use);
    }
    size_t len;
    char ferr[512];
    char *text = fe_read_file(l->path, &len, ferr, sizeof ferr);
    if (!text) return fe_error(err, errlen, ydoc_loc(d, usev), "cannot read the loss file: %s", ferr);
    YDoc ld;
    int rc = -1;
    if (ydoc_load(&ld, text, len, l->path, err, errlen)) goto done;
    yaml_node_t *v[K_COUNT];
    SrcLoc kl[K_COUNT];
    yaml_node_t *root = ydoc_root(&ld);
    if (ymap_read(&ld, root, "a loss file", loss_keys, K_COUNT - 1, v, kl, err, errlen)) goto done;
    v[K_USE] = NULL;
    char stem[128];
    path_stem(l->path, stem, sizeof stem);
    rc = read_body(&ld, v, ydoc_loc(&ld, root), stem, l, err, errlen);
done:
    ydoc_free(&ld);
    free(text);
    return rc;
}

/* The model's params: override the loss file's; each must be declared there. */
static int override_params(YDoc *d, yaml_node_t *n, LossCfg *l, char *err, size_t errlen) {
    if (ynode_is_null(n)) return 0;
    if (ymap_check(d, n, "'params'", err, errlen)) return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(d, p->key), *v = ydoc_node(d, p->value);
        const char *ks = yscalar(k);
        LossParam *lp = NULL;
        for (int i = 0; i < l->nparams; i++)
            if (!strcmp(l->params[i].name, ks)) lp = &l->params[i];
        if (!lp) {
            char list[256];
            size_t o = 0;
            list[0] = 0;
            for (int i = 0; i < l->nparams && o < sizeof list; i++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", l->params[i].name);
            return fe_error(err, errlen, ydoc_loc(d, k), "unknown parameter '%s' for loss '%s'; it declares: %s", ks, l->name,
                            l->nparams ? list : "none");
        }
        char what[96];
        snprintf(what, sizeof what, "'%.80s'", ks);
        if (yread_num(d, v, what, &lp->value, err, errlen)) return -1;
        lp->loc = ydoc_loc(d, v);
    }
    return 0;
}

int loss_cfg_read(YDoc *d, yaml_node_t *n, SrcLoc at, LossCfg *l, char *err, size_t errlen) {
    memset(l, 0, sizeof *l);
    l->loc = at;
    if (n->type == YAML_SCALAR_NODE && !ynode_is_null(n)) return load_use(d, n, l, err, errlen);
    if (n->type != YAML_MAPPING_NODE) {
        char got[96];
        ynode_desc(n, got, sizeof got);
        return fe_error(err, errlen, ynode_is_null(n) ? at : ydoc_loc(d, n),
                        "expected a loss name, or a mapping with use/params or name/params/let/expr, for 'loss', got %s", got);
    }
    yaml_node_t *v[K_COUNT];
    SrcLoc kl[K_COUNT];
    if (ymap_read(d, n, "'loss'", loss_keys, K_COUNT, v, kl, err, errlen)) return -1;
    if (v[K_USE]) {
        for (int k = K_NAME; k <= K_EXPR; k++)
            if (k != K_PARAMS && v[k])
                return fe_error(err, errlen, kl[k], "'%s' cannot be combined with 'use' (the loss file defines it)", loss_keys[k]);
        if (load_use(d, v[K_USE], l, err, errlen)) return -1;
        return override_params(d, v[K_PARAMS], l, err, errlen);
    }
    if (!(l->path = fe_strdup(d->file))) return fe_error(err, errlen, at, "out of memory");
    return read_body(d, v, at, "custom", l, err, errlen);
}
