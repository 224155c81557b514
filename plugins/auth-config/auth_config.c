/* auth-config: the default auth plugin. Implements the contract's `Auth` section (RootApiKey,
 * ApiKeys with Databases and Roles) and keeps only BLAKE2b hashes of the keys in memory. */
#define _POSIX_C_SOURCE 200809L /* strcasecmp, strndup when built outside CMake */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include <litedist/auth.h>

#define HASH_BYTES   crypto_generichash_BYTES /* 32 */
#define HASH_PREFIX  "blake2b:"
#define DEFAULT_ROOT "root"

/* host->log is variadic with no va_list twin, so a macro forwards the arguments. */
#define LOG(host, level, ...)                                                                      \
    do {                                                                                           \
        if ((host)->log) (host)->log((host), (level), __VA_ARGS__);                                \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * State: read-only after create, so authorize needs no lock.
 * ------------------------------------------------------------------------------------------- */

typedef struct acfg_key {
    unsigned char hash[HASH_BYTES]; /* BLAKE2b-256 of the trimmed key; the key itself is gone */
    uint32_t roles;                 /* LD_ROLE_* bits granted */
    int any_db;                     /* Databases contains "*" */
    size_t ndbs;
    char **dbs; /* lowercase, validated names */
} acfg_key;

typedef struct acfg {
    int has_root; /* keys[0] is the root key */
    size_t nkeys;
    acfg_key *keys;
} acfg;

static const struct {
    const char *name;
    uint32_t bit;
} role_names[] = {
    {"ADD_DB", LD_ROLE_ADD_DB},
    {"DELETE_DB", LD_ROLE_DELETE_DB},
    {"READ_DOCUMENT", LD_ROLE_READ_DOCUMENT},
    {"WRITE_DOCUMENT", LD_ROLE_WRITE_DOCUMENT},
    {"UPDATE_DOCUMENT", LD_ROLE_UPDATE_DOCUMENT},
    {"DELETE_DOCUMENT", LD_ROLE_DELETE_DOCUMENT},
};

static void acfg_free(acfg *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->nkeys; i++) {
        for (size_t j = 0; j < a->keys[i].ndbs; j++)
            free(a->keys[i].dbs[j]);
        free(a->keys[i].dbs);
    }
    /* The hashes are not usable keys, but there is no reason to leave them in freed memory. */
    if (a->keys) sodium_memzero(a->keys, a->nkeys * sizeof *a->keys);
    free(a->keys);
    free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

/* Trims ASCII whitespace from both ends of s[0..*len); returns the new start. */
static const char *trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* The contract's database name rule: ^[a-z0-9][a-z0-9_-]{0,62}$ */
static int valid_db_name(const char *s, size_t n)
{
    if (n < 1 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
        if (!ok) return 0;
    }
    return 1;
}

static void hash_bytes(unsigned char out[HASH_BYTES], const char *s, size_t n)
{
    /* Cannot fail with these sizes (32-byte output, no key). */
    (void)crypto_generichash(out, HASH_BYTES, (const unsigned char *)s, n, NULL, 0);
}

/* Parses "blake2b:<64 hex digits>" (surrounding whitespace and hex case ignored). */
static int parse_key_hash(const char *text, size_t len, unsigned char out[HASH_BYTES])
{
    const char *s = trim(text, &len);
    size_t plen = strlen(HASH_PREFIX);
    if (len != plen + 2 * HASH_BYTES || strncasecmp(s, HASH_PREFIX, plen) != 0) return 0;
    size_t got = 0;
    const char *end = NULL;
    if (sodium_hex2bin(out, HASH_BYTES, s + plen, 2 * HASH_BYTES, NULL, &got, &end) != 0) return 0;
    return got == HASH_BYTES && end == s + len;
}

/* Finds member `name` of obj ignoring case (config files written for .NET vary in case). Two
 * members that differ only in case are ambiguous: *dup is set and the first is returned. */
static json_t *member(json_t *obj, const char *name, int *dup)
{
    const char *k;
    json_t *v, *found = NULL;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) != 0) continue;
        if (found)
            *dup = 1;
        else
            found = v;
    }
    return found;
}

