/* LiteQL evaluator: expressions over one document held as jansson values, the total order
 * every comparison and ORDER BY share (null < numbers < strings < booleans < arrays < objects),
 * LIKE matching, and writing values and result rows as JSON text. Pure functions: safe on any
 * thread, one document at a time per ld_ql_doc. */
#ifndef LD_QL_EVAL_H
#define LD_QL_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "parser.h"
#include "qbuf.h"

/* The document an expression is evaluated against: its stored text, its parsed value, or both.
 * With the text, a path reads just the value it names from the text (no tree of the whole
 * document is built); the whole document is parsed only when something needs it ($ itself),
 * and then kept in root until ld_ql_doc_clear. */
typedef struct ld_ql_doc {
    const char *id; /* the document id (bytes of the storage key) */
    size_t id_len;
    const char *text; /* its JSON text (borrowed), or NULL */
    size_t text_len;
    json_t *root; /* the parsed document: borrowed when given, owned when parsed here */
    bool root_owned;
    json_t *id_value; /* the id as a JSON string, made on first use */
} ld_ql_doc;

/* Frees what evaluation made for d (the parsed root, the id string). */
void ld_ql_doc_clear(ld_ql_doc *d);

/* Parses stored JSON text (a document or one value of it) for evaluation: integers stay exact
 * 64-bit integers; text holding a larger integer is parsed with every integer as a real
 * instead. NULL when the text is not JSON (the storage is corrupt) or memory runs out. */
json_t *ld_ql_parse_doc(const char *text, size_t len);

/* Evaluates n against d. On success *out is a new reference (JSON null for a missing member);
 * on failure err says what and where (a type error, division by zero, ...). */
bool ld_ql_eval(const ld_ql_node *n, ld_ql_doc *d, json_t **out, ld_ql_error *err);

/* Evaluates a WHERE condition: *match is true only when it yields true (false and null do not
 * match). A NULL condition matches everything. */
bool ld_ql_test(const ld_ql_node *where, ld_ql_doc *d, bool *match, ld_ql_error *err);

/* The total order: <0, 0, >0. Numbers compare by value across integers and reals; strings by
 * their UTF-8 bytes (so by code point, case-sensitively); arrays element by element, then by
 * length; objects by their members in key order (key, then value), then by size. */
int ld_ql_compare(const json_t *a, const json_t *b);

/* LIKE: '%' matches any run of characters, '_' exactly one character (UTF-8 code point), `esc`
 * (esc_len bytes: one character, or 0 for none) makes the next character literal. Case-
 * sensitive. Returns 1 on a match, 0 on none, -1 when the pattern ends with the escape. */
int ld_ql_like(const char *s, size_t slen, const char *pat, size_t plen, const char *esc,
               size_t esc_len);

/* Appends v as JSON text. Reals are written in the shortest form that reads back as the same
 * double (0.1, not 0.10000000000000001) and always as reals (3.0). */
bool ld_ql_dump(const json_t *v, ld_qbuf *out);

/* Appends one result row of a SELECT (not COUNT) for document d: the document text itself for
 * $ and * (without top-level _id and _sys_* members when strip_reserved), otherwise an object
 * of the columns. A column that is a plain path copies the stored text of the value (numbers
 * as stored). */
bool ld_ql_row(const ld_ql_stmt *s, ld_ql_doc *d, bool strip_reserved, ld_qbuf *out,
               ld_ql_error *err);

/* Finds the stored text of a path in a JSON document text (the last of repeated members, as the
 * parsed value has it). False when absent or the text is not as expected. */
bool ld_ql_path_span(const char *text, size_t len, const ld_ql_seg *segs, size_t nsegs,
                     size_t *start, size_t *vlen);

#endif
