/* Unit tests for name validation: databases, collections, document ids, node ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "db/names.h"

static void database_names(void **state)
{
    (void)state;
    char out[LD_DB_NAME_MAX + 1];
    assert_true(ld_db_name_normalize("  TestApp \t", out));
    assert_string_equal(out, "testapp");
    assert_true(ld_db_name_normalize("a", out));
    assert_true(ld_db_name_normalize("0db_x-y", out));
    char max[64];
    memset(max, 'a', 63);
    max[63] = '\0';
    assert_true(ld_db_name_normalize(max, out));
    char over[65];
    memset(over, 'a', 64);
    over[64] = '\0';
    assert_false(ld_db_name_normalize(over, out));
    const char *bad[] = {"", "   ", "-a", "_a", "../x", "a/b", "a b", "a.b", "é", "a\x01", NULL};
    for (int i = 0; bad[i]; i++)
        assert_false(ld_db_name_normalize(bad[i], out));
}

static bool coll(const char *s)
{
    return ld_collection_name_valid(s, strlen(s));
}

static void collection_names(void **state)
{
    (void)state;
    assert_true(coll("orders"));
    assert_true(coll("_private"));
    assert_true(coll("Orders$2024_x"));
    assert_false(coll(""));
    assert_false(coll("1abc"));
    assert_false(coll("$x"));
    assert_false(coll("a-b"));
    assert_false(coll("a b"));
    assert_false(coll("a/b"));
    assert_false(ld_collection_name_valid("a\0b", 3));
    char max[65];
    memset(max, 'c', 64);
    max[64] = '\0';
    assert_true(coll(max));
    char over[66];
    memset(over, 'c', 65);
    over[65] = '\0';
    assert_false(coll(over));
    assert_true(ld_collection_is_cache("CaChE"));
    assert_false(ld_collection_is_cache("caches"));
    assert_true(ld_collection_is_internal("_sys_x"));
    assert_true(ld_collection_is_internal("_SYS_x"));
    assert_false(ld_collection_is_internal("_sy"));
}

static bool id(const char *s)
{
    return ld_doc_id_valid(s, strlen(s));
}

static void document_ids(void **state)
{
    (void)state;
    assert_true(id("o1"));
    assert_true(id("with space"));
    assert_true(id("ünïcødé-✓-𝄞"));
    assert_true(id("../not-a-path-here"));
    assert_false(id(""));
    assert_false(id("   "));
    assert_false(id("a\nb"));
    assert_false(id("a\tb"));
    assert_false(id("\x7f"));
    assert_false(ld_doc_id_valid("a\0b", 3));
    assert_false(id("\xc3"));         /* truncated sequence */
    assert_false(id("\xc0\xaf"));     /* overlong '/' */
    assert_false(id("\xed\xa0\x80")); /* surrogate */
    assert_false(id("\xc2\x85"));     /* C1 control (NEL) */
    char max[257];
    memset(max, 'i', 256);
    max[256] = '\0';
    assert_true(id(max));
    char over[258];
    memset(over, 'i', 257);
    over[257] = '\0';
    assert_false(id(over));
}

static void node_ids(void **state)
{
    (void)state;
    assert_true(ld_node_id_valid("node-1"));
    assert_true(ld_node_id_valid("store.42:a_b"));
    assert_false(ld_node_id_valid(""));
    assert_false(ld_node_id_valid("a b"));
    assert_false(ld_node_id_valid("a/b"));
    assert_false(ld_node_id_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(database_names),
        cmocka_unit_test(collection_names),
        cmocka_unit_test(document_ids),
        cmocka_unit_test(node_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
