/* Unit tests for the auth plugins' decisions: auth-config.so and auth-file.so are dlopen'ed with a
 * host table built here, as litedistd would. Also checks that each loader fixture has its defect.
 * Usage: test_auth_config <path of auth-config.so> <directory of the test plugins> */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <litedist/auth.h>
#include <litedist/storage.h>

static const char *auth_config_path;
static const char *test_plugin_dir;

/* ---------------------------------------------------------------------------------------------
 * A minimal host: a log that the tests can read back, and the plugin's config.
 * ------------------------------------------------------------------------------------------- */

static char log_text[16384];

static void test_log(const ld_host *host, int32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void test_log(const ld_host *host, int32_t level, const char *fmt, ...)
{
    size_t used = strlen(log_text);
    if (used + 2 >= sizeof log_text) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_text + used, sizeof log_text - used - 1, fmt, ap);
    va_end(ap);
    strcat(log_text, "\n");
}

typedef struct plugin {
    void *dl;
    const ld_plugin_descriptor *desc;
    const ld_auth_v1 *ops;
    ld_host host; /* must outlive the instance: plugins may keep the pointer */
    void *inst;   /* the instance made by the last successful make() */
    char dir[64]; /* data_dir; auth-file reads relative paths from here */
} plugin;

static plugin acfg_plugin, afile_plugin;

static void host_init(ld_host *h, const char *config_json, const char *data_dir, const char *path)
{
    memset(h, 0, sizeof *h);
    h->abi_major = LD_ABI_MAJOR;
    h->abi_minor = LD_ABI_MINOR;
    h->struct_size = sizeof *h;
    h->log = test_log;
    h->config_json = config_json;
    h->data_dir = data_dir;
    h->plugin_path = path;
}

static int open_plugin(plugin *p, const char *path)
{
    memset(p, 0, sizeof *p);
    if (!(p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    ld_plugin_entry_fn entry = (ld_plugin_entry_fn)dlsym(p->dl, LD_PLUGIN_ENTRY_SYMBOL);
    host_init(&p->host, "{}", "/nonexistent", path);
    p->desc = entry ? entry(&p->host) : NULL;
    if (!p->desc || p->desc->kind != LD_PLUGIN_KIND_AUTH) return -1;
    p->ops = p->desc->ops;
    return 0;
}

/* Creates an instance from config (printf-style); returns the status, logs to log_text. */
static ld_status make(plugin *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ld_status make(plugin *p, const char *fmt, ...)
{
    static char config[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(config, sizeof config, fmt, ap);
    va_end(ap);
    log_text[0] = '\0';
    host_init(&p->host, config, p->dir, "test");
    p->inst = NULL;
    return p->ops->create(&p->host, &p->inst);
}

static void unmake(plugin *p)
{
    if (p->inst) p->ops->destroy(p->inst);
    p->inst = NULL;
}

/* Asks the live instance; fails the test unless authorize returns LD_OK. */
static int32_t ask(plugin *p, const char *key, const char *db, uint32_t roles)
{
    ld_auth_request req = {
        LD_ABI_HEADER_INIT(ld_auth_request), roles, key, strlen(key), db, "127.0.0.1"};
    int32_t decision = -1;
    assert_int_equal(p->ops->authorize(p->inst, &req, &decision), LD_OK);
    return decision;
}

#define ALLOW   LD_AUTH_ALLOW
#define DENY    LD_AUTH_DENY
#define UNKNOWN LD_AUTH_UNKNOWN

static const uint32_t roles_each[] = {
    LD_ROLE_ADD_DB,         LD_ROLE_DELETE_DB,       LD_ROLE_READ_DOCUMENT,
    LD_ROLE_WRITE_DOCUMENT, LD_ROLE_UPDATE_DOCUMENT, LD_ROLE_DELETE_DOCUMENT,
};
static const char *const role_names[] = {
    "ADD_DB", "DELETE_DB", "READ_DOCUMENT", "WRITE_DOCUMENT", "UPDATE_DOCUMENT", "DELETE_DOCUMENT",
};
#define NROLES (sizeof roles_each / sizeof roles_each[0])

/* "blake2b:<hex>" of key, the KeyHash format. */
static void key_hash(const char *key, char out[8 + 65])
{
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)key, strlen(key), NULL, 0);
    strcpy(out, "blake2b:");
    sodium_bin2hex(out + 8, 65, h, sizeof h);
}

static int teardown_instance(void **state)
{
    unmake(&acfg_plugin);
    unmake(&afile_plugin);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * auth-config
 * ------------------------------------------------------------------------------------------- */

#define STUDIO_DEV                                                                                 \
    "{\"Name\":\"studio-dev\",\"Key\":\"dev-123\",\"Databases\":[\"testapp\",\"orders\"],"         \
    "\"Roles\":{\"ADD_DB\":false,\"DELETE_DB\":false,\"READ_DOCUMENT\":true,"                      \
    "\"WRITE_DOCUMENT\":true,\"UPDATE_DOCUMENT\":true,\"DELETE_DOCUMENT\":true}}"

static void acfg_descriptor(void **state)
{
    const ld_plugin_descriptor *d = acfg_plugin.desc;
    assert_int_equal(d->abi_major, LD_ABI_MAJOR);
    assert_int_equal(d->struct_size, sizeof(ld_plugin_descriptor));
    assert_int_equal(d->kind, LD_PLUGIN_KIND_AUTH);
    assert_string_equal(d->name, "auth-config");
    assert_string_equal(d->version, "1.2.0");
    assert_int_equal(acfg_plugin.ops->struct_size, sizeof(ld_auth_v1));
    /* ABI 1.2: one question per request, and the contract's keys asked for. */
    assert_non_null(acfg_plugin.ops->decide);
    assert_int_equal(acfg_plugin.ops->wants, LD_AUTH_WANT_API_KEYS | LD_AUTH_WANT_ROOT_KEY);

    /* A host of another major is refused before anything else is read. */
    ld_host other;
    host_init(&other, "{}", "/", "x");
    other.abi_major = LD_ABI_MAJOR + 1;
    ld_plugin_entry_fn entry = (ld_plugin_entry_fn)dlsym(acfg_plugin.dl, LD_PLUGIN_ENTRY_SYMBOL);
    assert_null(entry(&other));
}

static void acfg_root_allows_everything(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"RootApiKey\":\"s3cret-root\"}"), LD_OK);
    assert_null(strstr(log_text, "default"));
    assert_int_equal(ask(&acfg_plugin, "s3cret-root", "testapp", LD_ROLE_ALL), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "s3cret-root", "any-db_9", LD_ROLE_DELETE_DB), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "s3cret-root", NULL, LD_ROLE_ALL), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "s3cret-root", "x", 0), ALLOW);
    /* A role bit from a later ABI minor is unknown, so even root is denied it. */
    assert_int_equal(ask(&acfg_plugin, "s3cret-root", "x", 1u << 6), DENY);
    assert_int_equal(ask(&acfg_plugin, "root", "x", 0), UNKNOWN);
}

