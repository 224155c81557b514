/* storage-memlog: a minimal litedist storage plugin, written out of tree against the installed
 * headers. Each database lives in memory as immutable sorted versions (readers keep the one they
 * began with) and on disk as an append-only log of committed transactions, replayed at open. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <litedist/storage.h>

#define EXT ".memlog"

/* ---------------------------------------------------------------------------------------------
 * Data: an entry is a key and its value, shared by every version that holds it; a version is
 * a set of key spaces, each a sorted array of entries, never changed once published.
 * ------------------------------------------------------------------------------------------- */

typedef struct entry {
    atomic_uint refs;
    uint32_t klen;
    size_t vlen;
    int dead;     /* a pending delete in a write transaction */
    uint64_t seq; /* order of arrival among a transaction's pending changes */
    unsigned char data[];
} entry;

typedef struct space {
    char name[33];
    size_t n, cap;
    entry **e;
    size_t npend, cappend; /* a write transaction's puts and deletes not yet merged in */
    entry **pend;
} space;

typedef struct version {
    atomic_uint refs;
    size_t n;
    space *sp;
} version;

struct ld_storage {
    const ld_host *host;
    int sync; /* 2 full (fdatasync every commit), 1 normal, 0 off */
};

struct ld_stdb {
    ld_storage *st;
    pthread_mutex_t mu; /* guards cur */
    version *cur;
    int fd;
    char path[4096];
};

struct ld_sttxn {
    ld_stdb *db;
    version *v; /* read: a reference to a published version; write: a private working copy */
    int write, lazy;
    unsigned char *log; /* write: the transaction's records, appended at commit */
    size_t loglen, logcap;
};

struct ld_stcursor {
    ld_sttxn *txn;
    char name[33];
    size_t pos; /* index of the next entry to return */
};

static _Thread_local char last_err[512];

static ld_status fail(ld_storage *st, ld_status s, const char *what)
{
    snprintf(last_err, sizeof last_err, "%s: %s", what, errno ? strerror(errno) : "failed");
    if (st) st->host->log(st->host, LD_LOG_ERROR, "%s", last_err);
    return s;
}

static entry *entry_new(const void *k, size_t kl, const void *v, size_t vl, int dead)
{
    entry *e = malloc(sizeof *e + kl + vl);
    if (!e) return NULL;
    atomic_init(&e->refs, 1);
    e->klen = (uint32_t)kl;
    e->vlen = vl;
    e->dead = dead;
    memcpy(e->data, k, kl);
    if (vl) memcpy(e->data + kl, v, vl);
    return e;
}

static void entry_unref(entry *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) free(e);
}

static int keycmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl); /* the shorter key first on a common prefix */
}

static void version_unref(version *v)
{
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
    for (size_t i = 0; i < v->n; i++) {
        for (size_t j = 0; j < v->sp[i].n; j++)
            entry_unref(v->sp[i].e[j]);
        for (size_t j = 0; j < v->sp[i].npend; j++)
            entry_unref(v->sp[i].pend[j]);
        free(v->sp[i].e);
        free(v->sp[i].pend);
    }
    free(v->sp);
    free(v);
}

/* A private copy of v for a write transaction: the arrays are copied, the entries shared. */
static version *version_clone(const version *v)
{
    version *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    atomic_init(&c->refs, 1);
    if (v->n && !(c->sp = calloc(v->n, sizeof *c->sp))) goto nomem;
    for (size_t i = 0; i < v->n; i++) {
        space *d = &c->sp[i];
        memcpy(d->name, v->sp[i].name, sizeof d->name);
        if (v->sp[i].n && !(d->e = malloc(v->sp[i].n * sizeof *d->e))) goto nomem;
        c->n = i + 1;
        d->n = d->cap = v->sp[i].n;
        for (size_t j = 0; j < d->n; j++) {
            d->e[j] = v->sp[i].e[j];
            atomic_fetch_add(&d->e[j]->refs, 1);
        }
    }
    return c;
nomem:
    version_unref(c);
    return NULL;
}

