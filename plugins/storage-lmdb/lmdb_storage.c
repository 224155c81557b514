/* LMDB storage plugin: implements ld_storage_v1 (include/litedist/storage.h) with one LMDB
 * environment (<dir>/<name>.lmdb/) per logical database and one named LMDB database per key space.
 */
#include <litedist/storage.h>

#include "lmdb_compact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Limits and tunables
 * ------------------------------------------------------------------------------------------- */
#define LM_SPACE_MAX       32u  /* longest key space name, per storage.h */
#define LM_DBNAME_MAX      63u  /* longest database name, per storage.h */
#define LM_MAX_SPACES      128u /* named LMDB databases per environment (mdb_env_set_maxdbs) */
#define LM_MAX_READERS     256u /* reader slots: read txns open at once, idle pooled ones included */
#define LM_POOL_IDLE       16u  /* reset read txns kept per database for reuse */
#define LM_MAP_DEFAULT_MIB 1024u /* MapSizeMiB default: sparse, costs address space only */
#define LM_MIB             ((uint64_t)1 << 20)
#define LM_MAP_MAX         ((uint64_t)1 << 44) /* 16 TiB: growth stops here (LD_FULL) */
#define LM_GROW_AT_PCT     80u                 /* a write txn begins by growing a map this full */
#define LM_GROW_TRY_MS     20u   /* how long that early growth waits for readers to drain */
#define LM_GROW_BACKOFF_MS 1000u /* and how long it is not tried again after that wait failed */
#define LM_GROW_WAIT_MS    5000u /* how long growth on MDB_MAP_FULL waits before LD_FULL */
#define LM_GROW_ROUNDS     32u /* grow-and-replay attempts per operation (each at least doubles) */
#define LM_LOG_CHUNK       ((size_t)1 << 20)
#define LM_ERRBUF          512
#define LM_DIR_SUFFIX      ".lmdb"
#define LM_DROP_PREFIX     ".drop-" /* not a valid database name, so list() never reports it */
#define LM_COMPACT_MIB     1024u    /* CompactAtCloseMaxMiB default */

enum { LM_SYNC_OFF, LM_SYNC_NORMAL, LM_SYNC_FULL };
enum { LM_OP_PUT = 1, LM_OP_DEL = 2 };
enum { LM_CUR_NOWHERE, LM_CUR_ROW, LM_CUR_END };

/* Returned for zero-length values, so that callers always get a non-NULL pointer. */
static const unsigned char lm_empty[1];

/* ---------------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------------- */
struct ld_storage {
    const ld_host *host;
    int sync;             /* LM_SYNC_* */
    uint64_t map_bytes;   /* MapSizeMiB: the map a new environment starts with, and the least one */
    uint64_t compact_max; /* CompactAtCloseMaxMiB in bytes: the most live data a close copies */
};

/* A key space and its DBI handle. */
typedef struct lm_space {
    char name[LM_SPACE_MAX + 1];
    MDB_dbi dbi;
} lm_space;

/* The effective puts and deletes of the open write txn, replayed into a fresh txn after the map
 * grew (LMDB cannot resize while a txn is open, and MDB_MAP_FULL leaves the txn unusable).
 * Records: lm_rec, then the space name, the key, the value. */
typedef struct lm_chunk {
    struct lm_chunk *next;
    size_t used, cap;
    unsigned char data[];
} lm_chunk;

typedef struct lm_rec {
    uint32_t vlen;
    uint16_t klen;
    uint8_t op;
    uint8_t slen;
} lm_rec;

typedef struct lm_oplog {
    lm_chunk *head, *tail;
    uint64_t bytes; /* keys and values logged: sizes the growth */
} lm_oplog;

/* An operation that hit MDB_MAP_FULL, to apply after the replay. */
typedef struct lm_pending {
    int op;
    const char *space;
    MDB_val k, v;
} lm_pending;

struct ld_sttxn {
    ld_stdb *db;
    MDB_txn *mt; /* NULL when a failed regrow left nothing open (abort only) */
    bool write;
    bool lazy;        /* LD_TXN_LAZY at sync full: commit without the meta flush */
    bool locked;      /* holds db->maplock shared */
    ld_status failed; /* LD_OK, or what left the write txn good for abort only */
    unsigned nspaces; /* db->spaces[0..nspaces) existed when the txn began */
    /* Write txns only. */
    lm_space *created; /* db->wcreated: spaces this txn created, private to it until commit */
    unsigned ncreated;
    lm_oplog log;
    ld_stcursor *cursors; /* open cursors, re-opened after a replay */
    ld_sttxn *next_idle;  /* read txn pool */
};

struct ld_stdb {
    ld_storage *st;
    MDB_env *env;
    char *path; /* <dir>/<name>.lmdb */
    dev_t dev;
    ino_t ino;
    size_t psize;
    /* Shared by every txn for its whole life; exclusive to remap (mdb_env_set_mapsize needs no
     * txn active in the process, and a remap moves every pointer a reader holds). */
    pthread_rwlock_t maplock;
    /* Shared while a read txn starts; exclusive while DBI handles change (the write txn creating
     * a space, committing or aborting). Keeps a reader's snapshot and the spaces it knows in step.
     */
    pthread_rwlock_t dbilock;
    lm_space spaces[LM_MAX_SPACES]; /* append-only; entries below nspaces never change */
    unsigned nspaces;               /* written under dbilock exclusive */
    pthread_mutex_t poollock;       /* guards the idle read txns */
    ld_sttxn *idle;
    unsigned nidle;
    atomic_bool writing;
    bool broken; /* a failed remap left the environment without a map: only close is safe */
    uint64_t early_after_ms; /* writer only: no early growth before this (monotonic ms) */
    ld_sttxn wtxn;           /* the write txn lives here: begin allocates nothing */
    lm_space wcreated[LM_MAX_SPACES];
    ld_stdb *next_open;
};

struct ld_stcursor {
    ld_sttxn *txn;
    MDB_cursor *mc; /* NULL: the space does not exist in the txn's view, or a replay is pending */
    bool exists;    /* the space existed when the cursor was opened */
    int state;      /* LM_CUR_* */
    char space[LM_SPACE_MAX + 1];
    ld_stcursor *next;
    size_t poslen; /* write txns: the key under the cursor, to re-position it after a replay */
    unsigned char pos[LD_STORAGE_MAX_KEY];
};

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */
static _Thread_local char lm_errbuf[LM_ERRBUF];

static const char *lm_status_name(ld_status s)
{
    static const char *const names[] = {"OK",          "NOT_FOUND", "EXISTS",  "INVALID",
                                        "IO",          "NOMEM",     "CORRUPT", "BUSY",
                                        "UNSUPPORTED", "FULL",      "DENIED",  "INTERNAL"};
    return s >= 0 && (size_t)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* Records a failure for last_error() (one buffer per thread) and logs it; returns s. */
static ld_status lm_fail(const ld_storage *st, ld_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static ld_status lm_fail(const ld_storage *st, ld_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(lm_errbuf, sizeof lm_errbuf, fmt, ap);
    va_end(ap);
    if (n < 0) snprintf(lm_errbuf, sizeof lm_errbuf, "unknown error");
    if (st && st->host && st->host->log) {
        int level = (s == LD_BUSY || s == LD_INVALID) ? LD_LOG_WARN : LD_LOG_ERROR;
        st->host->log(st->host, level, "%s (%s)", lm_errbuf, lm_status_name(s));
    }
    return s;
}

/* Maps an LMDB result (its own codes or an errno) to an ld_status. */
static ld_status lm_map(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return LD_OK;
    case MDB_NOTFOUND:
        return LD_NOT_FOUND;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
    case ENOSPC:
    case EDQUOT:
        return LD_FULL;
    case MDB_CORRUPTED:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
        return LD_CORRUPT;
    case ENOMEM:
        return LD_NOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
        return LD_DENIED;
    case MDB_READERS_FULL:
    case MDB_BAD_RSLOT:
    case MDB_MAP_RESIZED:
    case EAGAIN:
    case EBUSY:
        return LD_BUSY;
    case MDB_BAD_VALSIZE:
        return LD_INVALID;
    case EINVAL:
    case MDB_BAD_TXN:
    case MDB_BAD_DBI:
        return LD_INTERNAL;
    default:
        return LD_IO;
    }
}

static ld_status lm_engine_fail(const ld_stdb *db, int rc, const char *what)
{
    return lm_fail(db->st, lm_map(rc), "%s on %s: %s (lmdb %d)", what, db->path, mdb_strerror(rc),
                   rc);
}

static ld_status lm_errno_status(int e)
{
    if (e == EACCES || e == EPERM || e == EROFS) return LD_DENIED;
    if (e == ENOSPC || e == EDQUOT) return LD_FULL;
    if (e == ENOMEM) return LD_NOMEM;
    return LD_IO;
}

/* ---------------------------------------------------------------------------------------------
 * Names and paths
 * ------------------------------------------------------------------------------------------- */
static bool lm_lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z][a-z0-9_]{0,31} */
static bool lm_space_ok(const char *s)
{
    if (!s || !(s[0] >= 'a' && s[0] <= 'z')) return false;
    for (size_t i = 1; s[i]; i++)
        if (i >= LM_SPACE_MAX || !(lm_lower_or_digit(s[i]) || s[i] == '_')) return false;
    return true;
}

