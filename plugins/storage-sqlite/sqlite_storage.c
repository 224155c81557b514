/* SQLite storage plugin: implements ld_storage_v1 (include/litedist/storage.h) with one WAL-mode
 * SQLite file per logical database and one WITHOUT ROWID table per key space. */
#include <litedist/storage.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The same source builds against every 1.x header (tests/abi builds it against the frozen 1.0
 * and 1.1 copies as well): what an older header lacks the build leaves out, and the table then
 * declares that older minor, so the host never asks for it. */
#if LD_ABI_MINOR >= 1
#define SQ_TXN_LAZY LD_TXN_LAZY
#else
#define SQ_TXN_LAZY 0u
#endif

/* ---------------------------------------------------------------------------------------------
 * Limits and tunables
 * ------------------------------------------------------------------------------------------- */
#define SQ_SPACE_MAX           32u /* longest key space name, per storage.h */
#define SQ_DBNAME_MAX          63u /* longest database name, per storage.h */
#define SQ_POOL_IDLE           8u  /* idle read connections kept per database */
#define SQ_POOL_MAX            64u /* open read connections per database; beyond that begin is BUSY */
#define SQ_BUSY_DEFAULT        5000
#define SQ_GIVE_BACK_MIN_BYTES (1LL << 20)   /* free pages a clean close leaves alone */
#define SQ_GIVE_BACK_MAX_BYTES (256LL << 20) /* free pages one clean close hands back */
#define SQ_PAGE_K_DEFAULT      8             /* KiB; see sq_conn_open */
/* MiB of the database file each connection reads through a mapping (SQLite caps it at its
 * compile-time SQLITE_MAX_MMAP_SIZE, 2 GiB on Debian). Off where address space is scarce. */
#define SQ_MMAP_M_DEFAULT (sizeof(void *) >= 8 ? 1024 : 0)
#define SQ_MMAP_M_MAX     1048576
#define SQ_JOURNAL_LIMIT  "67108864" /* bytes a checkpointed WAL is truncated to */
#define SQ_WAL_CHECKPOINT 4000       /* WAL pages that wake the checkpointer */
#define SQ_WAL_STEP       1000       /* ... and again each time it grew by this many more */
#define SQ_WAL_RESTART    8000       /* WAL pages past which the writer checkpoints too */
#define SQ_ERRBUF         512

enum { SQ_SYNC_OFF, SQ_SYNC_NORMAL, SQ_SYNC_FULL };

/* Statements cached per key space and connection. */
enum { SQ_GET, SQ_PUT, SQ_DEL, SQ_SEEK, SQ_LAST, SQ_NSTMT };

/* SQL text around the table name, so that names are never formatted from a variable format. */
static const char *const sq_sql[SQ_NSTMT][2] = {
    [SQ_GET] = {"SELECT v FROM ks_", " WHERE k = ?1"},
    [SQ_PUT] = {"INSERT OR REPLACE INTO ks_", " (k, v) VALUES (?1, ?2)"},
    [SQ_DEL] = {"DELETE FROM ks_", " WHERE k = ?1"},
    [SQ_SEEK] = {"SELECT k, v FROM ks_", " WHERE k >= ?1 ORDER BY k"},
    [SQ_LAST] = {"SELECT k, v FROM ks_", " ORDER BY k DESC LIMIT 1"},
};

/* Returned for zero-length values: sqlite3_column_blob gives NULL for them, and callers must be
 * able to tell an empty value from a missing pointer. */
static const unsigned char sq_empty[1];

/* ---------------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------------- */
struct ld_storage {
    const ld_host *host;
    int sync;          /* SQ_SYNC_* */
    int busy_ms;       /* sqlite3_busy_timeout */
    long long cache_k; /* PRAGMA cache_size in KiB; 0 keeps SQLite's default */
    long long mmap_m;  /* PRAGMA mmap_size in MiB; 0: reads go through read(2) */
    int page_k;        /* PRAGMA page_size of new database files, in KiB */
};

/* One key space as seen by one connection. */
typedef struct sq_space {
    char name[SQ_SPACE_MAX + 1];
    sqlite3_stmt *st[SQ_NSTMT]; /* lazily prepared; st[SQ_SEEK] is the idle cursor statement */
    bool known;                 /* the table exists in every snapshot this connection will see */
    bool created;               /* created by the open write transaction (gone if it rolls back) */
    uint64_t missing_gen;       /* transaction generation in which the table was seen absent */
} sq_space;

typedef struct sq_conn sq_conn;

/* A transaction lives inside its connection: a connection runs one transaction at a time, so
 * begin() allocates nothing. */
struct ld_sttxn {
    sq_conn *conn;
    bool write;
    bool failed;           /* an engine error hit a write: only abort (or a refused commit) */
    sqlite3_stmt *pending; /* statement whose current row the caller may still be reading */
};

struct sq_conn {
    ld_stdb *db;
    sqlite3 *h;
    bool write;
    sqlite3_stmt *begin, *commit, *rollback, *pin, *exists;
    sq_space **spaces;
    size_t nspaces, capspaces;
    sq_space *last_hit; /* the core tends to hit the same space many times in a row */
    size_t ncreated;    /* spaces with `created` set */
    uint64_t gen;       /* counts transactions, for sq_space.missing_gen */
    bool in_txn;
    bool lazy; /* the write txn runs at synchronous=NORMAL instead of FULL (LD_TXN_LAZY) */
    struct ld_sttxn txn;
    sq_conn *next_idle;
};

struct ld_stdb {
    ld_storage *st;
    char *path; /* <dir>/<name>.db */
    sq_conn *writer;
    pthread_mutex_t lock; /* guards the read pool below */
    sq_conn *idle;
    unsigned nidle, nreaders;
    /* The checkpointer: a thread with a connection of its own that copies the WAL into the
     * file when the writer's commits have grown it past SQ_WAL_CHECKPOINT pages. Left to
     * SQLite, the commit that crossed the mark would do it, and every write queued behind that
     * commit would wait for 32 MB to be copied and synced. */
    sq_conn *ckpt;
    pthread_t ckpt_thread;
    bool ckpt_started;
    pthread_mutex_t ckpt_mu; /* guards the two flags below */
    pthread_cond_t ckpt_cv;
    bool ckpt_wanted, ckpt_stop;
    pthread_mutex_t ckpt_run; /* held while either thread checkpoints */
    int wal_pages, wal_wake;  /* the writer's thread only: the WAL's length, the next wake */
};

enum { SQ_CUR_NOWHERE, SQ_CUR_ROW, SQ_CUR_END };

struct ld_stcursor {
    ld_sttxn *txn;
    sq_space *sp;     /* NULL when the space does not exist in the snapshot: always empty */
    sqlite3_stmt *st; /* the cursor's own SQ_SEEK statement */
    int state;
};

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */
static _Thread_local char sq_errbuf[SQ_ERRBUF];

