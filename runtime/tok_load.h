/* tok_load.h — what the tokenizer loaders (tok_load.c, tok_json.c, tok_files.c) share.
 *
 * Files are read whole; JSON is parsed with cJSON and a parse error is
 * reported as "path:line:column: invalid JSON". `where` strings name the
 * file (and line) an error comes from.
 */
#ifndef DPOC_TOK_LOAD_H
#define DPOC_TOK_LOAD_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "tok_internal.h"

int tok_file_exists(const char *path);
/* Parses path as JSON. NULL on error (message in err). */
cJSON *tok_parse_json_file(const char *path, char *err, size_t errlen);
/* {"token": id, ...} into the vocabulary. */
int tok_add_vocab_object(Tokenizer *t, const cJSON *obj, const char *where, char *err, size_t errlen);
/* An added-token description {content, special, lstrip, rstrip, single_word, ...}
 * with its id (from the object's "id" or given as id >= 0). */
int tok_add_added_object(Tokenizer *t, const cJSON *o, long long id, const char *where, char *err, size_t errlen);

/* The two layouts; the Tokenizer comes from tok_new and is finished by the caller. */
int tok_load_json(Tokenizer *t, const char *dir, char *err, size_t errlen);
int tok_load_files(Tokenizer *t, const char *dir, char *err, size_t errlen);

#endif
