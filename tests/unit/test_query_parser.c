/* Unit tests for the LiteQL parser: statement shapes, SQL precedence (checked through a
 * printed form of the tree), column names, limits, and every parse error with its position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "query/parser.h"
#include "query/qbuf.h"

/* ---------------------------------------------------------------------------------------------
 * A printed form of the tree: (op arg arg), paths as $.a[0], literals as JSON text
 * ------------------------------------------------------------------------------------------- */

static void print(const ld_ql_node *n, ld_qbuf *b)
{
    static const char *const fn[] = {"LOWER", "UPPER", "LENGTH", "SUBSTRING", "TRIM", "COALESCE"};
    const char *op = NULL;
    switch (n->kind) {
    case LD_QN_LITERAL:
        ld_qbuf_add(b, n->text, n->text_len);
        return;
    case LD_QN_PATH:
        ld_qbuf_addc(b, '$');
        for (size_t i = 0; i < n->nsegs; i++) {
            if (n->segs[i].is_index)
                ld_qbuf_addf(b, "[%zu]", n->segs[i].index);
            else
                ld_qbuf_addf(b, ".%s", n->segs[i].name);
        }
        return;
    case LD_QN_ID:
        ld_qbuf_adds(b, "#id");
        return;
    case LD_QN_COUNT:
        ld_qbuf_adds(b, "COUNT(*)");
        return;
    case LD_QN_NEG:
        op = "neg";
        break;
    case LD_QN_NOT:
        op = "NOT";
        break;
    case LD_QN_AND:
        op = "AND";
        break;
    case LD_QN_OR:
        op = "OR";
        break;
    case LD_QN_CMP:
    case LD_QN_ARITH:
        op = ld_ql_op_text((ld_ql_op)n->op);
        break;
    case LD_QN_LIKE:
        op = n->negated ? "NOT-LIKE" : "LIKE";
        break;
    case LD_QN_IN:
        op = n->negated ? "NOT-IN" : "IN";
        break;
    case LD_QN_BETWEEN:
        op = n->negated ? "NOT-BETWEEN" : "BETWEEN";
        break;
    case LD_QN_ISNULL:
        op = n->negated ? "IS-NOT-NULL" : "IS-NULL";
        break;
    case LD_QN_FUNC:
        op = fn[n->op];
        break;
    }
    ld_qbuf_addf(b, "(%s", op);
    for (size_t i = 0; i < n->nargs; i++) {
        ld_qbuf_addc(b, ' ');
        print(n->args[i], b);
    }
    ld_qbuf_addc(b, ')');
}

static ld_ql_stmt *parse_ok(const char *q)
{
    ld_ql_error err = {0};
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, &err);
    if (!s) fail_msg("parsing \"%s\" failed: %s", q, err.msg);
    return s;
}

/* Parses "SELECT $ FROM c WHERE <expr>" and compares the printed WHERE. */
static void where_is(const char *expr, const char *want)
{
    char q[512];
    snprintf(q, sizeof q, "SELECT $ FROM c WHERE %s", expr);
    ld_ql_stmt *s = parse_ok(q);
    ld_qbuf b;
    ld_qbuf_init(&b);
    print(s->where, &b);
    if (strcmp(b.data, want) != 0)
        fail_msg("%s\n  parsed as %s\n  expected  %s", expr, b.data, want);
    ld_qbuf_free(&b);
    ld_ql_stmt_free(s);
}

static void fails(const char *q, ld_ql_errcode code, const char *msg)
{
    ld_ql_error err = {0};
    ld_ql_limits lim = {.max_length = 1000, .max_depth = 16};
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), &lim, &err);
    if (s) {
        ld_ql_stmt_free(s);
        fail_msg("\"%s\" parsed; expected \"%s\"", q, msg);
    }
    if (strcmp(err.msg, msg) != 0) fail_msg("\"%s\"\n  error %s\n  expected %s", q, err.msg, msg);
    assert_int_equal(err.code, code);
}

/* ---------------------------------------------------------------------------------------------
 * Precedence
 * ------------------------------------------------------------------------------------------- */

