/* LiteQL evaluation over jansson values (see eval.h): one recursive walk of the AST per
 * document, the shared total order, LIKE, the functions, and JSON output of values and rows. */
#include "eval.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "../util/jsontext.h"

/* ---------------------------------------------------------------------------------------------
 * Documents
 * ------------------------------------------------------------------------------------------- */

void ld_ql_doc_clear(ld_ql_doc *d)
{
    json_decref(d->id_value);
    d->id_value = NULL;
    if (d->root_owned) {
        json_decref(d->root);
        d->root = NULL;
        d->root_owned = false;
    }
}

json_t *ld_ql_parse_doc(const char *text, size_t len)
{
    json_error_t e;
    return ld_json_parse_exact(text, len, &e);
}

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* Appends " (document '<id>')" to a runtime message, so the user can find the offending data;
 * the id is cut at 60 bytes on a character boundary. */
static void doc_suffix(const ld_ql_doc *d, char *buf, size_t buflen)
{
    buf[0] = '\0';
    if (!d || !d->id) return;
    size_t n = d->id_len > 60 ? 60 : d->id_len;
    while (n > 0 && n < d->id_len && (((unsigned char)d->id[n]) & 0xc0) == 0x80)
        n--;
    snprintf(buf, buflen, " (document '%.*s%s')", (int)n, d->id, n < d->id_len ? "..." : "");
}

static bool type_error(const ld_ql_node *n, const ld_ql_doc *d, const char *what, const json_t *got,
                       ld_ql_error *err)
{
    char sfx[96];
    doc_suffix(d, sfx, sizeof sfx);
    ld_ql_error_set(err, LD_QE_TYPE, n->cpos, "%s, got %s%s", what,
                    ld_ql_type_name(ld_ql_type_of(got)), sfx);
    return false;
}

static bool runtime_error(const ld_ql_node *n, const ld_ql_doc *d, const char *what,
                          ld_ql_error *err)
{
    char sfx[96];
    doc_suffix(d, sfx, sizeof sfx);
    ld_ql_error_set(err, LD_QE_RUNTIME, n->cpos, "%s%s", what, sfx);
    return false;
}

static bool nomem(ld_ql_error *err)
{
    ld_ql_error_set(err, LD_QE_NOMEM, 0, "Out of memory.");
    return false;
}

/* The parsed document, parsing the text on first need. */
static bool doc_root(ld_ql_doc *d, ld_ql_error *err)
{
    if (d->root) return true;
    if (d->text) d->root = ld_ql_parse_doc(d->text, d->text_len);
    if (!d->root) {
        char sfx[96];
        doc_suffix(d, sfx, sizeof sfx);
        ld_ql_error_set(err, LD_QE_CORRUPT, 0, "A stored document is not valid JSON%s.", sfx);
        return false;
    }
    d->root_owned = true;
    return true;
}

/* One value of stored text (the span of a path): scalars without building a tree where that
 * is simple, anything else through jansson. NULL when it is not JSON. */
static json_t *parse_value(const char *s, size_t n)
{
    if (n == 0) return NULL;
    switch (s[0]) {
    case 't':
        return n == 4 && !memcmp(s, "true", 4) ? json_true() : NULL;
    case 'f':
        return n == 5 && !memcmp(s, "false", 5) ? json_false() : NULL;
    case 'n':
        return n == 4 && !memcmp(s, "null", 4) ? json_null() : NULL;
    case '"':
        /* The stored text was validated when it was written: without escapes the bytes
         * between the quotes are the string. */
        if (n >= 2 && s[n - 1] == '"' && !memchr(s + 1, '\\', n - 2))
            return json_stringn_nocheck(s + 1, n - 2);
        break;
    case '{':
    case '[':
        break;
    default:
        if (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
            char buf[64];
            if (n >= sizeof buf) break;
            memcpy(buf, s, n);
            buf[n] = '\0';
            char *end;
            if (!strpbrk(buf, ".eE")) {
                errno = 0;
                long long x = strtoll(buf, &end, 10);
                if (!errno && *end == '\0') return json_integer((json_int_t)x);
            }
            double d = strtod(buf, &end);
            if (*end == '\0' && isfinite(d)) return json_real(d);
            return NULL;
        }
        return NULL;
    }
    return ld_ql_parse_doc(s, n);
}