static void acfg_default_root(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{}"), LD_OK);
    assert_non_null(strstr(log_text, "Auth.RootApiKey is the default 'root': set your own"));
    assert_int_equal(ask(&acfg_plugin, "root", "testapp", LD_ROLE_ALL), ALLOW);
    unmake(&acfg_plugin);

    /* Explicitly "root" warns too. */
    assert_int_equal(make(&acfg_plugin, "{\"RootApiKey\":\" root \"}"), LD_OK);
    assert_non_null(strstr(log_text, "default 'root'"));
    assert_int_equal(ask(&acfg_plugin, "root", NULL, 0), ALLOW);
}

static void acfg_empty_root_disables(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"RootApiKey\":\"\",\"ApiKeys\":[" STUDIO_DEV "]}"),
                     LD_OK);
    assert_null(strstr(log_text, "default 'root'"));
    assert_int_equal(ask(&acfg_plugin, "root", "testapp", 0), UNKNOWN);
    assert_int_equal(ask(&acfg_plugin, "dev-123", "testapp", LD_ROLE_READ_DOCUMENT), ALLOW);
    unmake(&acfg_plugin);

    assert_int_equal(make(&acfg_plugin, "{\"RootApiKey\":\"  \"}"), LD_OK);
    assert_int_equal(ask(&acfg_plugin, "root", "testapp", 0), UNKNOWN);
}

static void acfg_scoped_databases(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"ApiKeys\":[" STUDIO_DEV "]}"), LD_OK);
    uint32_t rw = LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT;
    assert_int_equal(ask(&acfg_plugin, "dev-123", "testapp", rw), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "dev-123", "orders", rw), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "dev-123", "other", rw), DENY);
    assert_int_equal(ask(&acfg_plugin, "dev-123", "other", 0), DENY);
    assert_int_equal(ask(&acfg_plugin, "dev-123", "testapp2", 0), DENY);
    assert_int_equal(ask(&acfg_plugin, "dev-123", "testapp", LD_ROLE_ADD_DB), DENY);
}

static void acfg_star_allows_any_db(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"ApiKeys\":[{\"Name\":\"any\",\"Key\":\"k-any\","
                                        "\"Databases\":[\" * \"],"
                                        "\"Roles\":{\"READ_DOCUMENT\":true}}]}"),
                     LD_OK);
    assert_int_equal(ask(&acfg_plugin, "k-any", "whatever", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "k-any", "orders", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "k-any", "orders", LD_ROLE_WRITE_DOCUMENT), DENY);
}

static void acfg_each_role(void **state)
{
    for (size_t r = 0; r < NROLES; r++) {
        assert_int_equal(make(&acfg_plugin,
                              "{\"ApiKeys\":[{\"Key\":\"k\",\"Databases\":[\"db\"],"
                              "\"Roles\":{\"%s\":true}}]}",
                              role_names[r]),
                         LD_OK);
        assert_int_equal(ask(&acfg_plugin, "k", "db", roles_each[r]), ALLOW);
        assert_int_equal(ask(&acfg_plugin, "k", "db", 0), ALLOW);
        for (size_t o = 0; o < NROLES; o++)
            if (o != r) assert_int_equal(ask(&acfg_plugin, "k", "db", roles_each[o]), DENY);
        unmake(&acfg_plugin);
    }
}

