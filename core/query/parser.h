/* LiteQL parser: a recursive-descent parser from tokens to a statement AST (SELECT, INSERT,
 * UPDATE, DELETE), with SQL precedence, static type checks on what is known before any document
 * is read, and limits on length and nesting. The grammar is in docs/query.md. */
#ifndef LD_QL_PARSER_H
#define LD_QL_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lexer.h"

/* Expression node kinds. */
typedef enum ld_ql_nkind {
    LD_QN_LITERAL, /* value (JSON literal, number, string, true, false, null) */
    LD_QN_PATH,    /* segs from the document root ($ itself when nsegs == 0) */
    LD_QN_ID,      /* the document id: _id, Id, id, $._id, $_id */
    LD_QN_NEG,     /* -args[0] */
    LD_QN_NOT,     /* NOT args[0] */
    LD_QN_AND,     /* args[0] AND args[1] AND ... (n-ary) */
    LD_QN_OR,      /* n-ary */
    LD_QN_CMP,     /* args[0] <op> args[1] */
    LD_QN_ARITH,   /* args[0] <op> args[1] */
    LD_QN_LIKE,    /* args[0] [NOT] LIKE args[1] [ESCAPE args[2]] */
    LD_QN_IN,      /* args[0] [NOT] IN (args[1..]) */
    LD_QN_BETWEEN, /* args[0] [NOT] BETWEEN args[1] AND args[2] */
    LD_QN_ISNULL,  /* args[0] IS [NOT] NULL */
    LD_QN_FUNC,    /* fn(args...) */
    LD_QN_COUNT,   /* COUNT(*) */
} ld_ql_nkind;

/* Operators of CMP and ARITH nodes. */
typedef enum ld_ql_op {
    LD_QO_EQ,
    LD_QO_NE,
    LD_QO_LT,
    LD_QO_LE,
    LD_QO_GT,
    LD_QO_GE,
    LD_QO_ADD,
    LD_QO_SUB,
    LD_QO_MUL,
    LD_QO_DIV,
    LD_QO_MOD,
} ld_ql_op;

typedef enum ld_ql_fn {
    LD_QF_LOWER,
    LD_QF_UPPER,
    LD_QF_LENGTH,
    LD_QF_SUBSTRING,
    LD_QF_TRIM,
    LD_QF_COALESCE,
} ld_ql_fn;

/* What a node is known to produce before any document is read (UNKNOWN: depends on data). */
typedef enum ld_ql_type {
    LD_QTY_UNKNOWN,
    LD_QTY_NULL,
    LD_QTY_NUMBER,
    LD_QTY_STRING,
    LD_QTY_BOOL,
    LD_QTY_ARRAY,
    LD_QTY_OBJECT,
} ld_ql_type;

/* One step of a path: a member name (any bytes, may hold NUL) or an array index. */
typedef struct ld_ql_seg {
    bool is_index;
    size_t index;
    char *name; /* malloc'd, NUL-terminated; name_len excludes the NUL */
    size_t name_len;
} ld_ql_seg;

typedef struct ld_ql_node {
    ld_ql_nkind kind;
    int op;       /* ld_ql_op for CMP/ARITH, ld_ql_fn for FUNC */
    bool negated; /* NOT LIKE, NOT IN, NOT BETWEEN, IS NOT NULL */
    ld_ql_type type;
    int height;    /* 1 for a leaf */
    size_t cpos;   /* 1-based character position of the node's operator or first token */
    json_t *value; /* LITERAL: owned */
    char *text;    /* LITERAL: the value as JSON text (numbers exactly as written), malloc'd */
    size_t text_len;
    ld_ql_seg *segs; /* PATH */
    size_t nsegs;
    struct ld_ql_node **args;
    size_t nargs;
} ld_ql_node;

/* A SELECT column: an expression and the member name it gets in a row. */
typedef struct ld_ql_col {
    ld_ql_node *expr;
    char *name; /* malloc'd; "[value]" for the single unnamed column of a scalar SELECT */
    size_t name_len;
} ld_ql_col;

typedef struct ld_ql_order {
    ld_ql_node *expr;
    bool desc;
} ld_ql_order;

typedef enum ld_ql_kind {
    LD_QS_SELECT,
    LD_QS_INSERT,
    LD_QS_UPDATE,
    LD_QS_DELETE,
    LD_QS_CREATE_INDEX, /* CREATE INDEX [IF NOT EXISTS] name ON collection (path, ...) */
    LD_QS_DROP_INDEX,   /* DROP INDEX [IF EXISTS] name ON collection */
} ld_ql_kind;

typedef struct ld_ql_stmt {
    ld_ql_kind kind;
    bool explain;     /* EXPLAIN <statement>: answer the plan (plan.h), run nothing */
    char *collection; /* as written, malloc'd; validated by the caller (names.h) */
    size_t collection_len;
    size_t collection_cpos;

    /* SELECT */
    bool select_doc; /* $ or *: rows are the documents */
    bool count;      /* COUNT(*): one row with the number of matches */
    ld_ql_col *cols;
    size_t ncols;
    ld_ql_order *order;
    size_t norder;
    bool has_limit;
    uint64_t limit;
    uint64_t offset;
    bool has_top; /* TOP n: also sets has_limit and limit */
    uint64_t top;

    /* SELECT, UPDATE, DELETE */
    ld_ql_node *where; /* NULL: every document */

    /* INSERT (VALUES) and UPDATE (SET): a LITERAL node holding a JSON object */
    ld_ql_node *object;
    /* CREATE INDEX, DROP INDEX */
    char *index_name; /* malloc'd: letters, digits, '_' and '$', not starting with a digit or '$' */
    size_t index_name_len;
    bool if_exists;     /* IF NOT EXISTS (CREATE), IF EXISTS (DROP) */
    char **index_paths; /* CREATE: each path's text as written ("$.a.b"), malloc'd */
    size_t nindex_paths;
} ld_ql_stmt;

typedef struct ld_ql_limits {
    size_t max_length; /* bytes of query text; 0: no limit */
    int max_depth;     /* nesting of expressions and JSON literals; 0: no limit */
} ld_ql_limits;

/* Parses one statement (a single trailing ';' allowed). Returns the statement (free with
 * ld_ql_stmt_free), or NULL with err set: EMPTY, MULTI and COMMAND carry the contract's exact
 * messages; the others name the problem and its position. lim may be NULL (no limits). */
ld_ql_stmt *ld_ql_parse(const char *text, size_t len, const ld_ql_limits *lim, ld_ql_error *err);

void ld_ql_stmt_free(ld_ql_stmt *s);
void ld_ql_node_free(ld_ql_node *n);

/* Names used in messages: "string", "number", ... */
const char *ld_ql_type_name(ld_ql_type t);
/* The type of a JSON value. */
ld_ql_type ld_ql_type_of(const json_t *v);
/* The operator's text ("<=", "+"); the function's name ("LOWER"). */
const char *ld_ql_op_text(ld_ql_op op);
const char *ld_ql_fn_name(ld_ql_fn fn);

#endif