static const char *sq_status_name(ld_status s)
{
    static const char *const names[] = {"OK",          "NOT_FOUND", "EXISTS",  "INVALID",
                                        "IO",          "NOMEM",     "CORRUPT", "BUSY",
                                        "UNSUPPORTED", "FULL",      "DENIED",  "INTERNAL"};
    return s >= 0 && (size_t)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* Records a failure for last_error() (one buffer per thread, shared by every instance) and
 * logs it; returns s so callers can write `return sq_fail(...)`. */
static ld_status sq_fail(const ld_storage *st, ld_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static ld_status sq_fail(const ld_storage *st, ld_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sq_errbuf, sizeof sq_errbuf, fmt, ap);
    va_end(ap);
    if (n < 0) snprintf(sq_errbuf, sizeof sq_errbuf, "unknown error");
    if (st && st->host && st->host->log) {
        int level = (s == LD_BUSY || s == LD_INVALID) ? LD_LOG_WARN : LD_LOG_ERROR;
        st->host->log(st->host, level, "%s (%s)", sq_errbuf, sq_status_name(s));
    }
    return s;
}

/* Maps an SQLite result code (primary or extended) to an ld_status. */
static ld_status sq_map(sqlite3 *h, int rc)
{
    int e = h ? sqlite3_system_errno(h) : 0;
    switch (rc & 0xff) {
    case SQLITE_OK:
        return LD_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return LD_BUSY;
    case SQLITE_NOMEM:
        return LD_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return LD_CORRUPT;
    case SQLITE_FULL:
        return LD_FULL;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
        return LD_DENIED;
    case SQLITE_CANTOPEN:
        return (e == EACCES || e == EPERM || e == EROFS) ? LD_DENIED : LD_IO;
    case SQLITE_IOERR:
        return e == ENOSPC ? LD_FULL : LD_IO;
    case SQLITE_TOOBIG:
        return LD_INVALID;
    case SQLITE_MISUSE:
    case SQLITE_INTERNAL:
    case SQLITE_CONSTRAINT:
        return LD_INTERNAL;
    default:
        return LD_IO;
    }
}

/* Fails with the engine's own message for `rc` on connection c. */
static ld_status sq_engine_fail(const sq_conn *c, int rc, const char *what)
{
    return sq_fail(c->db->st, sq_map(c->h, rc), "%s on %s: %s (sqlite %d)", what, c->db->path,
                   sqlite3_errmsg(c->h), rc);
}

/* ---------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------- */
static bool sq_lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z][a-z0-9_]{0,31}: also what keeps table names free of SQL injection. */
static bool sq_space_ok(const char *s)
{
    if (!s || !(s[0] >= 'a' && s[0] <= 'z')) return false;
    size_t i = 1;
    for (; s[i]; i++)
        if (i >= SQ_SPACE_MAX || !(sq_lower_or_digit(s[i]) || s[i] == '_')) return false;
    return true;
}

/* [a-z0-9][a-z0-9_-]{0,62}: also what keeps paths inside `dir`. */
static bool sq_dbname_ok(const char *s, size_t n)
{
    if (n == 0 || n > SQ_DBNAME_MAX || !sq_lower_or_digit(s[0])) return false;
    for (size_t i = 1; i < n; i++)
        if (!(sq_lower_or_digit(s[i]) || s[i] == '_' || s[i] == '-')) return false;
    return true;
}

/* "<dir>/<name>.db<suffix>", malloc'ed; NULL when out of memory. */
static char *sq_path(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 5;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.db%s", dir, name, suffix);
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------------------------- */
static void sq_space_drop_stmts(sq_space *sp)
{
    for (int i = 0; i < SQ_NSTMT; i++) {
        sqlite3_finalize(sp->st[i]);
        sp->st[i] = NULL;
    }
}

static void sq_conn_close(sq_conn *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nspaces; i++) {
        sq_space_drop_stmts(c->spaces[i]);
        free(c->spaces[i]);
    }
    free(c->spaces);
    sqlite3_finalize(c->begin);
    sqlite3_finalize(c->commit);
    sqlite3_finalize(c->rollback);
    sqlite3_finalize(c->pin);
    sqlite3_finalize(c->exists);
    if (c->h) {
        /* Anything still prepared would make close fail and leak the handle. */
        sqlite3_stmt *s;
        while ((s = sqlite3_next_stmt(c->h, NULL)) != NULL)
            sqlite3_finalize(s);
        int rc = sqlite3_close(c->h);
        if (rc != SQLITE_OK) sq_engine_fail(c, rc, "close");
    }
    free(c);
}

static int sq_prepare(sq_conn *c, const char *sql, sqlite3_stmt **out)
{
    return sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

/* Runs a statement that returns no rows we need. */
static int sq_exec(sq_conn *c, const char *sql)
{
    return sqlite3_exec(c->h, sql, NULL, NULL, NULL);
}

/* Steps a cached statement to completion and resets it; returns the step's result code. */
static int sq_run(sqlite3_stmt *s)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Switches the write connection to WAL; fails unless SQLite confirms it. */
static int sq_set_wal(sq_conn *c)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->h, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        rc = (mode && strcasecmp(mode, "wal") == 0) ? SQLITE_OK : SQLITE_CANTOPEN;
    }
    sqlite3_finalize(s);
    return rc;
}

