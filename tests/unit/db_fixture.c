/* The unit tests' database fixture (see db_fixture.h). */
#include "db_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>

#include <cmocka.h>

static void on_complete(void *ctx, ld_wjob *jobs)
{
    ld_tdb *f = ctx;
    pthread_mutex_lock(&f->mu);
    for (ld_wjob *j = jobs, *next; j; j = next) {
        next = j->next;
        f->completed++;
        if (f->free_jobs) ld_wjob_free(j);
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int ld_tdb_setup(void **state, const char *plugin, const char *prefix, bool free_jobs)
{
    ld_tdb *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->free_jobs = free_jobs;
    snprintf(f->dir, sizeof f->dir, "/tmp/ld-test-%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(f->dir));
    char err[256];
    if (ld_store_init(&f->store, plugin, "test-storage", "{\"Sync\": \"off\"}", f->dir, err,
                      sizeof err) != LD_OK)
        fail_msg("%s", err);
    ld_hlc_init(&f->clock, NULL);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->env = (ld_db_env){.store = &f->store,
                         .clock = &f->clock,
                         .node_id = "n1",
                         .dir = f->dir,
                         .writer_batch_max = 100,
                         .complete = on_complete,
                         .complete_ctx = f};
    assert_int_equal(ld_db_open(&f->env, "t", &f->db), LD_OK);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int ld_tdb_teardown(void **state)
{
    ld_tdb *f = *state;
    assert_int_equal(ld_db_close(f->db, true), LD_OK);
    ld_store_destroy(&f->store);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

void ld_tdb_wait(ld_tdb *f, int n)
{
    pthread_mutex_lock(&f->mu);
    while (f->completed < n)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

/* Submits j and waits for the writer to hand it back. */
static void submit_wait(ld_tdb *f, ld_wjob *j)
{
    pthread_mutex_lock(&f->mu);
    int want = f->completed + 1;
    pthread_mutex_unlock(&f->mu);
    ld_writer_submit(f->db->writer, j);
    ld_tdb_wait(f, want);
}

void ld_tdb_run(ld_tdb *f, ld_wapply_fn fn, void *ctx)
{
    ld_wjob *j = ld_wjob_custom(fn, NULL, NULL);
    assert_non_null(j);
    j->ctx = ctx;
    submit_wait(f, j);
}

void ld_tdb_write(ld_tdb *f, const char *coll, const char *id, const char *json)
{
    ld_wjob *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->kind = json ? LD_W_PUT : LD_W_DELETE;
    j->collection = strdup(coll);
    j->id = strdup(id);
    if (json) {
        j->json = strdup(json);
        j->json_len = strlen(json);
    }
    j->may_create = j->may_update = true;
    submit_wait(f, j);
    if (!f->free_jobs) ld_wjob_free(j);
}
