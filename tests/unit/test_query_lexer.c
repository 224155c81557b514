/* Unit tests for the LiteQL lexer: token kinds, keywords, literal values, positions (in
 * characters, not bytes) and every lexical error with its position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "query/lexer.h"

static ld_ql_tokens lex_ok(const char *q)
{
    ld_ql_tokens t;
    ld_ql_error err = {0};
    bool ok = ld_ql_lex(q, strlen(q), &t, &err);
    if (!ok) fail_msg("lexing \"%s\" failed: %s", q, err.msg);
    return t;
}

static void lex_fails(const char *q, const char *msg)
{
    ld_ql_tokens t;
    ld_ql_error err = {0};
    bool ok = ld_ql_lex(q, strlen(q), &t, &err);
    ld_ql_tokens_free(&t);
    if (ok) fail_msg("lexing \"%s\" should fail with \"%s\"", q, msg);
    assert_int_equal(err.code, LD_QE_SYNTAX);
    assert_string_equal(err.msg, msg);
}

static void kinds_and_keywords(void **state)
{
    (void)state;
    ld_ql_tokens t = lex_ok("select $.a, x[0] FROM c WHERE a<>1 AND b!=2 OR c<=3 and d>=4;");
    const ld_ql_tok want[] = {
        LD_QT_NAME,     LD_QT_NAME,   LD_QT_DOT,      LD_QT_NAME, LD_QT_COMMA,  LD_QT_NAME,
        LD_QT_LBRACKET, LD_QT_NUMBER, LD_QT_RBRACKET, LD_QT_NAME, LD_QT_NAME,   LD_QT_NAME,
        LD_QT_NAME,     LD_QT_NE,     LD_QT_NUMBER,   LD_QT_NAME, LD_QT_NAME,   LD_QT_NE,
        LD_QT_NUMBER,   LD_QT_NAME,   LD_QT_NAME,     LD_QT_LE,   LD_QT_NUMBER, LD_QT_NAME,
        LD_QT_NAME,     LD_QT_GE,     LD_QT_NUMBER,   LD_QT_SEMI, LD_QT_EOF,
    };
    assert_int_equal(t.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < t.n; i++)
        assert_int_equal(t.v[i].kind, want[i]);
    assert_int_equal(t.v[0].kw, LD_QK_SELECT); /* any case */
    assert_int_equal(t.v[1].kw, LD_QK_NONE);   /* $ */
    assert_int_equal(t.v[9].kw, LD_QK_FROM);
    assert_int_equal(t.v[15].kw, LD_QK_AND);
    assert_int_equal(t.v[23].kw, LD_QK_AND); /* lowercase and */
    ld_ql_tokens_free(&t);

    t = lex_ok("( ) [ ] { } , . : ; * + - / % = < > <= >= <> != $_id _x $a1");
    const ld_ql_tok ops[] = {
        LD_QT_LPAREN, LD_QT_RPAREN, LD_QT_LBRACKET, LD_QT_RBRACKET, LD_QT_LBRACE, LD_QT_RBRACE,
        LD_QT_COMMA,  LD_QT_DOT,    LD_QT_COLON,    LD_QT_SEMI,     LD_QT_STAR,   LD_QT_PLUS,
        LD_QT_MINUS,  LD_QT_SLASH,  LD_QT_PERCENT,  LD_QT_EQ,       LD_QT_LT,     LD_QT_GT,
        LD_QT_LE,     LD_QT_GE,     LD_QT_NE,       LD_QT_NE,       LD_QT_NAME,   LD_QT_NAME,
        LD_QT_NAME,   LD_QT_EOF,
    };
    assert_int_equal(t.n, sizeof ops / sizeof ops[0]);
    for (size_t i = 0; i < t.n; i++)
        assert_int_equal(t.v[i].kind, ops[i]);
    assert_int_equal(t.v[22].len, 4); /* $_id is one name */
    ld_ql_tokens_free(&t);
}

static void numbers(void **state)
{
    (void)state;
    ld_ql_tokens t = lex_ok("0 42 1.5 2e3 7E-2 9223372036854775807 9223372036854775808 0.25");
    assert_int_equal(t.n, 9);
    assert_true(json_is_integer(t.v[0].value) && json_integer_value(t.v[0].value) == 0);
    assert_true(json_is_integer(t.v[1].value) && json_integer_value(t.v[1].value) == 42);
    assert_true(json_is_real(t.v[2].value) && json_real_value(t.v[2].value) == 1.5);
    assert_true(json_is_real(t.v[3].value) && json_real_value(t.v[3].value) == 2000.0);
    assert_true(json_is_real(t.v[4].value) && json_real_value(t.v[4].value) == 0.07);
    assert_true(json_is_integer(t.v[5].value) && json_integer_value(t.v[5].value) == INT64_MAX);
    assert_true(json_is_real(t.v[6].value)); /* past 64 bits: a real */
    assert_true(json_is_real(t.v[7].value) && json_real_value(t.v[7].value) == 0.25);
    assert_int_equal(t.v[6].len, 19);
    ld_ql_tokens_free(&t);

    lex_fails("SELECT 01", "Invalid number '01' at position 8.");
    lex_fails("SELECT 1.", "Invalid number '1.' at position 8.");
    lex_fails("SELECT 1e", "Invalid number '1e' at position 8.");
    lex_fails("SELECT 12abc", "Invalid number '12abc' at position 8.");
    lex_fails("SELECT 1.2.3", "Invalid number '1.2.3' at position 8.");
    lex_fails("SELECT 1e999", "Number '1e999' is out of range at position 8.");
}

