/* dpoc_ckpt.c — `dpoc ckpt`: look at and check checkpoints.
 *
 * A table of sub-subcommands (info, verify; merge, import and export come
 * later), each a function taking the arguments after its name, as the
 * subcommands of dpoc_main.c do. `info` opens a checkpoint (a file, or a
 * directory's `latest`), which checks its header and table, and prints the
 * training state and one line per tensor. `verify` also reads every tensor,
 * checking sizes and both checksums, reports each bad tensor on stderr and
 * exits 1 if any is bad. Exit status: 0 fine, 1 a bad checkpoint, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dpoc_cli.h"
#include "runtime/ckpt.h"
#include "runtime/ckpt_mesh.h"

int dpoc_ckpt_mesh_info(const char *cmd, const char *path, int verify); /* dpoc_ckpt_mesh.c */

typedef struct CkptCommand {
    const char *name, *synopsis, *help;
    int (*run)(const char *cmd, const char *synopsis, int argc, char **argv);
} CkptCommand;

/* Parses the single CKPT|DIR argument (no options yet); returns it or NULL
 * with *rc set to the exit status. */
static const char *one_path(const char *cmd, const char *synopsis, int argc, char **argv, int *rc) {
    for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: dpoc %s %s\n\nCKPT is a checkpoint file; DIR a checkpoint directory (its 'latest' "
                   "checkpoint).\n",
                   cmd, synopsis);
            *rc = 0;
            return NULL;
        }
    const char *pos[1];
    int n = dpoc_opts_parse(cmd, synopsis, NULL, 0, argc, argv, pos, 1);
    if (n != 1) {
        if (n == 0)
            fprintf(stderr, "dpoc %s: expected a checkpoint file or directory (usage: dpoc %s %s)\n", cmd, cmd,
                    synopsis);
        *rc = 2;
        return NULL;
    }
    return pos[0];
}

static void format_shape(const CkptTensor *t, char *buf, size_t len) {
    static const char *axis[] = {"", "@dp", "@tp"};
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRId64 "%s", d ? "," : "", t->shape[d],
                                 t->shard[d] <= 2 ? axis[t->shard[d]] : "@?");
    if (used < len) snprintf(buf + used, len - used, "]");
}

static int cmd_info(const char *cmd, const char *synopsis, int argc, char **argv) {
    int rc;
    const char *path = one_path(cmd, synopsis, argc, argv, &rc);
    if (!path) return rc;
    char err[1024];
    char manifest[4096];
    if (ckpt_mesh_detect(path, manifest, sizeof manifest, err, sizeof err) == 1) return dpoc_ckpt_mesh_info(cmd, path, 0);
    Ckpt *c = ckpt_open(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "dpoc %s: %s\n", cmd, err);
        return 1;
    }
    const CkptState *s = ckpt_state(c);
    int n = ckpt_ntensors(c);
    uint64_t raw = 0, comp = 0, end = 0;
    int width = 4;
    for (int i = 0; i < n; i++) {
        const CkptStored *st = ckpt_stored(c, i);
        raw += st->rsize;
        comp += st->csize;
        end = st->offset + st->csize;
        int w = (int)strlen(ckpt_tensor(c, i)->name);
        if (w > width) width = w;
    }
    printf("file         %s\n", ckpt_path(c));
    printf("format       dpoc checkpoint, version 1\n");
    printf("step         %" PRIu64 "\n", s->step);
    printf("epoch        %" PRIu64 "\n", s->epoch);
    printf("data_pos     %" PRIu64 "\n", s->data_pos);
    printf("rng          0x%016" PRIx64 " 0x%016" PRIx64 " 0x%016" PRIx64 " 0x%016" PRIx64 "\n", s->rng[0], s->rng[1],
           s->rng[2], s->rng[3]);
    printf("config_hash  0x%016" PRIx64 "\n", s->config_hash);
    printf("mesh         dp=%d tp=%d rank=%d\n", s->mesh_dp, s->mesh_tp, s->rank);
    printf("extra_json   %s\n", s->extra_json[0] ? s->extra_json : "(empty)");
    printf("tensors      %d: %" PRIu64 " bytes raw, %" PRIu64 " compressed", n, raw, comp);
    if (comp) printf(" (ratio %.2f)", (double)raw / (double)comp);
    printf("\n");
    if (n) printf("data         bytes %" PRIu64 "..%" PRIu64 "\n", ckpt_stored(c, 0)->offset, end);
    if (n) {
        printf("\n  %-*s  %-5s  %-20s  %12s  %12s  %12s  %s\n", width, "name", "dtype", "shape", "raw bytes",
               "compressed", "offset", "raw xxh64");
        for (int i = 0; i < n; i++) {
            const CkptTensor *t = ckpt_tensor(c, i);
            const CkptStored *st = ckpt_stored(c, i);
            char shape[160];
            format_shape(t, shape, sizeof shape);
            printf("  %-*s  %-5s  %-20s  %12" PRIu64 "  %12" PRIu64 "  %12" PRIu64 "  0x%016" PRIx64 "\n", width,
                   t->name, ckpt_dtype_name(t->dtype), shape, st->rsize, st->csize, st->offset, st->raw_sum);
        }
    }
    ckpt_close(c);
    return 0;
}

