/* LiteQL recursive-descent parser (see parser.h). One function per precedence level, lowest
 * first: OR, AND, NOT, comparisons (= != <> < <= > >= LIKE IN BETWEEN IS), + -, * / %, unary
 * minus, primaries. Every node records its position so an error found later (a type error while
 * evaluating) still points at the query text. */
#include "parser.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qbuf.h"

/* ---------------------------------------------------------------------------------------------
 * Names of things, for messages
 * ------------------------------------------------------------------------------------------- */

const char *ld_ql_type_name(ld_ql_type t)
{
    switch (t) {
    case LD_QTY_NULL:
        return "null";
    case LD_QTY_NUMBER:
        return "number";
    case LD_QTY_STRING:
        return "string";
    case LD_QTY_BOOL:
        return "boolean";
    case LD_QTY_ARRAY:
        return "array";
    case LD_QTY_OBJECT:
        return "object";
    default:
        return "unknown";
    }
}

ld_ql_type ld_ql_type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return LD_QTY_NULL;
    case JSON_INTEGER:
    case JSON_REAL:
        return LD_QTY_NUMBER;
    case JSON_STRING:
        return LD_QTY_STRING;
    case JSON_TRUE:
    case JSON_FALSE:
        return LD_QTY_BOOL;
    case JSON_ARRAY:
        return LD_QTY_ARRAY;
    case JSON_OBJECT:
        return LD_QTY_OBJECT;
    }
    return LD_QTY_UNKNOWN;
}

const char *ld_ql_op_text(ld_ql_op op)
{
    static const char *const text[] = {"=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"};
    return (size_t)op < sizeof text / sizeof text[0] ? text[op] : "?";
}

static const struct {
    const char *name;
    ld_ql_fn fn;
    size_t min_args, max_args;
} functions[] = {
    {"LOWER", LD_QF_LOWER, 1, 1},   {"UPPER", LD_QF_UPPER, 1, 1},
    {"LENGTH", LD_QF_LENGTH, 1, 1}, {"SUBSTRING", LD_QF_SUBSTRING, 2, 3},
    {"TRIM", LD_QF_TRIM, 1, 1},     {"COALESCE", LD_QF_COALESCE, 1, 64},
};

const char *ld_ql_fn_name(ld_ql_fn fn)
{
    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
        if (functions[i].fn == fn) return functions[i].name;
    return "?";
}

/* SQL constructs LiteQL does not have: named in the error instead of "unexpected token". */
static const struct {
    const char *word;
    const char *construct;
} unsupported[] = {
    {"GROUP", "GROUP BY"},      {"HAVING", "HAVING"}, {"JOIN", "JOIN"},
    {"LEFT", "JOIN"},           {"RIGHT", "JOIN"},    {"INNER", "JOIN"},
    {"OUTER", "JOIN"},          {"CROSS", "JOIN"},    {"UNION", "UNION"},
    {"INTERSECT", "INTERSECT"}, {"EXCEPT", "EXCEPT"}, {"DISTINCT", "DISTINCT"},
    {"INCLUDE", "INCLUDE"},     {"CASE", "CASE"},     {"EXISTS", "EXISTS"},
    {"WITH", "WITH"},           {"FOR", "FOR"},       {"RETURNING", "RETURNING"},
};

/* ---------------------------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------------------------- */

void ld_ql_node_free(ld_ql_node *n)
{
    if (!n) return;
    json_decref(n->value);
    free(n->text);
    for (size_t i = 0; i < n->nsegs; i++)
        free(n->segs[i].name);
    free(n->segs);
    for (size_t i = 0; i < n->nargs; i++)
        ld_ql_node_free(n->args[i]);
    free(n->args);
    free(n);
}

void ld_ql_stmt_free(ld_ql_stmt *s)
{
    if (!s) return;
    free(s->collection);
    for (size_t i = 0; i < s->ncols; i++) {
        ld_ql_node_free(s->cols[i].expr);
        free(s->cols[i].name);
    }
    free(s->cols);
    for (size_t i = 0; i < s->norder; i++)
        ld_ql_node_free(s->order[i].expr);
    free(s->order);
    ld_ql_node_free(s->where);
    ld_ql_node_free(s->object);
    free(s->index_name);
    for (size_t i = 0; i < s->nindex_paths; i++)
        free(s->index_paths[i]);
    free(s->index_paths);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Parser state and token helpers
 * ------------------------------------------------------------------------------------------- */

typedef struct parser {
    const char *text;
    size_t len;
    ld_ql_tokens toks;
    size_t i;
    ld_ql_error *err;
    int max_depth;
    int depth;
    bool count_allowed; /* COUNT(*) may appear (the SELECT list) */
    size_t ncount;      /* COUNT(*) calls seen in the SELECT list */
    size_t count_cpos;
} parser;

static ld_ql_token *peek(parser *p)
{
    return &p->toks.v[p->i];
}

static ld_ql_token *peek_at(parser *p, size_t k)
{
    size_t j = p->i + k;
    return &p->toks.v[j < p->toks.n ? j : p->toks.n - 1];
}

static void next(parser *p)
{
    if (p->i + 1 < p->toks.n) p->i++;
}

static bool is_kw(const ld_ql_token *t, ld_ql_kw kw)
{
    return t->kind == LD_QT_NAME && t->kw == kw;
}

static bool accept_kw(parser *p, ld_ql_kw kw)
{
    if (!is_kw(peek(p), kw)) return false;
    next(p);
    return true;
}

static bool accept(parser *p, ld_ql_tok kind)
{
    if (peek(p)->kind != kind) return false;
    next(p);
    return true;
}

static void nomem(parser *p)
{
    ld_ql_error_set(p->err, LD_QE_NOMEM, 0, "Out of memory.");
}

/* The token's text for a message, cut at 40 bytes on a character boundary. */
static void tok_text(parser *p, const ld_ql_token *t, char *buf, size_t buflen)
{
    size_t n = t->len, max = 40;
    bool cut = false;
    if (n > max) {
        n = max;
        while (n > 0 && (((unsigned char)p->text[t->off + n]) & 0xc0) == 0x80)
            n--;
        cut = true;
    }
    snprintf(buf, buflen, "%.*s%s", (int)n, p->text + t->off, cut ? "..." : "");
}

static const char *unsupported_construct(parser *p, const ld_ql_token *t)
{
    if (t->kind != LD_QT_NAME) return NULL;
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (strlen(unsupported[i].word) == t->len &&
            strncasecmp(unsupported[i].word, p->text + t->off, t->len) == 0)
            return unsupported[i].construct;
    return NULL;
}

/* "Unexpected token 'X'" (or "GROUP BY is not supported", or "Unexpected end of query"). */
static void unexpected(parser *p, const ld_ql_token *t)
{
    if (t->kind == LD_QT_EOF) {
        ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos, "Unexpected end of query");
        return;
    }
    const char *construct = unsupported_construct(p, t);
    if (construct) {
        ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos, "%s is not supported", construct);
        return;
    }
    char buf[64];
    tok_text(p, t, buf, sizeof buf);
    ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos, "Unexpected token '%s'", buf);
}

/* "Expected <what> but found 'X'". */
static void expected(parser *p, const char *what)
{
    ld_ql_token *t = peek(p);
    if (t->kind == LD_QT_EOF) {
        ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos, "Expected %s but found the end of the query",
                        what);
        return;
    }
    char buf[64];
    tok_text(p, t, buf, sizeof buf);
    ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos, "Expected %s but found '%s'", what, buf);
}

