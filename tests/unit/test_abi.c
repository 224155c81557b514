/* ABI pinning: the layout of every public struct (a change here breaks every built plugin),
 * the loader's refusals of broken plugins, and that a plugin built against the frozen 1.0
 * headers still loads. argv[1] is the test-plugins directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <litedist/auth.h>
#include <litedist/storage.h>

#include "auth/chain.h"
#include "plugins/loader.h"
#include "util/log.h"

#if defined(__LP64__)
/* Sizes and offsets on LP64 (x86_64, aarch64). A failing assert means the ABI changed: append
 * fields instead, or bump the major and rename the struct. */
_Static_assert(sizeof(ld_host) == 56, "ld_host layout");
_Static_assert(offsetof(ld_host, log) == 16, "ld_host.log");
_Static_assert(offsetof(ld_host, config_json) == 24, "ld_host.config_json");
_Static_assert(offsetof(ld_host, data_dir) == 32, "ld_host.data_dir");
_Static_assert(offsetof(ld_host, plugin_path) == 40, "ld_host.plugin_path");
_Static_assert(offsetof(ld_host, host_private) == 48, "ld_host.host_private");
_Static_assert(sizeof(ld_plugin_descriptor) == 40, "descriptor layout");
_Static_assert(offsetof(ld_plugin_descriptor, kind) == 12, "descriptor.kind");
_Static_assert(offsetof(ld_plugin_descriptor, name) == 16, "descriptor.name");
_Static_assert(offsetof(ld_plugin_descriptor, ops) == 32, "descriptor.ops");
_Static_assert(sizeof(ld_storage_v1) == 176, "ld_storage_v1 layout");
_Static_assert(offsetof(ld_storage_v1, create) == 16, "storage.create");
_Static_assert(offsetof(ld_storage_v1, begin) == 72, "storage.begin");
_Static_assert(offsetof(ld_storage_v1, cursor_close) == 144, "storage.cursor_close");
_Static_assert(offsetof(ld_storage_v1, cursor_last) == 152, "storage.cursor_last");
_Static_assert(offsetof(ld_storage_v1, size_bytes) == 160, "storage.size_bytes");
_Static_assert(offsetof(ld_storage_v1, location) == 168, "storage.location");
_Static_assert(sizeof(ld_auth_request) == 48, "ld_auth_request layout");
_Static_assert(offsetof(ld_auth_request, roles) == 12, "auth_request.roles");
_Static_assert(offsetof(ld_auth_request, api_key) == 16, "auth_request.api_key");
_Static_assert(offsetof(ld_auth_request, database) == 32, "auth_request.database");
_Static_assert(offsetof(ld_auth_request, client_addr) == 40, "auth_request.client_addr");
_Static_assert(sizeof(ld_auth_v1) == 40, "ld_auth_v1 layout");
_Static_assert(offsetof(ld_auth_v1, authorize) == 24, "auth.authorize");
#endif
_Static_assert(LD_ROLE_ADD_DB == 1 && LD_ROLE_DELETE_DOCUMENT == 32, "role bits are stable");
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
    assert_int_not_equal(ld_plugin_load(path, kind, "{}", "/tmp", &p, err, sizeof err), LD_OK);
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

static void frozen_1_0_plugin_still_loads(void **state)
{
    (void)state;
    char path[4096], err[1024] = "";
    path_of(path, sizeof path, "frozen-abi-1.0");
    ld_auth_chain chain;
    char *names[] = {path};
    assert_int_equal(ld_auth_chain_init(&chain, names, 1, NULL, "{}", "/tmp", err, sizeof err),
                     LD_OK);
    assert_int_equal(ld_auth_chain_decide(&chain, "frozen", 6, "db", LD_ROLE_READ_DOCUMENT, ""),
                     LD_AUTHZ_ALLOW);
    assert_int_equal(ld_auth_chain_decide(&chain, "frozen", 6, "db", LD_ROLE_WRITE_DOCUMENT, ""),
                     LD_AUTHZ_DENY);
    assert_int_equal(ld_auth_chain_decide(&chain, "other", 5, "db", 0, ""), LD_AUTHZ_UNKNOWN);
    ld_auth_chain_destroy(&chain);
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
    assert_int_equal(ld_auth_chain_decide(&chain, "frozen", 6, "db", LD_ROLE_READ_DOCUMENT, ""),
                     LD_AUTHZ_ERROR);
    ld_auth_chain_destroy(&chain);

    path_of(p1, sizeof p1, "auth-fail-create");
    char *bad[] = {p1};
    assert_int_not_equal(ld_auth_chain_init(&chain, bad, 1, NULL, "{}", "/tmp", err, sizeof err),
                         LD_OK);
    assert_non_null(strstr(err, p1));
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
        cmocka_unit_test(chain_fails_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
