/* The LiteQL planner (plan.h): which conjuncts of a WHERE an index can answer as key ranges, and
 * the choice between indexes and the scan. The ranges cover exactly the documents the evaluator
 * would match (the key encoding orders values as ld_ql_compare does, and a missing member, which
 * evaluates as null, shares null's range), so the WHERE re-checked on each candidate never
 * misses a row. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "../index/index.h"
#include "../index/keyenc.h"
#include "eval.h"

#define MAX_RANGES 256 /* IN lists (and their products over compound paths) beyond: not indexed */
#define MAX_PATHS  16  /* an index's paths the planner looks at (LD_INDEX_MAX_PATHS allows 16) */
#define MAX_BOUNDS 16  /* bound conjuncts on one path it combines; more stay in the residual */

void ld_plan_free(ld_plan *p)
{
    for (size_t i = 0; i < p->nranges; i++) {
        free(p->ranges[i].lo);
        free(p->ranges[i].hi);
        free(p->ranges[i].text);
    }
    free(p->ranges);
    free(p->residual);
    memset(p, 0, sizeof *p);
}

const char *ld_plan_kind_name(ld_plan_kind k)
{
    switch (k) {
    case LD_PLAN_INDEX_EQ:
        return "index eq";
    case LD_PLAN_INDEX_RANGE:
        return "index range";
    case LD_PLAN_INDEX_ORDER:
        return "index order";
    default:
        return "scan";
    }
}

/* ---------------------------------------------------------------------------------------------
 * Expressions as text (EXPLAIN)
 * ------------------------------------------------------------------------------------------- */