/* ---------------------------------------------------------------------------------------------
 * The total order
 * ------------------------------------------------------------------------------------------- */

static int rank(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return 0;
    case JSON_INTEGER:
    case JSON_REAL:
        return 1;
    case JSON_STRING:
        return 2;
    case JSON_TRUE:
    case JSON_FALSE:
        return 3;
    case JSON_ARRAY:
        return 4;
    case JSON_OBJECT:
        return 5;
    }
    return 0;
}

/* An integer against a real, exactly (a double cannot hold every 64-bit integer). */
static int cmp_int_real(json_int_t i, double r)
{
    if (r >= 9223372036854775808.0) return -1;
    if (r < -9223372036854775808.0) return 1;
    double fl = floor(r);
    json_int_t ri = (json_int_t)fl;
    if (i != ri) return i < ri ? -1 : 1;
    return fl < r ? -1 : 0;
}

static int cmp_numbers(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a)) return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b)) return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c) return c < 0 ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

typedef struct member {
    const char *key;
    size_t len;
    json_t *value;
} member;

static int cmp_member(const void *x, const void *y)
{
    const member *a = x, *b = y;
    return cmp_bytes(a->key, a->len, b->key, b->len);
}

/* The members of o sorted by key; NULL when o is empty or memory runs out. */
static member *sorted_members(json_t *o, member *small, size_t nsmall)
{
    size_t n = json_object_size(o);
    if (!n) return NULL;
    member *m = n <= nsmall ? small : malloc(n * sizeof *m);
    if (!m) return NULL;
    size_t i = 0;
    for (void *it = json_object_iter(o); it && i < n; it = json_object_iter_next(o, it), i++)
        m[i] = (member){json_object_iter_key(it), json_object_iter_key_len(it),
                        json_object_iter_value(it)};
    qsort(m, n, sizeof *m, cmp_member);
    return m;
}

static int cmp_objects(json_t *a, json_t *b)
{
    member sa[8], sb[8];
    size_t na = json_object_size(a), nb = json_object_size(b);
    member *ma = sorted_members(a, sa, 8), *mb = sorted_members(b, sb, 8);
    int c = 0;
    if ((na && !ma) || (nb && !mb)) { /* out of memory: sizes still give a consistent answer */
        c = na < nb ? -1 : na > nb;
        goto out;
    }
    for (size_t i = 0; i < na && i < nb && !c; i++) {
        c = cmp_bytes(ma[i].key, ma[i].len, mb[i].key, mb[i].len);
        if (!c) c = ld_ql_compare(ma[i].value, mb[i].value);
    }
    if (!c) c = na < nb ? -1 : na > nb;
out:
    if (ma != sa) free(ma);
    if (mb != sb) free(mb);
    return c;
}

