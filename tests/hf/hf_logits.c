/* hf_logits.c — run a step's `logps` entry on given tokens with a checkpoint's weights.
 *
 * usage: hf_logits STEP.so CKPT TOKENS.bin OUT.bin
 *
 * The native half of tests/hf/test_hf.py. It opens the step (compiled with
 * --expose-logits), loads every parameter from the dpoc checkpoint CKPT
 * (train_load_role: names, dtypes and shapes must match), reads
 * TOKENS.bin (int32 little-endian, exactly the [2B, T] of the step's
 * `tokens` input), sets targets to 0 and loss_mask to 0, runs `logps` with
 * the serial services and writes the `logits` output ([2B, T, V] f32) raw
 * to OUT.bin. Exit status 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ckpt.h"
#include "runtime/step_load.h"
#include "runtime/train_params.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: hf_logits STEP.so CKPT TOKENS.bin OUT.bin\n");
        return 2;
    }
    char err[1024];
    DpocStep s;
    if (dpoc_step_open(&s, argv[1], err, sizeof err)) {
        fprintf(stderr, "hf_logits: %s\n", err);
        return 1;
    }
    int rc = 1;
    Ckpt *c = ckpt_open(argv[2], err, sizeof err);
    if (!c || train_load_role(&s, c, DPOC_ROLE_PARAM, "", err, sizeof err)) goto out;
    DpocTensorInfo ti, tl, tt, tm;
    int32_t *tok = dpoc_step_find(&s, "tokens", DPOC_ROLE_INPUT, &ti);
    int32_t *tgt = dpoc_step_find(&s, "targets", DPOC_ROLE_INPUT, &tt);
    float *mask = dpoc_step_find(&s, "loss_mask", DPOC_ROLE_INPUT, &tm);
    float *logits = dpoc_step_find(&s, "logits", DPOC_ROLE_OUTPUT, &tl);
    if (!tok || !tgt || !mask || !logits || tm.dtype != DPOC_DT_F32) {
        snprintf(err, sizeof err, "the step needs inputs tokens/targets/loss_mask (f32) and output logits "
                                  "(compile with --expose-logits)");
        goto out;
    }
    FILE *f = fopen(argv[3], "rb");
    size_t got = f ? fread(tok, 4, (size_t)ti.numel + 1, f) : 0;
    if (f) fclose(f);
    if (got != (size_t)ti.numel) {
        snprintf(err, sizeof err, "%s: expected %lld int32 tokens, read %zu", argv[3], (long long)ti.numel, got);
        goto out;
    }
    memset(tgt, 0, (size_t)tt.nbytes);
    memset(mask, 0, (size_t)tm.nbytes);
    if (dpoc_step_logps(&s, NULL, err, sizeof err)) goto out;
    f = fopen(argv[4], "wb");
    if (!f || fwrite(logits, 4, (size_t)tl.numel, f) != (size_t)tl.numel || fclose(f)) {
        snprintf(err, sizeof err, "%s: cannot write", argv[4]);
        goto out;
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "hf_logits: %s\n", err);
    ckpt_close(c);
    dpoc_step_close(&s);
    return rc;
}
