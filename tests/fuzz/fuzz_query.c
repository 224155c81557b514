/* libFuzzer target for LiteQL: parses any input as a query (with the server's default limits),
 * then evaluates what parsed against a few fixed documents: WHERE, the SELECT row, the ORDER BY
 * keys, and the JSON literal of INSERT/UPDATE. Besides the sanitizers it checks invariants: every
 * failure carries a message, rows are valid JSON, a literal's text reads back as its value, the
 * order is antisymmetric, and evaluating against the stored text (as the server does) gives what
 * evaluating against the parsed document gives, and the index key encoding orders every value as
 * the evaluator does (CREATE INDEX paths read as query paths). The planner (EXPLAIN) runs on each
 * statement against a few fixed indexes: its EXPLAIN rows are JSON, its ranges sorted, and a
 * document the WHERE matches has its index key inside one of them (an exact plan: only those).
 * Build and run: make fuzz (FUZZ_SECONDS=60). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/keyenc.h"
#include "query/eval.h"
#include "query/parser.h"
#include "query/plan.h"
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

/* The fixed indexes: paths parsed once, from statements kept for the process's life. */
#define NIX 4
static ld_plan_index ixs[NIX];
static ld_ql_stmt *ix_held[4]; /* never freed: the indexes live as long as the process */

static void init_indexes(void)
{
    static bool done;
    if (done) return;
    done = true;
    static const char *const paths[] = {"$.n", "$.s", "$.o.k", "$.a"};
    static char *texts[4];
    static ld_ql_seg *segs[4];
    static size_t nsegs[4];
    for (size_t i = 0; i < 4; i++) {
        char q[64];
        snprintf(q, sizeof q, "SELECT %s AS v FROM c", paths[i]);
        ld_ql_error err;
        ix_held[i] = ld_ql_parse(q, strlen(q), NULL, &err);
        if (!ix_held[i]) abort();
        texts[i] = (char *)paths[i];
        segs[i] = ix_held[i]->cols[0].expr->segs;
        nsegs[i] = ix_held[i]->cols[0].expr->nsegs;
    }
    /* (n), (s, n) as the compound, (o.k), (a): d4 repeats a */
    static char *ctexts[2];
    static ld_ql_seg *csegs[2];
    static size_t cnsegs[2];
    ctexts[0] = texts[1], ctexts[1] = texts[0];
    csegs[0] = segs[1], csegs[1] = segs[0];
    cnsegs[0] = nsegs[1], cnsegs[1] = nsegs[0];
    ixs[0] = (ld_plan_index){1, "n", 1, &texts[0], &segs[0], &nsegs[0]};
    ixs[1] = (ld_plan_index){2, "sn", 2, ctexts, csegs, cnsegs};
    ixs[2] = (ld_plan_index){3, "ok", 1, &texts[2], &segs[2], &nsegs[2]};
    ixs[3] = (ld_plan_index){4, "a", 1, &texts[3], &segs[3], &nsegs[3]};
}

/* The entry key document text/id would have in index ix, as the index code builds it: each path's
 * value read from the text (MISSING when absent), then the id. */
static bool index_key(const ld_plan_index *ix, const char *text, const char *id, size_t il,
                      ld_qbuf *out)
{
    uint8_t be[4] = {(uint8_t)(ix->num >> 24), (uint8_t)(ix->num >> 16), (uint8_t)(ix->num >> 8),
                     (uint8_t)ix->num};
    ld_qbuf_add(out, be, 4);
    for (size_t j = 0; j < ix->npaths; j++) {
        size_t b, l;
        if (!ld_ql_path_span(text, strlen(text), ix->segs[j], ix->nsegs[j], &b, &l)) {
            ld_keyenc_append_missing(out);
            continue;
        }
        json_t *v = ld_ql_parse_doc(text + b, l);
        if (!v) return false;
        ld_status st = ld_keyenc_append(out, v);
        json_decref(v);
        if (st != LD_OK) return false;
    }
    return ld_qbuf_add(out, id, il) && !out->oom;
}

static int keycmp(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

static bool in_ranges(const ld_plan *p, const ld_qbuf *k)
{
    for (size_t i = 0; i < p->nranges; i++)
        if (keycmp(k->data, k->len, p->ranges[i].lo, p->ranges[i].lo_len) >= 0 &&
            (!p->ranges[i].hi || keycmp(k->data, k->len, p->ranges[i].hi, p->ranges[i].hi_len) < 0))
            return true;
    return false;
}

/* The plan's own invariants; its EXPLAIN rows as JSON. */
static void check_plan(const ld_ql_stmt *s, const ld_plan *p, const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < p->nranges; i++) {
        const ld_plan_range *r = &p->ranges[i];
        check(!r->hi || keycmp(r->lo, r->lo_len, r->hi, r->hi_len) < 0, "an empty range", data,
              size);
        if (i)
            check(p->ranges[i - 1].hi &&
                      keycmp(p->ranges[i - 1].hi, p->ranges[i - 1].hi_len, r->lo, r->lo_len) <= 0,
                  "ranges out of order or overlapping", data, size);
    }
    ld_qbuf b;
    ld_qbuf_init(&b);
    ld_qbuf_addc(&b, '[');
    size_t n = ld_plan_explain(s, p, &b);
    ld_qbuf_addc(&b, ']');
    check(n > 0, "EXPLAIN without rows", data, size);
    json_t *rows = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
    check(json_is_array(rows) && json_array_size(rows) == n, "EXPLAIN rows are not JSON", data,
          size);
    json_decref(rows);
    ld_qbuf_free(&b);
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
    init_indexes();
    ld_plan plan;
    bool planned =
        (s->kind == LD_QS_SELECT || s->kind == LD_QS_UPDATE || s->kind == LD_QS_DELETE) &&
        ld_plan_choose(s, ixs, NIX, &plan) == LD_OK;
    if (planned) check_plan(s, &plan, data, size);
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        const char *text = docs[i];
        json_t *root = ld_ql_parse_doc(text, strlen(text));
        bool differential = !strstr(text, "123456789012345678901234567890");
        ld_ql_doc d = {.id = "d\xc3\xa9", .id_len = 3, .text = text, .text_len = strlen(text)};
        bool match = false;
        bool tested = ld_ql_test(s->where, &d, &match, &err);
        if (!tested) check_error(&err, data, size);
        if (planned && plan.ix && tested) {
            ld_qbuf k;
            ld_qbuf_init(&k);
            if (index_key(plan.ix, text, d.id, d.id_len, &k)) {
                bool in = in_ranges(&plan, &k);
                check(!match || in, "a matching document outside the index ranges", data, size);
                check(!plan.exact || in == match, "an exact plan's range holds a non-match", data,
                      size);
            }
            ld_qbuf_free(&k);
        }
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
    if (planned) ld_plan_free(&plan);
    ld_ql_stmt_free(s);
    return 0;
}
