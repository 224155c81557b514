/* Unit tests for configuration loading: defaults, the file, environment overrides (including
 * case and nesting), flags, type errors and canonical key case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "util/log.h"

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/ld-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void defaults(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const env[] = {NULL};
    assert_true(ld_config_load(&c, NULL, env, NULL, err, sizeof err));
    assert_string_equal(c.listen_address, "127.0.0.1");
    assert_int_equal(c.port, 1446);
    assert_string_equal(c.data_dir, "./data");
    assert_string_equal(c.storage_plugin, "sqlite");
    assert_int_equal(c.n_auth_plugins, 1);
    assert_string_equal(c.auth_plugins[0], "auth-config");
    assert_string_equal(c.replication_api_key, "I_AM_ONE_OF_YOU");
    assert_null(c.node_id);
    assert_int_equal(c.max_body_bytes, 8 * 1024 * 1024);
    assert_string_equal(c.auth_json, "{}");
    ld_config_free(&c);
}

static void file_env_and_flags(void **state)
{
    (void)state;
    char *path = write_tmp("{\"node\": {\"port\": 2000, \"NodeId\": \"n1\", \"DataDirectory\": "
                           "\"/x\"}, \"Storage\": {\"Plugin\": \"lmdb\", \"Sync\": \"off\"},"
                           "\"Auth\": {\"RootApiKey\": \"r\", \"Plugins\": [\"auth-config\", "
                           "\"/p/auth-file.so\"], \"auth-file\": {\"Path\": \"k\"}}}");
    ld_config c;
    char err[256];
    char *const env[] = {"LITEDIST_Node__Port=17001", "LITEDIST_node__ListenAddress=0.0.0.0",
                         "LITEDIST_Storage__Sync=normal", "OTHER=1", NULL};
    assert_true(ld_config_load(&c, path, env, NULL, err, sizeof err));
    assert_int_equal(c.port, 17001); /* env beats the file */
    assert_string_equal(c.listen_address, "0.0.0.0");
    assert_string_equal(c.node_id, "n1");
    assert_string_equal(c.storage_plugin, "lmdb");
    assert_non_null(strstr(c.storage_json, "\"Sync\":\"normal\""));
    assert_int_equal(c.n_auth_plugins, 2);
    assert_string_equal(c.auth_plugins[1], "/p/auth-file.so");
    assert_non_null(strstr(c.auth_json, "\"auth-file\""));
    /* Keys come out in canonical case: "node"/"port" became "Node"/"Port". */
    assert_non_null(json_object_get(c.root, "Node"));
    assert_non_null(json_object_get(json_object_get(c.root, "Node"), "Port"));
    ld_config_free(&c);

    ld_config_overrides ov = {.port = 3000, .data_dir = "/flag"};
    assert_true(ld_config_load(&c, path, env, &ov, err, sizeof err));
    assert_int_equal(c.port, 3000); /* flags beat env */
    assert_string_equal(c.data_dir, "/flag");
    ld_config_free(&c);
    unlink(path);
    free(path);
}

static void type_errors_name_the_key(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const env1[] = {"LITEDIST_Node__Port=notaport", NULL};
    assert_false(ld_config_load(&c, NULL, env1, NULL, err, sizeof err));
    assert_non_null(strstr(err, "Node.Port"));
    char *const env2[] = {"LITEDIST_Node__Port=70000", NULL};
    assert_false(ld_config_load(&c, NULL, env2, NULL, err, sizeof err));
    assert_non_null(strstr(err, "Node.Port"));
    char *const env3[] = {"LITEDIST_Node__AllowDefaultKeys=maybe", NULL};
    assert_false(ld_config_load(&c, NULL, env3, NULL, err, sizeof err));
    assert_non_null(strstr(err, "AllowDefaultKeys"));
    char *const env4[] = {"LITEDIST_Node__LogLevel=loud", NULL};
    assert_false(ld_config_load(&c, NULL, env4, NULL, err, sizeof err));
    char *const env5[] = {"LITEDIST_Auth__Plugins=[]", NULL};
    assert_false(ld_config_load(&c, NULL, env5, NULL, err, sizeof err));
    assert_non_null(strstr(err, "Auth.Plugins"));
}

