/* Rewriting the top-level members of a JSON object TEXT without re-serializing it, so every
 * number, escape and member keeps the exact form the client sent (jansson would print 0.1 as
 * 0.10000000000000001 and refuses integers beyond 64 bits). The text must already be validated
 * as a JSON object (ld_json_parse_object). */
#ifndef LD_JSONTEXT_H
#define LD_JSONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* False, with err filled as jansson would, when text holds a raw NUL byte. jansson reads past
 * one outside strings as if it were not there ({"n":1<NUL>} parses), but such a text is not JSON
 * and would be stored, served and replicated with the byte in it. Every parse of client or
 * peer JSON goes through this first. */
bool ld_json_nul_free(const char *text, size_t len, json_error_t *err);

/* Parses text as JSON accepting any valid number (big integers become reals: only validation
 * and key inspection use the parsed tree). Returns NULL with err filled on invalid JSON. */
json_t *ld_json_parse(const char *text, size_t len, json_error_t *err);

/* Whether ld_json_parse would accept text and find a JSON object, decided without building the
 * tree (no allocation but for a number over 63 characters): the ingest path's check of a
 * replicated document, which it keeps as text. Same rules as jansson's parser with
 * ld_json_parse's flags: UTF-8 without overlong forms or surrogates, \u escapes with paired
 * surrogates (\u0000 in values, not in keys), numbers that stay finite as doubles, at most 2048
 * levels of nesting, no raw NUL. */
bool ld_json_object_valid(const char *text, size_t len);

/* Parses text as JSON the way the query lexer reads numbers: an integer that fits in 64 bits
 * stays an exact integer, only a wider one becomes a real (jansson alone rejects the whole text,
 * or with JSON_DECODE_INT_AS_REAL rounds every integer). NULL with err filled on invalid JSON. */
json_t *ld_json_parse_exact(const char *text, size_t len, json_error_t *err);

/* Returns a malloc'd object text: '{', then `prepend` (raw member text such as "\"Id\":\"x\"",
 * may be NULL), then every member of `text` for which drop(key, ctx) is false, '}'. Keys are
 * passed decoded. NULL when out of memory or the text is not an object. */
char *ld_json_rewrite_object(const char *text, size_t len, const char *prepend,
                             bool (*drop)(const char *key, void *ctx), void *ctx, size_t *out_len);

/* Finds the raw text of top-level member `name` (matched case-insensitively; the last one when
 * repeated) in a validated object text. */
bool ld_json_member_span(const char *text, size_t len, const char *name, size_t *vstart,
                         size_t *vlen);

#endif