static bool is_ident(const char *s, size_t n)
{
    if (!n || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static bool path_text(const ld_ql_seg *segs, size_t nsegs, ld_qbuf *out)
{
    bool ok = ld_qbuf_addc(out, '$');
    for (size_t i = 0; ok && i < nsegs; i++) {
        const ld_ql_seg *g = &segs[i];
        if (g->is_index)
            ok = ld_qbuf_addf(out, "[%zu]", g->index);
        else if (is_ident(g->name, g->name_len))
            ok = ld_qbuf_addc(out, '.') && ld_qbuf_add(out, g->name, g->name_len);
        else
            ok = ld_qbuf_addc(out, '[') && ld_qbuf_json_string(out, g->name, g->name_len) &&
                 ld_qbuf_addc(out, ']');
    }
    return ok;
}

/* A value as LiteQL reads it: strings in single quotes ('' for a quote), the rest as JSON. */
static bool value_text(const json_t *v, ld_qbuf *out)
{
    if (!json_is_string(v)) return ld_ql_dump(v, out);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), from = 0;
    bool ok = ld_qbuf_addc(out, '\'');
    for (size_t i = 0; ok && i < n; i++)
        if (s[i] == '\'') {
            ok = ld_qbuf_add(out, s + from, i + 1 - from) && ld_qbuf_addc(out, '\'');
            from = i + 1;
        }
    return ok && ld_qbuf_add(out, s + from, n - from) && ld_qbuf_addc(out, '\'');
}

/* Binding strength, for parentheses: OR < AND < NOT < comparisons < + - < * / % < unary. */
static int prec(const ld_ql_node *n)
{
    switch (n->kind) {
    case LD_QN_OR:
        return 1;
    case LD_QN_AND:
        return 2;
    case LD_QN_NOT:
        return 3;
    case LD_QN_CMP:
    case LD_QN_LIKE:
    case LD_QN_IN:
    case LD_QN_BETWEEN:
    case LD_QN_ISNULL:
        return 4;
    case LD_QN_ARITH:
        return n->op == LD_QO_ADD || n->op == LD_QO_SUB ? 5 : 6;
    case LD_QN_NEG:
        return 7;
    default:
        return 8;
    }
}

/* n as an operand of an operator binding with strength p: parenthesized when it binds looser
 * (or as loose, on the right of a left-associative operator). */
static bool operand(const ld_ql_node *n, int p, bool right, ld_qbuf *out)
{
    bool paren = prec(n) < p || (right && prec(n) == p);
    return (!paren || ld_qbuf_addc(out, '(')) && ld_plan_expr_text(n, out) &&
           (!paren || ld_qbuf_addc(out, ')'));
}

bool ld_plan_expr_text(const ld_ql_node *n, ld_qbuf *out)
{
    int p = prec(n);
    switch (n->kind) {
    case LD_QN_LITERAL: /* numbers as written */
        if (n->text && !json_is_string(n->value)) return ld_qbuf_add(out, n->text, n->text_len);
        return value_text(n->value, out);
    case LD_QN_PATH:
        return path_text(n->segs, n->nsegs, out);
    case LD_QN_ID:
        return ld_qbuf_adds(out, "_id");
    case LD_QN_NEG:
        return ld_qbuf_addc(out, '-') && operand(n->args[0], p, false, out);
    case LD_QN_NOT:
        return ld_qbuf_adds(out, "NOT ") && operand(n->args[0], p, false, out);
    case LD_QN_AND:
    case LD_QN_OR:
        for (size_t i = 0; i < n->nargs; i++) {
            if (i && !ld_qbuf_adds(out, n->kind == LD_QN_AND ? " AND " : " OR ")) return false;
            if (!operand(n->args[i], p, i > 0, out)) return false;
        }
        return true;
    case LD_QN_CMP:
    case LD_QN_ARITH:
        return operand(n->args[0], p, false, out) && ld_qbuf_addc(out, ' ') &&
               ld_qbuf_adds(out, ld_ql_op_text((ld_ql_op)n->op)) && ld_qbuf_addc(out, ' ') &&
               operand(n->args[1], p, true, out);
    case LD_QN_LIKE:
        if (!operand(n->args[0], p, false, out) ||
            !ld_qbuf_adds(out, n->negated ? " NOT LIKE " : " LIKE ") ||
            !operand(n->args[1], p, true, out))
            return false;
        return n->nargs < 3 || (ld_qbuf_adds(out, " ESCAPE ") && operand(n->args[2], p, true, out));
    case LD_QN_IN:
        if (!operand(n->args[0], p, false, out) ||
            !ld_qbuf_adds(out, n->negated ? " NOT IN (" : " IN ("))
            return false;
        for (size_t i = 1; i < n->nargs; i++)
            if ((i > 1 && !ld_qbuf_adds(out, ", ")) || !ld_plan_expr_text(n->args[i], out))
                return false;
        return ld_qbuf_addc(out, ')');
    case LD_QN_BETWEEN:
        return operand(n->args[0], p, false, out) &&
               ld_qbuf_adds(out, n->negated ? " NOT BETWEEN " : " BETWEEN ") &&
               operand(n->args[1], p + 1, false, out) && ld_qbuf_adds(out, " AND ") &&
               operand(n->args[2], p + 1, false, out);
    case LD_QN_ISNULL:
        return operand(n->args[0], p, false, out) &&
               ld_qbuf_adds(out, n->negated ? " IS NOT NULL" : " IS NULL");
    case LD_QN_FUNC:
        if (!ld_qbuf_adds(out, ld_ql_fn_name((ld_ql_fn)n->op)) || !ld_qbuf_addc(out, '('))
            return false;
        for (size_t i = 0; i < n->nargs; i++)
            if ((i && !ld_qbuf_adds(out, ", ")) || !ld_plan_expr_text(n->args[i], out))
                return false;
        return ld_qbuf_addc(out, ')');
    default:
        return ld_qbuf_adds(out, "COUNT(*)");
    }
}

/* ---------------------------------------------------------------------------------------------
 * Predicates an index can answer
 * ------------------------------------------------------------------------------------------- */

/* Whether n reads nothing of a document (its value is the same for every document). */
static bool is_const(const ld_ql_node *n)
{
    if (n->kind == LD_QN_PATH || n->kind == LD_QN_ID || n->kind == LD_QN_COUNT) return false;
    for (size_t i = 0; i < n->nargs; i++)
        if (!is_const(n->args[i])) return false;
    return true;
}

/* The value of a constant expression; NULL when evaluating it fails (a division by zero: the
 * scan then reports it, or not, exactly as without indexes) or memory runs out. */
static json_t *const_value(const ld_ql_node *n)
{
    if (n->kind == LD_QN_LITERAL) return json_incref(n->value);
    ld_ql_doc d = {0};
    ld_ql_error err;
    json_t *v = NULL;
    if (!ld_ql_eval(n, &d, &v, &err)) v = NULL;
    ld_ql_doc_clear(&d);
    return v;
}

typedef enum pkind { P_EQ, P_IN, P_LO, P_HI, P_BETWEEN } pkind;

/* One conjunct of the WHERE an index path can answer: path <op> constant(s). */
typedef struct pred {
    const ld_ql_node *src; /* the conjunct */
    const ld_ql_node *path;
    pkind kind;
    json_t **vals; /* EQ: 1, IN: n (sorted, distinct), LO/HI: 1, BETWEEN: 2 (lo, hi) */
    size_t nvals;
    bool incl; /* LO/HI: the bound itself matches */
} pred;

static void pred_free(pred *p)
{
    for (size_t i = 0; i < p->nvals; i++)
        json_decref(p->vals[i]);
    free(p->vals);
}

static int cmp_json(const void *a, const void *b)
{
    return ld_ql_compare(*(json_t *const *)a, *(json_t *const *)b);
}

/* Classifies conjunct c; false when no index can answer it (or memory ran out). */
static bool classify(const ld_ql_node *c, pred *p)
{
    memset(p, 0, sizeof *p);
    p->src = c;
    const ld_ql_node *path = NULL;
    const ld_ql_node *consts[2] = {NULL, NULL};
    size_t nconst = 0;
    switch (c->kind) {
    case LD_QN_CMP: {
        ld_ql_op op = (ld_ql_op)c->op;
        if (op == LD_QO_NE) return false;
        bool left = c->args[0]->kind == LD_QN_PATH && is_const(c->args[1]);
        bool right = c->args[1]->kind == LD_QN_PATH && is_const(c->args[0]);
        if (!left && !right) return false;
        path = left ? c->args[0] : c->args[1];
        consts[nconst++] = left ? c->args[1] : c->args[0];
        if (right) /* 5 < $.a is $.a > 5 */
            op = op == LD_QO_LT   ? LD_QO_GT
                 : op == LD_QO_LE ? LD_QO_GE
                 : op == LD_QO_GT ? LD_QO_LT
                 : op == LD_QO_GE ? LD_QO_LE
                                  : op;
        p->kind = op == LD_QO_EQ ? P_EQ : (op == LD_QO_GT || op == LD_QO_GE) ? P_LO : P_HI;
        p->incl = op == LD_QO_EQ || op == LD_QO_GE || op == LD_QO_LE;
        break;
    }
    case LD_QN_IN:
        if (c->negated || c->args[0]->kind != LD_QN_PATH || c->nargs < 2) return false;
        for (size_t i = 1; i < c->nargs; i++)
            if (!is_const(c->args[i])) return false;
        if (c->nargs - 1 > MAX_RANGES) return false;
        path = c->args[0];
        p->kind = P_IN;
        break;
    case LD_QN_BETWEEN:
        if (c->negated || c->args[0]->kind != LD_QN_PATH || !is_const(c->args[1]) ||
            !is_const(c->args[2]))
            return false;
        path = c->args[0];
        consts[nconst++] = c->args[1];
        consts[nconst++] = c->args[2];
        p->kind = P_BETWEEN;
        p->incl = true;
        break;
    case LD_QN_ISNULL: /* IS NULL: = null; IS NOT NULL: > null */
        if (c->args[0]->kind != LD_QN_PATH || c->args[0]->nsegs == 0) return false;
        path = c->args[0];
        p->kind = c->negated ? P_LO : P_EQ;
        p->incl = !c->negated;
        p->vals = malloc(sizeof *p->vals);
        if (!p->vals) return false;
        p->vals[p->nvals++] = json_null();
        p->path = path;
        return true;
    default:
        return false;
    }
    if (path->nsegs == 0) return false; /* $ itself is not indexed */
    p->path = path;
    size_t want = p->kind == P_IN ? c->nargs - 1 : nconst;
    p->vals = calloc(want, sizeof *p->vals);
    if (!p->vals) return false;
    for (size_t i = 0; i < want; i++) {
        json_t *v = const_value(p->kind == P_IN ? c->args[i + 1] : consts[i]);
        if (!v) {
            pred_free(p);
            return false;
        }
        p->vals[p->nvals++] = v;
    }
    if (p->kind == P_IN) { /* sorted and distinct: the ranges come out in key order */
        qsort(p->vals, p->nvals, sizeof *p->vals, cmp_json);
        size_t k = 0;
        for (size_t i = 0; i < p->nvals; i++) {
            if (k && ld_ql_compare(p->vals[k - 1], p->vals[i]) == 0)
                json_decref(p->vals[i]);
            else
                p->vals[k++] = p->vals[i];
        }
        p->nvals = k;
    }
    return true;
}

static bool same_path(const ld_ql_node *n, const ld_ql_seg *segs, size_t nsegs)
{
    if (n->nsegs != nsegs) return false;
    for (size_t i = 0; i < nsegs; i++) {
        const ld_ql_seg *a = &n->segs[i], *b = &segs[i];
        if (a->is_index != b->is_index) return false;
        if (a->is_index ? a->index != b->index
                        : a->name_len != b->name_len || memcmp(a->name, b->name, a->name_len))
            return false;
    }
    return true;
}

/* The WHERE's conjuncts (nested ANDs flattened) into *out. */
static bool conjuncts(const ld_ql_node *w, const ld_ql_node ***out, size_t *n, size_t *cap)
{
    if (w->kind == LD_QN_AND) {
        for (size_t i = 0; i < w->nargs; i++)
            if (!conjuncts(w->args[i], out, n, cap)) return false;
        return true;
    }
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        const ld_ql_node **a = realloc(*out, c * sizeof *a);
        if (!a) return false;
        *out = a;
        *cap = c;
    }
    (*out)[(*n)++] = w;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Key ranges
 * ------------------------------------------------------------------------------------------- */

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

/* Appends v as value pos of index ix's entries hold it after prefix (4 bytes of number, then
 * the values before it): capped to the same room, *cut set when that cut it. */
static bool append_value(ld_qbuf *b, const ld_plan_index *ix, size_t pos, const json_t *v,
                         bool *cut)
{
    bool c = false;
    size_t room = ld_index_room(ix->npaths, pos, b->len - 4);
    if (ld_keyenc_append_capped(b, v, room, &c) != LD_OK) return false;
    if (c) *cut = true;
    return true;
}

/* A key range edge after prefix, v being value pos: where the equality class of v starts
 * (start) or just past its end (!start). Null's class also holds the MISSING entries, which
 * sort just below it (a missing member evaluates as null). Past the end is the class's encoding
 * followed by 0xff: a key continues after a value with another value's tag or the id's UTF-8,
 * never 0xff. A value cut to fit a key stands for every value sharing its prefix, bigger and
 * smaller: then a low edge (lo) is always the class's start and a high one its end. */
static bool class_edge(const ld_qbuf *prefix, const ld_plan_index *ix, size_t pos, const json_t *v,
                       bool start, bool lo, uint8_t **out, size_t *n, bool *cut)
{
    ld_qbuf b;
    ld_qbuf_init(&b);
    bool ok = ld_qbuf_add(&b, prefix->data, prefix->len), c = false;
    if (ok && start && v && json_is_null(v))
        ok = ld_keyenc_append_missing(&b) == LD_OK;
    else if (ok && v)
        ok = append_value(&b, ix, pos, v, &c);
    if (c) {
        *cut = true;
        start = lo;
    }
    if (ok && !start) ok = ld_qbuf_addc(&b, (char)0xff);
    if (ok) {
        *n = b.len;
        *out = dup_bytes(b.data, b.len);
        ok = *out != NULL;
    }
    ld_qbuf_free(&b);
    return ok;
}

static bool add_range(ld_plan *p, ld_plan_range *r)
{
    ld_plan_range *a = realloc(p->ranges, (p->nranges + 1) * sizeof *a);
    if (!a) return false;
    p->ranges = a;
    p->ranges[p->nranges++] = *r;
    return true;
}

static void range_free(ld_plan_range *r)
{
    free(r->lo);
    free(r->hi);
    free(r->text);
}

/* What one index offers a statement. */
typedef struct choice {
    size_t neq;
    pred *eq[MAX_PATHS]; /* the EQ/IN conjunct chosen per leading path */
    pred *lo, *hi;       /* the tightest bounds on path neq (LO, or BETWEEN's first value) */
    size_t nbounds;      /* conjuncts those bounds came from */
    pred *bound_src[MAX_BOUNDS];
    bool ordered;
    bool desc_keys; /* as ordered, but DESC */
    size_t combos;  /* prefixes: the product of the eq value counts */
    int score;
} choice;

/* A bound's value: vals[0] of LO/HI/EQ, the low or high end of BETWEEN. */
static const json_t *bound_value(const pred *p, bool lo)
{
    return p->kind == P_BETWEEN ? p->vals[lo ? 0 : 1] : p->vals[0];
}

/* Whether bound a is tighter than b (a higher low end, a lower high end; exclusive at a tie). */
static bool tighter(const pred *a, const pred *b, bool lo)
{
    int c = ld_ql_compare(bound_value(a, lo), bound_value(b, lo));
    if (c) return lo ? c > 0 : c < 0;
    bool ai = a->kind == P_BETWEEN || a->incl, bi = b->kind == P_BETWEEN || b->incl;
    return !ai && bi;
}

static bool bound_incl(const pred *p)
{
    return p->kind == P_BETWEEN || p->incl;
}

static void evaluate(const ld_ql_stmt *s, const ld_plan_index *ix, pred *preds, size_t np,
                     choice *ch)
{
    memset(ch, 0, sizeof *ch);
    ch->combos = 1;
    size_t j = 0;
    for (; j < ix->npaths && j < MAX_PATHS; j++) {
        pred *best = NULL;
        for (size_t i = 0; i < np; i++) {
            pred *p = &preds[i];
            if ((p->kind != P_EQ && p->kind != P_IN) ||
                !same_path(p->path, ix->segs[j], ix->nsegs[j]))
                continue;
            if (!best || p->nvals < best->nvals) best = p;
        }
        if (!best) break;
        /* null's class spans two encodings (MISSING, null): one more range per prefix */
        size_t k = best->nvals + (json_is_null(best->vals[0]) ? 1 : 0);
        if (ch->combos * k > MAX_RANGES) break;
        ch->combos *= k;
        ch->eq[j] = best;
    }
    ch->neq = j;
    if (j < ix->npaths && j < MAX_PATHS) {
        for (size_t i = 0; i < np; i++) {
            pred *p = &preds[i];
            if ((p->kind != P_LO && p->kind != P_HI && p->kind != P_BETWEEN) ||
                !same_path(p->path, ix->segs[j], ix->nsegs[j]) || ch->nbounds == MAX_BOUNDS)
                continue;
            if (p->kind != P_HI && (!ch->lo || tighter(p, ch->lo, true))) ch->lo = p;
            if (p->kind != P_LO && (!ch->hi || tighter(p, ch->hi, false))) ch->hi = p;
            ch->bound_src[ch->nbounds++] = p;
        }
    }
    /* The walk is in ORDER BY's order when its first key is the path after a single equality
     * prefix (one value per path, not null's two-part class) and ascending. */
    bool single = ch->combos == 1;
    for (size_t i = 0; i < ch->neq; i++)
        single = single && ch->eq[i]->nvals == 1 && !json_is_null(ch->eq[i]->vals[0]);
    bool on_path = s->norder > 0 && s->order[0].expr->kind == LD_QN_PATH && ch->neq < ix->npaths &&
                   single && same_path(s->order[0].expr, ix->segs[ch->neq], ix->nsegs[ch->neq]);
    ch->ordered = on_path && !s->order[0].desc;
    /* DESC: the forward walk ends with the first rows; the keys alone can rank them (below) */
    ch->desc_keys = on_path && s->order[0].desc && s->norder == 1;
    ch->score = (int)ch->neq * 4 + (ch->nbounds ? 2 : 0) + (ch->ordered || ch->desc_keys ? 1 : 0);
}

/* Appends "path = v" (or IS NULL) for one equality value to a range's text. */
static bool eq_text(ld_qbuf *t, const ld_plan_index *ix, size_t j, const json_t *v)
{
    if (t->len && !ld_qbuf_adds(t, " AND ")) return false;
    if (!ld_qbuf_adds(t, ix->paths[j])) return false;
    if (json_is_null(v)) return ld_qbuf_adds(t, " IS NULL");
    return ld_qbuf_adds(t, " = ") && value_text(v, t);
}

static bool bound_text(ld_qbuf *t, const ld_plan_index *ix, size_t j, const pred *b, bool lo)
{
    if (t->len && !ld_qbuf_adds(t, " AND ")) return false;
    const char *op = lo ? (bound_incl(b) ? " >= " : " > ") : (bound_incl(b) ? " <= " : " < ");
    return ld_qbuf_adds(t, ix->paths[j]) && ld_qbuf_adds(t, op) &&
           value_text(bound_value(b, lo), t);
}

/* The values of equality path j, in key order: null stands for two prefixes (its MISSING and
 * null encodings) unless it is the last equality path and no bound follows, where one range
 * spans both. */
static size_t eq_count(const choice *ch, size_t j)
{
    const pred *e = ch->eq[j];
    bool split = json_is_null(e->vals[0]) && (j + 1 < ch->neq || ch->lo || ch->hi);
    return e->nvals + (split ? 1 : 0);
}

/* One range: the equality values idx[0..neq) (positions as eq_count counts them), narrowed by
 * the bounds on the next path. *empty when the bounds leave nothing ($.a > 5 AND $.a < 3). */
static bool one_range(const ld_plan_index *ix, const choice *ch, const size_t *idx,
                      ld_plan_range *r, bool *empty)
{
    memset(r, 0, sizeof *r);
    *empty = false;
    ld_qbuf prefix, text;
    ld_qbuf_init(&prefix);
    ld_qbuf_init(&text);
    uint8_t num[4] = {(uint8_t)(ix->num >> 24), (uint8_t)(ix->num >> 16), (uint8_t)(ix->num >> 8),
                      (uint8_t)ix->num};
    bool ok = ld_qbuf_add(&prefix, num, 4);
    const json_t *last = NULL; /* a last equality value whose whole class is one range */
    for (size_t j = 0; ok && j < ch->neq; j++) {
        const pred *e = ch->eq[j];
        bool split = eq_count(ch, j) > e->nvals;
        size_t vi = split && idx[j] > 0 ? idx[j] - 1 : idx[j];
        const json_t *v = e->vals[vi];
        ok = eq_text(&text, ix, j, v);
        if (ok && j + 1 == ch->neq && !ch->lo && !ch->hi)
            last = v;
        else if (ok && split && idx[j] == 0)
            ok = ld_keyenc_append_missing(&prefix) == LD_OK;
        else if (ok)
            ok = append_value(&prefix, ix, j, v, &r->cut);
    }
    size_t pos = ch->neq; /* the bounds' path */
    if (ok && last) {
        pos = ch->neq - 1;
        ok = class_edge(&prefix, ix, pos, last, true, true, &r->lo, &r->lo_len, &r->cut) &&
             class_edge(&prefix, ix, pos, last, false, false, &r->hi, &r->hi_len, &r->cut);
    } else if (ok) {
        ok = ch->lo ? class_edge(&prefix, ix, pos, bound_value(ch->lo, true), bound_incl(ch->lo),
                                 true, &r->lo, &r->lo_len, &r->cut) &&
                          bound_text(&text, ix, ch->neq, ch->lo, true)
                    : class_edge(&prefix, ix, pos, NULL, true, true, &r->lo, &r->lo_len, &r->cut);
        if (ok)
            ok = ch->hi ? class_edge(&prefix, ix, pos, bound_value(ch->hi, false),
                                     !bound_incl(ch->hi), false, &r->hi, &r->hi_len, &r->cut) &&
                              bound_text(&text, ix, ch->neq, ch->hi, false)
                        : class_edge(&prefix, ix, pos, NULL, false, false, &r->hi, &r->hi_len,
                                     &r->cut);
    }
    if (ok) {
        size_t tl;
        r->text = ld_qbuf_take(&text, &tl); /* NULL (and freed) when oom */
        ok = r->text != NULL;
    }
    ld_qbuf_free(&prefix);
    ld_qbuf_free(&text);
    if (ok) {
        size_t m = r->lo_len < r->hi_len ? r->lo_len : r->hi_len;
        int c = memcmp(r->lo, r->hi, m);
        *empty = c > 0 || (c == 0 && r->lo_len >= r->hi_len);
    }
    return ok;
}

/* The ranges of choice ch, one per combination of the equality values, in key order (the last
 * path varies fastest). */
static bool build_ranges(const ld_plan_index *ix, const choice *ch, ld_plan *p)
{
    size_t idx[MAX_PATHS] = {0};
    for (;;) {
        ld_plan_range r;
        bool empty;
        if (!one_range(ix, ch, idx, &r, &empty)) {
            range_free(&r);
            return false;
        }
        if (empty)
            range_free(&r);
        else if (!add_range(p, &r)) {
            range_free(&r);
            return false;
        }
        size_t j = ch->neq;
        for (;;) {
            if (j == 0) return true;
            j--;
            if (++idx[j] < eq_count(ch, j)) break;
            idx[j] = 0;
        }
    }
}

/* memcmp order, the shorter first on a common prefix; a NULL b is past every key. */
static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (!b) return -1;
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : an < bn ? -1 : an > bn;
}

