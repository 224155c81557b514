/* Compaction at close of the LMDB storage plugin (argv[1], dlopen'ed): the LMDB-only rules beside
 * the conformance suite's "files shrink" case: another process holding the environment open
 * stops it, CompactAtCloseMaxMiB bounds it, and a crash's leftover copy goes at the next open. */
#include <litedist/storage.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <lmdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plugin_harness.h"

#define N_KEYS 8000u
#define VLEN   1000u

static const ld_storage_v1 *g_ops;
static char g_dir[PATH_MAX];
static ld_host g_host, g_host_nocompact;
static ld_storage *g_st, *g_st_nocompact;
static unsigned g_seq;
static int g_compacted; /* "compacted at close" log lines seen */
static int g_kept;      /* "not compacted at close: another process" lines seen */

static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
{
    (void)host;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (strstr(line, "compacted at close from")) g_compacted++;
    if (strstr(line, "not compacted at close: another process")) g_kept++;
    if (level <= LD_LOG_WARN || getenv("LD_TEST_VERBOSE")) fprintf(stderr, "  [plugin] %s\n", line);
}

typedef struct fx {
    ld_storage *st;
    ld_stdb *db;
    char name[32];
    char path[PATH_MAX + 64];
} fx;

static void key_of(char *k, size_t n, uint32_t i)
{
    snprintf(k, n, "key%08u", i);
}

/* Opens a new database in st and fills it with N_KEYS values of VLEN bytes. */
static fx *fx_filled(ld_storage *st)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->st = st;
    snprintf(f->name, sizeof f->name, "c%u", ++g_seq);
    snprintf(f->path, sizeof f->path, "%s/%s.lmdb", g_dir, f->name);
    assert_status(g_ops->open(st, g_dir, f->name, &f->db), LD_OK);
    unsigned char v[VLEN];
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(f->db, LD_TXN_WRITE, &t), LD_OK);
    for (uint32_t i = 0; i < N_KEYS; i++) {
        char k[32];
        key_of(k, sizeof k, i);
        memset(v, (int)(i & 0xff), sizeof v);
        assert_status(g_ops->put(t, "main", k, strlen(k), v, sizeof v), LD_OK);
    }
    assert_status(g_ops->commit(t), LD_OK);
    return f;
}

/* Deletes all but every tenth key: most of the file becomes free pages. */
static void fx_thin(fx *f)
{
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(f->db, LD_TXN_WRITE, &t), LD_OK);
    for (uint32_t i = 0; i < N_KEYS; i++) {
        if (i % 10 == 0) continue;
        char k[32];
        key_of(k, sizeof k, i);
        assert_status(g_ops->del(t, "main", k, strlen(k)), LD_OK);
    }
    assert_status(g_ops->commit(t), LD_OK);
}

static void fx_free(fx *f)
{
    if (f->db) g_ops->close(f->db);
    assert_status(g_ops->drop(f->st, g_dir, f->name), LD_OK);
    free(f);
}

static uint64_t data_size(const fx *f)
{
    char p[sizeof f->path + 16];
    snprintf(p, sizeof p, "%s/data.mdb", f->path);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    return (uint64_t)sb.st_size;
}

static bool exists_in(const fx *f, const char *file)
{
    char p[sizeof f->path + 64];
    snprintf(p, sizeof p, "%s/%s", f->path, file);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* The kept keys read back after a reopen. */
static void check_kept(fx *f)
{
    assert_status(g_ops->open(f->st, g_dir, f->name, &f->db), LD_OK);
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(f->db, LD_TXN_READ, &t), LD_OK);
    for (uint32_t i = 0; i < N_KEYS; i += 10) {
        char k[32];
        key_of(k, sizeof k, i);
        const void *v = NULL;
        size_t vl = 0;
        assert_status(g_ops->get(t, "main", k, strlen(k), &v, &vl), LD_OK);
        assert_int_equal(vl, VLEN);
        assert_int_equal(((const unsigned char *)v)[VLEN - 1], i & 0xff);
    }
    assert_status(g_ops->commit(t), LD_OK);
}

