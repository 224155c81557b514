/* auth-file: an auth plugin that reads API keys from a text file. Small but real, it is the worked
 * example of docs/plugins.md: copy it to start your own plugin. */

/* getline, strdup, strtok_r and strcasecmp are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h> /* any JSON parser will do: no library type crosses the ABI */
#include <sodium.h>

#include <litedist/auth.h>

/* host->log takes printf arguments and has no va_list twin, so forward them with a macro. */
#define LOG(host, level, ...) (host)->log((host), (level), __VA_ARGS__)

/*
 * The keys file, one key per line:
 *
 *     # comment
 *     svc-42   orders,testapp  READ_DOCUMENT,WRITE_DOCUMENT
 *     admin-1  *               ADD_DB,DELETE_DB,READ_DOCUMENT
 *
 * Fields are separated by spaces or tabs, so a key here cannot contain either (auth-config can
 * hold such keys). Only whole lines are comments, so a key may contain '#' but not start with
 * it. Roles are the LD_ROLE_* names of auth.h, in any case.
 */

typedef struct afile_key {
    /* Only the hash of the key is kept: comparing two fixed-size hashes in constant time is easy,
     * and a memory dump of the server shows no usable key. */
    unsigned char hash[crypto_generichash_BYTES];
    uint32_t roles;
    int any_db;
    char *dbs;     /* ",orders,testapp,": a name is in the list when ",name," is a substring */
    unsigned line; /* for the duplicate-key message */
} afile_key;

typedef struct afile {
    size_t n;
    afile_key *keys;
} afile;

static const struct {
    const char *name;
    uint32_t bit;
} roles_by_name[] = {
    {"ADD_DB", LD_ROLE_ADD_DB},
    {"DELETE_DB", LD_ROLE_DELETE_DB},
    {"READ_DOCUMENT", LD_ROLE_READ_DOCUMENT},
    {"WRITE_DOCUMENT", LD_ROLE_WRITE_DOCUMENT},
    {"UPDATE_DOCUMENT", LD_ROLE_UPDATE_DOCUMENT},
    {"DELETE_DOCUMENT", LD_ROLE_DELETE_DOCUMENT},
};

static void afile_free(afile *af)
{
    if (!af) return;
    for (size_t i = 0; i < af->n; i++)
        free(af->keys[i].dbs);
    free(af->keys);
    free(af);
}

/* Finds a member ignoring case: litedist matches config keys the way .NET configuration does. */
static json_t *member(json_t *obj, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) == 0) return v;
    }
    return NULL;
}

/* Cuts the comma-separated list at *p: returns the next item and advances *p (NULL at the end).
 * Unlike strtok, it returns empty items, so "a,,b" is caught as a mistake. */
static char *next_item(char **p)
{
    char *item = *p, *comma = strchr(item, ',');
    if (comma) *comma = '\0';
    *p = comma ? comma + 1 : NULL;
    return item;
}

/* The contract's rule for database names, ^[a-z0-9][a-z0-9_-]{0,62}$, applied after lowercasing
 * because the host lowercases the Database header before asking. */
static int valid_db(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) ||
              (i > 0 && (s[i] == '_' || s[i] == '-'))))
            return 0;
    return 1;
}

/* Fills k->dbs and k->any_db from "orders,testapp" or "*". Returns an error text or NULL. */
static const char *parse_dbs(char *field, afile_key *k)
{
    /* Worst case: every item kept, plus a comma before each and one at the end. */
    if (!(k->dbs = malloc(strlen(field) + 3))) return "out of memory";
    strcpy(k->dbs, ",");
    for (char *p = field; p;) {
        char *db = next_item(&p);
        for (char *c = db; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (strcmp(db, "*") == 0)
            k->any_db = 1;
        else if (!valid_db(db))
            return "a database is not \"*\" or a valid name";
        else
            strcat(strcat(k->dbs, db), ",");
    }
    return NULL;
}

/* Sets k->roles from "READ_DOCUMENT,WRITE_DOCUMENT". Returns an error text or NULL. */
static const char *parse_roles(char *field, afile_key *k)
{
    size_t nroles = sizeof roles_by_name / sizeof roles_by_name[0];
    for (char *p = field; p;) {
        char *role = next_item(&p);
        size_t r = 0;
        while (r < nroles && strcasecmp(role, roles_by_name[r].name) != 0)
            r++;
        if (r == nroles) return "unknown role (ADD_DB, DELETE_DB, READ_DOCUMENT, ...)";
        k->roles |= roles_by_name[r].bit;
    }
    return NULL;
}

/* Parses one non-comment line into k. Returns an error text or NULL. */
static const char *parse_line(char *line, afile_key *k)
{
    char *save = NULL;
    char *key = strtok_r(line, " \t\r\n", &save);
    char *dbs = strtok_r(NULL, " \t\r\n", &save);
    char *roles = strtok_r(NULL, " \t\r\n", &save);
    if (!roles || strtok_r(NULL, " \t\r\n", &save))
        return "expected three fields: <key> <databases> <roles>";
    crypto_generichash(k->hash, sizeof k->hash, (const unsigned char *)key, strlen(key), NULL, 0);
    const char *err = parse_dbs(dbs, k);
    return err ? err : parse_roles(roles, k);
}

/* Reads every key of the file at `path` into af. */
static ld_status load_file(const ld_host *host, const char *path, afile *af)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        LOG(host, LD_LOG_ERROR, "Auth.auth-file.Path: cannot open %s: %s", path, strerror(errno));
        return LD_IO;
    }
    ld_status st = LD_OK;
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    while (st == LD_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == '#') continue;

        afile_key *grown = realloc(af->keys, (af->n + 1) * sizeof *grown);
        if (!grown) {
            st = LD_NOMEM;
            break;
        }
        af->keys = grown;
        afile_key *k = &af->keys[af->n++]; /* counted now, so afile_free releases k->dbs */
        memset(k, 0, sizeof *k);
        k->line = lineno;
        const char *err = parse_line(s, k);
        if (err) {
            /* Name the line, never print it: it holds a key. */
            LOG(host, LD_LOG_ERROR, "Auth.auth-file: %s line %u: %s", path, lineno, err);
            st = LD_INVALID;
        }
        /* Two lines with one key: which roles apply would depend on the order. Refuse. */
        for (size_t i = 0; st == LD_OK && i + 1 < af->n; i++) {
            if (sodium_memcmp(af->keys[i].hash, k->hash, sizeof k->hash) == 0) {
                LOG(host, LD_LOG_ERROR, "Auth.auth-file: %s line %u: same key as line %u", path,
                    lineno, af->keys[i].line);
                st = LD_INVALID;
            }
        }
    }
    if (st == LD_OK && ferror(f)) {
        LOG(host, LD_LOG_ERROR, "Auth.auth-file: reading %s failed", path);
        st = LD_IO;
    }
    /* The buffer held plain keys; clear it before it goes back to the allocator. */
    if (line) sodium_memzero(line, cap);
    free(line);
    fclose(f);
    return st;
}

