/* dpoc_models.c — `dpoc list-models` and `dpoc copy-model` (XTuner's list-cfg
 * and copy-cfg) over the model YAMLs built into the binary (dpoc_models.h).
 *
 * A built-in model is every embedded YAML outside losses/; its name is the
 * file's stem ("zoo/qwen2-0.5b.yaml" -> "qwen2-0.5b"). To report a parameter
 * count the YAML is loaded by the front end like any user file: the embedded
 * loss files are written into a private temporary directory as losses/NAME.yaml
 * and the model next to them, so `loss: {use: NAME}` resolves to the shipped
 * bytes without the source tree. The family comes from a `# family:` comment
 * line, else from the name (qwen2, llama, internlm2), else from the shape
 * (q/k/v biases: qwen2; none: llama); the description is the first comment
 * line with its "NAME — " prefix removed.
 *
 * copy-model writes the exact shipped bytes to DIR/NAME.yaml (temporary
 * name, fsync, rename; an existing file is kept unless --force). When the
 * model takes a shipped loss by name it also writes DIR/losses/NAME.yaml, the
 * first place the front end looks, so the copy loads anywhere.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpoc_cli.h"
#include "dpoc_models.h"
#include "frontend/frontend.h"

const DpocEmbeddedFile *dpoc_embedded_find(const char *path) {
    for (size_t i = 0; i < dpoc_embedded_count; i++)
        if (!strcmp(dpoc_embedded_files[i].path, path)) return &dpoc_embedded_files[i];
    return NULL;
}

static int is_loss(const DpocEmbeddedFile *f) { return !strncmp(f->path, "losses/", 7); }

/* "zoo/qwen2-0.5b.yaml" -> "qwen2-0.5b" */
static void stem_of(const char *path, char *buf, size_t len) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".yaml")) n -= 5;
    snprintf(buf, len, "%.*s", (int)n, b);
}

static const DpocEmbeddedFile *find_model(const char *name) {
    char stem[256];
    for (size_t i = 0; i < dpoc_embedded_count; i++) {
        if (is_loss(&dpoc_embedded_files[i])) continue;
        stem_of(dpoc_embedded_files[i].path, stem, sizeof stem);
        if (!strcmp(stem, name)) return &dpoc_embedded_files[i];
    }
    return NULL;
}

/* Writes len bytes to path through path.tmp.PID, fsync and rename. 0 or -1 + err. */
static int write_atomic(const char *path, const unsigned char *data, size_t len, char *err, size_t errlen) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "cannot create '%.900s': %s", tmp, strerror(errno));
        return -1;
    }
    int ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(e));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A private directory holding losses/NAME.yaml, for loading embedded models. */
typedef struct Scratch {
    char dir[512];
    char losses[560];
} Scratch;

static void scratch_remove(Scratch *s) {
    char p[1024];
    for (size_t i = 0; i < dpoc_embedded_count; i++)
        if (is_loss(&dpoc_embedded_files[i])) {
            snprintf(p, sizeof p, "%s/%s", s->dir, dpoc_embedded_files[i].path);
            unlink(p);
        }
    rmdir(s->losses);
    rmdir(s->dir);
}

static int scratch_make(Scratch *s, char *err, size_t errlen) {
    const char *t = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/dpoc-models-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(s->dir)) {
        snprintf(err, errlen, "cannot create a temporary directory in '%s': %s", t && *t ? t : "/tmp", strerror(errno));
        return -1;
    }
    snprintf(s->losses, sizeof s->losses, "%s/losses", s->dir);
    if (mkdir(s->losses, 0700) != 0) {
        snprintf(err, errlen, "cannot create '%s': %s", s->losses, strerror(errno));
        rmdir(s->dir);
        return -1;
    }
    char p[1024];
    for (size_t i = 0; i < dpoc_embedded_count; i++) {
        const DpocEmbeddedFile *f = &dpoc_embedded_files[i];
        if (!is_loss(f)) continue;
        snprintf(p, sizeof p, "%s/%s", s->dir, f->path);
        if (write_atomic(p, f->data, f->len, err, errlen)) {
            scratch_remove(s);
            return -1;
        }
    }
    return 0;
}

/* Loads an embedded model through the scratch directory. */
static int load_embedded(Scratch *s, const DpocEmbeddedFile *f, ModelCfg *cfg, char *err, size_t errlen) {
    char stem[256], p[1024];
    stem_of(f->path, stem, sizeof stem);
    snprintf(p, sizeof p, "%s/%s.yaml", s->dir, stem);
    memset(cfg, 0, sizeof *cfg);
    if (write_atomic(p, f->data, f->len, err, errlen)) return -1;
    int rc = model_cfg_load(p, cfg, err, errlen);
    unlink(p);
    return rc;
}

