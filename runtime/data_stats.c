/* data_stats.c — what a .rec file holds (`dpoc data stats`).
 *
 * The header fields, then one pass over every pair (so every record's
 * checksum is verified on the way): token and label counts per side,
 * min/mean/max of prompt and sequence lengths, how many sequences sit
 * exactly at max_length (truncated, or exactly that long), the length of
 * the row a pair takes in a packed step (train.packed_len: both sequences
 * with their shared prefix once, runtime/batch.c's batch_pair_info, with
 * max_length as the step's seq_len), and a histogram of sequence lengths
 * (chosen and rejected together) in power-of-two buckets [2^b, 2^(b+1)).
 */
#include <stdint.h>
#include <string.h>

#include "batch.h"
#include "data.h"

#define NBUCKETS 33

typedef struct Range {
    uint64_t min, max, sum, n;
} Range;

static void range_add(Range *r, uint64_t v) {
    if (r->n == 0 || v < r->min) r->min = v;
    if (r->n == 0 || v > r->max) r->max = v;
    r->sum += v;
    r->n++;
}

static void range_print(FILE *out, const char *name, const Range *r) {
    if (r->n == 0)
        fprintf(out, "%-17s-\n", name);
    else
        fprintf(out, "%-17smin %llu, mean %.1f, max %llu\n", name, (unsigned long long)r->min,
                (double)r->sum / (double)r->n, (unsigned long long)r->max);
}

static int bucket_of(uint32_t len) {
    int b = 0;
    while (len > 1) {
        len >>= 1;
        b++;
    }
    return b; /* 0 and 1 share bucket 0 */
}

int data_stats(FILE *out, RecReader *r, const char *name, char *err, size_t errlen) {
    const RecHeader *h = rec_header(r);
    Range prompt = {0}, side[2] = {{0}, {0}}, packed = {0};
    uint64_t labels[2] = {0, 0}, at_max = 0, hist[NBUCKETS] = {0};
    for (uint64_t i = 0; i < h->npairs; i++) {
        RecPair p;
        if (rec_get(r, i, &p, err, errlen)) return -1;
        range_add(&prompt, p.prompt_len);
        BatchPairInfo info;
        batch_pair_info(&p, h->max_length ? (int64_t)h->max_length : INT64_MAX, &info);
        range_add(&packed, info.packed);
        for (int k = 0; k < 2; k++) {
            range_add(&side[k], p.len[k]);
            for (uint32_t j = 0; j < p.nspans[k]; j++) labels[k] += p.spans[k][j].end - p.spans[k][j].start;
            if (h->max_length && p.len[k] == h->max_length) at_max++;
            hist[bucket_of(p.len[k])]++;
        }
    }
    fprintf(out, "%-17s%s\n", "file", name);
    fprintf(out, "%-17s%llu\n", "pairs", (unsigned long long)h->npairs);
    fprintf(out, "%-17s%llu (chosen %llu, rejected %llu)\n", "tokens", (unsigned long long)h->ntokens,
            (unsigned long long)side[0].sum, (unsigned long long)side[1].sum);
    fprintf(out, "%-17s%llu (chosen %llu, rejected %llu)\n", "label tokens", (unsigned long long)(labels[0] + labels[1]),
            (unsigned long long)labels[0], (unsigned long long)labels[1]);
    fprintf(out, "%-17s%s\n", "template", h->template_name);
    fprintf(out, "%-17s%016llx%s\n", "tokenizer hash", (unsigned long long)h->tok_hash,
            h->tok_hash ? "" : " (pre-tokenized input)");
    fprintf(out, "%-17s%d\n", "vocab size", (int)h->vocab_size);
    if (h->max_length)
        fprintf(out, "%-17s%u\n", "max length", h->max_length);
    else
        fprintf(out, "%-17sunlimited\n", "max length");
    if (h->has_ref)
        fprintf(out, "%-17syes (weights hash %016llx)\n", "reference logps", (unsigned long long)h->ref_weights_hash);
    else
        fprintf(out, "%-17sno\n", "reference logps");
    range_print(out, "prompt length", &prompt);
    range_print(out, "chosen length", &side[0]);
    range_print(out, "rejected length", &side[1]);
    if (h->max_length) fprintf(out, "%-17s%llu sequences\n", "at max length", (unsigned long long)at_max);
    if (packed.n)
        fprintf(out, "%-17smin %llu, mean %.1f, max %llu (train.packed_len; %.0f%% of the two sequences' tokens)\n",
                "packed length", (unsigned long long)packed.min, (double)packed.sum / (double)packed.n,
                (unsigned long long)packed.max, 100.0 * (double)packed.sum / (double)(side[0].sum + side[1].sum));
    int lo = NBUCKETS, hi = -1;
    uint64_t top = 0;
    for (int b = 0; b < NBUCKETS; b++)
        if (hist[b]) {
            if (lo == NBUCKETS) lo = b;
            hi = b;
            if (hist[b] > top) top = hist[b];
        }
    if (hi < 0) return 0;
    fprintf(out, "length histogram (chosen and rejected sequences)\n");
    for (int b = lo; b <= hi; b++) {
        unsigned long long a = b ? 1ull << b : 0, e = 1ull << (b + 1);
        int bar = (int)((hist[b] * 40 + top - 1) / top);
        char bars[41];
        memset(bars, '#', (size_t)bar);
        bars[bar] = 0;
        fprintf(out, "  [%6llu, %6llu) %8llu %s\n", a, e, (unsigned long long)hist[b], bars);
    }
    return 0;
}
