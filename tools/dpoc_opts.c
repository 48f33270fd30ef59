/* dpoc_opts.c — GNU-style option parsing for the dpoc subcommands.
 *
 * Walks argv once: `--name=value`, `--name value`, `-x value`, flags, and
 * `--` ending options. Everything else is positional. Errors name the
 * subcommand and the offending argument.
 */
#include <stdio.h>
#include <string.h>

#include "dpoc_cli.h"

static void print_help(const char *cmd, const char *synopsis, const DpocOpt *opts, int nopts) {
    printf("usage: dpoc %s %s\n\noptions:\n", cmd, synopsis);
    for (int i = 0; i < nopts; i++) {
        char left[64];
        if (opts[i].shortname)
            snprintf(left, sizeof left, "-%c, --%s%s", opts[i].shortname, opts[i].name, opts[i].kind == OPT_FLAG ? "" : " X");
        else
            snprintf(left, sizeof left, "--%s%s", opts[i].name, opts[i].kind == OPT_FLAG ? "" : " X");
        printf("  %-28s %s\n", left, opts[i].help);
    }
}

static DpocOpt *find(DpocOpt *opts, int nopts, const char *name, size_t len, char shortname) {
    for (int i = 0; i < nopts; i++) {
        if (shortname && opts[i].shortname == shortname) return &opts[i];
        if (!shortname && strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) return &opts[i];
    }
    return NULL;
}

int dpoc_opts_parse(const char *cmd, const char *synopsis, DpocOpt *opts, int nopts, int argc, char **argv,
                    const char **pos, int maxpos) {
    int npos = 0, only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (npos == maxpos) {
                fprintf(stderr, "dpoc %s: unexpected argument '%s'\n", cmd, a);
                return -1;
            }
            pos[npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(cmd, synopsis, opts, nopts);
            return -2;
        }
        DpocOpt *o;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            o = find(opts, nopts, a + 2, len, 0);
            if (eq) val = eq + 1;
        } else {
            o = a[2] == 0 ? find(opts, nopts, NULL, 0, a[1]) : NULL;
        }
        if (!o) {
            fprintf(stderr, "dpoc %s: unknown option '%s' (see 'dpoc %s --help')\n", cmd, a, cmd);
            return -1;
        }
        if (o->kind == OPT_FLAG) {
            if (val) {
                fprintf(stderr, "dpoc %s: option '--%s' takes no value\n", cmd, o->name);
                return -1;
            }
            *o->count = 1;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dpoc %s: option '%s' needs a value\n", cmd, a);
                return -1;
            }
            val = argv[++i];
        }
        if (o->kind == OPT_STRING) {
            *o->value = val;
        } else {
            if (*o->count == o->max) {
                fprintf(stderr, "dpoc %s: option '--%s' given more than %d times\n", cmd, o->name, o->max);
                return -1;
            }
            o->value[(*o->count)++] = val;
        }
    }
    return npos;
}