static bool expect_kw(parser *p, ld_ql_kw kw)
{
    if (accept_kw(p, kw)) return true;
    expected(p, ld_ql_kw_name(kw));
    return false;
}

static bool expect(parser *p, ld_ql_tok kind, const char *what)
{
    if (accept(p, kind)) return true;
    expected(p, what);
    return false;
}

/* Nesting guard: every nested expression, NOT, unary minus and JSON container goes one deeper,
 * so no query can recurse the parser (or, later, the evaluator) past the configured depth. */
static bool enter(parser *p)
{
    if (p->max_depth > 0 && p->depth >= p->max_depth) {
        ld_ql_error_set(p->err, LD_QE_LIMIT, peek(p)->cpos,
                        "Query is nested deeper than the limit of %d", p->max_depth);
        return false;
    }
    p->depth++;
    return true;
}

static void leave(parser *p)
{
    p->depth--;
}

static ld_ql_node *mk(parser *p, ld_ql_nkind kind, size_t cpos)
{
    ld_ql_node *n = calloc(1, sizeof *n);
    if (!n) {
        nomem(p);
        return NULL;
    }
    n->kind = kind;
    n->cpos = cpos;
    n->height = 1;
    return n;
}

/* Adds child (taking it) to n; on failure frees both and returns false. */
static bool add_arg(parser *p, ld_ql_node *n, ld_ql_node *child)
{
    ld_ql_node **a = realloc(n->args, (n->nargs + 1) * sizeof *a);
    if (!a) {
        ld_ql_node_free(child);
        ld_ql_node_free(n);
        nomem(p);
        return false;
    }
    n->args = a;
    n->args[n->nargs++] = child;
    if (child->height + 1 > n->height) n->height = child->height + 1;
    return true;
}

/* Checks the height of a finished node; frees it and fails past the limit. Chains of + or AND
 * grow the tree without recursing the parser, so height is checked as well as recursion. */
static ld_ql_node *finish(parser *p, ld_ql_node *n)
{
    if (p->max_depth > 0 && n->height > p->max_depth) {
        ld_ql_error_set(p->err, LD_QE_LIMIT, n->cpos, "Query is nested deeper than the limit of %d",
                        p->max_depth);
        ld_ql_node_free(n);
        return NULL;
    }
    return n;
}

/* A type error when n is known to produce a type outside `allowed` (a bit mask of 1 << type;
 * unknown and null always pass: they are decided per document). */
static bool check_type(parser *p, const ld_ql_node *n, unsigned allowed, const char *what)
{
    if (n->type == LD_QTY_UNKNOWN || n->type == LD_QTY_NULL || (allowed & (1u << n->type)))
        return true;
    ld_ql_error_set(p->err, LD_QE_TYPE, n->cpos, "%s, got %s", what, ld_ql_type_name(n->type));
    return false;
}

#define T_NUM  (1u << LD_QTY_NUMBER)
#define T_STR  (1u << LD_QTY_STRING)
#define T_BOOL (1u << LD_QTY_BOOL)
#define T_ARR  (1u << LD_QTY_ARRAY)
#define T_OBJ  (1u << LD_QTY_OBJECT)