static space *find_space(version *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->sp[i].name, name)) return &v->sp[i];
    return NULL;
}

/* Index of the first entry >= key. */
static size_t lower_bound(const space *s, const void *k, size_t kl)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keycmp(s->e[mid]->data, s->e[mid]->klen, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int pend_order(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    int c = keycmp(x->data, x->klen, y->data, y->klen);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq); /* equal keys: order of arrival */
}

/* Merges a write transaction's pending changes into the space's sorted array, the last change
 * of each key winning: O(n + m log m), so a batch of puts costs one pass. */
static ld_status merge(space *s)
{
    if (!s->npend) return LD_OK;
    size_t m = s->npend, i = 0, n = 0;
    entry **p = s->pend, **out = malloc((s->n + m) * sizeof *out);
    if (!out) return LD_NOMEM;
    qsort(p, m, sizeof *p, pend_order);
    for (size_t j = 0; j < m; j++) {
        if (j + 1 < m && !keycmp(p[j]->data, p[j]->klen, p[j + 1]->data, p[j + 1]->klen))
            continue; /* a later change of the same key wins */
        entry *c = p[j];
        while (i < s->n && keycmp(s->e[i]->data, s->e[i]->klen, c->data, c->klen) < 0)
            out[n++] = s->e[i++];
        if (i < s->n && !keycmp(s->e[i]->data, s->e[i]->klen, c->data, c->klen))
            entry_unref(s->e[i++]);
        if (!c->dead) {
            atomic_fetch_add(&c->refs, 1);
            out[n++] = c;
        }
    }
    while (i < s->n)
        out[n++] = s->e[i++];
    for (size_t j = 0; j < m; j++)
        entry_unref(p[j]);
    free(s->e);
    s->e = out;
    s->n = s->cap = n;
    s->npend = 0;
    return LD_OK;
}

