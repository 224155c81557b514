/* ABI pinning: the layout of every public struct (a change here breaks every built plugin),
 * the loader's refusals of broken plugins, and that auth and storage plugins built against the
 * frozen 1.0 and 1.1 headers still load and work. argv[1] is the test-plugins directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

#include <litedist/auth.h>
#include <litedist/storage.h>

#include "auth/chain.h"
#include "plugins/loader.h"
#include "storage/storage.h"
#include "util/log.h"

#if defined(__LP64__)
/* Sizes and offsets on LP64 (x86_64, aarch64). A failing assert means the ABI changed: append
 * fields instead, or bump the major and rename the struct. */
_Static_assert(sizeof(ld_host) == 72, "ld_host layout");
_Static_assert(offsetof(ld_host, log) == 16, "ld_host.log");
_Static_assert(offsetof(ld_host, config_json) == 24, "ld_host.config_json");
_Static_assert(offsetof(ld_host, data_dir) == 32, "ld_host.data_dir");
_Static_assert(offsetof(ld_host, plugin_path) == 40, "ld_host.plugin_path");
_Static_assert(offsetof(ld_host, host_private) == 48, "ld_host.host_private");
_Static_assert(offsetof(ld_host, plugin_name) == 56, "ld_host.plugin_name (1.2)");
_Static_assert(offsetof(ld_host, settings_json) == 64, "ld_host.settings_json (1.2)");
_Static_assert(sizeof(ld_plugin_descriptor) == 40, "descriptor layout");
_Static_assert(offsetof(ld_plugin_descriptor, kind) == 12, "descriptor.kind");
_Static_assert(offsetof(ld_plugin_descriptor, name) == 16, "descriptor.name");
_Static_assert(offsetof(ld_plugin_descriptor, ops) == 32, "descriptor.ops");
_Static_assert(sizeof(ld_storage_v1) == 184, "ld_storage_v1 layout");
_Static_assert(offsetof(ld_storage_v1, create) == 16, "storage.create");
_Static_assert(offsetof(ld_storage_v1, begin) == 72, "storage.begin");
_Static_assert(offsetof(ld_storage_v1, cursor_close) == 144, "storage.cursor_close");
_Static_assert(offsetof(ld_storage_v1, cursor_last) == 152, "storage.cursor_last");
_Static_assert(offsetof(ld_storage_v1, size_bytes) == 160, "storage.size_bytes");
_Static_assert(offsetof(ld_storage_v1, location) == 168, "storage.location");
_Static_assert(offsetof(ld_storage_v1, copy) == 176, "storage.copy (1.3)");
_Static_assert(sizeof(ld_auth_request) == 48, "ld_auth_request layout");
_Static_assert(offsetof(ld_auth_request, roles) == 12, "auth_request.roles");
_Static_assert(offsetof(ld_auth_request, api_key) == 16, "auth_request.api_key");
_Static_assert(offsetof(ld_auth_request, database) == 32, "auth_request.database");
_Static_assert(offsetof(ld_auth_request, client_addr) == 40, "auth_request.client_addr");
_Static_assert(sizeof(ld_auth_v1) == 64, "ld_auth_v1 layout");
_Static_assert(offsetof(ld_auth_v1, authorize) == 24, "auth.authorize");
_Static_assert(offsetof(ld_auth_v1, wants) == 40, "auth.wants (1.2)");
_Static_assert(offsetof(ld_auth_v1, decide) == 48, "auth.decide (1.2)");
_Static_assert(offsetof(ld_auth_v1, flags) == 56, "auth.flags (1.4)");
_Static_assert(sizeof(ld_auth_query) == 80, "ld_auth_query layout (1.2)");
_Static_assert(offsetof(ld_auth_query, needs) == 12, "auth_query.needs");
_Static_assert(offsetof(ld_auth_query, db_exists) == 20, "auth_query.db_exists");
_Static_assert(offsetof(ld_auth_query, n_databases) == 28, "auth_query.n_databases");
_Static_assert(offsetof(ld_auth_query, api_key) == 32, "auth_query.api_key");
_Static_assert(offsetof(ld_auth_query, action) == 64, "auth_query.action");
_Static_assert(offsetof(ld_auth_query, databases) == 72, "auth_query.databases");
_Static_assert(sizeof(ld_auth_answer) == 32, "ld_auth_answer layout (1.2)");
_Static_assert(offsetof(ld_auth_answer, decision) == 12, "auth_answer.decision");
_Static_assert(offsetof(ld_auth_answer, granted) == 16, "auth_answer.granted");
_Static_assert(offsetof(ld_auth_answer, access) == 24, "auth_answer.access");
#endif
_Static_assert(LD_ROLE_ADD_DB == 1 && LD_ROLE_DELETE_DOCUMENT == 32, "role bits are stable");
_Static_assert(LD_AUTH_WANT_API_KEYS == 1 && LD_AUTH_WANT_ROOT_KEY == 2 &&
                   LD_AUTH_WANT_ROOT_KEY_HASH == 4,
               "wants bits are stable");
