/* chat_template.h — chat templates as code: chatml (Qwen2), internlm2,
 * llama3 and none (see docs/data.md for each one's official Jinja source).
 *
 * A conversation is rendered into a list of pieces, each one of: template
 * text (role headers, newlines, the default system prompt), data (a
 * message's content, pointing into the caller's bytes) or a control token
 * (<|im_start|>, <|eot_id|>, ...), which the caller encodes as the special
 * token it names, never through the tokenizer's text path. For every
 * message the render also records where its content starts and where its
 * turn ends (just after its end-of-turn token, before any separator), so
 * the caller can cut the prompt (everything before the first response
 * message's content: that includes its header, i.e. the generation prompt)
 * and the label spans without rendering twice.
 */
#ifndef DPOC_CHAT_TEMPLATE_H
#define DPOC_CHAT_TEMPLATE_H

#include <stddef.h>

typedef enum { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT } ChatRole;

typedef struct ChatMsg {
    ChatRole role;
    const char *text; /* UTF-8, len bytes, not necessarily NUL-terminated */
    size_t len;
} ChatMsg;

typedef enum { CHAT_TPL_CHATML, CHAT_TPL_INTERNLM2, CHAT_TPL_LLAMA3, CHAT_TPL_NONE, CHAT_TPL_COUNT } ChatTemplate;

typedef enum { CHAT_PIECE_TEXT, CHAT_PIECE_DATA, CHAT_PIECE_SPECIAL } ChatPieceKind;

typedef struct ChatPiece {
    ChatPieceKind kind;
    const char *s;
    size_t len;
} ChatPiece;

typedef struct ChatRender {
    ChatPiece *pieces;
    size_t npieces, cap;
    size_t *content_start; /* per message: index of its content's first piece */
    size_t *turn_end;      /* per message: index one past its end-of-turn piece */
    size_t nmsgs, msgcap;
} ChatRender;

const char *chat_role_name(ChatRole r);
/* "system", "user", "assistant" -> role; -1 otherwise. */
int chat_role_parse(const char *s, ChatRole *r);

const char *chat_template_name(ChatTemplate t);
int chat_template_parse(const char *s, ChatTemplate *t); /* 0 ok, -1 unknown */
/* The control tokens template t emits, NULL-terminated. */
const char *const *chat_template_specials(ChatTemplate t);
/* The default system prompt t inserts when a conversation has none, or NULL. */
const char *chat_template_default_system(ChatTemplate t);

void chat_render_init(ChatRender *r);
void chat_render_free(ChatRender *r);
/* Renders msgs[0..n) as one conversation (r is reset first). 0 ok, -1 out
 * of memory. */
int chat_render(ChatTemplate t, const ChatMsg *msgs, size_t n, ChatRender *r);
/* The bytes of pieces [from, to) (malloc'd, NUL-terminated, *len set). */
char *chat_render_text(const ChatRender *r, size_t from, size_t to, size_t *len);

/* Python's str.strip() (Jinja's `trim`): drops leading and trailing Unicode
 * whitespace from len bytes of UTF-8 at s; returns the new start, *len set. */
const char *chat_trim(const char *s, size_t *len);

#endif
