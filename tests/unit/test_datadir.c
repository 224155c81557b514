/* Unit tests for the data directory's identity and lock (core/db/datadir.c): a new directory gets
 * an incarnation and a record, a second start reads it back, another backend or node id, a bad
 * or newer record and another backend's files are refused, and the lock admits one holder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/datadir.h"

typedef struct dirs {
    char root[64];
    char db[96];
    char file[128];
} dirs;

static int setup(void **state)
{
    dirs *d = calloc(1, sizeof *d);
    if (!d) return -1;
    snprintf(d->root, sizeof d->root, "/tmp/ld-datadir-XXXXXX");
    if (!mkdtemp(d->root)) return -1;
    snprintf(d->db, sizeof d->db, "%s/databases", d->root);
    snprintf(d->file, sizeof d->file, "%s/%s", d->root, LD_IDENTITY_FILE);
    if (mkdir(d->db, 0700) != 0) return -1;
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    dirs *d = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->root);
    int rc = system(cmd);
    free(d);
    return rc == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void new_directory_is_recorded_and_read_back(void **state)
{
    dirs *d = *state;
    char err[512];
    ld_datadir a = {0};
    assert_true(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_true(a.adopting);
    assert_int_equal(strlen(a.incarnation), LD_INCARNATION_LEN);
    assert_int_not_equal(access(d->file, F_OK), 0); /* nothing written before record */
    assert_true(ld_datadir_record(&a, d->root, "sqlite", "n1", err, sizeof err));
    assert_false(a.adopting);
    assert_int_equal(access(d->file, F_OK), 0);

    ld_datadir b = {0};
    assert_true(ld_datadir_check(&b, d->root, d->db, "sqlite", "n1", 3, err, sizeof err));
    assert_false(b.adopting);
    assert_string_equal(b.incarnation, a.incarnation);
    assert_true(ld_datadir_record(&b, d->root, "sqlite", "n1", err, sizeof err)); /* no-op */

    ld_datadir c = {0};
    assert_false(ld_datadir_check(&c, d->root, d->db, "lmdb", "n1", 0, err, sizeof err));
    assert_non_null(strstr(err, "written by storage backend 'sqlite'"));
    assert_non_null(strstr(err, "configured with 'lmdb'"));
    assert_non_null(strstr(err, "docs/storage.md"));
    assert_false(ld_datadir_check(&c, d->root, d->db, "sqlite", "n2", 0, err, sizeof err));
    assert_non_null(strstr(err, "holds the data of node 'n1' and this node is 'n2'"));
}

static void bad_or_newer_records_are_refused(void **state)
{
    dirs *d = *state;
    char err[512];
    ld_datadir a = {0};
    write_text(d->file, "{\"Format\": 1, \"NodeId\": \"n1\"");
    assert_false(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_non_null(strstr(err, "cannot be read"));
    write_text(d->file, "{\"Format\": 1, \"NodeId\": \"n1\", \"Storage\": \"sqlite\", "
                        "\"Incarnation\": \"not-hex\"}");
    assert_false(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_non_null(strstr(err, "not a valid identity record"));
    write_text(d->file, "{\"Format\": 3, \"NodeId\": \"n1\", \"Storage\": \"sqlite\", "
                        "\"Incarnation\": \"0123456789abcdef0123456789abcdef\"}");
    assert_false(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_non_null(strstr(err, "newer litedistd"));
    /* A restored directory (Format 2) names its writes' origin and the backup's incarnation. */
    write_text(d->file, "{\"Format\": 2, \"NodeId\": \"n1\", \"Storage\": \"sqlite\", "
                        "\"Incarnation\": \"0123456789abcdef0123456789abcdef\", \"Origin\": "
                        "\"n1.01234567\", \"RestoredFromIncarnation\": "
                        "\"fedcba9876543210fedcba9876543210\"}");
    assert_true(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_string_equal(a.origin, "n1.01234567");
    assert_string_equal(a.restored_from, "fedcba9876543210fedcba9876543210");
    write_text(d->file, "{\"Format\": 2, \"NodeId\": \"n1\", \"Storage\": \"sqlite\", "
                        "\"Incarnation\": \"0123456789abcdef0123456789abcdef\", \"Origin\": "
                        "\"n1.01234567\"}");
    assert_false(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_non_null(strstr(err, "RestoredFromIncarnation"));
    /* Fields a later version adds are ignored. */
    write_text(d->file, "{\"Format\": 1, \"NodeId\": \"n1\", \"Storage\": \"sqlite\", "
                        "\"Incarnation\": \"0123456789abcdef0123456789abcdef\", \"Later\": 1}");
    assert_true(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_string_equal(a.incarnation, "0123456789abcdef0123456789abcdef");
}

static void another_backends_files_without_a_record_are_refused(void **state)
{
    dirs *d = *state;
    char err[512], path[160];
    snprintf(path, sizeof path, "%s/orders.lmdb", d->db);
    assert_int_equal(mkdir(path, 0700), 0);
    ld_datadir a = {0};
    assert_false(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 0, err, sizeof err));
    assert_non_null(strstr(err, "files the storage backend 'sqlite' does not use"));
    /* The backend lists a database of its own there: adopted. */
    assert_true(ld_datadir_check(&a, d->root, d->db, "sqlite", "n1", 1, err, sizeof err));
    assert_true(a.adopting);
}

static void the_lock_admits_one_holder(void **state)
{
    dirs *d = *state;
    char err[512];
    ld_datadir a = {0}, b = {0};
    assert_true(ld_datadir_lock(&a, d->root, err, sizeof err));
    /* flock belongs to the open file: a second open, even in this process, is refused. */
    assert_false(ld_datadir_lock(&b, d->root, err, sizeof err));
    assert_non_null(strstr(err, "in use by another litedistd"));
    assert_false(b.locked);
    ld_datadir_unlock(&a);
    assert_true(ld_datadir_lock(&b, d->root, err, sizeof err));
    ld_datadir_unlock(&b);
    assert_false(ld_datadir_lock(&a, "/nonexistent/ld-datadir", err, sizeof err));
    assert_non_null(strstr(err, "cannot open data directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(new_directory_is_recorded_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_or_newer_records_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(another_backends_files_without_a_record_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_lock_admits_one_holder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
