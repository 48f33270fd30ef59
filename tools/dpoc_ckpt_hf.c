/* dpoc_ckpt_hf.c — `dpoc ckpt import` and `dpoc ckpt export-hf`.
 *
 * import: opens the step.so (its tensor table gives every parameter's name
 * and shape), reads the Hugging Face safetensors of DIR (one file or shards;
 * the architecture from DIR/config.json unless --arch), fills the step's
 * parameters through hf_import and saves them as a dpoc checkpoint of step
 * 0 (config_hash of the step) that `dporun --init` starts from.
 * export-hf: opens the step, loads the checkpoint's parameters into it,
 * and writes OUT_DIR/model.safetensors (or shards and the index) in the
 * chosen dtype, OUT_DIR/config.json from the manifest's config, and copies
 * the tokenizer files of --tokenizer DIR. Exit status 0, 1 on an error, 2
 * on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpoc_cli.h"
#include "runtime/ckpt.h"
#include "runtime/hf_map.h"
#include "runtime/safetensors.h"
#include "runtime/step_load.h"
#include "runtime/train_hash.h"
#include "runtime/train_params.h"

int dpoc_ckpt_cmd_import(const char *cmd, const char *synopsis, int argc, char **argv);
int dpoc_ckpt_cmd_export_hf(const char *cmd, const char *synopsis, int argc, char **argv);

static int open_step(DpocStep *s, const char *path, char *err, size_t errlen) {
    char local[4096];
    if (!strchr(path, '/') && (size_t)snprintf(local, sizeof local, "./%s", path) < sizeof local) path = local;
    return dpoc_step_open(s, path, err, errlen);
}

static int pick_arch(const char *given, const char *hf_dir, const DpocStep *s, HfArch *a, const char *cmd) {
    char err[1024];
    if (given) {
        int x = hf_arch_parse(given);
        if (x < 0) {
            fprintf(stderr, "dpoc %s: --arch: expected qwen2, llama or internlm2, got '%s'\n", cmd, given);
            return 2;
        }
        *a = (HfArch)x;
        return 0;
    }
    if (s) {
        *a = hf_arch_guess(s);
        return 0;
    }
    if (hf_arch_from_config(hf_dir, a, err, sizeof err)) {
        fprintf(stderr, "dpoc %s: %s\n", cmd, err);
        return 1;
    }
    return 0;
}

int dpoc_ckpt_cmd_import(const char *cmd, const char *synopsis, int argc, char **argv) {
    const char *hf = NULL, *step = NULL, *out = NULL, *arch = NULL;
    DpocOpt opts[] = {
        {"hf", 0, OPT_STRING, &hf, NULL, 0, "DIR: Hugging Face model (safetensors + config.json)"},
        {"step", 0, OPT_STRING, &step, NULL, 0, "STEP.so: the compiled step whose parameters to fill"},
        {"output", 'o', OPT_STRING, &out, NULL, 0, "CKPT_DIR: the checkpoint directory to write (step 0)"},
        {"arch", 0, OPT_STRING, &arch, NULL, 0, "qwen2|llama|internlm2 (default: config.json's model_type)"},
    };
    const char *pos[1];
    int n = dpoc_opts_parse(cmd, synopsis, opts, 4, argc, argv, pos, 1);
    if (n == -2) return 0;
    if (n < 0) return 2;
    if (n > 0 || !hf || !step || !out) {
        fprintf(stderr, "dpoc %s: usage: dpoc %s %s\n", cmd, cmd, synopsis);
        return 2;
    }
    HfArch a;
    int rc = pick_arch(arch, hf, NULL, &a, cmd);
    if (rc) return rc;
    char err[1024];
    DpocStep s;
    if (open_step(&s, step, err, sizeof err)) {
        fprintf(stderr, "dpoc %s: %s\n", cmd, err);
        return 1;
    }
    rc = 1;
    CkptTensor *t = NULL;
    StSet *st = st_open(hf, err, sizeof err);
    if (!st || hf_import(&s, st, a, err, sizeof err)) goto fail;
    t = calloc((size_t)(s.ntensors ? s.ntensors : 1), sizeof *t);
    if (!t) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    int nt = 0;
    for (int i = 0; i < s.ntensors; i++) {
        const DpocTensorInfo *ti = &s.tensors[i];
        if (ti->role != DPOC_ROLE_PARAM) continue;
        CkptTensor *c = &t[nt++];
        snprintf(c->name, sizeof c->name, "%s", ti->name);
        c->dtype = CKPT_F32;
        c->ndim = (uint8_t)ti->ndim;
        for (int d = 0; d < ti->ndim; d++) c->shape[d] = ti->shape[d];
        c->data = s.regions[ti->region] + ti->offset;
        c->nbytes = (size_t)ti->nbytes;
    }
    CkptState cs;
    memset(&cs, 0, sizeof cs);
    cs.config_hash = train_config_hash(&s);
    cs.mesh_dp = cs.mesh_tp = 1;
    snprintf(cs.extra_json, sizeof cs.extra_json, "{\"imported_from\":\"huggingface\",\"arch\":\"%s\"}", hf_arch_name(a));
    if (ckpt_save(out, &cs, t, nt, 0, err, sizeof err)) goto fail;
    printf("%s: %d tensors imported from %s (%s)\n", out, nt, hf, hf_arch_name(a));
    rc = 0;
fail:
    if (rc) fprintf(stderr, "dpoc %s: %s\n", cmd, err);
    free(t);
    st_close(st);
    dpoc_step_close(&s);
    return rc;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen) {
    FILE *in = fopen(from, "rb");
    if (!in) return snprintf(err, errlen, "%.900s: cannot open: %m", from), -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    FILE *o = fopen(tmp, "wb");
    if (!o) {
        fclose(in);
        return snprintf(err, errlen, "%.900s: cannot create: %m", tmp), -1;
    }
    char buf[65536];
    size_t r;
    int bad = 0;
    while (!bad && (r = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, r, o) != r;
    bad |= ferror(in);
    fclose(in);
    bad |= fflush(o) || fsync(fileno(o));
    bad |= fclose(o) != 0;
    if (bad || rename(tmp, to)) {
        unlink(tmp);
        return snprintf(err, errlen, "%.900s: cannot write: %m", to), -1;
    }
    return 0;
}

int dpoc_ckpt_cmd_export_hf(const char *cmd, const char *synopsis, int argc, char **argv) {
    const char *step = NULL, *dtype = "f32", *shard = NULL, *tok = NULL, *arch = NULL;
    DpocOpt opts[] = {
        {"step", 0, OPT_STRING, &step, NULL, 0, "STEP.so: the compiled step the checkpoint belongs to"},
        {"dtype", 0, OPT_STRING, &dtype, NULL, 0, "f32|bf16|f16 (default f32)"},
        {"max-shard-size", 0, OPT_STRING, &shard, NULL, 0, "SIZE: split into shards of at most SIZE (e.g. 2GB)"},
        {"tokenizer", 0, OPT_STRING, &tok, NULL, 0, "DIR: copy its tokenizer files"},
        {"arch", 0, OPT_STRING, &arch, NULL, 0, "qwen2|llama|internlm2 (default: from the step)"},
    };
    const char *pos[2];
    int n = dpoc_opts_parse(cmd, synopsis, opts, 5, argc, argv, pos, 2);
    if (n == -2) return 0;
    if (n < 0) return 2;
    if (n != 2 || !step) {
        fprintf(stderr, "dpoc %s: usage: dpoc %s %s\n", cmd, cmd, synopsis);
        return 2;
    }
    int dt = st_dtype_parse(dtype);
    if (dt < 0) {
        fprintf(stderr, "dpoc %s: --dtype: expected f32, bf16 or f16, got '%s'\n", cmd, dtype);
        return 2;
    }
    uint64_t max_shard = 0;
    if (shard && (st_parse_size(shard, &max_shard) || max_shard == 0)) {
        fprintf(stderr, "dpoc %s: --max-shard-size: expected a size such as 2GB or 500MB, got '%s'\n", cmd, shard);
        return 2;
    }
    char err[1024];
    DpocStep s;
    if (open_step(&s, step, err, sizeof err)) {
        fprintf(stderr, "dpoc %s: %s\n", cmd, err);
        return 1;
    }
    HfArch a;
    int rc = pick_arch(arch, NULL, &s, &a, cmd);
    if (rc) {
        dpoc_step_close(&s);
        return rc;
    }
    rc = 1;
    HfExport ex = {0};
    Ckpt *c = ckpt_open(pos[0], err, sizeof err);
    if (!c || train_load_role(&s, c, DPOC_ROLE_PARAM, "", err, sizeof err)) goto fail;
    if (hf_export(&s, a, &ex, err, sizeof err)) goto fail;
    if (st_write(pos[1], ex.t, ex.n, (StDType)dt, max_shard, err, sizeof err)) goto fail;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", pos[1]);
    if (hf_write_config(&s, a, (StDType)dt, path, err, sizeof err)) goto fail;
    if (tok) {
        static const char *files[] = {"tokenizer.json",          "tokenizer_config.json", "vocab.json",
                                      "merges.txt",              "special_tokens_map.json", "tokenizer.model",
                                      "generation_config.json", "added_tokens.json"};
        int copied = 0;
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            char from[4096];
            snprintf(from, sizeof from, "%s/%s", tok, files[i]);
            if (access(from, F_OK)) continue;
            snprintf(path, sizeof path, "%s/%s", pos[1], files[i]);
            if (copy_file(from, path, err, sizeof err)) goto fail;
            copied++;
        }
        if (!copied) {
            snprintf(err, sizeof err, "%s: no tokenizer files (tokenizer.json, vocab.json + merges.txt, ...)", tok);
            goto fail;
        }
    }
    printf("%s: %d tensors written as %s (%s)\n", pos[1], ex.n, st_dtype_name((StDType)dt), hf_arch_name(a));
    rc = 0;
fail:
    if (rc) fprintf(stderr, "dpoc %s: %s\n", cmd, err);
    hf_export_free(&ex);
    ckpt_close(c);
    dpoc_step_close(&s);
    return rc;
}
