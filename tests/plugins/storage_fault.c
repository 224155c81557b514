/* Test plugin storage-fault.so: wraps a real storage plugin (loaded through the same ABI) and
 * makes its Nth put, del or commit fail with a chosen status, for the storage fault tests.
 *
 * Configured by the `Fault` object of the Storage section (docs/testing.md):
 *   Inner        the wrapped plugin: a path, or a name looked up as <name>.so, then
 *                storage-<name>.so in the bundled plugins folder (../plugins beside this file)
 *   Op           "put", "del" or "commit" (write transactions only)
 *   Nth          fail the Nth such call counted from start (or from arming; 0 = never)
 *   Status       "IO", "NOMEM", "BUSY" or "FULL"
 *   Times        how many calls fail from the Nth on (default 1; 0 = every one from then on)
 *   ControlFile  optional: a file holding {Op, Nth, Status, Times}; the plugin reads it when a
 *                write transaction begins, removes it and arms that fault, counting from zero.
 *                Tests write it (atomically, by rename) to fail exactly the next write. */
#include <dlfcn.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <litedist/storage.h>

enum fault_op { OP_NONE, OP_PUT, OP_DEL, OP_COMMIT };

typedef struct fault {
    enum fault_op op;
    uint64_t nth;   /* 1-based; 0 never */
    uint64_t times; /* 0 = for ever */
    ld_status status;
} fault;

struct ld_storage {
    ld_storage *inner;
    pthread_mutex_t mu; /* guards armed, count, fired and reading the control file */
    fault armed;
    uint64_t count; /* calls of armed.op seen since arming */
    uint64_t fired; /* faults injected since arming */
    char *control;  /* ControlFile path, malloc'd, or NULL */
};

struct ld_stdb {
    ld_storage *st;
    ld_stdb *inner;
};

struct ld_sttxn {
    ld_storage *st;
    ld_sttxn *inner;
    bool write;
};

/* Loaded once, at entry, on the main thread; read-only afterwards. */
static const ld_host *g_host;
static ld_host g_inner_host;      /* the host table handed to the inner plugin */
static const ld_storage_v1 *g_in; /* the inner plugin's operations */
static ld_storage_v1 g_ops;       /* ours: optional members only where the inner has them */
static char g_inner_path[PATH_MAX];

/* The text of the last injected fault on this thread ("" when the last call was forwarded). */
static _Thread_local char tl_err[160];

/* ---------------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------------- */

static json_t *get_ci(json_t *obj, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) == 0) return v;
    }
    return NULL;
}

static bool parse_status(const char *s, ld_status *out)
{
    static const struct {
        const char *name;
        ld_status st;
    } names[] = {{"IO", LD_IO}, {"NOMEM", LD_NOMEM}, {"BUSY", LD_BUSY}, {"FULL", LD_FULL}};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].st;
            return true;
        }
    return false;
}

static const char *status_name(ld_status st)
{
    switch (st) {
    case LD_IO:
        return "IO";
    case LD_NOMEM:
        return "NOMEM";
    case LD_BUSY:
        return "BUSY";
    case LD_FULL:
        return "FULL";
    default:
        return "?";
    }
}

static const char *op_name(enum fault_op op)
{
    return op == OP_PUT ? "put" : op == OP_DEL ? "del" : op == OP_COMMIT ? "commit" : "none";
}

/* Reads {Op, Nth, Status, Times} from obj into *f. Returns false and logs what is wrong. */
static bool parse_fault(json_t *obj, fault *f, const char *where)
{
    *f = (fault){OP_NONE, 0, 1, LD_IO};
    json_t *op = get_ci(obj, "Op"), *nth = get_ci(obj, "Nth"), *status = get_ci(obj, "Status"),
           *times = get_ci(obj, "Times");
    if (!op && !nth) return true; /* nothing armed: a plain pass-through */
    const char *o = json_string_value(op);
    if (o && strcasecmp(o, "put") == 0)
        f->op = OP_PUT;
    else if (o && strcasecmp(o, "del") == 0)
        f->op = OP_DEL;
    else if (o && strcasecmp(o, "commit") == 0)
        f->op = OP_COMMIT;
    else {
        g_host->log(g_host, LD_LOG_ERROR, "%s: Op must be \"put\", \"del\" or \"commit\"", where);
        return false;
    }
    if (!json_is_integer(nth) || json_integer_value(nth) < 0) {
        g_host->log(g_host, LD_LOG_ERROR, "%s: Nth must be an integer >= 0", where);
        return false;
    }
    f->nth = (uint64_t)json_integer_value(nth);
    if (status && !parse_status(json_string_value(status), &f->status)) {
        g_host->log(g_host, LD_LOG_ERROR,
                    "%s: Status must be \"IO\", \"NOMEM\", \"BUSY\" or \"FULL\"", where);
        return false;
    }
    if (times) {
        if (!json_is_integer(times) || json_integer_value(times) < 0) {
            g_host->log(g_host, LD_LOG_ERROR, "%s: Times must be an integer >= 0", where);
            return false;
        }
        f->times = (uint64_t)json_integer_value(times);
    }
    return true;
}

