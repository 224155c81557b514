/* auth-tsv: an out-of-tree litedist auth plugin (ABI 1.2) reading API keys from a
 * tab-separated file, one `key<TAB>databases<TAB>roles` per line. It answers the one question
 * per request (decide) and logs each answer, which shows how often litedistd asks. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include <litedist/auth.h>

#define HASH crypto_generichash_BYTES

typedef struct tkey {
    unsigned char hash[HASH]; /* BLAKE2b-256 of the key: the key itself is not kept */
    uint32_t roles;
    char *dbs; /* "*" or ",orders,testapp," (commas around every name, for strstr) */
} tkey;

typedef struct tsv {
    const ld_host *host;
    size_t n;
    tkey *keys;
} tsv;

static const struct {
    const char *name;
    uint32_t bit;
} roles[] = {{"ADD_DB", LD_ROLE_ADD_DB},
             {"DELETE_DB", LD_ROLE_DELETE_DB},
             {"READ_DOCUMENT", LD_ROLE_READ_DOCUMENT},
             {"WRITE_DOCUMENT", LD_ROLE_WRITE_DOCUMENT},
             {"UPDATE_DOCUMENT", LD_ROLE_UPDATE_DOCUMENT},
             {"DELETE_DOCUMENT", LD_ROLE_DELETE_DOCUMENT}};

static void tsv_free(tsv *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        free(t->keys[i].dbs);
    if (t) free(t->keys);
    free(t);
}

static int parse_roles(char *text, uint32_t *out)
{
    *out = 0;
    for (char *save = NULL, *r = strtok_r(text, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < sizeof roles / sizeof roles[0] && strcasecmp(r, roles[i].name) != 0)
            i++;
        if (i == sizeof roles / sizeof roles[0]) return -1;
        *out |= roles[i].bit;
    }
    return 0;
}

/* Reads the key file; the root key's hash (when the host gave it) may not appear in it. */
static ld_status load(tsv *t, const char *path, const char *root_hash)
{
    const ld_host *h = t->host;
    FILE *f = fopen(path, "r");
    if (!f) {
        h->log(h, LD_LOG_ERROR, "Auth.%s.Path: cannot open %s", h->plugin_name, path);
        return LD_IO;
    }
    unsigned char root[HASH];
    int has_root =
        root_hash && !strncmp(root_hash, "blake2b:", 8) &&
        sodium_hex2bin(root, HASH, root_hash + 8, strlen(root_hash + 8), NULL, NULL, NULL) == 0;
    char *line = NULL;
    size_t cap = 0, no = 0;
    ld_status st = LD_OK;
    while (st == LD_OK && getline(&line, &cap, f) > 0) {
        no++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#') continue;
        char *save = NULL, *key = strtok_r(line, "\t", &save), *dbs = strtok_r(NULL, "\t", &save),
             *rl = strtok_r(NULL, "\t", &save);
        tkey k = {.dbs = NULL};
        if (!key || !dbs || !rl || parse_roles(rl, &k.roles) != 0) {
            h->log(h, LD_LOG_ERROR, "%s:%zu: want key<TAB>databases<TAB>ROLE,ROLE", path, no);
            st = LD_INVALID;
            break;
        }
        crypto_generichash(k.hash, HASH, (const unsigned char *)key, strlen(key), NULL, 0);
        if (has_root && sodium_memcmp(k.hash, root, HASH) == 0) {
            h->log(h, LD_LOG_ERROR, "%s:%zu: this key is the root key", path, no);
            st = LD_INVALID;
            break;
        }
        tkey *grown = realloc(t->keys, (t->n + 1) * sizeof *grown);
        size_t dl = strlen(dbs) + 3;
        if (!grown || !(k.dbs = malloc(dl))) {
            if (grown) t->keys = grown;
            st = LD_NOMEM;
            break;
        }
        snprintf(k.dbs, dl, strcmp(dbs, "*") ? ",%s," : "%s", dbs);
        t->keys = grown;
        t->keys[t->n++] = k;
    }
    if (line) sodium_memzero(line, cap); /* it held plain keys */
    free(line);
    fclose(f);
    return st;
}