static void acfg_role_subset(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"ApiKeys\":[{\"Key\":\"k\",\"Databases\":[\"db\"],"
                                        "\"Roles\":{\"READ_DOCUMENT\":true,"
                                        "\"WRITE_DOCUMENT\":true,\"ADD_DB\":false}}]}"),
                     LD_OK);
    uint32_t rw = LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT;
    assert_int_equal(ask(&acfg_plugin, "k", "db", rw), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "k", "db", LD_ROLE_WRITE_DOCUMENT), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "k", "db", rw | LD_ROLE_DELETE_DOCUMENT), DENY);
    assert_int_equal(ask(&acfg_plugin, "k", "db", LD_ROLE_ADD_DB), DENY);
    assert_int_equal(ask(&acfg_plugin, "k", "db", LD_ROLE_ALL), DENY);
    assert_int_equal(ask(&acfg_plugin, "k", "db", rw | (1u << 7)), DENY);
    unmake(&acfg_plugin);

    /* No Roles at all: only the "may this key use the database" question is allowed. */
    assert_int_equal(make(&acfg_plugin, "{\"ApiKeys\":[{\"Key\":\"k\",\"Databases\":[\"db\"]}]}"),
                     LD_OK);
    assert_int_equal(ask(&acfg_plugin, "k", "db", 0), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "k", "db", LD_ROLE_READ_DOCUMENT), DENY);
}

static void acfg_unknown_and_empty_keys(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"ApiKeys\":[" STUDIO_DEV "]}"), LD_OK);
    assert_int_equal(ask(&acfg_plugin, "dev-12", "testapp", 0), UNKNOWN);
    assert_int_equal(ask(&acfg_plugin, "dev-1234", "testapp", 0), UNKNOWN);
    assert_int_equal(ask(&acfg_plugin, "DEV-123", "testapp", 0), UNKNOWN);
    assert_int_equal(ask(&acfg_plugin, "", "testapp", 0), UNKNOWN);
    assert_int_equal(ask(&acfg_plugin, "", NULL, 0), UNKNOWN);

    /* Key bytes are bytes: a NUL inside does not end the key. */
    ld_auth_request req = {
        LD_ABI_HEADER_INIT(ld_auth_request), 0, "dev-123\0x", 9, "testapp", "::1"};
    int32_t d = -1;
    assert_int_equal(acfg_plugin.ops->authorize(acfg_plugin.inst, &req, &d), LD_OK);
    assert_int_equal(d, UNKNOWN);
}

static void acfg_bad_request_fails_closed(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{}"), LD_OK);
    int32_t d = -1;
    ld_auth_request req = {LD_ABI_HEADER_INIT(ld_auth_request), 0, "root", 4, "db", "::1"};
    req.abi_major = LD_ABI_MAJOR + 1;
    assert_int_not_equal(acfg_plugin.ops->authorize(acfg_plugin.inst, &req, &d), LD_OK);
    req.abi_major = LD_ABI_MAJOR;
    req.struct_size = offsetof(ld_auth_request, database); /* database beyond the struct */
    assert_int_not_equal(acfg_plugin.ops->authorize(acfg_plugin.inst, &req, &d), LD_OK);
}

static void acfg_key_hash(void **state)
{
    char h[8 + 65], root_h[8 + 65];
    key_hash("hashed-key", h);
    key_hash("hashed-root", root_h);
    assert_int_equal(make(&acfg_plugin,
                          "{\"RootApiKeyHash\":\"%s\",\"ApiKeys\":[{\"Name\":\"h\","
                          "\"KeyHash\":\" %s \",\"Databases\":[\"db\"],"
                          "\"Roles\":{\"READ_DOCUMENT\":true}}]}",
                          root_h, h),
                     LD_OK);
    assert_int_equal(ask(&acfg_plugin, "hashed-key", "db", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "hashed-key", "db", LD_ROLE_WRITE_DOCUMENT), DENY);
    assert_int_equal(ask(&acfg_plugin, "hashed-root", "x", LD_ROLE_ALL), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "root", "x", 0), UNKNOWN);
    /* The hash text itself is not a key. */
    assert_int_equal(ask(&acfg_plugin, h, "db", 0), UNKNOWN);
    unmake(&acfg_plugin);

    /* Upper-case hex is the same hash. */
    for (char *c = h + 8; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
    assert_int_equal(
        make(&acfg_plugin, "{\"ApiKeys\":[{\"KeyHash\":\"%s\",\"Databases\":[\"*\"]}]}", h), LD_OK);
    assert_int_equal(ask(&acfg_plugin, "hashed-key", "db", 0), ALLOW);
    unmake(&acfg_plugin);

    /* A RootApiKeyHash of "root" is still the default key. */
    key_hash("root", root_h);
    assert_int_equal(make(&acfg_plugin, "{\"RootApiKeyHash\":\"%s\"}", root_h), LD_OK);
    assert_non_null(strstr(log_text, "default 'root'"));
}

