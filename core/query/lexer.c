/* LiteQL lexer (see lexer.h): one pass over the text, tracking byte offsets and character
 * positions; literal values are decoded here so the parser deals only in tokens. */
#include "lexer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ld_ql_error_set(ld_ql_error *err, ld_ql_errcode code, size_t pos, const char *fmt, ...)
{
    if (!err) return;
    err->code = code;
    err->pos = pos;
    /* The position always fits: the message gives way if anything must. */
    char sfx[40] = "";
    if (pos > 0) snprintf(sfx, sizeof sfx, " at position %zu.", pos);
    size_t room = sizeof err->msg - strlen(sfx);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, room, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : (size_t)n < room ? (size_t)n : room - 1;
    memcpy(err->msg + used, sfx, strlen(sfx) + 1);
}

static const struct {
    const char *name;
    ld_ql_kw kw;
} keywords[] = {
    {"SELECT", LD_QK_SELECT}, {"INSERT", LD_QK_INSERT}, {"UPDATE", LD_QK_UPDATE},
    {"DELETE", LD_QK_DELETE}, {"FROM", LD_QK_FROM},     {"WHERE", LD_QK_WHERE},
    {"ORDER", LD_QK_ORDER},   {"BY", LD_QK_BY},         {"ASC", LD_QK_ASC},
    {"DESC", LD_QK_DESC},     {"LIMIT", LD_QK_LIMIT},   {"OFFSET", LD_QK_OFFSET},
    {"TOP", LD_QK_TOP},       {"AS", LD_QK_AS},         {"AND", LD_QK_AND},
    {"OR", LD_QK_OR},         {"NOT", LD_QK_NOT},       {"LIKE", LD_QK_LIKE},
    {"ESCAPE", LD_QK_ESCAPE}, {"IN", LD_QK_IN},         {"BETWEEN", LD_QK_BETWEEN},
    {"IS", LD_QK_IS},         {"NULL", LD_QK_NULL},     {"TRUE", LD_QK_TRUE},
    {"FALSE", LD_QK_FALSE},   {"INTO", LD_QK_INTO},     {"VALUES", LD_QK_VALUES},
    {"SET", LD_QK_SET},
};

const char *ld_ql_kw_name(ld_ql_kw kw)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (keywords[i].kw == kw) return keywords[i].name;
    return "";
}

static ld_ql_kw keyword_of(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strlen(keywords[i].name) == len && strncasecmp(keywords[i].name, s, len) == 0)
            return keywords[i].kw;
    return LD_QK_NONE;
}

void ld_ql_tokens_free(ld_ql_tokens *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++)
        json_decref(t->v[i].value);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Scanner state
 * ------------------------------------------------------------------------------------------- */

typedef struct lexer {
    const char *s;
    size_t len;
    size_t i;    /* byte offset */
    size_t cpos; /* 1-based character position of s[i] */
    ld_ql_tokens *out;
    size_t cap;
    ld_ql_error *err;
} lexer;

static bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Advances over n bytes, counting the characters they start. */
static void advance(lexer *lx, size_t n)
{
    for (size_t k = 0; k < n && lx->i < lx->len; k++, lx->i++)
        if (!is_cont((unsigned char)lx->s[lx->i])) lx->cpos++;
}

static bool name_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '$';
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool push(lexer *lx, ld_ql_tok kind, size_t off, size_t cpos, size_t len, json_t *value)
{
    if (lx->out->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 32;
        ld_ql_token *v = realloc(lx->out->v, cap * sizeof *v);
        if (!v) {
            json_decref(value);
            ld_ql_error_set(lx->err, LD_QE_NOMEM, 0, "Out of memory.");
            return false;
        }
        lx->out->v = v;
        lx->cap = cap;
    }
    ld_ql_token *t = &lx->out->v[lx->out->n++];
    *t = (ld_ql_token){.kind = kind, .off = off, .len = len, .cpos = cpos, .value = value};
    if (kind == LD_QT_NAME) t->kw = keyword_of(lx->s + off, len);
    return true;
}

/* The character at s[i] as text for a message (one UTF-8 sequence, or a hex escape). */
static void char_text(const lexer *lx, char *buf, size_t buflen)
{
    unsigned char c = (unsigned char)lx->s[lx->i];
    if (c >= 0x20 && c < 0x7f) {
        snprintf(buf, buflen, "%c", c);
        return;
    }
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (c >= 0x80 && n > 1 && lx->i + n <= lx->len && n < buflen) {
        memcpy(buf, lx->s + lx->i, n);
        buf[n] = '\0';
        return;
    }
    snprintf(buf, buflen, "\\x%02x", c);
}

