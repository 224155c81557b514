/* Test fixture half-pair.so: a storage plugin with begin and commit but no abort. The loader must
 * refuse half of a pair. The other functions are stubs: the plugin is never meant to run. */
#include <litedist/storage.h>

static ld_status fx_create(const ld_host *host, ld_storage **out)
{
    *out = NULL;
    return LD_UNSUPPORTED;
}

static void fx_destroy(ld_storage *st) {}

static ld_status fx_open(ld_storage *st, const char *dir, const char *name, ld_stdb **out)
{
    return LD_UNSUPPORTED;
}

static void fx_close(ld_stdb *db) {}

static ld_status fx_drop(ld_storage *st, const char *dir, const char *name)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_list(ld_storage *st, const char *dir, int (*cb)(void *, const char *),
                         void *ctx)
{
    return LD_UNSUPPORTED;
}

static const char *fx_last_error(ld_storage *st)
{
    return "half-pair is a test fixture";
}

static ld_status fx_begin(ld_stdb *db, uint32_t flags, ld_sttxn **out)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_commit(ld_sttxn *txn)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_get(ld_sttxn *txn, const char *space, const void *key, size_t klen,
                        const void **val, size_t *vlen)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_put(ld_sttxn *txn, const char *space, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_del(ld_sttxn *txn, const char *space, const void *key, size_t klen)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_cursor_open(ld_sttxn *txn, const char *space, ld_stcursor **out)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_cursor_seek(ld_stcursor *cur, const void *key, size_t klen, const void **k,
                                size_t *kl, const void **v, size_t *vl)
{
    return LD_UNSUPPORTED;
}

static ld_status fx_cursor_next(ld_stcursor *cur, const void **k, size_t *kl, const void **v,
                                size_t *vl)
{
    return LD_UNSUPPORTED;
}

static void fx_cursor_close(ld_stcursor *cur) {}

static const ld_storage_v1 fx_ops = {
    .abi_major = LD_ABI_MAJOR,
    .abi_minor = LD_ABI_MINOR,
    .struct_size = sizeof(ld_storage_v1),
    .create = fx_create,
    .destroy = fx_destroy,
    .open = fx_open,
    .close = fx_close,
    .drop = fx_drop,
    .list = fx_list,
    .last_error = fx_last_error,
    .begin = fx_begin,
    .commit = fx_commit,
    .abort = NULL, /* the defect */
    .get = fx_get,
    .put = fx_put,
    .del = fx_del,
    .cursor_open = fx_cursor_open,
    .cursor_seek = fx_cursor_seek,
    .cursor_next = fx_cursor_next,
    .cursor_close = fx_cursor_close,
};

static const ld_plugin_descriptor fx_descriptor = {LD_ABI_HEADER_INIT(ld_plugin_descriptor),
                                                   LD_PLUGIN_KIND_STORAGE, "half-pair", "0.0.0",
                                                   &fx_ops};

static const ld_plugin_descriptor *fx_entry(const ld_host *host)
{
    return &fx_descriptor;
}

LD_PLUGIN_ENTRY(fx_entry)
