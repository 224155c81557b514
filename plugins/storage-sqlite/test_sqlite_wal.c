/* The SQLite storage plugin's WAL (argv[1], dlopen'ed) under a steady stream of commits: it must
 * start over once its frames are copied back, however busy the checkpointer thread is. */
#include <litedist/storage.h>

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plugin_harness.h"

/* The plugin's marks (sqlite_storage.c): the checkpointer wakes at 4,000 WAL pages and the
 * writer checkpoints itself past 8,000. With 4 KiB pages (and 24-byte frame headers) a WAL
 * that starts over stays near 8,000 frames: 33 MB; one that does not grows with every commit. */
#define PAGE       4096u
#define WAL_BOUND  (10000ull * (PAGE + 24u))
#define COMMITS    20000u
#define PER_COMMIT 3u
#define N_KEYS     4000u

static const ld_storage_v1 *g_ops;
static char g_dir[PATH_MAX];
static ld_host g_host;
static ld_storage *g_st;

static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
{
    (void)host;
    if (level > LD_LOG_WARN && !getenv("LD_TEST_VERBOSE")) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  [plugin] %s\n", line);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Lazy commits back to back (the everysec cache's pattern), each overwriting a few of a small
 * set of keys so that every one dirties pages the checkpointer copied a moment before. */
static void test_wal_starts_over_under_steady_commits(void **state)
{
    (void)state;
    ld_stdb *db = NULL;
    assert_status(g_ops->open(g_st, g_dir, "steady", &db), LD_OK);
    char wal[PATH_MAX + 32];
    snprintf(wal, sizeof wal, "%s/steady.db-wal", g_dir);
    unsigned char v[100];
    uint32_t x = 12345u;
    uint64_t largest = 0;
    for (uint32_t i = 0; i < COMMITS; i++) {
        ld_sttxn *t = NULL;
        assert_status(g_ops->begin(db, LD_TXN_WRITE | LD_TXN_LAZY, &t), LD_OK);
        for (uint32_t j = 0; j < PER_COMMIT; j++) {
            x = x * 1103515245u + 12345u; /* a fixed sequence: the run repeats exactly */
            char k[16];
            snprintf(k, sizeof k, "key%05u", (x >> 8) % N_KEYS);
            memset(v, (int)(i & 0xff), sizeof v);
            assert_status(g_ops->put(t, "main", k, strlen(k), v, sizeof v), LD_OK);
        }
        assert_status(g_ops->commit(t), LD_OK);
        if (i % 500 == 0) {
            uint64_t now = file_size(wal);
            if (now > largest) largest = now;
        }
    }
    uint64_t end = file_size(wal);
    if (end > largest) largest = end;
    print_message("  %u commits of %u puts: the WAL's largest size %llu bytes (bound %llu)\n",
                  COMMITS, PER_COMMIT, (unsigned long long)largest, (unsigned long long)WAL_BOUND);
    assert_true(largest > 0);
    assert_true(largest <= WAL_BOUND);
    /* Everything written reads back: the checkpoints lost nothing. */
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(db, LD_TXN_READ, &t), LD_OK);
    x = 12345u;
    for (uint32_t i = 0; i < COMMITS; i++) {
        for (uint32_t j = 0; j < PER_COMMIT; j++) {
            x = x * 1103515245u + 12345u;
            if (i < COMMITS - 1) continue;
            char k[16];
            snprintf(k, sizeof k, "key%05u", (x >> 8) % N_KEYS);
            const void *got;
            size_t gl;
            assert_status(g_ops->get(t, "main", k, strlen(k), &got, &gl), LD_OK);
            assert_int_equal(gl, sizeof v);
            assert_int_equal(((const unsigned char *)got)[0], (COMMITS - 1) & 0xff);
        }
    }
    assert_status(g_ops->commit(t), LD_OK);
    g_ops->close(db);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s storage-sqlite.so\n", argv[0]);
        return 2;
    }
    if (!ld_tp_scratch_dir(g_dir, sizeof g_dir, "ld-sqlite-wal")) return 1;
    int rc = 1;
    /* Sync full, as litedist runs it: a lazy commit then skips only its own fsync. */
    static const char config[] = "{\"Sync\": \"full\", \"PageSizeKiB\": 4}";
    g_host = (ld_host){
        .abi_major = LD_ABI_MAJOR,
        .abi_minor = LD_ABI_MINOR,
        .struct_size = (uint32_t)sizeof(ld_host),
        .log = t_log,
        .config_json = config,
        .data_dir = g_dir,
        .plugin_path = argv[1],
    };
    const ld_plugin_descriptor *desc = ld_tp_load_storage(argv[1], &g_host, "sqlite");
    if (!desc) goto out;
    g_ops = desc->ops;
    if (g_ops->create(&g_host, &g_st) != LD_OK) {
        fprintf(stderr, "create failed: %s\n", g_ops->last_error(NULL));
        goto out;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_starts_over_under_steady_commits),
    };
    rc = cmocka_run_group_tests_name("sqlite WAL", tests, NULL, NULL);
    g_ops->destroy(g_st);
    g_st = NULL;
out:
    ld_tp_remove_dir(g_dir);
    return rc;
}