/* create: main thread, once. Everything authorize needs is built here and never changed after,
 * so authorize can run on many threads without a lock. */
static ld_status afile_create(const ld_host *host, void **out)
{
    *out = NULL;
    if (sodium_init() < 0) return LD_INTERNAL;

    /* config_json is the whole Auth section; our settings are in the member named after us. */
    json_t *cfg = json_loads(host->config_json, 0, NULL);
    json_t *mine = cfg ? member(cfg, "auth-file") : NULL;
    json_t *jpath = json_is_object(mine) ? member(mine, "Path") : NULL;
    if (!json_is_string(jpath) || json_string_length(jpath) == 0) {
        LOG(host, LD_LOG_ERROR,
            "Auth.auth-file.Path is required: the keys file to read "
            "(e.g. \"auth-file\": {\"Path\": \"keys.txt\"})");
        json_decref(cfg);
        return LD_INVALID;
    }

    /* A relative Path is relative to the data directory, not to wherever litedistd started. */
    const char *p = json_string_value(jpath);
    char *path = NULL;
    if (p[0] == '/')
        path = strdup(p);
    else if ((path = malloc(strlen(host->data_dir) + strlen(p) + 2)))
        sprintf(path, "%s/%s", host->data_dir, p);
    json_decref(cfg);

    afile *af = calloc(1, sizeof *af);
    ld_status st = (path && af) ? load_file(host, path, af) : LD_NOMEM;
    if (st == LD_OK) LOG(host, LD_LOG_INFO, "%zu key(s) read from %s", af->n, path);
    free(path);
    if (st != LD_OK) {
        afile_free(af);
        return st;
    }
    *out = af;
    return LD_OK;
}

/* authorize: any thread, concurrently. Hashes the presented key once, then compares it with
 * every stored hash without stopping at a match, so the time taken does not say which line
 * (or whether any) matched. */
static ld_status afile_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    const afile *af = inst;
    *decision = LD_AUTH_UNKNOWN; /* "not my key": the host asks the next plugin */
    if (req->api_key_len == 0) return LD_OK;

    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)req->api_key, req->api_key_len, NULL, 0);
    const afile_key *k = NULL;
    for (size_t i = 0; i < af->n; i++)
        if (sodium_memcmp(h, af->keys[i].hash, sizeof h) == 0 && !k) k = &af->keys[i];
    if (!k) return LD_OK;

    /* Grant only when every required role is one of the key's: a role bit added by a later
     * ABI minor is unknown here, so it is denied rather than granted by accident. */
    int roles_ok = (req->roles & ~k->roles) == 0;
    int db_ok = k->any_db;
    if (!db_ok && req->database) {
        /* ",name," cannot match across entries: names contain no commas. */
        char needle[68];
        int len = snprintf(needle, sizeof needle, ",%s,", req->database);
        db_ok = len < (int)sizeof needle && strstr(k->dbs, needle) != NULL;
    } else if (!db_ok) {
        db_ok = strlen(k->dbs) > 1; /* no database named: the key must reach at least one */
    }
    *decision = roles_ok && db_ok ? LD_AUTH_ALLOW : LD_AUTH_DENY;
    return LD_OK;
}

/* destroy: main thread, after the last authorize has returned. */
static void afile_destroy(void *inst)
{
    afile_free(inst);
}

/* The operations table and the descriptor are static const: the host keeps pointers to them
 * for the life of the process. LD_ABI_HEADER_INIT records the ABI and struct size we were built
 * with, which is how a newer litedistd knows which fields this plugin has. */
static const ld_auth_v1 afile_ops = {
    LD_ABI_HEADER_INIT(ld_auth_v1),
    .create = afile_create,
    .authorize = afile_authorize,
    .destroy = afile_destroy,
};

static const ld_plugin_descriptor afile_descriptor = {
    LD_ABI_HEADER_INIT(ld_plugin_descriptor), LD_PLUGIN_KIND_AUTH, "auth-file", "1.0.0", &afile_ops,
};

static const ld_plugin_descriptor *afile_entry(const ld_host *host)
{
    /* Another major may lay out ld_host differently: read nothing else and refuse. */
    if (host->abi_major != LD_ABI_MAJOR) {
        fprintf(stderr, "auth-file: host ABI %u, plugin ABI %d: rebuild the plugin\n",
                host->abi_major, LD_ABI_MAJOR);
        return NULL;
    }
    return &afile_descriptor;
}

LD_PLUGIN_ENTRY(afile_entry)