/* Queues a change (e owned by the caller until queued) in space `name` of a working version. */
static ld_status queue(version *v, const char *name, entry *e)
{
    space *s = find_space(v, name);
    if (!s) {
        space *sp = realloc(v->sp, (v->n + 1) * sizeof *sp);
        if (!sp) return LD_NOMEM;
        v->sp = sp;
        s = memset(&v->sp[v->n++], 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", name);
    }
    if (s->npend == s->cappend) {
        size_t cap = s->cappend ? 2 * s->cappend : 64;
        entry **p = realloc(s->pend, cap * sizeof *p);
        if (!p) return LD_NOMEM;
        s->pend = p;
        s->cappend = cap;
    }
    s->pend[s->npend++] = e;
    return LD_OK;
}

static ld_status merge_all(version *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (merge(&v->sp[i]) != LD_OK) return LD_NOMEM;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The log: one frame per committed transaction, [u64 length][records][u64 FNV-1a of records];
 * a record is [u8 op: 1 put, 2 del][u8 space length][space][u32 key length][u64 value length]
 * [key][value]. A frame is written with one write(); a torn or short last frame (a crash in the
 * middle of it) is cut off at open.
 * ------------------------------------------------------------------------------------------- */

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static ld_status log_add(ld_sttxn *t, int op, const char *space, const void *k, size_t kl,
                         const void *v, size_t vl)
{
    size_t sl = strlen(space), need = 1 + 1 + sl + 4 + 8 + kl + vl;
    if (t->loglen + need > t->logcap) {
        size_t cap = t->logcap ? t->logcap : 4096;
        while (cap < t->loglen + need)
            cap *= 2;
        unsigned char *b = realloc(t->log, cap);
        if (!b) return LD_NOMEM;
        t->log = b;
        t->logcap = cap;
    }
    unsigned char *p = t->log + t->loglen;
    uint32_t k32 = (uint32_t)kl;
    uint64_t v64 = vl;
    *p++ = (unsigned char)op;
    *p++ = (unsigned char)sl;
    memcpy(p, space, sl), p += sl;
    memcpy(p, &k32, 4), p += 4;
    memcpy(p, &v64, 8), p += 8;
    memcpy(p, k, kl), p += kl;
    if (vl) memcpy(p, v, vl);
    t->loglen += need;
    return LD_OK;
}

/* Replays the records of one frame into v; LD_CORRUPT when they do not parse. */
static ld_status replay_frame(version *v, const unsigned char *p, size_t n, uint64_t *seq)
{
    while (n) {
        if (n < 14 || p[1] == 0 || p[1] > 32 || n < 14u + p[1]) return LD_CORRUPT;
        int op = p[0];
        char name[33];
        memcpy(name, p + 2, p[1]);
        name[p[1]] = '\0';
        size_t off = 2u + p[1];
        uint32_t kl;
        uint64_t vl;
        memcpy(&kl, p + off, 4);
        memcpy(&vl, p + off + 4, 8);
        off += 12;
        if ((op != 1 && op != 2) || kl > n - off || vl > n - off - kl) return LD_CORRUPT;
        entry *e = entry_new(p + off, kl, p + off + kl, (size_t)vl, op == 2);
        if (!e) return LD_NOMEM;
        e->seq = (*seq)++;
        if (queue(v, name, e) != LD_OK) {
            entry_unref(e);
            return LD_NOMEM;
        }
        p += off + kl + vl;
        n -= off + kl + vl;
    }
    return LD_OK;
}

/* Reads the whole log into a fresh version; *valid receives the length of its whole frames. */
static ld_status replay(ld_storage *st, int fd, version **out, off_t *valid)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) return fail(st, LD_IO, "fstat");
    unsigned char *buf = sb.st_size ? malloc((size_t)sb.st_size) : NULL;
    if (sb.st_size && !buf) return LD_NOMEM;
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)sb.st_size - got, (off_t)got);
        if (r <= 0) {
            free(buf);
            return fail(st, LD_IO, "reading the log");
        }
        got += (size_t)r;
    }
    version *v = calloc(1, sizeof *v);
    if (!v) {
        free(buf);
        return LD_NOMEM;
    }
    atomic_init(&v->refs, 1);
    size_t pos = 0;
    uint64_t seq = 0;
    ld_status s = LD_OK;
    while (s == LD_OK && got - pos >= 16) {
        uint64_t len, sum;
        memcpy(&len, buf + pos, 8);
        if (len > got - pos - 16) break; /* short last frame: a crash while writing it */
        memcpy(&sum, buf + pos + 8 + len, 8);
        if (sum != fnv1a(buf + pos + 8, (size_t)len)) break; /* torn last frame */
        s = replay_frame(v, buf + pos + 8, (size_t)len, &seq);
        if (s == LD_OK) s = merge_all(v);
        pos += 16 + (size_t)len;
    }
    free(buf);
    if (s != LD_OK) {
        version_unref(v);
        return s == LD_CORRUPT ? fail(st, s, "a log frame does not parse") : s;
    }
    *out = v;
    *valid = (off_t)pos;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The operations
 * ------------------------------------------------------------------------------------------- */

static ld_status m_create(const ld_host *host, ld_storage **out)
{
    const char *text = LD_HOST_HAS(host, settings_json) ? host->settings_json : host->config_json;
    json_t *cfg = json_loads(text ? text : "{}", 0, NULL);
    if (!json_is_object(cfg)) {
        host->log(host, LD_LOG_ERROR, "the Storage section is not a JSON object");
        json_decref(cfg);
        return LD_INVALID;
    }
    const char *sync = json_string_value(json_object_get(cfg, "Sync"));
    int level = !sync || !strcmp(sync, "full") ? 2
                : !strcmp(sync, "normal")      ? 1
                : !strcmp(sync, "off")         ? 0
                                               : -1;
    if (level < 0 || (json_object_get(cfg, "Sync") && !sync)) {
        host->log(host, LD_LOG_ERROR, "Storage.Sync must be \"full\", \"normal\" or \"off\"");
        json_decref(cfg);
        return LD_INVALID;
    }
    json_decref(cfg);
    ld_storage *st = calloc(1, sizeof *st);
    if (!st) return LD_NOMEM;
    st->host = host;
    st->sync = level;
    *out = st;
    return LD_OK;
}

