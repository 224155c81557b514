/* Wrappers around the storage plugin's function table: every core call goes through here, so
 * errors are logged with the plugin's own text in one place. */
#include "storage.h"

#include <stdio.h>
#include <string.h>

#include "../util/keylog.h"
#include "../util/log.h"

const char *ld_status_str(ld_status st)
{
    switch (st) {
    case LD_OK:
        return "ok";
    case LD_NOT_FOUND:
        return "not found";
    case LD_EXISTS:
        return "exists";
    case LD_INVALID:
        return "invalid argument";
    case LD_IO:
        return "I/O error";
    case LD_NOMEM:
        return "out of memory";
    case LD_CORRUPT:
        return "corrupt data";
    case LD_BUSY:
        return "busy";
    case LD_UNSUPPORTED:
        return "unsupported";
    case LD_FULL:
        return "storage full";
    case LD_DENIED:
        return "permission denied";
    case LD_INTERNAL:
        return "internal error";
    default:
        return "unknown status";
    }
}

/* Logs a failed call with the plugin's detail; NOT_FOUND is an answer, not a failure. A status
 * the host does not know is a failure like LD_INTERNAL (plugin.h), logged with its number. */
static ld_status check(ld_store *s, ld_status st, const char *what)
{
    if (st < LD_OK || st > LD_INTERNAL)
        ld_log(LD_LOG_ERROR, "storage", "%s failed: unknown status %d (%s)", what, (int)st,
               s->ops->last_error(s->inst));
    else if (st != LD_OK && st != LD_NOT_FOUND)
        ld_log(LD_LOG_ERROR, "storage", "%s failed: %s (%s)", what, ld_status_str(st),
               s->ops->last_error(s->inst));
    return st;
}

ld_status ld_store_init(ld_store *s, const char *path, const char *name, const char *config_json,
                        const char *data_dir, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    ld_plugin_spec spec = {path, name, config_json, config_json, data_dir};
    ld_status st = ld_plugin_load(&spec, LD_PLUGIN_KIND_STORAGE, &s->plugin, err, errlen);
    if (st != LD_OK) return st;
    s->ops = s->plugin->desc->ops;
    st = s->ops->create(&s->plugin->host, &s->inst);
    if (st != LD_OK) {
        snprintf(err, errlen, "storage plugin %s: create failed: %s (see the lines above)", path,
                 ld_status_str(st));
        ld_plugin_free(s->plugin);
        s->plugin = NULL;
        return st;
    }
    return LD_OK;
}

void ld_store_destroy(ld_store *s)
{
    if (s->inst) s->ops->destroy(s->inst);
    ld_plugin_free(s->plugin);
    memset(s, 0, sizeof *s);
}

ld_status ld_store_open(ld_store *s, const char *dir, const char *name, ld_stdb **out)
{
    return check(s, s->ops->open(s->inst, dir, name, out), "open");
}

void ld_store_close(ld_store *s, ld_stdb *db)
{
    s->ops->close(db);
}

ld_status ld_store_drop(ld_store *s, const char *dir, const char *name)
{
    return check(s, s->ops->drop(s->inst, dir, name), "drop");
}

ld_status ld_store_list(ld_store *s, const char *dir, int (*cb)(void *ctx, const char *name),
                        void *ctx)
{
    return check(s, s->ops->list(s->inst, dir, cb, ctx), "list");
}

uint64_t ld_store_size(ld_store *s, ld_stdb *db)
{
    uint64_t n = 0;
    if (!LD_ABI_HAS(s->ops, ld_storage_v1, size_bytes) || !s->ops->size_bytes) return 0;
    return s->ops->size_bytes(db, &n) == LD_OK ? n : 0;
}

bool ld_store_location(ld_store *s, ld_stdb *db, char *buf, size_t buflen)
{
    if (!LD_ABI_HAS(s->ops, ld_storage_v1, location) || !s->ops->location) return false;
    return s->ops->location(db, buf, buflen) == LD_OK;
}

bool ld_store_can_copy(const ld_store *s)
{
    return LD_ABI_HAS(s->ops, ld_storage_v1, copy) && s->ops->copy;
}

ld_status ld_store_copy(ld_store *s, const char *dir, const char *name, const char *dest_dir)
{
    if (!ld_store_can_copy(s)) return LD_UNSUPPORTED;
    return check(s, s->ops->copy(s->inst, dir, name, dest_dir), "copy");
}

ld_status ld_txn_begin(ld_store *s, ld_stdb *db, bool write, ld_txn *out)
{
    out->store = s;
    out->t = NULL;
    out->track = NULL;
    out->track_space = NULL;
    return check(s, s->ops->begin(db, write ? LD_TXN_WRITE : LD_TXN_READ, &out->t), "begin");
}

bool ld_store_can_lazy(const ld_store *s)
{
    return s->plugin->desc->abi_minor >= 1;
}

ld_status ld_txn_begin_lazy(ld_store *s, ld_stdb *db, ld_txn *out)
{
    uint32_t flags = LD_TXN_WRITE;
    if (ld_store_can_lazy(s)) flags |= LD_TXN_LAZY;
    out->store = s;
    out->t = NULL;
    out->track = NULL;
    out->track_space = NULL;
    return check(s, s->ops->begin(db, flags, &out->t), "begin");
}

ld_status ld_txn_commit(ld_txn *t)
{
    ld_status st = t->store->ops->commit(t->t);
    t->t = NULL;
    return check(t->store, st, "commit");
}

void ld_txn_abort(ld_txn *t)
{
    if (t->t) t->store->ops->abort(t->t);
    t->t = NULL;
}

ld_status ld_txn_get(ld_txn *t, const char *space, const void *key, size_t klen, const void **val,
                     size_t *vlen)
{
    return check(t->store, t->store->ops->get(t->t, space, key, klen, val, vlen), "get");
}

void ld_txn_track(ld_txn *t, const char *space, struct ld_keylog *log)
{
    t->track = log;
    t->track_space = space;
}

static void note_key(ld_txn *t, const char *space, const void *key, size_t klen)
{
    if (t->track && (space == t->track_space || strcmp(space, t->track_space) == 0))
        ld_keylog_add(t->track, key, klen);
}

ld_status ld_txn_put(ld_txn *t, const char *space, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    note_key(t, space, key, klen);
    return check(t->store, t->store->ops->put(t->t, space, key, klen, val, vlen), "put");
}

ld_status ld_txn_del(ld_txn *t, const char *space, const void *key, size_t klen)
{
    note_key(t, space, key, klen);
    return check(t->store, t->store->ops->del(t->t, space, key, klen), "del");
}

ld_status ld_cursor_open(ld_txn *t, const char *space, ld_cursor *out)
{
    out->store = t->store;
    out->c = NULL;
    return check(t->store, t->store->ops->cursor_open(t->t, space, &out->c), "cursor_open");
}

ld_status ld_cursor_seek(ld_cursor *c, const void *key, size_t klen, const void **k, size_t *kl,
                         const void **v, size_t *vl)
{
    return check(c->store, c->store->ops->cursor_seek(c->c, key, klen, k, kl, v, vl),
                 "cursor_seek");
}

ld_status ld_cursor_next(ld_cursor *c, const void **k, size_t *kl, const void **v, size_t *vl)
{
    return check(c->store, c->store->ops->cursor_next(c->c, k, kl, v, vl), "cursor_next");
}

void ld_cursor_close(ld_cursor *c)
{
    if (c->c) c->store->ops->cursor_close(c->c);
    c->c = NULL;
}
