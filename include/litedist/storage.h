/* litedist storage ABI: an ordered, transactional key-value store per logical database.
 * A storage plugin knows nothing of documents, op logs or replication; the core builds those. */
#ifndef LITEDIST_STORAGE_H
#define LITEDIST_STORAGE_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * The model
 *
 * A plugin instance (ld_storage) serves many logical databases. Each database (ld_stdb) holds
 * named key spaces: maps from byte-string keys to byte-string values, ordered by memcmp of the
 * keys with the shorter key first on a common prefix ("a" < "a\0" < "ab"). Keys are 1..511 bytes;
 * values 0..64 MiB. A key space name matches [a-z][a-z0-9_]{0,31}; a space comes into being at
 * its first put and is empty until then (reads of an unknown space find nothing).
 *
 * All reads and writes happen in transactions. A write transaction sees its own writes and
 * commits atomically across every key space of its database. A read transaction sees the state
 * of the last commit before it began, for its whole life (snapshot isolation).
 *
 * Threading
 *   - create/destroy run on the main thread with no other call in progress.
 *   - open/close/drop/list may run on any thread; the host never opens the same database twice,
 *     never closes or drops a database while a transaction on it is open.
 *   - At most one write transaction per database is open at any time (the host serializes).
 *   - Read transactions may run concurrently with each other and with the writer, on other
 *     threads. A transaction and its cursors are used by one thread only, and a thread has at
 *     most one open transaction per database at a time.
 *
 * Memory
 *   - Everything the host passes in (names, keys, values) is borrowed for the call only.
 *   - Keys and values the plugin returns are read-only and stay valid until the next call on
 *     the same transaction or any of its cursors, or the end of the transaction, whichever comes
 *     first. The host copies what it keeps.
 *   - Handles (ld_storage, ld_stdb, ld_sttxn, ld_stcursor) are allocated by the plugin and freed
 *     by it, in destroy, close, commit/abort and cursor_close respectively.
 *
 * Errors
 *   - Every fallible call returns an ld_status. On failure the plugin also logs the engine's
 *     detail through host->log and keeps a text readable through last_error().
 *   - A failed put/del/get inside a write transaction leaves the transaction usable only for
 *     abort(), unless the status is LD_NOT_FOUND.
 *
 * Durability
 *   - The plugin reads `Sync` ("full" default, "normal", "off") from host->config_json. With
 *     "full", commit returning LD_OK means the transaction survives a power loss; with "normal"
 *     it survives a process crash; with "off" it may be lost by either (tests, bulk loads).
 * ------------------------------------------------------------------------------------------- */

typedef struct ld_storage ld_storage;   /* plugin instance */
typedef struct ld_stdb ld_stdb;         /* one open logical database */
typedef struct ld_sttxn ld_sttxn;       /* a transaction on one database */
typedef struct ld_stcursor ld_stcursor; /* a cursor over one key space, in one transaction */

#define LD_TXN_READ  0u /* begin flags: a read-only snapshot */
#define LD_TXN_WRITE 1u /* begin flags: the (single) write transaction */
/* begin flag, with LD_TXN_WRITE (since ABI 1.1): this transaction's durability may wait for the
 * next one that is durable. It must stay atomic and survive a process crash like any other;
 * only a power loss may take it (and the others like it since the last durable commit), never
 * damage earlier data. The core uses it for bookkeeping it can rebuild (replication
 * checkpoints). A plugin may treat it as an ordinary write. The core passes it only to plugins
 * that declare ABI 1.1 or later. */
#define LD_TXN_LAZY 2u

#define LD_STORAGE_MAX_KEY   511u
#define LD_STORAGE_MAX_VALUE (64u * 1024u * 1024u)