int ld_ql_compare(const json_t *a, const json_t *b)
{
    int ra = rank(a), rb = rank(b);
    if (ra != rb) return ra < rb ? -1 : 1;
    switch (ra) {
    case 1:
        return cmp_numbers(a, b);
    case 2:
        return cmp_bytes(json_string_value(a), json_string_length(a), json_string_value(b),
                         json_string_length(b));
    case 3:
        return json_is_true(a) == json_is_true(b) ? 0 : json_is_true(a) ? 1 : -1;
    case 4: {
        size_t na = json_array_size(a), nb = json_array_size(b);
        for (size_t i = 0; i < na && i < nb; i++) {
            int c = ld_ql_compare(json_array_get(a, i), json_array_get(b, i));
            if (c) return c;
        }
        return na < nb ? -1 : na > nb;
    }
    case 5:
        return cmp_objects((json_t *)a, (json_t *)b);
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8 and LIKE
 * ------------------------------------------------------------------------------------------- */

/* Bytes of the character starting at s[i] (1 for a stray byte, never past n). */
static size_t char_len(const char *s, size_t i, size_t n)
{
    unsigned char c = (unsigned char)s[i];
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return i + k <= n ? k : n - i;
}

int ld_ql_like(const char *s, size_t sn, const char *p, size_t pn, const char *esc, size_t en)
{
    /* A pattern may not end with its escape: check once, up front. */
    for (size_t i = 0; en && i < pn;) {
        if (pn - i >= en && !memcmp(p + i, esc, en)) {
            if (pn - i == en) return -1;
            i += en;
        }
        i += char_len(p, i, pn);
    }
    size_t si = 0, pi = 0;
    size_t star_p = SIZE_MAX, star_s = 0; /* where to resume after the last '%' */
    while (si < sn) {
        if (pi < pn) {
            bool escaped = en && pn - pi > en && !memcmp(p + pi, esc, en);
            size_t at = escaped ? pi + en : pi;
            size_t cl = char_len(p, at, pn);
            if (!escaped && p[at] == '%') {
                star_p = ++pi;
                star_s = si;
                continue;
            }
            if (!escaped && p[at] == '_') {
                si += char_len(s, si, sn);
                pi = at + 1;
                continue;
            }
            if (sn - si >= cl && !memcmp(s + si, p + at, cl)) {
                si += cl;
                pi = at + cl;
                continue;
            }
        }
        if (star_p == SIZE_MAX) return 0;
        /* Let the last '%' swallow one more character and try again from there. */
        star_s += char_len(s, star_s, sn);
        si = star_s;
        pi = star_p;
    }
    while (pi < pn && p[pi] == '%' && !(en && pn - pi > en && !memcmp(p + pi, esc, en)))
        pi++;
    return pi == pn;
}

/* ---------------------------------------------------------------------------------------------
 * Functions
 * ------------------------------------------------------------------------------------------- */

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (k > n) k = 1;
    uint32_t v = k == 1 ? c : c & (0x7f >> k);
    for (size_t i = 1; i < k; i++)
        v = (v << 6) | (s[i] & 0x3f);
    *cp = v;
    return k;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Simple (one-to-one) Unicode case mapping through the C.UTF-8 locale; ASCII only when the
 * system lacks that locale. */
static json_t *change_case(const json_t *v, bool upper)
{
    pthread_once(&utf8_once, utf8_locale_init);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t cap = n + 8, o = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        uint32_t m = cp;
        if (cp < 0x80)
            m = upper ? (cp >= 'a' && cp <= 'z' ? cp - 32 : cp)
                      : (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        else if (utf8_locale)
            m = (uint32_t)(upper ? towupper_l((wint_t)cp, utf8_locale)
                                 : towlower_l((wint_t)cp, utf8_locale));
        if (m > 0x10ffff || (m >= 0xd800 && m <= 0xdfff)) m = cp;
        if (o + 4 > cap) {
            cap = cap * 2 + 8;
            char *p = realloc(out, cap);
            if (!p) {
                free(out);
                return NULL;
            }
            out = p;
        }
        o += utf8_encode(m, out + o);
        i += k;
    }
    json_t *r = json_stringn_nocheck(out, o);
    free(out);
    return r;
}

static size_t utf8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if ((((unsigned char)s[i]) & 0xc0) != 0x80) c++;
    return c;
}

/* A non-negative integer argument (an integer, or a real without fraction). */
static bool position_arg(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d == floor(d) && d < 18446744073709551616.0) {
            *out = (uint64_t)d;
            return true;
        }
    }
    return false;
}

