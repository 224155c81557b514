/* LiteQL planner: from a statement's WHERE and ORDER BY and the READY indexes of its collection,
 * the cheapest access path (an index's key ranges, or the scan) and the EXPLAIN rows that name it.
 * An index only narrows the candidates: the executor re-evaluates the whole WHERE on each one. */
#ifndef LD_QL_PLAN_H
#define LD_QL_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <litedist/plugin.h>

#include "parser.h"
#include "qbuf.h"

/* An index as the planner sees it (borrowed from the index definitions for one plan). */
typedef struct ld_plan_index {
    uint32_t num;     /* the local index number: the first 4 bytes (big-endian) of its keys */
    const char *name; /* NUL-terminated */
    size_t npaths;
    char *const *paths;     /* "$.a.b" as written, per path */
    ld_ql_seg *const *segs; /* the parsed path, per path */
    const size_t *nsegs;    /* segments, per path */
} ld_plan_index;

typedef enum ld_plan_kind {
    LD_PLAN_SCAN,        /* every live document of the collection */
    LD_PLAN_INDEX_EQ,    /* equality on every path of the index (one or more point ranges: IN) */
    LD_PLAN_INDEX_RANGE, /* a range (or the equality prefix) of the index */
    LD_PLAN_INDEX_ORDER, /* the index walked in the order of ORDER BY, stopping after Take rows */
} ld_plan_kind;

/* A half-open interval [lo, hi) of `ix` keys; hi == NULL: to the end of the index. */
typedef struct ld_plan_range {
    uint8_t *lo;
    size_t lo_len;
    uint8_t *hi;
    size_t hi_len;
    char *text; /* the bounds as a condition ("$.a = 5 AND $.b > 3"), "" for the whole index */
    /* A bound's value was too long for a key and cut as entries cut theirs (index.h): the range
     * holds every value sharing that prefix, so it only narrows the candidates. */
    bool cut;
} ld_plan_range;

typedef struct ld_plan {
    ld_plan_kind kind;
    const ld_plan_index *ix; /* NULL for the scan */
    size_t neq;              /* leading index paths fixed by equality (or IN) */
    ld_plan_range *ranges;   /* sorted by lo and disjoint: each document's one entry is in at
                                most one of them */
    size_t nranges;
    /* The walk yields candidates in id order (one equality class of every path, not the null
     * class, which holds the entries of documents without the path and with null): rows can be
     * streamed and the walk stops at LIMIT. */
    bool id_order;
    /* The walk yields candidates with the first ORDER BY key non-decreasing (ASC on the index
     * path after the equality prefix): the top k are known once a key passes the k-th. */
    bool ordered;
    /* ORDER BY <that path> DESC, alone, and the ranges answer the whole WHERE: the forward walk
     * reads the keys only, keeping the first OFFSET + Take by the value bytes (descending) and
     * id in a bounded heap; only the rows returned are read. */
    bool desc_keys;
    /* Every entry in the ranges satisfies the WHERE (nothing left for the residual): counting
     * needs the keys only. */
    bool exact;
    const ld_ql_node **residual; /* the WHERE's conjuncts the ranges do not answer (borrowed) */
    size_t nresidual;
    bool sort; /* ORDER BY still needs the bounded heap (the walk is not in its order) */
} ld_plan;

/* Chooses the access path for s (SELECT, UPDATE or DELETE) among ixs (the READY indexes of
 * s->collection; n may be 0). Returns LD_OK with *out filled (free with ld_plan_free) or
 * LD_NOMEM. A WHERE the indexes cannot narrow gives the scan. */
ld_status ld_plan_choose(const ld_ql_stmt *s, const ld_plan_index *ixs, size_t n, ld_plan *out);

void ld_plan_free(ld_plan *p);

/* "scan", "index eq", "index range", "index order". */
const char *ld_plan_kind_name(ld_plan_kind k);

/* Appends the EXPLAIN rows of plan p for s as JSON objects separated by commas (no brackets):
 * {"Step":1,"Operation":...,"Index":name|null,"Collection":...,"Paths":[...],
 *  "Bounds":[...],"Residual":text|null}, then {"Step":2,"Operation":"sort",...} when ORDER BY
 * needs sorting. Returns the number of rows, or 0 when memory runs out. */
size_t ld_plan_explain(const ld_ql_stmt *s, const ld_plan *p, ld_qbuf *out);

/* Appends an expression as LiteQL text (the form the parser reads back). */
bool ld_plan_expr_text(const ld_ql_node *n, ld_qbuf *out);

#endif