/* A process that has the environment open (as `litedistd backup` or mdb_copy have it) keeps
 * its file: the close leaves data.mdb alone and says why; the next close without it compacts. */
static void test_other_process_holds_it(void **state)
{
    (void)state;
    fx *f = fx_filled(g_st);
    fx_thin(f);
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: an LMDB reader of its own, through the lock file, until told to go. */
        MDB_env *env = NULL;
        char c = 'x';
        int rc = mdb_env_create(&env);
        if (rc == 0) rc = mdb_env_open(env, f->path, MDB_RDONLY, 0644);
        c = rc == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1) _exit(2);
        if (read(go[0], &c, 1) < 0) _exit(2);
        if (env) mdb_env_close(env);
        _exit(rc == 0 ? 0 : 1);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    uint64_t before = data_size(f);
    int kept = g_kept, compacted = g_compacted;
    g_ops->close(f->db);
    f->db = NULL;
    assert_int_equal(g_kept, kept + 1);
    assert_int_equal(g_compacted, compacted);
    assert_int_equal(data_size(f), before);
    c = 'g';
    assert_int_equal(write(go[1], &c, 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);

    assert_status(g_ops->open(f->st, g_dir, f->name, &f->db), LD_OK);
    g_ops->close(f->db);
    f->db = NULL;
    assert_int_equal(g_compacted, compacted + 1);
    /* Free pages gone and the leaves packed: within 1.5 x the 800 kept values. */
    uint64_t after = data_size(f);
    if (after * 2 > (uint64_t)N_KEYS / 10u * VLEN * 3u)
        fail_msg("data.mdb is %llu bytes for %u values of %u bytes (was %llu)",
                 (unsigned long long)after, N_KEYS / 10u, VLEN, (unsigned long long)before);
    assert_false(exists_in(f, "data.mdb.compact"));
    check_kept(f);
    fx_free(f);
}

/* CompactAtCloseMaxMiB 0: never compacted. */
static void test_max_zero_never(void **state)
{
    (void)state;
    fx *f = fx_filled(g_st_nocompact);
    fx_thin(f);
    uint64_t before = data_size(f);
    int compacted = g_compacted;
    g_ops->close(f->db);
    f->db = NULL;
    assert_int_equal(g_compacted, compacted);
    assert_int_equal(data_size(f), before);
    check_kept(f);
    fx_free(f);
}

/* A copy a crash left beside data.mdb (never renamed over it) is removed at the next open, and
 * data.mdb is the file it was. */
static void test_leftover_removed(void **state)
{
    (void)state;
    fx *f = fx_filled(g_st);
    g_ops->close(f->db);
    f->db = NULL;
    char p[sizeof f->path + 64];
    snprintf(p, sizeof p, "%s/data.mdb.compact", f->path);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "partial", 7), 7);
    close(fd);
    check_kept(f);
    assert_false(exists_in(f, "data.mdb.compact"));
    fx_free(f);
}

/* A database already packed (the copy the last close wrote) is not copied again (it does not
 * pay). */
static void test_not_worth_it(void **state)
{
    (void)state;
    fx *f = fx_filled(g_st);
    g_ops->close(f->db); /* a fresh load leaves its leaves about two thirds full: packed here */
    f->db = NULL;
    int compacted = g_compacted;
    uint64_t size = data_size(f);
    check_kept(f);
    g_ops->close(f->db);
    f->db = NULL;
    assert_int_equal(g_compacted, compacted);
    assert_int_equal(data_size(f), size);
    check_kept(f);
    fx_free(f);
}

/* Values rewritten smaller leave every leaf about half full and free almost no page (LMDB
 * merges a leaf only under a quarter full): the copy still pays, by the packed size, and the file
 * shrinks to about half. */