static void bad_files(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const env[] = {NULL};
    char *path = write_tmp("{\"Node\": {\"Port\": 1,}}");
    assert_false(ld_config_load(&c, path, env, NULL, err, sizeof err));
    assert_non_null(strstr(err, path)); /* the message names the file */
    unlink(path);
    free(path);
    path = write_tmp("[1,2]");
    assert_false(ld_config_load(&c, path, env, NULL, err, sizeof err));
    unlink(path);
    free(path);
    path = write_tmp("{\"Node\": {\"Port\": 1, \"Port\": 2}}");
    assert_false(ld_config_load(&c, path, env, NULL, err, sizeof err)); /* duplicate keys */
    unlink(path);
    free(path);
    assert_false(ld_config_load(&c, "/nonexistent/litedist.json", env, NULL, err, sizeof err));
}

/* The cache sweeper's settings: the contract's defaults, env overrides, ranges. */
static void cache_cleanup_settings(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const none[] = {NULL};
    assert_true(ld_config_load(&c, NULL, none, NULL, err, sizeof err));
    assert_int_equal(c.cache_cleanup_interval_s, 30);
    assert_int_equal(c.cache_cleanup_batch, 500);
    assert_int_equal(c.cache_cleanup_max_pages, 20);
    assert_int_equal(c.cache_cleanup_budget_ms, 50);
    ld_config_free(&c);
    char *const env[] = {"LITEDIST_Node__CacheCleanupIntervalSeconds=0",
                         "LITEDIST_Node__CacheCleanupBatchSize=2",
                         "LITEDIST_Node__CacheCleanupMaxScanPages=1",
                         "LITEDIST_Node__CacheCleanupTimeBudgetMilliseconds=10", NULL};
    assert_true(ld_config_load(&c, NULL, env, NULL, err, sizeof err));
    assert_int_equal(c.cache_cleanup_interval_s, 0); /* off */
    assert_int_equal(c.cache_cleanup_batch, 2);
    assert_int_equal(c.cache_cleanup_max_pages, 1);
    assert_int_equal(c.cache_cleanup_budget_ms, 10);
    ld_config_free(&c);
    const char *bad[] = {"LITEDIST_Node__CacheCleanupBatchSize=0",
                         "LITEDIST_Node__CacheCleanupMaxScanPages=-1",
                         "LITEDIST_Node__CacheCleanupIntervalSeconds=x",
                         "LITEDIST_Node__CacheCleanupTimeBudgetMilliseconds=0", NULL};
    for (int i = 0; bad[i]; i++) {
        char *const env1[] = {(char *)bad[i], NULL};
        assert_false(ld_config_load(&c, NULL, env1, NULL, err, sizeof err));
        assert_non_null(strstr(err, "Node.CacheCleanup"));
    }
}

/* Resp: off by default, on Node's address at 6380; each key range-checked and named. */
static void resp_settings(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const none[] = {"LITEDIST_Node__ListenAddress=0.0.0.0", NULL};
    assert_true(ld_config_load(&c, NULL, none, NULL, err, sizeof err));
    assert_false(c.resp.enabled);
    assert_string_equal(c.resp.listen_address, "0.0.0.0");
    assert_int_equal(c.resp.port, 6380);
    assert_int_equal(c.resp.max_connections, 1024);
    assert_int_equal(c.resp.idle_timeout_s, 300);
    ld_config_free(&c);
    char *const env[] = {"LITEDIST_resp__enabled=true",
                         "LITEDIST_Resp__ListenAddress=::1",
                         "LITEDIST_Resp__Port=0",
                         "LITEDIST_Resp__MaxConnections=2",
                         "LITEDIST_Resp__IdleTimeoutSeconds=0",
                         NULL};
    assert_true(ld_config_load(&c, NULL, env, NULL, err, sizeof err));
    assert_true(c.resp.enabled);
    assert_string_equal(c.resp.listen_address, "::1");
    assert_int_equal(c.resp.port, 0);
    assert_int_equal(c.resp.max_connections, 2);
    assert_int_equal(c.resp.idle_timeout_s, 0);
    ld_config_free(&c);
    const char *bad[] = {"LITEDIST_Resp__Port=65536", "LITEDIST_Resp__Enabled=1x",
                         "LITEDIST_Resp__MaxConnections=0", "LITEDIST_Resp__IdleTimeoutSeconds=-1",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        char *const env1[] = {(char *)bad[i], NULL};
        assert_false(ld_config_load(&c, NULL, env1, NULL, err, sizeof err));
        assert_non_null(strstr(err, "Resp."));
    }
}

