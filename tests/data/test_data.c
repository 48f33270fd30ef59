/* test_data.c — the data path below the CLI: JSONL reader, chat templates,
 * input formats, pair building.
 *
 * usage: test_data GROUP [TOKDIR]   (GROUP: jsonl, template, format, pair, qwen2)
 *
 * Every expected value is worked out by hand from the definitions: rendered
 * templates from the official Jinja templates (docs/data.md), columns from
 * counting bytes, token counts with the tiny tokenizer of tpl_tok/ (one
 * token per byte, "\n\n" merged, control tokens one each). The qwen2 group
 * checks that the joint chatml encoding equals encoding the whole rendered
 * string with special tokens parsed, which is what Hugging Face's
 * apply_chat_template(tokenize=True) does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/chat_template.h"
#include "runtime/data.h"
#include "runtime/jsonl.h"
#include "runtime/tokenizer.h"

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

#define CHECK_STR(got, want) CHECK(!strcmp((got), (want)), "\n  got:  %s\n  want: %s", (got), (want))

/* ---- jsonl ------------------------------------------------------------------------ */

/* Reads all of text as x.jsonl; returns a description of every outcome,
 * one per line: "ROW line idx" or the error message. */
static char *read_all(const char *text, size_t len, const JsonlOpts *o) {
    static char out[8192];
    out[0] = 0;
    FILE *f = fmemopen((void *)text, len, "r");
    if (!f) return strcpy(out, "fmemopen failed");
    char err[512];
    JsonlReader *r = jsonl_open_stream(f, "x.jsonl", o, err, sizeof err);
    for (;;) {
        cJSON *row;
        int rc = jsonl_next(r, &row, err, sizeof err);
        size_t k = strlen(out);
        if (rc == JSONL_END) break;
        if (rc == JSONL_ROW) {
            char *s = cJSON_PrintUnformatted(row);
            snprintf(out + k, sizeof out - k, "ROW %ld %llu %s\n", jsonl_line(r),
                     (unsigned long long)jsonl_row_index(r), s);
            free(s);
            cJSON_Delete(row);
        } else {
            snprintf(out + k, sizeof out - k, "%s\n", err);
            if (rc == JSONL_FATAL) break;
        }
    }
    if (jsonl_bom(r)) strncat(out, "BOM\n", sizeof out - strlen(out) - 1);
    jsonl_close(r);
    fclose(f);
    return out;
}

#define READS(text, want) CHECK_STR(read_all(text, sizeof(text) - 1, NULL), want)