static bool eval_func(const ld_ql_node *n, ld_ql_doc *d, json_t **out, ld_ql_error *err)
{
    ld_ql_fn fn = (ld_ql_fn)n->op;
    if (fn == LD_QF_COALESCE) {
        for (size_t i = 0; i < n->nargs; i++) {
            json_t *v;
            if (!ld_ql_eval(n->args[i], d, &v, err)) return false;
            if (!json_is_null(v)) {
                *out = v;
                return true;
            }
            json_decref(v);
        }
        *out = json_null();
        return true;
    }
    json_t *a[3] = {NULL, NULL, NULL};
    bool ok = false;
    for (size_t i = 0; i < n->nargs && i < 3; i++)
        if (!ld_ql_eval(n->args[i], d, &a[i], err)) goto out;
    char what[96];
    const char *name = ld_ql_fn_name(fn);
    for (size_t i = 0; i < n->nargs && i < 3; i++)
        if (json_is_null(a[i])) { /* null in, null out */
            *out = json_null();
            ok = true;
            goto out;
        }
    switch (fn) {
    case LD_QF_LOWER:
    case LD_QF_UPPER:
    case LD_QF_TRIM:
        if (!json_is_string(a[0])) {
            snprintf(what, sizeof what, "%s needs a string", name);
            type_error(n->args[0], d, what, a[0], err);
            goto out;
        }
        if (fn == LD_QF_TRIM) {
            const char *s = json_string_value(a[0]);
            size_t b = 0, e = json_string_length(a[0]);
            while (b < e && strchr(" \t\r\n\f\v", s[b]) && s[b])
                b++;
            while (e > b && strchr(" \t\r\n\f\v", s[e - 1]) && s[e - 1])
                e--;
            *out = json_stringn_nocheck(s + b, e - b);
        } else {
            *out = change_case(a[0], fn == LD_QF_UPPER);
        }
        ok = *out != NULL || nomem(err);
        break;
    case LD_QF_LENGTH:
        if (json_is_string(a[0]))
            *out = json_integer(
                (json_int_t)utf8_count(json_string_value(a[0]), json_string_length(a[0])));
        else if (json_is_array(a[0]))
            *out = json_integer((json_int_t)json_array_size(a[0]));
        else if (json_is_object(a[0]))
            *out = json_integer((json_int_t)json_object_size(a[0]));
        else {
            snprintf(what, sizeof what, "%s needs a string, an array or an object", name);
            type_error(n->args[0], d, what, a[0], err);
            goto out;
        }
        ok = *out != NULL || nomem(err);
        break;
    case LD_QF_SUBSTRING: {
        if (!json_is_string(a[0])) {
            snprintf(what, sizeof what, "%s needs a string", name);
            type_error(n->args[0], d, what, a[0], err);
            goto out;
        }
        uint64_t start = 0, count = UINT64_MAX;
        for (size_t i = 1; i < n->nargs; i++) {
            uint64_t x;
            if (!json_is_number(a[i])) {
                snprintf(what, sizeof what, "%s needs integer positions", name);
                type_error(n->args[i], d, what, a[i], err);
                goto out;
            }
            if (!position_arg(a[i], &x)) {
                snprintf(what, sizeof what,
                         "%s needs non-negative integer positions (they count from 0)", name);
                runtime_error(n->args[i], d, what, err);
                goto out;
            }
            if (i == 1)
                start = x;
            else
                count = x;
        }
        const char *s = json_string_value(a[0]);
        size_t len = json_string_length(a[0]), b = 0;
        for (uint64_t k = 0; k < start && b < len; k++)
            b += char_len(s, b, len);
        size_t e = b;
        for (uint64_t k = 0; k < count && e < len; k++)
            e += char_len(s, e, len);
        *out = json_stringn_nocheck(s + b, e - b);
        ok = *out != NULL || nomem(err);
        break;
    }
    default:
        break;
    }
out:
    for (size_t i = 0; i < 3; i++)
        json_decref(a[i]);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Operators
 * ------------------------------------------------------------------------------------------- */

static bool arith(const ld_ql_node *n, ld_ql_doc *d, json_t *a, json_t *b, json_t **out,
                  ld_ql_error *err)
{
    if (json_is_null(a) || json_is_null(b)) {
        *out = json_null();
        return true;
    }
    ld_ql_op op = (ld_ql_op)n->op;
    char what[48];
    snprintf(what, sizeof what, "Operator '%s' needs numbers", ld_ql_op_text(op));
    if (!json_is_number(a)) return type_error(n->args[0], d, what, a, err);
    if (!json_is_number(b)) return type_error(n->args[1], d, what, b, err);
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b), r;
        bool overflow = false;
        switch (op) {
        case LD_QO_ADD:
            overflow = __builtin_add_overflow(x, y, &r);
            break;
        case LD_QO_SUB:
            overflow = __builtin_sub_overflow(x, y, &r);
            break;
        case LD_QO_MUL:
            overflow = __builtin_mul_overflow(x, y, &r);
            break;
        case LD_QO_DIV:
            if (y == 0) return runtime_error(n, d, "Division by zero", err);
            if ((x == INT64_MIN && y == -1) || x % y != 0) goto real; /* 7 / 2 is 3.5 */
            r = x / y;
            break;
        default: /* MOD */
            if (y == 0) return runtime_error(n, d, "Division by zero", err);
            r = y == -1 ? 0 : x % y;
            break;
        }
        if (overflow) goto real; /* past 64 bits: continue as a real */
        *out = json_integer(r);
        return *out != NULL || nomem(err);
    }