_Static_assert(LD_AUTH_ALLOW == 1 && LD_AUTH_DENY == 2 && LD_AUTH_UNKNOWN == 3, "decisions");
_Static_assert(LD_OK == 0 && LD_NOT_FOUND == 1 && LD_INTERNAL == 11, "status codes");

static const char *dir;

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s.so", dir, name);
}

/* Loads name as kind and expects a refusal whose message names the file and contains `want`. */
static void refused(const char *name, int32_t kind, const char *want)
{
    char path[4096], err[1024] = "";
    path_of(path, sizeof path, name);
    ld_plugin *p = (ld_plugin *)1;
    ld_plugin_spec spec = {path, NULL, "{}", NULL, "/tmp"};
    assert_int_not_equal(ld_plugin_load(&spec, kind, &p, err, sizeof err), LD_OK);
    assert_null(p);
    if (!strstr(err, path) || !strstr(err, want)) fail_msg("%s: unexpected message: %s", name, err);
}

static void broken_plugins_are_refused(void **state)
{
    (void)state;
    refused("bad-major", LD_PLUGIN_KIND_AUTH, "ABI 2.0, litedistd speaks 1.0");
    refused("short-struct", LD_PLUGIN_KIND_AUTH, "struct_size");
    refused("no-entry", LD_PLUGIN_KIND_AUTH, "ld_plugin_entry");
    refused("wrong-kind", LD_PLUGIN_KIND_AUTH, "is of kind 'unknown' (99)");
    refused("half-pair", LD_PLUGIN_KIND_STORAGE, "pair");
    refused("missing-fn", LD_PLUGIN_KIND_AUTH, "'authorize' is NULL");
    refused("auth-file", LD_PLUGIN_KIND_STORAGE, "is of kind 'auth'");
    refused("does-not-exist", LD_PLUGIN_KIND_AUTH, "cannot load");
}

/* One question about `roles` on an existing database (NULL: node-wide), as a route asks it:
 * ALLOW only when every role is granted, DENY when the key is known but lacks one. */
static ld_auth_result decide(ld_auth_chain *c, const char *key, const char *db, uint32_t roles)
{
    ld_auth_question q = {.key = key,
                          .key_len = strlen(key),
                          .database = db,
                          .db_exists = db ? 1 : -1,
                          .id_exists = -1,
                          .needs = roles,
                          .action = "documents.read",
                          .client_addr = "127.0.0.1"};
    uint32_t granted = 0;
    ld_auth_result res = ld_auth_chain_ask(c, &q, &granted, NULL);
    if (res == LD_AUTHZ_ALLOW && (granted & roles) != roles) return LD_AUTHZ_DENY;
    return res;
}

static void frozen_plugin_still_loads(const char *name)
{
    char path[4096], err[1024] = "";
    path_of(path, sizeof path, name);
    ld_auth_chain chain;
    char *names[] = {path};
    assert_int_equal(ld_auth_chain_init(&chain, names, 1, NULL, "{}", "/tmp", err, sizeof err),
                     LD_OK);
    assert_int_equal(decide(&chain, "frozen", "db", LD_ROLE_READ_DOCUMENT), LD_AUTHZ_ALLOW);
    assert_int_equal(decide(&chain, "frozen", "db", LD_ROLE_WRITE_DOCUMENT), LD_AUTHZ_DENY);
    assert_int_equal(decide(&chain, "other", "db", 0), LD_AUTHZ_UNKNOWN);
    ld_auth_chain_destroy(&chain);
}

static void frozen_1_0_plugin_still_loads(void **state)
{
    (void)state;
    frozen_plugin_still_loads("frozen-abi-1.0");
}

static void frozen_1_1_plugin_still_loads(void **state)
{
    (void)state;
    frozen_plugin_still_loads("frozen-abi-1.1");
}

/* The SQLite plugin built against frozen headers: it loads, and the host asks of it only what
 * its minor offers (a 1.0 build refuses LD_TXN_LAZY as a bad flag, so a lazy commit passing
 * proves the host left the flag out; location exists since 1.1). */
