/* fuzz_jsonl.c — libFuzzer target for the JSONL reader, format detection,
 * row conversion, chat template rendering and id-pair building (no
 * tokenizer).
 *
 * The input is read as a JSONL file (small row and depth limits so that
 * those paths are reached); each parsed row is detected and converted with
 * every format; every converted text example is rendered with every
 * template and the render's marks are checked (in order, inside the piece
 * list, prompt before responses); every id example is built into a pair
 * with a max length taken from the first input byte and the pair checked
 * against the .rec rules (shared prompt, spans sorted inside [1, len)).
 * The whole input also goes through jsonl_parse_line as one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/chat_template.h"
#include "runtime/data.h"
#include "runtime/jsonl.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_jsonl: invariant broken: %s\n", what);
        abort();
    }
}

static void render_all(const DataExample *ex, ChatRender *r) {
    ChatMsg conv[64];
    for (int k = 0; k < 2; k++) {
        size_t n = ex->nprompt + ex->nresp[k];
        if (n > 64) return;
        memcpy(conv, ex->prompt, ex->nprompt * sizeof *conv);
        memcpy(conv + ex->nprompt, ex->resp[k], ex->nresp[k] * sizeof *conv);
        check(ex->nresp[k] >= 1 && ex->resp[k][0].role == CHAT_ASSISTANT &&
                  ex->resp[k][ex->nresp[k] - 1].role == CHAT_ASSISTANT && ex->resp[k][ex->nresp[k] - 1].len > 0,
              "response shape");
        for (int t = 0; t < CHAT_TPL_COUNT; t++) {
            check(chat_render((ChatTemplate)t, conv, n, r) == 0, "render");
            check(r->nmsgs == n, "nmsgs");
            size_t prev = 0;
            for (size_t i = 0; i < n; i++) {
                check(r->content_start[i] >= prev && r->content_start[i] < r->turn_end[i] &&
                          r->turn_end[i] <= r->npieces,
                      "marks in order");
                prev = r->turn_end[i];
            }
            size_t len;
            char *s = chat_render_text(r, 0, r->npieces, &len);
            check(s != NULL && strlen(s) <= len, "render text");
            free(s);
        }
    }
}

static void build_ids(const DataExample *ex, uint32_t maxlen) {
    char err[256];
    DataBuilder *b = data_builder_new(NULL, CHAT_TPL_NONE, 0, maxlen, err, sizeof err);
    check(b != NULL, "builder");
    DataPair p;
    data_pair_init(&p);
    int outcome;
    check(data_pair_build(b, ex, &p, &outcome, err, sizeof err) == 0, "build");
    if (outcome == DATA_PAIR_KEPT) {
        for (int k = 0; k < 2; k++) {
            const DataSeq *s = &p.seq[k];
            check(p.prompt_len <= s->n && (!maxlen || s->n <= maxlen), "lengths");
            check(!memcmp(s->ids, p.seq[0].ids, p.prompt_len * sizeof *s->ids), "shared prompt");
            uint32_t last = 1;
            for (size_t j = 0; j < s->nspans; j++) {
                check(s->spans[j].start >= last && s->spans[j].start < s->spans[j].end && s->spans[j].end <= s->n,
                      "spans");
                last = s->spans[j].end;
            }
            check(s->nspans > 0, "labels");
        }
    }
    data_pair_free(&p);
    data_builder_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > (1 << 20)) return 0;
    char err[512];
    cJSON *one = NULL;
    size_t col;
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = 0;
    if (jsonl_parse_line(line, size, 16, &one, &col, err, sizeof err) == 0) cJSON_Delete(one);
    else check(col <= size, "column inside the line");
    free(line);

    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) return 0;
    JsonlOpts o = {2048, 24};
    JsonlReader *r = jsonl_open_stream(f, "fuzz.jsonl", &o, err, sizeof err);
    check(r != NULL, "open");
    DataExample ex;
    data_example_init(&ex);
    ChatRender rd;
    chat_render_init(&rd);
    uint32_t maxlen = data[0] % 16;
    for (int rows = 0; rows < 64; rows++) {
        cJSON *row;
        int rc = jsonl_next(r, &row, err, sizeof err);
        if (rc == JSONL_END || rc == JSONL_FATAL) break;
        if (rc == JSONL_BAD) continue;
        DataFormat det;
        if (data_format_detect(row, &det, err, sizeof err) == 0)
            check(det > DATA_FMT_AUTO && det < DATA_FMT_COUNT, "detected format");
        for (int fmt = DATA_FMT_TRL; fmt < DATA_FMT_COUNT; fmt++) {
            if (data_example_from_row(row, (DataFormat)fmt, 1000, &ex, err, sizeof err)) continue;
            if (ex.is_ids) {
                check(fmt == DATA_FMT_IDS && ex.nids[1] > 0 && ex.nids[2] > 0, "id example");
                build_ids(&ex, maxlen);
            } else
                render_all(&ex, &rd);
        }
        cJSON_Delete(row);
    }
    chat_render_free(&rd);
    data_example_free(&ex);
    jsonl_close(r);
    fclose(f);
    return 0;
}