static ld_ql_node *literal(parser *p, json_t *value, char *text, size_t text_len, size_t cpos)
{
    ld_ql_node *n = mk(p, LD_QN_LITERAL, cpos);
    if (!n) {
        json_decref(value);
        free(text);
        return NULL;
    }
    n->value = value;
    n->text = text;
    n->text_len = text_len;
    n->type = ld_ql_type_of(value);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * JSON literals: [..] and {..} of constants, in either quote style, kept as a value and as
 * JSON text (numbers exactly as written) for INSERT and UPDATE to store.
 * ------------------------------------------------------------------------------------------- */

static json_t *json_value(parser *p, ld_qbuf *text);

/* A number token, negated when neg, as a value; its text goes to text. */
static json_t *number_value(parser *p, const ld_ql_token *t, bool neg, ld_qbuf *text)
{
    json_t *v = NULL;
    if (neg && json_is_integer(t->value))
        v = json_integer(-json_integer_value(t->value));
    else if (neg && t->len == 19 && !memcmp(p->text + t->off, "9223372036854775808", 19))
        v = json_integer(INT64_MIN); /* the one integer whose magnitude does not fit */
    else if (neg)
        v = json_real(-json_number_value(t->value));
    else
        v = json_incref(t->value);
    if (!v) {
        nomem(p);
        return NULL;
    }
    if (text &&
        ((neg && !ld_qbuf_addc(text, '-')) || !ld_qbuf_add(text, p->text + t->off, t->len))) {
        json_decref(v);
        nomem(p);
        return NULL;
    }
    return v;
}

static json_t *json_container(parser *p, ld_qbuf *text)
{
    bool obj = peek(p)->kind == LD_QT_LBRACE;
    if (!enter(p)) return NULL;
    next(p);
    json_t *c = obj ? json_object() : json_array();
    if (!c || !ld_qbuf_addc(text, obj ? '{' : '[')) {
        json_decref(c);
        nomem(p);
        leave(p);
        return NULL;
    }
    ld_ql_tok close = obj ? LD_QT_RBRACE : LD_QT_RBRACKET;
    bool first = true;
    while (!accept(p, close)) {
        if (!first && !expect(p, LD_QT_COMMA, obj ? "',' or '}'" : "',' or ']'")) goto fail;
        if (!first && !ld_qbuf_addc(text, ',')) goto oom;
        first = false;
        if (obj) {
            ld_ql_token *k = peek(p);
            const char *key;
            size_t klen;
            if (k->kind == LD_QT_STRING || k->kind == LD_QT_DSTRING) {
                key = json_string_value(k->value);
                klen = json_string_length(k->value);
            } else if (k->kind == LD_QT_NAME) {
                key = p->text + k->off;
                klen = k->len;
            } else {
                expected(p, "a member name");
                goto fail;
            }
            /* jansson, and so every reader of stored documents, refuses NUL in member names. */
            if (memchr(key, '\0', klen)) {
                ld_ql_error_set(p->err, LD_QE_SYNTAX, k->cpos,
                                "A member name may not contain a NUL character");
                goto fail;
            }
            if (json_object_getn(c, key, klen)) {
                char buf[64];
                tok_text(p, k, buf, sizeof buf);
                ld_ql_error_set(p->err, LD_QE_SYNTAX, k->cpos, "Duplicate key %s in JSON object",
                                buf);
                goto fail;
            }
            next(p);
            if (!expect(p, LD_QT_COLON, "':'")) goto fail;
            if (!ld_qbuf_json_string(text, key, klen) || !ld_qbuf_addc(text, ':')) goto oom;
            json_t *v = json_value(p, text);
            if (!v) goto fail;
            if (json_object_setn_new(c, key, klen, v) != 0) goto oom;
        } else {
            json_t *v = json_value(p, text);
            if (!v) goto fail;
            if (json_array_append_new(c, v) != 0) goto oom;
        }
    }
    if (!ld_qbuf_addc(text, obj ? '}' : ']')) goto oom;
    leave(p);
    return c;
oom:
    nomem(p);
fail:
    json_decref(c);
    leave(p);
    return NULL;
}

static json_t *json_value(parser *p, ld_qbuf *text)
{
    ld_ql_token *t = peek(p);
    json_t *v = NULL;
    switch (t->kind) {
    case LD_QT_LBRACE:
    case LD_QT_LBRACKET:
        return json_container(p, text);
    case LD_QT_NUMBER:
        next(p);
        return number_value(p, t, false, text);
    case LD_QT_MINUS:
        if (peek_at(p, 1)->kind != LD_QT_NUMBER) break;
        next(p);
        t = peek(p);
        next(p);
        return number_value(p, t, true, text);
    case LD_QT_STRING:
    case LD_QT_DSTRING:
        next(p);
        if (!ld_qbuf_json_string(text, json_string_value(t->value), json_string_length(t->value))) {
            nomem(p);
            return NULL;
        }
        return json_incref(t->value);
    case LD_QT_NAME:
        if (t->kw == LD_QK_TRUE)
            v = json_true();
        else if (t->kw == LD_QK_FALSE)
            v = json_false();
        else if (t->kw == LD_QK_NULL)
            v = json_null();
        else
            break;
        next(p);
        if (!ld_qbuf_adds(text, t->kw == LD_QK_TRUE    ? "true"
                                : t->kw == LD_QK_FALSE ? "false"
                                                       : "null")) {
            nomem(p);
            return NULL;
        }
        return v;
    default:
        break;
    }
    expected(p, "a JSON value (JSON literals hold constants only)");
    return NULL;
}

static ld_ql_node *json_literal(parser *p)
{
    size_t cpos = peek(p)->cpos;
    ld_qbuf text;
    ld_qbuf_init(&text);
    json_t *v = json_container(p, &text);
    if (!v) {
        ld_qbuf_free(&text);
        return NULL;
    }
    size_t tlen;
    char *t = ld_qbuf_take(&text, &tlen);
    if (!t) {
        json_decref(v);
        nomem(p);
        return NULL;
    }
    return literal(p, v, t, tlen, cpos);
}

/* ---------------------------------------------------------------------------------------------
 * Expressions
 * ------------------------------------------------------------------------------------------- */

static ld_ql_node *parse_expr(parser *p);
static ld_ql_node *parse_logic(parser *p, bool is_or);

/* Documents cannot hold a member name with U+0000 (the JSON layer refuses them on the way in),
 * and a row could not carry one back to most clients, so such a name is refused where it is
 * written. Called with the name's token current. */
static bool name_ok(parser *p, const char *name, size_t len)
{
    if (!memchr(name, '\0', len)) return true;
    ld_ql_error_set(p->err, LD_QE_SYNTAX, peek(p)->cpos, "A name cannot contain U+0000");
    return false;
}

static bool add_seg(parser *p, ld_ql_node *n, const char *name, size_t len, bool is_index,
                    size_t index)
{
    if (!is_index && !name_ok(p, name, len)) return false;
    ld_ql_seg *s = realloc(n->segs, (n->nsegs + 1) * sizeof *s);
    if (!s) {
        nomem(p);
        return false;
    }
    n->segs = s;
    ld_ql_seg *g = &n->segs[n->nsegs];
    *g = (ld_ql_seg){.is_index = is_index, .index = index};
    if (!is_index) {
        g->name = malloc(len + 1);
        if (!g->name) {
            nomem(p);
            return false;
        }
        memcpy(g->name, name, len);
        g->name[len] = '\0';
        g->name_len = len;
    }
    n->nsegs++;
    return true;
}

/* The steps after a path's start: .name  ."name"  [index]  ['name']. */
static bool path_suffix(parser *p, ld_ql_node *n)
{
    for (;;) {
        ld_ql_token *t = peek(p);
        if (t->kind == LD_QT_DOT) {
            next(p);
            t = peek(p);
            if (t->kind == LD_QT_NAME) {
                if (!add_seg(p, n, p->text + t->off, t->len, false, 0)) return false;
            } else if (t->kind == LD_QT_STRING || t->kind == LD_QT_DSTRING) {
                if (!add_seg(p, n, json_string_value(t->value), json_string_length(t->value), false,
                             0))
                    return false;
            } else {
                expected(p, "a member name after '.'");
                return false;
            }
            next(p);
        } else if (t->kind == LD_QT_LBRACKET) {
            next(p);
            t = peek(p);
            if (t->kind == LD_QT_STAR) {
                ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos,
                                "Array wildcards '[*]' are not supported");
                return false;
            }
            if (t->kind == LD_QT_NUMBER && json_is_integer(t->value)) {
                if (!add_seg(p, n, NULL, 0, true, (size_t)json_integer_value(t->value)))
                    return false;
            } else if (t->kind == LD_QT_STRING || t->kind == LD_QT_DSTRING) {
                if (!add_seg(p, n, json_string_value(t->value), json_string_length(t->value), false,
                             0))
                    return false;
            } else {
                expected(p, "an array index (a non-negative integer) or a quoted member name");
                return false;
            }
            next(p);
            if (!expect(p, LD_QT_RBRACKET, "']'")) return false;
        } else {
            return true;
        }
    }
}

static bool is_id_name(const char *s, size_t len)
{
    return (len == 2 && !strncasecmp(s, "id", 2)) || (len == 3 && !strncasecmp(s, "_id", 3));
}

/* The document id, named `name` as written (the column name it gets in a SELECT list). */
static ld_ql_node *id_node(parser *p, const char *name, size_t len, size_t cpos)
{
    ld_ql_node *n = mk(p, LD_QN_ID, cpos);
    if (!n) return NULL;
    n->type = LD_QTY_STRING;
    n->text = malloc(len + 1);
    if (!n->text) {
        ld_ql_node_free(n);
        nomem(p);
        return NULL;
    }
    memcpy(n->text, name, len);
    n->text[len] = '\0';
    n->text_len = len;
    return n;
}

/* A path from `$` or from a bare name (a.b is $.a.b). _id, Id, id, $._id and $_id name the
 * document id. */
static ld_ql_node *parse_path(parser *p)
{
    ld_ql_token *t = peek(p);
    size_t cpos = t->cpos;
    const char *s = p->text + t->off;
    bool root = t->len == 1 && s[0] == '$';
    if (t->len == 4 && !memcmp(s, "$_id", 4)) {
        next(p);
        return id_node(p, "_id", 3, cpos);
    }
    if (!root && s[0] == '$') {
        char buf[64];
        tok_text(p, t, buf, sizeof buf);
        ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos,
                        "Unknown name '%s' (paths start with '$.' or a member name)", buf);
        return NULL;
    }
    ld_ql_node *n = mk(p, LD_QN_PATH, cpos);
    if (!n) return NULL;
    if (!root && !add_seg(p, n, s, t->len, false, 0)) {
        ld_ql_node_free(n);
        return NULL;
    }
    next(p);
    if (!path_suffix(p, n)) {
        ld_ql_node_free(n);
        return NULL;
    }
    /* Bare _id / Id / id, and $._id: the document id. */
    if (n->nsegs == 1 && !n->segs[0].is_index &&
        ((!root && is_id_name(n->segs[0].name, n->segs[0].name_len)) ||
         (root && n->segs[0].name_len == 3 && !memcmp(n->segs[0].name, "_id", 3)))) {
        ld_ql_node *id = id_node(p, n->segs[0].name, n->segs[0].name_len, cpos);
        ld_ql_node_free(n);
        return id;
    }
    return n;
}

