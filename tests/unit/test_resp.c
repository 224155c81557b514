/* Unit tests for the RESP wire format (core/resp/proto.c): multibulk and inline commands,
 * pipelining, incremental input and `want`, every protocol error with Redis's text, the reply
 * writers for RESP2 and RESP3; and the value mapping (core/resp/value.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "resp/proto.h"
#include "resp/value.h"

static const ld_resp_limits lim = {.max_bulk = 16, .max_args = 4, .max_inline = 32};

static ld_resp_status parse(ld_resp_parser *p, const char *s, size_t *used)
{
    return ld_resp_parse(p, &lim, s, strlen(s), used);
}

static void arg_is(const ld_resp_parser *p, size_t i, const char *want)
{
    assert_true(i < p->argc);
    assert_int_equal(p->lens[i], strlen(want));
    assert_memory_equal(p->argv[i], want, strlen(want));
}

static void multibulk_and_pipelining(void **state)
{
    (void)state;
    ld_resp_parser p = {0};
    const char *two = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
    size_t used;
    assert_int_equal(parse(&p, two, &used), LD_RESP_OK);
    assert_int_equal(p.argc, 2);
    arg_is(&p, 0, "GET");
    arg_is(&p, 1, "k");
    assert_int_equal(used, 20);
    assert_int_equal(parse(&p, two + used, &used), LD_RESP_OK);
    arg_is(&p, 0, "PING");
    /* Empty and negative counts are no command. */
    assert_int_equal(parse(&p, "*0\r\n", &used), LD_RESP_OK);
    assert_int_equal(p.argc, 0);
    assert_int_equal(used, 4);
    assert_int_equal(parse(&p, "*-1\r\n", &used), LD_RESP_OK);
    assert_int_equal(p.argc, 0);
    /* A zero-length argument and binary bytes. */
    static const char bin[] = "*2\r\n$0\r\n\r\n$3\r\na\0b\r\n";
    assert_int_equal(ld_resp_parse(&p, &lim, bin, sizeof bin - 1, &used), LD_RESP_OK);
    assert_int_equal(p.lens[0], 0);
    assert_int_equal(p.lens[1], 3);
    assert_memory_equal(p.argv[1], "a\0b", 3);
    ld_resp_parser_free(&p);
}

static void incremental(void **state)
{
    (void)state;
    ld_resp_parser p = {0};
    const char *cmd = "*2\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n";
    size_t n = strlen(cmd), used;
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(ld_resp_parse(&p, &lim, cmd, k, &used), LD_RESP_MORE);
        /* Once the long argument's header is in, want names the whole command's length. */
        if (k >= 18) assert_int_equal(p.want, n);
    }
    assert_int_equal(ld_resp_parse(&p, &lim, cmd, n, &used), LD_RESP_OK);
    assert_int_equal(used, n);
    arg_is(&p, 1, "0123456789");
    ld_resp_parser_free(&p);
}

static void inline_commands(void **state)
{
    (void)state;
    ld_resp_parser p = {0};
    size_t used;
    assert_int_equal(parse(&p, "set  k \"a\\tb\\x41\" 'it\\'s'\r\nrest", &used), LD_RESP_OK);
    assert_int_equal(p.argc, 4);
    arg_is(&p, 0, "set");
    arg_is(&p, 2, "a\tbA");
    arg_is(&p, 3, "it's");
    assert_int_equal(used, strlen("set  k \"a\\tb\\x41\" 'it\\'s'\r\n"));
    assert_int_equal(parse(&p, "PING\n", &used), LD_RESP_OK); /* LF alone ends a line too */
    arg_is(&p, 0, "PING");
    assert_int_equal(parse(&p, "\r\n", &used), LD_RESP_OK); /* an empty line: no command */
    assert_int_equal(p.argc, 0);
    assert_int_equal(parse(&p, "PING", &used), LD_RESP_MORE);
    assert_int_equal(parse(&p, "ping \"a\r\n", &used), LD_RESP_ERROR);
    assert_string_equal(p.error, "ERR Protocol error: unbalanced quotes in request");
    assert_int_equal(parse(&p, "ping \"a\"b\r\n", &used), LD_RESP_ERROR); /* quote then text */
    assert_int_equal(parse(&p, "a b c d e\r\n", &used), LD_RESP_ERROR);   /* 5 > max_args */
    ld_resp_parser_free(&p);
}