static void test_jsonl(void) {
    READS("", "");
    READS("{\"a\":1}", "ROW 1 0 {\"a\":1}\n");
    READS("{\"a\":1}\r\n\r\n  \t\n[2]\n", "ROW 1 0 {\"a\":1}\nROW 4 1 [2]\n");
    READS("\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n", "ROW 1 0 {\"a\":1}\nROW 2 1 {\"b\":2}\nBOM\n");
    READS("\xEF\xBB\xBF\n{\"b\":2}\n", "ROW 2 0 {\"b\":2}\nBOM\n");
    READS("{}\n\xEF\xBB\xBF{}\n",
          "ROW 1 0 {}\nx.jsonl:2:1: byte-order mark (U+FEFF) at the start of a line other than the first\n");
    /* UTF-8: a stray byte, overlong, surrogate, above U+10FFFF, cut short */
    READS("{\"a\":\"\xff\"}\n", "x.jsonl:1:7: invalid UTF-8 (byte 0xff)\n");
    READS("{\"a\":\"\xC0\xAF\"}\n", "x.jsonl:1:7: invalid UTF-8 (byte 0xc0)\n");
    READS("{\"a\":\"\xE0\x80\xAF\"}\n", "x.jsonl:1:7: invalid UTF-8 (byte 0xe0)\n");
    READS("{\"a\":\"\xED\xA0\x80\"}\n", "x.jsonl:1:7: invalid UTF-8 (byte 0xed)\n");
    READS("{\"a\":\"\xF4\x90\x80\x80\"}\n", "x.jsonl:1:7: invalid UTF-8 (byte 0xf4)\n");
    READS("[1]\n{\"a\":\"\xE4\xBD\"}\n", "ROW 1 0 [1]\nx.jsonl:2:7: invalid UTF-8 (byte 0xe4)\n");
    READS("{\"a\":\"你好\"}\n", "ROW 1 0 {\"a\":\"你好\"}\n");
    /* with a BOM on line 1, columns count the file's bytes */
    READS("\xEF\xBB\xBF{\"a\":\xff}\n", "x.jsonl:1:9: invalid UTF-8 (byte 0xff)\nBOM\n");
    /* control bytes, NUL escapes */
    READS("{\"a\":\"x\ty\"}\n", "x.jsonl:1:8: invalid JSON: control byte 0x09 inside a string\n");
    READS("{\"a\":1}\x01\n", "x.jsonl:1:8: invalid JSON: control byte 0x01\n");
    READS("{\"a\":\"x\\u0000\"}\n", "x.jsonl:1:8: \\u0000 (NUL) inside a string is not supported\n");
    READS("{\"a\":\"x\\\\u0000\"}\n", "ROW 1 0 {\"a\":\"x\\\\u0000\"}\n");
    READS("{\"a\":\"\\u4f60\"}\n", "ROW 1 0 {\"a\":\"你\"}\n");
    /* invalid JSON */
    READS("{\"a\":1} x\n", "x.jsonl:1:9: invalid JSON\n");
    READS("{\"a\":1\n", "x.jsonl:1: invalid JSON: 1 unclosed bracket at the end of the line\n");
    READS("[{\"a\":[1\n", "x.jsonl:1: invalid JSON: 3 unclosed brackets at the end of the line\n");
    READS("{\"a\":\"1}\n", "x.jsonl:1: invalid JSON: the line ends inside a string\n");
    READS("{\"a\":\"1\\\"}\n", "x.jsonl:1: invalid JSON: the line ends inside a string\n");
    READS("{\"a\" 1}\n", "x.jsonl:1:6: invalid JSON\n");
    READS("nul\n", "x.jsonl:1:1: invalid JSON\n");
    READS("{\"a\":1,}\n[1]\n", "x.jsonl:1:8: invalid JSON\nROW 2 1 [1]\n");
    /* depth: brackets inside strings do not count */
    JsonlOpts deep = {0, 4};
    CHECK_STR(read_all("[[[[1]]]]\n", 10, &deep), "ROW 1 0 [[[[1]]]]\n");
    CHECK_STR(read_all("[[[[[1]]]]]\n", 12, &deep), "x.jsonl:1:5: JSON nested deeper than 4 levels\n");
    CHECK_STR(read_all("{\"a\":\"[[[[[[\"}\n", 15, &deep), "ROW 1 0 {\"a\":\"[[[[[[\"}\n");
    char big[300];
    memset(big, '[', 200);
    memset(big + 200, ']', 98);
    big[298] = '\n';
    CHECK_STR(read_all(big, 299, NULL), "x.jsonl:1:65: JSON nested deeper than 64 levels\n");
    /* size limit: 10 bytes; the CR of CRLF is not counted; the reader goes on */
    JsonlOpts small = {10, 0};
    const char *sz = "[1,2,3,4,5]\n[1,2,3,44]\r\n\"0123456789abc\"\n[7]";
    CHECK_STR(read_all(sz, strlen(sz), &small),
              "x.jsonl:1: row longer than 10 bytes (the --max-row-bytes limit)\n"
              "ROW 2 1 [1,2,3,44]\n"
              "x.jsonl:3: row longer than 10 bytes (the --max-row-bytes limit)\n"
              "ROW 4 3 [7]\n");
    /* jsonl_count_rows agrees with the reader */
    char path[] = "/tmp/dpoc_test_jsonl_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        const char *t = "\xEF\xBB\xBF \n{}\n\n  \r\n[1]\nbad\n";
        FILE *f = fdopen(fd, "w");
        fputs(t, f);
        fclose(f);
        uint64_t n = 99;
        char err[256];
        CHECK(jsonl_count_rows(path, NULL, &n, err, sizeof err) == 0 && n == 3, "count_rows gave %llu",
              (unsigned long long)n);
        CHECK(jsonl_count_rows("/nonexistent/x.jsonl", NULL, &n, err, sizeof err) < 0, "count of a missing file");
        CHECK_STR(err, "/nonexistent/x.jsonl: cannot open: No such file or directory");
        unlink(path);
    }
}

/* ---- templates ---------------------------------------------------------------------- */

static char *render(ChatTemplate t, const ChatMsg *m, size_t n, size_t from_msg_content, int whole) {
    static char buf[4096];
    ChatRender r;
    chat_render_init(&r);
    buf[0] = 0;
    if (chat_render(t, m, n, &r) == 0) {
        size_t to = whole ? r.npieces : r.content_start[from_msg_content];
        char *s = chat_render_text(&r, 0, to, NULL);
        snprintf(buf, sizeof buf, "%s", s);
        free(s);
    }
    chat_render_free(&r);
    return buf;
}

#define M(role, s) {role, s, sizeof(s) - 1}

