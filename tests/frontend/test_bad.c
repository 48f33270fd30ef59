/* test_bad.c — every file of tests/frontend/bad/ is rejected with the exact
 * message its first line expects.
 *
 * A bad file starts with `# expect: NAME.yaml:LINE:COL: message`, the
 * message as printed when the file is named relative to its directory (the
 * CLI test runs from there). Here it is loaded by its full path, so the
 * expected text gets the directory prefixed, through both model_cfg_load and
 * model_cfg_load_str; the failed ModelCfg must come back empty.
 */
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"
#include "frontend/frontend.h"

static int is_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_frontend_bad DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    int n;
    char **names = fe_list_dir(dir, ".yaml", &n);
    CHECK(n >= 40, "expected at least 40 bad YAML files in %s, found %d", dir, n);
    for (int i = 0; i < n; i++) {
        char path[1024], want[1200], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        char *text = fe_slurp(path, &len);
        CHECK(text != NULL, "cannot read %s", path);
        if (!text) continue;
        const char *tag = "# expect: ";
        CHECK(!strncmp(text, tag, strlen(tag)), "%s: first line is not '# expect: ...'", path);
        const char *e = text + strlen(tag), *nl = strchr(e, '\n');
        snprintf(want, sizeof want, "%s/%.*s", dir, nl ? (int)(nl - e) : (int)strlen(e), e);

        ModelCfg cfg;
        memset(&cfg, 0x5a, sizeof cfg);
        int rc = model_cfg_load(path, &cfg, err, sizeof err);
        CHECK(rc == -1, "%s: loaded without an error", names[i]);
        CHECK(rc == 0 || !strcmp(err, want), "%s:\n  got:  %s\n  want: %s", names[i], err, want);
        CHECK(rc == 0 || is_zero(&cfg, sizeof cfg), "%s: ModelCfg not emptied after the error", names[i]);
        model_cfg_free(&cfg);

        rc = model_cfg_load_str(text, len, path, &cfg, err, sizeof err);
        CHECK(rc == -1 && !strcmp(err, want), "%s (from memory):\n  got:  %s\n  want: %s", names[i], err, want);
        model_cfg_free(&cfg);
        free(text);
    }
    /* a missing file names itself */
    ModelCfg cfg;
    char err[512];
    CHECK(model_cfg_load("/nonexistent/dir/model.yaml", &cfg, err, sizeof err) == -1 &&
              !strncmp(err, "/nonexistent/dir/model.yaml: cannot open", 40),
          "missing file: %s", err);
    model_cfg_free(&cfg);
    fe_free_list(names, n);
    if (!fe_failures) printf("OK %d bad YAML files rejected with their expected messages\n", n);
    return fe_failures != 0;
}