static void protocol_errors(void **state)
{
    (void)state;
    ld_resp_parser p = {0};
    size_t used;
    static const struct {
        const char *in, *err;
    } cases[] = {
        {"*x\r\n", "ERR Protocol error: invalid multibulk length"},
        {"*5\r\n", "ERR Protocol error: invalid multibulk length"}, /* > max_args */
        {"*01\r\n", "ERR Protocol error: invalid multibulk length"},
        {"*1\r\nx\r\n", "ERR Protocol error: expected '$', got 'x'"},
        {"*1\r\n$x\r\n", "ERR Protocol error: invalid bulk length"},
        {"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"},
        {"*1\r\n$17\r\n", "ERR Protocol error: invalid bulk length"}, /* > max_bulk */
        {"*1\r\n$99999999999999999999\r\n", "ERR Protocol error: invalid bulk length"},
        {"*111111111111111111111111111111111", "ERR Protocol error: too big mbulk count string"},
        {"*1\r\n$111111111111111111111111111111111",
         "ERR Protocol error: too big bulk count string"},
        {"0123456789012345678901234567890123", "ERR Protocol error: too big inline request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(parse(&p, cases[i].in, &used), LD_RESP_ERROR);
        assert_string_equal(p.error, cases[i].err);
    }
    ld_resp_parser_free(&p);
}

static char *text(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

static void writers(void **state)
{
    (void)state;
    struct evbuffer *b = evbuffer_new();
    ld_resp_simple(b, "OK");
    ld_resp_error(b, "ERR bad %s", "key\r\nx");
    ld_resp_int(b, -2);
    ld_resp_bulk(b, "ab", 2);
    ld_resp_null(b, 2);
    ld_resp_null(b, 3);
    ld_resp_null_array(b, 2);
    ld_resp_array(b, 2);
    ld_resp_map(b, 2, 2);
    ld_resp_map(b, 3, 2);
    char *s = text(b);
    assert_string_equal(s, "+OK\r\n-ERR bad key  x\r\n:-2\r\n$2\r\nab\r\n$-1\r\n_\r\n*-1\r\n*2\r\n"
                           "*4\r\n%2\r\n");
    free(s);
    evbuffer_free(b);
}

static void values(void **state)
{
    (void)state;
    size_t n;
    bool not_utf8;
    char *j = ld_resp_value_to_json("a\"b\\c\n\x01", 7, &n, &not_utf8);
    assert_string_equal(j, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    assert_int_equal(n, strlen(j));
    char *owned;
    size_t bl;
    const char *back = ld_resp_value_from_json(j, n, &bl, &owned);
    assert_int_equal(bl, 7);
    assert_memory_equal(back, "a\"b\\c\n\x01", 7);
    assert_non_null(owned);
    free(owned);
    free(j);
    /* No escapes: a view between the quotes, nothing allocated. */
    back = ld_resp_value_from_json("\"plain\"", 7, &bl, &owned);
    assert_null(owned);
    assert_int_equal(bl, 5);
    assert_memory_equal(back, "plain", 5);
    /* Any other JSON value: its text as stored. */
    back = ld_resp_value_from_json("{\"a\": 1.10}", 11, &bl, &owned);
    assert_int_equal(bl, 11);
    assert_null(owned);
    /* NUL survives; bytes that are not UTF-8 are refused. */
    j = ld_resp_value_to_json("a\0b", 3, &n, &not_utf8);
    assert_string_equal(j, "\"a\\u0000b\"");
    back = ld_resp_value_from_json(j, n, &bl, &owned);
    assert_int_equal(bl, 3);
    assert_memory_equal(back, "a\0b", 3);
    free(owned);
    free(j);
    assert_null(ld_resp_value_to_json("\xff", 1, &n, &not_utf8));
    assert_true(not_utf8);
    assert_true(ld_resp_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    assert_false(ld_resp_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(ld_resp_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(ld_resp_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(ld_resp_utf8_valid("\xe2\x82", 2));         /* cut short */
}

/* The escapes jansson decodes, decoded alike in place: the value of a bulk reply, and what
 * is not a string literal refused. */
static void value_escapes(void **state)
{
    (void)state;
    static const char json[] = "\"q\\\"s\\\\l\\/b\\bf\\fn\\nr\\rt\\t\\u00e9\\u20ac\\ud83d\\ude00\"";
    static const char want[] = "q\"s\\l/b\bf\fn\nr\rt\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    char *owned;
    size_t bl;
    const char *back = ld_resp_value_from_json(json, sizeof json - 1, &bl, &owned);
    assert_non_null(back);
    assert_int_equal(bl, sizeof want - 1);
    assert_memory_equal(back, want, bl);
    free(owned);
    struct evbuffer *b = evbuffer_new();
    assert_int_equal(ld_resp_bulk_value(b, json, sizeof json - 1), 0);
    assert_int_equal(ld_resp_bulk_value(b, "\"plain\"", 7), 0);
    assert_int_equal(ld_resp_bulk_value(b, "[1,2]", 5), 0);
    assert_int_equal(ld_resp_bulk_value(b, "\"\"", 2), 0);
    char *s = text(b);
    char expect[128];
    snprintf(expect, sizeof expect, "$%zu\r\n%s\r\n$5\r\nplain\r\n$5\r\n[1,2]\r\n$0\r\n\r\n",
             sizeof want - 1, want);
    assert_string_equal(s, expect);
    free(s);
    /* Not a literal: a lone or reversed surrogate, a bad escape, a cut one, no closing quote.
     * Nothing is appended for them. */
    static const char *const bad[] = {
        "\"\\ud83d\"", "\"\\ude00\\ud83d\"", "\"\\x\"", "\"\\u12\"", "\"abc", "\"a\\\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(ld_resp_value_from_json(bad[i], strlen(bad[i]), &bl, &owned));
        assert_int_equal(ld_resp_bulk_value(b, bad[i], strlen(bad[i])), 1);
    }
    assert_int_equal(evbuffer_get_length(b), 0);
    evbuffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(multibulk_and_pipelining),
        cmocka_unit_test(incremental),
        cmocka_unit_test(inline_commands),
        cmocka_unit_test(protocol_errors),
        cmocka_unit_test(writers),
        cmocka_unit_test(values),
        cmocka_unit_test(value_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