/* Node.CacheDurability: full by default, everysec in any case, anything else named. */
static void cache_durability(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const none[] = {NULL};
    assert_true(ld_config_load(&c, NULL, none, NULL, err, sizeof err));
    assert_false(c.cache_everysec);
    ld_config_free(&c);
    char *const every[] = {"LITEDIST_Node__CacheDurability=EverySec", NULL};
    assert_true(ld_config_load(&c, NULL, every, NULL, err, sizeof err));
    assert_true(c.cache_everysec);
    ld_config_free(&c);
    char *const full[] = {"LITEDIST_Node__CacheDurability=full", NULL};
    assert_true(ld_config_load(&c, NULL, full, NULL, err, sizeof err));
    assert_false(c.cache_everysec);
    ld_config_free(&c);
    char *const bad[] = {"LITEDIST_Node__CacheDurability=always", NULL};
    assert_false(ld_config_load(&c, NULL, bad, NULL, err, sizeof err));
    assert_string_equal(err, "Node.CacheDurability must be full or everysec (got 'always')");
}

/* Node.TestClockOffsetMilliseconds: 0 by default, negative allowed, at most one day either way. */
static void test_clock_offset(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const none[] = {NULL};
    assert_true(ld_config_load(&c, NULL, none, NULL, err, sizeof err));
    assert_int_equal(c.test_clock_offset_ms, 0);
    ld_config_free(&c);
    char *const env[] = {"LITEDIST_Node__TestClockOffsetMilliseconds=-20000", NULL};
    assert_true(ld_config_load(&c, NULL, env, NULL, err, sizeof err));
    assert_true(c.test_clock_offset_ms == -20000);
    ld_config_free(&c);
    char *const far[] = {"LITEDIST_Node__TestClockOffsetMilliseconds=86400001", NULL};
    assert_false(ld_config_load(&c, NULL, far, NULL, err, sizeof err));
    assert_non_null(strstr(err, "Node.TestClockOffsetMilliseconds"));
}

/* Issue 21: indexed overrides make the arrays and objects they walk through. */
static void env_indexed_paths_create_arrays(void **state)
{
    (void)state;
    char err[256];
    json_t *root = json_object();
    assert_true(ld_config_apply_env(root, "Auth__ApiKeys__0__Key", "k0", err, sizeof err));
    assert_true(ld_config_apply_env(root, "Auth__ApiKeys__0__Roles__READ_DOCUMENT", "true", err,
                                    sizeof err));
    assert_true(ld_config_apply_env(root, "Node__SeedPeers__0__NodeId", "p1", err, sizeof err));
    assert_true(ld_config_apply_env(root, "Node__SeedPeers__1__NodeId", "p2", err, sizeof err));
    json_t *keys = json_object_get(json_object_get(root, "Auth"), "ApiKeys");
    assert_true(json_is_array(keys));
    json_t *k0 = json_array_get(keys, 0);
    assert_string_equal(json_string_value(json_object_get(k0, "Key")), "k0");
    assert_true(json_is_true(json_object_get(json_object_get(k0, "Roles"), "READ_DOCUMENT")));
    json_t *seeds = json_object_get(json_object_get(root, "Node"), "SeedPeers");
    assert_int_equal(json_array_size(seeds), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seeds, 1), "NodeId")),
                        "p2");
    json_decref(root);
}