/* Values cut to fit a key can share their bytes (two long IN values with one prefix): their
 * ranges, still in order by lo, may then overlap; merged, each entry is visited once. */
static bool merge_overlaps(ld_plan *p)
{
    size_t kept = 0;
    for (size_t i = 0; i < p->nranges; i++) {
        ld_plan_range *r = &p->ranges[i];
        ld_plan_range *prev = kept ? &p->ranges[kept - 1] : NULL;
        if (!prev || (prev->hi && key_cmp(r->lo, r->lo_len, prev->hi, prev->hi_len) >= 0)) {
            p->ranges[kept++] = *r;
            continue;
        }
        if (prev->hi && (!r->hi || key_cmp(r->hi, r->hi_len, prev->hi, prev->hi_len) > 0)) {
            free(prev->hi);
            prev->hi = r->hi;
            prev->hi_len = r->hi_len;
            r->hi = NULL;
        }
        if (*r->text) {
            ld_qbuf t;
            ld_qbuf_init(&t);
            size_t tl;
            bool ok = ld_qbuf_adds(&t, prev->text) && ld_qbuf_adds(&t, " OR ") &&
                      ld_qbuf_adds(&t, r->text);
            char *text = ok ? ld_qbuf_take(&t, &tl) : NULL;
            ld_qbuf_free(&t);
            if (!text) {
                /* ranges[kept..i) were moved down or freed: keep each owned range once, so that
                 * ld_plan_free frees what is left and nothing twice */
                memmove(&p->ranges[kept], r, (p->nranges - i) * sizeof *r);
                p->nranges = kept + (p->nranges - i);
                return false;
            }
            free(prev->text);
            prev->text = text;
        }
        prev->cut |= r->cut;
        range_free(r);
    }
    p->nranges = kept;
    return true;
}

