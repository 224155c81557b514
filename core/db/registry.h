/* The registry of open logical databases: name -> ld_db, reference counted so a database being
 * deleted closes only after its last in-flight request. Safe to call from several threads. */
#ifndef LD_REGISTRY_H
#define LD_REGISTRY_H

#include <pthread.h>
#include <stddef.h>

#include "database.h"

typedef struct ld_registry {
    pthread_mutex_t mu;
    ld_db_env *env;
    ld_db **dbs; /* sorted by name */
    size_t n, cap;
    ld_db **dropping; /* deleted, waiting for their last reference */
    size_t n_dropping, cap_dropping;
} ld_registry;

/* Opens every database the storage plugin finds in env->dir. */
ld_status ld_registry_init(ld_registry *r, ld_db_env *env);

/* Closes every database (each writer finishes its queue first). */
void ld_registry_close_all(ld_registry *r);

/* The open database `name` with a reference taken, or NULL when it does not exist. */
ld_db *ld_registry_get(ld_registry *r, const char *name);

/* Like get, creating the database when absent. LD_BUSY while a deleted database of that name
 * is still closing. */
ld_status ld_registry_get_or_create(ld_registry *r, const char *name, ld_db **out);

/* Drops a reference taken by get/get_or_create. */
void ld_registry_release(ld_registry *r, ld_db *db);

/* Deletes database `name`: it disappears from the registry at once; its files are removed when
 * its last reference goes. LD_NOT_FOUND when it does not exist. */
ld_status ld_registry_drop(ld_registry *r, const char *name);

/* A malloc'd array of malloc'd names, sorted; free with ld_registry_names_free. */
char **ld_registry_names(ld_registry *r, size_t *n);
void ld_registry_names_free(char **names, size_t n);
size_t ld_registry_count(ld_registry *r);

#endif