/* ---------------------------------------------------------------------------------------------
 * Literals
 * ------------------------------------------------------------------------------------------- */

/* A number: digits [. digits] [e [+-] digits], no leading zeros (as in JSON, so the text of a
 * number can be stored as is). Integers that fit 64 bits stay integers. */
static bool lex_number(lexer *lx)
{
    size_t start = lx->i, cpos = lx->cpos, j = lx->i;
    bool real = false;
    while (j < lx->len && is_digit((unsigned char)lx->s[j]))
        j++;
    bool ok = true;
    if (j - start > 1 && lx->s[start] == '0') ok = false;
    if (j < lx->len && lx->s[j] == '.') {
        real = true;
        size_t d = ++j;
        while (j < lx->len && is_digit((unsigned char)lx->s[j]))
            j++;
        if (j == d) ok = false;
    }
    if (j < lx->len && (lx->s[j] == 'e' || lx->s[j] == 'E')) {
        real = true;
        j++;
        if (j < lx->len && (lx->s[j] == '+' || lx->s[j] == '-')) j++;
        size_t d = j;
        while (j < lx->len && is_digit((unsigned char)lx->s[j]))
            j++;
        if (j == d) ok = false;
    }
    /* "12abc" or "1.2.3" is one bad word, not a number and a name. */
    while (j < lx->len && (name_char((unsigned char)lx->s[j]) || lx->s[j] == '.')) {
        ok = false;
        j++;
    }
    size_t n = j - start;
    if (!ok) {
        ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos, "Invalid number '%.*s'", n > 40 ? 40 : (int)n,
                        lx->s + start);
        return false;
    }
    char buf[512];
    if (n >= sizeof buf) {
        ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos, "Number is too long");
        return false;
    }
    memcpy(buf, lx->s + start, n);
    buf[n] = '\0';
    json_t *v = NULL;
    if (!real) {
        errno = 0;
        long long x = strtoll(buf, NULL, 10);
        if (errno == 0) v = json_integer((json_int_t)x);
    }
    if (!v) {
        double d = strtod(buf, NULL);
        if (!isfinite(d)) {
            ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos, "Number '%.40s%s' is out of range", buf,
                            n > 40 ? "..." : "");
            return false;
        }
        v = json_real(d);
    }
    if (!v) {
        ld_ql_error_set(lx->err, LD_QE_NOMEM, 0, "Out of memory.");
        return false;
    }
    advance(lx, n);
    return push(lx, LD_QT_NUMBER, start, cpos, n, v);
}

/* 'text' with '' standing for one quote; no other escapes, so a LIKE pattern's backslashes
 * reach the pattern as typed. */
static bool lex_single(lexer *lx)
{
    size_t start = lx->i, cpos = lx->cpos, j = lx->i + 1;
    size_t quotes = 0;
    for (;;) {
        if (j >= lx->len) {
            ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos, "Unterminated string");
            return false;
        }
        if (lx->s[j] == '\'') {
            if (j + 1 < lx->len && lx->s[j + 1] == '\'') {
                quotes++;
                j += 2;
                continue;
            }
            break;
        }
        j++;
    }
    size_t raw = j - start - 1; /* between the quotes */
    char *buf = malloc(raw - quotes + 1);
    if (!buf) {
        ld_ql_error_set(lx->err, LD_QE_NOMEM, 0, "Out of memory.");
        return false;
    }
    size_t o = 0;
    for (size_t k = start + 1; k < j; k++) {
        buf[o++] = lx->s[k];
        if (lx->s[k] == '\'') k++;
    }
    json_t *v = json_stringn(buf, o);
    free(buf);
    if (!v) {
        ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos, "String is not valid UTF-8");
        return false;
    }
    advance(lx, j + 1 - start);
    return push(lx, LD_QT_STRING, start, cpos, j + 1 - start, v);
}

/* "text" with JSON's escapes, decoded by jansson. */
static bool lex_double(lexer *lx)
{
    size_t start = lx->i, cpos = lx->cpos, j = lx->i + 1;
    for (;;) {
        if (j >= lx->len) {
            ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos, "Unterminated string");
            return false;
        }
        if (lx->s[j] == '\\') {
            j += 2;
            continue;
        }
        if (lx->s[j] == '"') break;
        j++;
    }
    size_t n = j + 1 - start;
    json_error_t jerr;
    json_t *v = json_loadb(lx->s + start, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!json_is_string(v)) {
        json_decref(v);
        ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos,
                        "Invalid string: bad escape or control character");
        return false;
    }
    advance(lx, n);
    return push(lx, LD_QT_DSTRING, start, cpos, n, v);
}