/* Issue 21: a section or key given in two spellings is refused naming both, never merged. */
static void case_duplicates_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"Node\": {\"Port\": 1}, \"node\": {\"LogLevel\": \"info\"}}",
         "config: Node and node are one section"},
        {"{\"Node\": {\"Port\": 1, \"PORT\": 2}}", "config: Node.Port and Node.PORT are one key"},
        {"{\"Node\": {\"Tls\": {\"KeyFile\": \"a\", \"keyfile\": \"b\"}}}",
         "config: Node.Tls.KeyFile and Node.Tls.keyfile are one key"},
        {"{\"Auth\": {\"RootApiKey\": \"a\", \"rootapikey\": \"b\"}}",
         "Auth.RootApiKey and Auth.rootapikey"},
    };
    char *const env[] = {NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = write_tmp(bad[i].text);
        ld_config c;
        char err[512] = "";
        assert_false(ld_config_load(&c, path, env, NULL, err, sizeof err));
        if (!strstr(err, bad[i].needle)) fail_msg("case %zu: '%s'", i, err);
        unlink(path);
        free(path);
    }
}

static void env_paths(void **state)
{
    (void)state;
    char err[256];
    json_t *root = json_object();
    assert_true(ld_config_apply_env(root, "Node__Port", "17001", err, sizeof err));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(root, "Node"), "Port")),
                     17001);
    assert_true(ld_config_apply_env(root, "Node__NodeId", "plain text", err, sizeof err));
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "Node"), "NodeId")),
                        "plain text");
    assert_true(ld_config_apply_env(root, "Auth__ApiKeys", "[]", err, sizeof err));
    assert_true(ld_config_apply_env(root, "Auth__ApiKeys__0__Key", "k0", err, sizeof err));
    assert_true(ld_config_apply_env(root, "auth__apikeys__0__Name", "n0", err, sizeof err));
    json_t *k0 = json_array_get(json_object_get(json_object_get(root, "Auth"), "ApiKeys"), 0);
    assert_string_equal(json_string_value(json_object_get(k0, "Key")), "k0");
    assert_string_equal(json_string_value(json_object_get(k0, "Name")), "n0");
    assert_false(ld_config_apply_env(root, "Auth__ApiKeys__5__Key", "x", err, sizeof err));
    assert_false(ld_config_apply_env(root, "Node____Port", "1", err, sizeof err));
    json_decref(root);
}

/* Found by fuzz_config (tests/fuzz/corpus/config/crash-env-not-utf8): an environment name that
 * is not UTF-8 made jansson refuse the key and free the object the walk then went into. */
static void env_names_not_utf8(void **state)
{
    (void)state;
    char err[256] = "";
    json_t *root = json_object();
    assert_false(ld_config_apply_env(root, "Auth_\xe4_ApiKeys__0__Key", "x", err, sizeof err));
    assert_non_null(strstr(err, "not a valid key"));
    assert_false(ld_config_apply_env(root, "Node__Po\xffrt", "1", err, sizeof err));
    assert_null(json_object_get(json_object_get(root, "Node"), "Po\xffrt"));
    /* A value that is neither JSON nor UTF-8 is refused with a message too (it was refused
     * with none: crash-env-value-not-utf8). */
    err[0] = '\0';
    assert_false(ld_config_apply_env(root, "Node__NodeId", "\"\xec\xec", err, sizeof err));
    assert_non_null(strstr(err, "neither JSON nor UTF-8"));
    char *const env[] = {"LITEDIST_Storage_\xe4_Sync=off", NULL};
    ld_config c;
    assert_false(ld_config_load(&c, NULL, env, NULL, err, sizeof err));
    json_decref(root);
}

static void studio_section(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const none[] = {NULL};
    assert_true(ld_config_load(&c, NULL, none, NULL, err, sizeof err));
    assert_null(c.studio_root); /* found beside the binary or in the install dir */
    assert_int_equal(c.n_cors_origins, 0);
    ld_config_free(&c);

    char *path = write_tmp("{\"studio\": {\"root\": \"/srv/studio\", \"CorsOrigins\": "
                           "[\"https://a.example\", \"http://localhost:5173\"]}}");
    char *const env[] = {"LITEDIST_Studio__Root=/opt/studio", NULL};
    assert_true(ld_config_load(&c, path, none, NULL, err, sizeof err));
    assert_string_equal(c.studio_root, "/srv/studio");
    assert_int_equal(c.n_cors_origins, 2);
    assert_string_equal(c.cors_origins[1], "http://localhost:5173");
    ld_config_free(&c);
    assert_true(ld_config_load(&c, path, env, NULL, err, sizeof err));
    assert_string_equal(c.studio_root, "/opt/studio");
    ld_config_free(&c);
    unlink(path);
    free(path);
}

