/* dpoc_demo_data.c — `dpoc demo-data`: the demo's synthetic preference data.
 *
 * Writes DIR/train.jsonl and DIR/eval.jsonl in TRL's standard format
 * ({"prompt", "chosen", "rejected"} strings). Every pair is one of five
 * small tasks whose chosen response follows the instruction and whose
 * rejected response breaks it the same way every time:
 *
 *   Uppercase: wisob   -> WISOB        rejected: wisob     (copied unchanged)
 *   Lowercase: KEDAF   -> kedaf        rejected: KEDAF     (copied unchanged)
 *   Vowels: bakiso     -> aio          rejected: bks       (the consonants)
 *   Spell: ipino       -> i p i n o    rejected: ipino     (not spelled out)
 *   Count to 4:        -> 1 2 3 4      rejected: 4 3 2 1   (counted down)
 *
 * Every prompt ends with a newline, so the pairs also read well with the
 * `none` template (prompt and response concatenated).
 *
 * Words are random pronounceable strings of 3..7 letters (consonants and
 * vowels alternate), so the rule, not the words, is what can be learnt; an
 * evaluation prompt never appears among the training prompts (except for
 * Count, which has only 8 prompts). The evaluation pairs are drawn first,
 * then the training pairs, skipping their prompts. Everything comes from
 * one splitmix64 stream seeded by --seed: the same options give the same
 * bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dpoc_cli.h"

typedef struct Pair {
    char prompt[64], chosen[64], rejected[64];
} Pair;

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned below(uint64_t *s, unsigned n) { return (unsigned)(next(s) % n); }

/* A pronounceable word of 3..7 letters: consonants and vowels alternate. */
static void word(uint64_t *s, char *w, int upper) {
    static const char cons[] = "bcdfghjklmnprstvwz", vow[] = "aeiou";
    int len = 3 + (int)below(s, 5), v = (int)below(s, 2);
    for (int i = 0; i < len; i++, v = !v) {
        char ch = v ? vow[below(s, 5)] : cons[below(s, 18)];
        w[i] = upper ? (char)(ch - 'a' + 'A') : ch;
    }
    w[len] = 0;
}

static int is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

/* Draws one pair; 0 if chosen and rejected came out equal (draw again; the
 * tasks above never do that, but a pair must never be a tie). */
static int make_pair(uint64_t *s, Pair *p) {
    char w[8];
    size_t n;
    switch (below(s, 5)) {
    case 0:
        word(s, w, 0);
        snprintf(p->prompt, sizeof p->prompt, "Uppercase: %s\n", w);
        for (n = 0; w[n]; n++) p->chosen[n] = (char)(w[n] - 'a' + 'A');
        p->chosen[n] = 0;
        strcpy(p->rejected, w);
        break;
    case 1:
        word(s, w, 1);
        snprintf(p->prompt, sizeof p->prompt, "Lowercase: %s\n", w);
        for (n = 0; w[n]; n++) p->chosen[n] = (char)(w[n] - 'A' + 'a');
        p->chosen[n] = 0;
        strcpy(p->rejected, w);
        break;
    case 2: {
        word(s, w, 0);
        snprintf(p->prompt, sizeof p->prompt, "Vowels: %s\n", w);
        char *c = p->chosen, *r = p->rejected;
        for (n = 0; w[n]; n++) *(is_vowel(w[n]) ? c++ : r++) = w[n];
        *c = *r = 0;
        break;
    }
    case 3: {
        int k = 2 + (int)below(s, 8);
        snprintf(p->prompt, sizeof p->prompt, "Count to %d:\n", k);
        char *c = p->chosen, *r = p->rejected;
        for (int i = 1; i <= k; i++) {
            c += sprintf(c, "%s%d", i > 1 ? " " : "", i);
            r += sprintf(r, "%s%d", i > 1 ? " " : "", k + 1 - i);
        }
        break;
    }
    default: {
        word(s, w, 0);
        snprintf(p->prompt, sizeof p->prompt, "Spell: %s\n", w);
        char *c = p->chosen;
        for (n = 0; w[n]; n++) c += sprintf(c, "%s%c", n ? " " : "", w[n]);
        strcpy(p->rejected, w);
        break;
    }
    }
    return strcmp(p->chosen, p->rejected) != 0;
}