static void precedence(void **state)
{
    (void)state;
    where_is("1 + 2 * 3 = 7", "(= (+ 1 (* 2 3)) 7)");
    where_is("(1 + 2) * 3 = 9", "(= (* (+ 1 2) 3) 9)");
    where_is("1 - 2 - 3 = 0", "(= (- (- 1 2) 3) 0)");
    where_is("8 / 4 / 2 = 1", "(= (/ (/ 8 4) 2) 1)");
    where_is("7 % 4 * 2 = 6", "(= (* (% 7 4) 2) 6)");
    where_is("-2 * 3 < 0", "(< (* -2 3) 0)");
    where_is("- $.a * 3 < 0", "(< (* (neg $.a) 3) 0)");
    where_is("- - $.a = 1", "(= (neg (neg $.a)) 1)");
    where_is("+$.a = 1", "(= $.a 1)");
    where_is("a OR b AND c", "(OR $.a (AND $.b $.c))");
    where_is("a AND b OR c AND d", "(OR (AND $.a $.b) (AND $.c $.d))");
    where_is("a OR b OR c", "(OR $.a $.b $.c)");
    where_is("a AND b AND c AND d", "(AND $.a $.b $.c $.d)");
    where_is("(a OR b) AND c", "(AND (OR $.a $.b) $.c)");
    where_is("NOT a = b", "(NOT (= $.a $.b))");
    where_is("NOT a AND b", "(AND (NOT $.a) $.b)");
    where_is("NOT NOT a", "(NOT (NOT $.a))");
    where_is("a = 1 + 2", "(= $.a (+ 1 2))");
    where_is("a BETWEEN 1 AND 2 AND b", "(AND (BETWEEN $.a 1 2) $.b)");
    where_is("a NOT BETWEEN 1 + 1 AND 2 * 3", "(NOT-BETWEEN $.a (+ 1 1) (* 2 3))");
    where_is("a LIKE 'x%' OR b NOT LIKE '_' ESCAPE '!'",
             "(OR (LIKE $.a \"x%\") (NOT-LIKE $.b \"_\" \"!\"))");
    where_is("a IN (1, 'b', null, [1,2]) AND b NOT IN (c)",
             "(AND (IN $.a 1 \"b\" null [1,2]) (NOT-IN $.b $.c))");
    where_is("a IS NULL OR b IS NOT NULL", "(OR (IS-NULL $.a) (IS-NOT-NULL $.b))");
    where_is("LOWER(a) = UPPER('x') AND LENGTH(b) > 2",
             "(AND (= (LOWER $.a) (UPPER \"x\")) (> (LENGTH $.b) 2))");
    where_is("SUBSTRING(a, 1 + 1, 2) = TRIM(b)", "(= (SUBSTRING $.a (+ 1 1) 2) (TRIM $.b))");
    where_is("COALESCE(a, b, 'z') = 'z'", "(= (COALESCE $.a $.b \"z\") \"z\")");
    where_is("lower(a) = 'x'", "(= (LOWER $.a) \"x\")"); /* any case */
}

static void paths_and_ids(void **state)
{
    (void)state;
    where_is("$.a.b[2].c = 1", "(= $.a.b[2].c 1)");
    where_is("a.b = $['x y'] ", "(= $.a.b $.x y)");
    where_is("$.a[\"k\"].\"m n\" = 1", "(= $.a.k.m n 1)");
    where_is("$.select.order = 1", "(= $.select.order 1)"); /* keywords after '.' are names */
    where_is("$ = {}", "(= $ {})");
    where_is("_id = 'x' OR Id = 'x' OR id = 'x' OR ID = 'x'",
             "(OR (= #id \"x\") (= #id \"x\") (= #id \"x\") (= #id \"x\"))");
    where_is("$._id = 'x' AND $_id = 'y'", "(AND (= #id \"x\") (= #id \"y\"))");
    where_is("$.Id = 'x' AND $.id = 'y'", "(AND (= $.Id \"x\") (= $.id \"y\"))"); /* fields */
    where_is("id.x = 1", "(= $.id.x 1)");
}

