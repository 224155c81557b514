/* The Redis protocol on the wire: a parser for client commands (RESP arrays of bulk strings, and
 * inline commands as redis-cli and telnet send them), bounded in every length, and the reply
 * writers for RESP2 and RESP3 (docs/resp.md). Pure: no I/O, no allocation per command once the
 * parser's arrays have grown, so the fuzz target drives it directly. */
#ifndef LD_RESP_PROTO_H
#define LD_RESP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

typedef struct ld_resp_limits {
    size_t max_bulk;   /* bytes of one argument */
    size_t max_args;   /* arguments of one command */
    size_t max_inline; /* bytes of an inline command line, and of a '*' or '$' header line */
} ld_resp_limits;

typedef enum ld_resp_status {
    LD_RESP_OK,    /* one command parsed (argc may be 0: an empty line or "*0", skip it) */
    LD_RESP_MORE,  /* the buffer ends inside a command: call again with more bytes */
    LD_RESP_ERROR, /* a protocol error: reply p->error ("Protocol error: ...") and close */
} ld_resp_status;

typedef struct ld_resp_parser {
    /* The command parsed: argv[i] (lens[i] bytes, not NUL-terminated) points into the buffer
     * given to ld_resp_parse, or into the parser's scratch for an inline command's quoted
     * arguments; valid until the next call or until the buffer changes. */
    size_t argc;
    const char **argv;
    size_t *lens;
    size_t cap;
    char *scratch; /* an inline command's unquoted arguments */
    size_t scratch_cap;
    /* After LD_RESP_MORE: the buffer length needed before another call can make progress (0:
     * any more bytes), so a large argument arriving in pieces is not re-parsed for each. */
    size_t want;
    const char *error; /* after LD_RESP_ERROR: the error line without its '-' ("ERR Protocol
                          error: invalid bulk length", as Redis writes it) */
    char errbuf[80];
} ld_resp_parser;

/* Parses the first command in buf[0..len). On LD_RESP_OK *used is the number of bytes it took.
 * Never reads past len. */
ld_resp_status ld_resp_parse(ld_resp_parser *p, const ld_resp_limits *lim, const char *buf,
                             size_t len, size_t *used);

/* Frees the parser's arrays (the struct itself is the caller's). */
void ld_resp_parser_free(ld_resp_parser *p);

/* Reply writers: each appends one RESP value to out, for protocol version proto (2 or 3).
 * They return false when memory runs out. */
bool ld_resp_simple(struct evbuffer *out, const char *s);      /* +s */
bool ld_resp_error(struct evbuffer *out, const char *fmt, ...) /* -fmt (CR/LF made spaces) */
    __attribute__((format(printf, 2, 3)));
bool ld_resp_int(struct evbuffer *out, long long v);              /* :v */
bool ld_resp_bulk(struct evbuffer *out, const char *s, size_t n); /* $n s */
/* Writes "$<n>\r\n" into buf (room for 24 bytes) and returns its length. */
size_t ld_resp_bulk_head(char *buf, size_t n);
bool ld_resp_null(struct evbuffer *out, int proto);              /* $-1 / _ */
bool ld_resp_null_array(struct evbuffer *out, int proto);        /* *-1 / _ */
bool ld_resp_array(struct evbuffer *out, size_t n);              /* *n */
bool ld_resp_map(struct evbuffer *out, int proto, size_t pairs); /* *2n / %n */

#endif