/* [a-z0-9][a-z0-9_-]{0,62}: also what keeps paths inside `dir`. */
static bool lm_dbname_ok(const char *s, size_t n)
{
    if (n == 0 || n > LM_DBNAME_MAX || !lm_lower_or_digit(s[0])) return false;
    for (size_t i = 1; i < n; i++)
        if (!(lm_lower_or_digit(s[i]) || s[i] == '_' || s[i] == '-')) return false;
    return true;
}

/* "<dir>/<prefix><name>.lmdb<suffix>", malloc'ed; NULL when out of memory. */
static char *lm_path(const char *dir, const char *prefix, const char *name, const char *suffix)
{
    size_t n =
        strlen(dir) + strlen(prefix) + strlen(name) + strlen(LM_DIR_SUFFIX) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s%s%s", dir, prefix, name, LM_DIR_SUFFIX, suffix);
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Environments open in this process. LMDB must not open one environment twice in a process
 * (closing the second handle drops the first one's fcntl locks), so open() refuses that.
 * ------------------------------------------------------------------------------------------- */
static pthread_mutex_t lm_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static ld_stdb *lm_reg_head;

static ld_stdb *lm_reg_find(dev_t dev, ino_t ino)
{
    for (ld_stdb *d = lm_reg_head; d; d = d->next_open)
        if (d->dev == dev && d->ino == ino) return d;
    return NULL;
}

/* Adds db unless its directory is already registered; false when it is. */
static bool lm_reg_add(ld_stdb *db)
{
    pthread_mutex_lock(&lm_reg_lock);
    bool ok = lm_reg_find(db->dev, db->ino) == NULL;
    if (ok) {
        db->next_open = lm_reg_head;
        lm_reg_head = db;
    }
    pthread_mutex_unlock(&lm_reg_lock);
    return ok;
}

static void lm_reg_remove(ld_stdb *db)
{
    pthread_mutex_lock(&lm_reg_lock);
    for (ld_stdb **p = &lm_reg_head; *p; p = &(*p)->next_open)
        if (*p == db) {
            *p = db->next_open;
            break;
        }
    pthread_mutex_unlock(&lm_reg_lock);
}

/* ---------------------------------------------------------------------------------------------
 * Map growth
 * ------------------------------------------------------------------------------------------- */

/* Takes l exclusively, waiting at most ms; false on timeout. Readers queue behind a waiting
 * writer (the lock prefers writers), so a steady stream of reads cannot starve a resize. */
static bool lm_wrlock_for(pthread_rwlock_t *l, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000u);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_rwlock_clockwrlock(l, CLOCK_MONOTONIC, &ts) == 0;
}

/* Bytes of the map in use by the last commit (the file's extent; pages freed inside it are
 * reused by later txns). Caller holds maplock. */
static uint64_t lm_used_bytes(ld_stdb *db, uint64_t *mapsize)
{
    MDB_envinfo info;
    mdb_env_info(db->env, &info);
    if (mapsize) *mapsize = info.me_mapsize;
    return ((uint64_t)info.me_last_pgno + 1) * db->psize;
}

/* Grows the map to at least double and at least `extra` bytes beyond what is in use, once no
 * txn is active (waits up to wait_ms for maplock). With `early`, does nothing unless the map is
 * still over LM_GROW_AT_PCT full once the lock is held. The caller holds no lock of db.
 * Returns LD_OK; LD_BUSY when txns stayed open (nothing logged: the caller decides); LD_FULL at
 * the ceiling or without address space; LD_IO when LMDB lost its map (db is then broken). */
static ld_status lm_grow(ld_stdb *db, uint64_t extra, unsigned wait_ms, bool early)
{
    const ld_storage *st = db->st;
    if (!lm_wrlock_for(&db->maplock, wait_ms)) return LD_BUSY;
    ld_status s = LD_OK;
    if (db->broken) {
        s = lm_fail(st, LD_IO, "%s lost its memory map earlier; close and reopen it", db->path);
        goto out;
    }
    uint64_t cur;
    uint64_t used = lm_used_bytes(db, &cur);
    if (early && used * 100u <= cur * LM_GROW_AT_PCT) goto out; /* grown meanwhile */
    uint64_t next = cur * 2u;
    if (next < used + extra) next = used + extra;
    next = (next + LM_MIB - 1) / LM_MIB * LM_MIB;
    if (next > LM_MAP_MAX) next = LM_MAP_MAX;
    if (next <= cur) {
        s = lm_fail(st, LD_FULL, "the map of %s is at its ceiling of %llu MiB", db->path,
                    (unsigned long long)(cur / LM_MIB));
        goto out;
    }
    /* LMDB unmaps before it maps the new size, and a failed mmap leaves it with no map at all:
     * check first that the address space is there. */
    void *probe =
        mmap(NULL, (size_t)next, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe == MAP_FAILED) {
        s = lm_fail(st, LD_FULL, "cannot grow the map of %s to %llu MiB: %s", db->path,
                    (unsigned long long)(next / LM_MIB), strerror(errno));
        goto out;
    }
    munmap(probe, (size_t)next);
    int rc = mdb_env_set_mapsize(db->env, (size_t)next);
    if (rc != 0) {
        db->broken = true;
        s = lm_engine_fail(db, rc, "growing the map");
        goto out;
    }
    st->host->log(st->host, LD_LOG_INFO, "map of %s grown from %llu to %llu MiB (%llu MiB used)",
                  db->path, (unsigned long long)(cur / LM_MIB), (unsigned long long)(next / LM_MIB),
                  (unsigned long long)(used / LM_MIB));
out:
    pthread_rwlock_unlock(&db->maplock);
    return s;
}

/* Another process grew the map beyond ours (MDB_MAP_RESIZED): adopt its size. */
static ld_status lm_adopt_mapsize(ld_stdb *db)
{
    if (!lm_wrlock_for(&db->maplock, LM_GROW_WAIT_MS))
        return lm_fail(db->st, LD_BUSY, "%s was resized by another process; retry", db->path);
    ld_status s = LD_OK;
    int rc = db->broken ? 0 : mdb_env_set_mapsize(db->env, 0);
    if (rc != 0) {
        db->broken = true;
        s = lm_engine_fail(db, rc, "adopting the map size");
    }
    pthread_rwlock_unlock(&db->maplock);
    return s;
}

static uint64_t lm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A write txn begins by growing a map that is nearly full, while no txn of its own is open, so
 * that grow-and-replay (lm_regrow) stays the exception. Readers that begin while it waits for the
 * lock wait too, so after a failed wait (a long reader) it rests for LM_GROW_BACKOFF_MS rather
 * than stall readers at every write. */
static void lm_grow_early(ld_stdb *db)
{
    if (db->early_after_ms && lm_now_ms() < db->early_after_ms) return;
    pthread_rwlock_rdlock(&db->maplock);
    bool grow = false;
    if (!db->broken) {
        uint64_t cur, used = lm_used_bytes(db, &cur);
        grow = used * 100u > cur * LM_GROW_AT_PCT;
    }
    pthread_rwlock_unlock(&db->maplock);
    /* On failure, a MAP_FULL (if it comes) waits longer. */
    if (grow && lm_grow(db, 0, LM_GROW_TRY_MS, true) == LD_BUSY)
        db->early_after_ms = lm_now_ms() + LM_GROW_BACKOFF_MS;
}

/* ---------------------------------------------------------------------------------------------
 * Operation log of the write txn
 * ------------------------------------------------------------------------------------------- */
static bool lm_log_add(lm_oplog *l, int op, const char *space, const MDB_val *k, const MDB_val *v)
{
    size_t slen = strlen(space);
    size_t vlen = op == LM_OP_PUT ? v->mv_size : 0;
    size_t need = sizeof(lm_rec) + slen + k->mv_size + vlen;
    lm_chunk *c = l->tail;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > LM_LOG_CHUNK ? need : LM_LOG_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) return false;
        c->next = NULL;
        c->used = 0;
        c->cap = cap;
        if (l->tail)
            l->tail->next = c;
        else
            l->head = c;
        l->tail = c;
    }
    lm_rec r = {.vlen = (uint32_t)vlen,
                .klen = (uint16_t)k->mv_size,
                .op = (uint8_t)op,
                .slen = (uint8_t)slen};
    unsigned char *p = c->data + c->used;
    memcpy(p, &r, sizeof r);
    p += sizeof r;
    memcpy(p, space, slen);
    p += slen;
    memcpy(p, k->mv_data, k->mv_size);
    p += k->mv_size;
    if (vlen) memcpy(p, v->mv_data, vlen);
    c->used += need;
    l->bytes += k->mv_size + vlen;
    return true;
}