real:;
    double x = json_number_value(a), y = json_number_value(b), r;
    switch (op) {
    case LD_QO_ADD:
        r = x + y;
        break;
    case LD_QO_SUB:
        r = x - y;
        break;
    case LD_QO_MUL:
        r = x * y;
        break;
    case LD_QO_DIV:
        if (y == 0) return runtime_error(n, d, "Division by zero", err);
        r = x / y;
        break;
    default:
        if (y == 0) return runtime_error(n, d, "Division by zero", err);
        r = fmod(x, y);
        break;
    }
    if (!isfinite(r)) return runtime_error(n, d, "Numeric overflow", err);
    *out = json_real(r);
    return *out != NULL || nomem(err);
}

/* A boolean operand: true, or false for false and null; anything else is a type error. */
static bool truth(const ld_ql_node *arg, ld_ql_doc *d, const char *what, bool *t, ld_ql_error *err)
{
    json_t *v;
    if (!ld_ql_eval(arg, d, &v, err)) return false;
    bool ok = true;
    if (json_is_boolean(v) || json_is_null(v))
        *t = json_is_true(v);
    else
        ok = type_error(arg, d, what, v, err);
    json_decref(v);
    return ok;
}

static json_t *boolean(bool b)
{
    return b ? json_true() : json_false();
}

static bool eval_like(const ld_ql_node *n, ld_ql_doc *d, json_t **out, ld_ql_error *err)
{
    json_t *v[3] = {NULL, NULL, NULL};
    bool ok = false, match = false;
    for (size_t i = 0; i < n->nargs && i < 3; i++)
        if (!ld_ql_eval(n->args[i], d, &v[i], err)) goto out;
    const char *esc = "\\";
    size_t elen = 1;
    if (!json_is_string(v[1]) && !json_is_null(v[1])) {
        type_error(n->args[1], d, "LIKE needs a string pattern", v[1], err);
        goto out;
    }
    if (v[2] && !json_is_null(v[2])) {
        if (!json_is_string(v[2])) {
            type_error(n->args[2], d, "ESCAPE needs a string", v[2], err);
            goto out;
        }
        esc = json_string_value(v[2]);
        elen = json_string_length(v[2]);
        if (utf8_count(esc, elen) > 1) {
            runtime_error(n->args[2], d, "ESCAPE needs a single character", err);
            goto out;
        }
    }
    /* A value that is not a string (null, a missing member) does not match. */
    if (json_is_string(v[0]) && json_is_string(v[1])) {
        int r = ld_ql_like(json_string_value(v[0]), json_string_length(v[0]),
                           json_string_value(v[1]), json_string_length(v[1]), esc, elen);
        if (r < 0) {
            runtime_error(n->args[1], d, "LIKE pattern must not end with the escape character",
                          err);
            goto out;
        }
        match = r == 1;
    }
    *out = boolean(match != n->negated);
    ok = true;
out:
    for (size_t i = 0; i < 3; i++)
        json_decref(v[i]);
    return ok;
}