static void test_sparse_leaves_compacted(void **state)
{
    (void)state;
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->st = g_st;
    snprintf(f->name, sizeof f->name, "c%u", ++g_seq);
    snprintf(f->path, sizeof f->path, "%s/%s.lmdb", g_dir, f->name);
    assert_status(g_ops->open(f->st, g_dir, f->name, &f->db), LD_OK);
    unsigned char v[100];
    /* 30,000 x 100 B in one transaction, then each rewritten at 40 B, 500 keys per transaction:
     * each reuses the pages the ones before it freed, so few are free at the end. */
    for (uint32_t from = 0; from < 60000u; from = from < 30000u ? 30000u : from + 500u) {
        uint32_t to = from < 30000u ? 30000u : from + 500u;
        ld_sttxn *t = NULL;
        assert_status(g_ops->begin(f->db, LD_TXN_WRITE, &t), LD_OK);
        for (uint32_t j = from; j < to; j++) {
            uint32_t i = j % 30000u;
            char k[32];
            key_of(k, sizeof k, i);
            memset(v, (int)(i & 0xff), sizeof v);
            assert_status(g_ops->put(t, "main", k, strlen(k), v, j < 30000u ? sizeof v : 40),
                          LD_OK);
        }
        assert_status(g_ops->commit(t), LD_OK);
    }
    uint64_t before = data_size(f);
    int compacted = g_compacted;
    g_ops->close(f->db);
    f->db = NULL;
    assert_int_equal(g_compacted, compacted + 1);
    uint64_t after = data_size(f);
    assert_true(after * 10 <= before * 7);
    assert_status(g_ops->open(f->st, g_dir, f->name, &f->db), LD_OK);
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(f->db, LD_TXN_READ, &t), LD_OK);
    for (uint32_t i = 0; i < 30000u; i += 997) {
        char k[32];
        key_of(k, sizeof k, i);
        const void *got = NULL;
        size_t gl = 0;
        assert_status(g_ops->get(t, "main", k, strlen(k), &got, &gl), LD_OK);
        assert_int_equal(gl, 40);
        assert_int_equal(((const unsigned char *)got)[39], i & 0xff);
    }
    assert_status(g_ops->commit(t), LD_OK);
    fx_free(f);
}

static ld_storage *t_create(ld_host *h, const char *config, const char *plugin)
{
    *h = (ld_host){
        .abi_major = LD_ABI_MAJOR,
        .abi_minor = LD_ABI_MINOR,
        .struct_size = (uint32_t)sizeof(ld_host),
        .log = t_log,
        .config_json = config,
        .data_dir = g_dir,
        .plugin_path = plugin,
    };
    ld_storage *st = NULL;
    if (g_ops->create(h, &st) != LD_OK) {
        fprintf(stderr, "create with %s failed: %s\n", config, g_ops->last_error(NULL));
        return NULL;
    }
    return st;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s storage-lmdb.so\n", argv[0]);
        return 2;
    }
    if (!ld_tp_scratch_dir(g_dir, sizeof g_dir, "ld-lmdb-compact")) return 1;
    int rc = 1;
    g_host.struct_size = (uint32_t)sizeof(ld_host);
    g_host.abi_major = LD_ABI_MAJOR;
    g_host.abi_minor = LD_ABI_MINOR;
    g_host.log = t_log;
    const ld_plugin_descriptor *desc = ld_tp_load_storage(argv[1], &g_host, "lmdb");
    if (!desc) goto out;
    g_ops = desc->ops;
    g_st = t_create(&g_host, "{\"Sync\": \"off\"}", argv[1]);
    g_st_nocompact =
        t_create(&g_host_nocompact, "{\"Sync\": \"off\", \"CompactAtCloseMaxMiB\": 0}", argv[1]);
    if (g_st && g_st_nocompact) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_other_process_holds_it),  cmocka_unit_test(test_max_zero_never),
            cmocka_unit_test(test_leftover_removed),        cmocka_unit_test(test_not_worth_it),
            cmocka_unit_test(test_sparse_leaves_compacted),
        };
        rc = cmocka_run_group_tests_name("lmdb compaction at close", tests, NULL, NULL);
    }
    if (g_st) g_ops->destroy(g_st);
    if (g_st_nocompact) g_ops->destroy(g_st_nocompact);
out:
    ld_tp_remove_dir(g_dir);
    return rc;
}
