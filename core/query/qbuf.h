/* A growable byte buffer for building JSON text (rows, literals, responses) without a tree,
 * and the JSON string encoder LiteQL writes names and values with. */
#ifndef LD_QBUF_H
#define LD_QBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ld_qbuf {
    char *data; /* NUL-terminated while not oom */
    size_t len;
    size_t cap;
    bool oom; /* an append failed: the content is incomplete and every later append is a no-op */
} ld_qbuf;

void ld_qbuf_init(ld_qbuf *b);
void ld_qbuf_free(ld_qbuf *b);

/* Appends; false (and oom set) when memory runs out. */
bool ld_qbuf_add(ld_qbuf *b, const void *p, size_t n);
bool ld_qbuf_addc(ld_qbuf *b, char c);
bool ld_qbuf_adds(ld_qbuf *b, const char *s);
bool ld_qbuf_addf(ld_qbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s[0..n) as a quoted JSON string: '"', '\\' and control characters escaped, the rest
 * (UTF-8) as is. */
bool ld_qbuf_json_string(ld_qbuf *b, const char *s, size_t n);

/* Hands the text over (malloc'd, NUL-terminated; *len without the NUL) and empties b. NULL
 * when oom (b is freed then too). */
char *ld_qbuf_take(ld_qbuf *b, size_t *len);

#endif
