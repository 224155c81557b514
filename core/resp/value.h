/* How RESP values map to the cache's JSON values (docs/resp.md): what a client SETs, a bulk
 * string of any bytes, is stored as a JSON string; what GET returns is a JSON string's contents,
 * or the JSON text of any other value (an object written over HTTP), so both APIs read what the
 * other wrote. */
#ifndef LD_RESP_VALUE_H
#define LD_RESP_VALUE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* True when s is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF); NUL and control characters are allowed. */
bool ld_resp_utf8_valid(const char *s, size_t n);

/* The JSON string literal holding bytes b (malloc'd, *out_len its length), escaping '"', '\'
 * and control characters. NULL when b is not UTF-8 (*not_utf8 set) or memory runs out. */
char *ld_resp_value_to_json(const char *b, size_t n, size_t *out_len, bool *not_utf8);

/* The bytes GET answers for the stored JSON value text json[0..n): a string's contents, any
 * other value's text as stored. Returns a view: json itself (or inside it) when no unescaping
 * is needed, else a malloc'd buffer also put in *owned (the caller frees it; NULL otherwise).
 * NULL when memory runs out or a string's text is not a valid JSON string literal. */
const char *ld_resp_value_from_json(const char *json, size_t n, size_t *out_len, char **owned);

/* Appends to o the bulk string GET answers for the stored JSON value text json[0..n), a
 * string's escapes decoded in place in o (no copy of the value on the way). 0 when appended,
 * 1 when the text is not a valid string literal (nothing appended), -1 when memory ran out. */
int ld_resp_bulk_value(struct evbuffer *o, const char *json, size_t n);

#endif
