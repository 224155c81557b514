/* libevent's own error answers made JSON: evhttp answers a request it cannot parse or that is
 * far past its limits itself, with an HTML page, before any handler runs (libevent 2.1 has no
 * hook for it). http/conns.c spots such an answer in a connection's output and has it replaced
 * here by the same status with a JSON {"Error": "..."} body, as every other error litedist
 * gives. Loop thread only. */
#ifndef LD_ERRPAGE_H
#define LD_ERRPAGE_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>

/* The limits the messages name. */
typedef struct ld_errpage_limits {
    size_t max_header_bytes;
    size_t max_body_bytes;
} ld_errpage_limits;

/* Replaces the whole HTTP answer in out (evhttp's, status line first) by one with the same
 * status, a JSON error body and "Connection: close" (evhttp closes after these answers).
 * False, out untouched, when out does not start with a status line or memory fails. */
bool ld_errpage_to_json(struct evbuffer *out, const ld_errpage_limits *lim);

#endif