/* The value of a "# KEY:" comment line, or the first comment line (key NULL). */
static void comment_line(const DpocEmbeddedFile *f, const char *key, char *buf, size_t len) {
    buf[0] = 0;
    const char *t = (const char *)f->data, *end = t + f->len;
    while (t < end) {
        const char *nl = memchr(t, '\n', (size_t)(end - t));
        size_t n = nl ? (size_t)(nl - t) : (size_t)(end - t);
        if (n >= 2 && t[0] == '#' && t[1] == ' ') {
            const char *c = t + 2;
            size_t cn = n - 2;
            if (!key) {
                snprintf(buf, len, "%.*s", (int)cn, c);
                return;
            }
            size_t kl = strlen(key);
            if (cn > kl + 1 && !strncmp(c, key, kl) && c[kl] == ':') {
                c += kl + 1;
                cn -= kl + 1;
                while (cn && *c == ' ') c++, cn--;
                snprintf(buf, len, "%.*s", (int)cn, c);
                return;
            }
        }
        t = nl ? nl + 1 : end;
    }
}

static void describe(const DpocEmbeddedFile *f, const ModelCfg *cfg, char *family, size_t flen, char *desc, size_t dlen) {
    char stem[256];
    stem_of(f->path, stem, sizeof stem);
    comment_line(f, "family", family, flen);
    if (!family[0]) {
        int qkv_bias = 0;
        for (int b = 0; b < cfg->nblocks; b++)
            for (int g = 0; g < cfg->blocks[b].ngroups; g++)
                for (int m = 0; m < cfg->blocks[b].groups[g].nmods; m++)
                    if (cfg->blocks[b].groups[g].mods[m].kind == MOD_ATTENTION && cfg->blocks[b].groups[g].mods[m].qkv_bias)
                        qkv_bias = 1;
        const char *fam = strstr(stem, "internlm2") ? "internlm2"
                          : strstr(stem, "llama")   ? "llama"
                          : strstr(stem, "qwen2")   ? "qwen2"
                          : qkv_bias                ? "qwen2"
                                                    : "llama";
        snprintf(family, flen, "%s", fam);
    }
    /* the first comment paragraph, joined, up to its first ':', ';' or '.' outside parentheses */
    char para[1024];
    size_t pn = 0;
    const char *t = (const char *)f->data, *end = t + f->len;
    while (t < end && t[0] == '#') {
        const char *nl = memchr(t, '\n', (size_t)(end - t));
        size_t n = nl ? (size_t)(nl - t) : (size_t)(end - t);
        if (n < 3 || t[1] != ' ') break;
        for (size_t i = 2; i < n && pn + 2 < sizeof para; i++) para[pn++] = t[i];
        para[pn++] = ' ';
        t = nl ? nl + 1 : end;
    }
    para[pn] = 0;
    const char *d = para;
    size_t sl = strlen(stem);
    if (!strncmp(d, stem, sl) && !strncmp(d + sl, " \xe2\x80\x94 ", 5)) d += sl + 5; /* "NAME — " */
    else if (!strncmp(d, stem, sl) && !strncmp(d + sl, " - ", 3)) d += sl + 3;
    size_t o = 0;
    int depth = 0;
    for (; d[o]; o++) {
        if (d[o] == '(') depth++;
        else if (d[o] == ')') depth--;
        else if (depth <= 0 && (d[o] == ':' || d[o] == ';' || (d[o] == '.' && d[o + 1] == ' '))) break;
    }
    while (o && d[o - 1] == ' ') o--;
    snprintf(desc, dlen, "%.*s", (int)o, d);
}

/* 494032768 -> "494,032,768" */
static void with_commas(long long v, char *buf, size_t len) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
}

static void print_known(FILE *f) {
    char stem[256];
    int first = 1;
    for (size_t i = 0; i < dpoc_embedded_count; i++) {
        if (is_loss(&dpoc_embedded_files[i])) continue;
        stem_of(dpoc_embedded_files[i].path, stem, sizeof stem);
        fprintf(f, "%s%s", first ? "" : ", ", stem);
        first = 0;
    }
}