static void acfg_key_hash_malformed(void **state)
{
    char h[8 + 65];
    key_hash("x", h);
    const char *bad[] = {
        "sha256:00",
        "blake2b:",
        "blake2b:zz",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "blake2b:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
        "blake2b:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
        "blake2b:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(make(&acfg_plugin, "{\"ApiKeys\":[{\"KeyHash\":\"%s\"}]}", bad[i]),
                         LD_INVALID);
        assert_non_null(strstr(log_text, "Auth.ApiKeys[0]: KeyHash must be"));
        assert_int_equal(make(&acfg_plugin, "{\"RootApiKeyHash\":\"%s\"}", bad[i]), LD_INVALID);
        assert_non_null(strstr(log_text, "Auth.RootApiKeyHash must be"));
    }
    assert_int_equal(make(&acfg_plugin, "{\"ApiKeys\":[{\"KeyHash\":42}]}"), LD_INVALID);
    assert_int_equal(make(&acfg_plugin, "{\"RootApiKey\":\"r\",\"RootApiKeyHash\":\"%s\"}", h),
                     LD_INVALID);
    assert_non_null(strstr(log_text, "not both"));
}

static void acfg_key_and_key_hash_rejected(void **state)
{
    char h[8 + 65];
    key_hash("top-secret-1", h);
    assert_int_equal(make(&acfg_plugin,
                          "{\"ApiKeys\":[" STUDIO_DEV
                          ",{\"Name\":\"both\",\"Key\":\"top-secret-1\","
                          "\"KeyHash\":\"%s\"}]}",
                          h),
                     LD_INVALID);
    assert_non_null(strstr(log_text, "Auth.ApiKeys[1] (both): give Key or KeyHash, not both"));
    assert_null(strstr(log_text, "top-secret-1"));
    assert_null(acfg_plugin.inst);
}

/* Each malformed config and a fragment its log line must contain. The key "SECRET-k" must never
 * appear in the log. */
static void acfg_malformed_rejected(void **state)
{
    static const struct {
        const char *config, *expect;
    } cases[] = {
        {"{\"ApiKeys\":[" STUDIO_DEV
         ",{},{\"Key\":\"SECRET-k\",\"Roles\":{\"READ_DOKUMENT\":true}}]}",
         "Auth.ApiKeys[1]: Key or KeyHash is required"},
        {"{\"ApiKeys\":[" STUDIO_DEV ",{\"Key\":\"x\"},{\"Key\":\"SECRET-k\","
         "\"Roles\":{\"READ_DOKUMENT\":true}}]}",
         "Auth.ApiKeys[2]: Roles.READ_DOKUMENT is not a role"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Roles\":{\"READ_DOCUMENT\":1}}]}",
         "Roles.READ_DOCUMENT must be true or false"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Roles\":[\"READ_DOCUMENT\"]}]}",
         "Roles must be an object"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Roles\":{\"READ_DOCUMENT\":true,"
         "\"read_document\":false}}]}",
         "Roles.READ_DOCUMENT is given twice"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databases\":\"testapp\"}]}",
         "Auth.ApiKeys[0]: Databases must be an array"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databases\":[\"ok\",7]}]}",
         "Databases[1] must be a string"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databases\":[\"bad name\"]}]}",
         "Databases[0] \"bad name\" is not"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databases\":[\"-lead\"]}]}", "\"-lead\" is not"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databases\":[\"\"]}]}", "Databases[0]"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databases\":[\"a23456789012345678901234567890"
         "1234567890123456789012345678901234\"]}]}",
         "Databases[0]"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databases\":[\"x.y\"]}]}", "\"x.y\" is not"},
        {"{\"ApiKeys\":[{\"Key\":\"  \"}]}", "Key must be a non-empty string"},
        {"{\"ApiKeys\":[{\"Key\":12}]}", "Key must be a non-empty string"},
        {"{\"ApiKeys\":[{\"Name\":3,\"Key\":\"SECRET-k\"}]}", "Name must be a string"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"Databse\":[\"x\"]}]}",
         "unknown member \"Databse\""},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\",\"key\":\"SECRET-k\"}]}", "given twice"},
        {"{\"ApiKeys\":[\"SECRET-k\"]}", "Auth.ApiKeys[0] must be an object"},
        {"{\"ApiKeys\":{\"Key\":\"SECRET-k\"}}", "Auth.ApiKeys must be an array"},
        {"{\"ApiKeys\":[{\"Key\":\"SECRET-k\"},{\"Key\":\" SECRET-k\"}]}",
         "Auth.ApiKeys[1] has the same key as Auth.ApiKeys[0]"},
        {"{\"RootApiKey\":\"SECRET-k\",\"ApiKeys\":[{\"Key\":\"SECRET-k\"}]}",
         "Auth.ApiKeys[0] has the same key as Auth.RootApiKey"},
        {"{\"ApiKeys\":[{\"Key\":\"root\"}]}", "same key as Auth.RootApiKey"},
        {"{\"RootApiKey\":null}", "Auth.RootApiKey must be a string"},
        {"{\"RootApiKey\":\"SECRET-k\",\"rootapikey\":\"SECRET-k\"}", "given twice"},
        {"[\"SECRET-k\"]", "Auth must be a JSON object"},
        {"{\"RootApiKey\":SECRET-k}", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ld_status st = make(&acfg_plugin, "%s", cases[i].config);
        if (st != LD_INVALID || !strstr(log_text, cases[i].expect) || strstr(log_text, "SECRET"))
            fail_msg("case %zu: status %d, log:\n%s", i, st, log_text);
        assert_null(acfg_plugin.inst);
    }
}