/* Reads a boolean: JSON true/false, or the strings "true"/"false" that environment overrides
 * and .NET-style config files produce. Returns 0 for anything else. */
static int read_bool(json_t *v, int *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 1;
    }
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        const char *s = trim(json_string_value(v), &n);
        if (n == 4 && strncasecmp(s, "true", 4) == 0) return *out = 1, 1;
        if (n == 5 && strncasecmp(s, "false", 5) == 0) return *out = 0, 1;
    }
    return 0;
}

/* Clears a JSON string that held a plain key before jansson frees it, so the key does not
 * linger in freed heap memory. Best effort: the host's own copy of the config is not ours. */
static void scrub_string(json_t *v)
{
    if (json_is_string(v)) sodium_memzero((char *)json_string_value(v), json_string_length(v));
}

static void scrub_config(json_t *root)
{
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (strcasecmp(k, "RootApiKey") == 0) scrub_string(v);
        if (strcasecmp(k, "ApiKeys") != 0 || !json_is_array(v)) continue;
        size_t i;
        json_t *entry;
        json_array_foreach(v, i, entry)
        {
            const char *ek;
            json_t *ev;
            if (!json_is_object(entry)) continue;
            json_object_foreach(entry, ek, ev)
            {
                if (strcasecmp(ek, "Key") == 0) scrub_string(ev);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Config parsing. Each function logs the offending entry and returns LD_INVALID; it never logs
 * a key (nor a KeyHash value, in case someone pasted a plain key there).
 * ------------------------------------------------------------------------------------------- */

static ld_status parse_root(const ld_host *host, json_t *cfg, acfg_key *root, int *enabled)
{
    int dup = 0;
    json_t *plain = member(cfg, "RootApiKey", &dup);
    json_t *hashed = member(cfg, "RootApiKeyHash", &dup);
    if (dup) {
        LOG(host, LD_LOG_ERROR,
            "Auth.RootApiKey or RootApiKeyHash is given twice in different case");
        return LD_INVALID;
    }
    if (plain && hashed) {
        LOG(host, LD_LOG_ERROR, "Auth: give RootApiKey or RootApiKeyHash, not both");
        return LD_INVALID;
    }
    if (hashed) {
        if (!json_is_string(hashed) ||
            !parse_key_hash(json_string_value(hashed), json_string_length(hashed), root->hash)) {
            LOG(host, LD_LOG_ERROR,
                "Auth.RootApiKeyHash must be \"blake2b:\" followed by 64 hex digits "
                "(litedistd keygen prints one)");
            return LD_INVALID;
        }
    } else if (plain) {
        if (!json_is_string(plain)) {
            LOG(host, LD_LOG_ERROR,
                "Auth.RootApiKey must be a string (\"\" disables the root key)");
            return LD_INVALID;
        }
        size_t n = json_string_length(plain);
        const char *s = trim(json_string_value(plain), &n);
        if (n == 0) {
            LOG(host, LD_LOG_INFO, "Auth.RootApiKey is empty: the root key is disabled");
            *enabled = 0;
            return LD_OK;
        }
        hash_bytes(root->hash, s, n);
    } else {
        hash_bytes(root->hash, DEFAULT_ROOT, strlen(DEFAULT_ROOT));
    }

    /* Compare hashes, so a RootApiKeyHash of "root" is caught too. */
    unsigned char def[HASH_BYTES];
    hash_bytes(def, DEFAULT_ROOT, strlen(DEFAULT_ROOT));
    if (sodium_memcmp(def, root->hash, HASH_BYTES) == 0)
        LOG(host, LD_LOG_WARN, "Auth.RootApiKey is the default 'root': set your own");
    root->roles = LD_ROLE_ALL;
    root->any_db = 1;
    *enabled = 1;
    return LD_OK;
}

static ld_status parse_databases(const ld_host *host, const char *where, json_t *v, acfg_key *k)
{
    if (!json_is_array(v)) {
        LOG(host, LD_LOG_ERROR, "%s: Databases must be an array of database names or \"*\"", where);
        return LD_INVALID;
    }
    if (json_array_size(v) && !(k->dbs = calloc(json_array_size(v), sizeof *k->dbs)))
        return LD_NOMEM;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            LOG(host, LD_LOG_ERROR, "%s: Databases[%zu] must be a string", where, i);
            return LD_INVALID;
        }
        size_t n = json_string_length(item);
        const char *s = trim(json_string_value(item), &n);
        if (n == 1 && s[0] == '*') {
            k->any_db = 1;
            continue;
        }
        char *name = strndup(s, n);
        if (!name) return LD_NOMEM;
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        /* strlen != n: an embedded NUL, which jansson allows in strings. */
        if (strlen(name) != n || !valid_db_name(name, n)) {
            LOG(host, LD_LOG_ERROR,
                "%s: Databases[%zu] \"%s\" is not \"*\" or a database name "
                "([a-z0-9][a-z0-9_-]{0,62} once trimmed and lowercased)",
                where, i, json_string_value(item));
            free(name);
            return LD_INVALID;
        }
        k->dbs[k->ndbs++] = name;
    }
    return LD_OK;
}

static ld_status parse_roles(const ld_host *host, const char *where, json_t *v, acfg_key *k)
{
    if (!json_is_object(v)) {
        LOG(host, LD_LOG_ERROR, "%s: Roles must be an object such as {\"READ_DOCUMENT\": true}",
            where);
        return LD_INVALID;
    }
    uint32_t seen = 0;
    const char *name;
    json_t *val;
    json_object_foreach(v, name, val)
    {
        size_t r = 0, nroles = sizeof role_names / sizeof role_names[0];
        while (r < nroles && strcasecmp(name, role_names[r].name) != 0)
            r++;
        if (r == nroles) {
            LOG(host, LD_LOG_ERROR,
                "%s: Roles.%s is not a role (ADD_DB, DELETE_DB, READ_DOCUMENT, WRITE_DOCUMENT, "
                "UPDATE_DOCUMENT, DELETE_DOCUMENT)",
                where, name);
            return LD_INVALID;
        }
        if (seen & role_names[r].bit) {
            LOG(host, LD_LOG_ERROR, "%s: Roles.%s is given twice in different case", where,
                role_names[r].name);
            return LD_INVALID;
        }
        seen |= role_names[r].bit;
        int on;
        if (!read_bool(val, &on)) {
            LOG(host, LD_LOG_ERROR, "%s: Roles.%s must be true or false", where, name);
            return LD_INVALID;
        }
        if (on) k->roles |= role_names[r].bit;
    }
    return LD_OK;
}

static ld_status parse_entry(const ld_host *host, size_t idx, json_t *e, acfg_key *k)
{
    static const char *const known[] = {"Name", "Key", "KeyHash", "Databases", "Roles"};
    char where[160];
    snprintf(where, sizeof where, "Auth.ApiKeys[%zu]", idx);
    if (!json_is_object(e)) {
        LOG(host, LD_LOG_ERROR, "%s must be an object", where);
        return LD_INVALID;
    }
    int dup = 0;
    json_t *name = member(e, "Name", &dup);
    if (name && !json_is_string(name)) {
        LOG(host, LD_LOG_ERROR, "%s: Name must be a string", where);
        return LD_INVALID;
    }
    if (name && json_string_length(name))
        snprintf(where, sizeof where, "Auth.ApiKeys[%zu] (%s)", idx, json_string_value(name));

    /* Every member of an entry is ours, so a typo ("Databse") is an error, not a silent deny. */
    const char *mk;
    json_t *mv;
    json_object_foreach(e, mk, mv)
    {
        size_t i = 0, n = sizeof known / sizeof known[0];
        while (i < n && strcasecmp(mk, known[i]) != 0)
            i++;
        if (i == n) {
            LOG(host, LD_LOG_ERROR,
                "%s: unknown member \"%s\" (expected Name, Key or KeyHash, Databases, Roles)",
                where, mk);
            return LD_INVALID;
        }
    }

    json_t *plain = member(e, "Key", &dup);
    json_t *hashed = member(e, "KeyHash", &dup);
    json_t *dbs = member(e, "Databases", &dup);
    json_t *roles = member(e, "Roles", &dup);
    if (dup) {
        LOG(host, LD_LOG_ERROR, "%s: a member is given twice in different case", where);
        return LD_INVALID;
    }
    if (plain && hashed) {
        LOG(host, LD_LOG_ERROR, "%s: give Key or KeyHash, not both", where);
        return LD_INVALID;
    }
    if (hashed) {
        if (!json_is_string(hashed) ||
            !parse_key_hash(json_string_value(hashed), json_string_length(hashed), k->hash)) {
            LOG(host, LD_LOG_ERROR,
                "%s: KeyHash must be \"blake2b:\" followed by 64 hex digits "
                "(litedistd keygen prints one)",
                where);
            return LD_INVALID;
        }
    } else if (plain) {
        size_t n = json_is_string(plain) ? json_string_length(plain) : 0;
        const char *s = json_is_string(plain) ? trim(json_string_value(plain), &n) : NULL;
        if (!s || n == 0) {
            LOG(host, LD_LOG_ERROR, "%s: Key must be a non-empty string", where);
            return LD_INVALID;
        }
        hash_bytes(k->hash, s, n);
    } else {
        LOG(host, LD_LOG_ERROR, "%s: Key or KeyHash is required", where);
        return LD_INVALID;
    }

    ld_status st = LD_OK;
    if (dbs) st = parse_databases(host, where, dbs, k);
    if (st == LD_OK && roles) st = parse_roles(host, where, roles, k);
    return st;
}

/* Two entries with one key would make the answer depend on which one wins; refuse instead. The
 * hashes are not secret, so a plain quadratic scan at start-up is fine. */
static ld_status check_duplicates(const ld_host *host, const acfg *a)
{
    size_t base = a->has_root ? 1 : 0; /* keys[base] is ApiKeys[0] */
    for (size_t i = 1; i < a->nkeys; i++) {
        for (size_t j = 0; j < i; j++) {
            if (sodium_memcmp(a->keys[i].hash, a->keys[j].hash, HASH_BYTES) != 0) continue;
            if (j < base)
                LOG(host, LD_LOG_ERROR, "Auth.ApiKeys[%zu] has the same key as Auth.RootApiKey",
                    i - base);
            else
                LOG(host, LD_LOG_ERROR, "Auth.ApiKeys[%zu] has the same key as Auth.ApiKeys[%zu]",
                    i - base, j - base);
            return LD_INVALID;
        }
    }
    return LD_OK;
}

static ld_status parse_config(const ld_host *host, json_t *cfg, acfg *a)
{
    int dup = 0;
    json_t *list = member(cfg, "ApiKeys", &dup);
    if (dup) {
        LOG(host, LD_LOG_ERROR, "Auth.ApiKeys is given twice in different case");
        return LD_INVALID;
    }
    if (list && !json_is_array(list)) {
        LOG(host, LD_LOG_ERROR, "Auth.ApiKeys must be an array");
        return LD_INVALID;
    }
    size_t n = list ? json_array_size(list) : 0;
    if (!(a->keys = calloc(n + 1, sizeof *a->keys))) return LD_NOMEM;

    ld_status st = parse_root(host, cfg, &a->keys[0], &a->has_root);
    if (st != LD_OK) return st;
    a->nkeys = a->has_root ? 1 : 0; /* without root, keys[0] is reused for ApiKeys[0] */
    for (size_t i = 0; i < n; i++) {
        /* Count the entry before parsing so acfg_free releases what a failed parse took. */
        acfg_key *k = &a->keys[a->nkeys++];
        if ((st = parse_entry(host, i, json_array_get(list, i), k)) != LD_OK) return st;
    }
    return check_duplicates(host, a);
}

/* ---------------------------------------------------------------------------------------------
 * ld_auth_v1
 * ------------------------------------------------------------------------------------------- */

static ld_status acfg_create(const ld_host *host, void **out)
{
    if (!host || !out) return LD_INVALID;
    *out = NULL;
    if (host->abi_major != LD_ABI_MAJOR) return LD_INVALID; /* the entry point refused already */
    if (sodium_init() < 0) {
        LOG(host, LD_LOG_ERROR, "libsodium failed to initialise");
        return LD_INTERNAL;
    }
    if (!LD_HOST_HAS(host, config_json)) {
        LOG(host, LD_LOG_ERROR, "the host table has no config_json (struct_size %u)",
            host->struct_size);
        return LD_INVALID;
    }
    json_error_t jerr;
    json_t *cfg = json_loads(host->config_json ? host->config_json : "{}", 0, &jerr);
    if (!cfg && json_error_code(&jerr) == json_error_out_of_memory) {
        LOG(host, LD_LOG_ERROR, "out of memory reading Auth");
        return LD_NOMEM;
    }
    if (!cfg) {
        /* jerr.text quotes the text near the error, which may be a key: give the position only. */
        LOG(host, LD_LOG_ERROR, "Auth: the section is not valid JSON (line %d, column %d)",
            jerr.line, jerr.column);
        return LD_INVALID;
    }
    ld_status st = LD_INVALID;
    acfg *a = NULL;
    if (!json_is_object(cfg)) {
        LOG(host, LD_LOG_ERROR, "Auth must be a JSON object");
    } else if (!(a = calloc(1, sizeof *a))) {
        st = LD_NOMEM;
    } else {
        st = parse_config(host, cfg, a);
    }
    if (st == LD_NOMEM) LOG(host, LD_LOG_ERROR, "out of memory reading Auth");
    scrub_config(cfg);
    json_decref(cfg);
    if (st != LD_OK) {
        acfg_free(a);
        return st;
    }
    LOG(host, LD_LOG_INFO, "%zu API key(s) loaded, root key %s", a->nkeys,
        a->has_root ? "enabled" : "disabled");
    *out = a;
    return LD_OK;
}

/* The database scope: with no database named, the key must reach at least one (auth.h). */
static int reaches(const acfg_key *k, const char *db)
{
    if (k->any_db) return 1;
    if (!db) return k->ndbs > 0;
    for (size_t i = 0; i < k->ndbs; i++)
        if (strcmp(k->dbs[i], db) == 0) return 1;
    return 0;
}

/* The entry holding `key`, or NULL. Compares against every entry without stopping early, so
 * the time taken does not tell which entry (if any) matched. Keys are unique (checked at
 * create), so one match at most; the root key, when enabled, is keys[0]. */
static const acfg_key *find_key(const acfg *a, const char *key, size_t len)
{
    unsigned char h[HASH_BYTES];
    hash_bytes(h, key, len);
    const acfg_key *match = NULL;
    for (size_t i = 0; i < a->nkeys; i++) {
        int eq = sodium_memcmp(h, a->keys[i].hash, HASH_BYTES) == 0;
        if (eq && !match) match = &a->keys[i];
    }
    sodium_memzero(h, sizeof h);
    return match;
}

/* ABI 1.0's question, once per role: what a host of ABI 1.0 or 1.1 calls. */
static ld_status acfg_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    const acfg *a = inst;
    if (!a || !req || !decision) return LD_INVALID;
    /* Fail closed on a request this plugin cannot read. */
    if (req->abi_major != LD_ABI_MAJOR || !LD_ABI_HAS(req, ld_auth_request, database))
        return LD_INVALID;
    if (req->api_key_len == 0) {
        *decision = LD_AUTH_UNKNOWN;
        return LD_OK;
    }
    if (!req->api_key) return LD_INVALID;
    const acfg_key *match = find_key(a, req->api_key, req->api_key_len);
    if (!match) *decision = LD_AUTH_UNKNOWN;
    /* Roles the plugin does not know (later ABI minors) are never in k->roles, so they deny. */
    else if ((req->roles & ~match->roles) != 0 || !reaches(match, req->database))
        *decision = LD_AUTH_DENY;
    else
        *decision = LD_AUTH_ALLOW;
    return LD_OK;
}

