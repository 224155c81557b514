/* The core's only door to a storage plugin: wrappers that check, log and count every call
 * (docs/architecture.md §3), so no other module touches the plugin's function table. */
#ifndef LD_STORAGE_WRAP_H
#define LD_STORAGE_WRAP_H

#include <stdbool.h>
#include <stdint.h>

#include <litedist/storage.h>

#include "../plugins/loader.h"

typedef struct ld_store {
    ld_plugin *plugin;        /* owned */
    const ld_storage_v1 *ops; /* the plugin's table */
    ld_storage *inst;         /* the plugin instance; owned through ops->destroy */
} ld_store;

struct ld_keylog;

/* A transaction in progress: a value type, no allocation on the core side. */
typedef struct ld_txn {
    ld_store *store;
    ld_sttxn *t;
    struct ld_keylog *track; /* notes the keys put or deleted in track_space (ld_txn_track) */
    const char *track_space;
} ld_txn;

typedef struct ld_cursor {
    ld_store *store;
    ld_stcursor *c;
} ld_cursor;

/* Loads the storage plugin at `path`, configured as `name` (Storage.Plugin; NULL: the file's
 * base name), with the Storage section config_json, and creates its instance. */
ld_status ld_store_init(ld_store *s, const char *path, const char *name, const char *config_json,
                        const char *data_dir, char *err, size_t errlen);
void ld_store_destroy(ld_store *s);

const char *ld_status_str(ld_status st);

ld_status ld_store_open(ld_store *s, const char *dir, const char *name, ld_stdb **out);
void ld_store_close(ld_store *s, ld_stdb *db);
ld_status ld_store_drop(ld_store *s, const char *dir, const char *name);
ld_status ld_store_list(ld_store *s, const char *dir, int (*cb)(void *ctx, const char *name),
                        void *ctx);
/* Bytes on disk, or 0 when the plugin cannot tell. */
uint64_t ld_store_size(ld_store *s, ld_stdb *db);
/* The file or directory holding db, into buf; false when the plugin cannot tell (ABI < 1.1). */
bool ld_store_location(ld_store *s, ld_stdb *db, char *buf, size_t buflen);

/* Whether the plugin offers the online copy (ABI 1.3 `copy`). */
bool ld_store_can_copy(const ld_store *s);
/* A consistent copy of database `name` under dir into dest_dir (storage.h `copy`);
 * LD_UNSUPPORTED when the plugin has none. */
ld_status ld_store_copy(ld_store *s, const char *dir, const char *name, const char *dest_dir);

/* Whether the plugin takes LD_TXN_LAZY (ABI 1.1 or later); older ones commit every write
 * durably, and ld_txn_begin_lazy falls back to that. */
bool ld_store_can_lazy(const ld_store *s);

ld_status ld_txn_begin(ld_store *s, ld_stdb *db, bool write, ld_txn *out);
/* A write transaction whose durability may wait for the next durable one (LD_TXN_LAZY), or an
 * ordinary one when the plugin predates ABI 1.1. */
ld_status ld_txn_begin_lazy(ld_store *s, ld_stdb *db, ld_txn *out);
/* From now on, notes in log every key put or deleted in `space` (a write transaction's; the
 * caller owns log and reads it after the commit). */
void ld_txn_track(ld_txn *t, const char *space, struct ld_keylog *log);
ld_status ld_txn_commit(ld_txn *t);
void ld_txn_abort(ld_txn *t);
ld_status ld_txn_get(ld_txn *t, const char *space, const void *key, size_t klen, const void **val,
                     size_t *vlen);
ld_status ld_txn_put(ld_txn *t, const char *space, const void *key, size_t klen, const void *val,
                     size_t vlen);
ld_status ld_txn_del(ld_txn *t, const char *space, const void *key, size_t klen);

ld_status ld_cursor_open(ld_txn *t, const char *space, ld_cursor *out);
ld_status ld_cursor_seek(ld_cursor *c, const void *key, size_t klen, const void **k, size_t *kl,
                         const void **v, size_t *vl);
ld_status ld_cursor_next(ld_cursor *c, const void **k, size_t *kl, const void **v, size_t *vl);
void ld_cursor_close(ld_cursor *c);

#endif
