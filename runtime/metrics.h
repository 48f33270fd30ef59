/* metrics.h — TRL's DPO metrics from a step's outputs, as JSON lines.
 *
 * An accumulator collects, for every micro-batch of an optimizer step (or
 * of an evaluation), the micro-batch loss and per pair the policy and
 * reference log-probs, the logits sums and the label-token counts. The
 * finished values, over all pairs of the step (sums in double, in pair
 * order):
 *   loss               mean of the micro-batch losses
 *   rewards/chosen     mean of beta * (policy - reference) log-probs, chosen
 *   rewards/rejected   the same for the rejected responses
 *   rewards/accuracies fraction of pairs with chosen reward > rejected reward
 *   rewards/margins    mean of chosen minus rejected reward
 *   logps/chosen, logps/rejected   mean summed log-probs
 *   logits/chosen, logits/rejected sum of `logits_sum` over the rows divided
 *                      by (label tokens x vocabulary): the mean logit over
 *                      label positions and the vocabulary
 *   nll_loss           -(sum of chosen log-probs) / (chosen label tokens)
 * Without a reference the reference log-probs are 0. metrics_write_line
 * prints numbers in the shortest form that reads back to the same double
 * (NaN and infinities as null), so two runs' lines compare bit for bit.
 */
#ifndef DPOC_METRICS_H
#define DPOC_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct MetricsAcc {
    double beta, vocab;
    int64_t nmb, npairs, ncorrect;
    double loss, rc, rr, margin, lpc, lpr, logits_c, logits_r, lab_c, lab_r;
    int64_t tokens;
} MetricsAcc;

typedef struct MetricsValues {
    double loss, rewards_chosen, rewards_rejected, rewards_accuracies, rewards_margins;
    double logps_chosen, logps_rejected, logits_chosen, logits_rejected, nll_loss;
    int64_t pairs, tokens;
} MetricsValues;

void metrics_reset(MetricsAcc *a, double beta, double vocab);
/* One micro-batch: B pairs, of which the first `used` are real. logps,
 * ref (NULL: 0), logits_sum (NULL: unavailable) and labels are [2B] arrays
 * (chosen rows first); tokens: real tokens fed. */
void metrics_add(MetricsAcc *a, double loss, int64_t B, int64_t used, const float *logps, const float *ref,
                 const float *logits_sum, const uint32_t *labels, int64_t tokens);
void metrics_finish(const MetricsAcc *a, MetricsValues *v);

/* A JSON-lines writer: fields appended one by one, then the line. */
typedef struct MetricsLine {
    char *buf;
    size_t len, cap;
    int oom;
} MetricsLine;

void metrics_line_begin(MetricsLine *l);
void metrics_line_num(MetricsLine *l, const char *key, double v);
void metrics_line_int(MetricsLine *l, const char *key, int64_t v);
/* The values under keys prefix + name ("" or "eval/"). */
void metrics_line_values(MetricsLine *l, const char *prefix, const MetricsValues *v);
/* Terminates the object; the text is in l->buf (NUL-terminated, no newline). */
const char *metrics_line_end(MetricsLine *l);
void metrics_line_free(MetricsLine *l);

/* Shortest decimal that strtod reads back as v ("null" for non-finite). */
void metrics_format_double(char *out, size_t cap, double v);

/* The progress line: "step 12/100 [####......] loss 0.6931 acc 0.50
 * 1234 tok/s ETA 0:12". */
void metrics_progress(FILE *out, int tty, uint64_t step, uint64_t total, double loss, double acc, double tok_s,
                      double eta_s);

#endif
