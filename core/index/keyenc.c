/* The index key encoding (keyenc.h): order-preserving, self-delimiting bytes for JSON values,
 * checked against the evaluator's ld_ql_compare by tests/unit/test_keyenc.c. */
#include "keyenc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Number classes after LD_KE_NUMBER: a real below every 64-bit integer, a value whose integer
 * part fits 64 bits (every integer, most reals), a real above every 64-bit integer. */
#define NUM_BELOW 0x02
#define NUM_MID   0x03
#define NUM_ABOVE 0x04
/* After a NUM_MID integer part: a negative fraction (8 more bytes), none, a positive one. */
#define FRAC_NEG  0x00
#define FRAC_NONE 0x01
#define FRAC_POS  0x02
/* Inside an object: a member follows (the end is 0x00). */
#define MEMBER 0x02
/* Ends an array or object cut short by a cap (0x00 ends a whole one); a string cut short ends
 * with 0x00 0x01 instead of 0x00 0x00. Both sort after the whole value's end and before any
 * continuation, which keeps the capped encoding monotone. */
#define TRUNC 0x01

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* A double's bits made byte-comparable: negatives flipped whole, positives get the sign bit. */
static uint64_t sortable_double(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return (u >> 63) ? ~u : u ^ (UINT64_C(1) << 63);
}

static ld_status add(ld_qbuf *out, const void *p, size_t n)
{
    return ld_qbuf_add(out, p, n) ? LD_OK : LD_NOMEM;
}

/* A number as (integer part toward zero, signed fraction): a double cannot hold every 64-bit
 * integer and an integer cannot hold a fraction, but trunc(r) and r - trunc(r) are both exact,
 * and ordering the pairs lexicographically orders the values (the fraction has the value's
 * sign, so -0.5 sorts below 0 below 0.5 within the same integer part 0). */
static ld_status append_number(ld_qbuf *out, const json_t *v)
{
    uint8_t b[19];
    size_t n = 0;
    b[n++] = LD_KE_NUMBER;
    json_int_t whole;
    double frac = 0;
    if (json_is_integer(v)) {
        whole = json_integer_value(v);
    } else {
        double r = json_real_value(v);
        if (!isfinite(r)) return LD_INVALID;
        if (r < -9223372036854775808.0 || r >= 9223372036854775808.0) {
            b[n++] = r < 0 ? NUM_BELOW : NUM_ABOVE;
            be64(b + n, sortable_double(r));
            return add(out, b, n + 8);
        }
        double t = trunc(r);
        whole = (json_int_t)t;
        frac = r - t; /* 0 (of either sign) for -0.0 and every integral real */
    }
    b[n++] = NUM_MID;
    be64(b + n, (uint64_t)whole ^ (UINT64_C(1) << 63));
    n += 8;
    if (frac == 0) {
        b[n++] = FRAC_NONE;
    } else {
        b[n++] = frac < 0 ? FRAC_NEG : FRAC_POS;
        be64(b + n, sortable_double(frac));
        n += 8;
    }
    return add(out, b, n);
}

/* Bytes with 0x00 escaped as 0x00 0xff, ended by 0x00 0x00: byte order, shorter first. */
static ld_status append_bytes(ld_qbuf *out, const char *s, size_t len)
{
    static const uint8_t esc[2] = {0x00, 0xff}, end[2] = {0x00, 0x00};
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i]) continue;
        if (add(out, s + from, i - from) || add(out, esc, 2)) return LD_NOMEM;
        from = i + 1;
    }
    if (add(out, s + from, len - from) || add(out, end, 2)) return LD_NOMEM;
    return LD_OK;
}

typedef struct member {
    const char *key;
    size_t len;
    const json_t *value;
} member;

static int cmp_member(const void *x, const void *y)
{
    const member *a = x, *b = y;
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Members in key byte order (as ld_ql_compare visits them), each marked, then the end. */
static ld_status append_object(ld_qbuf *out, const json_t *v)
{
    size_t n = json_object_size(v);
    member *m = n ? malloc(n * sizeof *m) : NULL;
    if (n && !m) {
        out->oom = true;
        return LD_NOMEM;
    }
    size_t i = 0;
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)v, key, klen, val)
    {
        if (i < n) m[i++] = (member){key, klen, val};
    }
    if (i > 1) qsort(m, i, sizeof *m, cmp_member);
    ld_status st = LD_OK;
    static const uint8_t mark = MEMBER, end = 0x00;
    for (size_t j = 0; j < i && st == LD_OK; j++) {
        st = add(out, &mark, 1);
        if (st == LD_OK) st = append_bytes(out, m[j].key, m[j].len);
        if (st == LD_OK) st = ld_keyenc_append(out, m[j].value);
    }
    free(m);
    return st == LD_OK ? add(out, &end, 1) : st;
}