static void acfg_case_insensitive_config(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"rootapikey\":\"R\",\"APIKEYS\":[{\"name\":\"n\","
                                        "\"KEY\":\"k\",\"databases\":[\"db\"],"
                                        "\"roles\":{\"read_document\":true,"
                                        "\"Write_Document\":\"True\",\"add_db\":\"false\"}}]}"),
                     LD_OK);
    assert_int_equal(ask(&acfg_plugin, "R", "x", LD_ROLE_ALL), ALLOW);
    uint32_t rw = LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT;
    assert_int_equal(ask(&acfg_plugin, "k", "db", rw), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "k", "db", LD_ROLE_ADD_DB), DENY);
    unmake(&acfg_plugin);

    char h[8 + 65];
    key_hash("hk", h);
    assert_int_equal(
        make(&acfg_plugin, "{\"rootapikeyhash\":\"%s\",\"apikeys\":[{\"keyhash\":\"%s\"}]}", h, h),
        LD_INVALID); /* the same key twice, read through lowercase members */
}

static void acfg_ignores_other_plugins_keys(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"Plugins\":[\"auth-config\",\"auth-file\"],"
                                        "\"auth-file\":{\"Path\":\"keys.txt\"},"
                                        "\"SomethingElse\":[1,2,3],\"RootApiKey\":\"r\"}"),
                     LD_OK);
    assert_int_equal(ask(&acfg_plugin, "r", "db", 0), ALLOW);
}

static void acfg_null_database(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"RootApiKey\":\"r\",\"ApiKeys\":["
                                        "{\"Key\":\"scoped\",\"Databases\":[\"a\"],"
                                        "\"Roles\":{\"READ_DOCUMENT\":true}},"
                                        "{\"Key\":\"nowhere\",\"Databases\":[],"
                                        "\"Roles\":{\"READ_DOCUMENT\":true}},"
                                        "{\"Key\":\"nodbs\",\"Roles\":{\"READ_DOCUMENT\":true}},"
                                        "{\"Key\":\"star\",\"Databases\":[\"*\"]}]}"),
                     LD_OK);
    /* No database named: a known key holding the roles on at least one database. */
    assert_int_equal(ask(&acfg_plugin, "r", NULL, LD_ROLE_ALL), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "scoped", NULL, 0), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "scoped", NULL, LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "scoped", NULL, LD_ROLE_WRITE_DOCUMENT), DENY);
    assert_int_equal(ask(&acfg_plugin, "nowhere", NULL, 0), DENY);
    assert_int_equal(ask(&acfg_plugin, "nowhere", NULL, LD_ROLE_READ_DOCUMENT), DENY);
    assert_int_equal(ask(&acfg_plugin, "nodbs", NULL, 0), DENY);
    assert_int_equal(ask(&acfg_plugin, "star", NULL, 0), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "star", NULL, LD_ROLE_READ_DOCUMENT), DENY);
    assert_int_equal(ask(&acfg_plugin, "other", NULL, 0), UNKNOWN);
}

static void acfg_config_is_trimmed(void **state)
{
    assert_int_equal(make(&acfg_plugin,
                          "{\"RootApiKey\":\"\\t my-root \\n\",\"ApiKeys\":[{\"Key\":\"  padded "
                          "\\t\",\"Databases\":[\" TestApp \",\"ORDERS\"],"
                          "\"Roles\":{\"READ_DOCUMENT\":true}}]}"),
                     LD_OK);
    assert_int_equal(ask(&acfg_plugin, "padded", "testapp", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "padded", "orders", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "  padded ", "orders", 0), UNKNOWN);
    assert_int_equal(ask(&acfg_plugin, "my-root", "orders", LD_ROLE_ALL), ALLOW);
    /* Never a key in the log. */
    assert_null(strstr(log_text, "padded"));
    assert_null(strstr(log_text, "my-root"));
}