/* Empties the log, keeping one standard chunk for the next txn. */
static void lm_log_reset(lm_oplog *l)
{
    lm_chunk *keep = NULL, *c = l->head;
    while (c) {
        lm_chunk *next = c->next;
        if (!keep && c->cap == LM_LOG_CHUNK) {
            keep = c;
            keep->next = NULL;
            keep->used = 0;
        } else {
            free(c);
        }
        c = next;
    }
    l->head = l->tail = keep;
    l->bytes = 0;
}

static void lm_log_free(lm_oplog *l)
{
    lm_log_reset(l);
    free(l->head);
    l->head = l->tail = NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Key spaces
 * ------------------------------------------------------------------------------------------- */

/* The DBI of `space` in t's view; false when the space does not exist there. */
static bool lm_space_find(const ld_sttxn *t, const char *space, MDB_dbi *dbi)
{
    const ld_stdb *db = t->db;
    for (unsigned i = 0; i < t->nspaces; i++)
        if (strcmp(db->spaces[i].name, space) == 0) {
            *dbi = db->spaces[i].dbi;
            return true;
        }
    for (unsigned i = 0; i < t->ncreated; i++)
        if (strcmp(t->created[i].name, space) == 0) {
            *dbi = t->created[i].dbi;
            return true;
        }
    return false;
}

/* Creates `space` in the write txn t. Readers never call mdb_dbi_open (they only use handles
 * published before they began), so this is the only txn opening handles, as LMDB requires. */
static int lm_space_create(ld_sttxn *t, const char *space, MDB_dbi *dbi)
{
    ld_stdb *db = t->db;
    if (t->nspaces + t->ncreated >= LM_MAX_SPACES) return MDB_DBS_FULL;
    pthread_rwlock_wrlock(&db->dbilock);
    int rc = mdb_dbi_open(t->mt, space, MDB_CREATE, dbi);
    pthread_rwlock_unlock(&db->dbilock);
    if (rc == 0) {
        lm_space *sp = &t->created[t->ncreated++];
        snprintf(sp->name, sizeof sp->name, "%s", space);
        sp->dbi = *dbi;
    }
    return rc;
}

/* Opens a handle for every key space already in the environment, in a read txn whose commit
 * makes them shared: after this, readers never need mdb_dbi_open. No other txn is running. */
static ld_status lm_load_spaces(ld_stdb *db)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_dbi main_dbi;
    const char *what = "listing key spaces";
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc == 0) rc = mdb_cursor_open(txn, main_dbi, &c);
    MDB_val k, v;
    for (MDB_cursor_op op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        rc = mdb_cursor_get(c, &k, &v, op);
        if (rc != 0) break;
        char name[LM_SPACE_MAX + 1];
        if (k.mv_size == 0 || k.mv_size > LM_SPACE_MAX) continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        if (strlen(name) != k.mv_size || !lm_space_ok(name)) continue; /* not one of ours */
        if (db->nspaces == LM_MAX_SPACES) {
            rc = MDB_DBS_FULL;
            break;
        }
        MDB_dbi dbi;
        int orc = mdb_dbi_open(txn, name, 0, &dbi);
        if (orc == MDB_INCOMPATIBLE) continue; /* a plain key, not a named database */
        if (orc != 0) {
            rc = orc;
            what = "opening a key space";
            break;
        }
        lm_space *sp = &db->spaces[db->nspaces++];
        memcpy(sp->name, name, k.mv_size + 1);
        sp->dbi = dbi;
    }
    if (c) mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) {
        rc = mdb_txn_commit(txn); /* keeps the handles; frees txn either way */
        txn = NULL;
        what = "publishing key spaces";
    }
    if (txn) mdb_txn_abort(txn);
    if (rc != 0) {
        db->nspaces = 0;
        return lm_engine_fail(db, rc, what);
    }
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Instance
 * ------------------------------------------------------------------------------------------- */
static ld_status lm_config(const ld_host *host, ld_storage *st)
{
    const char *text = host->config_json ? host->config_json : "{}";
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root)
        return lm_fail(st, LD_INVALID, "Storage config is not valid JSON: %s (line %d)", jerr.text,
                       jerr.line);
    ld_status s = LD_OK;
    if (!json_is_object(root)) {
        s = lm_fail(st, LD_INVALID, "Storage config must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcasecmp(key, "Sync") == 0) {
            const char *v = json_string_value(val);
            if (v && strcasecmp(v, "full") == 0)
                st->sync = LM_SYNC_FULL;
            else if (v && strcasecmp(v, "normal") == 0)
                st->sync = LM_SYNC_NORMAL;
            else if (v && strcasecmp(v, "off") == 0)
                st->sync = LM_SYNC_OFF;
            else {
                s = lm_fail(st, LD_INVALID, "Storage:%s must be \"full\", \"normal\" or \"off\"",
                            key);
                goto out;
            }
        } else if (strcasecmp(key, "MapSizeMiB") == 0) {
            json_int_t v = json_is_integer(val) ? json_integer_value(val) : 0;
            if (v < 1 || (uint64_t)v > LM_MAP_MAX / LM_MIB) {
                s = lm_fail(st, LD_INVALID, "Storage:%s must be an integer from 1 to %llu", key,
                            (unsigned long long)(LM_MAP_MAX / LM_MIB));
                goto out;
            }
            st->map_bytes = (uint64_t)v * LM_MIB;
        } else if (strcasecmp(key, "CompactAtCloseMaxMiB") == 0) {
            json_int_t v = json_is_integer(val) ? json_integer_value(val) : -1;
            if (v < 0 || (uint64_t)v > LM_MAP_MAX / LM_MIB) {
                s = lm_fail(st, LD_INVALID,
                            "Storage:%s must be an integer from 0 (never compact) to %llu", key,
                            (unsigned long long)(LM_MAP_MAX / LM_MIB));
                goto out;
            }
            st->compact_max = (uint64_t)v * LM_MIB;
        }
        /* Other keys (Plugin, another backend's options) are the core's to report. */
    }
out:
    json_decref(root);
    return s;
}

static ld_status lm_create(const ld_host *host, ld_storage **out)
{
    if (!host || !out) return lm_fail(NULL, LD_INVALID, "create: NULL argument");
    ld_storage *st = calloc(1, sizeof *st);
    if (!st) return lm_fail(NULL, LD_NOMEM, "out of memory creating the lmdb storage");
    st->host = host;
    st->sync = LM_SYNC_FULL;
    st->map_bytes = (uint64_t)LM_MAP_DEFAULT_MIB * LM_MIB;
    st->compact_max = (uint64_t)LM_COMPACT_MIB * LM_MIB;
    ld_status s = lm_config(host, st);
    if (s != LD_OK) {
        free(st);
        return s;
    }
    *out = st;
    return LD_OK;
}

static void lm_destroy(ld_storage *st)
{
    free(st);
}

static const char *lm_last_error(ld_storage *st)
{
    return lm_errbuf;
}

/* ---------------------------------------------------------------------------------------------
 * Databases
 * ------------------------------------------------------------------------------------------- */

/* Frees a database handle at any stage of open(); env is already closed or NULL. */
static void lm_db_free(ld_stdb *db, int nlocks)
{
    if (nlocks > 2) pthread_mutex_destroy(&db->poollock);
    if (nlocks > 1) pthread_rwlock_destroy(&db->dbilock);
    if (nlocks > 0) pthread_rwlock_destroy(&db->maplock);
    free(db->path);
    free(db);
}