static void strings(void **state)
{
    (void)state;
    ld_ql_tokens t = lex_ok("'it''s' '' \"a\\\"b\\n\\u00e9\" 'a\\%' \"\"");
    assert_int_equal(t.n, 6);
    assert_int_equal(t.v[0].kind, LD_QT_STRING);
    assert_string_equal(json_string_value(t.v[0].value), "it's");
    assert_string_equal(json_string_value(t.v[1].value), "");
    assert_int_equal(t.v[2].kind, LD_QT_DSTRING);
    assert_string_equal(json_string_value(t.v[2].value), "a\"b\n\xc3\xa9");
    /* No backslash escapes in single quotes: LIKE patterns keep theirs. */
    assert_string_equal(json_string_value(t.v[3].value), "a\\%");
    assert_string_equal(json_string_value(t.v[4].value), "");
    ld_ql_tokens_free(&t);

    /* A NUL inside a double-quoted string is part of it. */
    t = lex_ok("\"a\\u0000b\"");
    assert_int_equal(json_string_length(t.v[0].value), 3);
    ld_ql_tokens_free(&t);

    lex_fails("SELECT 'abc", "Unterminated string at position 8.");
    lex_fails("SELECT 'it''s", "Unterminated string at position 8.");
    lex_fails("SELECT \"abc", "Unterminated string at position 8.");
    lex_fails("SELECT \"a\\\"", "Unterminated string at position 8.");
    lex_fails("SELECT \"a\\qb\"", "Invalid string: bad escape or control character at position 8.");
}

static void positions_count_characters(void **state)
{
    (void)state;
    /* 'é' is two bytes but one character. */
    ld_ql_tokens t = lex_ok("'\xc3\xa9\xc3\xa9' = x");
    assert_int_equal(t.v[0].cpos, 1);
    assert_int_equal(t.v[1].cpos, 6);
    assert_int_equal(t.v[1].off, 7);
    assert_int_equal(t.v[2].cpos, 8);
    assert_int_equal(t.v[3].kind, LD_QT_EOF);
    assert_int_equal(t.v[3].cpos, 9);
    ld_ql_tokens_free(&t);

    t = lex_ok("a\n  b");
    assert_int_equal(t.v[1].cpos, 5);
    ld_ql_tokens_free(&t);

    lex_fails("'\xc3\xa9' # x", "Unexpected character '#' at position 5.");
    lex_fails("a \xe2\x82\xac", "Unexpected character '\xe2\x82\xac' at position 3.");
}

static void comments(void **state)
{
    (void)state;
    ld_ql_tokens t = lex_ok("SELECT -- a comment\n $ /* another\n one */ FROM c --");
    assert_int_equal(t.n, 5);
    assert_int_equal(t.v[1].kind, LD_QT_NAME);
    assert_int_equal(t.v[1].cpos, 22);
    ld_ql_tokens_free(&t);
    lex_fails("SELECT /* open", "Unterminated comment at position 8.");
    /* a - followed by a number is an operator and a number, -- only is a comment */
    t = lex_ok("1 - -2");
    assert_int_equal(t.n, 5);
    ld_ql_tokens_free(&t);
}

static void bad_characters(void **state)
{
    (void)state;
    lex_fails("SELECT a | b", "Unexpected character '|' at position 10.");
    lex_fails("SELECT !a", "Unexpected character '!' at position 8.");
    lex_fails("SELECT `a`", "Unexpected character '`' at position 8.");
    lex_fails("SELECT @p", "Unexpected character '@' at position 8.");
    char nul[] = "SELECT \0";
    ld_ql_tokens t;
    ld_ql_error err = {0};
    assert_false(ld_ql_lex(nul, 8, &t, &err));
    ld_ql_tokens_free(&t);
    assert_string_equal(err.msg, "Unexpected character '\\x00' at position 8.");
}

static void empty_input(void **state)
{
    (void)state;
    ld_ql_tokens t = lex_ok("  \n\t ");
    assert_int_equal(t.n, 1);
    assert_int_equal(t.v[0].kind, LD_QT_EOF);
    ld_ql_tokens_free(&t);
    t = lex_ok("");
    assert_int_equal(t.n, 1);
    ld_ql_tokens_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kinds_and_keywords),
        cmocka_unit_test(numbers),
        cmocka_unit_test(strings),
        cmocka_unit_test(positions_count_characters),
        cmocka_unit_test(comments),
        cmocka_unit_test(bad_characters),
        cmocka_unit_test(empty_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