static ld_ql_node *parse_call(parser *p)
{
    ld_ql_token *t = peek(p);
    size_t cpos = t->cpos;
    const char *s = p->text + t->off;
    if (t->len == 5 && !strncasecmp(s, "COUNT", 5)) {
        next(p);
        next(p); /* ( */
        if (peek(p)->kind != LD_QT_STAR) {
            ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos,
                            "Only COUNT(*) is supported (COUNT of an expression is not)");
            return NULL;
        }
        next(p);
        if (!expect(p, LD_QT_RPAREN, "')'")) return NULL;
        if (!p->count_allowed) {
            ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos,
                            "COUNT(*) is only allowed as the whole SELECT list");
            return NULL;
        }
        if (p->ncount++ == 0) p->count_cpos = cpos;
        /* Typed unknown: misplaced, it is reported as misplaced rather than as a number. */
        return mk(p, LD_QN_COUNT, cpos);
    }
    size_t f = 0;
    while (f < sizeof functions / sizeof functions[0] &&
           !(strlen(functions[f].name) == t->len && !strncasecmp(functions[f].name, s, t->len)))
        f++;
    if (f == sizeof functions / sizeof functions[0]) {
        char buf[64];
        tok_text(p, t, buf, sizeof buf);
        ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos, "Unknown function '%s'", buf);
        return NULL;
    }
    ld_ql_node *n = mk(p, LD_QN_FUNC, cpos);
    if (!n) return NULL;
    n->op = (int)functions[f].fn;
    next(p);
    next(p); /* ( */
    if (peek(p)->kind != LD_QT_RPAREN) {
        do {
            ld_ql_node *a = parse_expr(p);
            if (!a) {
                ld_ql_node_free(n);
                return NULL;
            }
            if (!add_arg(p, n, a)) return NULL;
        } while (accept(p, LD_QT_COMMA));
    }
    if (!expect(p, LD_QT_RPAREN, "',' or ')'")) {
        ld_ql_node_free(n);
        return NULL;
    }
    const char *name = functions[f].name;
    if (n->nargs < functions[f].min_args || n->nargs > functions[f].max_args) {
        if (functions[f].min_args == functions[f].max_args)
            ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos, "%s takes %zu argument%s, got %zu", name,
                            functions[f].min_args, functions[f].min_args == 1 ? "" : "s", n->nargs);
        else if (functions[f].fn == LD_QF_COALESCE)
            ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos, "%s takes 1 to %zu arguments, got %zu",
                            name, functions[f].max_args, n->nargs);
        else
            ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos, "%s takes %zu or %zu arguments, got %zu",
                            name, functions[f].min_args, functions[f].max_args, n->nargs);
        ld_ql_node_free(n);
        return NULL;
    }
    char what[64];
    bool ok = true;
    switch (functions[f].fn) {
    case LD_QF_LOWER:
    case LD_QF_UPPER:
    case LD_QF_TRIM:
        snprintf(what, sizeof what, "%s needs a string", name);
        ok = check_type(p, n->args[0], T_STR, what);
        n->type = LD_QTY_STRING;
        break;
    case LD_QF_LENGTH:
        snprintf(what, sizeof what, "%s needs a string, an array or an object", name);
        ok = check_type(p, n->args[0], T_STR | T_ARR | T_OBJ, what);
        n->type = LD_QTY_NUMBER;
        break;
    case LD_QF_SUBSTRING:
        snprintf(what, sizeof what, "%s needs a string", name);
        ok = check_type(p, n->args[0], T_STR, what);
        snprintf(what, sizeof what, "%s needs integer positions", name);
        for (size_t i = 1; ok && i < n->nargs; i++)
            ok = check_type(p, n->args[i], T_NUM, what);
        n->type = LD_QTY_STRING;
        break;
    case LD_QF_COALESCE:
        n->type = n->args[0]->type;
        for (size_t i = 1; i < n->nargs; i++)
            if (n->args[i]->type != n->type) n->type = LD_QTY_UNKNOWN;
        break;
    }
    if (!ok) {
        ld_ql_node_free(n);
        return NULL;
    }
    return finish(p, n);
}

static ld_ql_node *parse_primary(parser *p)
{
    ld_ql_token *t = peek(p);
    switch (t->kind) {
    case LD_QT_NUMBER:
    case LD_QT_STRING:
    case LD_QT_DSTRING: {
        ld_qbuf text;
        ld_qbuf_init(&text);
        json_t *v = t->kind == LD_QT_NUMBER ? number_value(p, t, false, &text) : NULL;
        if (t->kind != LD_QT_NUMBER) {
            v = json_incref(t->value);
            if (!ld_qbuf_json_string(&text, json_string_value(v), json_string_length(v))) {
                json_decref(v);
                v = NULL;
                nomem(p);
            }
        }
        size_t tlen;
        char *s = v ? ld_qbuf_take(&text, &tlen) : NULL;
        if (!s) {
            if (v) nomem(p);
            json_decref(v);
            ld_qbuf_free(&text);
            return NULL;
        }
        next(p);
        return literal(p, v, s, tlen, t->cpos);
    }
    case LD_QT_LPAREN: {
        if (!enter(p)) return NULL; /* so a too deep nesting points at its '(' */
        next(p);
        ld_ql_node *e = parse_logic(p, true);
        leave(p);
        if (!e) return NULL;
        if (!expect(p, LD_QT_RPAREN, "')'")) {
            ld_ql_node_free(e);
            return NULL;
        }
        return e;
    }
    case LD_QT_LBRACE:
    case LD_QT_LBRACKET:
        return json_literal(p);
    case LD_QT_NAME:
        if (t->kw == LD_QK_TRUE || t->kw == LD_QK_FALSE || t->kw == LD_QK_NULL) {
            json_t *v = t->kw == LD_QK_TRUE    ? json_true()
                        : t->kw == LD_QK_FALSE ? json_false()
                                               : json_null();
            const char *s = t->kw == LD_QK_TRUE ? "true" : t->kw == LD_QK_FALSE ? "false" : "null";
            char *text = strdup(s);
            if (!text) {
                nomem(p);
                return NULL;
            }
            next(p);
            return literal(p, v, text, strlen(s), t->cpos);
        }
        if (t->kw != LD_QK_NONE) break;
        if (peek_at(p, 1)->kind == LD_QT_LPAREN) {
            if (unsupported_construct(p, t)) break;
            return parse_call(p);
        }
        /* DISTINCT x, CASE WHEN ...: a name then another word is an unsupported construct. */
        if (unsupported_construct(p, t) && (peek_at(p, 1)->kind == LD_QT_NAME)) break;
        return parse_path(p);
    default:
        break;
    }
    unexpected(p, t);
    return NULL;
}

static ld_ql_node *parse_unary(parser *p)
{
    ld_ql_token *t = peek(p);
    if (t->kind != LD_QT_MINUS && t->kind != LD_QT_PLUS) return parse_primary(p);
    /* -<number> is a literal, so -9223372036854775808 and the text of -0.5 stay exact. */
    if (t->kind == LD_QT_MINUS && peek_at(p, 1)->kind == LD_QT_NUMBER) {
        next(p);
        ld_ql_token *num = peek(p);
        ld_qbuf text;
        ld_qbuf_init(&text);
        json_t *v = number_value(p, num, true, &text);
        size_t tlen;
        char *s = v ? ld_qbuf_take(&text, &tlen) : NULL;
        if (!s) {
            if (v) nomem(p);
            json_decref(v);
            ld_qbuf_free(&text);
            return NULL;
        }
        next(p);
        return literal(p, v, s, tlen, t->cpos);
    }
    if (!enter(p)) return NULL;
    next(p);
    ld_ql_node *x = parse_unary(p);
    leave(p);
    if (!x) return NULL;
    char what[48];
    snprintf(what, sizeof what, "Operator '%c' needs a number", t->kind == LD_QT_MINUS ? '-' : '+');
    if (!check_type(p, x, T_NUM, what)) {
        ld_ql_node_free(x);
        return NULL;
    }
    if (t->kind == LD_QT_PLUS) return x;
    ld_ql_node *n = mk(p, LD_QN_NEG, t->cpos);
    if (!n) {
        ld_ql_node_free(x);
        return NULL;
    }
    if (!add_arg(p, n, x)) return NULL;
    n->type = LD_QTY_NUMBER;
    return finish(p, n);
}

