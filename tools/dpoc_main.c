/* dpoc_main.c — the `dpoc` command: dispatch to subcommands.
 *
 * Each subcommand lives in its own file (dpoc_compile.c, dpoc_opt.c) and is
 * a function taking argc/argv after the subcommand name and returning the
 * process exit status. This file only routes and prints usage.
 */
#include <stdio.h>
#include <string.h>

#include "dpoc_cli.h"

static const DpocCommand commands[] = {
    {"compile", "compile a model YAML into a step.so", dpoc_cmd_compile},
    {"ir", "print the IR of a model YAML after the pass pipeline", dpoc_cmd_ir},
    {"opt", "run passes over an IR text file and print the result", dpoc_cmd_opt},
    {"ckpt", "inspect and verify checkpoints; import from and export to Hugging Face", dpoc_cmd_ckpt},
    {"demo-data", "write the demo's synthetic preference data (JSONL)", dpoc_cmd_demo_data},
    {"data", "prepare preference data (JSONL -> .rec), show and count .rec files", dpoc_cmd_data},
    {"tokenize", "UTF-8 text on stdin -> JSON array of token ids", dpoc_cmd_tokenize},
    {"detokenize", "JSON array of token ids on stdin -> text", dpoc_cmd_detokenize},
    {"list-models", "list the built-in model YAMLs (name, family, parameters)", dpoc_cmd_list_models},
    {"copy-model", "write a built-in model YAML (and its loss file) into a directory", dpoc_cmd_copy_model},
    {"import-config", "Hugging Face config.json -> model YAML on stdout", dpoc_cmd_import_config},
};

static void usage(FILE *f) {
    fprintf(f, "usage: dpoc <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'dpoc <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "dpoc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
