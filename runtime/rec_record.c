/* rec_record.c — the byte layout of .rec headers, index entries and records,
 * and the rules every pair follows.
 *
 * Each function here mirrors one table of docs/rec-format.md: the 112-byte
 * header, the 40-byte index entry, and the record (six u32 counts, the two
 * optional f32 reference log-probs, the prompt ids once, the two response
 * tails, the two span lists, a CRC-32C of everything before it). Encoding
 * writes every byte (no padding, nothing left uninitialised), so the same
 * pairs give the same bytes. rec_pair_check is the single statement of the
 * rules of rec.h: the writer runs it on what it is given and the reader on
 * what it decoded, so a file the writer accepts always reads back.
 */
#include "rec_internal.h"

#include <stdint.h>
#include <stdlib.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const seq_name[2] = {"chosen", "rejected"};

void rec_header_encode(const RecFileHeader *fh, uint8_t out[REC_HEADER_SIZE]) {
    const RecHeader *h = &fh->h;
    memset(out, 0, REC_HEADER_SIZE);
    memcpy(out, "DPOCREC", 8); /* the NUL ends the magic */
    rec_put32(out + 8, h->version);
    rec_put32(out + 12, fh->flags);
    rec_put64(out + 16, h->tok_hash);
    memcpy(out + 24, h->template_name, REC_TEMPLATE_MAX);
    rec_put32(out + 56, h->max_length);
    rec_put32(out + 60, (uint32_t)h->vocab_size);
    rec_put64(out + 64, h->npairs);
    rec_put64(out + 72, h->ntokens);
    rec_put64(out + 80, h->ref_weights_hash);
    rec_put64(out + 88, fh->index_offset);
    rec_put64(out + 96, fh->nblocks);
    rec_put32(out + 104, fh->index_crc);
    rec_put32(out + REC_HEADER_CRC_AT, rec_crc32c(0, out, REC_HEADER_CRC_AT));
}

void rec_header_decode(const uint8_t in[REC_HEADER_SIZE], RecFileHeader *fh) {
    RecHeader *h = &fh->h;
    memset(fh, 0, sizeof *fh);
    h->version = rec_get32(in + 8);
    fh->flags = rec_get32(in + 12);
    h->has_ref = (fh->flags & REC_FLAG_HAS_REF) != 0;
    h->tok_hash = rec_get64(in + 16);
    memcpy(h->template_name, in + 24, REC_TEMPLATE_MAX);
    h->max_length = rec_get32(in + 56);
    h->vocab_size = (int32_t)rec_get32(in + 60);
    h->npairs = rec_get64(in + 64);
    h->ntokens = rec_get64(in + 72);
    h->ref_weights_hash = rec_get64(in + 80);
    fh->index_offset = rec_get64(in + 88);
    fh->nblocks = rec_get64(in + 96);
    fh->index_crc = rec_get32(in + 104);
    fh->header_crc = rec_get32(in + REC_HEADER_CRC_AT);
}

void rec_block_encode(const RecBlock *b, uint8_t out[REC_INDEX_ENTRY_SIZE]) {
    rec_put64(out, b->offset);
    rec_put64(out + 8, b->first);
    rec_put32(out + 16, b->nrecords);
    rec_put32(out + 20, b->csize);
    rec_put32(out + 24, b->rsize);
    rec_put32(out + 28, b->crc);
    rec_put64(out + 32, b->ntokens);
}

void rec_block_decode(const uint8_t in[REC_INDEX_ENTRY_SIZE], RecBlock *b) {
    b->offset = rec_get64(in);
    b->first = rec_get64(in + 8);
    b->nrecords = rec_get32(in + 16);
    b->csize = rec_get32(in + 20);
    b->rsize = rec_get32(in + 24);
    b->crc = rec_get32(in + 28);
    b->ntokens = rec_get64(in + 32);
}

size_t rec_record_size(uint32_t prompt_len, const uint32_t len[2], const uint32_t nspans[2], int has_ref) {
    size_t nids = (size_t)len[0] + len[1] - prompt_len;
    return REC_RECORD_FIXED + (has_ref ? 8 : 0) + 4 * nids + 8 * ((size_t)nspans[0] + nspans[1]) + 4;
}