typedef struct ld_storage_v1 {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    uint32_t reserved0;

    /* create: makes a plugin instance from host->config_json.
     *   host  borrowed forever (the host table lives as long as the process).
     *   out   receives the instance; the plugin owns it until destroy().
     * Returns LD_OK, LD_INVALID (bad config; say which key in the log), LD_NOMEM.
     * Main thread. Since ABI 1.0. Required. */
    ld_status (*create)(const ld_host *host, ld_storage **out);

    /* destroy: frees the instance. Every database has been closed. Main thread.
     * Since ABI 1.0. Required. */
    void (*destroy)(ld_storage *st);

    /* open: opens logical database `name`, creating its files under directory `dir` when absent.
     *   dir   existing directory, borrowed; name matches [a-z0-9][a-z0-9_-]{0,62}, borrowed.
     *   out   receives the handle; owned by the plugin until close().
     * Returns LD_OK, LD_IO, LD_DENIED, LD_CORRUPT, LD_BUSY (locked by another process), LD_NOMEM.
     * Any thread. Since ABI 1.0. Required. */
    ld_status (*open)(ld_storage *st, const char *dir, const char *name, ld_stdb **out);

    /* close: flushes and frees the database handle. No transaction is open on it.
     * Any thread. Since ABI 1.0. Required. */
    void (*close)(ld_stdb *db);

    /* drop: deletes every file of database `name` under `dir`. The database is not open.
     * Returns LD_OK, LD_NOT_FOUND (nothing there), LD_IO, LD_DENIED.
     * Any thread. Since ABI 1.0. Required. */
    ld_status (*drop)(ld_storage *st, const char *dir, const char *name);

    /* list: calls cb(ctx, name) once per database found under `dir`, in any order; name is
     * borrowed for that call. A non-zero return from cb stops the walk (list returns LD_OK).
     * Returns LD_OK (also for an empty or missing dir), LD_IO.
     * Any thread. Since ABI 1.0. Required. */
    ld_status (*list)(ld_storage *st, const char *dir, int (*cb)(void *ctx, const char *name),
                      void *ctx);

    /* last_error: the text of the last failure reported to the calling thread by this instance.
     * Owned by the plugin; valid until the thread's next call into the plugin. Never NULL
     * ("" when there was none). Any thread. Since ABI 1.0. Required. */
    const char *(*last_error)(ld_storage *st);

    /* begin: starts a transaction. flags is LD_TXN_READ, LD_TXN_WRITE, or (since ABI 1.1)
     * LD_TXN_WRITE | LD_TXN_LAZY.
     *   out   receives the handle; owned by the plugin until commit() or abort().
     * Returns LD_OK, LD_INVALID (any other flags, e.g. LD_TXN_LAZY without LD_TXN_WRITE: the
     * conformance suite checks it), LD_BUSY, LD_IO, LD_NOMEM. Since ABI 1.0. Required. */
    ld_status (*begin)(ld_stdb *db, uint32_t flags, ld_sttxn **out);

    /* commit: makes a write transaction's changes durable per the Sync setting, then frees the
     * handle, whatever the result (also for read transactions: it just ends them). Every cursor
     * of the transaction has been closed. On failure nothing of the transaction is visible.
     * Returns LD_OK, LD_IO, LD_FULL, LD_BUSY. Since ABI 1.0. Required (pairs with abort). */
    ld_status (*commit)(ld_sttxn *txn);

    /* abort: discards the transaction's changes and frees the handle. Every cursor of the
     * transaction has been closed. Cannot fail. Since ABI 1.0. Required (pairs with commit). */
    void (*abort)(ld_sttxn *txn);

    /* get: looks up `key` in key space `space`.
     *   val, vlen  receive a read-only pointer to the value and its length (see Memory).
     * Returns LD_OK, LD_NOT_FOUND, LD_IO, LD_CORRUPT. Since ABI 1.0. Required. */
    ld_status (*get)(ld_sttxn *txn, const char *space, const void *key, size_t klen,
                     const void **val, size_t *vlen);

    /* put: sets `key` to the value in `space` (insert or replace). Write transactions only.
     * Returns LD_OK, LD_INVALID (read txn, key or value size), LD_FULL, LD_IO, LD_NOMEM.
     * Since ABI 1.0. Required. */
    ld_status (*put)(ld_sttxn *txn, const char *space, const void *key, size_t klen,
                     const void *val, size_t vlen);

    /* del: removes `key` from `space`. Write transactions only.
     * Returns LD_OK, LD_NOT_FOUND (absent; the transaction stays usable), LD_INVALID, LD_IO.
     * Since ABI 1.0. Required. */
    ld_status (*del)(ld_sttxn *txn, const char *space, const void *key, size_t klen);

    /* cursor_open: a forward cursor over `space` in this transaction, positioned nowhere.
     * The transaction must not write to `space` while the cursor is open.
     *   out   receives the handle; owned by the plugin until cursor_close().
     * Returns LD_OK, LD_NOMEM, LD_IO. Since ABI 1.0. Required (pairs with cursor_close). */
    ld_status (*cursor_open)(ld_sttxn *txn, const char *space, ld_stcursor **out);

    /* cursor_seek: positions on the first key >= `key` (the first key of the space when klen is
     * 0) and returns that entry.
     * Returns LD_OK, LD_NOT_FOUND (no such key: the cursor is exhausted), LD_IO, LD_CORRUPT.
     * Since ABI 1.0. Required. */
    ld_status (*cursor_seek)(ld_stcursor *cur, const void *key, size_t klen, const void **k,
                             size_t *kl, const void **v, size_t *vl);

    /* cursor_next: moves to the next key in byte order and returns that entry. Before any seek
     * it behaves as a seek to the first key.
     * Returns LD_OK, LD_NOT_FOUND (past the end), LD_IO, LD_CORRUPT. Since ABI 1.0. Required. */
    ld_status (*cursor_next)(ld_stcursor *cur, const void **k, size_t *kl, const void **v,
                             size_t *vl);

    /* cursor_close: frees the cursor. Since ABI 1.0. Required (pairs with cursor_open). */
    void (*cursor_close)(ld_stcursor *cur);

    /* cursor_last: positions on the greatest key of the space and returns that entry.
     * Returns LD_OK, LD_NOT_FOUND (empty space), LD_IO. Since ABI 1.0. Optional: when NULL the
     * core keeps what it needs (the last log sequence) in its own records. */
    ld_status (*cursor_last)(ld_stcursor *cur, const void **k, size_t *kl, const void **v,
                             size_t *vl);

    /* size_bytes: the bytes the database occupies on disk (all its files).
     * Returns LD_OK, LD_IO. Any thread. Since ABI 1.0. Optional: NULL means unknown. */
    ld_status (*size_bytes)(ld_stdb *db, uint64_t *out);

    /* location: the file (or directory) holding the database's data, for operators (the node
     * dashboard shows it), written NUL-terminated into buf (caller-owned, buflen bytes).
     * Returns LD_OK, LD_INVALID (buf too small). Any thread. Since ABI 1.1. Optional: NULL
     * means the dashboard shows no path. */
    ld_status (*location)(ld_stdb *db, char *buf, size_t buflen);

    /* copy: writes a consistent copy of database `name` under `dir` (one committed state, as a
     * read transaction sees it) into `dest_dir`, laid out as open() and list() expect, so that
     * open(st, dest_dir, name) reads it back. Meant for backups of a running node: the
     * database may meanwhile be open and written by another process (litedistd's), and the
     * copy neither blocks that writer for long nor changes the source. The plugin opens the
     * source itself, read-only; it must not be open in this instance (the host calls copy from
     * a process of its own, `litedistd backup`).
     *   dir, name   borrowed; name as for open(). dest_dir  an existing directory, borrowed;
     *               where the database already exists the copy fails and leaves it untouched.
     * Everything the copy allocates is freed before it returns; on failure no partial copy is
     * left in dest_dir.
     * Returns LD_OK, LD_NOT_FOUND (no such database), LD_EXISTS (dest_dir has it), LD_BUSY (open
     * in this instance), LD_IO, LD_DENIED, LD_FULL, LD_NOMEM. Any thread. Since ABI 1.3.
     * Optional: NULL (or a plugin of ABI 1.2 or earlier) means no online copy; the host says
     * so. Test with LD_ABI_HAS(ops, ld_storage_v1, copy) before reading it. */
    ld_status (*copy)(ld_storage *st, const char *dir, const char *name, const char *dest_dir);
} ld_storage_v1;

#ifdef __cplusplus
}
#endif

#endif /* LITEDIST_STORAGE_H */
