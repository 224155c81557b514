/* A database on a temporary directory, on a real storage plugin, for the unit tests that drive
 * its writer (test_db_writer.c, test_changes_read.c, test_oplog_iter.c). */
#ifndef LD_TEST_DB_FIXTURE_H
#define LD_TEST_DB_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>

#include "db/database.h"
#include "db/writer.h"
#include "storage/storage.h"

typedef struct ld_tdb {
    char dir[64];
    ld_store store;
    ld_hlc clock;
    ld_db_env env;
    ld_db *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int completed;  /* jobs handed back by the writer */
    bool free_jobs; /* completions free the jobs (a test that looks at them after frees them) */
} ld_tdb;

/* cmocka setup: opens database "t" of node "n1" with plugin `plugin` (Sync off) in a new
 * directory under /tmp named after `prefix`, into *state. */
int ld_tdb_setup(void **state, const char *plugin, const char *prefix, bool free_jobs);

/* cmocka teardown: closes the database and removes its directory. */
int ld_tdb_teardown(void **state);

/* Waits until the writer has handed back n jobs in all. */
void ld_tdb_wait(ld_tdb *f, int n);

/* Runs fn (with job->ctx = ctx) as one writer transaction and waits for its commit. */
void ld_tdb_run(ld_tdb *f, ld_wapply_fn fn, void *ctx);

/* Writes coll/id (json NULL: a delete) and waits for its commit. */
void ld_tdb_write(ld_tdb *f, const char *coll, const char *id, const char *json);

#endif