ld_status ld_keyenc_append(ld_qbuf *out, const json_t *v)
{
    uint8_t tag;
    switch (json_typeof(v)) {
    case JSON_NULL:
        tag = LD_KE_NULL;
        return add(out, &tag, 1);
    case JSON_FALSE:
        tag = LD_KE_FALSE;
        return add(out, &tag, 1);
    case JSON_TRUE:
        tag = LD_KE_TRUE;
        return add(out, &tag, 1);
    case JSON_INTEGER:
    case JSON_REAL:
        return append_number(out, v);
    case JSON_STRING:
        tag = LD_KE_STRING;
        if (add(out, &tag, 1)) return LD_NOMEM;
        return append_bytes(out, json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        tag = LD_KE_ARRAY;
        if (add(out, &tag, 1)) return LD_NOMEM;
        for (size_t i = 0; i < json_array_size(v); i++) {
            ld_status st = ld_keyenc_append(out, json_array_get(v, i));
            if (st != LD_OK) return st;
        }
        static const uint8_t end = 0x00;
        return add(out, &end, 1);
    }
    case JSON_OBJECT:
        tag = LD_KE_OBJECT;
        if (add(out, &tag, 1)) return LD_NOMEM;
        return append_object(out, v);
    }
    return LD_INVALID;
}

ld_status ld_keyenc_append_missing(ld_qbuf *out)
{
    static const uint8_t tag = LD_KE_MISSING;
    return add(out, &tag, 1);
}

/* Length of escaped bytes up to and including their 0x00 0x00 end; 0 when incomplete. */
static size_t skip_bytes(const uint8_t *p, size_t n, bool *cut)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i]) continue;
        if (p[i + 1] == 0x00 || p[i + 1] == TRUNC) {
            if (p[i + 1] == TRUNC) *cut = true;
            return i + 2;
        }
        if (p[i + 1] != 0xff) return 0;
        i++;
    }
    return 0;
}

static size_t skip_value(const uint8_t *p, size_t n, bool *cut)
{
    if (!n) return 0;
    switch (p[0]) {
    case LD_KE_MISSING:
    case LD_KE_NULL:
    case LD_KE_FALSE:
    case LD_KE_TRUE:
        return 1;
    case LD_KE_NUMBER:
        if (n < 2) return 0;
        if (p[1] == TRUNC) { /* a number cut for want of room: every number there is */
            *cut = true;
            return 2;
        }
        if (p[1] == NUM_BELOW || p[1] == NUM_ABOVE) return n >= 10 ? 10 : 0;
        if (p[1] != NUM_MID || n < 11) return 0;
        if (p[10] == FRAC_NONE) return 11;
        return (p[10] == FRAC_NEG || p[10] == FRAC_POS) && n >= 19 ? 19 : 0;
    case LD_KE_STRING: {
        size_t k = skip_bytes(p + 1, n - 1, cut);
        return k ? 1 + k : 0;
    }
    case LD_KE_ARRAY: {
        size_t i = 1;
        while (i < n && p[i] > TRUNC) {
            size_t k = skip_value(p + i, n - i, cut);
            if (!k) return 0;
            i += k;
        }
        if (i < n && p[i] == TRUNC) *cut = true;
        return i < n ? i + 1 : 0;
    }
    case LD_KE_OBJECT: {
        size_t i = 1;
        while (i < n && p[i] == MEMBER) {
            size_t k = skip_bytes(p + i + 1, n - i - 1, cut);
            if (!k) return 0;
            i += 1 + k;
            if (p[i - 1] == TRUNC) break; /* a key cut short: nothing follows but the end */
            k = skip_value(p + i, n - i, cut);
            if (!k) return 0;
            i += k;
        }
        if (i < n && p[i] == TRUNC) *cut = true;
        return i < n && (p[i] == 0x00 || p[i] == TRUNC) ? i + 1 : 0;
    }
    default:
        return 0;
    }
}

size_t ld_keyenc_skip(const uint8_t *p, size_t n)
{
    bool cut = false;
    return skip_value(p, n, &cut);
}

size_t ld_keyenc_skip_cut(const uint8_t *p, size_t n, bool *cut)
{
    *cut = false;
    return skip_value(p, n, cut);
}

/* ---------------------------------------------------------------------------------------------
 * Capped encoding: a value cut to fit a storage key
 * ------------------------------------------------------------------------------------------- */

/* A string cut to at most cap bytes (cap >= 3): the longest prefix of whole (escaped) bytes,
 * then 0x00 0x01. */
static ld_status append_bytes_capped(ld_qbuf *out, const char *s, size_t len, size_t cap)
{
    size_t room = cap - 2, used = 0, i = 0;
    while (i < len && used + (s[i] ? 1 : 2) <= room) {
        used += s[i] ? 1 : 2;
        i++;
    }
    ld_status st = LD_OK;
    size_t from = 0;
    static const uint8_t esc[2] = {0x00, 0xff}, end[2] = {0x00, TRUNC};
    for (size_t j = 0; j < i && st == LD_OK; j++) {
        if (s[j]) continue;
        if (add(out, s + from, j - from) || add(out, esc, 2)) st = LD_NOMEM;
        from = j + 1;
    }
    if (st == LD_OK && (add(out, s + from, i - from) || add(out, end, 2))) st = LD_NOMEM;
    return st;
}

