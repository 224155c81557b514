/* RESP <-> JSON value mapping (see value.h). */
#include "value.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

bool ld_resp_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

char *ld_resp_value_to_json(const char *b, size_t n, size_t *out_len, bool *not_utf8)
{
    *not_utf8 = false;
    if (!ld_resp_utf8_valid(b, n)) {
        *not_utf8 = true;
        return NULL;
    }
    size_t need = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        need += c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
    }
    char *out = malloc(need + 1);
    if (!out) return NULL;
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;
    out[w++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c == '"' || c == '\\') {
            out[w++] = '\\';
            out[w++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + w, "\\u00", 4);
            out[w + 4] = hex[c >> 4];
            out[w + 5] = hex[c & 15];
            w += 6;
        } else {
            out[w++] = (char)c;
        }
    }
    out[w++] = '"';
    out[w] = '\0';
    *out_len = w;
    return out;
}

const char *ld_resp_value_from_json(const char *json, size_t n, size_t *out_len, char **owned)
{
    *owned = NULL;
    if (n < 2 || json[0] != '"') { /* not a string: its JSON text */
        *out_len = n;
        return json;
    }
    if (!memchr(json + 1, '\\', n - 2)) { /* no escape: the bytes between the quotes */
        *out_len = n - 2;
        return json + 1;
    }
    json_error_t err;
    json_t *v = json_loadb(json, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v || !json_is_string(v)) {
        json_decref(v);
        return NULL;
    }
    size_t len = json_string_length(v);
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, json_string_value(v), len);
        out[len] = '\0';
        *out_len = len;
        *owned = out;
    }
    json_decref(v);
    return out;
}
