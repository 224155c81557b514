/* Running LiteQL statements against a database's documents: a SELECT in a read transaction
 * (rows streamed into JSON text, ORDER BY through a bounded heap), and the matching ids an
 * UPDATE or DELETE selects inside the writer's transaction, over the candidates the planner
 * picks (plan.h: an index's ranges or the scan). Memory stays bounded by the rows returned (and
 * OFFSET), never by the collection's size. */
#ifndef LD_QL_EXEC_H
#define LD_QL_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../storage/storage.h"
#include "parser.h"

typedef struct ld_ql_select_opts {
    uint64_t row_limit;    /* most rows returned: Take, or max(Take, TOP n); at least 1 */
    bool include_reserved; /* keep top-level _id and _sys_* members in document rows */
    size_t max_bytes;      /* rows stop once their text passes this (at least one); 0: no cap */
} ld_ql_select_opts;

typedef struct ld_ql_result {
    char *rows; /* JSON array text "[...]", malloc'd */
    size_t rows_len;
    uint64_t matched;  /* rows the statement yields (after OFFSET and LIMIT), before Take; for
                          COUNT(*), the documents counted */
    uint64_t returned; /* rows in `rows` */
} ld_ql_result;

/* The database's shared parsed index definitions (index.h) the planner reads; needed with t. */
struct ld_index_shared;

/* Runs SELECT s over the live documents of s->collection in t (a read or write transaction;
 * NULL reads as a database without documents), planned with the READY indexes of ix as of t.
 * Returns LD_OK with *out filled (free with ld_ql_result_free); LD_INVALID with err set when the
 * query failed on a document (a type error, division by zero); LD_NOMEM; or the storage's status
 * (LD_CORRUPT for a stored document that is not JSON). */
ld_status ld_ql_select(ld_txn *t, struct ld_index_shared *ix, const ld_ql_stmt *s,
                       const ld_ql_select_opts *o, ld_ql_result *out, ld_ql_error *err);

void ld_ql_result_free(ld_ql_result *r);

/* Document ids, each malloc'd and NUL-terminated (ids hold no NUL: names.h). */
typedef struct ld_ql_ids {
    char **ids;
    size_t *lens;
    size_t n;
} ld_ql_ids;

/* The live documents of s->collection matching s->where, in id order: the first `cap` ids in
 * *ids, every match counted in *matched. Statuses as ld_ql_select. */
ld_status ld_ql_match(ld_txn *t, struct ld_index_shared *ix, const ld_ql_stmt *s, uint64_t cap,
                      ld_ql_ids *ids, uint64_t *matched, ld_ql_error *err);

void ld_ql_ids_free(ld_ql_ids *ids);

/* EXPLAIN s: the plan the statement would get in t (its collection's READY indexes there, from
 * ix; t NULL: no indexes), as rows (plan.h ld_plan_explain) in out->rows; matched and returned
 * count them. Runs nothing. LD_OK, LD_NOMEM, or the storage's status. */
ld_status ld_ql_explain(ld_txn *t, struct ld_index_shared *ix, const ld_ql_stmt *s,
                        ld_ql_result *out, ld_ql_error *err);

#endif