static void tls_section(void **state)
{
    (void)state;
    ld_config c;
    char err[256];
    char *const none[] = {NULL};
    assert_true(ld_config_load(&c, NULL, none, NULL, err, sizeof err));
    assert_null(c.tls.certificate_file); /* plain HTTP by default */
    assert_null(c.tls.peer_ca_file);
    ld_config_free(&c);

    /* Any case in the file; env overrides and adds keys like everywhere else. */
    char *path = write_tmp("{\"Node\": {\"tls\": {\"certificatefile\": \"/c/cert.pem\", "
                           "\"KeyFile\": \"/c/key.pem\"}}}");
    char *const env[] = {"LITEDIST_Node__Tls__KeyFile=/env/key.pem",
                         "LITEDIST_Node__Tls__ClientCaFile=/env/ca.pem",
                         "LITEDIST_Node__Tls__PeerCaFile=/env/peers.pem", NULL};
    assert_true(ld_config_load(&c, path, env, NULL, err, sizeof err));
    assert_string_equal(c.tls.certificate_file, "/c/cert.pem");
    assert_string_equal(c.tls.key_file, "/env/key.pem");
    assert_string_equal(c.tls.client_ca_file, "/env/ca.pem");
    assert_string_equal(c.tls.peer_ca_file, "/env/peers.pem");
    ld_config_free(&c);
    unlink(path);
    free(path);

    /* Only the CA for https:// peers: a plain HTTP node that dials TLS peers. */
    char *const peers_only[] = {"LITEDIST_Node__Tls__PeerCaFile=/p.pem", NULL};
    assert_true(ld_config_load(&c, NULL, peers_only, NULL, err, sizeof err));
    assert_null(c.tls.certificate_file);
    assert_string_equal(c.tls.peer_ca_file, "/p.pem");
    ld_config_free(&c);

    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"Node\": {\"Tls\": \"on\"}}", "Node.Tls must be an object"},
        {"{\"Node\": {\"Tls\": {\"CertificateFile\": \"/c.pem\"}}}", "both CertificateFile"},
        {"{\"Node\": {\"Tls\": {\"KeyFile\": \"/k.pem\"}}}", "got only KeyFile"},
        {"{\"Node\": {\"Tls\": {\"ClientCaFile\": \"/ca.pem\"}}}", "ClientCaFile needs"},
        {"{\"Node\": {\"Tls\": {\"PeerCaFile\": 7.5}}}", "Node.Tls.PeerCaFile must be"},
        {"{\"Node\": {\"Tls\": {\"CertificateFile\": \"\", \"KeyFile\": \"/k\"}}}",
         "CertificateFile is empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = write_tmp(bad[i].text);
        assert_false(ld_config_load(&c, path, none, NULL, err, sizeof err));
        if (!strstr(err, bad[i].needle)) fail_msg("case %zu: '%s'", i, err);
        unlink(path);
        free(path);
    }
}

int main(void)
{
    ld_log_set_level(LD_LOG_ERROR); /* the warnings for unknown keys are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(file_env_and_flags),
        cmocka_unit_test(type_errors_name_the_key),
        cmocka_unit_test(bad_files),
        cmocka_unit_test(env_paths),
        cmocka_unit_test(env_indexed_paths_create_arrays),
        cmocka_unit_test(case_duplicates_refused),
        cmocka_unit_test(env_names_not_utf8),
        cmocka_unit_test(cache_cleanup_settings),
        cmocka_unit_test(resp_settings),
        cmocka_unit_test(cache_durability),
        cmocka_unit_test(test_clock_offset),
        cmocka_unit_test(studio_section),
        cmocka_unit_test(tls_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