/* Skips blanks and comments (-- to the end of the line, and block comments). */
static bool skip_space(lexer *lx)
{
    while (lx->i < lx->len) {
        char c = lx->s[lx->i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
            advance(lx, 1);
        } else if (c == '-' && lx->i + 1 < lx->len && lx->s[lx->i + 1] == '-') {
            while (lx->i < lx->len && lx->s[lx->i] != '\n')
                advance(lx, 1);
        } else if (c == '/' && lx->i + 1 < lx->len && lx->s[lx->i + 1] == '*') {
            size_t cpos = lx->cpos;
            advance(lx, 2);
            for (;;) {
                if (lx->i + 1 >= lx->len) {
                    ld_ql_error_set(lx->err, LD_QE_SYNTAX, cpos, "Unterminated comment");
                    return false;
                }
                if (lx->s[lx->i] == '*' && lx->s[lx->i + 1] == '/') {
                    advance(lx, 2);
                    break;
                }
                advance(lx, 1);
            }
        } else {
            break;
        }
    }
    return true;
}

bool ld_ql_lex(const char *text, size_t len, ld_ql_tokens *out, ld_ql_error *err)
{
    out->v = NULL;
    out->n = 0;
    lexer lx = {.s = text, .len = len, .cpos = 1, .out = out, .err = err};
    for (;;) {
        if (!skip_space(&lx)) return false;
        if (lx.i >= len) return push(&lx, LD_QT_EOF, lx.i, lx.cpos, 0, NULL);
        unsigned char c = (unsigned char)text[lx.i];
        size_t start = lx.i, cpos = lx.cpos;
        if (name_start(c)) {
            size_t j = lx.i;
            while (j < len && name_char((unsigned char)text[j]))
                j++;
            advance(&lx, j - start);
            if (!push(&lx, LD_QT_NAME, start, cpos, j - start, NULL)) return false;
            continue;
        }
        if (is_digit(c)) {
            if (!lex_number(&lx)) return false;
            continue;
        }
        if (c == '\'') {
            if (!lex_single(&lx)) return false;
            continue;
        }
        if (c == '"') {
            if (!lex_double(&lx)) return false;
            continue;
        }
        char next = lx.i + 1 < len ? text[lx.i + 1] : '\0';
        ld_ql_tok kind;
        size_t n = 1;
        switch (c) {
        case '(':
            kind = LD_QT_LPAREN;
            break;
        case ')':
            kind = LD_QT_RPAREN;
            break;
        case '[':
            kind = LD_QT_LBRACKET;
            break;
        case ']':
            kind = LD_QT_RBRACKET;
            break;
        case '{':
            kind = LD_QT_LBRACE;
            break;
        case '}':
            kind = LD_QT_RBRACE;
            break;
        case ',':
            kind = LD_QT_COMMA;
            break;
        case '.':
            kind = LD_QT_DOT;
            break;
        case ':':
            kind = LD_QT_COLON;
            break;
        case ';':
            kind = LD_QT_SEMI;
            break;
        case '*':
            kind = LD_QT_STAR;
            break;
        case '+':
            kind = LD_QT_PLUS;
            break;
        case '-':
            kind = LD_QT_MINUS;
            break;
        case '/':
            kind = LD_QT_SLASH;
            break;
        case '%':
            kind = LD_QT_PERCENT;
            break;
        case '=':
            kind = LD_QT_EQ;
            break;
        case '!':
            if (next != '=') goto bad;
            kind = LD_QT_NE;
            n = 2;
            break;
        case '<':
            kind = next == '=' ? LD_QT_LE : next == '>' ? LD_QT_NE : LD_QT_LT;
            n = kind == LD_QT_LT ? 1 : 2;
            break;
        case '>':
            kind = next == '=' ? LD_QT_GE : LD_QT_GT;
            n = kind == LD_QT_GE ? 2 : 1;
            break;
        default:
            goto bad;
        }
        advance(&lx, n);
        if (!push(&lx, kind, start, cpos, n, NULL)) return false;
        continue;
    bad : {
        char ch[16];
        char_text(&lx, ch, sizeof ch);
        ld_ql_error_set(err, LD_QE_SYNTAX, cpos, "Unexpected character '%s'", ch);
        return false;
    }
    }
}