static ld_status sq_conn_open(ld_stdb *db, bool write, sq_conn **out)
{
    const ld_storage *st = db->st;
    sq_conn *c = calloc(1, sizeof *c);
    if (!c) return sq_fail(st, LD_NOMEM, "out of memory opening %s", db->path);
    c->db = db;
    c->write = write;
    /* NOMUTEX: a connection is used by one thread at a time (the pool hands it over). */
    int flags = SQLITE_OPEN_NOMUTEX |
                (write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    const char *what = "open";
    int rc = sqlite3_open_v2(db->path, &c->h, flags, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(c->h, st->busy_ms);
    if (rc == SQLITE_OK && write) {
        /* Only takes effect while the file is new (before WAL); an existing file keeps its own.
         * The page size trades both ways (docs/storage.md, "Write amplification"): a commit
         * writes every page it touched whole to the WAL, four leaves for one small write, so
         * smaller pages write less per commit; but a WITHOUT ROWID row larger than about an
         * eighth of a page spills to overflow pages (at 4 KiB, 1 KB documents got 38k puts/s
         * and a 4.7x larger file, against 178k/s and 1.2x at 16 KiB). */
        char sql[48];
        snprintf(sql, sizeof sql, "PRAGMA page_size=%d", st->page_k * 1024);
        what = "setting the page size";
        rc = sq_exec(c, sql);
        /* Also only for a new file: lets a clean close hand free pages back (sq_give_back). */
        if (rc == SQLITE_OK) rc = sq_exec(c, "PRAGMA auto_vacuum=INCREMENTAL");
    }
    if (rc == SQLITE_OK && write) {
        what = "setting WAL mode";
        rc = sq_set_wal(c);
        if (rc == SQLITE_OK) {
            what = "setting pragmas";
            static const char *const sync_sql[] = {
                [SQ_SYNC_OFF] = "PRAGMA synchronous=OFF",
                [SQ_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
                [SQ_SYNC_FULL] = "PRAGMA synchronous=FULL",
            };
            rc = sq_exec(c, sync_sql[st->sync]);
        }
        if (rc == SQLITE_OK) rc = sq_exec(c, "PRAGMA journal_size_limit=" SQ_JOURNAL_LIMIT);
    }
    if (rc == SQLITE_OK && st->mmap_m > 0) {
        /* Reads of the database file from the mapping, as LMDB's are: a page read costs no
         * pread and no copy into SQLite's cache (a point read's cost was mostly the kernel's:
         * B5's indexed query 13.3 -> 5.4 ms). The WAL is still read with read(2). */
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA mmap_size=%lld", st->mmap_m * 1024 * 1024);
        what = "setting mmap_size";
        rc = sq_exec(c, sql);
    }
    if (rc == SQLITE_OK && st->cache_k > 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA cache_size=-%lld", st->cache_k);
        rc = sq_exec(c, sql);
    }
    if (rc == SQLITE_OK) {
        what = "preparing statements";
        rc = sq_prepare(c, write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED", &c->begin);
        if (rc == SQLITE_OK) rc = sq_prepare(c, "COMMIT", &c->commit);
        if (rc == SQLITE_OK) rc = sq_prepare(c, "ROLLBACK", &c->rollback);
        if (rc == SQLITE_OK) rc = sq_prepare(c, "SELECT 1 FROM sqlite_master LIMIT 1", &c->pin);
        if (rc == SQLITE_OK)
            rc = sq_prepare(c, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                            &c->exists);
    }
    if (rc != SQLITE_OK) {
        ld_status s;
        if (c->h)
            s = sq_engine_fail(c, rc, what);
        else
            s = sq_fail(st, LD_NOMEM, "out of memory opening %s", db->path);
        sq_conn_close(c);
        return s;
    }
    *out = c;
    return LD_OK;
}

/* Takes an idle read connection, or opens one while under SQ_POOL_MAX. */
static ld_status sq_pool_take(ld_stdb *db, sq_conn **out)
{
    pthread_mutex_lock(&db->lock);
    sq_conn *c = db->idle;
    if (c) {
        db->idle = c->next_idle;
        db->nidle--;
        pthread_mutex_unlock(&db->lock);
        c->next_idle = NULL;
        *out = c;
        return LD_OK;
    }
    if (db->nreaders >= SQ_POOL_MAX) {
        pthread_mutex_unlock(&db->lock);
        return sq_fail(db->st, LD_BUSY, "%u read transactions already open on %s", SQ_POOL_MAX,
                       db->path);
    }
    db->nreaders++;
    pthread_mutex_unlock(&db->lock);
    ld_status s = sq_conn_open(db, false, out);
    if (s != LD_OK) {
        pthread_mutex_lock(&db->lock);
        db->nreaders--;
        pthread_mutex_unlock(&db->lock);
    }
    return s;
}

/* Returns a read connection (outside any transaction) to the pool, closing it when the pool
 * already holds SQ_POOL_IDLE idle ones. */
static void sq_pool_give(ld_stdb *db, sq_conn *c)
{
    pthread_mutex_lock(&db->lock);
    if (db->nidle < SQ_POOL_IDLE) {
        c->next_idle = db->idle;
        db->idle = c;
        db->nidle++;
        pthread_mutex_unlock(&db->lock);
        return;
    }
    db->nreaders--;
    pthread_mutex_unlock(&db->lock);
    sq_conn_close(c);
}

/* ---------------------------------------------------------------------------------------------
 * Key spaces on a connection
 * ------------------------------------------------------------------------------------------- */

/* Finds or adds the connection's entry for `name` (already validated). */
static sq_space *sq_space_get(sq_conn *c, const char *name)
{
    if (c->last_hit && strcmp(c->last_hit->name, name) == 0) return c->last_hit;
    for (size_t i = 0; i < c->nspaces; i++)
        if (strcmp(c->spaces[i]->name, name) == 0) return c->last_hit = c->spaces[i];
    if (c->nspaces == c->capspaces) {
        size_t cap = c->capspaces ? c->capspaces * 2 : 8;
        sq_space **a = realloc(c->spaces, cap * sizeof *a);
        if (!a) return NULL;
        c->spaces = a;
        c->capspaces = cap;
    }
    sq_space *sp = calloc(1, sizeof *sp);
    if (!sp) return NULL;
    memcpy(sp->name, name, strlen(name) + 1);
    c->spaces[c->nspaces++] = sp;
    return c->last_hit = sp;
}

/* Gives the statement `which` of space sp, preparing it when needed. Returns LD_NOT_FOUND when
 * the space's table does not exist in the transaction's view (nothing logged: not an error). */
static ld_status sq_stmt(ld_sttxn *t, sq_space *sp, int which, sqlite3_stmt **out)
{
    sq_conn *c = t->conn;
    if (sp->st[which]) {
        *out = sp->st[which];
        return LD_OK;
    }
    if (!sp->known) {
        /* The snapshot cannot change within a transaction, so one miss per txn is enough. */
        if (sp->missing_gen == c->gen) return LD_NOT_FOUND;
        char table[SQ_SPACE_MAX + 4];
        snprintf(table, sizeof table, "ks_%s", sp->name);
        sqlite3_bind_text(c->exists, 1, table, -1, SQLITE_STATIC);
        int rc = sqlite3_step(c->exists);
        sqlite3_reset(c->exists);
        if (rc == SQLITE_DONE) {
            sp->missing_gen = c->gen;
            return LD_NOT_FOUND;
        }
        if (rc != SQLITE_ROW) return sq_engine_fail(c, rc, "looking up a key space");
        /* Snapshots of one connection only move forward and tables are never dropped, so it
         * stays known; a rollback of the txn that created it clears this (sq_forget_created). */
        sp->known = true;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "%s%s%s", sq_sql[which][0], sp->name, sq_sql[which][1]);
    int rc = sq_prepare(c, sql, &sp->st[which]);
    if (rc != SQLITE_OK) return sq_engine_fail(c, rc, "preparing a statement");
    *out = sp->st[which];
    return LD_OK;
}

/* After a rollback the tables created by the write transaction are gone: drop what refers to
 * them so the next use finds them missing again. */
static void sq_forget_created(sq_conn *c)
{
    if (c->ncreated == 0) return;
    for (size_t i = 0; i < c->nspaces; i++) {
        sq_space *sp = c->spaces[i];
        if (sp->created) {
            sq_space_drop_stmts(sp);
            sp->created = false;
            sp->known = false;
        }
    }
    c->ncreated = 0;
}

static void sq_keep_created(sq_conn *c)
{
    if (c->ncreated == 0) return;
    for (size_t i = 0; i < c->nspaces; i++)
        c->spaces[i]->created = false;
    c->ncreated = 0;
}

/* Creates the table of space sp inside the write transaction. */
static ld_status sq_create_space(ld_sttxn *t, sq_space *sp)
{
    sq_conn *c = t->conn;
    char sql[160];
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS ks_%s (k BLOB PRIMARY KEY, v BLOB NOT NULL) "
             "WITHOUT ROWID",
             sp->name);
    int rc = sq_exec(c, sql);
    if (rc != SQLITE_OK) return sq_engine_fail(c, rc, "creating a key space");
    sp->known = true;
    sp->created = true;
    sp->missing_gen = 0;
    c->ncreated++;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Instance
 * ------------------------------------------------------------------------------------------- */
static ld_status sq_config(const ld_host *host, ld_storage *st)
{
    const char *text = host->config_json ? host->config_json : "{}";
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root)
        return sq_fail(st, LD_INVALID, "Storage config is not valid JSON: %s (line %d)", jerr.text,
                       jerr.line);
    ld_status s = LD_OK;
    if (!json_is_object(root)) {
        s = sq_fail(st, LD_INVALID, "Storage config must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcasecmp(key, "Sync") == 0) {
            const char *v = json_string_value(val);
            if (v && strcasecmp(v, "full") == 0)
                st->sync = SQ_SYNC_FULL;
            else if (v && strcasecmp(v, "normal") == 0)
                st->sync = SQ_SYNC_NORMAL;
            else if (v && strcasecmp(v, "off") == 0)
                st->sync = SQ_SYNC_OFF;
            else {
                s = sq_fail(st, LD_INVALID, "Storage:%s must be \"full\", \"normal\" or \"off\"",
                            key);
                goto out;
            }
        } else if (strcasecmp(key, "BusyTimeoutMs") == 0) {
            json_int_t v = json_is_integer(val) ? json_integer_value(val) : -1;
            if (v < 0 || v > INT_MAX) {
                s = sq_fail(st, LD_INVALID, "Storage:%s must be an integer from 0 to %d", key,
                            INT_MAX);
                goto out;
            }
            st->busy_ms = (int)v;
        } else if (strcasecmp(key, "CacheSizeKiB") == 0) {
            json_int_t v = json_is_integer(val) ? json_integer_value(val) : 0;
            if (v < 1 || v > INT_MAX) {
                s = sq_fail(st, LD_INVALID, "Storage:%s must be an integer from 1 to %d", key,
                            INT_MAX);
                goto out;
            }
            st->cache_k = (long long)v;
        } else if (strcasecmp(key, "MmapSizeMiB") == 0) {
            json_int_t v = json_is_integer(val) ? json_integer_value(val) : -1;
            if (v < 0 || v > SQ_MMAP_M_MAX) {
                s = sq_fail(st, LD_INVALID, "Storage:%s must be an integer from 0 to %d", key,
                            SQ_MMAP_M_MAX);
                goto out;
            }
            st->mmap_m = (long long)v;
        } else if (strcasecmp(key, "PageSizeKiB") == 0) {
            json_int_t v = json_is_integer(val) ? json_integer_value(val) : 0;
            if (v != 4 && v != 8 && v != 16 && v != 32 && v != 64) {
                s = sq_fail(st, LD_INVALID, "Storage:%s must be 4, 8, 16, 32 or 64", key);
                goto out;
            }
            st->page_k = (int)v;
        }
        /* Other keys (Plugin, another backend's options) are the core's to report. */
    }
out:
    json_decref(root);
    return s;
}

static ld_status sq_create(const ld_host *host, ld_storage **out)
{
    if (!host || !out) return sq_fail(NULL, LD_INVALID, "create: NULL argument");
    ld_storage *st = calloc(1, sizeof *st);
    if (!st) return sq_fail(NULL, LD_NOMEM, "out of memory creating the sqlite storage");
    st->host = host;
    st->sync = SQ_SYNC_FULL;
    st->busy_ms = SQ_BUSY_DEFAULT;
    st->page_k = SQ_PAGE_K_DEFAULT;
    st->mmap_m = SQ_MMAP_M_DEFAULT;
    ld_status s = sq_config(host, st);
    if (s != LD_OK) {
        free(st);
        return s;
    }
    *out = st;
    return LD_OK;
}

static void sq_destroy(ld_storage *st)
{
    free(st);
}

static const char *sq_last_error(ld_storage *st)
{
    (void)st; /* the message is per thread, not per instance */
    return sq_errbuf;
}

/* ---------------------------------------------------------------------------------------------
 * Databases
 * ------------------------------------------------------------------------------------------- */
/* The writer's commit hook (its thread, after the commit; `pages` is the WAL's length):
 * past the mark, wake the checkpointer, and again each SQ_WAL_STEP pages while it grows.
 * Setting the hook also turns off SQLite's own checkpoint at commit.
 *
 * The WAL starts over only when a write transaction begins with every frame copied back. Under
 * a steady stream of commits the writer always began its next one while the checkpointer was
 * still copying: it copied all along, yet the WAL never started over and grew without end
 * (1.4 GB, and a checkpoint with two fsyncs per commit, after 100,000 cache SETs). Past
 * SQ_WAL_RESTART the writer therefore waits for the checkpointer's pass and checkpoints the
 * rest itself, between its transactions; the next one then starts the WAL over. */
static int sq_wal_hook(void *arg, sqlite3 *h, const char *schema, int pages)
{
    ld_stdb *db = arg;
    if (pages < db->wal_pages) db->wal_wake = SQ_WAL_CHECKPOINT; /* it started over */
    db->wal_pages = pages;
    if (pages >= db->wal_wake) {
        db->wal_wake = pages + SQ_WAL_STEP;
        pthread_mutex_lock(&db->ckpt_mu);
        db->ckpt_wanted = true;
        pthread_cond_signal(&db->ckpt_cv);
        pthread_mutex_unlock(&db->ckpt_mu);
    }
    if (pages >= SQ_WAL_RESTART) {
        pthread_mutex_lock(&db->ckpt_run);
        int rc = sqlite3_wal_checkpoint_v2(h, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_unlock(&db->ckpt_run);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) sq_engine_fail(db->writer, rc, "checkpoint");
    }
    return SQLITE_OK;
}

/* A PASSIVE checkpoint neither waits for nor blocks the writer and the readers: it copies what
 * no reader still needs from the WAL, syncing the WAL first and the file after (its connection
 * has the store's synchronous setting), and the next write starts the WAL over once it was all
 * copied. BUSY (the close's own checkpoint, say) is left for the next wake-up. */
static void *sq_ckpt_main(void *arg)
{
    ld_stdb *db = arg;
    pthread_mutex_lock(&db->ckpt_mu);
    for (;;) {
        while (!db->ckpt_wanted && !db->ckpt_stop)
            pthread_cond_wait(&db->ckpt_cv, &db->ckpt_mu);
        if (db->ckpt_stop) break;
        db->ckpt_wanted = false;
        pthread_mutex_unlock(&db->ckpt_mu);
        pthread_mutex_lock(&db->ckpt_run);
        int rc =
            sqlite3_wal_checkpoint_v2(db->ckpt->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_unlock(&db->ckpt_run);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) sq_engine_fail(db->ckpt, rc, "checkpoint");
        pthread_mutex_lock(&db->ckpt_mu);
    }
    pthread_mutex_unlock(&db->ckpt_mu);
    return NULL;
}

/* Starts db's checkpointer; without it (no thread or connection to be had) the open fails,
 * since the WAL would grow without bound. */
static ld_status sq_ckpt_start(ld_stdb *db)
{
    if (pthread_mutex_init(&db->ckpt_mu, NULL) != 0)
        return sq_fail(db->st, LD_NOMEM, "cannot create a mutex for %s", db->path);
    if (pthread_cond_init(&db->ckpt_cv, NULL) != 0) {
        pthread_mutex_destroy(&db->ckpt_mu);
        return sq_fail(db->st, LD_NOMEM, "cannot create a condition for %s", db->path);
    }
    if (pthread_mutex_init(&db->ckpt_run, NULL) != 0) {
        pthread_cond_destroy(&db->ckpt_cv);
        pthread_mutex_destroy(&db->ckpt_mu);
        return sq_fail(db->st, LD_NOMEM, "cannot create a mutex for %s", db->path);
    }
    db->wal_pages = 0;
    db->wal_wake = SQ_WAL_CHECKPOINT;
    ld_status s = sq_conn_open(db, true, &db->ckpt);
    if (s == LD_OK && pthread_create(&db->ckpt_thread, NULL, sq_ckpt_main, db) != 0) {
        sq_conn_close(db->ckpt);
        db->ckpt = NULL;
        s = sq_fail(db->st, LD_NOMEM, "cannot start the checkpoint thread of %s", db->path);
    }
    if (s != LD_OK) {
        pthread_mutex_destroy(&db->ckpt_run);
        pthread_cond_destroy(&db->ckpt_cv);
        pthread_mutex_destroy(&db->ckpt_mu);
        return s;
    }
    db->ckpt_started = true;
    sqlite3_wal_hook(db->writer->h, sq_wal_hook, db);
    return LD_OK;
}

static void sq_ckpt_stop(ld_stdb *db)
{
    if (!db->ckpt_started) return;
    sqlite3_wal_hook(db->writer->h, NULL, NULL);
    pthread_mutex_lock(&db->ckpt_mu);
    db->ckpt_stop = true;
    pthread_cond_signal(&db->ckpt_cv);
    pthread_mutex_unlock(&db->ckpt_mu);
    pthread_join(db->ckpt_thread, NULL);
    sq_conn_close(db->ckpt);
    db->ckpt = NULL;
    pthread_mutex_destroy(&db->ckpt_run);
    pthread_cond_destroy(&db->ckpt_cv);
    pthread_mutex_destroy(&db->ckpt_mu);
    db->ckpt_started = false;
}

static ld_status sq_open(ld_storage *st, const char *dir, const char *name, ld_stdb **out)
{
    if (!st || !dir || !name || !out) return sq_fail(st, LD_INVALID, "open: NULL argument");
    if (!sq_dbname_ok(name, strlen(name)))
        return sq_fail(st, LD_INVALID, "open: invalid database name \"%.80s\"", name);
    ld_stdb *db = calloc(1, sizeof *db);
    if (!db) return sq_fail(st, LD_NOMEM, "out of memory opening database %s", name);
    db->st = st;
    db->path = sq_path(dir, name, "");
    if (!db->path) {
        free(db);
        return sq_fail(st, LD_NOMEM, "out of memory opening database %s", name);
    }
    if (pthread_mutex_init(&db->lock, NULL) != 0) {
        free(db->path);
        free(db);
        return sq_fail(st, LD_NOMEM, "cannot create a mutex for database %s", name);
    }
    ld_status s = sq_conn_open(db, true, &db->writer);
    if (s == LD_OK) {
        s = sq_ckpt_start(db);
        if (s != LD_OK) sq_conn_close(db->writer);
    }
    if (s != LD_OK) {
        pthread_mutex_destroy(&db->lock);
        free(db->path);
        free(db);
        return s;
    }
    *out = db;
    return LD_OK;
}

/* One integer from a PRAGMA on c; -1 when it fails. */
static long long sq_pragma_int(sq_conn *c, const char *sql)
{
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(c->h, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* At a clean close, returns a large free list to the file system: pages a pruned op log or a
 * sweep freed are reused by later writes but never shrink the file otherwise (docs/storage.md,
 * "Write amplification and disk use"). incremental_vacuum moves the pages at the end of the file
 * into the free slots and the checkpoint at close truncates it. Bounded: at most
 * SQ_GIVE_BACK_MAX_BYTES per close, so that a shutdown stays short; a file made before
 * auto_vacuum was set (auto_vacuum 0) is left as it is. A failure is logged and the close goes
 * on: the pages stay free, nothing is lost. */
static void sq_give_back(ld_stdb *db)
{
    sq_conn *c = db->writer;
    long long page = sq_pragma_int(c, "PRAGMA page_size");
    long long total = sq_pragma_int(c, "PRAGMA page_count");
    long long free_pages = sq_pragma_int(c, "PRAGMA freelist_count");
    if (sq_pragma_int(c, "PRAGMA auto_vacuum") != 2 || page <= 0 || free_pages <= 0) return;
    if (free_pages * page < SQ_GIVE_BACK_MIN_BYTES || free_pages * 8 < total) return;
    long long n = SQ_GIVE_BACK_MAX_BYTES / page;
    if (n > free_pages) n = free_pages;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%lld)", n);
    /* incremental_vacuum returns a row per page moved: step it to the end. */
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->h, sql, -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
        rc = SQLITE_OK;
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        sq_fail(db->st, LD_IO, "%s: returning %lld free pages at close failed: %s", db->path, n,
                sqlite3_errmsg(c->h));
}

static void sq_close(ld_stdb *db)
{
    if (!db) return;
    if (db->nreaders != db->nidle)
        sq_fail(db->st, LD_INTERNAL, "close of %s with %u read transactions open", db->path,
                db->nreaders - db->nidle);
    sq_ckpt_stop(db);
    if (db->writer) sq_give_back(db);
    /* Readers first: the last connection to close checkpoints and removes the -wal/-shm files,
     * and only the writer can. */
    while (db->idle) {
        sq_conn *c = db->idle;
        db->idle = c->next_idle;
        sq_conn_close(c);
    }
    sq_conn_close(db->writer);
    pthread_mutex_destroy(&db->lock);
    free(db->path);
    free(db);
}

static const char *const sq_suffixes[] = {"", "-wal", "-shm", "-journal"};
#define SQ_NSUFFIXES (sizeof sq_suffixes / sizeof sq_suffixes[0])

static ld_status sq_drop(ld_storage *st, const char *dir, const char *name)
{
    if (!st || !dir || !name) return sq_fail(st, LD_INVALID, "drop: NULL argument");
    if (!sq_dbname_ok(name, strlen(name)))
        return sq_fail(st, LD_INVALID, "drop: invalid database name \"%.80s\"", name);
    int removed = 0;
    ld_status s = LD_OK;
    /* The main file last: until it goes, a half-done drop still lists and can be retried. */
    for (size_t i = SQ_NSUFFIXES; i-- > 0;) {
        char *p = sq_path(dir, name, sq_suffixes[i]);
        if (!p) return sq_fail(st, LD_NOMEM, "out of memory dropping %s", name);
        if (unlink(p) == 0)
            removed++;
        else if (errno != ENOENT && s == LD_OK)
            s = sq_fail(st,
                        (errno == EACCES || errno == EPERM || errno == EROFS) ? LD_DENIED : LD_IO,
                        "cannot remove %s: %s", p, strerror(errno));
        free(p);
        if (s != LD_OK) return s;
    }
    return removed ? LD_OK : LD_NOT_FOUND;
}

static ld_status sq_list(ld_storage *st, const char *dir, int (*cb)(void *ctx, const char *name),
                         void *ctx)
{
    if (!st || !dir || !cb) return sq_fail(st, LD_INVALID, "list: NULL argument");
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return LD_OK;
        return sq_fail(st, LD_IO, "cannot read directory %s: %s", dir, strerror(errno));
    }
    ld_status s = LD_OK;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0)
                s = sq_fail(st, LD_IO, "cannot read directory %s: %s", dir, strerror(errno));
            break;
        }
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".db") != 0 || !sq_dbname_ok(e->d_name, n - 3))
            continue;
        if (e->d_type != DT_REG) {
            /* d_type may be unknown (some file systems) or a symlink: ask stat. */
            struct stat sb;
            if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK) continue;
            if (fstatat(dirfd(d), e->d_name, &sb, 0) != 0 || !S_ISREG(sb.st_mode)) continue;
        }
        char name[SQ_DBNAME_MAX + 1];
        memcpy(name, e->d_name, n - 3);
        name[n - 3] = '\0';
        if (cb(ctx, name) != 0) break;
    }
    closedir(d);
    return s;
}