bool ld_ql_eval(const ld_ql_node *n, ld_ql_doc *d, json_t **out, ld_ql_error *err)
{
    *out = NULL;
    switch (n->kind) {
    case LD_QN_LITERAL:
        *out = json_incref(n->value);
        return true;
    case LD_QN_PATH: {
        if (!d->root && d->text && n->nsegs > 0) { /* read just this value from the text */
            size_t b, l;
            if (!ld_ql_path_span(d->text, d->text_len, n->segs, n->nsegs, &b, &l)) {
                *out = json_null();
                return true;
            }
            if ((*out = parse_value(d->text + b, l))) return true;
            /* not as expected: let the whole document decide (and report) */
        }
        if (!doc_root(d, err)) return false;
        json_t *v = d->root;
        for (size_t i = 0; v && i < n->nsegs; i++) {
            const ld_ql_seg *s = &n->segs[i];
            if (s->is_index)
                v = json_is_array(v) ? json_array_get(v, s->index) : NULL;
            else
                v = json_is_object(v) ? json_object_getn(v, s->name, s->name_len) : NULL;
        }
        *out = v ? json_incref(v) : json_null();
        return true;
    }
    case LD_QN_ID:
        if (!d->id_value) {
            d->id_value = json_stringn(d->id ? d->id : "", d->id ? d->id_len : 0);
            if (!d->id_value) /* not UTF-8 (only a damaged peer could store that) */
                d->id_value = json_stringn_nocheck(d->id ? d->id : "", d->id ? d->id_len : 0);
            if (!d->id_value) return nomem(err);
        }
        *out = json_incref(d->id_value);
        return true;
    case LD_QN_NEG: {
        json_t *v;
        if (!ld_ql_eval(n->args[0], d, &v, err)) return false;
        if (json_is_null(v)) {
            *out = v;
            return true;
        }
        bool ok = true;
        if (json_is_integer(v) && json_integer_value(v) != INT64_MIN)
            *out = json_integer(-json_integer_value(v));
        else if (json_is_number(v))
            *out = json_real(-json_number_value(v));
        else
            ok = type_error(n->args[0], d, "Operator '-' needs a number", v, err);
        json_decref(v);
        return ok && (*out != NULL || nomem(err));
    }
    case LD_QN_NOT: {
        bool t;
        if (!truth(n->args[0], d, "NOT needs a boolean", &t, err)) return false;
        *out = boolean(!t);
        return true;
    }
    case LD_QN_AND:
    case LD_QN_OR: {
        bool is_or = n->kind == LD_QN_OR;
        const char *what = is_or ? "OR needs booleans" : "AND needs booleans";
        for (size_t i = 0; i < n->nargs; i++) {
            bool t;
            if (!truth(n->args[i], d, what, &t, err)) return false;
            if (t == is_or) { /* decided: short-circuit */
                *out = boolean(is_or);
                return true;
            }
        }
        *out = boolean(!is_or);
        return true;
    }
    case LD_QN_CMP: {
        json_t *a, *b;
        if (!ld_ql_eval(n->args[0], d, &a, err)) return false;
        if (!ld_ql_eval(n->args[1], d, &b, err)) {
            json_decref(a);
            return false;
        }
        int c = ld_ql_compare(a, b);
        json_decref(a);
        json_decref(b);
        bool r;
        switch ((ld_ql_op)n->op) {
        case LD_QO_EQ:
            r = c == 0;
            break;
        case LD_QO_NE:
            r = c != 0;
            break;
        case LD_QO_LT:
            r = c < 0;
            break;
        case LD_QO_LE:
            r = c <= 0;
            break;
        case LD_QO_GT:
            r = c > 0;
            break;
        default:
            r = c >= 0;
            break;
        }
        *out = boolean(r);
        return true;
    }
    case LD_QN_ARITH: {
        json_t *a, *b;
        if (!ld_ql_eval(n->args[0], d, &a, err)) return false;
        if (!ld_ql_eval(n->args[1], d, &b, err)) {
            json_decref(a);
            return false;
        }
        bool ok = arith(n, d, a, b, out, err);
        json_decref(a);
        json_decref(b);
        return ok;
    }
    case LD_QN_LIKE:
        return eval_like(n, d, out, err);
    case LD_QN_IN: {
        json_t *x;
        if (!ld_ql_eval(n->args[0], d, &x, err)) return false;
        bool found = false;
        for (size_t i = 1; i < n->nargs && !found; i++) {
            json_t *v;
            if (!ld_ql_eval(n->args[i], d, &v, err)) {
                json_decref(x);
                return false;
            }
            found = ld_ql_compare(x, v) == 0;
            json_decref(v);
        }
        json_decref(x);
        *out = boolean(found != n->negated);
        return true;
    }
    case LD_QN_BETWEEN: {
        json_t *v[3];
        for (size_t i = 0; i < 3; i++)
            if (!ld_ql_eval(n->args[i], d, &v[i], err)) {
                while (i-- > 0)
                    json_decref(v[i]);
                return false;
            }
        bool in = ld_ql_compare(v[1], v[0]) <= 0 && ld_ql_compare(v[0], v[2]) <= 0;
        for (size_t i = 0; i < 3; i++)
            json_decref(v[i]);
        *out = boolean(in != n->negated);
        return true;
    }
    case LD_QN_ISNULL: {
        json_t *v;
        if (!ld_ql_eval(n->args[0], d, &v, err)) return false;
        bool isnull = json_is_null(v);
        json_decref(v);
        *out = boolean(isnull != n->negated);
        return true;
    }
    case LD_QN_FUNC:
        return eval_func(n, d, out, err);
    default: /* COUNT(*) is the statement's business, never a value */
        ld_ql_error_set(err, LD_QE_SYNTAX, n->cpos, "COUNT(*) cannot be used here");
        return false;
    }
}