int dpoc_cmd_list_models(int argc, char **argv) {
    const char *pos[1];
    int n = dpoc_opts_parse("list-models", "", NULL, 0, argc, argv, pos, 0);
    if (n == -2) return 0;
    if (n < 0) return 2;
    char err[1024];
    Scratch s;
    if (scratch_make(&s, err, sizeof err)) {
        fprintf(stderr, "dpoc list-models: %s\n", err);
        return 1;
    }
    int status = 0;
    printf("%-22s %-10s %15s  %s\n", "NAME", "FAMILY", "PARAMETERS", "DESCRIPTION");
    for (size_t i = 0; i < dpoc_embedded_count; i++) {
        const DpocEmbeddedFile *f = &dpoc_embedded_files[i];
        if (is_loss(f)) continue;
        char stem[256], family[64], desc[512], count[40];
        stem_of(f->path, stem, sizeof stem);
        ModelCfg cfg;
        if (load_embedded(&s, f, &cfg, err, sizeof err)) {
            fprintf(stderr, "dpoc list-models: built-in model %s: %s\n", f->path, err);
            model_cfg_free(&cfg);
            status = 1;
            continue;
        }
        describe(f, &cfg, family, sizeof family, desc, sizeof desc);
        with_commas((long long)model_cfg_param_count(&cfg), count, sizeof count);
        printf("%-22s %-10s %15s  %s\n", stem, family, count, desc);
        model_cfg_free(&cfg);
    }
    scratch_remove(&s);
    return status;
}

static int same_bytes(const char *path, const DpocEmbeddedFile *f) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    int same = 1;
    size_t i = 0;
    int c;
    while ((c = fgetc(fp)) != EOF) {
        if (i >= f->len || (unsigned char)c != f->data[i]) {
            same = 0;
            break;
        }
        i++;
    }
    fclose(fp);
    return same && i == f->len;
}

int dpoc_cmd_copy_model(int argc, char **argv) {
    int force = 0;
    DpocOpt opts[] = {
        {"force", 'f', OPT_FLAG, NULL, &force, 0, "overwrite an existing DIR/NAME.yaml (and DIR/losses/LOSS.yaml)"},
    };
    const char *pos[2];
    int n = dpoc_opts_parse("copy-model", "NAME [DIR]", opts, 1, argc, argv, pos, 2);
    if (n == -2) return 0;
    if (n < 0) return 2;
    if (n < 1) {
        fprintf(stderr, "dpoc copy-model: expected a model name (usage: dpoc copy-model NAME [DIR]; 'dpoc list-models' lists them)\n");
        return 2;
    }
    const char *name = pos[0], *dir = n > 1 ? pos[1] : ".";
    const DpocEmbeddedFile *f = find_model(name);
    if (!f) {
        fprintf(stderr, "dpoc copy-model: unknown model '%s'; known models: ", name);
        print_known(stderr);
        fprintf(stderr, "\n");
        return 1;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "dpoc copy-model: '%s' is not a directory\n", dir);
        return 1;
    }
    char stem[256], out[4096], err[1024];
    stem_of(f->path, stem, sizeof stem);
    snprintf(out, sizeof out, "%s/%s.yaml", dir, stem);
    if (!force && access(out, F_OK) == 0) {
        fprintf(stderr, "dpoc copy-model: '%s' already exists (use --force to overwrite it)\n", out);
        return 1;
    }

    /* which shipped loss, if any, the model takes by name */
    Scratch s;
    if (scratch_make(&s, err, sizeof err)) {
        fprintf(stderr, "dpoc copy-model: %s\n", err);
        return 1;
    }
    ModelCfg cfg;
    int rc = load_embedded(&s, f, &cfg, err, sizeof err);
    scratch_remove(&s);
    if (rc) {
        fprintf(stderr, "dpoc copy-model: built-in model %s: %s\n", f->path, err);
        model_cfg_free(&cfg);
        return 1;
    }
    const DpocEmbeddedFile *loss = NULL;
    char lpath[300];
    if (cfg.loss.use && !strchr(cfg.loss.use, '/')) {
        snprintf(lpath, sizeof lpath, "losses/%s.yaml", cfg.loss.use);
        loss = dpoc_embedded_find(lpath);
    }
    model_cfg_free(&cfg);

    if (write_atomic(out, f->data, f->len, err, sizeof err)) {
        fprintf(stderr, "dpoc copy-model: %s\n", err);
        return 1;
    }
    printf("wrote %s\n", out);
    if (loss) {
        char ldir[4096], lout[4400];
        snprintf(ldir, sizeof ldir, "%s/losses", dir);
        snprintf(lout, sizeof lout, "%s/%s", dir, loss->path);
        if (mkdir(ldir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "dpoc copy-model: cannot create '%s': %s\n", ldir, strerror(errno));
            return 1;
        }
        if (same_bytes(lout, loss)) return 0;
        if (!force && access(lout, F_OK) == 0) {
            fprintf(stderr, "dpoc copy-model: note: keeping '%s', which differs from the shipped loss (--force replaces it)\n", lout);
            return 0;
        }
        if (write_atomic(lout, loss->data, loss->len, err, sizeof err)) {
            fprintf(stderr, "dpoc copy-model: %s\n", err);
            return 1;
        }
        printf("wrote %s\n", lout);
    }
    return 0;
}