/* Creates db's locks; returns how many exist (3 on success), for lm_db_free. */
static int lm_db_locks(ld_stdb *db)
{
    pthread_rwlockattr_t ra;
    if (pthread_rwlockattr_init(&ra) != 0) return 0;
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int n = 0;
    if (pthread_rwlock_init(&db->maplock, &ra) == 0) n++;
    if (n == 1 && pthread_rwlock_init(&db->dbilock, &ra) == 0) n++;
    if (n == 2 && pthread_mutex_init(&db->poollock, NULL) == 0) n++;
    pthread_rwlockattr_destroy(&ra);
    return n;
}

static ld_status lm_open(ld_storage *st, const char *dir, const char *name, ld_stdb **out)
{
    if (!st || !dir || !name || !out) return lm_fail(st, LD_INVALID, "open: NULL argument");
    if (!lm_dbname_ok(name, strlen(name)))
        return lm_fail(st, LD_INVALID, "open: invalid database name \"%.80s\"", name);
    ld_stdb *db = calloc(1, sizeof *db);
    if (!db) return lm_fail(st, LD_NOMEM, "out of memory opening database %s", name);
    db->st = st;
    db->wtxn.db = db;
    db->wtxn.write = true;
    db->wtxn.created = db->wcreated;
    atomic_init(&db->writing, false);
    db->path = lm_path(dir, "", name, "");
    if (!db->path) {
        free(db);
        return lm_fail(st, LD_NOMEM, "out of memory opening database %s", name);
    }
    int nlocks = lm_db_locks(db);
    if (nlocks != 3) {
        lm_db_free(db, nlocks);
        return lm_fail(st, LD_NOMEM, "cannot create the locks of database %s", name);
    }
    if (mkdir(db->path, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        ld_status s =
            lm_fail(st, lm_errno_status(e), "cannot create %s: %s", db->path, strerror(e));
        lm_db_free(db, nlocks);
        return s;
    }
    struct stat sb;
    if (stat(db->path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        ld_status s = lm_fail(st, LD_IO, "%s is not a directory", db->path);
        lm_db_free(db, nlocks);
        return s;
    }
    db->dev = sb.st_dev;
    db->ino = sb.st_ino;
    if (!lm_reg_add(db)) {
        ld_status s = lm_fail(st, LD_BUSY, "%s is already open in this process", db->path);
        lm_db_free(db, nlocks);
        return s;
    }

    /* A compaction that a crash interrupted left its copy beside data.mdb, which it never
     * replaced: the copy is only disk to give back. */
    const char *what = "removing an interrupted compaction's copy";
    int rc = lm_compact_leftover(st->host, db->path);
    if (rc == 0) {
        what = "creating the environment";
        rc = mdb_env_create(&db->env);
    }
    if (rc == 0) rc = mdb_env_set_maxreaders(db->env, LM_MAX_READERS);
    if (rc == 0) rc = mdb_env_set_maxdbs(db->env, LM_MAX_SPACES);
    if (rc == 0) {
        /* A new environment starts at MapSizeMiB. An existing one keeps the size recorded in it
         * (it may have grown past MapSizeMiB), so no size is set before opening it. */
        char *data = lm_path(dir, "", name, "/data.mdb");
        if (!data)
            rc = ENOMEM;
        else if (stat(data, &sb) != 0 && errno == ENOENT)
            rc = mdb_env_set_mapsize(db->env, (size_t)st->map_bytes);
        free(data);
    }
    if (rc == 0) {
        /* NOTLS: reader slots belong to txns, not threads, so pooled read txns may move between
         * threads. Sync per storage.h; see docs/storage.md for what each level guarantees. */
        unsigned flags = MDB_NOTLS;
        if (st->sync == LM_SYNC_NORMAL) flags |= MDB_NOMETASYNC;
        if (st->sync == LM_SYNC_OFF) flags |= MDB_NOSYNC;
        what = "opening";
        rc = mdb_env_open(db->env, db->path, flags, 0644);
    }
    if (rc == 0) {
        what = "sizing the map";
        MDB_envinfo info;
        mdb_env_info(db->env, &info);
        if (info.me_mapsize < st->map_bytes)
            rc = mdb_env_set_mapsize(db->env, (size_t)st->map_bytes);
    }
    if (rc == 0) {
        MDB_stat es;
        what = "reading the page size";
        rc = mdb_env_stat(db->env, &es);
        db->psize = es.ms_psize;
    }
    if (rc == 0) {
        /* Slots of processes that died with a read txn open would pin old pages forever. */
        int dead = 0;
        what = "clearing stale readers";
        rc = mdb_reader_check(db->env, &dead);
        if (rc == 0 && dead > 0)
            st->host->log(st->host, LD_LOG_INFO, "%s: cleared %d stale reader slots", db->path,
                          dead);
    }
    ld_status s = LD_OK;
    if (rc != 0)
        s = lm_engine_fail(db, rc, what);
    else
        s = lm_load_spaces(db);
    if (s != LD_OK) {
        if (db->env) mdb_env_close(db->env);
        lm_reg_remove(db);
        lm_db_free(db, nlocks);
        return s;
    }
    *out = db;
    return LD_OK;
}

static void lm_close(ld_stdb *db)
{
    if (!db) return;
    while (db->idle) {
        ld_sttxn *t = db->idle;
        db->idle = t->next_idle;
        mdb_txn_abort(t->mt); /* a reset txn: frees it and its reader slot */
        free(t);
    }
    if (!db->broken && db->st->sync != LM_SYNC_FULL) {
        /* close flushes (storage.h): what normal/off left unsynced goes to disk now. */
        int rc = mdb_env_sync(db->env, 1);
        if (rc != 0) lm_engine_fail(db, rc, "sync at close");
    }
    /* Free pages are reused but never shrink data.mdb: a close that finds many hands them back
     * (lmdb_compact.h). Measured while the environment is still open; the copy replaces the
     * file once no handle of it is left in this process (db stays registered until then, so no
     * open of the same directory can begin meanwhile). */
    lm_pages pages;
    bool compact = false;
    if (!db->broken) {
        int rc = lm_pages_count(db->env, db->st->compact_max, &pages);
        if (rc != 0)
            lm_engine_fail(db, rc, "counting free pages at close");
        else
            compact = lm_compact_pays(&pages, db->st->compact_max);
        if (rc == 0 && !compact && db->st->compact_max > 0 && lm_compact_pays(&pages, UINT64_MAX))
            db->st->host->log(
                db->st->host, LD_LOG_INFO,
                "%s: %llu MiB of free pages kept: its %llu MiB of live data exceed "
                "Storage:CompactAtCloseMaxMiB",
                db->path, (unsigned long long)(pages.free * pages.psize / LM_MIB),
                (unsigned long long)((pages.file - pages.free) * pages.psize / LM_MIB));
    }
    mdb_env_close(db->env);
    if (compact) lm_compact(db->st->host, db->path, LM_MAX_SPACES);
    lm_log_free(&db->wtxn.log);
    lm_reg_remove(db);
    lm_db_free(db, 3);
}

/* Removes every regular file in directory `path`, then the directory. Returns 0 or an errno. */
static int lm_rmdir_files(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return errno;
    int err = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0) err = errno;
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT) {
            err = errno;
            break;
        }
    }
    closedir(d);
    if (err == 0 && rmdir(path) != 0) err = errno;
    return err;
}

