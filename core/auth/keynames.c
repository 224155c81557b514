/* Key names for the access log (see keynames.h). */
#include "keynames.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "../util/jsonget.h"

#define HASH_PREFIX "blake2b:"

/* Does `want` (a configured Key) or `want_hash` ("blake2b:<hex>") match the key? hash is the
 * key's digest, computed once by the caller when first needed (*have_hash). */
static bool matches(json_t *want, json_t *want_hash, const char *key, size_t len,
                    unsigned char hash[crypto_generichash_BYTES], bool *have_hash)
{
    const char *w = json_string_value(want);
    if (w && strlen(w) == len && sodium_memcmp(w, key, len) == 0) return true;
    const char *h = json_string_value(want_hash);
    size_t plen = sizeof HASH_PREFIX - 1;
    if (!h || strncasecmp(h, HASH_PREFIX, plen) != 0) return false;
    unsigned char bin[crypto_generichash_BYTES];
    size_t got = 0;
    if (sodium_hex2bin(bin, sizeof bin, h + plen, strlen(h + plen), " \t", &got, NULL) != 0 ||
        got != sizeof bin)
        return false;
    if (!*have_hash) {
        crypto_generichash(hash, crypto_generichash_BYTES, (const unsigned char *)key, len, NULL,
                           0);
        *have_hash = true;
    }
    return sodium_memcmp(bin, hash, sizeof bin) == 0;
}

void ld_auth_key_name(json_t *root, const char *key, size_t len, char *out, size_t outlen)
{
    out[0] = '\0';
    json_t *auth = ld_json_get_ci(root, "Auth");
    unsigned char hash[crypto_generichash_BYTES];
    bool have_hash = false;
    if (!auth || !key || !len) return;
    json_t *rk = ld_json_get_ci(auth, "RootApiKey");
    json_t *rh = ld_json_get_ci(auth, "RootApiKeyHash");
    if (!rk && !rh)
        rk = json_string("root"); /* the contract's default root key */
    else
        json_incref(rk);
    bool root_match = matches(rk, rh, key, len, hash, &have_hash);
    json_decref(rk);
    if (root_match) {
        snprintf(out, outlen, "root");
        return;
    }
    json_t *keys = ld_json_get_ci(auth, "ApiKeys");
    size_t i;
    json_t *e;
    json_array_foreach(keys, i, e)
    {
        if (!matches(ld_json_get_ci(e, "Key"), ld_json_get_ci(e, "KeyHash"), key, len, hash,
                     &have_hash))
            continue;
        const char *name = json_string_value(ld_json_get_ci(e, "Name"));
        snprintf(out, outlen, "%s", name && *name ? name : "(unnamed)");
        return;
    }
}
