/* libFuzzer target for the RESP parser (core/resp/proto.c) and the value mapping
 * (core/resp/value.c). The input is a client's byte stream: every command in it is parsed as the
 * connection does (pipelining), and checked: arguments lie inside the input or the parser's
 * scratch, a command parsed from the whole input is parsed the same from any longer prefix fed
 * in two pieces (the parser is incremental: a prefix gives MORE or the same command), `want` never
 * asks for bytes that were already there, and each argument round-trips through the value
 * mapping when it is UTF-8, and, read as the inside of a JSON string literal that jansson
 * accepts, decodes to jansson's bytes. Small limits, so the length checks are reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "resp/proto.h"
#include "resp/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ld_resp_limits limits = {.max_bulk = 4096, .max_args = 64, .max_inline = 512};

/* The argument as the inside of a string literal: where jansson decodes it, GET's in-place
 * decoding (and the bulk reply it writes) gives the same bytes. */
static void same_as_jansson(const char *a, size_t n)
{
    char *lit = malloc(n + 2);
    if (!lit) return;
    lit[0] = '"';
    memcpy(lit + 1, a, n);
    lit[n + 1] = '"';
    json_t *v = json_loadb(lit, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v && json_is_string(v)) {
        size_t len;
        char *owned;
        const char *got = ld_resp_value_from_json(lit, n + 2, &len, &owned);
        if (!got || len != json_string_length(v) || memcmp(got, json_string_value(v), len) != 0)
            abort();
        free(owned);
        struct evbuffer *o = evbuffer_new();
        if (o && ld_resp_bulk_value(o, lit, n + 2) == 0) {
            char head[32];
            size_t hl = ld_resp_bulk_head(head, len);
            const char *r = (const char *)evbuffer_pullup(o, -1);
            if (evbuffer_get_length(o) != hl + len + 2 || memcmp(r, head, hl) != 0 ||
                memcmp(r + hl, json_string_value(v), len) != 0)
                abort();
        }
        if (o) evbuffer_free(o);
    }
    json_decref(v);
    free(lit);
}

static void check_args(const ld_resp_parser *p, const char *buf, size_t len)
{
    for (size_t i = 0; i < p->argc; i++) {
        const char *a = p->argv[i];
        bool in_buf = a >= buf && a + p->lens[i] <= buf + len;
        bool in_scratch =
            p->scratch && a >= p->scratch && a + p->lens[i] <= p->scratch + p->scratch_cap;
        if (!in_buf && !in_scratch) abort();
        if (p->lens[i] > limits.max_bulk && !in_scratch) abort();
        size_t jl, back_len;
        bool not_utf8;
        char *json = ld_resp_value_to_json(a, p->lens[i], &jl, &not_utf8);
        if (!json) {
            if (!not_utf8 || ld_resp_utf8_valid(a, p->lens[i])) abort();
            continue;
        }
        char *owned;
        const char *back = ld_resp_value_from_json(json, jl, &back_len, &owned);
        if (!back || back_len != p->lens[i] || memcmp(back, a, back_len) != 0) abort();
        free(owned);
        free(json);
        same_as_jansson(a, p->lens[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    ld_resp_parser p = {0}, q = {0};
    struct evbuffer *out = evbuffer_new();
    if (!out) return 0;
    size_t pos = 0;
    for (int n = 0; n < 1000 && pos < size; n++) {
        size_t used = 0, len = size - pos;
        ld_resp_status st = ld_resp_parse(&p, &limits, buf + pos, len, &used);
        if (st == LD_RESP_MORE) {
            if (p.want && p.want <= len) abort(); /* asked for bytes it had */
            break;
        }
        if (st == LD_RESP_ERROR) {
            if (!p.error || strncmp(p.error, "ERR ", 4) != 0) abort();
            ld_resp_error(out, "%s", p.error);
            break;
        }
        if (used == 0 || used > len) abort();
        check_args(&p, buf + pos, len);
        /* Any prefix shorter than the command is incomplete; the command itself parses alike. */
        size_t cut = used > 1 ? (size_t)(data[pos] % used) : 0;
        size_t qused = 0;
        if (cut && ld_resp_parse(&q, &limits, buf + pos, cut, &qused) == LD_RESP_OK) abort();
        if (ld_resp_parse(&q, &limits, buf + pos, used, &qused) != LD_RESP_OK || qused != used ||
            q.argc != p.argc)
            abort();
        for (size_t i = 0; i < p.argc; i++)
            if (q.lens[i] != p.lens[i] || memcmp(q.argv[i], p.argv[i], p.lens[i]) != 0) abort();
        /* The reply writers, on what was parsed. */
        ld_resp_array(out, p.argc);
        for (size_t i = 0; i < p.argc; i++)
            ld_resp_bulk(out, p.argv[i], p.lens[i]);
        ld_resp_null(out, 2 + (int)(p.argc % 2));
        pos += used;
        evbuffer_drain(out, evbuffer_get_length(out));
    }
    ld_resp_parser_free(&p);
    ld_resp_parser_free(&q);
    evbuffer_free(out);
    return 0;
}