static ld_status lm_drop(ld_storage *st, const char *dir, const char *name)
{
    if (!st || !dir || !name) return lm_fail(st, LD_INVALID, "drop: NULL argument");
    if (!lm_dbname_ok(name, strlen(name)))
        return lm_fail(st, LD_INVALID, "drop: invalid database name \"%.80s\"", name);
    char *path = lm_path(dir, "", name, "");
    char *tomb = lm_path(dir, LM_DROP_PREFIX, name, "");
    if (!path || !tomb) {
        free(path);
        free(tomb);
        return lm_fail(st, LD_NOMEM, "out of memory dropping %s", name);
    }
    ld_status s = LD_OK;
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            s = LD_NOT_FOUND;
        else
            s = lm_fail(st, lm_errno_status(errno), "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(sb.st_mode)) { /* only a directory is a database (as list() sees it) */
        s = LD_NOT_FOUND;
        goto out;
    }
    pthread_mutex_lock(&lm_reg_lock);
    bool open = lm_reg_find(sb.st_dev, sb.st_ino) != NULL;
    pthread_mutex_unlock(&lm_reg_lock);
    if (open) {
        s = lm_fail(st, LD_BUSY, "drop: %s is open", path);
        goto out;
    }
    /* Renamed out of the way first, so the database vanishes at once even if removing its
     * files fails half-way; a leftover of an earlier interrupted drop goes first. */
    int err = lm_rmdir_files(tomb);
    if (err != 0 && err != ENOENT) {
        s = lm_fail(st, lm_errno_status(err), "cannot remove %s: %s", tomb, strerror(err));
        goto out;
    }
    if (rename(path, tomb) != 0) {
        s = lm_fail(st, lm_errno_status(errno), "cannot rename %s: %s", path, strerror(errno));
        goto out;
    }
    err = lm_rmdir_files(tomb);
    if (err != 0)
        s = lm_fail(st, lm_errno_status(err), "cannot remove %s: %s", tomb, strerror(err));
out:
    free(path);
    free(tomb);
    return s;
}

static ld_status lm_list(ld_storage *st, const char *dir, int (*cb)(void *ctx, const char *name),
                         void *ctx)
{
    if (!st || !dir || !cb) return lm_fail(st, LD_INVALID, "list: NULL argument");
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return LD_OK;
        return lm_fail(st, LD_IO, "cannot read directory %s: %s", dir, strerror(errno));
    }
    const size_t sl = strlen(LM_DIR_SUFFIX);
    ld_status s = LD_OK;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0)
                s = lm_fail(st, LD_IO, "cannot read directory %s: %s", dir, strerror(errno));
            break;
        }
        size_t n = strlen(e->d_name);
        if (n <= sl || strcmp(e->d_name + n - sl, LM_DIR_SUFFIX) != 0 ||
            !lm_dbname_ok(e->d_name, n - sl))
            continue;
        /* A database is a directory (not a symlink: drop() would not follow it) holding
         * data.mdb; a directory without it is what an interrupted open left. */
        char probe[sizeof e->d_name + 16];
        snprintf(probe, sizeof probe, "%s/data.mdb", e->d_name);
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        if (fstatat(dirfd(d), probe, &sb, 0) != 0 || !S_ISREG(sb.st_mode)) continue;
        char name[LM_DBNAME_MAX + 1];
        memcpy(name, e->d_name, n - sl);
        name[n - sl] = '\0';
        if (cb(ctx, name) != 0) break;
    }
    closedir(d);
    return s;
}

/* The environment's directory (data.mdb and lock.mdb). */
static ld_status lm_location(ld_stdb *db, char *buf, size_t buflen)
{
    if (!db || !buf) return lm_fail(db ? db->st : NULL, LD_INVALID, "location: NULL argument");
    int n = snprintf(buf, buflen, "%s", db->path);
    return n >= 0 && (size_t)n < buflen ? LD_OK : LD_INVALID;
}

/* The lengths of data.mdb and lock.mdb. data.mdb ends at the highest page ever used: pages freed
 * inside it are reused, and only a close that packs it shrinks it (lmdb_compact.h). */
static ld_status lm_size_bytes(ld_stdb *db, uint64_t *out)
{
    if (!db || !out) return lm_fail(db ? db->st : NULL, LD_INVALID, "size_bytes: NULL argument");
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    size_t n = strlen(db->path) + 16;
    char *p = malloc(n);
    if (!p) return lm_fail(db->st, LD_NOMEM, "out of memory sizing %s", db->path);
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, n, "%s/%s", db->path, files[i]);
        struct stat sb;
        if (stat(p, &sb) == 0)
            total += (uint64_t)sb.st_size;
        else if (errno != ENOENT) {
            ld_status s = lm_fail(db->st, LD_IO, "cannot stat %s: %s", p, strerror(errno));
            free(p);
            return s;
        }
    }
    free(p);
    *out = total;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Transactions
 * ------------------------------------------------------------------------------------------- */

/* Starts t's LMDB txn (renewing a pooled read txn when t has one) and takes maplock shared for
 * its life. On failure t->mt is NULL and no lock is held. */
static ld_status lm_txn_start(ld_sttxn *t)
{
    ld_stdb *db = t->db;
    for (unsigned attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&db->maplock);
        if (db->broken) {
            pthread_rwlock_unlock(&db->maplock);
            return lm_fail(db->st, LD_IO, "%s lost its memory map earlier; close and reopen it",
                           db->path);
        }
        int rc;
        bool renew = t->mt != NULL;
        if (t->write) {
            /* Only the writer changes the spaces, and `writing` orders one writer after the
             * last; no dbilock here, as LMDB's writer mutex is taken inside (lock order). */
            rc = mdb_txn_begin(db->env, NULL, 0, &t->mt);
            t->nspaces = db->nspaces;
        } else {
            /* Under dbilock, the snapshot and the spaces published so far agree: a commit that
             * creates a space publishes it in the same exclusive section. */
            pthread_rwlock_rdlock(&db->dbilock);
            if (renew)
                rc = mdb_txn_renew(t->mt);
            else
                rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &t->mt);
            t->nspaces = db->nspaces;
            pthread_rwlock_unlock(&db->dbilock);
        }
        if (rc == 0) {
            t->locked = true;
            return LD_OK;
        }
        pthread_rwlock_unlock(&db->maplock);
        if (renew) mdb_txn_abort(t->mt); /* still reset: frees it; the retry begins afresh */
        t->mt = NULL;
        if (attempt < 3 && rc == MDB_MAP_RESIZED) {
            ld_status s = lm_adopt_mapsize(db);
            if (s != LD_OK) return s;
            continue;
        }
        if (attempt < 3 && renew) continue;
        return lm_engine_fail(db, rc, "begin");
    }
}

/* Aborts t's LMDB write txn (if any) and releases maplock. Open cursors lose their LMDB cursor
 * (LMDB frees a write txn's cursors with it) but keep their position for lm_cursors_reopen. */
static void lm_write_drop(ld_sttxn *t)
{
    ld_stdb *db = t->db;
    if (t->mt) {
        /* Aborting releases the handles of spaces this txn created: a DBI change. */
        bool dbis = t->ncreated > 0;
        if (dbis) pthread_rwlock_wrlock(&db->dbilock);
        mdb_txn_abort(t->mt);
        if (dbis) pthread_rwlock_unlock(&db->dbilock);
        t->mt = NULL;
    }
    t->ncreated = 0;
    for (ld_stcursor *c = t->cursors; c; c = c->next)
        c->mc = NULL;
    if (t->locked) {
        pthread_rwlock_unlock(&db->maplock);
        t->locked = false;
    }
}

/* Ends the write txn for good: frees what it held and lets the next writer in. */
static void lm_write_end(ld_sttxn *t)
{
    lm_write_drop(t);
    lm_log_reset(&t->log);
    t->failed = LD_OK;
    t->cursors = NULL;
    atomic_store(&t->db->writing, false);
}

/* Ends a read txn: resets it into the pool, or frees it when the pool is full. */
static void lm_read_end(ld_sttxn *t)
{
    ld_stdb *db = t->db;
    mdb_txn_reset(t->mt);
    pthread_rwlock_unlock(&db->maplock);
    t->locked = false;
    pthread_mutex_lock(&db->poollock);
    if (db->nidle < LM_POOL_IDLE) {
        t->next_idle = db->idle;
        db->idle = t;
        db->nidle++;
        pthread_mutex_unlock(&db->poollock);
        return;
    }
    pthread_mutex_unlock(&db->poollock);
    mdb_txn_abort(t->mt);
    free(t);
}

/* Re-opens the open cursors of t after a replay, each on the key it was on. */
static int lm_cursors_reopen(ld_sttxn *t)
{
    for (ld_stcursor *c = t->cursors; c; c = c->next) {
        MDB_dbi dbi;
        /* storage.h forbids writing to a cursor's space, so it exists now iff it did before. */
        if (!c->exists || !lm_space_find(t, c->space, &dbi)) continue;
        int rc = mdb_cursor_open(t->mt, dbi, &c->mc);
        if (rc != 0) return rc;
        if (c->state != LM_CUR_ROW) continue;
        MDB_val k = {c->poslen, c->pos}, v;
        rc = mdb_cursor_get(c->mc, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND)
            c->state = LM_CUR_END;
        else if (rc != 0)
            return rc;
    }
    return 0;
}

