/* metrics.c — accumulating TRL's metrics, writing them as JSON, the progress line.
 *
 * Sums are doubles added in micro-batch and pair order, so the values are a
 * function of the step's outputs alone. Numbers are written with the
 * fewest significant digits (up to 17) that strtod maps back to the same
 * double; whole numbers below 1e15 without an exponent. (The peak FLOP/s that
 * MFU divides by is cpu_peak.c's.)
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void metrics_reset(MetricsAcc *a, double beta, double vocab) {
    memset(a, 0, sizeof *a);
    a->beta = beta;
    a->vocab = vocab;
}

void metrics_add(MetricsAcc *a, double loss, int64_t B, int64_t used, const float *logps, const float *ref,
                 const float *logits_sum, const uint32_t *labels, int64_t tokens) {
    a->nmb++;
    a->loss += loss;
    a->tokens += tokens;
    for (int64_t p = 0; p < used; p++) {
        double pc = logps[p], pr = logps[B + p];
        double qc = ref ? ref[p] : 0.0, qr = ref ? ref[B + p] : 0.0;
        double rc = a->beta * (pc - qc), rr = a->beta * (pr - qr);
        a->rc += rc;
        a->rr += rr;
        a->margin += rc - rr;
        a->ncorrect += rc > rr;
        a->lpc += pc;
        a->lpr += pr;
        a->lab_c += labels[p];
        a->lab_r += labels[B + p];
        if (logits_sum) {
            a->logits_c += logits_sum[p];
            a->logits_r += logits_sum[B + p];
        } else {
            a->logits_c = a->logits_r = NAN;
        }
        a->npairs++;
    }
}

void metrics_finish(const MetricsAcc *a, MetricsValues *v) {
    double n = (double)a->npairs;
    v->loss = a->nmb ? a->loss / (double)a->nmb : NAN;
    v->rewards_chosen = a->rc / n;
    v->rewards_rejected = a->rr / n;
    v->rewards_accuracies = (double)a->ncorrect / n;
    v->rewards_margins = a->margin / n;
    v->logps_chosen = a->lpc / n;
    v->logps_rejected = a->lpr / n;
    v->logits_chosen = a->logits_c / (a->lab_c * a->vocab);
    v->logits_rejected = a->logits_r / (a->lab_r * a->vocab);
    v->nll_loss = -a->lpc / a->lab_c;
    v->pairs = a->npairs;
    v->tokens = a->tokens;
}

/* ---- JSON lines ---------------------------------------------------------------- */

void metrics_format_double(char *out, size_t cap, double v) {
    if (!isfinite(v)) {
        snprintf(out, cap, "null");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) { /* whole numbers without an exponent */
        snprintf(out, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void append(MetricsLine *l, const char *s) {
    size_t n = strlen(s);
    if (l->oom) return;
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 512;
        while (cap < l->len + n + 1) cap *= 2;
        char *b = realloc(l->buf, cap);
        if (!b) {
            l->oom = 1;
            return;
        }
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, s, n + 1);
    l->len += n;
}

static void key(MetricsLine *l, const char *k) {
    append(l, l->len > 1 ? ",\"" : "\"");
    append(l, k);
    append(l, "\":");
}

void metrics_line_begin(MetricsLine *l) {
    l->len = 0;
    l->oom = 0;
    append(l, "{");
}

void metrics_line_num(MetricsLine *l, const char *k, double v) {
    char b[40];
    metrics_format_double(b, sizeof b, v);
    key(l, k);
    append(l, b);
}

void metrics_line_int(MetricsLine *l, const char *k, int64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)v);
    key(l, k);
    append(l, b);
}

void metrics_line_values(MetricsLine *l, const char *prefix, const MetricsValues *v) {
    static const char *const names[] = {"loss",           "rewards/chosen", "rewards/rejected", "rewards/accuracies",
                                        "rewards/margins", "logps/chosen",   "logps/rejected",   "logits/chosen",
                                        "logits/rejected", "nll_loss"};
    const double vals[] = {v->loss,         v->rewards_chosen, v->rewards_rejected, v->rewards_accuracies,
                           v->rewards_margins, v->logps_chosen, v->logps_rejected, v->logits_chosen,
                           v->logits_rejected, v->nll_loss};
    char k[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(k, sizeof k, "%s%s", prefix, names[i]);
        metrics_line_num(l, k, vals[i]);
    }
}

const char *metrics_line_end(MetricsLine *l) {
    append(l, "}");
    return l->oom ? NULL : l->buf;
}

void metrics_line_free(MetricsLine *l) {
    free(l->buf);
    memset(l, 0, sizeof *l);
}

/* ---- progress ------------------------------------------------------------------- */

static void fmt_time(char *out, size_t cap, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(out, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

void metrics_progress(FILE *out, int tty, uint64_t step, uint64_t total, double loss, double acc, double tok_s,
                      double eta_s) {
    char eta[32], bar[24];
    fmt_time(eta, sizeof eta, eta_s);
    int width = 20, filled = total ? (int)((double)step / (double)total * width) : 0;
    if (filled > width) filled = width;
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    if (tty)
        fprintf(out, "\r\033[Kstep %llu/%llu [%s] loss %.4f acc %.2f %.0f tok/s ETA %s", (unsigned long long)step,
                (unsigned long long)total, bar, loss, acc, tok_s, eta);
    else
        fprintf(out, "step %llu/%llu loss %.4f acc %.2f %.0f tok/s ETA %s\n", (unsigned long long)step,
                (unsigned long long)total, loss, acc, tok_s, eta);
    fflush(out);
}