bool ld_ql_test(const ld_ql_node *where, ld_ql_doc *d, bool *match, ld_ql_error *err)
{
    if (!where) {
        *match = true;
        return true;
    }
    json_t *v;
    if (!ld_ql_eval(where, d, &v, err)) return false;
    bool ok = true;
    if (json_is_boolean(v) || json_is_null(v))
        *match = json_is_true(v);
    else
        ok = type_error(where, d, "WHERE needs a boolean condition", v, err);
    json_decref(v);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * JSON output
 * ------------------------------------------------------------------------------------------- */

static bool dump_real(double d, ld_qbuf *out)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (!strpbrk(buf, ".eEni")) strcat(buf, ".0"); /* keep it a real: 3.0, not 3 */
    return ld_qbuf_adds(out, buf);
}

bool ld_ql_dump(const json_t *v, ld_qbuf *out)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return ld_qbuf_add(out, "null", 4);
    case JSON_TRUE:
        return ld_qbuf_add(out, "true", 4);
    case JSON_FALSE:
        return ld_qbuf_add(out, "false", 5);
    case JSON_INTEGER:
        return ld_qbuf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return dump_real(json_real_value(v), out);
    case JSON_STRING:
        return ld_qbuf_json_string(out, json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        if (!ld_qbuf_addc(out, '[')) return false;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i && !ld_qbuf_addc(out, ',')) || !ld_ql_dump(json_array_get(v, i), out))
                return false;
        return ld_qbuf_addc(out, ']');
    }
    case JSON_OBJECT: {
        json_t *o = (json_t *)v;
        if (!ld_qbuf_addc(out, '{')) return false;
        bool first = true;
        for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
            if ((!first && !ld_qbuf_addc(out, ',')) ||
                !ld_qbuf_json_string(out, json_object_iter_key(it), json_object_iter_key_len(it)) ||
                !ld_qbuf_addc(out, ':') || !ld_ql_dump(json_object_iter_value(it), out))
                return false;
            first = false;
        }
        return ld_qbuf_addc(out, '}');
    }
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Stored text of a path
 * ------------------------------------------------------------------------------------------- */

#define BAD SIZE_MAX

static size_t ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return BAD;
}

static size_t skip_value(const char *s, size_t i, size_t n)
{
    if (i >= n) return BAD;
    if (s[i] == '"') return skip_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, i, n);
                if (i == BAD) return BAD;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return BAD;
    }
    size_t b = i;
    while (i < n && !strchr(",}] \t\r\n", s[i]))
        i++;
    return i > b ? i : BAD;
}

