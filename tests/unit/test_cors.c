/* Unit tests for CORS origins: parsing and normalization, the localhost default of an empty
 * Studio.CorsOrigins, exact matching of a configured list, and the start-up check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/cors.h"

static void normalizes_origins(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"http://localhost:5173", "http://localhost:5173"},
        {"HTTP://LocalHost:5173/", "http://localhost:5173"},
        {"https://studio.example.com:443", "https://studio.example.com"},
        {"http://studio.example.com:80", "http://studio.example.com"},
        {"http://studio.example.com:443", "http://studio.example.com:443"},
        {"http://[::1]:8080", "http://[::1]:8080"},
        {"https://10.0.0.5:01446", "https://10.0.0.5:1446"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[LD_ORIGIN_MAX];
        assert_true(ld_cors_origin_normalize(cases[i][0], out, sizeof out));
        assert_string_equal(out, cases[i][1]);
    }
}

static void refuses_what_is_not_an_origin(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "null",
        "localhost:5173",
        "ftp://localhost",
        "http://",
        "http://:80",
        "http://localhost:",
        "http://localhost:0",
        "http://localhost:65536",
        "http://localhost:123456",
        "http://localhost/path",
        "http://localhost//",
        "http://user@localhost",
        "http://localhost?x=1",
        "http://localhost#x",
        "http://local host",
        "http://localhost http://other",
        "http://[::1",
        "http://[]",
        "http://localhost:80a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[LD_ORIGIN_MAX];
        if (ld_cors_origin_normalize(bad[i], out, sizeof out)) fail_msg("accepted '%s'", bad[i]);
    }
    char tiny[8];
    assert_false(ld_cors_origin_normalize("http://localhost", tiny, sizeof tiny));
}

static void empty_list_allows_localhost_only(void **state)
{
    (void)state;
    static const char *const yes[] = {"http://localhost",       "http://localhost:5173",
                                      "https://localhost:8443", "http://127.0.0.1:1",
                                      "http://LOCALHOST:3000",  "https://127.0.0.1"};
    static const char *const no[] = {
        "http://localhost.evil.com",
        "http://evil.com/localhost",
        "http://127.0.0.1.nip.io",
        "http://127.0.0.2",
        "http://[::1]:5173",
        "http://evil-localhost",
        "null",
        "file://",
        "http://localhost:99999",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!ld_cors_origin_allowed(NULL, 0, yes[i])) fail_msg("refused '%s'", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (ld_cors_origin_allowed(NULL, 0, no[i])) fail_msg("allowed '%s'", no[i]);
    assert_false(ld_cors_origin_allowed(NULL, 0, NULL));
}

static void configured_list_is_exact(void **state)
{
    (void)state;
    char *list[] = {"https://studio.example.com/", "http://localhost:5173"};
    assert_true(ld_cors_origin_allowed(list, 2, "https://studio.example.com"));
    assert_true(ld_cors_origin_allowed(list, 2, "https://studio.example.com:443"));
    assert_true(ld_cors_origin_allowed(list, 2, "http://localhost:5173"));
    /* A list replaces the localhost default: other ports and hosts are refused. */
    assert_false(ld_cors_origin_allowed(list, 2, "http://localhost:5174"));
    assert_false(ld_cors_origin_allowed(list, 2, "http://127.0.0.1:5173"));
    assert_false(ld_cors_origin_allowed(list, 2, "http://studio.example.com"));
    assert_false(ld_cors_origin_allowed(list, 2, "https://evil.studio.example.com"));
    assert_false(ld_cors_origin_allowed(list, 2, "https://studio.example.com.evil.com"));
}

static void config_check_names_the_entry(void **state)
{
    (void)state;
    char err[256] = "";
    char *good[] = {"https://a.example", "http://localhost:1"};
    assert_true(ld_cors_check_config(good, 2, err, sizeof err));
    char *bad[] = {"https://a.example", "https://b.example/app"};
    assert_false(ld_cors_check_config(bad, 2, err, sizeof err));
    assert_non_null(strstr(err, "Studio.CorsOrigins[1]"));
    assert_non_null(strstr(err, "https://b.example/app"));
    assert_true(ld_cors_check_config(NULL, 0, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normalizes_origins),
        cmocka_unit_test(refuses_what_is_not_an_origin),
        cmocka_unit_test(empty_list_allows_localhost_only),
        cmocka_unit_test(configured_list_is_exact),
        cmocka_unit_test(config_check_names_the_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