static void test_template(void) {
    const ChatMsg conv[] = {M(CHAT_USER, "你好"), M(CHAT_ASSISTANT, "Hi!"), M(CHAT_USER, " q "),
                            M(CHAT_ASSISTANT, "\tA\n")};
    const ChatMsg sys[] = {M(CHAT_SYSTEM, "Be brief."), M(CHAT_USER, "x"), M(CHAT_ASSISTANT, "y")};
    /* chatml: Qwen2's default system prompt unless the first message is a system one */
    CHECK_STR(render(CHAT_TPL_CHATML, conv, 4, 0, 1),
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n"
              "<|im_start|>user\n q <|im_end|>\n<|im_start|>assistant\n\tA\n<|im_end|>\n");
    CHECK_STR(render(CHAT_TPL_CHATML, conv, 4, 3, 0),
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n"
              "<|im_start|>user\n q <|im_end|>\n<|im_start|>assistant\n");
    CHECK_STR(render(CHAT_TPL_CHATML, sys, 3, 2, 0),
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
    /* internlm2: <s>, no default system prompt */
    CHECK_STR(render(CHAT_TPL_INTERNLM2, conv, 2, 1, 0), "<s><|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n");
    CHECK_STR(render(CHAT_TPL_INTERNLM2, sys, 3, 0, 1),
              "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
              "<|im_start|>assistant\ny<|im_end|>\n");
    /* llama3: contents trimmed, no newline after <|eot_id|> */
    CHECK_STR(render(CHAT_TPL_LLAMA3, conv, 4, 0, 1),
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n你好<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHi!<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>");
    CHECK_STR(render(CHAT_TPL_LLAMA3, sys, 3, 2, 0),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* none: contents only */
    CHECK_STR(render(CHAT_TPL_NONE, conv, 4, 0, 1), "你好Hi! q \tA\n");
    CHECK_STR(render(CHAT_TPL_NONE, conv, 4, 3, 0), "你好Hi! q ");
    /* turn ends: just after the end-of-turn token, before chatml's "\n" */
    ChatRender r;
    chat_render_init(&r);
    CHECK(chat_render(CHAT_TPL_CHATML, conv, 2, &r) == 0, "render");
    char *s = chat_render_text(&r, r.content_start[1], r.turn_end[1], NULL);
    CHECK_STR(s, "Hi!<|im_end|>");
    free(s);
    CHECK(r.pieces[r.turn_end[1] - 1].kind == CHAT_PIECE_SPECIAL && r.pieces[r.content_start[1]].kind == CHAT_PIECE_DATA,
          "piece kinds");
    chat_render_free(&r);
    /* trim = Python str.strip(): ASCII and Unicode whitespace, nothing else */
    struct {
        const char *in, *out;
    } trims[] = {
        {"  a b \t\r\n", "a b"},
        {"\xE3\x80\x80中\xE3\x80\x80", "中"},       /* U+3000 ideographic space */
        {"\xC2\xA0x\xC2\x85", "x"},                  /* NBSP, NEL */
        {"\xE2\x80\x8Bx\xE2\x80\x8B", "\xE2\x80\x8Bx\xE2\x80\x8B"}, /* U+200B is not whitespace */
        {"\x1c\x1d\x1e\x1fy\x0b\x0c", "y"},
        {"\xE2\x80\xA8z\xE2\x80\xAF", "z"},          /* U+2028, U+202F */
        {"   ", ""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof trims / sizeof trims[0]; i++) {
        size_t len = strlen(trims[i].in);
        const char *t = chat_trim(trims[i].in, &len);
        CHECK(len == strlen(trims[i].out) && !memcmp(t, trims[i].out, len), "trim case %zu", i);
    }
    ChatTemplate t;
    CHECK(chat_template_parse("llama3", &t) == 0 && t == CHAT_TPL_LLAMA3, "parse llama3");
    CHECK(chat_template_parse("qwen", &t) < 0, "parse unknown");
}

/* ---- formats ------------------------------------------------------------------------- */

static const char *detect(const char *json) {
    static char out[512];
    cJSON *row = cJSON_Parse(json);
    DataFormat f;
    if (data_format_detect(row, &f, out, sizeof out) == 0) snprintf(out, sizeof out, "%s", data_format_name(f));
    cJSON_Delete(row);
    return out;
}

/* Converts and describes: "P:role=text|...;C:...;R:..." or the error. */
static const char *convert(DataFormat f, const char *json) {
    static char out[1024];
    cJSON *row = cJSON_Parse(json);
    DataExample ex;
    data_example_init(&ex);
    if (!row)
        snprintf(out, sizeof out, "test bug: bad JSON");
    else if (data_example_from_row(row, f, 100, &ex, out, sizeof out) == 0) {
        size_t k = 0;
        out[0] = 0;
        if (ex.is_ids) {
            for (int i = 0; i < 3; i++) {
                k += (size_t)snprintf(out + k, sizeof out - k, "%s", i ? ";" : "");
                for (size_t j = 0; j < ex.nids[i]; j++)
                    k += (size_t)snprintf(out + k, sizeof out - k, "%s%d", j ? "," : "", (int)ex.ids[i][j]);
            }
        } else {
            const ChatMsg *lists[3] = {ex.prompt, ex.resp[0], ex.resp[1]};
            size_t ns[3] = {ex.nprompt, ex.nresp[0], ex.nresp[1]};
            for (int i = 0; i < 3; i++) {
                k += (size_t)snprintf(out + k, sizeof out - k, "%s%c:", i ? ";" : "", "PCR"[i]);
                for (size_t j = 0; j < ns[i]; j++)
                    k += (size_t)snprintf(out + k, sizeof out - k, "%s%c=%.*s", j ? "|" : "",
                                          chat_role_name(lists[i][j].role)[0], (int)lists[i][j].len, lists[i][j].text);
            }
        }
    }
    data_example_free(&ex);
    cJSON_Delete(row);
    return out;
}

static void test_format(void) {
    CHECK_STR(detect("{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}"), "trl");
    CHECK_STR(detect("{\"chosen\":[],\"rejected\":[]}"), "trl");
    CHECK_STR(detect("{\"prompt\":[],\"chosen\":[],\"rejected\":[]}"), "trl");
    CHECK_STR(detect("{\"prompt\":\"p\",\"chosen\":[],\"rejected\":[],\"source\":\"s\"}"), "orpo");
    CHECK_STR(detect("{\"prompt\":\"p\",\"pos_resp\":\"a\",\"neg_resp\":\"b\",\"pos_type\":\"t\"}"), "cvalues");
    CHECK_STR(detect("{\"prompt_ids\":[1],\"chosen_ids\":[2],\"rejected_ids\":[3]}"), "ids");
    CHECK_STR(detect("{\"prompt\":\"p\",\"chosen\":\"a\",\"pos_resp\":\"b\"}"),
              "cannot tell the format: the row has fields of several formats (chosen/rejected and "
              "pos_resp/neg_resp); use --format");
    CHECK_STR(detect("{\"prompt\":\"p\",\"answer\":\"a\"}"),
              "cannot tell the format from the fields ('prompt', 'answer'): expected chosen/rejected (trl, xtuner, "
              "orpo), pos_resp/neg_resp (cvalues) or prompt_ids/chosen_ids/rejected_ids (ids); use --format");
    CHECK_STR(detect("{}"),
              "cannot tell the format from the fields (none): expected chosen/rejected (trl, xtuner, "
              "orpo), pos_resp/neg_resp (cvalues) or prompt_ids/chosen_ids/rejected_ids (ids); use --format");
    CHECK_STR(detect("[1]"), "a row must be a JSON object, got list");

    /* conversions */
    const DataFormat T = DATA_FMT_TRL, X = DATA_FMT_XTUNER, O = DATA_FMT_ORPO, C = DATA_FMT_CVALUES,
                     I = DATA_FMT_IDS;
    CHECK_STR(convert(T, "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}"), "P:u=p;C:a=a;R:a=b");
    CHECK_STR(convert(T, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
                         "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"b\"}]}"),
              "P:u=q;C:a=a;R:a=b");
    CHECK_STR(convert(T, "{\"chosen\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"q\"},"
                         "{\"role\":\"assistant\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"more\"},"
                         "{\"role\":\"assistant\",\"content\":\"a2\"}],"
                         "\"rejected\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"q\"},"
                         "{\"role\":\"assistant\",\"content\":\"b\"}]}"),
              "P:s=s|u=q;C:a=a|u=more|a=a2;R:a=b");
    CHECK_STR(convert(X, "{\"prompt\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":[{\"role\":\"assistant\","
                         "\"content\":\"a\"}],\"rejected\":[{\"content\":\"b\",\"role\":\"assistant\",\"x\":1}]}"),
              "P:u=q;C:a=a;R:a=b");
    CHECK_STR(convert(O, "{\"prompt\":\"ignored\",\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":"
                         "\"assistant\",\"content\":\"a\"}],\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},"
                         "{\"role\":\"assistant\",\"content\":\"b\"}],\"question\":\"q\"}"),
              "P:u=q;C:a=a;R:a=b");
    CHECK_STR(convert(C, "{\"prompt\":\"如果\",\"pos_resp\":\"不\",\"neg_resp\":\"会\",\"pos_type\":\"拒绝为主\","
                         "\"neg_type\":\"风险回复\"}"),
              "P:u=如果;C:a=不;R:a=会");
    CHECK_STR(convert(I, "{\"prompt_ids\":[],\"chosen_ids\":[1,2],\"rejected_ids\":[3e1]}"), ";1,2;30");

    /* errors */
    struct {
        DataFormat f;
        const char *row, *msg;
    } bad[] = {
        {T, "{\"prompt\":\"p\",\"chosen\":1,\"rejected\":\"b\"}",
         "field 'chosen' must be a string or a list of messages, got number"},
        {T, "{\"prompt\":\"p\",\"chosen\":\"a\"}", "missing field 'rejected'"},
        {T, "{\"prompt\":\"p\",\"rejected\":\"a\"}", "missing field 'chosen'"},
        {T, "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":[]}", "field 'rejected' must be a string like 'chosen', got list"},
        {T, "{\"chosen\":\"a\",\"rejected\":\"b\"}", "missing field 'prompt' (an implicit prompt needs message lists)"},
        {T, "{\"prompt\":null,\"chosen\":\"a\",\"rejected\":\"b\"}", "field 'prompt' must be a string like 'chosen', got null"},
        {T, "{\"prompt\":\"p\",\"chosen\":\"\",\"rejected\":\"b\"}", "field 'chosen' is empty"},
        {T, "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"\"}", "field 'rejected' is empty"},
        {T, "{\"prompt\":\"p\",\"chosen\":\"a\",\"chosen\":\"b\",\"rejected\":\"c\"}", "duplicate field 'chosen'"},
        {T, "{\"prompt\":\"p\",\"Chosen\":\"a\",\"rejected\":\"c\"}", "missing field 'chosen'"},
        {T, "{\"prompt\":\"p\",\"chosen\":[],\"rejected\":\"c\"}",
         "field 'rejected' must be a list of messages like 'chosen', got string"},
        {T, "{\"prompt\":\"p\",\"chosen\":[],\"rejected\":[]}",
         "field 'prompt' must be a list of messages like 'chosen', got string (for orpo-dpo-mix-40k rows, use --format orpo)"},
        {T, "{\"prompt\":[],\"chosen\":[],\"rejected\":[{\"role\":\"assistant\",\"content\":\"b\"}]}",
         "field 'chosen' has no response message"},
        {T, "{\"prompt\":[],\"chosen\":[\"hi\"],\"rejected\":[]}", "field 'chosen[0]' must be a message object, got string"},
        {T, "{\"prompt\":[{\"content\":\"q\"}],\"chosen\":[],\"rejected\":[]}", "missing field 'prompt[0].role'"},
        {T, "{\"prompt\":[{\"role\":\"user\"}],\"chosen\":[],\"rejected\":[]}", "missing field 'prompt[0].content'"},
        {T, "{\"prompt\":[{\"role\":\"gpt\",\"content\":\"q\"}],\"chosen\":[],\"rejected\":[]}",
         "field 'prompt[0].role' must be 'system', 'user' or 'assistant', got 'gpt'"},
        {T, "{\"prompt\":[{\"role\":1,\"content\":\"q\"}],\"chosen\":[],\"rejected\":[]}",
         "field 'prompt[0].role' must be a string, got number"},
        {T, "{\"prompt\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}],\"chosen\":[],\"rejected\":[]}",
         "field 'prompt[0].content' must be a string, got list"},
        {T, "{\"prompt\":[],\"chosen\":[{\"role\":\"user\",\"content\":\"a\"}],\"rejected\":[]}",
         "field 'chosen[0].role' must be 'assistant' (a response starts with the assistant), got 'user'"},
        {T, "{\"prompt\":[],\"chosen\":[{\"role\":\"assistant\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}],"
            "\"rejected\":[]}",
         "field 'chosen[1].role' must be 'assistant' (a response ends with the assistant), got 'user'"},
        {T, "{\"prompt\":[],\"chosen\":[{\"role\":\"assistant\",\"content\":\"a\"}],\"rejected\":[{\"role\":\"assistant\","
            "\"content\":\"\"}]}",
         "field 'rejected[0].content' is empty"},
        {T, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
            "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}",
         "fields 'chosen' and 'rejected' are the same conversation: no response after their shared prefix"},
        {T, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"}],"
            "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}",
         "field 'chosen' has no message after the prefix it shares with 'rejected'"},
        {T, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"user\",\"content\":\"a\"}],"
            "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}",
         "field 'chosen[1].role' must be 'assistant' (a response starts with the assistant), got 'user'"},
        {X, "{\"chosen\":[],\"rejected\":[]}", "missing field 'prompt'"},
        {X, "{\"prompt\":[],\"chosen\":\"a\",\"rejected\":[]}", "field 'chosen' must be a list of messages, got string"},
        {O, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"}],\"rejected\":\"x\"}",
         "field 'rejected' must be a list of messages, got string"},
        {O, "{\"chosen\":[],\"rejected\":[]}", "field 'chosen' is an empty list"},
        {O, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
            "\"rejected\":[{\"role\":\"assistant\",\"content\":\"b\"}]}",
         "fields 'chosen' and 'rejected' must have the same number of messages, got 2 and 1"},
        {O, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
            "\"rejected\":[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"assistant\",\"content\":\"b\"}]}",
         "field 'rejected[0]' differs from 'chosen[0]': the two conversations must share all but their last message"},
        {O, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"user\",\"content\":\"a\"}],"
            "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"b\"}]}",
         "field 'chosen[1].role' must be 'assistant' (a response starts with the assistant), got 'user'"},
        {O, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
            "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"\"}]}",
         "field 'rejected[1].content' is empty"},
        {C, "{\"prompt\":\"p\",\"pos_resp\":\"a\"}", "missing field 'neg_resp'"},
        {C, "{\"prompt\":\"p\",\"pos_resp\":\"\",\"neg_resp\":\"b\"}", "field 'pos_resp' is empty"},
        {C, "{\"prompt\":[\"p\"],\"pos_resp\":\"a\",\"neg_resp\":\"b\"}", "field 'prompt' must be a string, got list"},
        {C, "{\"prompt\":\"p\",\"pos_resp\":true,\"neg_resp\":\"b\"}", "field 'pos_resp' must be a string, got boolean"},
        {C, "[\"p\"]", "a row must be a JSON object, got list"},
        {I, "{\"prompt_ids\":[1],\"chosen_ids\":[],\"rejected_ids\":[2]}", "field 'chosen_ids' is empty"},
        {I, "{\"prompt_ids\":[1],\"chosen_ids\":[2,\"3\"],\"rejected_ids\":[2]}",
         "field 'chosen_ids[1]' must be an integer token id, got string"},
        {I, "{\"prompt_ids\":[1.5],\"chosen_ids\":[2],\"rejected_ids\":[2]}",
         "field 'prompt_ids[0]' must be a token id (an integer >= 0), got 1.5"},
        {I, "{\"prompt_ids\":[-1],\"chosen_ids\":[2],\"rejected_ids\":[2]}",
         "field 'prompt_ids[0]' must be a token id (an integer >= 0), got -1"},
        {I, "{\"prompt_ids\":[1],\"chosen_ids\":[2],\"rejected_ids\":[100]}",
         "field 'rejected_ids[0]' is 100, outside the vocabulary (size 100)"},
        {I, "{\"prompt_ids\":{},\"chosen_ids\":[2],\"rejected_ids\":[1]}",
         "field 'prompt_ids' must be a list of token ids, got object"},
        {I, "{\"chosen_ids\":[2],\"rejected_ids\":[1]}", "missing field 'prompt_ids'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_STR(convert(bad[i].f, bad[i].row), bad[i].msg);
}

/* ---- pairs (tpl_tok: one token per byte, "\n\n" merged) ----------------------------------- */

static Tokenizer *tpl_tok;

/* Builds the pair of a JSON row; describes "outcome prompt_len | n spans | n spans". */
static const char *pair(const char *json, ChatTemplate t, unsigned flags, uint32_t maxlen, DataPair *p) {
    static char out[512];
    char err[256];
    cJSON *row = cJSON_Parse(json);
    DataFormat f = DATA_FMT_AUTO;
    DataExample ex;
    data_example_init(&ex);
    DataBuilder *b = data_builder_new(tpl_tok, t, flags, maxlen, err, sizeof err);
    int outcome = -1;
    if (!row || data_format_detect(row, &f, err, sizeof err) ||
        data_example_from_row(row, f, tok_vocab_size(tpl_tok), &ex, err, sizeof err) ||
        data_pair_build(b, &ex, p, &outcome, err, sizeof err))
        snprintf(out, sizeof out, "error: %s", row ? err : "bad JSON");
    else {
        size_t k = (size_t)snprintf(out, sizeof out, "%d %u", outcome, p->prompt_len);
        for (int s = 0; s < 2; s++) {
            k += (size_t)snprintf(out + k, sizeof out - k, " | %zu", p->seq[s].n);
            for (size_t j = 0; j < p->seq[s].nspans; j++)
                k += (size_t)snprintf(out + k, sizeof out - k, " [%u,%u)", p->seq[s].spans[j].start,
                                      p->seq[s].spans[j].end);
        }
        if (p->encoded_apart) k += (size_t)snprintf(out + k, sizeof out - k, " apart");
        if (p->truncated) snprintf(out + k, sizeof out - k, " truncated");
    }
    data_builder_free(b);
    data_example_free(&ex);
    cJSON_Delete(row);
    return out;
}

static void test_pair(const char *tokdir) {
    char err[512];
    tpl_tok = tok_load(tokdir, err, sizeof err);
    CHECK(tpl_tok != NULL, "%s", err);
    if (!tpl_tok) return;
    DataPair p;
    data_pair_init(&p);
    const char *hi = "{\"prompt\":\"Hi\",\"chosen\":\"Yo\",\"rejected\":\"No way\"}";
    /* chatml prompt: <|im_start|> "system\nYou are a helpful assistant." (35) <|im_end|> "\n"
     * <|im_start|> "user\nHi" (7) <|im_end|> "\n" <|im_start|> "assistant\n" (10) = 59 */
    CHECK_STR(pair(hi, CHAT_TPL_CHATML, 0, 0, &p), "0 59 | 62 [59,62) | 66 [59,66)");
    /* the ids: one per byte, control tokens 258 (<|im_start|>) 259 (<|im_end|>) */
    CHECK(p.seq[0].n == 62 && p.seq[0].ids[0] == 258 && p.seq[0].ids[1] == 's' && p.seq[0].ids[36] == 259 &&
              p.seq[0].ids[37] == '\n' && p.seq[0].ids[58] == '\n' && p.seq[0].ids[59] == 'Y' &&
              p.seq[0].ids[61] == 259,
          "chatml ids");
    /* internlm2: <s> <|im_start|> "user\nHi" <|im_end|> "\n" <|im_start|> "assistant\n" = 22 */
    CHECK_STR(pair(hi, CHAT_TPL_INTERNLM2, 0, 0, &p), "0 22 | 25 [22,25) | 29 [22,29)");
    CHECK(p.seq[1].ids[0] == 260 && p.seq[1].ids[1] == 258, "internlm2 starts <s><|im_start|>");
    /* llama3: <|begin_of_text|> <|start_header_id|> "user" <|end_header_id|> "\n\nHi" (1 + 2)
     * <|eot_id|> <|start_header_id|> "assistant" <|end_header_id|> "\n\n" (1) = 23 */
    CHECK_STR(pair(hi, CHAT_TPL_LLAMA3, 0, 0, &p), "0 23 | 26 [23,26) | 30 [23,30)");
    CHECK(p.seq[0].ids[25] == 264 && p.seq[0].ids[22] == 256, "llama3 ends in <|eot_id|>, \\n\\n merged");
    CHECK_STR(pair(hi, CHAT_TPL_NONE, 0, 0, &p), "0 2 | 4 [2,4) | 8 [2,8)");

    /* truncation keeps the start: 62 -> 60, 66 -> 60 */
    CHECK_STR(pair(hi, CHAT_TPL_CHATML, 0, 60, &p), "0 59 | 60 [59,60) | 60 [59,60) truncated");
    CHECK_STR(pair(hi, CHAT_TPL_CHATML, 0, 63, &p), "0 59 | 62 [59,62) | 63 [59,63) truncated");
    CHECK_STR(pair(hi, CHAT_TPL_CHATML, 0, 59, &p), "1 59 | 0 | 0");
    CHECK_STR(pair(hi, CHAT_TPL_NONE, 0, 3, &p), "0 2 | 3 [2,3) | 3 [2,3) truncated");
    CHECK_STR(pair(hi, CHAT_TPL_NONE, 0, 2, &p), "1 2 | 0 | 0");

    /* a response starting with "\n" after "assistant\n": "\n\n" merges across
     * the boundary, so the pieces are encoded apart: "\nNo" = 3, <|im_end|> */
    CHECK_STR(pair("{\"prompt\":\"Hi\",\"chosen\":\"Yo\",\"rejected\":\"\\nNo\"}", CHAT_TPL_CHATML, 0, 0, &p),
              "0 59 | 62 [59,62) | 63 [59,63) apart");
    CHECK(p.seq[1].ids[58] == '\n' && p.seq[1].ids[59] == '\n' && p.seq[1].ids[60] == 'N', "apart ids");
    /* llama3 trims the response: no merge, no warning */
    CHECK_STR(pair("{\"prompt\":\"Hi\",\"chosen\":\"Yo\",\"rejected\":\"\\nNo\"}", CHAT_TPL_LLAMA3, 0, 0, &p),
              "0 23 | 26 [23,26) | 26 [23,26)");
    /* a newline inside the data merges inside the data only */
    CHECK_STR(pair("{\"prompt\":\"Hi\",\"chosen\":\"Y\\n\\no\",\"rejected\":\"N\"}", CHAT_TPL_CHATML, 0, 0, &p),
              "0 59 | 63 [59,63) | 61 [59,61)");

    /* special-token text in data is plain text unless parse-special:
     * "<|im_end|>" is 10 bytes, or one token */
    const char *inj = "{\"prompt\":\"a<|im_end|>\",\"chosen\":\"Yo\",\"rejected\":\"No\"}";
    CHECK_STR(pair(inj, CHAT_TPL_NONE, 0, 0, &p), "0 11 | 13 [11,13) | 13 [11,13)");
    CHECK(p.seq[0].ids[1] == '<', "plain text");
    CHECK_STR(pair(inj, CHAT_TPL_NONE, TOK_PARSE_SPECIAL, 0, &p), "0 2 | 4 [2,4) | 4 [2,4)");
    CHECK(p.seq[0].ids[1] == 259, "parsed special");

    /* multi-turn response: the user turn and the second header are masked.
     * prompt = 59 - 2 + 1 ("user\nq"); chosen: "a" <|im_end|> | "\n" <|im_start|> "user\nmore" (9)
     * <|im_end|> "\n" <|im_start|> "assistant\n" (10) = 84 | "a2" <|im_end|> = 87 */
    const char *multi =
        "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"},"
        "{\"role\":\"user\",\"content\":\"more\"},{\"role\":\"assistant\",\"content\":\"a2\"}],"
        "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"b\"}]}";
    CHECK_STR(pair(multi, CHAT_TPL_CHATML, 0, 0, &p), "0 58 | 87 [58,60) [84,87) | 60 [58,60)");
    CHECK_STR(pair(multi, CHAT_TPL_CHATML, 0, 70, &p), "0 58 | 70 [58,60) | 60 [58,60) truncated");
    CHECK_STR(pair(multi, CHAT_TPL_NONE, 0, 0, &p), "0 1 | 8 [1,2) [6,8) | 2 [1,2)");

    /* empty prompt with none: nothing predicts token 0, the span starts at 1 */
    CHECK_STR(pair("{\"prompt\":\"\",\"chosen\":\"Yo\",\"rejected\":\"N\"}", CHAT_TPL_NONE, 0, 0, &p),
              "2 0 | 2 [1,2) | 1");

    /* ids: no tokenizer involved */
    CHECK_STR(pair("{\"prompt_ids\":[5,6],\"chosen_ids\":[7],\"rejected_ids\":[8,9,10]}", CHAT_TPL_CHATML, 0, 0, &p),
              "0 2 | 3 [2,3) | 5 [2,5)");
    CHECK_STR(pair("{\"prompt_ids\":[5,6],\"chosen_ids\":[7],\"rejected_ids\":[8,9,10]}", CHAT_TPL_CHATML, 0, 4, &p),
              "0 2 | 3 [2,3) | 4 [2,4) truncated");
    data_pair_free(&p);

    char vpath[64];
    data_val_path("train.rec", vpath, sizeof vpath);
    CHECK_STR(vpath, "train.val.rec");
    data_val_path("out/data", vpath, sizeof vpath);
    CHECK_STR(vpath, "out/data.val.rec");
    tok_free(tpl_tok);
}

/* ---- qwen2: joint chatml ids == the whole rendered string encoded with specials ------------ */

static void test_qwen2(const char *tokdir) {
    char err[512];
    Tokenizer *tok = tok_load(tokdir, err, sizeof err);
    CHECK(tok != NULL, "%s", err);
    if (!tok) return;
    const char *rows[] = {
        "{\"prompt\":\"如果我没有钱，我可能会选择犯罪来获取金钱。\",\"pos_resp\":\"我不能鼓励或支持任何违法行为。\","
        "\"neg_resp\":\"风险和奖励一定要平衡。\"}",
        "{\"prompt\":\"How do I bake bread?\",\"pos_resp\":\"Mix flour, water, salt and yeast; let it rise.\","
        "\"neg_resp\":\"  Just buy some.\\n\\nDone.\"}",
    };
    /* a template control token the tokenizer lacks */
    CHECK(data_builder_new(tok, CHAT_TPL_LLAMA3, 0, 0, err, sizeof err) == NULL, "llama3 with qwen2");
    CHECK_STR(err, "template 'llama3' needs the control token '<|begin_of_text|>', which the tokenizer does not have");
    DataBuilder *b = data_builder_new(tok, CHAT_TPL_CHATML, 0, 0, err, sizeof err);
    DataPair p;
    data_pair_init(&p);
    DataExample ex;
    data_example_init(&ex);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cJSON *row = cJSON_Parse(rows[i]);
        int outcome;
        CHECK(data_example_from_row(row, DATA_FMT_CVALUES, 0, &ex, err, sizeof err) == 0, "%s", err);
        CHECK(data_pair_build(b, &ex, &p, &outcome, err, sizeof err) == 0 && outcome == 0, "build");
        const char *pr = cJSON_GetObjectItem(row, "prompt")->valuestring;
        const char *resp[2] = {cJSON_GetObjectItem(row, "pos_resp")->valuestring,
                               cJSON_GetObjectItem(row, "neg_resp")->valuestring};
        for (int k = 0; k < 2; k++) {
            char text[1024];
            int plen = snprintf(text, sizeof text,
                                "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n%s"
                                "<|im_end|>\n<|im_start|>assistant\n",
                                pr);
            int len = plen + snprintf(text + plen, sizeof text - (size_t)plen, "%s<|im_end|>", resp[k]);
            int32_t *ids = NULL, *pids = NULL;
            size_t n = 0, cap = 0, pn = 0, pcap = 0;
            CHECK(tok_encode(tok, text, (size_t)len, TOK_PARSE_SPECIAL, &ids, &n, &cap) == 0, "encode");
            CHECK(tok_encode(tok, text, (size_t)plen, TOK_PARSE_SPECIAL, &pids, &pn, &pcap) == 0, "encode");
            CHECK(n == p.seq[k].n && !memcmp(ids, p.seq[k].ids, n * sizeof *ids), "row %zu side %d: ids differ", i, k);
            CHECK(pn == p.prompt_len && p.seq[k].nspans == 1 && p.seq[k].spans[0].start == pn &&
                      p.seq[k].spans[0].end == n,
                  "row %zu side %d: boundary", i, k);
            CHECK(!p.encoded_apart, "row %zu: encoded apart", i);
            free(ids);
            free(pids);
        }
        cJSON_Delete(row);
    }
    data_example_free(&ex);
    data_pair_free(&p);
    data_builder_free(b);
    tok_free(tok);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_data jsonl|template|format|pair TOKDIR|qwen2 TOKDIR\n");
        return 2;
    }
    const char *g = argv[1];
    if (!strcmp(g, "jsonl"))
        test_jsonl();
    else if (!strcmp(g, "template"))
        test_template();
    else if (!strcmp(g, "format"))
        test_format();
    else if (!strcmp(g, "pair") && argc == 3)
        test_pair(argv[2]);
    else if (!strcmp(g, "qwen2") && argc == 3)
        test_qwen2(argv[2]);
    else {
        fprintf(stderr, "test_data: unknown group '%s'\n", g);
        return 2;
    }
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("OK %s\n", g);
    return failures != 0;
}
