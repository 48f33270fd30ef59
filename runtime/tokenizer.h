/* tokenizer.h — byte-level BPE tokenizer (GPT-2 / Qwen2 / Llama-3 style).
 *
 * Loaded from a directory holding either tokenizer.json (Hugging Face
 * layout: BPE model, merges as strings or pairs, added_tokens, normalizer,
 * pre_tokenizer) or vocab.json + merges.txt (optional `#version` header,
 * LF or CRLF), plus optional tokenizer_config.json / added_tokens.json /
 * special_tokens_map.json for special tokens. Text is handled as byte
 * strings with explicit lengths (NUL bytes are ordinary text). Encoding:
 * optional NFC normalisation, pre-tokenisation with the exact GPT-2 or Qwen2
 * regex (PCRE2, UTF + UCP), bytes mapped to the byte-level alphabet, BPE
 * merges by rank. Special-token text inside the input is plain text unless
 * TOK_PARSE_SPECIAL is given (see docs/tokenizer.md for the policy);
 * non-special added tokens are always matched, as in Hugging Face.
 * A loaded Tokenizer may be shared: tok_encode and tok_decode are safe to
 * call from several threads at once (only tok_set_memo and tok_free are not).
 */
#ifndef DPOC_TOKENIZER_H
#define DPOC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

enum { TOK_PARSE_SPECIAL = 1 }; /* tok_encode flags */

/* Loads from DIR (see above). NULL on error with "path: message" in err. */
Tokenizer *tok_load(const char *dir, char *err, size_t errlen);
void tok_free(Tokenizer *t);

/* Encodes len bytes of text, appending ids to *ids (realloc'd; *n and *cap
 * track it). Invalid UTF-8 is encoded byte by byte, never refused.
 * 0 ok, -1 out of memory. */
int tok_encode(const Tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n, size_t *cap);

/* Decodes ids to bytes (malloc'd, *len set; a trailing NUL is added but not
 * counted). Bytes that are not valid UTF-8 on their own are emitted as is.
 * -1 on an id outside the vocabulary (message in err). */
int tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *len, char *err, size_t errlen);

int32_t tok_vocab_size(const Tokenizer *t);               /* including added tokens */
int32_t tok_token_id(const Tokenizer *t, const char *s);  /* exact token string -> id, -1 */
const char *tok_token_str(const Tokenizer *t, int32_t id); /* id -> token string (byte-level form), NULL */
int tok_is_special(const Tokenizer *t, int32_t id);
/* The word memo (a bounded cache of pre-token -> ids, shared by threads) is
 * on after tok_load; results are identical with it off. For benchmarks and
 * tests; do not call while other threads encode with t. */
void tok_set_memo(Tokenizer *t, int on);
/* A hash of everything that determines encoding (vocab, merges, specials,
 * normaliser, pre-tokeniser), stable across machines: stored in .rec files. */
uint64_t tok_hash(const Tokenizer *t);

#endif
