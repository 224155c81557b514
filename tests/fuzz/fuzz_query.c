/* libFuzzer target for LiteQL: parses any input as a query (with the server's default limits),
 * then evaluates what parsed against a few fixed documents: WHERE, the SELECT row, the ORDER BY
 * keys, and the JSON literal of INSERT/UPDATE. Besides the sanitizers it checks invariants: every
 * failure carries a message, rows are valid JSON, a literal's text reads back as its value, the
 * order is antisymmetric, and evaluating against the stored text (as the server does) gives what
 * evaluating against the parsed document gives, and the index key encoding orders every value as
 * the evaluator does (CREATE INDEX paths read as query paths). Build and run: make fuzz
 * (FUZZ_SECONDS=60). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/keyenc.h"
#include "query/eval.h"
#include "query/parser.h"
#include "query/qbuf.h"

static const char *const docs[] = {
    "{\"Id\":\"d1\",\"n\":5,\"r\":2.5,\"s\":\"Hello\",\"t\":true,\"z\":null,\"arr\":[1,\"a\",[2]],"
    "\"o\":{\"k\":\"v\",\"n\":{\"m\":[{}]}}}",
    "{\"Id\":\"d2\",\"n\":-9223372036854775808,\"s\":\"\\u00e9t\\u00e9 \\ud83d\\ude00\",\"e\":\"\","
    "\"_id\":\"x\",\"_sys_v\":1}",
    "{\"Id\":\"d3\",\"big\":123456789012345678901234567890,\"n\":1e300,\"s\":\"a%b_c\\\\\"}",
    "{\"Id\":\"d4\",\"a\":{\"a\":1},\"a\":[1,2],\"s\":\"\\u0000nul\"}",
    "{}",
};

static void check(bool ok, const char *what, const uint8_t *data, size_t size)
{
    if (ok) return;
    fprintf(stderr, "invariant broken: %s\nquery: %.*s\n", what, (int)size, (const char *)data);
    abort();
}

/* enc(a) against enc(b) (memcmp, shorter first) has the sign of ld_ql_compare(a, b). */
static void check_keyenc(const json_t *a, const json_t *b, const uint8_t *data, size_t size)
{
    ld_qbuf ea, eb;
    ld_qbuf_init(&ea);
    ld_qbuf_init(&eb);
    if (ld_keyenc_append(&ea, a) == LD_OK && ld_keyenc_append(&eb, b) == LD_OK) {
        int c = memcmp(ea.data, eb.data, ea.len < eb.len ? ea.len : eb.len);
        if (!c) c = ea.len < eb.len ? -1 : ea.len > eb.len;
        int want = ld_ql_compare(a, b);
        check((c > 0) - (c < 0) == (want > 0) - (want < 0), "the key encoding misorders", data,
              size);
        check(ld_keyenc_skip((const uint8_t *)ea.data, ea.len) == ea.len,
              "an encoded value does not delimit itself", data, size);
    }
    /* The cut form (an index key's) is monotone. */
    bool cut;
    ea.len = eb.len = 0;
    if (ld_keyenc_append_capped(&ea, a, 24, &cut) == LD_OK &&
        ld_keyenc_append_capped(&eb, b, 24, &cut) == LD_OK) {
        int c = memcmp(ea.data, eb.data, ea.len < eb.len ? ea.len : eb.len);
        if (!c) c = ea.len < eb.len ? -1 : ea.len > eb.len;
        int want = ld_ql_compare(a, b);
        check(ea.len <= 24 && (want > 0   ? c >= 0
                               : want < 0 ? c <= 0
                                          : c == 0),
              "the capped key encoding is not monotone", data, size);
    }
    ld_qbuf_free(&ea);
    ld_qbuf_free(&eb);
}

static void check_error(const ld_ql_error *err, const uint8_t *data, size_t size)
{
    check(err->code != LD_QE_NONE && err->msg[0] != '\0', "an error without a message", data, size);
    check(err->msg[strlen(err->msg) - 1] == '.', "an error message without its full stop", data,
          size);
}

/* The result of e as text: the dumped value, or the error message. */
static char *outcome(const ld_ql_node *e, ld_ql_doc *d, const uint8_t *data, size_t size)
{
    json_t *v;
    ld_ql_error err = {0};
    ld_qbuf b;
    ld_qbuf_init(&b);
    if (ld_ql_eval(e, d, &v, &err)) {
        ld_ql_dump(v, &b);
        json_decref(v);
    } else {
        check_error(&err, data, size);
        ld_qbuf_adds(&b, err.msg);
    }
    return ld_qbuf_take(&b, NULL);
}