/* ABI 1.2's one question per request: the key's roles on the database, or on a node-wide route
 * which of the listed databases it reaches. The host checks them against what the route needs. */
static ld_status acfg_decide(void *inst, const ld_auth_query *q, ld_auth_answer *ans)
{
    const acfg *a = inst;
    if (!a || !q || !ans) return LD_INVALID;
    if (q->abi_major != LD_ABI_MAJOR || !LD_ABI_HAS(q, ld_auth_query, databases) ||
        ans->abi_major != LD_ABI_MAJOR || !LD_ABI_HAS(ans, ld_auth_answer, access))
        return LD_INVALID;
    ans->decision = LD_AUTH_UNKNOWN;
    if (q->api_key_len == 0) return LD_OK;
    if (!q->api_key) return LD_INVALID;
    const acfg_key *match = find_key(a, q->api_key, q->api_key_len);
    if (!match) return LD_OK;
    if (!reaches(match, q->database)) {
        ans->decision = LD_AUTH_DENY;
        return LD_OK;
    }
    ans->decision = LD_AUTH_ALLOW;
    ans->granted = match->roles;
    if (!q->database && ans->access && q->databases)
        for (uint32_t i = 0; i < q->n_databases; i++)
            ans->access[i] = (uint8_t)reaches(match, q->databases[i]);
    return LD_OK;
}