static void frozen_storage_still_works(const char *name, bool has_location)
{
    char path[4096], err[1024] = "", tmp[] = "/tmp/ld-abi-XXXXXX";
    path_of(path, sizeof path, name);
    assert_non_null(mkdtemp(tmp));
    ld_store s;
    if (ld_store_init(&s, path, name, "{\"Sync\": \"off\"}", tmp, err, sizeof err) != LD_OK)
        fail_msg("%s", err);
    ld_stdb *db = NULL;
    assert_int_equal(ld_store_open(&s, tmp, "frozen", &db), LD_OK);
    ld_txn t;
    assert_int_equal(ld_txn_begin_lazy(&s, db, &t), LD_OK);
    assert_int_equal(ld_txn_put(&t, "main", "k", 1, "v1", 2), LD_OK);
    assert_int_equal(ld_txn_commit(&t), LD_OK);
    assert_int_equal(ld_txn_begin(&s, db, false, &t), LD_OK);
    const void *v = NULL;
    size_t vl = 0;
    assert_int_equal(ld_txn_get(&t, "main", "k", 1, &v, &vl), LD_OK);
    assert_int_equal(vl, 2);
    assert_memory_equal(v, "v1", 2);
    ld_txn_abort(&t);
    char where[4096];
    assert_int_equal(ld_store_location(&s, db, where, sizeof where), has_location);
    if (has_location) assert_non_null(strstr(where, tmp));
    ld_store_close(&s, db);
    assert_int_equal(ld_store_drop(&s, tmp, "frozen"), LD_OK);
    ld_store_destroy(&s);
    assert_int_equal(rmdir(tmp), 0);
}

static void storage_built_against_1_0_still_works(void **state)
{
    (void)state;
    frozen_storage_still_works("storage-sqlite-abi-1.0", false);
}

static void storage_built_against_1_1_still_works(void **state)
{
    (void)state;
    frozen_storage_still_works("storage-sqlite-abi-1.1", true);
}

static void storage_built_against_1_2_still_works(void **state)
{
    (void)state;
    frozen_storage_still_works("storage-sqlite-abi-1.2", true);
}

static void frozen_1_2_plugin_still_loads(void **state)
{
    (void)state;
    frozen_plugin_still_loads("frozen-abi-1.2");
}

static void chain_fails_closed(void **state)
{
    (void)state;
    char p1[4096], p2[4096], err[1024] = "";
    path_of(p1, sizeof p1, "auth-error");
    path_of(p2, sizeof p2, "frozen-abi-1.0");
    ld_auth_chain chain;
    char *names[] = {p1, p2};
    assert_int_equal(ld_auth_chain_init(&chain, names, 2, NULL, "{}", "/tmp", err, sizeof err),
                     LD_OK);
    /* The first plugin errs: the second, which would allow, is never asked. */
    assert_int_equal(decide(&chain, "frozen", "db", LD_ROLE_READ_DOCUMENT), LD_AUTHZ_ERROR);
    ld_auth_chain_destroy(&chain);

    path_of(p1, sizeof p1, "auth-fail-create");
    char *bad[] = {p1};
    assert_int_not_equal(ld_auth_chain_init(&chain, bad, 1, NULL, "{}", "/tmp", err, sizeof err),
                         LD_OK);
    assert_non_null(strstr(err, p1));
}

/* A 1.0 plugin answers the one question through authorize, once per role: the roles it grants
 * come back as the granted set. */
static void old_plugin_gets_per_role_questions(void **state)
{
    (void)state;
    char path[4096], err[1024] = "";
    path_of(path, sizeof path, "frozen-abi-1.0");
    ld_auth_chain chain;
    char *names[] = {path};
    assert_int_equal(ld_auth_chain_init(&chain, names, 1, NULL, "{}", "/tmp", err, sizeof err),
                     LD_OK);
    ld_auth_question q = {.key = "frozen",
                          .key_len = 6,
                          .database = "db",
                          .db_exists = 1,
                          .id_exists = -1,
                          .needs = LD_ROLE_READ_DOCUMENT,
                          .may_need = LD_ROLE_WRITE_DOCUMENT | LD_ROLE_UPDATE_DOCUMENT,
                          .action = "documents.write"};
    uint32_t granted = 0;
    assert_int_equal(ld_auth_chain_ask(&chain, &q, &granted, NULL), LD_AUTHZ_ALLOW);
    assert_int_equal(granted, LD_ROLE_READ_DOCUMENT);
    ld_auth_chain_destroy(&chain);
}

static size_t count_lines(const char *file, const char *prefix)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof line, f))
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    fclose(f);
    return n;
}

static void read_file(const char *file, char *buf, size_t len)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* A 1.2 plugin is asked once per question, with everything the host knows, and its granted set
 * and access bytes come back as it gave them (masked to what was asked). */