static ld_ql_node *parse_binary(parser *p, bool mul)
{
    ld_ql_node *left = mul ? parse_unary(p) : parse_binary(p, true);
    if (!left) return NULL;
    for (;;) {
        ld_ql_token *t = peek(p);
        ld_ql_op op;
        if (mul && t->kind == LD_QT_STAR)
            op = LD_QO_MUL;
        else if (mul && t->kind == LD_QT_SLASH)
            op = LD_QO_DIV;
        else if (mul && t->kind == LD_QT_PERCENT)
            op = LD_QO_MOD;
        else if (!mul && t->kind == LD_QT_PLUS)
            op = LD_QO_ADD;
        else if (!mul && t->kind == LD_QT_MINUS)
            op = LD_QO_SUB;
        else
            return left;
        next(p);
        ld_ql_node *right = mul ? parse_unary(p) : parse_binary(p, true);
        if (!right) {
            ld_ql_node_free(left);
            return NULL;
        }
        char what[48];
        snprintf(what, sizeof what, "Operator '%s' needs numbers", ld_ql_op_text(op));
        if (!check_type(p, left, T_NUM, what) || !check_type(p, right, T_NUM, what)) {
            ld_ql_node_free(left);
            ld_ql_node_free(right);
            return NULL;
        }
        ld_ql_node *n = mk(p, LD_QN_ARITH, t->cpos);
        if (!n) {
            ld_ql_node_free(left);
            ld_ql_node_free(right);
            return NULL;
        }
        n->op = (int)op;
        n->type = LD_QTY_NUMBER;
        if (!add_arg(p, n, left)) {
            ld_ql_node_free(right);
            return NULL;
        }
        if (!add_arg(p, n, right)) return NULL;
        if (!(left = finish(p, n))) return NULL;
    }
}

/* Checks a LIKE pattern known at parse time: it must not end with its escape character. */
static bool check_like_literal(parser *p, const ld_ql_node *pat, const ld_ql_node *esc)
{
    if (pat->kind != LD_QN_LITERAL || !json_is_string(pat->value)) return true;
    const char *e = "\\";
    size_t elen = 1;
    if (esc) {
        if (esc->kind != LD_QN_LITERAL || !json_is_string(esc->value)) return true;
        e = json_string_value(esc->value);
        elen = json_string_length(esc->value);
    }
    if (elen == 0) return true;
    const char *s = json_string_value(pat->value);
    size_t n = json_string_length(pat->value);
    for (size_t i = 0; i < n;) {
        if (n - i >= elen && !memcmp(s + i, e, elen)) {
            if (n - i == elen) {
                ld_ql_error_set(p->err, LD_QE_RUNTIME, pat->cpos,
                                "LIKE pattern must not end with the escape character");
                return false;
            }
            i += elen;
        }
        /* skip one character */
        i++;
        while (i < n && (((unsigned char)s[i]) & 0xc0) == 0x80)
            i++;
    }
    return true;
}

/* ESCAPE needs one character (or '' for none). */
static bool check_escape_literal(parser *p, const ld_ql_node *esc)
{
    if (esc->kind != LD_QN_LITERAL || !json_is_string(esc->value)) return true;
    const char *s = json_string_value(esc->value);
    size_t n = json_string_length(esc->value), chars = 0;
    for (size_t i = 0; i < n; i++)
        if ((((unsigned char)s[i]) & 0xc0) != 0x80) chars++;
    if (chars <= 1) return true;
    ld_ql_error_set(p->err, LD_QE_TYPE, esc->cpos, "ESCAPE needs a single character");
    return false;
}

static ld_ql_node *parse_cmp(parser *p)
{
    ld_ql_node *left = parse_binary(p, false);
    if (!left) return NULL;
    ld_ql_token *t = peek(p);
    ld_ql_op op;
    switch (t->kind) {
    case LD_QT_EQ:
        op = LD_QO_EQ;
        break;
    case LD_QT_NE:
        op = LD_QO_NE;
        break;
    case LD_QT_LT:
        op = LD_QO_LT;
        break;
    case LD_QT_LE:
        op = LD_QO_LE;
        break;
    case LD_QT_GT:
        op = LD_QO_GT;
        break;
    case LD_QT_GE:
        op = LD_QO_GE;
        break;
    default:
        goto words;
    }
    {
        next(p);
        ld_ql_node *right = parse_binary(p, false);
        if (!right) {
            ld_ql_node_free(left);
            return NULL;
        }
        ld_ql_node *n = mk(p, LD_QN_CMP, t->cpos);
        if (!n) {
            ld_ql_node_free(left);
            ld_ql_node_free(right);
            return NULL;
        }
        n->op = (int)op;
        n->type = LD_QTY_BOOL;
        if (!add_arg(p, n, left)) {
            ld_ql_node_free(right);
            return NULL;
        }
        if (!add_arg(p, n, right)) return NULL;
        return finish(p, n);
    }
words:;
    bool negated = false;
    size_t cpos = t->cpos;
    if (is_kw(t, LD_QK_NOT)) {
        ld_ql_token *u = peek_at(p, 1);
        if (!is_kw(u, LD_QK_LIKE) && !is_kw(u, LD_QK_IN) && !is_kw(u, LD_QK_BETWEEN)) return left;
        negated = true;
        next(p);
        t = peek(p);
    }
    ld_ql_nkind kind;
    if (is_kw(t, LD_QK_LIKE))
        kind = LD_QN_LIKE;
    else if (is_kw(t, LD_QK_IN))
        kind = LD_QN_IN;
    else if (is_kw(t, LD_QK_BETWEEN))
        kind = LD_QN_BETWEEN;
    else if (is_kw(t, LD_QK_IS))
        kind = LD_QN_ISNULL;
    else
        return left;
    next(p);
    ld_ql_node *n = mk(p, kind, cpos);
    if (!n) {
        ld_ql_node_free(left);
        return NULL;
    }
    n->negated = negated;
    n->type = LD_QTY_BOOL;
    if (!add_arg(p, n, left)) return NULL;
    switch (kind) {
    case LD_QN_LIKE: {
        if (!check_type(p, left, T_STR, "LIKE needs a string")) goto fail;
        ld_ql_node *pat = parse_binary(p, false);
        if (!pat) goto fail;
        if (!add_arg(p, n, pat)) return NULL;
        if (!check_type(p, pat, T_STR, "LIKE needs a string pattern")) goto fail;
        ld_ql_node *esc = NULL;
        if (accept_kw(p, LD_QK_ESCAPE)) {
            esc = parse_binary(p, false);
            if (!esc) goto fail;
            if (!add_arg(p, n, esc)) return NULL;
            if (!check_type(p, esc, T_STR, "ESCAPE needs a string") ||
                !check_escape_literal(p, esc))
                goto fail;
        }
        if (!check_like_literal(p, pat, esc)) goto fail;
        break;
    }
    case LD_QN_IN:
        if (!expect(p, LD_QT_LPAREN, "'(' after IN")) goto fail;
        if (peek(p)->kind == LD_QT_RPAREN) {
            ld_ql_error_set(p->err, LD_QE_SYNTAX, peek(p)->cpos, "IN needs at least one value");
            goto fail;
        }
        do {
            ld_ql_node *v = parse_expr(p);
            if (!v) goto fail;
            if (!add_arg(p, n, v)) return NULL;
        } while (accept(p, LD_QT_COMMA));
        if (!expect(p, LD_QT_RPAREN, "',' or ')'")) goto fail;
        break;
    case LD_QN_BETWEEN: {
        ld_ql_node *lo = parse_binary(p, false);
        if (!lo) goto fail;
        if (!add_arg(p, n, lo)) return NULL;
        if (!expect_kw(p, LD_QK_AND)) goto fail;
        ld_ql_node *hi = parse_binary(p, false);
        if (!hi) goto fail;
        if (!add_arg(p, n, hi)) return NULL;
        break;
    }
    default: /* IS [NOT] NULL */
        if (accept_kw(p, LD_QK_NOT)) n->negated = true;
        if (!expect_kw(p, LD_QK_NULL)) goto fail;
        break;
    }
    return finish(p, n);
fail:
    ld_ql_node_free(n);
    return NULL;
}