static bool used(const choice *ch, const pred *p)
{
    for (size_t i = 0; i < ch->neq; i++)
        if (ch->eq[i] == p) return true;
    for (size_t i = 0; i < ch->nbounds; i++)
        if (ch->bound_src[i] == p) return true;
    return false;
}

ld_status ld_plan_choose(const ld_ql_stmt *s, const ld_plan_index *ixs, size_t n, ld_plan *out)
{
    memset(out, 0, sizeof *out);
    out->kind = LD_PLAN_SCAN;
    const ld_ql_node **cj = NULL;
    size_t ncj = 0, capcj = 0;
    pred *preds = NULL;
    size_t np = 0;
    ld_status st = LD_NOMEM;
    if (s->where && !conjuncts(s->where, &cj, &ncj, &capcj)) goto out;
    preds = calloc(ncj ? ncj : 1, sizeof *preds);
    if (!preds) goto out;
    for (size_t i = 0; i < ncj; i++)
        if (classify(cj[i], &preds[np])) np++;

    choice best = {0}, ch;
    size_t besti = n;
    for (size_t i = 0; i < n; i++) {
        evaluate(s, &ixs[i], preds, np, &ch);
        if (ch.score > best.score) {
            best = ch;
            besti = i;
        }
    }
    /* Only the order: worth it when the walk can stop early, i.e. when counting the matches
     * after the first k needs no document (no WHERE) or a LIMIT ends the count. */
    if (besti < n && best.score == 1 && s->where && !s->has_limit) besti = n;
    /* DESC ranks by the keys only when the ranges answer the whole WHERE: order alone cannot */
    if (besti < n && best.score == 1 && best.desc_keys && s->where) besti = n;
    if (s->count && besti < n && best.score == 1) besti = n; /* COUNT(*) has no order */

    out->residual = malloc((ncj ? ncj : 1) * sizeof *out->residual);
    if (!out->residual) goto out;
    if (besti == n) {
        for (size_t i = 0; i < ncj; i++)
            out->residual[out->nresidual++] = cj[i];
        out->sort = s->norder > 0 && !s->count;
        out->exact = !s->where;
        st = LD_OK;
        goto out;
    }
    const ld_plan_index *ix = &ixs[besti];
    out->ix = ix;
    out->neq = best.neq;
    if (!build_ranges(ix, &best, out)) goto out;
    for (size_t i = 0; i < ncj; i++) {
        bool u = false;
        for (size_t k = 0; k < np && !u; k++)
            u = preds[k].src == cj[i] && used(&best, &preds[k]);
        if (!u) out->residual[out->nresidual++] = cj[i];
    }
    bool cut = false;
    for (size_t i = 0; i < out->nranges; i++)
        cut |= out->ranges[i].cut;
    if (cut && !merge_overlaps(out)) goto out;
    if (cut) { /* the ranges only narrow: every conjunct is checked on the documents */
        out->nresidual = 0;
        for (size_t i = 0; i < ncj; i++)
            out->residual[out->nresidual++] = cj[i];
    }
    out->exact = out->nresidual == 0;
    out->ordered = best.ordered && !s->count;
    out->desc_keys = best.desc_keys && out->exact && !s->count;
    out->sort = s->norder > 0 && !s->count;
    bool null_class = false;
    for (size_t i = 0; i < best.neq; i++)
        null_class |= json_is_null(best.eq[i]->vals[0]);
    out->id_order = best.neq == ix->npaths && out->nranges == 1 && !null_class;
    out->kind = out->ordered || out->desc_keys            ? LD_PLAN_INDEX_ORDER
                : best.neq == ix->npaths && !best.nbounds ? LD_PLAN_INDEX_EQ
                                                          : LD_PLAN_INDEX_RANGE;
    st = LD_OK;
out:
    for (size_t i = 0; i < np; i++)
        pred_free(&preds[i]);
    free(preds);
    free(cj);
    if (st != LD_OK) ld_plan_free(out);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * EXPLAIN
 * ------------------------------------------------------------------------------------------- */

static bool residual_text(const ld_plan *p, ld_qbuf *out)
{
    if (!p->nresidual) return ld_qbuf_adds(out, "null");
    ld_qbuf t;
    ld_qbuf_init(&t);
    for (size_t i = 0; i < p->nresidual; i++) {
        if (i) ld_qbuf_adds(&t, " AND ");
        /* an OR among ANDs keeps its parentheses */
        bool paren = p->nresidual > 1 && p->residual[i]->kind == LD_QN_OR;
        if (paren) ld_qbuf_addc(&t, '(');
        ld_plan_expr_text(p->residual[i], &t);
        if (paren) ld_qbuf_addc(&t, ')');
    }
    bool ok = !t.oom && ld_qbuf_json_string(out, t.data, t.len);
    ld_qbuf_free(&t);
    return ok;
}

size_t ld_plan_explain(const ld_ql_stmt *s, const ld_plan *p, ld_qbuf *out)
{
    size_t rows = 1;
    ld_qbuf_addf(out, "{\"Step\":1,\"Operation\":\"%s\",\"Index\":", ld_plan_kind_name(p->kind));
    if (p->ix)
        ld_qbuf_json_string(out, p->ix->name, strlen(p->ix->name));
    else
        ld_qbuf_adds(out, "null");
    ld_qbuf_adds(out, ",\"Collection\":");
    ld_qbuf_json_string(out, s->collection, s->collection_len);
    ld_qbuf_adds(out, ",\"Paths\":[");
    for (size_t i = 0; p->ix && i < p->ix->npaths; i++) {
        if (i) ld_qbuf_addc(out, ',');
        ld_qbuf_json_string(out, p->ix->paths[i], strlen(p->ix->paths[i]));
    }
    ld_qbuf_adds(out, "],\"Bounds\":[");
    size_t nb = 0;
    if (p->ix && !p->nranges) /* contradicting bounds: nothing to read */
        ld_qbuf_adds(out, "\"none\"");
    for (size_t i = 0; i < p->nranges; i++) {
        if (!p->ranges[i].text[0]) continue; /* the whole index */
        if (nb++) ld_qbuf_addc(out, ',');
        ld_qbuf_json_string(out, p->ranges[i].text, strlen(p->ranges[i].text));
    }
    ld_qbuf_adds(out, "],\"Residual\":");
    residual_text(p, out);
    ld_qbuf_addc(out, '}');
    /* ORDER BY the walk does not give: the bounded heap of the first OFFSET + Take rows. */
    if (p->sort && !p->ordered && !p->desc_keys) {
        rows++;
        ld_qbuf_addf(out, ",{\"Step\":2,\"Operation\":\"sort\",\"Index\":null,\"Collection\":");
        ld_qbuf_json_string(out, s->collection, s->collection_len);
        ld_qbuf_adds(out, ",\"Paths\":[");
        for (size_t i = 0; i < s->norder; i++) {
            ld_qbuf t;
            ld_qbuf_init(&t);
            ld_plan_expr_text(s->order[i].expr, &t);
            if (s->order[i].desc) ld_qbuf_adds(&t, " DESC");
            if (i) ld_qbuf_addc(out, ',');
            if (t.oom)
                out->oom = true;
            else
                ld_qbuf_json_string(out, t.data, t.len);
            ld_qbuf_free(&t);
        }
        ld_qbuf_adds(out, "],\"Bounds\":[],\"Residual\":null}");
    }
    return out->oom ? 0 : rows;
}