/* Applies one put or del to t's LMDB txn, creating the space for a put. k and v are copied:
 * LMDB may write to the MDB_vals it is given. */
static int lm_apply(ld_sttxn *t, int op, const char *space, const MDB_val *key, const MDB_val *val)
{
    MDB_val k = *key, v = *val;
    MDB_dbi dbi;
    if (!lm_space_find(t, space, &dbi)) {
        if (op == LM_OP_DEL) return MDB_NOTFOUND;
        int rc = lm_space_create(t, space, &dbi);
        if (rc != 0) return rc;
    }
    return op == LM_OP_PUT ? mdb_put(t->mt, dbi, &k, &v, 0) : mdb_del(t->mt, dbi, &k, NULL);
}

/* Re-applies the logged operations of t, then `pending`, in t's fresh txn. */
static int lm_replay(ld_sttxn *t, const lm_pending *pending)
{
    for (const lm_chunk *c = t->log.head; c; c = c->next) {
        size_t off = 0;
        while (off < c->used) {
            lm_rec r;
            memcpy(&r, c->data + off, sizeof r);
            const unsigned char *p = c->data + off + sizeof r;
            char space[LM_SPACE_MAX + 1];
            memcpy(space, p, r.slen);
            space[r.slen] = '\0';
            MDB_val k = {r.klen, (void *)(p + r.slen)};
            MDB_val v = {r.vlen, r.vlen ? (void *)(p + r.slen + r.klen) : (void *)lm_empty};
            int rc = lm_apply(t, r.op, space, &k, &v);
            /* A logged del did delete: missing now, the replay has diverged (a bug). */
            if (rc != 0) return rc == MDB_NOTFOUND ? MDB_BAD_TXN : rc;
            off += sizeof r + r.slen + r.klen + r.vlen;
        }
    }
    if (!pending) return 0;
    return lm_apply(t, pending->op, pending->space, &pending->k, &pending->v);
}

/* MDB_MAP_FULL hit the write txn t (its LMDB txn is still open, or already gone when commit
 * failed): abort it, grow the map once no txn is active, start again and replay the log, then
 * apply `pending` (the put or del that hit it; NULL at commit). LMDB cannot resize under an open
 * txn, hence the replay: the caller keeps one txn that behaves as if nothing happened.
 * On failure t is left for abort only. */
static ld_status lm_regrow(ld_sttxn *t, const lm_pending *pending)
{
    ld_stdb *db = t->db;
    uint64_t extra = 2u * (t->log.bytes + (pending ? pending->k.mv_size + pending->v.mv_size : 0));
    extra += LM_MIB;
    ld_status s;
    for (unsigned round = 0; round < LM_GROW_ROUNDS; round++) {
        lm_write_drop(t);
        s = lm_grow(db, extra, LM_GROW_WAIT_MS, false);
        if (s == LD_BUSY)
            s = lm_fail(db->st, LD_FULL,
                        "the map of %s is full and cannot grow: read transactions stayed open "
                        "for %u ms",
                        db->path, LM_GROW_WAIT_MS);
        if (s != LD_OK) goto failed;
        s = lm_txn_start(t);
        if (s != LD_OK) goto failed;
        int rc = lm_replay(t, pending);
        if (rc == 0) rc = lm_cursors_reopen(t);
        if (rc == 0) return LD_OK;
        if (rc != MDB_MAP_FULL) {
            s = lm_engine_fail(db, rc, "replaying a transaction after growing the map");
            goto failed;
        }
        extra *= 2u;
    }
    s = lm_fail(db->st, LD_FULL, "the map of %s is still full after growing it %u times", db->path,
                LM_GROW_ROUNDS);
failed:
    lm_write_drop(t);
    t->failed = s;
    return s;
}

static ld_status lm_begin(ld_stdb *db, uint32_t flags, ld_sttxn **out)
{
    if (!db || !out ||
        (flags != LD_TXN_READ && flags != LD_TXN_WRITE && flags != (LD_TXN_WRITE | LD_TXN_LAZY)))
        return lm_fail(db ? db->st : NULL, LD_INVALID, "begin: bad argument");
    if (flags & LD_TXN_WRITE) {
        bool idle = false;
        if (!atomic_compare_exchange_strong(&db->writing, &idle, true))
            return lm_fail(db->st, LD_BUSY, "begin: a write transaction is already open on %s",
                           db->path);
        lm_grow_early(db);
        ld_sttxn *t = &db->wtxn;
        t->lazy = (flags & LD_TXN_LAZY) && db->st->sync == LM_SYNC_FULL;
        t->failed = LD_OK;
        t->ncreated = 0;
        t->cursors = NULL;
        ld_status s = lm_txn_start(t);
        if (s != LD_OK) {
            atomic_store(&db->writing, false);
            return s;
        }
        *out = t;
        return LD_OK;
    }
    pthread_mutex_lock(&db->poollock);
    ld_sttxn *t = db->idle;
    if (t) {
        db->idle = t->next_idle;
        db->nidle--;
    }
    pthread_mutex_unlock(&db->poollock);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return lm_fail(db->st, LD_NOMEM, "begin: out of memory");
        t->db = db;
    }
    t->next_idle = NULL;
    ld_status s = lm_txn_start(t);
    if (s != LD_OK) {
        free(t);
        return s;
    }
    *out = t;
    return LD_OK;
}

static ld_status lm_commit(ld_sttxn *t)
{
    if (!t) return lm_fail(NULL, LD_INVALID, "commit: NULL transaction");
    if (!t->write) {
        lm_read_end(t);
        return LD_OK;
    }
    ld_stdb *db = t->db;
    ld_status s = LD_OK;
    if (t->failed != LD_OK) {
        /* commit's statuses per storage.h: a full map or disk stays LD_FULL, the rest is IO. */
        ld_status why = (t->failed == LD_FULL || t->failed == LD_BUSY) ? t->failed : LD_IO;
        s = lm_fail(db->st, why,
                    "commit refused on %s: an earlier operation of the transaction failed; "
                    "rolled back",
                    db->path);
        lm_write_end(t);
        return s;
    }
    /* Lazy: skip the meta page's flush (MDB_NOMETASYNC: data pages are still synced, so the
     * file stays consistent; a power loss may take this commit). Only the writer thread changes
     * the flag, and only around its own commit. */
    if (t->lazy) mdb_env_set_flags(db->env, MDB_NOMETASYNC, 1);
    for (;;) {
        /* Spaces this txn created become visible to txns that begin after the commit, and only
         * to them: publish them in the same exclusive section as the commit. */
        bool publish = t->ncreated > 0;
        if (publish) pthread_rwlock_wrlock(&db->dbilock);
        int rc = mdb_txn_commit(t->mt); /* frees the txn, also on failure */
        t->mt = NULL;
        if (rc == 0 && publish) {
            memcpy(&db->spaces[db->nspaces], t->created, t->ncreated * sizeof t->created[0]);
            db->nspaces += t->ncreated;
        }
        if (publish) pthread_rwlock_unlock(&db->dbilock);
        t->ncreated = 0;
        if (rc == 0) break;
        if (rc == MDB_MAP_FULL) {
            s = lm_regrow(t, NULL);
            if (s == LD_OK) continue;
        } else {
            s = lm_engine_fail(db, rc, "commit");
        }
        break;
    }
    if (t->lazy) mdb_env_set_flags(db->env, MDB_NOMETASYNC, 0);
    lm_write_end(t);
    return s;
}

static void lm_abort(ld_sttxn *t)
{
    if (!t) return;
    if (t->write)
        lm_write_end(t);
    else
        lm_read_end(t);
}

/* ---------------------------------------------------------------------------------------------
 * Reads and writes
 * ------------------------------------------------------------------------------------------- */

/* Checks what every keyed call shares. */
static ld_status lm_keyed(const ld_sttxn *t, const char *op, const char *space, const void *key,
                          size_t klen)
{
    const ld_storage *st = t->db->st;
    if (!lm_space_ok(space))
        return lm_fail(st, LD_INVALID, "%s: invalid key space name \"%.40s\"", op,
                       space ? space : "(null)");
    if (!key || klen < 1 || klen > LD_STORAGE_MAX_KEY)
        return lm_fail(st, LD_INVALID, "%s: key length %zu not in 1..%u", op, klen,
                       LD_STORAGE_MAX_KEY);
    if (t->failed != LD_OK)
        return lm_fail(st, t->failed, "%s: the transaction failed earlier; abort it", op);
    return LD_OK;
}