static void acfg_many_keys(void **state)
{
    /* Every entry is compared on every request; make sure the last one still matches. */
    static char config[8192];
    size_t n = (size_t)snprintf(config, sizeof config, "{\"ApiKeys\":[");
    for (int i = 0; i < 100; i++)
        n +=
            (size_t)snprintf(config + n, sizeof config - n,
                             "%s{\"Key\":\"key-%d\",\"Databases\":[\"db%d\"]}", i ? "," : "", i, i);
    snprintf(config + n, sizeof config - n, "]}");
    assert_int_equal(make(&acfg_plugin, "%s", config), LD_OK);
    assert_int_equal(ask(&acfg_plugin, "key-0", "db0", 0), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "key-99", "db99", 0), ALLOW);
    assert_int_equal(ask(&acfg_plugin, "key-99", "db98", 0), DENY);
    assert_int_equal(ask(&acfg_plugin, "key-100", "db99", 0), UNKNOWN);
}

/* ---------------------------------------------------------------------------------------------
 * auth-file
 * ------------------------------------------------------------------------------------------- */

static void write_keys(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", afile_plugin.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define KEYS_TXT                                                                                   \
    "# litedist keys\n"                                                                            \
    "\n"                                                                                           \
    "svc-42 orders,testapp READ_DOCUMENT,WRITE_DOCUMENT\n"                                         \
    "   # an indented comment\n"                                                                   \
    "admin-1\t*\tADD_DB,DELETE_DB,read_document\r\n"                                               \
    "reader  Orders  READ_DOCUMENT\n"                                                              \
    "k#hash  a  DELETE_DOCUMENT"

static void afile_descriptor(void **state)
{
    assert_string_equal(afile_plugin.desc->name, "auth-file");
    assert_int_equal(afile_plugin.desc->abi_major, LD_ABI_MAJOR);
    assert_int_equal(afile_plugin.ops->struct_size, sizeof(ld_auth_v1));
}

static void afile_decisions(void **state)
{
    write_keys("keys.txt", KEYS_TXT);
    assert_int_equal(make(&afile_plugin, "{\"Plugins\":[\"auth-config\",\"auth-file\"],"
                                         "\"auth-file\":{\"Path\":\"keys.txt\"}}"),
                     LD_OK);
    uint32_t rw = LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT;
    assert_int_equal(ask(&afile_plugin, "svc-42", "orders", rw), ALLOW);
    assert_int_equal(ask(&afile_plugin, "svc-42", "testapp", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&afile_plugin, "svc-42", "order", 0), DENY);
    assert_int_equal(ask(&afile_plugin, "svc-42", "orders2", 0), DENY);
    assert_int_equal(ask(&afile_plugin, "svc-42", "other", rw), DENY);
    assert_int_equal(ask(&afile_plugin, "svc-42", "orders", rw | LD_ROLE_DELETE_DOCUMENT), DENY);
    assert_int_equal(ask(&afile_plugin, "admin-1", "anything", LD_ROLE_ADD_DB), ALLOW);
    assert_int_equal(ask(&afile_plugin, "admin-1", "anything", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&afile_plugin, "admin-1", "anything", LD_ROLE_WRITE_DOCUMENT), DENY);
    assert_int_equal(ask(&afile_plugin, "reader", "orders", LD_ROLE_READ_DOCUMENT), ALLOW);
    assert_int_equal(ask(&afile_plugin, "k#hash", "a", LD_ROLE_DELETE_DOCUMENT), ALLOW);
    assert_int_equal(ask(&afile_plugin, "svc-4", "orders", 0), UNKNOWN);
    assert_int_equal(ask(&afile_plugin, "", "orders", 0), UNKNOWN);
    assert_int_equal(ask(&afile_plugin, "root", "orders", 0), UNKNOWN);
    for (size_t r = 0; r < NROLES; r++)
        assert_int_equal(ask(&afile_plugin, "reader", "orders", roles_each[r]),
                         roles_each[r] == LD_ROLE_READ_DOCUMENT ? ALLOW : DENY);
    /* No database named: a known key holding the roles on at least one database. */
    assert_int_equal(ask(&afile_plugin, "svc-42", NULL, rw), ALLOW);
    assert_int_equal(ask(&afile_plugin, "svc-42", NULL, LD_ROLE_ADD_DB), DENY);
    assert_int_equal(ask(&afile_plugin, "admin-1", NULL, LD_ROLE_DELETE_DB), ALLOW);
    assert_null(strstr(log_text, "svc-42"));
}

static void afile_absolute_path_and_case(void **state)
{
    write_keys("abs.txt", "abs-key * READ_DOCUMENT\n");
    assert_int_equal(
        make(&afile_plugin, "{\"AUTH-FILE\":{\"path\":\"%s/abs.txt\"}}", afile_plugin.dir), LD_OK);
    assert_int_equal(ask(&afile_plugin, "abs-key", "x", LD_ROLE_READ_DOCUMENT), ALLOW);
}

static void afile_bad_config(void **state)
{
    assert_int_equal(make(&afile_plugin, "{}"), LD_INVALID);
    assert_non_null(strstr(log_text, "Auth.auth-file.Path is required"));
    assert_int_equal(make(&afile_plugin, "{\"auth-file\":{\"Path\":7}}"), LD_INVALID);
    assert_int_equal(make(&afile_plugin, "{\"auth-file\":\"keys.txt\"}"), LD_INVALID);
    assert_int_equal(make(&afile_plugin, "{\"auth-file\":{\"Path\":\"missing.txt\"}}"), LD_IO);
    assert_non_null(strstr(log_text, "missing.txt"));
}

static void afile_malformed_lines(void **state)
{
    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"ok-1 a READ_DOCUMENT\n\nSECRET-k a\n", "line 3: expected three fields"},
        {"SECRET-k a READ_DOCUMENT extra\n", "line 1: expected three fields"},
        {"# c\nSECRET-k a READ_DOKUMENT\n", "line 2: unknown role"},
        {"SECRET-k a READ_DOCUMENT,\n", "line 1: unknown role"},
        {"SECRET-k bad.name READ_DOCUMENT\n", "line 1: a database is not"},
        {"SECRET-k a,,b READ_DOCUMENT\n", "line 1: a database is not"},
        {"SECRET-k -a READ_DOCUMENT\n", "line 1: a database is not"},
        {"SECRET-k a READ_DOCUMENT\nok-2 b ADD_DB\n SECRET-k b ADD_DB\n",
         "line 3: same key as line 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_keys("bad.txt", cases[i].text);
        ld_status st = make(&afile_plugin, "{\"auth-file\":{\"Path\":\"bad.txt\"}}");
        if (st != LD_INVALID || !strstr(log_text, cases[i].expect) || strstr(log_text, "SECRET"))
            fail_msg("case %zu: status %d, log:\n%s", i, st, log_text);
        assert_null(afile_plugin.inst);
    }
}

