/* batch.h — preference pairs into a step's inputs, and the epoch order.
 *
 * A micro-batch of B pairs fills the step's `tokens`, `targets` (i32 [2B,T])
 * and `loss_mask` (f32 [2B,T]): row p is pair p's chosen sequence, row B+p
 * its rejected one. For a sequence of ids[0..len): tokens[t] = ids[t] and
 * targets[t] = ids[t+1] while those exist (t < T), else 0; loss_mask[t] = 1
 * exactly when position t+1 lies inside one of the sequence's label spans,
 * so the step sums log p(ids[t+1] | ids[0..t]) over label tokens. A sequence
 * longer than T + 1 tokens is cut (the model sees T tokens and predicts T);
 * a pair with a label past position T is counted as truncated. Rows of an
 * unused slot are all 0. With a precomputed reference the step's
 * `ref_logps` input (f32 [2B]) gets the record's values.
 *
 * A packed step (train.packed_len, its inputs `positions` and `segments`)
 * takes one row of R = packed_len tokens per pair: tokens, targets,
 * positions and segments are [B, R], loss_mask stays [2B, R] (row p the
 * chosen's labels, row B+p the rejected's, both over pair p's row). With
 * n_c, n_r the tokens fed (min(len, T)) and k the length of the common
 * prefix of the two sequences, the first P = max(k-1, 0) positions hold
 * the shared tokens once (segment 0), then the chosen's positions P..n_c-1
 * (segment 1), then the rejected's P..n_r-1 (segment 2), then padding
 * (segment 3, token 0): n_c + n_r - P tokens, which must be <= R. Each
 * token keeps its sequence position (`positions`, for RoPE), so the row
 * computes exactly the two sequences' log-probs while the prompt is run
 * once. P stops one short of k because the last shared position predicts
 * a different token in each sequence.
 *
 * The order (batch_order_*) is the list of usable pairs (both sequences
 * keep at least one label token within T), shuffled for each epoch by a
 * Fisher-Yates pass driven by splitmix64 seeded from (seed, epoch); the
 * position (epoch, pos) names the next pair, and the stream wraps from one
 * epoch's order into the next, so every optimizer step is full.
 */
#ifndef DPOC_BATCH_H
#define DPOC_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "rec.h"
#include "step_load.h"

typedef struct BatchLayout {
    int64_t B, T, vocab;
    int32_t *tokens, *targets;
    float *mask;
    float *ref_logps; /* NULL: the step takes no precomputed reference */
    int64_t row;      /* tokens of a row: T, or packed_len */
    int32_t *positions, *segments; /* packed: [B, row]; NULL otherwise */
} BatchLayout;

/* What one packed pair contributes (after truncation). */
typedef struct BatchPairInfo {
    uint32_t labels[2]; /* label tokens within T: chosen, rejected */
    uint32_t tokens[2]; /* tokens fed: min(len, T) */
    uint32_t packed;    /* tokens of its packed row: tokens[0] + tokens[1] - shared positions */
    int truncated;      /* a label token was cut */
} BatchPairInfo;

/* Finds and checks the step's inputs; vocab from the config's vocab_size
 * (or model.embed_tokens.weight's rows), T of a packed step from its
 * config's seq_len. */
int batch_layout_init(BatchLayout *L, DpocStep *s, char *err, size_t errlen);
/* Zeroes every row (and ref_logps). */
void batch_clear(const BatchLayout *L);
/* Packs p into slot `slot` (0 <= slot < B); ids must be < vocab, and a
 * packed pair must fit its row (info->packed <= row). rec_index names the
 * record in errors. */
int batch_put(const BatchLayout *L, int64_t slot, const RecPair *p, uint64_t rec_index, BatchPairInfo *info,
              char *err, size_t errlen);
/* The information batch_put would give, without packing. */
void batch_pair_info(const RecPair *p, int64_t T, BatchPairInfo *info);

/* ---- the order ------------------------------------------------------------ */

typedef struct BatchOrder {
    uint64_t *usable; /* indices of usable pairs, ascending */
    uint64_t n;
    uint64_t seed;
    uint64_t epoch, pos; /* the next pair: perm[pos] of epoch `epoch` */
    uint64_t *perm;      /* this epoch's order */
    int shuffle;
} BatchOrder;

/* Takes ownership of usable (malloc'd, n entries, n >= 1). */
int batch_order_init(BatchOrder *o, uint64_t *usable, uint64_t n, uint64_t seed, int shuffle, char *err,
                     size_t errlen);
/* Moves to (epoch, pos); pos <= n (pos == n moves to the next epoch). */
void batch_order_seek(BatchOrder *o, uint64_t epoch, uint64_t pos);
/* The next pair's record index; advances, wrapping into the next epoch. */
uint64_t batch_order_next(BatchOrder *o);
void batch_order_free(BatchOrder *o);

/* Fisher-Yates over v[0..n) with splitmix64 seeded by (seed, epoch). */
void batch_shuffle(uint64_t *v, uint64_t n, uint64_t seed, uint64_t epoch);

/* splitmix64's output function: the RNG of the order and of initialisation. */
uint64_t batch_mix64(uint64_t x);

#endif