/* The least room any value is given inside a cut container: a tag and a cut marker. */
#define MIN_ROOM 3

/* Appends v in at most room bytes (room >= MIN_ROOM). Every choice depends only on the room
 * and on bytes already compared equal, never on how long the rest of the value is, so two values
 * whose encodings agree so far are cut alike (that is what keeps the form monotone): a number
 * is whole when the room holds any number, else its tag and TRUNC; a string is whole, or its
 * longest prefix that fits and 0x00 TRUNC; an array or object writes its elements (members) in
 * order while the room holds another one at its least, and ends with TRUNC when one was cut or
 * some did not get room. */
static ld_status capped(ld_qbuf *out, const json_t *v, size_t room, bool *cut)
{
    static const uint8_t trunc = TRUNC, end = 0x00, mark = MEMBER;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_TRUE:
    case JSON_FALSE:
        return ld_keyenc_append(out, v);
    case JSON_INTEGER:
    case JSON_REAL: {
        if (room >= LD_KEYENC_SCALAR_MAX) return ld_keyenc_append(out, v);
        static const uint8_t cutnum[2] = {LD_KE_NUMBER, TRUNC};
        *cut = true;
        return add(out, cutnum, 2);
    }
    case JSON_STRING: {
        size_t at = out->len;
        ld_status st = ld_keyenc_append(out, v);
        if (st != LD_OK || out->len - at <= room) return st;
        out->len = at;
        *cut = true;
        uint8_t tag = LD_KE_STRING;
        if (add(out, &tag, 1)) return LD_NOMEM;
        return append_bytes_capped(out, json_string_value(v), json_string_length(v), room - 1);
    }
    case JSON_ARRAY: {
        uint8_t tag = LD_KE_ARRAY;
        if (add(out, &tag, 1)) return LD_NOMEM;
        size_t left = room - 1, n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (left - 1 < MIN_ROOM) { /* no room for another element */
                *cut = true;
                return add(out, &trunc, 1);
            }
            size_t before = out->len;
            bool ecut = false;
            ld_status st = capped(out, json_array_get(v, i), left - 1, &ecut);
            if (st != LD_OK) return st;
            left -= out->len - before;
            if (ecut) {
                *cut = true;
                return add(out, &trunc, 1);
            }
        }
        return add(out, &end, 1);
    }
    case JSON_OBJECT:
        break;
    }
    uint8_t tag = LD_KE_OBJECT;
    if (add(out, &tag, 1)) return LD_NOMEM;
    size_t n = json_object_size(v);
    member *m = n ? malloc(n * sizeof *m) : NULL;
    if (n && !m) {
        out->oom = true;
        return LD_NOMEM;
    }
    size_t k = 0;
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)v, key, klen, val)
    {
        if (k < n) m[k++] = (member){key, klen, val};
    }
    if (k > 1) qsort(m, k, sizeof *m, cmp_member);
    ld_status st = LD_OK;
    size_t left = room - 1;
    bool ended = false;
    for (size_t j = 0; j < k && st == LD_OK && !ended; j++) {
        /* A member needs its mark, a key and a value at their least, and the end after. */
        if (left - 1 < 1 + MIN_ROOM + MIN_ROOM) {
            *cut = true;
            st = add(out, &trunc, 1);
            ended = true;
            break;
        }
        size_t before = out->len;
        if (add(out, &mark, 1)) {
            st = LD_NOMEM;
            break;
        }
        size_t keyroom = left - 1 - 1 - MIN_ROOM; /* leaves the value its least */
        bool kcut = false;
        json_t *ks = json_stringn_nocheck(m[j].key, m[j].len);
        if (!ks) {
            st = LD_NOMEM;
            break;
        }
        size_t kat = out->len;
        st = ld_keyenc_append(out, ks); /* the key as a string, less its tag */
        json_decref(ks);
        if (st != LD_OK) break;
        if (out->len - kat > keyroom + 1) {
            out->len = kat;
            kcut = true;
            st = append_bytes_capped(out, m[j].key, m[j].len, keyroom);
        } else {
            memmove(out->data + kat, out->data + kat + 1, out->len - kat - 1);
            out->len--;
        }
        if (st != LD_OK) break;
        if (kcut) {
            *cut = true;
            st = add(out, &trunc, 1);
            ended = true;
            break;
        }
        left -= out->len - before;
        size_t vat = out->len;
        bool vcut = false;
        st = capped(out, m[j].value, left - 1, &vcut);
        if (st != LD_OK) break;
        left -= out->len - vat;
        if (vcut) {
            *cut = true;
            st = add(out, &trunc, 1);
            ended = true;
        }
    }
    free(m);
    if (st == LD_OK && !ended) st = add(out, &end, 1);
    return st;
}

ld_status ld_keyenc_append_capped(ld_qbuf *out, const json_t *v, size_t cap, bool *cut)
{
    *cut = false;
    if (cap < LD_KEYENC_SCALAR_MAX) return LD_INVALID;
    if (json_is_real(v) && !isfinite(json_real_value(v))) return LD_INVALID;
    return capped(out, v, cap, cut);
}
