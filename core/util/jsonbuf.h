/* Serializing a jansson value straight into an evbuffer: no intermediate string that grows by
 * doubling (json_dumps) and is then copied again into the buffer. */
#ifndef LD_JSONBUF_H
#define LD_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <jansson.h>

/* Appends the JSON text of v (json_dumpb flags) to out. False when out of memory; out may then
 * hold a partial text, which the caller discards. */
bool ld_json_dump_evbuffer(const json_t *v, size_t flags, struct evbuffer *out);

/* Appends s (len bytes of UTF-8) as a quoted, escaped JSON string. False when s is not UTF-8
 * or out of memory. */
bool ld_json_string_evbuffer(const char *s, size_t len, struct evbuffer *out);

#endif