static ld_ql_node *parse_not(parser *p)
{
    ld_ql_token *t = peek(p);
    if (!is_kw(t, LD_QK_NOT)) return parse_cmp(p);
    if (!enter(p)) return NULL;
    next(p);
    ld_ql_node *x = parse_not(p);
    leave(p);
    if (!x) return NULL;
    if (!check_type(p, x, T_BOOL, "NOT needs a boolean")) {
        ld_ql_node_free(x);
        return NULL;
    }
    ld_ql_node *n = mk(p, LD_QN_NOT, t->cpos);
    if (!n) {
        ld_ql_node_free(x);
        return NULL;
    }
    n->type = LD_QTY_BOOL;
    if (!add_arg(p, n, x)) return NULL;
    return finish(p, n);
}

/* AND and OR: n-ary nodes, so a long list of conditions is one level, not a deep tree. */
static ld_ql_node *parse_logic(parser *p, bool is_or)
{
    ld_ql_node *first = is_or ? parse_logic(p, false) : parse_not(p);
    if (!first) return NULL;
    ld_ql_kw kw = is_or ? LD_QK_OR : LD_QK_AND;
    if (!is_kw(peek(p), kw)) return first;
    const char *what = is_or ? "OR needs booleans" : "AND needs booleans";
    ld_ql_node *n = mk(p, is_or ? LD_QN_OR : LD_QN_AND, peek(p)->cpos);
    if (!n) {
        ld_ql_node_free(first);
        return NULL;
    }
    n->type = LD_QTY_BOOL;
    if (!check_type(p, first, T_BOOL, what)) {
        ld_ql_node_free(first);
        ld_ql_node_free(n);
        return NULL;
    }
    if (!add_arg(p, n, first)) return NULL;
    while (accept_kw(p, kw)) {
        ld_ql_node *x = is_or ? parse_logic(p, false) : parse_not(p);
        if (!x) {
            ld_ql_node_free(n);
            return NULL;
        }
        if (!add_arg(p, n, x)) return NULL;
        if (!check_type(p, x, T_BOOL, what)) {
            ld_ql_node_free(n);
            return NULL;
        }
    }
    return finish(p, n);
}

static ld_ql_node *parse_expr(parser *p)
{
    if (!enter(p)) return NULL;
    ld_ql_node *n = parse_logic(p, true);
    leave(p);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------------------------- */

static bool parse_uint(parser *p, const char *what, uint64_t *out)
{
    ld_ql_token *t = peek(p);
    if (t->kind != LD_QT_NUMBER || !json_is_integer(t->value) || json_integer_value(t->value) < 0) {
        if (t->kind == LD_QT_EOF)
            ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos,
                            "%s needs a non-negative integer but found the end of the query", what);
        else
            ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos, "%s needs a non-negative integer", what);
        return false;
    }
    *out = (uint64_t)json_integer_value(t->value);
    next(p);
    return true;
}

static bool parse_collection(parser *p, ld_ql_stmt *s)
{
    /* A name, or a double-quoted one for a collection called like a keyword ("order"). */
    ld_ql_token *t = peek(p);
    const char *name = p->text + t->off;
    size_t len = t->len;
    if (t->kind == LD_QT_DSTRING) {
        name = json_string_value(t->value);
        len = json_string_length(t->value);
    } else if (t->kind != LD_QT_NAME || t->kw != LD_QK_NONE) {
        expected(p, "a collection name");
        return false;
    }
    s->collection = malloc(len + 1);
    if (!s->collection) {
        nomem(p);
        return false;
    }
    memcpy(s->collection, name, len);
    s->collection[len] = '\0';
    s->collection_len = len;
    s->collection_cpos = t->cpos;
    next(p);
    return true;
}

static bool parse_where(parser *p, ld_ql_stmt *s)
{
    if (!accept_kw(p, LD_QK_WHERE)) return true;
    s->where = parse_expr(p);
    return s->where && check_type(p, s->where, T_BOOL, "WHERE needs a boolean condition");
}

static bool parse_object(parser *p, ld_ql_stmt *s, const char *what)
{
    if (peek(p)->kind != LD_QT_LBRACE) {
        ld_ql_error_set(p->err, LD_QE_SYNTAX, peek(p)->cpos, "%s", what);
        return false;
    }
    s->object = json_literal(p);
    return s->object != NULL;
}

static bool set_col_name(parser *p, ld_ql_col *c, const char *name, size_t len)
{
    if (!name_ok(p, name, len)) return false;
    c->name = malloc(len + 1);
    if (!c->name) {
        nomem(p);
        return false;
    }
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->name_len = len;
    return true;
}

/* Column names: the alias; a path's last member name; an id as written; otherwise [value] for
 * a single column (the contract's scalar row) and exprN in a list. Names must differ. */
static bool name_columns(parser *p, ld_ql_stmt *s)
{
    for (size_t i = 0; i < s->ncols; i++) {
        ld_ql_col *c = &s->cols[i];
        if (c->name) continue;
        const ld_ql_node *e = c->expr;
        const char *name = NULL;
        size_t len = 0;
        char buf[32];
        if (e->kind == LD_QN_PATH) {
            for (size_t k = e->nsegs; k-- > 0;)
                if (!e->segs[k].is_index) {
                    name = e->segs[k].name;
                    len = e->segs[k].name_len;
                    break;
                }
        } else if (e->kind == LD_QN_ID) {
            name = e->text;
            len = e->text_len;
        }
        if (!name && s->ncols == 1) {
            name = "[value]";
            len = 7;
        } else if (!name) {
            snprintf(buf, sizeof buf, "expr%zu", i + 1);
            name = buf;
            len = strlen(buf);
        }
        if (!set_col_name(p, c, name, len)) return false;
    }
    for (size_t i = 1; i < s->ncols; i++)
        for (size_t j = 0; j < i; j++)
            if (s->cols[i].name_len == s->cols[j].name_len &&
                !memcmp(s->cols[i].name, s->cols[j].name, s->cols[i].name_len)) {
                ld_ql_error_set(p->err, LD_QE_SYNTAX, s->cols[i].expr->cpos,
                                "Duplicate column name '%.40s' (use AS to rename)",
                                s->cols[i].name);
                return false;
            }
    return true;
}

