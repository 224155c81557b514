/* Name -> open database, with reference counts (see registry.h). */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "../util/log.h"

/* Binary search; returns the index of name or where it would go. */
static size_t find(ld_registry *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->dbs[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool insert_at(ld_registry *r, size_t i, ld_db *db)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        ld_db **d = realloc(r->dbs, cap * sizeof *d);
        if (!d) return false;
        r->dbs = d;
        r->cap = cap;
    }
    memmove(&r->dbs[i + 1], &r->dbs[i], (r->n - i) * sizeof *r->dbs);
    r->dbs[i] = db;
    r->n++;
    return true;
}

typedef struct open_ctx {
    ld_registry *r;
    ld_status st;
} open_ctx;

static int open_one(void *ctx, const char *name)
{
    open_ctx *oc = ctx;
    ld_db *db;
    bool found;
    char norm[LD_DB_NAME_MAX + 1];
    if (!ld_db_name_normalize(name, norm) || strcmp(norm, name) != 0) return 0;
    size_t i = find(oc->r, name, &found);
    if (found) return 0;
    oc->st = ld_db_open(oc->r->env, name, &db);
    if (oc->st != LD_OK) {
        ld_log(LD_LOG_ERROR, name, "cannot open database: %s", ld_status_str(oc->st));
        return 1;
    }
    db->refs = 1;
    if (!insert_at(oc->r, i, db)) {
        ld_db_close(db, false);
        oc->st = LD_NOMEM;
        return 1;
    }
    return 0;
}

ld_status ld_registry_init(ld_registry *r, ld_db_env *env)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->env = env;
    open_ctx oc = {r, LD_OK};
    ld_status st = ld_store_list(env->store, env->dir, open_one, &oc);
    if (st == LD_OK) st = oc.st;
    return st;
}

void ld_registry_close_all(ld_registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        ld_db_close(r->dbs[i], false);
    for (size_t i = 0; i < r->n_dropping; i++)
        ld_db_close(r->dropping[i], true);
    free(r->dbs);
    free(r->dropping);
    pthread_mutex_destroy(&r->mu);
    memset(r, 0, sizeof *r);
}

ld_db *ld_registry_get(ld_registry *r, const char *name)
{
    bool found;
    pthread_mutex_lock(&r->mu);
    size_t i = find(r, name, &found);
    ld_db *db = found ? r->dbs[i] : NULL;
    if (db) db->refs++;
    pthread_mutex_unlock(&r->mu);
    return db;
}

ld_status ld_registry_get_or_create(ld_registry *r, const char *name, ld_db **out)
{
    bool found;
    ld_status st = LD_OK;
    pthread_mutex_lock(&r->mu);
    size_t i = find(r, name, &found);
    if (found) {
        *out = r->dbs[i];
        (*out)->refs++;
        goto done;
    }
    for (size_t k = 0; k < r->n_dropping; k++)
        if (strcmp(r->dropping[k]->name, name) == 0) {
            st = LD_BUSY;
            goto done;
        }
    /* Opening under the lock keeps two requests from creating the same database twice; it is
     * a one-time cost per database. */
    st = ld_db_open(r->env, name, out);
    if (st != LD_OK) goto done;
    (*out)->refs = 2; /* the registry's and the caller's */
    if (!insert_at(r, i, *out)) {
        ld_db_close(*out, true);
        st = LD_NOMEM;
        goto done;
    }
    ld_log(LD_LOG_INFO, name, "database created");
done:
    pthread_mutex_unlock(&r->mu);
    return st;
}

void ld_registry_release(ld_registry *r, ld_db *db)
{
    bool close_now = false;
    pthread_mutex_lock(&r->mu);
    if (--db->refs == 0 && db->dropped) {
        close_now = true;
        for (size_t k = 0; k < r->n_dropping; k++)
            if (r->dropping[k] == db) {
                r->dropping[k] = r->dropping[--r->n_dropping];
                break;
            }
    }
    pthread_mutex_unlock(&r->mu);
    if (close_now) {
        char name[LD_DB_NAME_MAX + 1];
        memcpy(name, db->name, sizeof name);
        ld_status st = ld_db_close(db, true);
        if (st != LD_OK && st != LD_NOT_FOUND)
            ld_log(LD_LOG_ERROR, name, "removing the database files failed: %s", ld_status_str(st));
        else
            ld_log(LD_LOG_INFO, name, "database deleted");
    }
}

ld_status ld_registry_drop(ld_registry *r, const char *name)
{
    bool found;
    pthread_mutex_lock(&r->mu);
    size_t i = find(r, name, &found);
    if (!found) {
        pthread_mutex_unlock(&r->mu);
        return LD_NOT_FOUND;
    }
    ld_db *db = r->dbs[i];
    if (r->n_dropping == r->cap_dropping) {
        size_t cap = r->cap_dropping ? r->cap_dropping * 2 : 4;
        ld_db **d = realloc(r->dropping, cap * sizeof *d);
        if (!d) {
            pthread_mutex_unlock(&r->mu);
            return LD_NOMEM;
        }
        r->dropping = d;
        r->cap_dropping = cap;
    }
    memmove(&r->dbs[i], &r->dbs[i + 1], (r->n - i - 1) * sizeof *r->dbs);
    r->n--;
    db->dropped = true;
    r->dropping[r->n_dropping++] = db;
    pthread_mutex_unlock(&r->mu);
    ld_registry_release(r, db); /* the registry's own reference */
    return LD_OK;
}

char **ld_registry_names(ld_registry *r, size_t *n)
{
    pthread_mutex_lock(&r->mu);
    char **names = calloc(r->n ? r->n : 1, sizeof *names);
    size_t k = 0;
    if (names)
        for (; k < r->n; k++)
            if (!(names[k] = strdup(r->dbs[k]->name))) break;
    pthread_mutex_unlock(&r->mu);
    if (names && k < r->n) {
        ld_registry_names_free(names, k);
        names = NULL;
        k = 0;
    }
    *n = k;
    return names;
}

void ld_registry_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

size_t ld_registry_count(ld_registry *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}