/* Writes s as a JSON string (the texts hold letters, digits, ' ', ':' and \n). */
static void put_json(FILE *f, const char *key, const char *s, const char *after) {
    fprintf(f, "\"%s\": \"", key);
    for (; *s; s++) {
        if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else
            fputc(*s, f);
    }
    fprintf(f, "\"%s", after);
}

static int write_jsonl(const char *dir, const char *name, const Pair *p, int n) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "dpoc demo-data: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        fputc('{', f);
        put_json(f, "prompt", p[i].prompt, ", ");
        put_json(f, "chosen", p[i].chosen, ", ");
        put_json(f, "rejected", p[i].rejected, "}\n");
    }
    if (fflush(f) != 0 || ferror(f) || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "dpoc demo-data: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    printf("%s: %d pairs\n", path, n);
    return 0;
}

static int in_set(const Pair *p, int n, const char *prompt) {
    for (int i = 0; i < n; i++)
        if (!strcmp(p[i].prompt, prompt)) return 1;
    return 0;
}

int dpoc_cmd_demo_data(int argc, char **argv) {
    const char *out = NULL, *ntrain_s = "2000", *neval_s = "200", *seed_s = "1";
    DpocOpt opts[] = {
        {"output", 'o', OPT_STRING, &out, NULL, 0, "directory for train.jsonl and eval.jsonl"},
        {"train", 0, OPT_STRING, &ntrain_s, NULL, 0, "training pairs (default 2000)"},
        {"eval", 0, OPT_STRING, &neval_s, NULL, 0, "evaluation pairs (default 200)"},
        {"seed", 0, OPT_STRING, &seed_s, NULL, 0, "random seed (default 1)"},
    };
    const char *pos[1];
    int np = dpoc_opts_parse("demo-data", "-o DIR [--train N] [--eval N] [--seed S]", opts, 4, argc, argv, pos, 0);
    if (np == -2) return 0;
    if (np < 0) return 2;
    char *end;
    long ntrain = strtol(ntrain_s, &end, 10);
    if (*end || ntrain < 1 || ntrain > 100000) {
        fprintf(stderr, "dpoc demo-data: --train wants 1..100000 pairs, not '%s'\n", ntrain_s);
        return 2;
    }
    long neval = strtol(neval_s, &end, 10);
    if (*end || neval < 1 || neval > 5000) {
        fprintf(stderr, "dpoc demo-data: --eval wants 1..5000 pairs, not '%s'\n", neval_s);
        return 2;
    }
    uint64_t seed = strtoull(seed_s, &end, 10);
    if (*end || !*seed_s) {
        fprintf(stderr, "dpoc demo-data: --seed wants a non-negative integer, not '%s'\n", seed_s);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "dpoc demo-data: missing -o DIR\n");
        return 2;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "dpoc demo-data: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    Pair *ev = malloc((size_t)neval * sizeof *ev), *tr = malloc((size_t)ntrain * sizeof *tr);
    if (!ev || !tr) {
        fprintf(stderr, "dpoc demo-data: out of memory\n");
        free(ev);
        free(tr);
        return 1;
    }
    uint64_t s = seed;
    for (long i = 0; i < neval;)
        if (make_pair(&s, &ev[i])) i++;
    for (long i = 0; i < ntrain;) {
        if (!make_pair(&s, &tr[i])) continue;
        if (strncmp(tr[i].prompt, "Count", 5) && in_set(ev, (int)neval, tr[i].prompt)) continue;
        i++;
    }
    int rc = write_jsonl(out, "train.jsonl", tr, (int)ntrain) || write_jsonl(out, "eval.jsonl", ev, (int)neval);
    free(ev);
    free(tr);
    return rc ? 1 : 0;
}