static bool parse_select_list(parser *p, ld_ql_stmt *s)
{
    if (accept(p, LD_QT_STAR)) {
        s->select_doc = true;
        return true;
    }
    p->count_allowed = true;
    do {
        ld_ql_col *cols = realloc(s->cols, (s->ncols + 1) * sizeof *cols);
        if (!cols) {
            nomem(p);
            return false;
        }
        s->cols = cols;
        ld_ql_col *c = &s->cols[s->ncols];
        *c = (ld_ql_col){0};
        c->expr = parse_expr(p);
        if (!c->expr) return false;
        s->ncols++;
        if (accept_kw(p, LD_QK_AS)) {
            ld_ql_token *t = peek(p);
            if (t->kind == LD_QT_NAME && t->kw == LD_QK_NONE) {
                if (!set_col_name(p, c, p->text + t->off, t->len)) return false;
            } else if (t->kind == LD_QT_STRING || t->kind == LD_QT_DSTRING) {
                if (!set_col_name(p, c, json_string_value(t->value), json_string_length(t->value)))
                    return false;
            } else {
                expected(p, "a column name after AS");
                return false;
            }
            next(p);
        }
    } while (accept(p, LD_QT_COMMA));
    p->count_allowed = false;
    if (p->ncount > 0) {
        if (s->ncols != 1 || s->cols[0].expr->kind != LD_QN_COUNT) {
            ld_ql_error_set(p->err, LD_QE_SYNTAX, p->count_cpos,
                            "COUNT(*) is only allowed as the whole SELECT list");
            return false;
        }
        s->count = true;
    }
    /* SELECT $ (no alias): the documents themselves. */
    if (s->ncols == 1 && !s->cols[0].name && s->cols[0].expr->kind == LD_QN_PATH &&
        s->cols[0].expr->nsegs == 0) {
        ld_ql_node_free(s->cols[0].expr);
        free(s->cols);
        s->cols = NULL;
        s->ncols = 0;
        s->select_doc = true;
        return true;
    }
    return name_columns(p, s);
}

static bool parse_select(parser *p, ld_ql_stmt *s)
{
    next(p); /* SELECT */
    if (accept_kw(p, LD_QK_TOP)) {
        if (!parse_uint(p, "TOP", &s->top)) return false;
        s->has_top = true; /* TOP n is LIMIT n (the API also lets n rows past Take) */
        s->has_limit = true;
        s->limit = s->top;
    }
    if (!parse_select_list(p, s)) return false;
    if (!expect_kw(p, LD_QK_FROM)) return false;
    if (!parse_collection(p, s) || !parse_where(p, s)) return false;
    if (accept_kw(p, LD_QK_ORDER)) {
        if (!expect_kw(p, LD_QK_BY)) return false;
        do {
            ld_ql_order *o = realloc(s->order, (s->norder + 1) * sizeof *o);
            if (!o) {
                nomem(p);
                return false;
            }
            s->order = o;
            size_t cpos = peek(p)->cpos;
            ld_ql_node *e = parse_expr(p);
            if (!e) return false;
            s->order[s->norder++] = (ld_ql_order){.expr = e};
            if (e->kind == LD_QN_LITERAL && e->type == LD_QTY_NUMBER) {
                ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos,
                                "ORDER BY column positions are not supported (order by an "
                                "expression such as $.name)");
                return false;
            }
            if (accept_kw(p, LD_QK_DESC))
                s->order[s->norder - 1].desc = true;
            else
                accept_kw(p, LD_QK_ASC);
        } while (accept(p, LD_QT_COMMA));
    }
    bool seen_limit = false, seen_offset = false;
    for (;;) {
        ld_ql_token *t = peek(p);
        if (!seen_limit && is_kw(t, LD_QK_LIMIT)) {
            if (s->has_top) {
                ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos,
                                "TOP and LIMIT cannot be used together");
                return false;
            }
            next(p);
            if (!parse_uint(p, "LIMIT", &s->limit)) return false;
            s->has_limit = seen_limit = true;
        } else if (!seen_offset && is_kw(t, LD_QK_OFFSET)) {
            next(p);
            if (!parse_uint(p, "OFFSET", &s->offset)) return false;
            seen_offset = true;
        } else {
            return true;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Index DDL: CREATE INDEX and DROP INDEX. Their words (CREATE, DROP, INDEX, ON, IF, EXISTS) are
 * matched in place rather than reserved, so members and collections keep such names.
 * ------------------------------------------------------------------------------------------- */

#define DDL_MAX_PATHS 8  /* index.h LD_INDEX_MAX_PATHS */
#define DDL_NAME_MAX  64 /* index.h LD_INDEX_NAME_MAX */

static bool is_word(parser *p, const ld_ql_token *t, const char *w)
{
    return t->kind == LD_QT_NAME && t->len == strlen(w) &&
           !strncasecmp(p->text + t->off, w, t->len);
}

static bool expect_word(parser *p, const char *w)
{
    if (is_word(p, peek(p), w)) {
        next(p);
        return true;
    }
    expected(p, w);
    return false;
}

static bool parse_index_name(parser *p, ld_ql_stmt *s)
{
    ld_ql_token *t = peek(p);
    const char *name = p->text + t->off;
    if (t->kind != LD_QT_NAME || t->kw != LD_QK_NONE) {
        expected(p, "an index name");
        return false;
    }
    if (name[0] == '$' || t->len > DDL_NAME_MAX) {
        ld_ql_error_set(p->err, LD_QE_SYNTAX, t->cpos,
                        "Invalid index name: letters, digits, '_' and '$', at most %d, "
                        "not starting with '$'",
                        DDL_NAME_MAX);
        return false;
    }
    if (!(s->index_name = malloc(t->len + 1))) {
        nomem(p);
        return false;
    }
    memcpy(s->index_name, name, t->len);
    s->index_name[t->len] = '\0';
    s->index_name_len = t->len;
    next(p);
    return true;
}

/* One indexed path: a path below the document (not the id), kept as the text written. */
static bool parse_index_path(parser *p, ld_ql_stmt *s)
{
    ld_ql_token *t = peek(p);
    size_t off = t->off, cpos = t->cpos;
    if (t->kind != LD_QT_NAME || t->kw != LD_QK_NONE) {
        expected(p, "a path such as $.a.b");
        return false;
    }
    ld_ql_node *n = parse_path(p);
    if (!n) return false;
    bool ok = n->kind == LD_QN_PATH && n->nsegs > 0;
    if (!ok)
        ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos,
                        n->kind == LD_QN_ID
                            ? "An index path cannot be the document id (documents are already "
                              "in id order)"
                            : "An index path must name a member below the document, such as $.a");
    ld_ql_node_free(n);
    if (!ok) return false;
    if (s->nindex_paths == DDL_MAX_PATHS) {
        ld_ql_error_set(p->err, LD_QE_SYNTAX, cpos, "An index has at most %d paths", DDL_MAX_PATHS);
        return false;
    }
    const ld_ql_token *last = &p->toks.v[p->i - 1];
    size_t len = last->off + last->len - off;
    char **np = realloc(s->index_paths, (s->nindex_paths + 1) * sizeof *np);
    char *text = malloc(len + 1);
    if (np) s->index_paths = np;
    if (!np || !text) {
        free(text);
        nomem(p);
        return false;
    }
    memcpy(text, p->text + off, len);
    text[len] = '\0';
    s->index_paths[s->nindex_paths++] = text;
    return true;
}

