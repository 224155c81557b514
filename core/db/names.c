/* Validation of database names, collection names, document ids and node ids. */
#include "names.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

bool ld_db_name_normalize(const char *in, char *out)
{
    if (!in) return false;
    while (*in == ' ' || *in == '\t' || *in == '\r' || *in == '\n')
        in++;
    size_t len = strlen(in);
    while (len > 0 && (in[len - 1] == ' ' || in[len - 1] == '\t' || in[len - 1] == '\r' ||
                       in[len - 1] == '\n'))
        len--;
    if (len == 0 || len > LD_DB_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
        if (!ok) return false;
        out[i] = (char)c;
    }
    out[len] = '\0';
    return true;
}

bool ld_collection_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > LD_COLL_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        bool ok = alpha || (i > 0 && ((c >= '0' && c <= '9') || c == '$'));
        if (!ok) return false;
    }
    return true;
}

bool ld_collection_is_cache(const char *s)
{
    return strcasecmp(s, "cache") == 0;
}

bool ld_collection_is_internal(const char *s)
{
    return strncasecmp(s, "_sys_", 5) == 0;
}

bool ld_utf8_text_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) return false;
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n) return false; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* Reject overlong forms, surrogates and values past U+10FFFF, and C1 controls. */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp < 0xa0))
            return false;
        i += n + 1;
    }
    return true;
}

bool ld_doc_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > LD_DOC_ID_MAX) return false;
    if (!ld_utf8_text_valid(s, len)) return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ') return true;
    return false; /* blank */
}

const char *ld_cache_key_problem(const char *s, size_t len)
{
    if (len == 0) return "Cache key is required.";
    size_t chars = 0;
    for (size_t i = 0; i < len; i++)
        chars += ((unsigned char)s[i] & 0xc0) != 0x80; /* count lead bytes, not continuations */
    if (chars > LD_CACHE_KEY_MAX) return "Cache key cannot exceed 256 characters.";
    if (len > LD_CACHE_KEY_MAX_BYTES) return "Cache key cannot exceed 500 bytes of UTF-8.";
    if (!ld_utf8_text_valid(s, len) || isspace((unsigned char)s[0]) ||
        isspace((unsigned char)s[len - 1]))
        return "Cache key must be UTF-8 text without control characters.";
    return NULL;
}

bool ld_node_id_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > LD_NODE_ID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return false;
    }
    return true;
}