static void m_destroy(ld_storage *st)
{
    free(st);
}

static ld_status m_open(ld_storage *st, const char *dir, const char *name, ld_stdb **out)
{
    ld_stdb *db = calloc(1, sizeof *db);
    if (!db) return LD_NOMEM;
    db->st = st;
    snprintf(db->path, sizeof db->path, "%s/%s" EXT, dir, name);
    errno = 0;
    if ((db->fd = open(db->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        ld_status s = fail(st, errno == EACCES ? LD_DENIED : LD_IO, db->path);
        free(db);
        return s;
    }
    off_t valid = 0;
    ld_status s = replay(st, db->fd, &db->cur, &valid);
    if (s == LD_OK && ftruncate(db->fd, valid) != 0) {
        version_unref(db->cur);
        s = fail(st, LD_IO, "cutting off a torn last frame");
    }
    if (s != LD_OK) {
        close(db->fd);
        free(db);
        return s;
    }
    pthread_mutex_init(&db->mu, NULL);
    *out = db;
    return LD_OK;
}

static void m_close(ld_stdb *db)
{
    version_unref(db->cur);
    close(db->fd);
    pthread_mutex_destroy(&db->mu);
    free(db);
}

static ld_status m_drop(ld_storage *st, const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s" EXT, dir, name);
    errno = 0;
    if (unlink(path) == 0) return LD_OK;
    return errno == ENOENT ? LD_NOT_FOUND : fail(st, errno == EACCES ? LD_DENIED : LD_IO, path);
}

static ld_status m_list(ld_storage *st, const char *dir, int (*cb)(void *, const char *), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? LD_OK : fail(st, LD_IO, dir);
    struct dirent *de;
    size_t el = strlen(EXT);
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= el || strcmp(de->d_name + n - el, EXT) != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n - el), de->d_name);
        if (cb(ctx, name)) break;
    }
    closedir(d);
    return LD_OK;
}

static const char *m_last_error(ld_storage *st)
{
    (void)st;
    return last_err;
}

static ld_status m_begin(ld_stdb *db, uint32_t flags, ld_sttxn **out)
{
    if (flags != LD_TXN_READ && flags != LD_TXN_WRITE && flags != (LD_TXN_WRITE | LD_TXN_LAZY)) {
        snprintf(last_err, sizeof last_err, "begin: flags %u are not valid", flags);
        return LD_INVALID;
    }
    ld_sttxn *t = calloc(1, sizeof *t);
    if (!t) return LD_NOMEM;
    t->db = db;
    t->write = (flags & LD_TXN_WRITE) != 0;
    t->lazy = (flags & LD_TXN_LAZY) != 0;
    pthread_mutex_lock(&db->mu);
    if (t->write)
        t->v = version_clone(db->cur); /* the host serializes writers: cur cannot move */
    else
        atomic_fetch_add(&(t->v = db->cur)->refs, 1);
    pthread_mutex_unlock(&db->mu);
    if (!t->v) {
        free(t);
        return LD_NOMEM;
    }
    *out = t;
    return LD_OK;
}

static void txn_free(ld_sttxn *t)
{
    version_unref(t->v);
    free(t->log);
    free(t);
}