/* ---------------------------------------------------------------------------------------------
 * The loader fixtures: each must have exactly the defect its name promises, or the loader tests
 * that use them prove nothing.
 * ------------------------------------------------------------------------------------------- */

static const ld_plugin_descriptor *fixture(const char *name, void **dl, ld_host *host)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.so", test_plugin_dir, name);
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(*dl);
    ld_plugin_entry_fn entry = (ld_plugin_entry_fn)dlsym(*dl, LD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) return NULL;
    host_init(host, "{}", "/", path);
    const ld_plugin_descriptor *d = entry(host);
    assert_non_null(d);
    return d;
}

static void fixtures_have_their_defect(void **state)
{
    void *dl;
    ld_host host;
    const ld_plugin_descriptor *d;

    d = fixture("bad-major", &dl, &host);
    assert_int_equal(d->abi_major, LD_ABI_MAJOR + 1);
    dlclose(dl);

    d = fixture("short-struct", &dl, &host);
    assert_int_equal(d->kind, LD_PLUGIN_KIND_AUTH);
    assert_int_equal(((const ld_auth_v1 *)d->ops)->struct_size, 16);
    assert_false(LD_ABI_HAS((const ld_auth_v1 *)d->ops, ld_auth_v1, create));
    dlclose(dl);

    assert_null(fixture("no-entry", &dl, &host));
    assert_non_null(dlsym(dl, "ld_plugin_entry_misspelt"));
    dlclose(dl);

    d = fixture("wrong-kind", &dl, &host);
    assert_int_equal(d->abi_major, LD_ABI_MAJOR);
    assert_int_equal(d->kind, 99);
    dlclose(dl);

    d = fixture("half-pair", &dl, &host);
    const ld_storage_v1 *st = d->ops;
    assert_int_equal(d->kind, LD_PLUGIN_KIND_STORAGE);
    assert_int_equal(st->struct_size, sizeof(ld_storage_v1));
    assert_non_null(st->begin);
    assert_non_null(st->commit);
    assert_null(st->abort);
    dlclose(dl);

    d = fixture("missing-fn", &dl, &host);
    const ld_auth_v1 *ops = d->ops;
    assert_int_equal(d->kind, LD_PLUGIN_KIND_AUTH);
    assert_non_null(ops->create);
    assert_null(ops->authorize);
    assert_non_null(ops->destroy);
    dlclose(dl);

    void *inst = NULL;
    int32_t decision = -1;
    ld_auth_request req = {LD_ABI_HEADER_INIT(ld_auth_request), 0, "k", 1, "db", "::1"};
    d = fixture("auth-error", &dl, &host);
    ops = d->ops;
    assert_int_equal(ops->create(&host, &inst), LD_OK);
    assert_int_equal(ops->authorize(inst, &req, &decision), LD_IO);
    ops->destroy(inst);
    dlclose(dl);

    log_text[0] = '\0';
    d = fixture("auth-fail-create", &dl, &host);
    ops = d->ops;
    assert_int_equal(ops->create(&host, &inst), LD_INVALID);
    assert_non_null(strstr(log_text, "auth-fail-create"));
    dlclose(dl);
}

/* ---------------------------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------------------------- */

static int setup_acfg(void **state)
{
    return open_plugin(&acfg_plugin, auth_config_path);
}

static int teardown_acfg(void **state)
{
    if (acfg_plugin.dl) dlclose(acfg_plugin.dl);
    return 0;
}

static int setup_afile(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/auth-file.so", test_plugin_dir);
    if (open_plugin(&afile_plugin, path) != 0) return -1;
    strcpy(afile_plugin.dir, "/tmp/ld-test-auth-XXXXXX");
    return mkdtemp(afile_plugin.dir) ? 0 : -1;
}