static void acfg_destroy(void *inst)
{
    acfg_free(inst);
}

/* ---------------------------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------------------------- */

static const ld_auth_v1 acfg_ops = {
    LD_ABI_HEADER_INIT(ld_auth_v1),
    .create = acfg_create,
    .authorize = acfg_authorize,
    .destroy = acfg_destroy,
    /* The contract's keys are this plugin's whole configuration. */
    .wants = LD_AUTH_WANT_API_KEYS | LD_AUTH_WANT_ROOT_KEY,
    .flags = LD_AUTH_FLAG_STABLE, /* answers depend on the question and the configuration only */
    .decide = acfg_decide,
};

static const ld_plugin_descriptor acfg_descriptor = {
    LD_ABI_HEADER_INIT(ld_plugin_descriptor),
    LD_PLUGIN_KIND_AUTH,
    "auth-config",
    "1.2.0",
    &acfg_ops,
};

/* Not static: with LD_PLUGIN_STATIC a program links this file in and calls it directly. */
const ld_plugin_descriptor *ld_auth_config_entry(const ld_host *host);
const ld_plugin_descriptor *ld_auth_config_entry(const ld_host *host)
{
    if (!host) return NULL;
    if (host->abi_major != LD_ABI_MAJOR) {
        /* A host of another major may lay out ld_host differently, so host->log cannot be
         * trusted: stderr is the one channel left. */
        fprintf(stderr,
                "auth-config: host speaks plugin ABI %u, this plugin was built for %d; "
                "rebuild it against that host's include/litedist\n",
                host->abi_major, LD_ABI_MAJOR);
        return NULL;
    }
    return &acfg_descriptor;
}

LD_PLUGIN_ENTRY(ld_auth_config_entry)