/* Marks the write txn unusable after an engine error, per storage.h. */
static ld_status lm_txn_error(ld_sttxn *t, int rc, const char *what)
{
    ld_status s = lm_engine_fail(t->db, rc, what);
    if (t->write) t->failed = s;
    return s;
}

static ld_status lm_get(ld_sttxn *t, const char *space, const void *key, size_t klen,
                        const void **val, size_t *vlen)
{
    if (!t || !val || !vlen) return lm_fail(NULL, LD_INVALID, "get: NULL argument");
    ld_status s = lm_keyed(t, "get", space, key, klen);
    if (s != LD_OK) return s;
    MDB_dbi dbi;
    if (!lm_space_find(t, space, &dbi)) return LD_NOT_FOUND;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t->mt, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return LD_NOT_FOUND;
    if (rc != 0) return lm_txn_error(t, rc, "get");
    *val = v.mv_size ? v.mv_data : lm_empty;
    *vlen = v.mv_size;
    return LD_OK;
}

/* put and del: applies op, growing the map and replaying the txn when it is full, then logs
 * it for a later replay. */
static ld_status lm_write(ld_sttxn *t, int op, const char *space, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
    const char *name = op == LM_OP_PUT ? "put" : "del";
    MDB_val k = {klen, (void *)key}, v = {vlen, vlen ? (void *)val : (void *)lm_empty};
    int rc = lm_apply(t, op, space, &k, &v);
    if (rc == MDB_NOTFOUND) return LD_NOT_FOUND; /* del of an absent key: changes nothing */
    if (rc == MDB_MAP_FULL) {
        lm_pending p = {.op = op, .space = space, .k = k, .v = v};
        ld_status s = lm_regrow(t, &p);
        if (s != LD_OK) return s;
    } else if (rc == MDB_DBS_FULL) {
        t->failed = LD_FULL;
        return lm_fail(t->db->st, LD_FULL, "%s: %s already has %u key spaces, the most it can hold",
                       name, t->db->path, LM_MAX_SPACES);
    } else if (rc != 0) {
        return lm_txn_error(t, rc, name);
    }
    if (!lm_log_add(&t->log, op, space, &k, &v)) {
        t->failed = LD_NOMEM;
        return lm_fail(t->db->st, LD_NOMEM, "%s: out of memory logging the transaction", name);
    }
    return LD_OK;
}

static ld_status lm_put(ld_sttxn *t, const char *space, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
    if (!t) return lm_fail(NULL, LD_INVALID, "put: NULL transaction");
    const ld_storage *st = t->db->st;
    if (!t->write) return lm_fail(st, LD_INVALID, "put: read-only transaction");
    if (vlen > LD_STORAGE_MAX_VALUE || (!val && vlen))
        return lm_fail(st, LD_INVALID, "put: value length %zu not in 0..%u or NULL value", vlen,
                       LD_STORAGE_MAX_VALUE);
    ld_status s = lm_keyed(t, "put", space, key, klen);
    if (s != LD_OK) return s;
    return lm_write(t, LM_OP_PUT, space, key, klen, val, vlen);
}