static ld_status tsv_create(const ld_host *host, void **out)
{
    if (sodium_init() < 0 || !LD_HOST_HAS(host, settings_json)) return LD_INVALID;
    json_t *settings = json_loads(host->settings_json, 0, NULL);
    json_t *config = json_loads(host->config_json, 0, NULL);
    const char *path = json_string_value(json_object_get(settings, "Path"));
    tsv *t = calloc(1, sizeof *t);
    ld_status st = t ? LD_OK : LD_NOMEM;
    if (t) t->host = host;
    if (st == LD_OK && !path) {
        host->log(host, LD_LOG_ERROR, "Auth.%s.Path: the key file is required", host->plugin_name);
        st = LD_INVALID;
    }
    if (st == LD_OK) {
        char full[4096];
        snprintf(full, sizeof full, "%s%s%s", path[0] == '/' ? "" : host->data_dir,
                 path[0] == '/' ? "" : "/", path);
        st = load(t, full, json_string_value(json_object_get(config, "RootApiKeyHash")));
    }
    json_decref(settings);
    json_decref(config);
    if (st != LD_OK) {
        tsv_free(t);
        return st;
    }
    host->log(host, LD_LOG_INFO, "%zu key(s) loaded", t->n);
    *out = t;
    return LD_OK;
}

static const tkey *find(const tsv *t, const char *key, size_t len)
{
    unsigned char h[HASH];
    crypto_generichash(h, HASH, (const unsigned char *)key, len, NULL, 0);
    const tkey *hit = NULL;
    for (size_t i = 0; i < t->n; i++) /* no early exit: the time does not tell which line */
        if (sodium_memcmp(h, t->keys[i].hash, HASH) == 0 && !hit) hit = &t->keys[i];
    return hit;
}

static int reaches(const tkey *k, const char *db)
{
    if (!strcmp(k->dbs, "*")) return 1;
    if (!db) return 1; /* a key of this file has at least one database */
    char needle[80];
    snprintf(needle, sizeof needle, ",%s,", db);
    return strstr(k->dbs, needle) != NULL;
}

/* ABI 1.2: the request's one question. */
static ld_status tsv_decide(void *inst, const ld_auth_query *q, ld_auth_answer *a)
{
    const tsv *t = inst;
    if (q->abi_major != LD_ABI_MAJOR || !LD_ABI_HAS(q, ld_auth_query, databases)) return LD_INVALID;
    const tkey *k = q->api_key_len ? find(t, q->api_key, q->api_key_len) : NULL;
    if (k && !reaches(k, q->database)) {
        a->decision = LD_AUTH_DENY;
    } else if (k) {
        a->decision = LD_AUTH_ALLOW;
        a->granted = k->roles;
        for (uint32_t i = 0; a->access && i < q->n_databases; i++)
            a->access[i] = (uint8_t)reaches(k, q->databases[i]);
    }
    t->host->log(t->host, LD_LOG_INFO,
                 "question: %s db=%s exists=%d needs=0x%x may_need=0x%x -> %s granted=0x%x",
                 q->action, q->database ? q->database : "-", q->db_exists, q->needs, q->may_need,
                 !k                            ? "unknown"
                 : a->decision == LD_AUTH_DENY ? "deny"
                                               : "allow",
                 a->granted);
    return LD_OK;
}

/* ABI 1.0's question, once per role, for a host older than 1.2. */
static ld_status tsv_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    const tkey *k = req->api_key_len ? find(inst, req->api_key, req->api_key_len) : NULL;
    *decision = !k                                                       ? LD_AUTH_UNKNOWN
                : (req->roles & ~k->roles) || !reaches(k, req->database) ? LD_AUTH_DENY
                                                                         : LD_AUTH_ALLOW;
    return LD_OK;
}

static void tsv_destroy(void *inst)
{
    tsv_free(inst);
}

static const ld_auth_v1 tsv_ops = {
    LD_ABI_HEADER_INIT(ld_auth_v1),
    .create = tsv_create,
    .authorize = tsv_authorize,
    .destroy = tsv_destroy,
    .wants = LD_AUTH_WANT_ROOT_KEY_HASH, /* only to refuse a line holding the root key */
    .decide = tsv_decide,
};

static const ld_plugin_descriptor tsv_descriptor = {
    LD_ABI_HEADER_INIT(ld_plugin_descriptor), LD_PLUGIN_KIND_AUTH, "auth-tsv", "0.1.0", &tsv_ops};

static const ld_plugin_descriptor *tsv_entry(const ld_host *host)
{
    return host->abi_major == LD_ABI_MAJOR ? &tsv_descriptor : NULL;
}

LD_PLUGIN_ENTRY(tsv_entry)