void rec_record_encode(const RecPair *p, uint8_t *out) {
    uint8_t *q = out;
    rec_put32(q, p->has_ref ? REC_FLAG_HAS_REF : 0);
    rec_put32(q + 4, p->prompt_len);
    rec_put32(q + 8, p->len[0]);
    rec_put32(q + 12, p->len[1]);
    rec_put32(q + 16, p->nspans[0]);
    rec_put32(q + 20, p->nspans[1]);
    q += REC_RECORD_FIXED;
    if (p->has_ref)
        for (int s = 0; s < 2; s++) {
            uint32_t bits;
            memcpy(&bits, &p->ref_logps[s], 4);
            rec_put32(q, bits);
            q += 4;
        }
    for (uint32_t t = 0; t < p->prompt_len; t++, q += 4) rec_put32(q, (uint32_t)p->ids[0][t]);
    for (int s = 0; s < 2; s++)
        for (uint32_t t = p->prompt_len; t < p->len[s]; t++, q += 4) rec_put32(q, (uint32_t)p->ids[s][t]);
    for (int s = 0; s < 2; s++)
        for (uint32_t k = 0; k < p->nspans[s]; k++, q += 8) {
            rec_put32(q, p->spans[s][k].start);
            rec_put32(q + 4, p->spans[s][k].end);
        }
    rec_put32(q, rec_crc32c(0, out, (size_t)(q - out)));
}

int rec_pair_check(const RecHeader *h, const RecPair *p, char *msg, size_t msglen) {
    for (int s = 0; s < 2; s++) {
        const char *nm = seq_name[s];
        if (p->len[s] > REC_MAX_LEN) {
            snprintf(msg, msglen, "%s length %u over the limit %d", nm, p->len[s], REC_MAX_LEN);
            return -1;
        }
        if (h->max_length && p->len[s] > h->max_length) {
            snprintf(msg, msglen, "%s length %u over max_length %u", nm, p->len[s], h->max_length);
            return -1;
        }
        if (p->prompt_len > p->len[s]) {
            snprintf(msg, msglen, "prompt_len %u over the %s length %u", p->prompt_len, nm, p->len[s]);
            return -1;
        }
        if (p->len[s] && !p->ids[s]) {
            snprintf(msg, msglen, "%s ids missing (NULL with length %u)", nm, p->len[s]);
            return -1;
        }
        if (p->nspans[s] > REC_MAX_SPANS) {
            snprintf(msg, msglen, "%s has %u spans (limit %d)", nm, p->nspans[s], REC_MAX_SPANS);
            return -1;
        }
        if (p->nspans[s] && !p->spans[s]) {
            snprintf(msg, msglen, "%s spans missing (NULL with %u spans)", nm, p->nspans[s]);
            return -1;
        }
    }
    for (uint32_t t = 0; t < p->prompt_len; t++)
        if (p->ids[0][t] != p->ids[1][t]) {
            snprintf(msg, msglen,
                     "chosen and rejected differ at position %u inside the prompt (prompt_len %u): "
                     "the prompt must be a shared prefix",
                     t, p->prompt_len);
            return -1;
        }
    for (int s = 0; s < 2; s++) {
        const char *nm = seq_name[s];
        for (uint32_t t = 0; t < p->len[s]; t++) {
            int32_t id = p->ids[s][t];
            if (id < 0 || (h->vocab_size > 0 && id >= h->vocab_size)) {
                if (h->vocab_size > 0)
                    snprintf(msg, msglen, "%s id %d at position %u outside [0, %d)", nm, id, t, h->vocab_size);
                else
                    snprintf(msg, msglen, "%s id %d at position %u is negative", nm, id, t);
                return -1;
            }
        }
        for (uint32_t k = 0; k < p->nspans[s]; k++) {
            RecSpan sp = p->spans[s][k];
            if (sp.start > sp.end || sp.end > p->len[s]) {
                snprintf(msg, msglen, "%s span %u [%u, %u) not inside [0, %u) or reversed", nm, k, sp.start, sp.end,
                         p->len[s]);
                return -1;
            }
            if (k && sp.start < p->spans[s][k - 1].end) {
                snprintf(msg, msglen, "%s span %u [%u, %u) overlaps or precedes span %u [%u, %u)", nm, k, sp.start,
                         sp.end, k - 1, p->spans[s][k - 1].start, p->spans[s][k - 1].end);
                return -1;
            }
        }
    }
    if (!p->has_ref != !h->has_ref) {
        snprintf(msg, msglen, p->has_ref ? "has reference log-probs but the file has none"
                                         : "has no reference log-probs but the file has them");
        return -1;
    }
    if (p->has_ref)
        for (int s = 0; s < 2; s++)
            if (!isfinite(p->ref_logps[s])) {
                snprintf(msg, msglen, "%s reference log-prob %g is not finite", seq_name[s], (double)p->ref_logps[s]);
                return -1;
            }
    return 0;
}

int rec_grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    if (n > SIZE_MAX / elem) return -1;
    void *p = realloc(*buf, n * elem);
    if (!p) return -1;
    *buf = p;
    *cap = n;
    return 0;
}