static ld_status lm_del(ld_sttxn *t, const char *space, const void *key, size_t klen)
{
    if (!t) return lm_fail(NULL, LD_INVALID, "del: NULL transaction");
    if (!t->write) return lm_fail(t->db->st, LD_INVALID, "del: read-only transaction");
    ld_status s = lm_keyed(t, "del", space, key, klen);
    if (s != LD_OK) return s;
    return lm_write(t, LM_OP_DEL, space, key, klen, NULL, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Cursors
 * ------------------------------------------------------------------------------------------- */
static ld_status lm_cursor_open(ld_sttxn *t, const char *space, ld_stcursor **out)
{
    if (!t || !out) return lm_fail(NULL, LD_INVALID, "cursor_open: NULL argument");
    const ld_storage *st = t->db->st;
    if (!lm_space_ok(space))
        return lm_fail(st, LD_INVALID, "cursor_open: invalid key space name \"%.40s\"",
                       space ? space : "(null)");
    if (t->failed != LD_OK)
        return lm_fail(st, t->failed, "cursor_open: the transaction failed earlier; abort it");
    ld_stcursor *c = calloc(1, sizeof *c);
    if (!c) return lm_fail(st, LD_NOMEM, "cursor_open: out of memory");
    c->txn = t;
    c->state = LM_CUR_NOWHERE;
    snprintf(c->space, sizeof c->space, "%s", space);
    MDB_dbi dbi;
    if (lm_space_find(t, space, &dbi)) {
        int rc = mdb_cursor_open(t->mt, dbi, &c->mc);
        if (rc != 0) {
            free(c);
            return lm_txn_error(t, rc, "cursor_open");
        }
        c->exists = true;
    }
    if (t->write) {
        c->next = t->cursors;
        t->cursors = c;
    }
    *out = c;
    return LD_OK;
}

static void lm_cursor_close(ld_stcursor *c)
{
    if (!c) return;
    ld_sttxn *t = c->txn;
    if (c->mc) mdb_cursor_close(c->mc);
    if (t->write)
        for (ld_stcursor **p = &t->cursors; *p; p = &(*p)->next)
            if (*p == c) {
                *p = c->next;
                break;
            }
    free(c);
}

/* Hands out the entry the LMDB cursor landed on (rc from mdb_cursor_get), or ends the cursor.
 * Always inlined: as a call with eight arguments it added about 55 instructions to every cursor
 * step, where LMDB's own step takes about 140 (callgrind; bench/storage scans). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline ld_status
lm_cursor_row(ld_stcursor *c, int rc, const MDB_val *k, const MDB_val *v, const void **kp,
              size_t *kl, const void **vp, size_t *vl)
{
    if (rc == MDB_NOTFOUND) {
        c->state = LM_CUR_END;
        return LD_NOT_FOUND;
    }
    if (rc != 0) {
        c->state = LM_CUR_END;
        return lm_txn_error(c->txn, rc, "cursor");
    }
    c->state = LM_CUR_ROW;
    if (c->txn->write) {
        memcpy(c->pos, k->mv_data, k->mv_size);
        c->poslen = k->mv_size;
    }
    *kp = k->mv_data;
    *kl = k->mv_size;
    *vp = v->mv_size ? v->mv_data : lm_empty;
    *vl = v->mv_size;
    return LD_OK;
}

/* Common checks of the positioning calls; LD_OK means go on with c->mc (possibly NULL). */
static ld_status lm_cursor_enter(ld_stcursor *c, const char *op)
{
    ld_sttxn *t = c->txn;
    if (t->failed != LD_OK)
        return lm_fail(t->db->st, t->failed, "%s: the transaction failed earlier; abort it", op);
    return LD_OK;
}

static ld_status lm_cursor_seek(ld_stcursor *c, const void *key, size_t klen, const void **kp,
                                size_t *kl, const void **vp, size_t *vl)
{
    if (!c || (!key && klen) || !kp || !kl || !vp || !vl)
        return lm_fail(NULL, LD_INVALID, "cursor_seek: NULL argument");
    if (klen > LD_STORAGE_MAX_KEY)
        return lm_fail(c->txn->db->st, LD_INVALID, "cursor_seek: key length %zu over %u", klen,
                       LD_STORAGE_MAX_KEY);
    ld_status s = lm_cursor_enter(c, "cursor_seek");
    if (s != LD_OK) return s;
    if (!c->mc) {
        c->state = LM_CUR_END;
        return LD_NOT_FOUND;
    }
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_cursor_get(c->mc, &k, &v, klen ? MDB_SET_RANGE : MDB_FIRST);
    return lm_cursor_row(c, rc, &k, &v, kp, kl, vp, vl);
}

static ld_status lm_cursor_next(ld_stcursor *c, const void **kp, size_t *kl, const void **vp,
                                size_t *vl)
{
    if (!c || !kp || !kl || !vp || !vl)
        return lm_fail(NULL, LD_INVALID, "cursor_next: NULL argument");
    switch (c->state) {
    case LM_CUR_NOWHERE:
        return lm_cursor_seek(c, NULL, 0, kp, kl, vp, vl);
    case LM_CUR_ROW: {
        ld_status s = lm_cursor_enter(c, "cursor_next");
        if (s != LD_OK) return s;
        if (!c->mc) return LD_NOT_FOUND;
        MDB_val k, v;
        int rc = mdb_cursor_get(c->mc, &k, &v, MDB_NEXT);
        return lm_cursor_row(c, rc, &k, &v, kp, kl, vp, vl);
    }
    default:
        /* LMDB's MDB_NEXT on a cursor that failed a seek would restart at the first key. */
        return LD_NOT_FOUND;
    }
}

static ld_status lm_cursor_last(ld_stcursor *c, const void **kp, size_t *kl, const void **vp,
                                size_t *vl)
{
    if (!c || !kp || !kl || !vp || !vl)
        return lm_fail(NULL, LD_INVALID, "cursor_last: NULL argument");
    ld_status s = lm_cursor_enter(c, "cursor_last");
    if (s != LD_OK) return s;
    if (!c->mc) {
        c->state = LM_CUR_END;
        return LD_NOT_FOUND;
    }
    MDB_val k, v;
    int rc = mdb_cursor_get(c->mc, &k, &v, MDB_LAST);
    return lm_cursor_row(c, rc, &k, &v, kp, kl, vp, vl);
}

/* ---------------------------------------------------------------------------------------------
 * Online copy (ABI 1.3): a read-only environment of our own beside the writer (another process,
 * litedistd), so the copy reads one committed state without stopping it; mdb_env_copy2 with
 * compaction writes only the pages in use. The copy goes to a hidden directory first and is
 * renamed into place, so dest_dir never shows a half-written database.
 * ------------------------------------------------------------------------------------------- */
static ld_status lm_copy(ld_storage *st, const char *dir, const char *name, const char *dest_dir)
{
    if (!st || !dir || !name || !dest_dir) return lm_fail(st, LD_INVALID, "copy: NULL argument");
    if (!lm_dbname_ok(name, strlen(name)))
        return lm_fail(st, LD_INVALID, "copy: invalid database name \"%.80s\"", name);
    char *src = lm_path(dir, "", name, "");
    char *data = lm_path(dir, "", name, "/data.mdb");
    char *tmp = lm_path(dest_dir, ".copy-", name, "");
    char *dst = lm_path(dest_dir, "", name, "");
    MDB_env *env = NULL;
    ld_status s = LD_OK;
    struct stat sb;
    if (!src || !data || !tmp || !dst) {
        s = lm_fail(st, LD_NOMEM, "out of memory copying database %s", name);
        goto out;
    }
    if (stat(data, &sb) != 0) {
        int e = errno;
        s = e == ENOENT ? lm_fail(st, LD_NOT_FOUND, "copy: no database %s in %s", name, dir)
                        : lm_fail(st, lm_errno_status(e), "cannot read %s: %s", data, strerror(e));
        goto out;
    }
    if (stat(src, &sb) == 0) {
        pthread_mutex_lock(&lm_reg_lock);
        bool open_here = lm_reg_find(sb.st_dev, sb.st_ino) != NULL;
        pthread_mutex_unlock(&lm_reg_lock);
        if (open_here) {
            s = lm_fail(st, LD_BUSY, "copy: %s is open in this process", src);
            goto out;
        }
    }
    if (lstat(dst, &sb) == 0) {
        s = lm_fail(st, LD_EXISTS, "copy: %s already exists", dst);
        goto out;
    }
    if (mkdir(tmp, 0755) != 0) {
        int e = errno;
        s = lm_fail(st, lm_errno_status(e), "cannot create %s: %s", tmp, strerror(e));
        goto out;
    }
    const char *what = "creating the environment";
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_set_maxreaders(env, LM_MAX_READERS);
    if (rc == 0) rc = mdb_env_set_maxdbs(env, LM_MAX_SPACES);
    if (rc == 0) {
        /* No map size: a read-only open takes the one recorded in the file. */
        what = "opening read-only";
        rc = mdb_env_open(env, src, MDB_RDONLY | MDB_NOTLS, 0644);
    }
    if (rc == 0) {
        what = "copying";
        rc = mdb_env_copy2(env, tmp, MDB_CP_COMPACT);
        /* The writer grew the map after we opened: adopt its size and copy again (the failed
         * attempt wrote nothing it keeps: mdb_env_copy2 creates data.mdb only as it starts). */
        for (int tries = 0; rc == MDB_MAP_RESIZED && tries < 3; tries++) {
            char *partial = lm_path(dest_dir, ".copy-", name, "/data.mdb");
            if (partial) unlink(partial);
            free(partial);
            rc = mdb_env_set_mapsize(env, 0);
            if (rc == 0) rc = mdb_env_copy2(env, tmp, MDB_CP_COMPACT);
        }
    }
    if (rc != 0) {
        s = lm_fail(st, lm_map(rc), "%s %s: %s (lmdb %d)", what, src, mdb_strerror(rc), rc);
        lm_rmdir_files(tmp);
        goto out;
    }
    /* On disk before it gets its name: a backup that says done must survive a power loss. */
    free(data);
    data = lm_path(dest_dir, ".copy-", name, "/data.mdb");
    int fd = data ? open(data, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0 || fsync(fd) != 0) {
        int e = data ? errno : ENOMEM;
        s = lm_fail(st, lm_errno_status(e), "cannot flush the copy of %s: %s", name, strerror(e));
        if (fd >= 0) close(fd);
        lm_rmdir_files(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, dst) != 0) {
        int e = errno;
        s = lm_fail(st, lm_errno_status(e), "cannot rename %s to %s: %s", tmp, dst, strerror(e));
        lm_rmdir_files(tmp);
    }
out:
    if (env) mdb_env_close(env);
    free(src);
    free(data);
    free(tmp);
    free(dst);
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------------------------- */
static const ld_storage_v1 lm_ops = {
    .abi_major = LD_ABI_MAJOR,
    .abi_minor = LD_ABI_MINOR,
    .struct_size = (uint32_t)sizeof(ld_storage_v1),
    .create = lm_create,
    .destroy = lm_destroy,
    .open = lm_open,
    .close = lm_close,
    .drop = lm_drop,
    .list = lm_list,
    .last_error = lm_last_error,
    .begin = lm_begin,
    .commit = lm_commit,
    .abort = lm_abort,
    .get = lm_get,
    .put = lm_put,
    .del = lm_del,
    .cursor_open = lm_cursor_open,
    .cursor_seek = lm_cursor_seek,
    .cursor_next = lm_cursor_next,
    .cursor_close = lm_cursor_close,
    .cursor_last = lm_cursor_last,
    .size_bytes = lm_size_bytes,
    .location = lm_location,
    .copy = lm_copy,
};

static const ld_plugin_descriptor lm_descriptor = {
    .abi_major = LD_ABI_MAJOR,
    .abi_minor = LD_ABI_MINOR,
    .struct_size = (uint32_t)sizeof(ld_plugin_descriptor),
    .kind = LD_PLUGIN_KIND_STORAGE,
    .name = "lmdb",
    .version = "1.0.0",
    .ops = &lm_ops,
};

static const ld_plugin_descriptor *lm_entry(const ld_host *host)
{
    if (!host) return NULL;
    if (host->abi_major != LD_ABI_MAJOR) {
        /* plugin.h: read nothing else of a struct whose major differs, so not even its log. */
        fprintf(stderr,
                "storage-lmdb: host speaks ABI %u.x, this plugin %d.%d; rebuild the plugin "
                "against the host's include/litedist\n",
                host->abi_major, LD_ABI_MAJOR, LD_ABI_MINOR);
        return NULL;
    }
    if (!LD_HOST_HAS(host, plugin_path) || !host->log) {
        fprintf(stderr, "storage-lmdb: host table too short (%u bytes) for ABI 1.0\n",
                host->struct_size);
        return NULL;
    }
    /* storage.h promises keys of up to 511 bytes; a liblmdb built with a smaller MDB_MAXKEYSIZE
     * could not store them. */
    MDB_env *env = NULL;
    int maxkey = 0;
    if (mdb_env_create(&env) == 0) {
        maxkey = mdb_env_get_maxkeysize(env);
        mdb_env_close(env);
    }
    if (maxkey < (int)LD_STORAGE_MAX_KEY) {
        host->log(host, LD_LOG_ERROR,
                  "%s allows keys of %d bytes, the storage ABI needs %u; use a liblmdb built with "
                  "the default MDB_MAXKEYSIZE",
                  mdb_version(NULL, NULL, NULL), maxkey, LD_STORAGE_MAX_KEY);
        return NULL;
    }
    return &lm_descriptor;
}

LD_PLUGIN_ENTRY(lm_entry)
