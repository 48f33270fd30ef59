/* gen_logits.c — every position's logits through the prefill/decode entries.
 *
 * usage: gen_logits STEP.so HF_DIR IDS.bin OUT.bin SPLITS
 *
 * The native half of tests/predict/test_predict.py "chunks". Opens the step
 * for generation (runtime/gen_model.c), loads the Hugging Face weights in
 * HF_DIR, reads the prompt ids (int32 little-endian) and feeds them in
 * pieces of the sizes listed in SPLITS ("45": all at once, i.e. whole
 * prefill chunks, a partial one, and a last token through decode;
 * "1,1,1,...": token by token through decode; any mix). The logits of every
 * position, [n, V] f32, go raw to OUT.bin. Exit status 0, or 1 with a
 * message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/generate.h"
#include "runtime/train_params.h"

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: gen_logits STEP.so HF_DIR IDS.bin OUT.bin SPLITS\n");
        return 2;
    }
    char err[1024] = "";
    GenModel m;
    if (gen_model_open(&m, argv[1], 1, err, sizeof err)) {
        fprintf(stderr, "gen_logits: %s\n", err);
        return 1;
    }
    int rc = 1;
    int32_t *ids = NULL;
    float *out = NULL;
    FILE *f = NULL;
    if (train_load_init(&m.step, NULL, argv[2], err, sizeof err)) goto done;
    f = fopen(argv[3], "rb");
    if (!f) {
        snprintf(err, sizeof err, "cannot open %s", argv[3]);
        goto done;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f) / 4;
    fseek(f, 0, SEEK_SET);
    ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    out = malloc((size_t)(n ? n : 1) * (size_t)m.V * sizeof *out);
    if (!ids || !out || fread(ids, 4, (size_t)n, f) != (size_t)n) {
        snprintf(err, sizeof err, "cannot read %s", argv[3]);
        goto done;
    }
    fclose(f);
    f = NULL;
    long done = 0;
    for (const char *p = argv[5]; done < n;) {
        char *end;
        long k = *p ? strtol(p, &end, 10) : n - done;
        if (*p) p = *end ? end + 1 : end;
        if (k < 1 || k > n - done) k = n - done;
        if (gen_model_feed(&m, ids + done, k, out + done * m.V, NULL, err, sizeof err)) goto done;
        done += k;
    }
    f = fopen(argv[4], "wb");
    if (!f || fwrite(out, sizeof *out, (size_t)(n * m.V), f) != (size_t)(n * m.V)) {
        snprintf(err, sizeof err, "cannot write %s", argv[4]);
        goto done;
    }
    rc = 0;
done:
    if (f) fclose(f);
    if (rc) fprintf(stderr, "gen_logits: %s\n", err);
    free(ids);
    free(out);
    gen_model_close(&m);
    return rc;
}
