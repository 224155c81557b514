/* The data directory's identity and lock: which node, storage backend and incarnation wrote it
 * (<data>/identity.json), checked at start so another backend or another node's data is refused
 * rather than silently started empty or mixed (docs/storage.md, "The data directory's identity").
 */
#ifndef LD_DATADIR_H
#define LD_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* 128 random bits in hex. */
#define LD_INCARNATION_LEN 32

/* The file's name in the data directory, and its format version (a file of a higher version was
 * written by a newer litedistd and is refused). */
#define LD_IDENTITY_FILE    "identity.json"
#define LD_IDENTITY_VERSION 2
/* The longest Origin: a node id (names.h, LD_NODE_ID_MAX) and ".<8 hex digits>". */
#define LD_WRITER_ORIGIN_MAX 128

typedef struct ld_datadir {
    bool locked;
    int lock_fd; /* when locked: the directory itself, flock'ed */
    /* Created with the data directory, kept for its life, recorded in every database's meta
     * (database.c): a database whose record differs came from another node or another life. */
    char incarnation[LD_INCARNATION_LEN + 1];
    /* No identity file yet: a new directory, or one written before litedist kept it. Databases
     * the backend finds are adopted (stamped) and the file is written by ld_datadir_record. */
    bool adopting;
    /* Format 2, written by `litedistd restore` (docs/backup.md): the origin this node's writes
     * carry from now on (ld_db_env.origin), and the incarnation of the backup, whose databases
     * are taken over at their first open. Empty in a directory never restored. */
    char origin[LD_WRITER_ORIGIN_MAX + 1];
    char restored_from[LD_INCARNATION_LEN + 1];
} ld_datadir;

/* Locks directory dir for this process: flock on the directory itself, so no file inside it can
 * be removed to let a second process in. The lock dies with the process. False (err set) when
 * another process holds it or dir cannot be opened. */
bool ld_datadir_lock(ld_datadir *d, const char *dir, char *err, size_t errlen);

/* Reads <dir>/identity.json and checks it against this start: the storage backend (its plugin
 * name) and the node id must be the ones recorded. Without the file: a new incarnation is made;
 * when db_dir holds entries but the backend lists no database there (n_listed 0), the data is
 * another backend's and the start is refused too. False with err (naming the recipe in
 * docs/storage.md) when the start must not go on. */
bool ld_datadir_check(ld_datadir *d, const char *dir, const char *db_dir, const char *backend,
                      const char *node_id, size_t n_listed, char *err, size_t errlen);

/* Writes <dir>/identity.json atomically (a temporary file, fsync, rename, fsync of the
 * directory) when d is adopting; after the databases were stamped. */
bool ld_datadir_record(ld_datadir *d, const char *dir, const char *backend, const char *node_id,
                       char *err, size_t errlen);

void ld_datadir_unlock(ld_datadir *d);

/* Writes `rec` as <dir>/identity.json atomically (a temporary file, fsync, rename, fsync of dir
 * through dir_fd when >= 0). False with err. */
bool ld_datadir_write(const char *dir, int dir_fd, json_t *rec, char *err, size_t errlen);

/* True when s is 32 lowercase hex digits. */
bool ld_incarnation_valid(const char *s);

#endif
