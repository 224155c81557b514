/* LiteQL lexer: turns query text into tokens (keywords, names, numbers, strings, operators),
 * each with its place in the text so every error can name a position. See docs/query.md. */
#ifndef LD_QL_LEXER_H
#define LD_QL_LEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Error kinds. The API maps them all to 400, except NOMEM (500). */
typedef enum ld_ql_errcode {
    LD_QE_NONE,
    LD_QE_EMPTY,   /* "Query is required." */
    LD_QE_MULTI,   /* "Only one query statement is allowed." */
    LD_QE_COMMAND, /* "Unable to determine query command." */
    LD_QE_SYNTAX,  /* bad token, unterminated string, unexpected token, ... (with a position) */
    LD_QE_LIMIT,   /* the query is too long or nested too deeply */
    LD_QE_TYPE,    /* a value of the wrong type (at parse time or while evaluating) */
    LD_QE_RUNTIME, /* division by zero, numeric overflow, a bad LIKE pattern */
    LD_QE_CORRUPT, /* a stored document is not JSON (the storage is damaged) */
    LD_QE_NOMEM,
} ld_ql_errcode;

/* A query error: the whole message ("Unexpected token 'FROM' at position 17."). */
typedef struct ld_ql_error {
    ld_ql_errcode code;
    size_t pos; /* 1-based character position in the query (0 when none applies) */
    char msg[320];
} ld_ql_error;

/* Sets err to code and the formatted message, followed by " at position <pos>." when pos > 0
 * (a message given without a position must carry its own full stop). */
void ld_ql_error_set(ld_ql_error *err, ld_ql_errcode code, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef enum ld_ql_tok {
    LD_QT_EOF,
    LD_QT_NAME,    /* identifier or keyword: [A-Za-z_$][A-Za-z0-9_$]* */
    LD_QT_NUMBER,  /* 12, 1.5, 2e10 (no sign: '-' is an operator) */
    LD_QT_STRING,  /* 'single-quoted' ('' is a quote) */
    LD_QT_DSTRING, /* "double-quoted", JSON escapes */
    LD_QT_LPAREN,
    LD_QT_RPAREN,
    LD_QT_LBRACKET,
    LD_QT_RBRACKET,
    LD_QT_LBRACE,
    LD_QT_RBRACE,
    LD_QT_COMMA,
    LD_QT_DOT,
    LD_QT_COLON,
    LD_QT_SEMI,
    LD_QT_STAR,
    LD_QT_PLUS,
    LD_QT_MINUS,
    LD_QT_SLASH,
    LD_QT_PERCENT,
    LD_QT_EQ, /* = */
    LD_QT_NE, /* != or <> */
    LD_QT_LT,
    LD_QT_LE,
    LD_QT_GT,
    LD_QT_GE,
} ld_ql_tok;

/* Reserved words, matched case-insensitively. A NAME token that is one of them has kw set. */
typedef enum ld_ql_kw {
    LD_QK_NONE,
    LD_QK_SELECT,
    LD_QK_INSERT,
    LD_QK_UPDATE,
    LD_QK_DELETE,
    LD_QK_FROM,
    LD_QK_WHERE,
    LD_QK_ORDER,
    LD_QK_BY,
    LD_QK_ASC,
    LD_QK_DESC,
    LD_QK_LIMIT,
    LD_QK_OFFSET,
    LD_QK_TOP,
    LD_QK_AS,
    LD_QK_AND,
    LD_QK_OR,
    LD_QK_NOT,
    LD_QK_LIKE,
    LD_QK_ESCAPE,
    LD_QK_IN,
    LD_QK_BETWEEN,
    LD_QK_IS,
    LD_QK_NULL,
    LD_QK_TRUE,
    LD_QK_FALSE,
    LD_QK_INTO,
    LD_QK_VALUES,
    LD_QK_SET,
} ld_ql_kw;

typedef struct ld_ql_token {
    ld_ql_tok kind;
    ld_ql_kw kw;   /* NAME only */
    size_t off;    /* byte offset in the query */
    size_t len;    /* bytes of query text */
    size_t cpos;   /* 1-based character position (code points), for messages */
    json_t *value; /* NUMBER: integer or real; STRING/DSTRING: the decoded string. Owned */
} ld_ql_token;

typedef struct ld_ql_tokens {
    ld_ql_token *v;
    size_t n; /* the last one is EOF */
} ld_ql_tokens;

/* Tokenizes text[0..len). On success fills *out (free with ld_ql_tokens_free) and returns true;
 * otherwise sets err (SYNTAX with the position, or NOMEM) and returns false, with *out holding
 * the tokens read before the error (so the caller can tell a second statement from a typo). */
bool ld_ql_lex(const char *text, size_t len, ld_ql_tokens *out, ld_ql_error *err);

void ld_ql_tokens_free(ld_ql_tokens *t);

/* The keyword's canonical spelling ("SELECT"). */
const char *ld_ql_kw_name(ld_ql_kw kw);

#endif