/* The Fault object of the Storage section (a new reference), or NULL when absent or unreadable. */
static json_t *fault_section(const ld_host *host)
{
    json_t *root = json_loads(host->config_json ? host->config_json : "{}", 0, NULL);
    json_t *f = json_is_object(root) ? get_ci(root, "Fault") : NULL;
    if (json_is_object(f))
        json_incref(f);
    else
        f = NULL;
    json_decref(root);
    return f;
}

/* Arms the fault in the control file, if there is one, and removes the file. Under the lock, so
 * two databases' writers beginning at once read and arm it once. */
static void check_control(ld_storage *st)
{
    if (!st->control || access(st->control, F_OK) != 0) return;
    pthread_mutex_lock(&st->mu);
    json_error_t jerr;
    json_t *obj = access(st->control, F_OK) == 0 ? json_load_file(st->control, 0, &jerr) : NULL;
    fault f;
    if (!obj) {
        /* another writer took it first, or it is unreadable (reported below when present) */
        if (access(st->control, F_OK) == 0) {
            g_host->log(g_host, LD_LOG_ERROR, "control file %s is not JSON: %s", st->control,
                        jerr.text);
            unlink(st->control);
        }
    } else {
        if (unlink(st->control) != 0)
            g_host->log(g_host, LD_LOG_WARN, "cannot remove control file %s", st->control);
        if (!json_is_object(obj)) {
            g_host->log(g_host, LD_LOG_ERROR, "control file %s is not a JSON object", st->control);
        } else if (parse_fault(obj, &f, st->control)) {
            st->armed = f;
            st->count = st->fired = 0;
            g_host->log(g_host, LD_LOG_INFO, "armed: %s #%llu fails with %s (%llu times)",
                        op_name(f.op), (unsigned long long)f.nth, status_name(f.status),
                        (unsigned long long)f.times);
        }
    }
    pthread_mutex_unlock(&st->mu);
    json_decref(obj);
}

