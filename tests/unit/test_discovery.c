/* Unit tests for joining: the URL a node introduces itself with (repl/discovery.h) and how a
 * peer list keeps how each peer was learned (repl/peers.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "repl/discovery.h"
#include "repl/peers.h"

static void advertised_url_derived(void **state)
{
    (void)state;
    char out[512], why[300];
    assert_true(ld_discovery_advertised_url(NULL, "10.0.0.5", 1446, false, out, sizeof out, why,
                                            sizeof why));
    assert_string_equal(out, "http://10.0.0.5:1446");
    assert_true(ld_discovery_advertised_url("", "db1.example", 443, true, out, sizeof out, why,
                                            sizeof why));
    assert_string_equal(out, "https://db1.example:443");
    assert_true(ld_discovery_advertised_url(NULL, "fd00::5", 17001, false, out, sizeof out, why,
                                            sizeof why));
    assert_string_equal(out, "http://[fd00::5]:17001");
}

static void advertised_url_cannot_be_derived(void **state)
{
    (void)state;
    char out[512], why[300];
    const char *wild[] = {"0.0.0.0", "::", "", NULL};
    for (int i = 0; wild[i]; i++) {
        assert_false(ld_discovery_advertised_url(NULL, wild[i], 1446, false, out, sizeof out, why,
                                                 sizeof why));
        assert_non_null(strstr(why, "set Node.AdvertisedUrl"));
    }
    assert_false(
        ld_discovery_advertised_url(NULL, "10.0.0.5", 0, false, out, sizeof out, why, sizeof why));
}

static void advertised_url_configured(void **state)
{
    (void)state;
    char out[512], why[300];
    /* Given: it wins over the listener, normalized as a peer's BaseUrl is. */
    assert_true(ld_discovery_advertised_url("https://node-4.example:8443/ld/", "0.0.0.0", 1446,
                                            false, out, sizeof out, why, sizeof why));
    assert_string_equal(out, "https://node-4.example:8443/ld");
    assert_false(ld_discovery_advertised_url("ftp://x", "127.0.0.1", 1446, false, out, sizeof out,
                                             why, sizeof why));
    assert_non_null(strstr(why, "Node.AdvertisedUrl"));
}

static void learned_from_is_kept_and_persisted(void **state)
{
    (void)state;
    ld_peer_list l = {0};
    assert_true(ld_peer_list_upsert_from(&l, "a", "http://127.0.0.1:1", true, 1, "config"));
    assert_true(ld_peer_list_upsert(&l, "b", "http://127.0.0.1:2", true, 2));
    assert_true(ld_peer_list_upsert_from(&l, "c", "http://127.0.0.1:3", true, 3, "announce"));
    /* An update without an origin keeps the one the entry has. */
    assert_true(ld_peer_list_upsert(&l, "a", "http://127.0.0.1:9", false, 4));
    assert_string_equal(ld_peer_list_find(&l, "a")->learned, "config");
    assert_string_equal(ld_peer_list_find(&l, "b")->learned, "api");

    char dir[] = "/tmp/ld-test-peers-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/peers.json", dir);
    assert_true(ld_peer_list_save(path, &l, err, sizeof err));
    ld_peer_list back;
    assert_true(ld_peer_list_load(path, &back, err, sizeof err));
    assert_int_equal(back.n, 3);
    assert_string_equal(ld_peer_list_find(&back, "a")->learned, "config");
    assert_string_equal(ld_peer_list_find(&back, "c")->learned, "announce");
    json_t *j = ld_peer_list_json(&back);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 2), "LearnedFrom")),
                        "announce");
    json_decref(j);
    ld_peer_list_free(&back);

    /* A file written before LearnedFrom existed (or with an unknown value) reads as "api". */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[{\"NodeId\":\"x\",\"BaseUrl\":\"http://127.0.0.1:5\",\"IsActive\":true},"
          "{\"NodeId\":\"y\",\"BaseUrl\":\"http://127.0.0.1:6\",\"LearnedFrom\":\"gossip\"}]",
          f);
    fclose(f);
    assert_true(ld_peer_list_load(path, &back, err, sizeof err));
    assert_string_equal(ld_peer_list_find(&back, "x")->learned, "api");
    assert_string_equal(ld_peer_list_find(&back, "y")->learned, "api");
    ld_peer_list_free(&back);
    unlink(path);
    rmdir(dir);
    ld_peer_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(advertised_url_derived),
        cmocka_unit_test(advertised_url_cannot_be_derived),
        cmocka_unit_test(advertised_url_configured),
        cmocka_unit_test(learned_from_is_kept_and_persisted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