static void new_plugin_gets_one_question(void **state)
{
    (void)state;
    char path[4096], dump[] = "/tmp/ld-probe-XXXXXX", json[8192], err[1024] = "";
    int fd = mkstemp(dump);
    assert_true(fd >= 0);
    close(fd);
    path_of(path, sizeof path, "auth-probe");
    snprintf(json, sizeof json, "{\"auth-probe\": {\"Dump\": \"%s\"}}", dump);
    ld_auth_chain chain;
    char *names[] = {path};
    assert_int_equal(ld_auth_chain_init(&chain, names, 1, NULL, json, "/tmp", err, sizeof err),
                     LD_OK);
    ld_auth_question q = {.key = "probe",
                          .key_len = 5,
                          .database = "open",
                          .db_exists = 0,
                          .id_exists = -1,
                          .needs = LD_ROLE_ADD_DB,
                          .may_need = LD_ROLE_WRITE_DOCUMENT | LD_ROLE_UPDATE_DOCUMENT,
                          .action = "documents.write"};
    uint32_t granted = 0;
    assert_int_equal(ld_auth_chain_ask(&chain, &q, &granted, NULL), LD_AUTHZ_ALLOW);
    assert_int_equal(granted, LD_ROLE_WRITE_DOCUMENT); /* READ was not asked: masked */

    const char *const dbs[] = {"closed", "open"};
    uint8_t access[2] = {7, 7};
    ld_auth_question list = {.key = "probe",
                             .key_len = 5,
                             .db_exists = -1,
                             .id_exists = -1,
                             .action = "databases.list",
                             .databases = dbs,
                             .n_databases = 2};
    assert_int_equal(ld_auth_chain_ask(&chain, &list, &granted, access), LD_AUTHZ_ALLOW);
    assert_int_equal(access[0], 0);
    assert_int_equal(access[1], 1);
    list.key = "nobody";
    list.key_len = 6;
    assert_int_equal(ld_auth_chain_ask(&chain, &list, &granted, access), LD_AUTHZ_UNKNOWN);
    assert_int_equal(access[1], 0);
    ld_auth_chain_destroy(&chain);

    assert_int_equal(count_lines(dump, "decide "), 3);
    char text[8192];
    read_file(dump, text, sizeof text);
    assert_non_null(strstr(text, "decide documents.write open needs=1 may=24 exists=0"));
    unlink(dump);
}

/* Each plugin sees `Plugins`, its own member (by configured name, else file name) and the
 * contract keys it asked for: no other plugin's member, no plain key. */
static void plugins_get_only_their_own_settings(void **state)
{
    (void)state;
    char frozen[4096], dump[] = "/tmp/ld-probe-XXXXXX", json[8192], err[1024] = "";
    int fd = mkstemp(dump);
    assert_true(fd >= 0);
    close(fd);
    path_of(frozen, sizeof frozen, "frozen-abi-1.0");
    snprintf(json, sizeof json,
             "{\"Plugins\": [\"probe\", \"%s\"], \"RootApiKey\": \"s3cret-root\", "
             "\"ApiKeys\": [{\"Key\": \"s3cret-key\", \"Databases\": [\"*\"]}], "
             "\"AUTH-PROBE\": {\"Dump\": \"%s\"}, \"frozen-abi-1.0\": {\"Other\": 1}}",
             frozen, dump);
    ld_auth_chain chain;
    char *names[] = {"probe", frozen};
    assert_int_equal(ld_auth_chain_init(&chain, names, 2, dir, json, "/tmp", err, sizeof err),
                     LD_OK);
    ld_auth_chain_destroy(&chain);
    char text[8192];
    read_file(dump, text, sizeof text);
    unlink(dump);
    if (strstr(text, "s3cret") || strstr(text, "Other") || strstr(text, "ApiKeys"))
        fail_msg("a foreign setting or secret reached the plugin:\n%s", text);
    assert_non_null(strstr(text, "name probe\n"));
    assert_non_null(strstr(text, "settings {\"Dump\":"));
    /* It asked for the root key as a hash: BLAKE2b-256 of "s3cret-root". */
    unsigned char h[32];
    char hex[65], want[100];
    crypto_generichash(h, sizeof h, (const unsigned char *)"s3cret-root", 11, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(want, sizeof want, "\"RootApiKeyHash\":\"blake2b:%s\"", hex);
    assert_non_null(strstr(text, want));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_abi TEST_PLUGIN_DIR\n");
        return 2;
    }
    dir = argv[1];
    ld_log_set_level(LD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(broken_plugins_are_refused),
        cmocka_unit_test(frozen_1_0_plugin_still_loads),
        cmocka_unit_test(frozen_1_1_plugin_still_loads),
        cmocka_unit_test(storage_built_against_1_0_still_works),
        cmocka_unit_test(storage_built_against_1_1_still_works),
        cmocka_unit_test(storage_built_against_1_2_still_works),
        cmocka_unit_test(frozen_1_2_plugin_still_loads),
        cmocka_unit_test(old_plugin_gets_per_role_questions),
        cmocka_unit_test(new_plugin_gets_one_question),
        cmocka_unit_test(plugins_get_only_their_own_settings),
        cmocka_unit_test(chain_fails_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