/* Counts one call of `op`; returns the status to inject, or LD_OK to forward the call. */
static ld_status maybe_fail(ld_storage *st, enum fault_op op)
{
    tl_err[0] = '\0';
    ld_status out = LD_OK;
    uint64_t n = 0;
    pthread_mutex_lock(&st->mu);
    if (st->armed.op == op && st->armed.nth > 0) {
        n = ++st->count;
        if (n >= st->armed.nth && (st->armed.times == 0 || st->fired < st->armed.times)) {
            st->fired++;
            out = st->armed.status;
        }
    }
    pthread_mutex_unlock(&st->mu);
    if (out != LD_OK) {
        snprintf(tl_err, sizeof tl_err, "storage-fault: injected %s on %s #%llu", status_name(out),
                 op_name(op), (unsigned long long)n);
        g_host->log(g_host, LD_LOG_WARN, "%s", tl_err);
    }
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * Forwarding
 * ------------------------------------------------------------------------------------------- */

static ld_status sf_create(const ld_host *host, ld_storage **out)
{
    ld_storage *st = calloc(1, sizeof *st);
    if (!st) return LD_NOMEM;
    pthread_mutex_init(&st->mu, NULL);
    json_t *sec = fault_section(host);
    ld_status s = LD_OK;
    if (sec && !parse_fault(sec, &st->armed, "Storage:Fault")) s = LD_INVALID;
    json_t *ctl = sec ? get_ci(sec, "ControlFile") : NULL;
    if (s == LD_OK && ctl) {
        if (!json_is_string(ctl)) {
            g_host->log(g_host, LD_LOG_ERROR, "Storage:Fault:ControlFile must be a path");
            s = LD_INVALID;
        } else if (!(st->control = strdup(json_string_value(ctl)))) {
            s = LD_NOMEM;
        }
    }
    json_decref(sec);
    if (s == LD_OK) s = g_in->create(&g_inner_host, &st->inner);
    if (s != LD_OK) {
        free(st->control);
        pthread_mutex_destroy(&st->mu);
        free(st);
        return s;
    }
    *out = st;
    return LD_OK;
}

static void sf_destroy(ld_storage *st)
{
    g_in->destroy(st->inner);
    free(st->control);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static ld_status sf_open(ld_storage *st, const char *dir, const char *name, ld_stdb **out)
{
    tl_err[0] = '\0';
    ld_stdb *db = calloc(1, sizeof *db);
    if (!db) return LD_NOMEM;
    db->st = st;
    ld_status s = g_in->open(st->inner, dir, name, &db->inner);
    if (s != LD_OK) {
        free(db);
        return s;
    }
    *out = db;
    return LD_OK;
}

static void sf_close(ld_stdb *db)
{
    g_in->close(db->inner);
    free(db);
}

static ld_status sf_drop(ld_storage *st, const char *dir, const char *name)
{
    tl_err[0] = '\0';
    return g_in->drop(st->inner, dir, name);
}

static ld_status sf_list(ld_storage *st, const char *dir, int (*cb)(void *, const char *),
                         void *ctx)
{
    tl_err[0] = '\0';
    return g_in->list(st->inner, dir, cb, ctx);
}

static const char *sf_last_error(ld_storage *st)
{
    return tl_err[0] ? tl_err : g_in->last_error(st->inner);
}

static ld_status sf_begin(ld_stdb *db, uint32_t flags, ld_sttxn **out)
{
    tl_err[0] = '\0';
    if (flags & LD_TXN_WRITE) check_control(db->st);
    ld_sttxn *t = calloc(1, sizeof *t);
    if (!t) return LD_NOMEM;
    t->st = db->st;
    t->write = (flags & LD_TXN_WRITE) != 0;
    ld_status s = g_in->begin(db->inner, flags, &t->inner);
    if (s != LD_OK) {
        free(t);
        return s;
    }
    *out = t;
    return LD_OK;
}

static ld_status sf_commit(ld_sttxn *t)
{
    ld_status s = t->write ? maybe_fail(t->st, OP_COMMIT) : LD_OK;
    if (s != LD_OK)
        g_in->abort(t->inner); /* a failed commit leaves nothing visible and frees the handle */
    else
        s = g_in->commit(t->inner);
    free(t);
    return s;
}

static void sf_abort(ld_sttxn *t)
{
    g_in->abort(t->inner);
    free(t);
}

static ld_status sf_get(ld_sttxn *t, const char *space, const void *key, size_t klen,
                        const void **val, size_t *vlen)
{
    tl_err[0] = '\0';
    return g_in->get(t->inner, space, key, klen, val, vlen);
}

static ld_status sf_put(ld_sttxn *t, const char *space, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
    ld_status s = maybe_fail(t->st, OP_PUT);
    return s != LD_OK ? s : g_in->put(t->inner, space, key, klen, val, vlen);
}

static ld_status sf_del(ld_sttxn *t, const char *space, const void *key, size_t klen)
{
    ld_status s = maybe_fail(t->st, OP_DEL);
    return s != LD_OK ? s : g_in->del(t->inner, space, key, klen);
}

/* Cursors are the inner plugin's own handles: nothing about them is faulted. */
static ld_status sf_cursor_open(ld_sttxn *t, const char *space, ld_stcursor **out)
{
    tl_err[0] = '\0';
    return g_in->cursor_open(t->inner, space, out);
}

static ld_status sf_cursor_seek(ld_stcursor *c, const void *key, size_t klen, const void **k,
                                size_t *kl, const void **v, size_t *vl)
{
    tl_err[0] = '\0';
    return g_in->cursor_seek(c, key, klen, k, kl, v, vl);
}

static ld_status sf_cursor_next(ld_stcursor *c, const void **k, size_t *kl, const void **v,
                                size_t *vl)
{
    tl_err[0] = '\0';
    return g_in->cursor_next(c, k, kl, v, vl);
}

static void sf_cursor_close(ld_stcursor *c)
{
    g_in->cursor_close(c);
}

static ld_status sf_cursor_last(ld_stcursor *c, const void **k, size_t *kl, const void **v,
                                size_t *vl)
{
    tl_err[0] = '\0';
    return g_in->cursor_last(c, k, kl, v, vl);
}

static ld_status sf_size_bytes(ld_stdb *db, uint64_t *out)
{
    tl_err[0] = '\0';
    return g_in->size_bytes(db->inner, out);
}

static ld_status sf_location(ld_stdb *db, char *buf, size_t buflen)
{
    tl_err[0] = '\0';
    return g_in->location(db->inner, buf, buflen);
}

/* ---------------------------------------------------------------------------------------------
 * Loading the inner plugin
 * ------------------------------------------------------------------------------------------- */

/* Finds the inner plugin's file: a path as is, else <name>.so or storage-<name>.so in the
 * bundled plugins folder next to this plugin's (bin/test-plugins -> bin/plugins). */
static bool resolve_inner(const char *name, const char *self_path)
{
    if (strchr(name, '/')) {
        snprintf(g_inner_path, sizeof g_inner_path, "%s", name);
        return true;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self_path ? self_path : "./x");
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    static const char *const patterns[] = {"%s/../plugins/%s.so", "%s/../plugins/storage-%s.so"};
    for (size_t i = 0; i < 2; i++) {
        int n = snprintf(g_inner_path, sizeof g_inner_path, patterns[i], dir, name);
        if (n > 0 && (size_t)n < sizeof g_inner_path && access(g_inner_path, R_OK) == 0)
            return true;
    }
    return false;
}

static bool load_inner(const ld_host *host)
{
    json_t *sec = fault_section(host);
    json_t *inner = sec ? get_ci(sec, "Inner") : NULL;
    const char *name = json_is_string(inner) ? json_string_value(inner) : NULL;
    bool found = name && resolve_inner(name, host->plugin_path);
    if (!found)
        host->log(host, LD_LOG_ERROR,
                  "Storage:Fault:Inner must name the storage plugin to wrap (sqlite, lmdb or a "
                  "path)%s%s",
                  name ? "; not found: " : "", name ? name : "");
    json_decref(sec);
    if (!found) return false;

    void *dl = dlopen(g_inner_path, RTLD_NOW | RTLD_LOCAL);
    ld_plugin_entry_fn entry = dl ? (ld_plugin_entry_fn)dlsym(dl, LD_PLUGIN_ENTRY_SYMBOL) : NULL;
    if (!entry) {
        host->log(host, LD_LOG_ERROR, "cannot load %s: %s", g_inner_path, dlerror());
        if (dl) dlclose(dl);
        return false;
    }
    /* The inner plugin gets the same services; only its own path differs. */
    size_t n = host->struct_size < sizeof g_inner_host ? host->struct_size : sizeof g_inner_host;
    memcpy(&g_inner_host, host, n);
    g_inner_host.plugin_path = g_inner_path;
    const ld_plugin_descriptor *d = entry(&g_inner_host);
    const ld_storage_v1 *ops = d && d->abi_major == LD_ABI_MAJOR ? d->ops : NULL;
    if (!ops || d->kind != LD_PLUGIN_KIND_STORAGE || ops->abi_major != LD_ABI_MAJOR ||
        !LD_ABI_HAS(ops, ld_storage_v1, cursor_close)) {
        host->log(host, LD_LOG_ERROR, "%s is not a storage plugin of ABI %d.x", g_inner_path,
                  LD_ABI_MAJOR);
        dlclose(dl);
        return false;
    }
    g_in = ops; /* dl stays open for the life of the process, like every plugin */
    return true;
}

static const ld_plugin_descriptor *sf_entry(const ld_host *host)
{
    static ld_plugin_descriptor desc;
    static bool entered;
    if (entered) { /* Inner names this plugin: dlopen hands back the same copy */
        host->log(host, LD_LOG_ERROR, "Storage:Fault:Inner cannot be storage-fault itself");
        return NULL;
    }
    entered = true;
    g_host = host;
    if (!load_inner(host)) return NULL;
    g_ops = (ld_storage_v1){
        .abi_major = LD_ABI_MAJOR,
        .abi_minor = g_in->abi_minor < LD_ABI_MINOR ? g_in->abi_minor : LD_ABI_MINOR,
        .struct_size = sizeof(ld_storage_v1),
        .create = sf_create,
        .destroy = sf_destroy,
        .open = sf_open,
        .close = sf_close,
        .drop = sf_drop,
        .list = sf_list,
        .last_error = sf_last_error,
        .begin = sf_begin,
        .commit = sf_commit,
        .abort = sf_abort,
        .get = sf_get,
        .put = sf_put,
        .del = sf_del,
        .cursor_open = sf_cursor_open,
        .cursor_seek = sf_cursor_seek,
        .cursor_next = sf_cursor_next,
        .cursor_close = sf_cursor_close,
    };
    /* Optional members exactly where the inner plugin has them, so the core's fallbacks run. */
    if (LD_ABI_HAS(g_in, ld_storage_v1, cursor_last) && g_in->cursor_last)
        g_ops.cursor_last = sf_cursor_last;
    if (LD_ABI_HAS(g_in, ld_storage_v1, size_bytes) && g_in->size_bytes)
        g_ops.size_bytes = sf_size_bytes;
    if (LD_ABI_HAS(g_in, ld_storage_v1, location) && g_in->location) g_ops.location = sf_location;
    desc = (ld_plugin_descriptor){LD_ABI_HEADER_INIT(ld_plugin_descriptor), LD_PLUGIN_KIND_STORAGE,
                                  "storage-fault", "1.0.0", &g_ops};
    return &desc;
}

LD_PLUGIN_ENTRY(sf_entry)