static bool key_matches(const char *s, size_t kb, size_t ke, const char *name, size_t nlen)
{
    /* s[kb] is the opening quote, s[ke-1] the closing one. */
    const char *raw = s + kb + 1;
    size_t rlen = ke - kb - 2;
    if (!memchr(raw, '\\', rlen)) return rlen == nlen && !memcmp(raw, name, nlen);
    json_t *k = json_loadb(s + kb, ke - kb, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    bool m = json_is_string(k) && json_string_length(k) == nlen &&
             !memcmp(json_string_value(k), name, nlen);
    json_decref(k);
    return m;
}

bool ld_ql_path_span(const char *text, size_t len, const ld_ql_seg *segs, size_t nsegs,
                     size_t *start, size_t *vlen)
{
    /* The top level is bounded by the text; each deeper level by its value's span. */
    size_t b = ws(text, 0, len), e = len;
    if (b >= e) return false;
    for (size_t k = 0; k < nsegs; k++) {
        const ld_ql_seg *g = &segs[k];
        bool found = false;
        size_t fb = 0, fe = 0;
        size_t i = ws(text, b + 1, e);
        if (text[b] != (g->is_index ? '[' : '{')) return false;
        if (i < e && text[i] == (g->is_index ? ']' : '}')) return false; /* empty */
        for (size_t idx = 0;; idx++) {
            bool match = false;
            if (!g->is_index) {
                if (i >= e || text[i] != '"') return false;
                size_t ke = skip_string(text, i, e);
                if (ke == BAD) return false;
                match = key_matches(text, i, ke, g->name, g->name_len);
                i = ws(text, ke, e);
                if (i >= e || text[i] != ':') return false;
                i = ws(text, i + 1, e);
            } else {
                match = idx == g->index;
            }
            size_t ve = skip_value(text, i, e);
            if (ve == BAD) return false;
            if (match) { /* for members the last one wins, as in the parsed value */
                fb = i;
                fe = ve;
                found = true;
                if (g->is_index) break;
            }
            i = ws(text, ve, e);
            if (i < e && text[i] == ',') {
                i = ws(text, i + 1, e);
                continue;
            }
            break;
        }
        if (!found) return false;
        b = fb;
        e = fe;
    }
    *start = b;
    *vlen = e - b;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Rows
 * ------------------------------------------------------------------------------------------- */

static bool is_reserved_field(const char *key, void *ctx)
{
    (void)ctx;
    return !strcmp(key, "_id") || !strncmp(key, "_sys_", 5);
}

static bool add_document(ld_ql_doc *d, bool strip_reserved, ld_qbuf *out, ld_ql_error *err)
{
    if (!strip_reserved) {
        if (d->text) return ld_qbuf_add(out, d->text, d->text_len) || nomem(err);
        return doc_root(d, err) && (ld_ql_dump(d->root, out) || nomem(err));
    }
    size_t n;
    char *clean =
        d->text ? ld_json_rewrite_object(d->text, d->text_len, NULL, is_reserved_field, NULL, &n)
                : NULL;
    if (!clean) return doc_root(d, err) && (ld_ql_dump(d->root, out) || nomem(err));
    bool ok = ld_qbuf_add(out, clean, n);
    free(clean);
    return ok || nomem(err);
}

bool ld_ql_row(const ld_ql_stmt *s, ld_ql_doc *d, bool strip_reserved, ld_qbuf *out,
               ld_ql_error *err)
{
    if (s->select_doc) return add_document(d, strip_reserved, out, err);
    if (!ld_qbuf_addc(out, '{')) return nomem(err);
    for (size_t i = 0; i < s->ncols; i++) {
        const ld_ql_col *c = &s->cols[i];
        if ((i && !ld_qbuf_addc(out, ',')) || !ld_qbuf_json_string(out, c->name, c->name_len) ||
            !ld_qbuf_addc(out, ':'))
            return nomem(err);
        const ld_ql_node *e = c->expr;
        if (e->kind == LD_QN_PATH && e->nsegs == 0) {
            if (!add_document(d, strip_reserved, out, err)) return false;
            continue;
        }
        size_t vb, vl;
        if (e->kind == LD_QN_PATH && d->text &&
            ld_ql_path_span(d->text, d->text_len, e->segs, e->nsegs, &vb, &vl)) {
            if (!ld_qbuf_add(out, d->text + vb, vl)) return nomem(err);
            continue;
        }
        json_t *v;
        if (!ld_ql_eval(e, d, &v, err)) return false;
        bool ok = ld_ql_dump(v, out);
        json_decref(v);
        if (!ok) return nomem(err);
    }
    return ld_qbuf_addc(out, '}') || nomem(err);
}
