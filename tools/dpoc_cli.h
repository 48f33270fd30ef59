/* dpoc_cli.h — subcommands of the `dpoc` tool and the option parsing they share.
 *
 * Options are GNU-style: `--name value` or `--name=value`; a subcommand
 * declares a table of DpocOpt and dpoc_opts_parse fills it, collecting
 * positional arguments. Unknown options and missing values are reported with
 * the subcommand's name and the exit status is 2.
 */
#ifndef DPOC_CLI_H
#define DPOC_CLI_H

typedef struct DpocCommand {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv);
} DpocCommand;

int dpoc_cmd_compile(int argc, char **argv);
int dpoc_cmd_ir(int argc, char **argv);
int dpoc_cmd_opt(int argc, char **argv);
int dpoc_cmd_ckpt(int argc, char **argv);
int dpoc_cmd_demo_data(int argc, char **argv);
int dpoc_cmd_data(int argc, char **argv);
int dpoc_cmd_tokenize(int argc, char **argv);
int dpoc_cmd_detokenize(int argc, char **argv);
int dpoc_cmd_list_models(int argc, char **argv);
int dpoc_cmd_copy_model(int argc, char **argv);
int dpoc_cmd_import_config(int argc, char **argv);

typedef enum { OPT_FLAG, OPT_STRING, OPT_LIST } DpocOptKind;

typedef struct DpocOpt {
    const char *name;   /* without the leading dashes */
    char shortname;     /* 0 for none */
    DpocOptKind kind;
    const char **value; /* OPT_STRING: the value; OPT_LIST: array of values */
    int *count;         /* OPT_FLAG: set to 1; OPT_LIST: number of values */
    int max;            /* OPT_LIST capacity */
    const char *help;
} DpocOpt;

/* Returns the number of positionals (stored in pos[], up to maxpos), or -1
 * after printing an error; `--help` prints the table and returns -2. */
int dpoc_opts_parse(const char *cmd, const char *synopsis, DpocOpt *opts, int nopts, int argc, char **argv,
                    const char **pos, int maxpos);

#endif