/* Evaluates e against the text and against the tree (they must agree, unless the document has
 * integers beyond 64 bits: then the tree holds every number as a real), and checks the order on
 * the result against a few values. */
static void eval_and_compare(const ld_ql_node *e, ld_ql_doc *d, json_t *tree, bool differential,
                             const uint8_t *data, size_t size)
{
    if (differential) {
        ld_ql_doc t = {.id = d->id, .id_len = d->id_len, .root = tree};
        char *a = outcome(e, d, data, size), *b = outcome(e, &t, data, size);
        check(a && b && strcmp(a, b) == 0, "text and tree evaluation differ", data, size);
        free(a);
        free(b);
        ld_ql_doc_clear(&t);
    }
    json_t *v;
    ld_ql_error err = {0};
    if (!ld_ql_eval(e, d, &v, &err)) {
        check_error(&err, data, size);
        return;
    }
    check(v != NULL, "eval succeeded without a value", data, size);
    check(ld_ql_compare(v, v) == 0, "a value unequal to itself", data, size);
    json_t *others[] = {tree, json_null(), json_true()};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        int a = ld_ql_compare(v, others[i]), b = ld_ql_compare(others[i], v);
        check((a > 0) - (a < 0) == -((b > 0) - (b < 0)), "compare is not antisymmetric", data,
              size);
        if (others[i]) check_keyenc(v, others[i], data, size);
    }
    ld_qbuf out;
    ld_qbuf_init(&out);
    if (ld_ql_dump(v, &out)) {
        json_t *back = json_loadb(out.data, out.len,
                                  JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
        check(back != NULL, "a dumped value is not JSON", data, size);
        json_decref(back);
    }
    ld_qbuf_free(&out);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ld_ql_limits lim = {.max_length = 65536, .max_depth = 64};
    ld_ql_error err = {0};
    ld_ql_stmt *s = ld_ql_parse((const char *)data, size, &lim, &err);
    if (!s) {
        check_error(&err, data, size);
        return 0;
    }
    if (s->object) { /* the text INSERT and UPDATE store must read back as the same value */
        json_t *back = ld_ql_parse_doc(s->object->text, s->object->text_len);
        check(back != NULL, "a JSON literal's text is not JSON", data, size);
        check(ld_ql_compare(back, s->object->value) == 0, "a JSON literal's text differs", data,
              size);
        json_decref(back);
    }
    /* An index path is read as the column of a SELECT (index.c): it must be a path there too. */
    for (size_t k = 0; k < s->nindex_paths; k++) {
        char q[1024];
        int n = snprintf(q, sizeof q, "SELECT %s FROM c", s->index_paths[k]);
        if (n < 0 || (size_t)n >= sizeof q) continue;
        ld_ql_stmt *ps = ld_ql_parse(q, (size_t)n, NULL, &err);
        check(ps && ps->ncols == 1 && ps->cols[0].expr->kind == LD_QN_PATH &&
                  ps->cols[0].expr->nsegs > 0,
              "an index path that is no path in a query", data, size);
        ld_ql_stmt_free(ps);
    }
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        const char *text = docs[i];
        json_t *root = ld_ql_parse_doc(text, strlen(text));
        bool differential = !strstr(text, "123456789012345678901234567890");
        ld_ql_doc d = {.id = "d\xc3\xa9", .id_len = 3, .text = text, .text_len = strlen(text)};
        bool match = false;
        if (!ld_ql_test(s->where, &d, &match, &err)) check_error(&err, data, size);
        if (s->where) eval_and_compare(s->where, &d, root, differential, data, size);
        for (size_t k = 0; k < s->norder; k++)
            eval_and_compare(s->order[k].expr, &d, root, differential, data, size);
        for (size_t k = 0; k < s->ncols; k++)
            if (!s->count) eval_and_compare(s->cols[k].expr, &d, root, differential, data, size);
        if (s->kind == LD_QS_SELECT && !s->count) {
            for (int strip = 0; strip < 2; strip++) {
                ld_qbuf row;
                ld_qbuf_init(&row);
                if (ld_ql_row(s, &d, strip, &row, &err)) {
                    json_t *back = json_loadb(
                        row.data, row.len,
                        JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
                    check(json_is_object(back), "a row is not a JSON object", data, size);
                    json_decref(back);
                } else {
                    check_error(&err, data, size);
                }
                ld_qbuf_free(&row);
            }
        }
        ld_ql_doc_clear(&d);
        json_decref(root);
    }
    ld_ql_stmt_free(s);
    return 0;
}