static void literals(void **state)
{
    (void)state;
    where_is("a = -9223372036854775808", "(= $.a -9223372036854775808)");
    where_is("a = {'k': [1, -2.50, \"x\"], b: {c: null}, \"d\": true}",
             "(= $.a {\"k\":[1,-2.50,\"x\"],\"b\":{\"c\":null},\"d\":true})");
    where_is("a = 'it''s'", "(= $.a \"it's\")");
    where_is("a = \"q\\\"\"", "(= $.a \"q\\\"\")");
    where_is("a = []", "(= $.a [])");
    ld_ql_stmt *s = parse_ok("SELECT $ FROM c WHERE a = -9223372036854775808");
    assert_true(json_is_integer(s->where->args[1]->value));
    assert_true(json_integer_value(s->where->args[1]->value) == INT64_MIN);
    ld_ql_stmt_free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------------------------- */

static void select_shapes(void **state)
{
    (void)state;
    ld_ql_stmt *s = parse_ok("SELECT $ FROM orders");
    assert_int_equal(s->kind, LD_QS_SELECT);
    assert_true(s->select_doc);
    assert_string_equal(s->collection, "orders");
    assert_null(s->where);
    ld_ql_stmt_free(s);

    s = parse_ok("select * from Orders$1 where $.a > 1;");
    assert_true(s->select_doc);
    assert_string_equal(s->collection, "Orders$1");
    assert_non_null(s->where);
    ld_ql_stmt_free(s);

    s = parse_ok("SELECT TOP 5 $ FROM c ORDER BY $.a DESC, $.b ASC, $.c OFFSET 3");
    assert_true(s->has_top && s->top == 5);
    assert_int_equal(s->norder, 3);
    assert_true(s->order[0].desc);
    assert_false(s->order[1].desc);
    assert_false(s->order[2].desc);
    assert_true(s->has_limit && s->limit == 5); /* TOP n is LIMIT n */
    assert_true(s->offset == 3);
    ld_ql_stmt_free(s);

    s = parse_ok("SELECT $ FROM c OFFSET 2 LIMIT 10");
    assert_true(s->has_limit && s->limit == 10 && s->offset == 2);
    ld_ql_stmt_free(s);

    s = parse_ok("SELECT COUNT(*) FROM c WHERE a = 1");
    assert_true(s->count);
    assert_int_equal(s->ncols, 1);
    assert_string_equal(s->cols[0].name, "[value]");
    ld_ql_stmt_free(s);

    s = parse_ok("SELECT count(*) AS n FROM \"order\"");
    assert_true(s->count);
    assert_string_equal(s->cols[0].name, "n");
    assert_string_equal(s->collection, "order");
    ld_ql_stmt_free(s);
}

static void column_names(void **state)
{
    (void)state;
    ld_ql_stmt *s = parse_ok("SELECT $.a.b, $.items[0], x AS y, $.n * 2, _id, Id, $_id AS i, "
                             "'z' AS \"q r\", $ AS doc FROM c");
    const char *want[] = {"b", "items", "y", "expr4", "_id", "Id", "i", "q r", "doc"};
    assert_int_equal(s->ncols, 9);
    for (size_t i = 0; i < 9; i++)
        assert_string_equal(s->cols[i].name, want[i]);
    assert_false(s->select_doc);
    ld_ql_stmt_free(s);

    /* A single unnamed column is the contract's scalar row. */
    s = parse_ok("SELECT LOWER($.a) FROM c");
    assert_string_equal(s->cols[0].name, "[value]");
    ld_ql_stmt_free(s);
    s = parse_ok("SELECT $.a FROM c");
    assert_string_equal(s->cols[0].name, "a");
    ld_ql_stmt_free(s);
}

static void write_statements(void **state)
{
    (void)state;
    ld_ql_stmt *s =
        parse_ok("INSERT INTO c VALUES {\"Id\": \"a\", 'n': 1.50, big: 123456789012345678901}");
    assert_int_equal(s->kind, LD_QS_INSERT);
    assert_string_equal(s->collection, "c");
    assert_true(json_is_object(s->object->value));
    /* Numbers keep the text they were written with. */
    assert_string_equal(s->object->text, "{\"Id\":\"a\",\"n\":1.50,\"big\":123456789012345678901}");
    ld_ql_stmt_free(s);

    s = parse_ok("update c set {x: 1} where a = 2");
    assert_int_equal(s->kind, LD_QS_UPDATE);
    assert_string_equal(s->object->text, "{\"x\":1}");
    assert_non_null(s->where);
    ld_ql_stmt_free(s);

    s = parse_ok("DELETE FROM c");
    assert_int_equal(s->kind, LD_QS_DELETE);
    assert_null(s->where);
    ld_ql_stmt_free(s);

    s = parse_ok("DELETE FROM c WHERE _id IN ('a', 'b');");
    assert_non_null(s->where);
    ld_ql_stmt_free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Errors, each with its position
 * ------------------------------------------------------------------------------------------- */

static void index_ddl(void **state)
{
    (void)state;
    ld_ql_stmt *s = parse_ok("CREATE INDEX by_a ON orders ($.a.b, c[0], $.\"x y\");");
    assert_int_equal(s->kind, LD_QS_CREATE_INDEX);
    assert_string_equal(s->index_name, "by_a");
    assert_string_equal(s->collection, "orders");
    assert_false(s->if_exists);
    assert_int_equal(s->nindex_paths, 3);
    assert_string_equal(s->index_paths[0], "$.a.b");
    assert_string_equal(s->index_paths[1], "c[0]");
    assert_string_equal(s->index_paths[2], "$.\"x y\"");
    ld_ql_stmt_free(s);
    s = parse_ok("create index if not exists i ON \"order\" ($.a)");
    assert_true(s->if_exists);
    assert_string_equal(s->collection, "order");
    ld_ql_stmt_free(s);
    s = parse_ok("Drop Index If Exists i on c");
    assert_int_equal(s->kind, LD_QS_DROP_INDEX);
    assert_true(s->if_exists);
    assert_int_equal(s->nindex_paths, 0);
    ld_ql_stmt_free(s);
    /* The words are not reserved. */
    ld_ql_stmt_free(parse_ok("SELECT index, on, drop FROM create WHERE exists = if"));

    fails("CREATE INDEX i ON c", LD_QE_SYNTAX,
          "Expected '(' and the indexed paths but found the end of the query at position 20.");
    fails("CREATE INDEX i ON c ()", LD_QE_SYNTAX,
          "Expected a path such as $.a.b but found ')' at position 22.");
    fails("CREATE INDEX i ON c ($)", LD_QE_SYNTAX,
          "An index path must name a member below the document, such as $.a at position 22.");
    fails("CREATE INDEX i ON c (_id)", LD_QE_SYNTAX,
          "An index path cannot be the document id (documents are already in id order) at "
          "position 22.");
    fails("CREATE INDEX i ON c ($.a, )", LD_QE_SYNTAX,
          "Expected a path such as $.a.b but found ')' at position 27.");
    fails("CREATE INDEX i ON c ($.a + 1)", LD_QE_SYNTAX,
          "Expected ')' but found '+' at position 26.");
    fails("CREATE INDEX $i ON c ($.a)", LD_QE_SYNTAX,
          "Invalid index name: letters, digits, '_' and '$', at most 64, not starting with '$' at "
          "position 14.");
    fails("CREATE INDEX select ON c ($.a)", LD_QE_SYNTAX,
          "Expected an index name but found 'select' at position 14.");
    fails("CREATE INDEX IF EXISTS i ON c ($.a)", LD_QE_SYNTAX,
          "Expected NOT but found 'EXISTS' at position 17.");
    fails("DROP INDEX i", LD_QE_SYNTAX,
          "Expected ON but found the end of the query at position 13.");
    fails("DROP INDEX i ON c ($.a)", LD_QE_SYNTAX, "Unexpected token '(' at position 19.");
    fails("CREATE INDEX i ON c ($.a,$.b,$.c,$.d,$.e,$.f,$.g,$.h,$.i)", LD_QE_SYNTAX,
          "An index has at most 8 paths at position 54.");
}

static void contract_errors(void **state)
{
    (void)state;
    fails("", LD_QE_EMPTY, "Query is required.");
    fails("   -- only a comment", LD_QE_EMPTY, "Query is required.");
    fails("SELECT $ FROM c; SELECT $ FROM d", LD_QE_MULTI, "Only one query statement is allowed.");
    fails("SELECT $ FROM c;;", LD_QE_MULTI, "Only one query statement is allowed.");
    fails(";SELECT $ FROM c", LD_QE_MULTI, "Only one query statement is allowed.");
    fails("SELECT $ FROM c; 'unterminated", LD_QE_MULTI, "Only one query statement is allowed.");
    fails("DROP TABLE c", LD_QE_COMMAND, "Unable to determine query command.");
    fails("DESCRIBE SELECT $ FROM c", LD_QE_COMMAND, "Unable to determine query command.");
    fails("$ FROM c", LD_QE_COMMAND, "Unable to determine query command.");
    fails(";", LD_QE_COMMAND, "Unable to determine query command.");
}

static void syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *q, *msg;
    } cases[] = {
        {"SELECT FROM c", "Unexpected token 'FROM' at position 8."},
        {"SELECT $ FROM",
         "Expected a collection name but found the end of the query at position 14."},
        {"SELECT $ FROM WHERE", "Expected a collection name but found 'WHERE' at position 15."},
        {"SELECT $ FROM 'c'", "Expected a collection name but found ''c'' at position 15."},
        {"SELECT $ c", "Expected FROM but found 'c' at position 10."},
        {"SELECT $ FROM c WHERE", "Unexpected end of query at position 22."},
        {"SELECT $ FROM c WHERE a =", "Unexpected end of query at position 26."},
        {"SELECT $ FROM c WHERE a = 1 b", "Unexpected token 'b' at position 29."},
        {"SELECT $ FROM c WHERE a < b < c", "Unexpected token '<' at position 29."},
        {"SELECT $ FROM c WHERE (a = 1",
         "Expected ')' but found the end of the query at position 29."},
        {"SELECT $ FROM c WHERE a = 1)", "Unexpected token ')' at position 28."},
        {"SELECT $ FROM c WHERE a IN ()", "IN needs at least one value at position 29."},
        {"SELECT $ FROM c WHERE a IN 1", "Expected '(' after IN but found '1' at position 28."},
        {"SELECT $ FROM c WHERE a BETWEEN 1 OR 2", "Expected AND but found 'OR' at position 35."},
        {"SELECT $ FROM c WHERE a IS 1", "Expected NULL but found '1' at position 28."},
        {"SELECT $ FROM c WHERE a NOT = 1", "Unexpected token 'NOT' at position 25."},
        {"SELECT $ FROM c WHERE FOO(a) = 1", "Unknown function 'FOO' at position 23."},
        {"SELECT $ FROM c WHERE LOWER() = 1", "LOWER takes 1 argument, got 0 at position 23."},
        {"SELECT $ FROM c WHERE SUBSTRING(a) = 1",
         "SUBSTRING takes 2 or 3 arguments, got 1 at position 23."},
        {"SELECT $ FROM c WHERE COALESCE() = 1",
         "COALESCE takes 1 to 64 arguments, got 0 at position 23."},
        {"SELECT $ FROM c WHERE LOWER(a b) = 1",
         "Expected ',' or ')' but found 'b' at position 31."},
        {"SELECT $ FROM c WHERE $.a[*] = 1",
         "Array wildcards '[*]' are not supported at position 27."},
        {"SELECT $ FROM c WHERE $.a[-1] = 1",
         "Expected an array index (a non-negative integer) or a quoted member name but found '-' "
         "at position 27."},
        {"SELECT $ FROM c WHERE $.a[0 = 1", "Expected ']' but found '=' at position 29."},
        {"SELECT $ FROM c WHERE $. = 1",
         "Expected a member name after '.' but found '=' at position 26."},
        {"SELECT $ FROM c WHERE $x = 1",
         "Unknown name '$x' (paths start with '$.' or a member name) at position 23."},
        {"SELECT $ FROM c WHERE a = {b: $.x}",
         "Expected a JSON value (JSON literals hold constants only) but found '$' at position 31."},
        {"SELECT $ FROM c WHERE a = {b: 1, b: 2}",
         "Duplicate key b in JSON object at position 34."},
        {"SELECT $ FROM c WHERE a = {1: 2}",
         "Expected a member name but found '1' at position 28."},
        {"SELECT $ FROM c WHERE a = [1, 2",
         "Expected ',' or ']' but found the end of the query at position 32."},
        {"SELECT $ FROM c WHERE a = {'x' 1}", "Expected ':' but found '1' at position 32."},
        {"SELECT $ FROM c GROUP BY a", "GROUP BY is not supported at position 17."},
        {"SELECT $ FROM c JOIN d", "JOIN is not supported at position 17."},
        {"SELECT $ FROM c LEFT JOIN d", "JOIN is not supported at position 17."},
        {"SELECT DISTINCT $.a FROM c", "DISTINCT is not supported at position 8."},
        {"SELECT $ FROM c UNION SELECT $ FROM d", "UNION is not supported at position 17."},
        {"SELECT $ FROM c WHERE CASE WHEN a THEN 1 END = 1",
         "CASE is not supported at position 23."},
        {"SELECT $ FROM c ORDER a", "Expected BY but found 'a' at position 23."},
        {"SELECT $ FROM c ORDER BY 1", "ORDER BY column positions are not supported (order by an "
                                       "expression such as $.name) at position 26."},
        {"SELECT $ FROM c LIMIT",
         "LIMIT needs a non-negative integer but found the end of the query at position 22."},
        {"SELECT $ FROM c LIMIT -1", "LIMIT needs a non-negative integer at position 23."},
        {"SELECT $ FROM c LIMIT 1.5", "LIMIT needs a non-negative integer at position 23."},
        {"SELECT $ FROM c LIMIT 1 LIMIT 2", "Unexpected token 'LIMIT' at position 25."},
        {"SELECT $ FROM c OFFSET x", "OFFSET needs a non-negative integer at position 24."},
        {"SELECT TOP x $ FROM c", "TOP needs a non-negative integer at position 12."},
        {"SELECT TOP 5 $ FROM c LIMIT 3", "TOP and LIMIT cannot be used together at position 23."},
        {"SELECT *, $.a FROM c", "Expected FROM but found ',' at position 9."},
        {"SELECT $.a AS FROM c",
         "Expected a column name after AS but found 'FROM' at position 15."},
        {"SELECT $.a, $.b.a FROM c",
         "Duplicate column name 'a' (use AS to rename) at position 13."},
        {"SELECT COUNT(*), $.a FROM c",
         "COUNT(*) is only allowed as the whole SELECT list at position 8."},
        {"SELECT LENGTH(COUNT(*)) FROM c",
         "COUNT(*) is only allowed as the whole SELECT list at position 15."},
        {"SELECT $ FROM c WHERE COUNT(*) > 1",
         "COUNT(*) is only allowed as the whole SELECT list at position 23."},
        {"SELECT COUNT($.a) FROM c",
         "Only COUNT(*) is supported (COUNT of an expression is not) at position 8."},
        {"INSERT c VALUES {}", "Expected INTO but found 'c' at position 8."},
        {"INSERT INTO c {}", "Expected VALUES but found '{' at position 15."},
        {"INSERT INTO c VALUES ('a')",
         "INSERT needs VALUES followed by one JSON object at position 22."},
        {"INSERT INTO c VALUES {Id: 'a'}, {Id: 'b'}", "Unexpected token ',' at position 31."},
        {"UPDATE c SET a = 1", "UPDATE needs SET followed by a JSON object of the fields to merge "
                               "(SET field = value is not supported) at position 14."},
        {"UPDATE c {a: 1}", "Expected SET but found '{' at position 10."},
        {"UPDATE c SET {a: 1} WHERE", "Unexpected end of query at position 26."},
        {"DELETE c", "Expected FROM but found 'c' at position 8."},
        {"DELETE FROM c LIMIT 1", "Unexpected token 'LIMIT' at position 15."},
        {"SELECT $ FROM c WHERE a = 'x", "Unterminated string at position 27."},
        {"SELECT $ FROM c WHERE a = 01", "Invalid number '01' at position 27."},
        /* found by the fuzzer: a member name with U+0000 made a row jansson cannot read */
        {"SELECT $.\"\\u0000\" FROM c", "A name cannot contain U+0000 at position 10."},
        {"SELECT a AS \"\\u0000\" FROM c", "A name cannot contain U+0000 at position 13."},
        {"SELECT a[\"x\\u0000\"] FROM c", "A name cannot contain U+0000 at position 10."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        fails(cases[i].q, LD_QE_SYNTAX, cases[i].msg);
}

/* Inputs the fuzzer found (tests/fuzz/fuzz_query.c), kept as regression cases. */
static void fuzz_regressions(void **state)
{
    (void)state;
    /* A NUL in a JSON literal's member name: jansson cannot read such a document back, so the
     * literal is refused rather than stored. */
    static const char nul_key[] = "INSERT INTO c VALUES {\"Id\": \"a\", 'n\x0f\0\0\0': 1}";
    ld_ql_error err = {0};
    assert_null(ld_ql_parse(nul_key, sizeof nul_key - 1, NULL, &err));
    assert_string_equal(err.msg, "A member name may not contain a NUL character at position 34.");
    fails("SELECT $ FROM c WHERE a = {\"x\\u0000\": 1}", LD_QE_SYNTAX,
          "A member name may not contain a NUL character at position 28.");
    /* A number too large for a double, written with 400 digits: the message quotes 40 of them
     * and still ends with the position. */
    char q[600];
    int o = snprintf(q, sizeof q, "SELECT $ FROM c WHERE a = ");
    memset(q + o, '6', 400);
    q[o + 400] = '\0';
    fails(q, LD_QE_SYNTAX,
          "Number '6666666666666666666666666666666666666666...' is out of range at position 27.");
}

static void type_errors(void **state)
{
    (void)state;
    static const struct {
        ld_ql_errcode code;
        const char *q, *msg;
    } cases[] = {
        {LD_QE_TYPE, "SELECT $ FROM c WHERE 'a' + 1 = 2",
         "Operator '+' needs numbers, got string at position 23."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE $.a * true > 1",
         "Operator '*' needs numbers, got boolean at position 29."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE -'x' = 1",
         "Operator '-' needs a number, got string at position 24."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE [1] % 2 = 1",
         "Operator '%' needs numbers, got array at position 23."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE LOWER(1) = 'a'",
         "LOWER needs a string, got number at position 29."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE TRIM({}) = 'a'",
         "TRIM needs a string, got object at position 28."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE LENGTH(5) = 1",
         "LENGTH needs a string, an array or an object, got number at position 30."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE SUBSTRING('abc', 'x') = 'a'",
         "SUBSTRING needs integer positions, got string at position 40."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE 1 AND a",
         "AND needs booleans, got number at position 23."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE a OR 'x'",
         "OR needs booleans, got string at position 28."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE NOT 5",
         "NOT needs a boolean, got number at position 27."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE $.a + 1",
         "WHERE needs a boolean condition, got number at position 27."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE 'abc'",
         "WHERE needs a boolean condition, got string at position 23."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE LOWER(a)",
         "WHERE needs a boolean condition, got string at position 23."},
        {LD_QE_TYPE, "UPDATE c SET {a: 1} WHERE 3",
         "WHERE needs a boolean condition, got number at position 27."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE a LIKE 5",
         "LIKE needs a string pattern, got number at position 30."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE 5 LIKE 'a'",
         "LIKE needs a string, got number at position 23."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE a LIKE 'x' ESCAPE 'ab'",
         "ESCAPE needs a single character at position 41."},
        {LD_QE_TYPE, "SELECT $ FROM c WHERE a LIKE 'x' ESCAPE 1",
         "ESCAPE needs a string, got number at position 41."},
        {LD_QE_RUNTIME, "SELECT $ FROM c WHERE a LIKE 'x\\'",
         "LIKE pattern must not end with the escape character at position 30."},
        {LD_QE_RUNTIME, "SELECT $ FROM c WHERE a LIKE 'x!' ESCAPE '!'",
         "LIKE pattern must not end with the escape character at position 30."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        fails(cases[i].q, cases[i].code, cases[i].msg);
    /* Types that only data can decide are not errors here. */
    ld_ql_stmt *s = parse_ok("SELECT $ FROM c WHERE a + b > 1 AND LOWER(c) = 'x' AND d AND "
                             "a LIKE 'x\\' ESCAPE '' AND null AND NOT null AND null + 1 IS NULL");
    ld_ql_stmt_free(s);
}

static void limits(void **state)
{
    (void)state;
    char q[4096];
    /* length */
    memset(q, ' ', 1001);
    memcpy(q, "SELECT $ FROM c", 15);
    q[1001] = '\0';
    fails(q, LD_QE_LIMIT, "Query is longer than the limit of 1000 bytes.");
    q[1000] = '\0';
    ld_ql_error err = {0};
    ld_ql_limits lim = {.max_length = 1000, .max_depth = 16};
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), &lim, &err);
    assert_non_null(s);
    ld_ql_stmt_free(s);

    /* depth: parentheses, NOT, unary minus, JSON nesting, function calls; the WHERE
     * expression itself is the first level */
    struct {
        const char *prefix, *open, *mid, *close;
        size_t pos;
    } deep[] = {
        {"a = ", "(", "a", ")", 42}, {"", "NOT ", "a", "", 83},         {"a = ", "- ", "a", "", 57},
        {"a = ", "[", "1", "]", 42}, {"a = ", "LOWER(", "a", ")", 123},
    };
    for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
        size_t o = (size_t)snprintf(q, sizeof q, "SELECT $ FROM c WHERE %s", deep[i].prefix);
        for (int k = 0; k < 20; k++)
            o += (size_t)snprintf(q + o, sizeof q - o, "%s", deep[i].open);
        o += (size_t)snprintf(q + o, sizeof q - o, "%s", deep[i].mid);
        for (int k = 0; k < 20; k++)
            o += (size_t)snprintf(q + o, sizeof q - o, "%s", deep[i].close);
        char msg[128];
        snprintf(msg, sizeof msg, "Query is nested deeper than the limit of 16 at position %zu.",
                 deep[i].pos);
        fails(q, LD_QE_LIMIT, msg);
    }
    /* 1 + 1 + ... grows the tree without recursion: the height counts too */
    size_t o = (size_t)snprintf(q, sizeof q, "SELECT $ FROM c WHERE a = 1");
    for (int k = 0; k < 20; k++)
        o += (size_t)snprintf(q + o, sizeof q - o, " + 1");
    fails(q, LD_QE_LIMIT, "Query is nested deeper than the limit of 16 at position 89.");
    /* ... but a long AND list is one level */
    o = (size_t)snprintf(q, sizeof q, "SELECT $ FROM c WHERE a = 1");
    for (int k = 0; k < 40; k++)
        o += (size_t)snprintf(q + o, sizeof q - o, " AND a = 1");
    s = ld_ql_parse(q, strlen(q), &lim, &err);
    assert_non_null(s);
    ld_ql_stmt_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(precedence),       cmocka_unit_test(paths_and_ids),
        cmocka_unit_test(literals),         cmocka_unit_test(select_shapes),
        cmocka_unit_test(column_names),     cmocka_unit_test(write_statements),
        cmocka_unit_test(contract_errors),  cmocka_unit_test(syntax_errors),
        cmocka_unit_test(type_errors),      cmocka_unit_test(limits),
        cmocka_unit_test(fuzz_regressions), cmocka_unit_test(index_ddl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