static int cmd_verify(const char *cmd, const char *synopsis, int argc, char **argv) {
    int rc;
    const char *path = one_path(cmd, synopsis, argc, argv, &rc);
    if (!path) return rc;
    char err[1024];
    char manifest[4096];
    if (ckpt_mesh_detect(path, manifest, sizeof manifest, err, sizeof err) == 1) return dpoc_ckpt_mesh_info(cmd, path, 1);
    Ckpt *c = ckpt_open(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "dpoc %s: %s\n", cmd, err);
        return 1;
    }
    int n = ckpt_ntensors(c), bad = 0;
    uint64_t raw = 0;
    for (int i = 0; i < n; i++) {
        if (ckpt_verify_tensor(c, i, err, sizeof err) != 0) {
            fprintf(stderr, "dpoc %s: %s\n", cmd, err);
            bad++;
        }
        raw += ckpt_stored(c, i)->rsize;
    }
    if (bad)
        printf("%s: %d of %d tensors are damaged\n", ckpt_path(c), bad, n);
    else
        printf("%s: OK (step %" PRIu64 ", %d tensors, %" PRIu64 " bytes checked)\n", ckpt_path(c), ckpt_state(c)->step,
               n, raw);
    ckpt_close(c);
    return bad ? 1 : 0;
}

int dpoc_ckpt_cmd_import(const char *cmd, const char *synopsis, int argc, char **argv);    /* dpoc_ckpt_hf.c */
int dpoc_ckpt_cmd_export_hf(const char *cmd, const char *synopsis, int argc, char **argv); /* dpoc_ckpt_hf.c */
int dpoc_ckpt_cmd_merge(const char *cmd, const char *synopsis, int argc, char **argv);     /* dpoc_ckpt_mesh.c */
int dpoc_ckpt_cmd_reshard(const char *cmd, const char *synopsis, int argc, char **argv);   /* dpoc_ckpt_mesh.c */

static const CkptCommand commands[] = {
    {"info", "CKPT|DIR", "print the training state and the tensor table", cmd_info},
    {"verify", "CKPT|DIR", "read every tensor, checking sizes and checksums", cmd_verify},
    {"import", "--hf DIR --step STEP.so -o CKPT_DIR [--arch A]", "Hugging Face safetensors -> a step-0 checkpoint",
     dpoc_ckpt_cmd_import},
    {"export-hf", "CKPT|DIR OUT_DIR --step STEP.so [--dtype f32|bf16|f16] [--max-shard-size 2GB] [--tokenizer DIR]",
     "write Hugging Face safetensors + config.json", dpoc_ckpt_cmd_export_hf},
    {"merge", "SHARDED_DIR|MANIFEST -o CKPT_DIR", "a sharded checkpoint -> one full checkpoint", dpoc_ckpt_cmd_merge},
    {"reshard", "CKPT|DIR --mesh dp=D,tp=T -o OUT_DIR [--step STEP.so]", "re-cut a checkpoint for another mesh",
     dpoc_ckpt_cmd_reshard},
};

static void usage(FILE *f) {
    fprintf(f, "usage: dpoc ckpt <command> CKPT|DIR\n\nCKPT is a checkpoint file; DIR a checkpoint directory (its "
               "'latest' checkpoint).\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int dpoc_cmd_ckpt(int argc, char **argv) {
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[0], commands[i].name)) {
            char cmd[32];
            snprintf(cmd, sizeof cmd, "ckpt %s", commands[i].name);
            return commands[i].run(cmd, commands[i].synopsis, argc - 1, argv + 1);
        }
    fprintf(stderr, "dpoc ckpt: unknown command '%s'\n", argv[0]);
    usage(stderr);
    return 2;
}