static ld_status m_commit(ld_sttxn *t)
{
    ld_stdb *db = t->db;
    if (!t->write || !t->loglen) {
        txn_free(t);
        return LD_OK;
    }
    ld_status s = merge_all(t->v);
    uint64_t len = t->loglen, sum = fnv1a(t->log, t->loglen);
    unsigned char *frame = s == LD_OK ? malloc(t->loglen + 16) : NULL;
    if (!frame) {
        txn_free(t);
        return LD_NOMEM;
    }
    memcpy(frame, &len, 8);
    memcpy(frame + 8, t->log, t->loglen);
    memcpy(frame + 8 + t->loglen, &sum, 8);
    off_t end = lseek(db->fd, 0, SEEK_END);
    size_t done = 0, total = t->loglen + 16;
    while (end >= 0 && done < total) {
        ssize_t w = pwrite(db->fd, frame + done, total - done, end + (off_t)done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    free(frame);
    errno = 0;
    if (done < total || (db->st->sync == 2 && !t->lazy && fdatasync(db->fd) != 0)) {
        s = fail(db->st, errno == ENOSPC ? LD_FULL : LD_IO, db->path);
        if (end >= 0 && ftruncate(db->fd, end) != 0) /* nothing of it may stay */
            db->st->host->log(db->st->host, LD_LOG_ERROR, "%s: cannot cut off a failed commit",
                              db->path);
        txn_free(t);
        return s;
    }
    pthread_mutex_lock(&db->mu);
    version *old = db->cur;
    db->cur = t->v;
    pthread_mutex_unlock(&db->mu);
    t->v = old; /* freed with the transaction, or by the last reader still using it */
    txn_free(t);
    return LD_OK;
}

static void m_abort(ld_sttxn *t)
{
    txn_free(t);
}

static int space_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 32 || s[0] < 'a' || s[0] > 'z') return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* The space as the transaction sees it (its own changes merged in), or NULL. */
static space *view(ld_sttxn *t, const char *name, ld_status *s)
{
    space *sp = find_space(t->v, name);
    *s = sp && t->write ? merge(sp) : LD_OK;
    return sp;
}

static ld_status m_get(ld_sttxn *t, const char *name, const void *k, size_t kl, const void **v,
                       size_t *vl)
{
    if (!space_ok(name)) return LD_INVALID;
    ld_status s;
    space *sp = view(t, name, &s);
    if (s != LD_OK) return s;
    size_t i = sp ? lower_bound(sp, k, kl) : 0;
    if (!sp || i == sp->n || keycmp(sp->e[i]->data, sp->e[i]->klen, k, kl)) return LD_NOT_FOUND;
    *v = sp->e[i]->data + sp->e[i]->klen;
    *vl = sp->e[i]->vlen;
    return LD_OK;
}

static ld_status change(ld_sttxn *t, const char *name, const void *k, size_t kl, const void *v,
                        size_t vl, int dead)
{
    if (!t->write || !space_ok(name) || kl < 1 || kl > LD_STORAGE_MAX_KEY ||
        vl > LD_STORAGE_MAX_VALUE) {
        snprintf(last_err, sizeof last_err,
                 "%s: not a write transaction, or a bad space, key "
                 "or value size",
                 dead ? "del" : "put");
        return LD_INVALID;
    }
    entry *e = entry_new(k, kl, v, vl, dead);
    if (!e) return LD_NOMEM;
    e->seq = t->loglen; /* grows with every change: the order of arrival */
    if (queue(t->v, name, e) != LD_OK) {
        entry_unref(e);
        return LD_NOMEM;
    }
    return log_add(t, dead ? 2 : 1, name, k, kl, v, vl);
}

static ld_status m_put(ld_sttxn *t, const char *name, const void *k, size_t kl, const void *v,
                       size_t vl)
{
    return change(t, name, k, kl, v, vl, 0);
}

static ld_status m_del(ld_sttxn *t, const char *name, const void *k, size_t kl)
{
    const void *v;
    size_t vl;
    ld_status s = m_get(t, name, k, kl, &v, &vl); /* LD_NOT_FOUND leaves the txn usable */
    return s != LD_OK ? s : change(t, name, k, kl, NULL, 0, 1);
}

static ld_status m_cursor_open(ld_sttxn *t, const char *name, ld_stcursor **out)
{
    if (!space_ok(name)) return LD_INVALID;
    ld_stcursor *c = calloc(1, sizeof *c);
    if (!c) return LD_NOMEM;
    c->txn = t;
    snprintf(c->name, sizeof c->name, "%s", name);
    *out = c;
    return LD_OK;
}

/* Returns the entry at c->pos and moves past it. */
static ld_status step(ld_stcursor *c, space *sp, const void **k, size_t *kl, const void **v,
                      size_t *vl)
{
    if (!sp || c->pos >= sp->n) return LD_NOT_FOUND;
    entry *e = sp->e[c->pos++];
    *k = e->data;
    *kl = e->klen;
    *v = e->data + e->klen;
    *vl = e->vlen;
    return LD_OK;
}

static ld_status m_cursor_seek(ld_stcursor *c, const void *key, size_t klen, const void **k,
                               size_t *kl, const void **v, size_t *vl)
{
    ld_status s;
    space *sp = view(c->txn, c->name, &s);
    if (s != LD_OK) return s;
    c->pos = sp ? lower_bound(sp, key, klen) : 0;
    return step(c, sp, k, kl, v, vl);
}

static ld_status m_cursor_next(ld_stcursor *c, const void **k, size_t *kl, const void **v,
                               size_t *vl)
{
    ld_status s;
    space *sp = view(c->txn, c->name, &s);
    return s != LD_OK ? s : step(c, sp, k, kl, v, vl);
}

static ld_status m_cursor_last(ld_stcursor *c, const void **k, size_t *kl, const void **v,
                               size_t *vl)
{
    ld_status s;
    space *sp = view(c->txn, c->name, &s);
    if (s != LD_OK) return s;
    c->pos = sp && sp->n ? sp->n - 1 : 0;
    return step(c, sp, k, kl, v, vl);
}

static void m_cursor_close(ld_stcursor *c)
{
    free(c);
}

static ld_status m_size_bytes(ld_stdb *db, uint64_t *out)
{
    struct stat sb;
    if (fstat(db->fd, &sb) != 0) return fail(db->st, LD_IO, db->path);
    *out = (uint64_t)sb.st_size;
    return LD_OK;
}

static ld_status m_location(ld_stdb *db, char *buf, size_t buflen)
{
    return (size_t)snprintf(buf, buflen, "%s", db->path) < buflen ? LD_OK : LD_INVALID;
}

static const ld_storage_v1 memlog_ops = {
    LD_ABI_HEADER_INIT(ld_storage_v1),
    .create = m_create,
    .destroy = m_destroy,
    .open = m_open,
    .close = m_close,
    .drop = m_drop,
    .list = m_list,
    .last_error = m_last_error,
    .begin = m_begin,
    .commit = m_commit,
    .abort = m_abort,
    .get = m_get,
    .put = m_put,
    .del = m_del,
    .cursor_open = m_cursor_open,
    .cursor_seek = m_cursor_seek,
    .cursor_next = m_cursor_next,
    .cursor_close = m_cursor_close,
    .cursor_last = m_cursor_last,
    .size_bytes = m_size_bytes,
    .location = m_location,
};

static const ld_plugin_descriptor memlog_descriptor = {LD_ABI_HEADER_INIT(ld_plugin_descriptor),
                                                       LD_PLUGIN_KIND_STORAGE, "memlog", "0.1.0",
                                                       &memlog_ops};

static const ld_plugin_descriptor *memlog_entry(const ld_host *host)
{
    return host->abi_major == LD_ABI_MAJOR ? &memlog_descriptor : NULL;
}

LD_PLUGIN_ENTRY(memlog_entry)