/* The main database file (the -wal and -shm beside it belong to it). */
#if LD_ABI_MINOR >= 1 /* location: since ABI 1.1 */
static ld_status sq_location(ld_stdb *db, char *buf, size_t buflen)
{
    if (!db || !buf) return sq_fail(db ? db->st : NULL, LD_INVALID, "location: NULL argument");
    int n = snprintf(buf, buflen, "%s", db->path);
    return n >= 0 && (size_t)n < buflen ? LD_OK : LD_INVALID;
}
#endif

static ld_status sq_size_bytes(ld_stdb *db, uint64_t *out)
{
    if (!db || !out) return sq_fail(db ? db->st : NULL, LD_INVALID, "size_bytes: NULL argument");
    size_t n = strlen(db->path) + 8;
    char *p = malloc(n);
    if (!p) return sq_fail(db->st, LD_NOMEM, "out of memory sizing %s", db->path);
    uint64_t total = 0;
    for (size_t i = 0; i < 3; i++) { /* .db, -wal, -shm */
        snprintf(p, n, "%s%s", db->path, sq_suffixes[i]);
        struct stat sb;
        if (stat(p, &sb) == 0)
            total += (uint64_t)sb.st_size;
        else if (errno != ENOENT) {
            ld_status s = sq_fail(db->st, LD_IO, "cannot stat %s: %s", p, strerror(errno));
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

/* Ends the caller's view of the previous result (see the Memory rule in storage.h). */
static void sq_enter(ld_sttxn *t)
{
    if (t->pending) {
        sqlite3_reset(t->pending);
        t->pending = NULL;
    }
}

/* Rolls back whatever is open on c and releases it (to the pool when it is a reader). */
static void sq_txn_end(sq_conn *c, bool rollback)
{
    if (rollback && !sqlite3_get_autocommit(c->h)) {
        int rc = sq_run(c->rollback);
        if (rc != SQLITE_OK) sq_engine_fail(c, rc, "rollback");
    }
    if (c->write) {
        if (rollback)
            sq_forget_created(c);
        else
            sq_keep_created(c);
    }
    c->in_txn = false;
    /* Back to FULL; should that fail, lazy stays set and the next begin retries or refuses. */
    if (c->lazy && sq_exec(c, "PRAGMA synchronous=FULL") == SQLITE_OK) c->lazy = false;
    if (c->write) return;
    if (sqlite3_get_autocommit(c->h)) {
        sq_pool_give(c->db, c);
        return;
    }
    /* Still inside a transaction after a failed rollback: no use to anyone, close it. */
    ld_stdb *db = c->db;
    sq_conn_close(c);
    pthread_mutex_lock(&db->lock);
    db->nreaders--;
    pthread_mutex_unlock(&db->lock);
}

static ld_status sq_begin(ld_stdb *db, uint32_t flags, ld_sttxn **out)
{
    if (!db || !out ||
        (flags != LD_TXN_READ && flags != LD_TXN_WRITE && flags != (LD_TXN_WRITE | SQ_TXN_LAZY)))
        return sq_fail(db ? db->st : NULL, LD_INVALID, "begin: bad argument");
    sq_conn *c = NULL;
    if (flags & LD_TXN_WRITE) {
        c = db->writer;
        if (c->in_txn)
            return sq_fail(db->st, LD_BUSY, "begin: a write transaction is already open on %s",
                           db->path);
        /* Lazy: WAL mode at NORMAL writes the commit without syncing it; checkpoints still sync,
         * so a power loss can take the latest commits but never damage the file (OFF could). */
        bool lazy = (flags & SQ_TXN_LAZY) && db->st->sync == SQ_SYNC_FULL;
        if (lazy != c->lazy) {
            int rc = sq_exec(c, lazy ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
            if (rc != SQLITE_OK) return sq_engine_fail(c, rc, "begin: setting synchronous");
            c->lazy = lazy;
        }
    } else {
        ld_status s = sq_pool_take(db, &c);
        if (s != LD_OK) return s;
    }
    c->gen++;
    c->in_txn = true;
    int rc = sq_run(c->begin);
    /* A deferred BEGIN takes no snapshot; reading now pins it, so the transaction sees the last
     * commit before begin() returned even if its first real read comes later. */
    if (rc == SQLITE_OK && !c->write) rc = sq_run(c->pin);
    if (rc != SQLITE_OK) {
        ld_status s = sq_engine_fail(c, rc, "begin");
        sq_txn_end(c, true);
        return s;
    }
    c->txn = (struct ld_sttxn){.conn = c, .write = c->write};
    *out = &c->txn;
    return LD_OK;
}

static ld_status sq_commit(ld_sttxn *t)
{
    if (!t) return sq_fail(NULL, LD_INVALID, "commit: NULL transaction");
    sq_conn *c = t->conn;
    sq_enter(t);
    if (t->failed) {
        ld_status s = sq_fail(c->db->st, LD_IO,
                              "commit refused on %s: an earlier operation of the transaction "
                              "failed; rolled back",
                              c->db->path);
        sq_txn_end(c, true);
        return s;
    }
    int rc = sq_run(c->commit);
    if (rc != SQLITE_OK) {
        ld_status s = sq_engine_fail(c, rc, "commit");
        sq_txn_end(c, true);
        return s;
    }
    sq_txn_end(c, false);
    return LD_OK;
}

static void sq_abort(ld_sttxn *t)
{
    if (!t) return;
    sq_enter(t);
    sq_txn_end(t->conn, true);
}

/* Marks a write transaction unusable after an engine error, per storage.h. */
static ld_status sq_txn_error(ld_sttxn *t, int rc, const char *what)
{
    if (t->write) t->failed = true;
    return sq_engine_fail(t->conn, rc, what);
}

/* Checks the arguments every keyed call shares and resolves the space. */
static ld_status sq_keyed(ld_sttxn *t, const char *op, const char *space, const void *key,
                          size_t klen, sq_space **sp)
{
    sq_conn *c = t->conn;
    if (!sq_space_ok(space))
        return sq_fail(c->db->st, LD_INVALID, "%s: invalid key space name \"%.40s\"", op,
                       space ? space : "(null)");
    if (!key || klen < 1 || klen > LD_STORAGE_MAX_KEY)
        return sq_fail(c->db->st, LD_INVALID, "%s: key length %zu not in 1..%u", op, klen,
                       LD_STORAGE_MAX_KEY);
    *sp = sq_space_get(c, space);
    if (!*sp) return sq_fail(c->db->st, LD_NOMEM, "%s: out of memory", op);
    return LD_OK;
}

static ld_status sq_get(ld_sttxn *t, const char *space, const void *key, size_t klen,
                        const void **val, size_t *vlen)
{
    if (!t || !val || !vlen) return sq_fail(NULL, LD_INVALID, "get: NULL argument");
    sq_enter(t);
    sq_space *sp;
    sqlite3_stmt *s;
    ld_status ls = sq_keyed(t, "get", space, key, klen, &sp);
    if (ls != LD_OK) return ls;
    ls = sq_stmt(t, sp, SQ_GET, &s);
    if (ls != LD_OK) {
        if (ls != LD_NOT_FOUND && t->write) t->failed = true;
        return ls;
    }
    sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const void *v = sqlite3_column_blob(s, 0);
        *vlen = (size_t)sqlite3_column_bytes(s, 0);
        *val = v ? v : sq_empty;
        t->pending = s;
        return LD_OK;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return LD_NOT_FOUND;
    return sq_txn_error(t, rc, "get");
}

static ld_status sq_put(ld_sttxn *t, const char *space, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
    if (!t) return sq_fail(NULL, LD_INVALID, "put: NULL transaction");
    sq_enter(t);
    const ld_storage *st = t->conn->db->st;
    if (!t->write) return sq_fail(st, LD_INVALID, "put: read-only transaction");
    if (vlen > LD_STORAGE_MAX_VALUE || (!val && vlen))
        return sq_fail(st, LD_INVALID, "put: value length %zu not in 0..%u or NULL value", vlen,
                       LD_STORAGE_MAX_VALUE);
    sq_space *sp;
    sqlite3_stmt *s;
    ld_status ls = sq_keyed(t, "put", space, key, klen, &sp);
    if (ls != LD_OK) return ls;
    ls = sq_stmt(t, sp, SQ_PUT, &s);
    if (ls == LD_NOT_FOUND) {
        ls = sq_create_space(t, sp);
        if (ls == LD_OK) ls = sq_stmt(t, sp, SQ_PUT, &s);
    }
    if (ls != LD_OK) {
        t->failed = true;
        return ls;
    }
    sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
    if (vlen)
        sqlite3_bind_blob(s, 2, val, (int)vlen, SQLITE_STATIC);
    else
        sqlite3_bind_zeroblob(s, 2, 0); /* a NULL blob would break NOT NULL */
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return sq_txn_error(t, rc, "put");
    return LD_OK;
}

static ld_status sq_del(ld_sttxn *t, const char *space, const void *key, size_t klen)
{
    if (!t) return sq_fail(NULL, LD_INVALID, "del: NULL transaction");
    sq_enter(t);
    if (!t->write) return sq_fail(t->conn->db->st, LD_INVALID, "del: read-only transaction");
    sq_space *sp;
    sqlite3_stmt *s;
    ld_status ls = sq_keyed(t, "del", space, key, klen, &sp);
    if (ls != LD_OK) return ls;
    ls = sq_stmt(t, sp, SQ_DEL, &s);
    if (ls == LD_NOT_FOUND) return ls;
    if (ls != LD_OK) {
        t->failed = true;
        return ls;
    }
    sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return sq_txn_error(t, rc, "del");
    return sqlite3_changes(t->conn->h) > 0 ? LD_OK : LD_NOT_FOUND;
}

/* ---------------------------------------------------------------------------------------------
 * Cursors
 * ------------------------------------------------------------------------------------------- */
static ld_status sq_cursor_open(ld_sttxn *t, const char *space, ld_stcursor **out)
{
    if (!t || !out) return sq_fail(NULL, LD_INVALID, "cursor_open: NULL argument");
    sq_enter(t);
    const ld_storage *st = t->conn->db->st;
    if (!sq_space_ok(space))
        return sq_fail(st, LD_INVALID, "cursor_open: invalid key space name \"%.40s\"",
                       space ? space : "(null)");
    ld_stcursor *cur = calloc(1, sizeof *cur);
    sq_space *sp = cur ? sq_space_get(t->conn, space) : NULL;
    if (!sp) {
        free(cur);
        return sq_fail(st, LD_NOMEM, "cursor_open: out of memory");
    }
    cur->txn = t;
    cur->state = SQ_CUR_NOWHERE;
    ld_status s = sq_stmt(t, sp, SQ_SEEK, &cur->st);
    if (s == LD_OK) {
        /* The cursor owns the statement while open; a second cursor on the space prepares
         * its own. */
        sp->st[SQ_SEEK] = NULL;
        cur->sp = sp;
    } else if (s != LD_NOT_FOUND) {
        free(cur);
        return s;
    }
    *out = cur;
    return LD_OK;
}

static void sq_cursor_close(ld_stcursor *cur)
{
    if (!cur) return;
    if (cur->st) {
        sqlite3_reset(cur->st);
        if (cur->sp->st[SQ_SEEK] == NULL)
            cur->sp->st[SQ_SEEK] = cur->st;
        else
            sqlite3_finalize(cur->st);
    }
    free(cur);
}

/* Hands out the current row of s, or ends the cursor. */
static ld_status sq_cursor_row(ld_stcursor *cur, sqlite3_stmt *s, int rc, const void **k,
                               size_t *kl, const void **v, size_t *vl)
{
    if (rc == SQLITE_ROW) {
        const void *kp = sqlite3_column_blob(s, 0);
        *kl = (size_t)sqlite3_column_bytes(s, 0);
        const void *vp = sqlite3_column_blob(s, 1);
        *vl = (size_t)sqlite3_column_bytes(s, 1);
        *k = kp ? kp : sq_empty;
        *v = vp ? vp : sq_empty;
        cur->state = SQ_CUR_ROW;
        return LD_OK;
    }
    sqlite3_reset(s);
    cur->state = SQ_CUR_END;
    if (rc == SQLITE_DONE) return LD_NOT_FOUND;
    return sq_txn_error(cur->txn, rc, "cursor");
}

static ld_status sq_cursor_seek(ld_stcursor *cur, const void *key, size_t klen, const void **k,
                                size_t *kl, const void **v, size_t *vl)
{
    if (!cur || (!key && klen) || !k || !kl || !v || !vl)
        return sq_fail(NULL, LD_INVALID, "cursor_seek: NULL argument");
    sq_enter(cur->txn);
    if (klen > LD_STORAGE_MAX_KEY)
        return sq_fail(cur->txn->conn->db->st, LD_INVALID, "cursor_seek: key length %zu over %u",
                       klen, LD_STORAGE_MAX_KEY);
    if (!cur->st) {
        cur->state = SQ_CUR_END;
        return LD_NOT_FOUND;
    }
    sqlite3_reset(cur->st);
    /* Copied: the key is borrowed for this call only, and later steps run the same program. */
    if (klen)
        sqlite3_bind_blob(cur->st, 1, key, (int)klen, SQLITE_TRANSIENT);
    else
        sqlite3_bind_zeroblob(cur->st, 1, 0); /* every blob is >= the empty blob */
    return sq_cursor_row(cur, cur->st, sqlite3_step(cur->st), k, kl, v, vl);
}

static ld_status sq_cursor_next(ld_stcursor *cur, const void **k, size_t *kl, const void **v,
                                size_t *vl)
{
    if (!cur || !k || !kl || !v || !vl)
        return sq_fail(NULL, LD_INVALID, "cursor_next: NULL argument");
    switch (cur->state) {
    case SQ_CUR_NOWHERE:
        return sq_cursor_seek(cur, NULL, 0, k, kl, v, vl);
    case SQ_CUR_ROW:
        sq_enter(cur->txn);
        return sq_cursor_row(cur, cur->st, sqlite3_step(cur->st), k, kl, v, vl);
    default:
        sq_enter(cur->txn);
        return LD_NOT_FOUND;
    }
}

static ld_status sq_cursor_last(ld_stcursor *cur, const void **k, size_t *kl, const void **v,
                                size_t *vl)
{
    if (!cur || !k || !kl || !v || !vl)
        return sq_fail(NULL, LD_INVALID, "cursor_last: NULL argument");
    ld_sttxn *t = cur->txn;
    sq_enter(t);
    cur->state = SQ_CUR_END; /* on the last key, the next one is past the end */
    if (!cur->st) return LD_NOT_FOUND;
    sqlite3_reset(cur->st);
    sqlite3_stmt *s;
    ld_status ls = sq_stmt(t, cur->sp, SQ_LAST, &s);
    if (ls != LD_OK) return ls;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const void *kp = sqlite3_column_blob(s, 0);
        *kl = (size_t)sqlite3_column_bytes(s, 0);
        const void *vp = sqlite3_column_blob(s, 1);
        *vl = (size_t)sqlite3_column_bytes(s, 1);
        *k = kp ? kp : sq_empty;
        *v = vp ? vp : sq_empty;
        /* The row stays readable until the next call on the transaction, like a get's. */
        t->pending = s;
        return LD_OK;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return LD_NOT_FOUND;
    return sq_txn_error(t, rc, "cursor_last");
}

/* ---------------------------------------------------------------------------------------------
 * Online copy (ABI 1.3): the backup API from a read-only connection of our own, all pages in one
 * step, so it reads one committed state (a WAL reader never blocks the writer, nor is blocked by
 * it). The copy is written under a hidden name and renamed into place, so dest_dir never shows a
 * half-written database; it keeps the source's page size and WAL mode (in its header).
 * ------------------------------------------------------------------------------------------- */
#if LD_ABI_MINOR >= 3
static ld_status sq_copy(ld_storage *st, const char *dir, const char *name, const char *dest_dir)
{
    if (!st || !dir || !name || !dest_dir) return sq_fail(st, LD_INVALID, "copy: NULL argument");
    if (!sq_dbname_ok(name, strlen(name)))
        return sq_fail(st, LD_INVALID, "copy: invalid database name \"%.80s\"", name);
    char *src = sq_path(dir, name, "");
    char *dst = sq_path(dest_dir, name, "");
    char *tmp = sq_path(dest_dir, name, ".copy");
    sqlite3 *from = NULL, *to = NULL;
    ld_status s = LD_OK;
    struct stat sb;
    if (!src || !dst || !tmp) {
        s = sq_fail(st, LD_NOMEM, "out of memory copying database %s", name);
        goto out;
    }
    if (stat(src, &sb) != 0) {
        s = errno == ENOENT ? sq_fail(st, LD_NOT_FOUND, "copy: no database %s in %s", name, dir)
                            : sq_fail(st, LD_IO, "cannot read %s: %s", src, strerror(errno));
        goto out;
    }
    if (lstat(dst, &sb) == 0) {
        s = sq_fail(st, LD_EXISTS, "copy: %s already exists", dst);
        goto out;
    }
    unlink(tmp); /* a leftover of an interrupted copy */
    const char *what = "opening read-only";
    sqlite3 *h = NULL;
    int rc = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(from, st->busy_ms);
    h = from;
    if (rc == SQLITE_OK) {
        what = "creating the copy";
        rc = sqlite3_open_v2(
            tmp, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        h = to;
    }
    if (rc == SQLITE_OK) {
        /* The copy is written once: full sync so that a backup reported done is on disk. */
        rc = sqlite3_exec(to, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        what = "copying";
        sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
        if (!b) {
            rc = sqlite3_errcode(to);
        } else {
            rc = sqlite3_backup_step(b, -1);
            int frc = sqlite3_backup_finish(b);
            rc = rc == SQLITE_DONE ? frc : rc;
        }
    }
    if (rc != SQLITE_OK) {
        s = sq_fail(st, sq_map(h, rc), "%s %s: %s (sqlite %d)", what, src,
                    h ? sqlite3_errmsg(h) : sqlite3_errstr(rc), rc);
        goto out;
    }
    /* Closing the copy's connection ends its journal; only then does it get its name. */
    rc = sqlite3_close(to);
    to = NULL;
    if (rc != SQLITE_OK) {
        s = sq_fail(st, LD_IO, "closing the copy %s: %s", tmp, sqlite3_errstr(rc));
    } else if (rename(tmp, dst) != 0) {
        s = sq_fail(st, (errno == EACCES || errno == EPERM || errno == EROFS) ? LD_DENIED : LD_IO,
                    "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
    }
out:
    if (to) sqlite3_close(to);
    if (from) sqlite3_close(from);
    if (s != LD_OK && tmp) {
        unlink(tmp);
        char *j = sq_path(dest_dir, name, ".copy-journal");
        if (j) unlink(j);
        free(j);
    }
    free(src);
    free(dst);
    free(tmp);
    return s;
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------------------------- */

static const ld_storage_v1 sq_ops = {
    .abi_major = LD_ABI_MAJOR,
    .abi_minor = LD_ABI_MINOR,
    .struct_size = (uint32_t)sizeof(ld_storage_v1),
    .create = sq_create,
    .destroy = sq_destroy,
    .open = sq_open,
    .close = sq_close,
    .drop = sq_drop,
    .list = sq_list,
    .last_error = sq_last_error,
    .begin = sq_begin,
    .commit = sq_commit,
    .abort = sq_abort,
    .get = sq_get,
    .put = sq_put,
    .del = sq_del,
    .cursor_open = sq_cursor_open,
    .cursor_seek = sq_cursor_seek,
    .cursor_next = sq_cursor_next,
    .cursor_close = sq_cursor_close,
    .cursor_last = sq_cursor_last,
    .size_bytes = sq_size_bytes,
#if LD_ABI_MINOR >= 1
    .location = sq_location,
#endif
#if LD_ABI_MINOR >= 3
    .copy = sq_copy,
#endif
};

static const ld_plugin_descriptor sq_descriptor = {
    .abi_major = LD_ABI_MAJOR,
    .abi_minor = LD_ABI_MINOR,
    .struct_size = (uint32_t)sizeof(ld_plugin_descriptor),
    .kind = LD_PLUGIN_KIND_STORAGE,
    .name = "sqlite",
    .version = "1.0.0",
    .ops = &sq_ops,
};

static const ld_plugin_descriptor *sq_entry(const ld_host *host)
{
    if (!host) return NULL;
    if (host->abi_major != LD_ABI_MAJOR) {
        /* plugin.h: read nothing else of a struct whose major differs, so not even its log. */
        fprintf(stderr,
                "storage-sqlite: host speaks ABI %u.x, this plugin %d.%d; rebuild the plugin "
                "against the host's include/litedist\n",
                host->abi_major, LD_ABI_MAJOR, LD_ABI_MINOR);
        return NULL;
    }
    if (!LD_HOST_HAS(host, plugin_path) || !host->log) {
        fprintf(stderr, "storage-sqlite: host table too short (%u bytes) for ABI 1.0\n",
                host->struct_size);
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        host->log(host, LD_LOG_ERROR,
                  "libsqlite3 %s was built without thread support; the storage needs it",
                  sqlite3_libversion());
        return NULL;
    }
    return &sq_descriptor;
}

LD_PLUGIN_ENTRY(sq_entry)