static int teardown_afile(void **state)
{
    const char *files[] = {"keys.txt", "abs.txt", "bad.txt"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", afile_plugin.dir, files[i]);
        unlink(path);
    }
    rmdir(afile_plugin.dir);
    if (afile_plugin.dl) dlclose(afile_plugin.dl);
    return 0;
}

/* decide (ABI 1.2): the key's roles on the database in one answer; DENY outside its
 * databases; node-wide, which of the listed databases it reaches. */
static void acfg_decide_one_question(void **state)
{
    assert_int_equal(make(&acfg_plugin, "{\"RootApiKey\":\"r00t\",\"ApiKeys\":[" STUDIO_DEV "]}"),
                     LD_OK);
    const char *const dbs[] = {"orders", "other", "testapp"};
    uint8_t access[3] = {0, 0, 0};
    ld_auth_query q = {LD_ABI_HEADER_INIT(ld_auth_query),
                       .needs = LD_ROLE_READ_DOCUMENT,
                       .may_need = LD_ROLE_WRITE_DOCUMENT,
                       .db_exists = 1,
                       .id_exists = -1,
                       .api_key = "dev-123",
                       .api_key_len = 7,
                       .database = "orders",
                       .client_addr = "127.0.0.1",
                       .action = "documents.read"};
    ld_auth_answer a = {LD_ABI_HEADER_INIT(ld_auth_answer), LD_AUTH_UNKNOWN, 0, 0, NULL};
    assert_int_equal(acfg_plugin.ops->decide(acfg_plugin.inst, &q, &a), LD_OK);
    assert_int_equal(a.decision, ALLOW);
    assert_int_equal(a.granted, LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT |
                                    LD_ROLE_UPDATE_DOCUMENT | LD_ROLE_DELETE_DOCUMENT);
    q.database = "other";
    a.decision = LD_AUTH_UNKNOWN;
    assert_int_equal(acfg_plugin.ops->decide(acfg_plugin.inst, &q, &a), LD_OK);
    assert_int_equal(a.decision, DENY);
    q.database = NULL;
    q.databases = dbs;
    q.n_databases = 3;
    a = (ld_auth_answer){LD_ABI_HEADER_INIT(ld_auth_answer), LD_AUTH_UNKNOWN, 0, 0, access};
    assert_int_equal(acfg_plugin.ops->decide(acfg_plugin.inst, &q, &a), LD_OK);
    assert_int_equal(a.decision, ALLOW);
    assert_memory_equal(access, ((uint8_t[]){1, 0, 1}), 3);
    q.api_key = "nobody";
    q.api_key_len = 6;
    a.decision = -1;
    assert_int_equal(acfg_plugin.ops->decide(acfg_plugin.inst, &q, &a), LD_OK);
    assert_int_equal(a.decision, UNKNOWN);
    /* A query it cannot read (another major) fails closed. */
    q.abi_major = LD_ABI_MAJOR + 1;
    assert_int_not_equal(acfg_plugin.ops->decide(acfg_plugin.inst, &q, &a), LD_OK);
    assert_null(strstr(log_text, "dev-123"));
}

#define T(fn) cmocka_unit_test_teardown(fn, teardown_instance)

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s AUTH_CONFIG_SO TEST_PLUGIN_DIR\n", argv[0]);
        return 2;
    }
    auth_config_path = argv[1];
    test_plugin_dir = argv[2];
    if (sodium_init() < 0) return 1;

    const struct CMUnitTest acfg_tests[] = {
        T(acfg_descriptor),
        T(acfg_root_allows_everything),
        T(acfg_default_root),
        T(acfg_empty_root_disables),
        T(acfg_scoped_databases),
        T(acfg_star_allows_any_db),
        T(acfg_each_role),
        T(acfg_role_subset),
        T(acfg_unknown_and_empty_keys),
        T(acfg_bad_request_fails_closed),
        T(acfg_key_hash),
        T(acfg_key_hash_malformed),
        T(acfg_key_and_key_hash_rejected),
        T(acfg_malformed_rejected),
        T(acfg_case_insensitive_config),
        T(acfg_ignores_other_plugins_keys),
        T(acfg_null_database),
        T(acfg_config_is_trimmed),
        T(acfg_many_keys),
        T(acfg_decide_one_question),
    };
    const struct CMUnitTest afile_tests[] = {
        T(afile_descriptor), T(afile_decisions),       T(afile_absolute_path_and_case),
        T(afile_bad_config), T(afile_malformed_lines),
    };
    const struct CMUnitTest fixture_tests[] = {
        cmocka_unit_test(fixtures_have_their_defect),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("auth-config", acfg_tests, setup_acfg, teardown_acfg);
    failed += cmocka_run_group_tests_name("auth-file", afile_tests, setup_afile, teardown_afile);
    failed += cmocka_run_group_tests_name("fixtures", fixture_tests, NULL, NULL);
    return failed ? 1 : 0;
}