static bool parse_create_index(parser *p, ld_ql_stmt *s)
{
    s->kind = LD_QS_CREATE_INDEX;
    next(p); /* CREATE */
    if (!expect_word(p, "INDEX")) return false;
    if (is_word(p, peek(p), "IF")) {
        next(p);
        if (!expect_kw(p, LD_QK_NOT) || !expect_word(p, "EXISTS")) return false;
        s->if_exists = true;
    }
    if (!parse_index_name(p, s) || !expect_word(p, "ON") || !parse_collection(p, s) ||
        !expect(p, LD_QT_LPAREN, "'(' and the indexed paths"))
        return false;
    do {
        if (!parse_index_path(p, s)) return false;
    } while (accept(p, LD_QT_COMMA));
    return expect(p, LD_QT_RPAREN, "')'");
}

static bool parse_drop_index(parser *p, ld_ql_stmt *s)
{
    s->kind = LD_QS_DROP_INDEX;
    next(p); /* DROP */
    if (!expect_word(p, "INDEX")) return false;
    if (is_word(p, peek(p), "IF")) {
        next(p);
        if (!expect_word(p, "EXISTS")) return false;
        s->if_exists = true;
    }
    return parse_index_name(p, s) && expect_word(p, "ON") && parse_collection(p, s);
}

/* Whether the statement starts with CREATE INDEX or DROP INDEX: any other command (DROP TABLE)
 * keeps the contract's "Unable to determine query command." */
static bool is_ddl(parser *p)
{
    return (is_word(p, peek(p), "CREATE") || is_word(p, peek(p), "DROP")) &&
           is_word(p, peek_at(p, 1), "INDEX");
}

static bool parse_ddl(parser *p, ld_ql_stmt *s)
{
    bool ok = is_word(p, peek(p), "CREATE") ? parse_create_index(p, s) : parse_drop_index(p, s);
    if (ok && peek(p)->kind != LD_QT_EOF) {
        unexpected(p, peek(p));
        return false;
    }
    return ok;
}

static bool parse_statement(parser *p, ld_ql_stmt *s)
{
    if (is_ddl(p)) return parse_ddl(p, s);
    ld_ql_token *t = peek(p);
    switch (t->kw) {
    case LD_QK_SELECT:
        s->kind = LD_QS_SELECT;
        if (!parse_select(p, s)) return false;
        break;
    case LD_QK_INSERT:
        s->kind = LD_QS_INSERT;
        next(p);
        if (!expect_kw(p, LD_QK_INTO) || !parse_collection(p, s) || !expect_kw(p, LD_QK_VALUES) ||
            !parse_object(p, s, "INSERT needs VALUES followed by one JSON object"))
            return false;
        break;
    case LD_QK_UPDATE:
        s->kind = LD_QS_UPDATE;
        next(p);
        if (!parse_collection(p, s) || !expect_kw(p, LD_QK_SET) ||
            !parse_object(p, s,
                          "UPDATE needs SET followed by a JSON object of the fields to merge "
                          "(SET field = value is not supported)") ||
            !parse_where(p, s))
            return false;
        break;
    default: /* DELETE */
        s->kind = LD_QS_DELETE;
        next(p);
        if (!expect_kw(p, LD_QK_FROM) || !parse_collection(p, s) || !parse_where(p, s))
            return false;
        break;
    }
    if (peek(p)->kind != LD_QT_EOF) {
        unexpected(p, peek(p));
        return false;
    }
    return true;
}

/* EXPLAIN before a SELECT, UPDATE or DELETE: skipped, and said in *explain. Not a reserved word
 * (a member may be called explain): only the first token is looked at. False (err set) when
 * nothing, or a statement that has no plan, follows. */
static bool parse_explain(parser *p, bool *explain)
{
    ld_ql_token *t = peek(p);
    *explain = t->kind == LD_QT_NAME && t->len == 7 && !strncasecmp(p->text + t->off, "EXPLAIN", 7);
    if (!*explain) return true;
    next(p);
    ld_ql_token *u = peek(p);
    if (!is_kw(u, LD_QK_SELECT) && !is_kw(u, LD_QK_UPDATE) && !is_kw(u, LD_QK_DELETE)) {
        ld_ql_error_set(p->err, LD_QE_SYNTAX, u->kind == LD_QT_EOF ? t->cpos : u->cpos,
                        "EXPLAIN needs a SELECT, UPDATE or DELETE statement");
        return false;
    }
    return true;
}

ld_ql_stmt *ld_ql_parse(const char *text, size_t len, const ld_ql_limits *lim, ld_ql_error *err)
{
    err->code = LD_QE_NONE;
    err->pos = 0;
    err->msg[0] = '\0';
    if (lim && lim->max_length && len > lim->max_length) {
        ld_ql_error_set(err, LD_QE_LIMIT, 0, "Query is longer than the limit of %zu bytes.",
                        lim->max_length);
        return NULL;
    }
    parser p = {.text = text, .len = len, .err = err, .max_depth = lim ? lim->max_depth : 0};
    ld_ql_error lexerr;
    if (!ld_ql_lex(text, len, &p.toks, &lexerr)) {
        bool semi = false;
        for (size_t i = 0; i < p.toks.n; i++)
            semi |= p.toks.v[i].kind == LD_QT_SEMI;
        ld_ql_tokens_free(&p.toks);
        if (semi && lexerr.code != LD_QE_NOMEM)
            ld_ql_error_set(err, LD_QE_MULTI, 0, "Only one query statement is allowed.");
        else
            *err = lexerr;
        return NULL;
    }
    /* One statement: a ';' is allowed only as the very last token. */
    for (size_t i = 0; i < p.toks.n; i++) {
        if (p.toks.v[i].kind != LD_QT_SEMI) continue;
        if (i + 2 != p.toks.n) {
            ld_ql_tokens_free(&p.toks);
            ld_ql_error_set(err, LD_QE_MULTI, 0, "Only one query statement is allowed.");
            return NULL;
        }
        p.toks.v[i].kind = LD_QT_EOF;
        p.toks.n--;
    }
    ld_ql_stmt *s = NULL;
    bool explain = false;
    if (!parse_explain(&p, &explain)) {
        ld_ql_tokens_free(&p.toks);
        return NULL;
    }
    ld_ql_token *first = peek(&p);
    if (p.toks.n == 1 && first->len == 0 && first->off == len) {
        ld_ql_error_set(err, LD_QE_EMPTY, 0, "Query is required.");
    } else if (!is_kw(first, LD_QK_SELECT) && !is_kw(first, LD_QK_INSERT) &&
               !is_kw(first, LD_QK_UPDATE) && !is_kw(first, LD_QK_DELETE) && !is_ddl(&p)) {
        ld_ql_error_set(err, LD_QE_COMMAND, 0, "Unable to determine query command.");
    } else if (!(s = calloc(1, sizeof *s))) {
        nomem(&p);
    } else if (!parse_statement(&p, s)) {
        ld_ql_stmt_free(s);
        s = NULL;
    } else {
        s->explain = explain;
    }
    ld_ql_tokens_free(&p.toks);
    return s;
}
