/* LMDB storage plugin: at a clean close, replaces a data.mdb that is mostly free pages with a
 * compacted copy, so that churn (a pruned op log, swept cache bodies) does not hold disk forever.
 */
#include "lmdb_compact.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A copy pays when it gives back at least this much, and at least 1/LMC_MIN_FREE_SHARE of the
 * file: below, the close's time buys little disk. */
#define LMC_MIN_FREE_BYTES ((uint64_t)1 << 20)
#define LMC_MIN_FREE_SHARE 8u
/* What one txn of the packed copy writes (a write txn's dirty pages are bounded). */
#define LMC_BATCH_BYTES ((uint64_t)32 << 20)

/* The pages a packed copy of every key space takes, from the records' sizes, filling each leaf
 * in key order as MDB_APPEND does: a node is an 8-byte header, its key and its value (or an
 * 8-byte page number when the value goes to overflow pages), even-sized, plus a 2-byte slot, in
 * pages of psize less a 16-byte header; branch pages add a key and a header per leaf. Close to
 * what the copy writes: it only decides whether the copy pays. */
static int lmc_packed_pages(MDB_txn *txn, uint64_t psize, uint64_t *out)
{
    MDB_dbi main_dbi;
    MDB_cursor *mc = NULL;
    const uint64_t room = psize - 16u, node_max = ((psize - 16u) / 2u & ~(uint64_t)1) - 2u;
    uint64_t pages = 3u; /* two meta pages and the main database's */
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc == 0) rc = mdb_cursor_open(txn, main_dbi, &mc);
    MDB_val name, unused;
    for (MDB_cursor_op op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        rc = mdb_cursor_get(mc, &name, &unused, op);
        if (rc != 0) break;
        char sp[512];
        if (name.mv_size == 0 || name.mv_size >= sizeof sp ||
            memchr(name.mv_data, '\0', name.mv_size))
            continue; /* not a key space the plugin made: the copy keeps it page for page */
        memcpy(sp, name.mv_data, name.mv_size);
        sp[name.mv_size] = '\0';
        MDB_dbi dbi;
        MDB_cursor *c = NULL;
        if (mdb_dbi_open(txn, sp, 0, &dbi) != 0) continue;
        uint64_t leaves = 1, fill = 0, branch = 0, bfill = 0;
        rc = mdb_cursor_open(txn, dbi, &c);
        MDB_val k, v;
        for (MDB_cursor_op o2 = MDB_FIRST; rc == 0; o2 = MDB_NEXT) {
            rc = mdb_cursor_get(c, &k, &v, o2);
            if (rc != 0) break;
            uint64_t node = 8u + k.mv_size + v.mv_size;
            if (node >= node_max) {
                pages += (16u + v.mv_size + psize - 1u) / psize; /* its overflow pages */
                node = 8u + k.mv_size + 8u;
            }
            node = ((node + 1u) & ~(uint64_t)1) + 2u;
            if (fill + node > room) {
                leaves++;
                fill = 0;
                uint64_t bnode = ((8u + k.mv_size + 1u) & ~(uint64_t)1) + 2u;
                if (bfill + bnode > room || !branch) {
                    branch++;
                    bfill = 0;
                }
                bfill += bnode;
            }
            fill += node;
        }
        if (c) mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND) rc = 0;
        pages += leaves + branch;
    }
    if (mc) mdb_cursor_close(mc);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    *out = pages;
    return 0;
}

int lm_pages_count(MDB_env *env, uint64_t scan_max_bytes, lm_pages *out)
{
    MDB_envinfo info;
    MDB_stat es;
    int rc = mdb_env_info(env, &info);
    if (rc == 0) rc = mdb_env_stat(env, &es);
    if (rc != 0) return rc;
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    /* The free list is LMDB's database 0: one record per freeing txn, whose value is an ID list
     * (a count, then that many page numbers), as mdb_stat -f reads it. */
    if (rc == 0) rc = mdb_cursor_open(txn, 0, &c);
    uint64_t free_pages = 0;
    MDB_val k, v;
    for (MDB_cursor_op op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        rc = mdb_cursor_get(c, &k, &v, op);
        if (rc == 0 && v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof n);
            free_pages += n;
        }
    }
    if (c) mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) rc = 0;
    out->psize = es.ms_psize;
    out->file = (uint64_t)info.me_last_pgno + 1;
    out->free = free_pages < out->file ? free_pages : out->file;
    out->packed = 0;
    if (rc == 0 && (out->file - out->free) * out->psize <= scan_max_bytes)
        rc = lmc_packed_pages(txn, out->psize, &out->packed);
    if (txn) mdb_txn_abort(txn);
    return rc;
}

bool lm_compact_pays(const lm_pages *p, uint64_t max_bytes)
{
    uint64_t used = p->file - p->free;
    /* What the copy gives back: the free pages, and the in-use pages beyond a packed copy. */
    uint64_t back = p->free + (p->packed && p->packed < used ? used - p->packed : 0);
    return back * p->psize >= LMC_MIN_FREE_BYTES && back * LMC_MIN_FREE_SHARE >= p->file &&
           used * p->psize <= max_bytes;
}

/* Opens <path>/lock.mdb and takes the lock LMDB's first opener takes (an exclusive fcntl lock on
 * its first byte): every other process with the environment open holds it shared, and one that
 * opens it meanwhile waits for it before it opens data.mdb. Returns the fd holding the lock, -1
 * when another process has the environment open (errno EAGAIN), or -1 with another errno. */
static int lmc_lock(const char *path)
{
    char lock[4096];
    if ((size_t)snprintf(lock, sizeof lock, "%s/lock.mdb", path) >= sizeof lock) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int rc;
    while ((rc = fcntl(fd, F_SETLK, &fl)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        int e = errno == EACCES ? EAGAIN : errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int lmc_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return e;
}

static uint64_t lmc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Rewrites every key space of src into dst in key order with MDB_APPEND, which fills each page
 * before it starts the next: unlike mdb_env_copy's compaction (which drops free pages but keeps
 * every page as full as it was), this also packs the leaves that scattered inserts and deletes
 * left half empty. Commits every LMC_BATCH_BYTES.
 * Returns 0, an LMDB error, or MDB_INCOMPATIBLE when src holds something other than plain key
 * spaces (the caller then falls back to mdb_env_copyfd2). */
static int lmc_rebuild(MDB_env *src, MDB_env *dst)
{
    MDB_txn *rt = NULL, *wt = NULL;
    MDB_cursor *mc = NULL, *c = NULL;
    MDB_dbi main_dbi;
    int rc = mdb_txn_begin(src, NULL, MDB_RDONLY, &rt);
    if (rc == 0) rc = mdb_dbi_open(rt, NULL, 0, &main_dbi);
    if (rc == 0) rc = mdb_cursor_open(rt, main_dbi, &mc);
    if (rc == 0) rc = mdb_txn_begin(dst, NULL, 0, &wt);
    uint64_t pending = 0;
    MDB_val name, unused;
    for (MDB_cursor_op op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        rc = mdb_cursor_get(mc, &name, &unused, op);
        if (rc != 0) break;
        char sp[512];
        if (name.mv_size == 0 || name.mv_size >= sizeof sp ||
            memchr(name.mv_data, '\0', name.mv_size)) {
            rc = MDB_INCOMPATIBLE;
            break;
        }
        memcpy(sp, name.mv_data, name.mv_size);
        sp[name.mv_size] = '\0';
        MDB_dbi sdbi, ddbi;
        unsigned flags = 0;
        rc = mdb_dbi_open(rt, sp, 0, &sdbi); /* MDB_INCOMPATIBLE for a plain key */
        if (rc == 0) rc = mdb_dbi_flags(rt, sdbi, &flags);
        if (rc == 0 && flags != 0) rc = MDB_INCOMPATIBLE; /* not a space as the plugin makes them */
        if (rc == 0) rc = mdb_dbi_open(wt, sp, MDB_CREATE, &ddbi);
        if (rc == 0) rc = mdb_cursor_open(rt, sdbi, &c);
        MDB_val k, v;
        for (MDB_cursor_op o2 = MDB_FIRST; rc == 0; o2 = MDB_NEXT) {
            rc = mdb_cursor_get(c, &k, &v, o2);
            if (rc != 0) break;
            rc = mdb_put(wt, ddbi, &k, &v, MDB_APPEND);
            pending += k.mv_size + v.mv_size + 16u;
            if (rc == 0 && pending >= LMC_BATCH_BYTES) {
                rc = mdb_txn_commit(wt);
                wt = NULL;
                pending = 0;
                if (rc == 0) rc = mdb_txn_begin(dst, NULL, 0, &wt);
            }
        }
        if (c) mdb_cursor_close(c);
        c = NULL;
        if (rc == MDB_NOTFOUND) rc = 0;
    }
    if (rc == MDB_NOTFOUND) {
        rc = mdb_txn_commit(wt);
        wt = NULL;
    }
    if (wt) mdb_txn_abort(wt);
    if (mc) mdb_cursor_close(mc);
    if (rt) mdb_txn_abort(rt);
    return rc;
}

/* Writes the compacted copy of the environment at `path` to `tmp`, and flushes it. Both
 * environments are opened without LMDB's locking (MDB_NOLOCK): the caller holds the lock file
 * exclusively, so nothing else reads or writes `path`, and LMDB would otherwise downgrade that
 * lock to shared on open; `tmp` is a plain file (MDB_NOSUBDIR) no one else knows. */
static int lmc_copy(const char *path, const char *tmp, unsigned maxdbs, mode_t mode)
{
    MDB_env *src = NULL, *dst = NULL;
    int rc = mdb_env_create(&src);
    if (rc == 0) rc = mdb_env_set_maxdbs(src, maxdbs);
    /* No map size: a read-only open takes the one recorded in the file. */
    if (rc == 0) rc = mdb_env_open(src, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0644);
    MDB_envinfo info;
    if (rc == 0) rc = mdb_env_info(src, &info);
    if (rc == 0) rc = mdb_env_create(&dst);
    if (rc == 0) rc = mdb_env_set_maxdbs(dst, maxdbs);
    /* The copy keeps the size the map grew to (docs/storage.md: it is recorded in the file). */
    if (rc == 0) rc = mdb_env_set_mapsize(dst, info.me_mapsize);
    if (rc == 0)
        rc = mdb_env_open(dst, tmp, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC | MDB_NOTLS, mode);
    if (rc == 0) rc = lmc_rebuild(src, dst);
    if (rc == MDB_INCOMPATIBLE) {
        /* Something the plugin did not write: a page-for-page compacted copy is still exact. */
        mdb_env_close(dst);
        dst = NULL;
        int fd = unlink(tmp) == 0 ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode) : -1;
        if (fd < 0) {
            rc = errno;
        } else {
            rc = mdb_env_copyfd2(src, fd, MDB_CP_COMPACT);
            if (rc == 0 && fsync(fd) != 0) rc = errno;
            close(fd);
        }
    } else if (rc == 0) {
        rc = mdb_env_sync(dst, 1); /* MDB_NOSYNC above: one flush for the whole copy */
    }
    if (dst) mdb_env_close(dst);
    if (src) mdb_env_close(src);
    return rc;
}

/* After data.mdb was replaced, lock.mdb still records the old file's last txn id, and a read txn
 * picks its meta page by that id's parity: a process that waited for our lock would read the new
 * file through it. Opening the environment once, while this process is its only user, makes
 * LMDB rebuild the lock file from the new file's meta (the exclusive opener's work) before the
 * lock is shared; it also checks that the new file opens. */
static int lmc_reset_locks(const char *path)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS, 0644);
    if (env) mdb_env_close(env);
    return rc;
}

void lm_compact(const ld_host *host, const char *path, unsigned maxdbs)
{
    char data[4096], tmp[4096];
    if ((size_t)snprintf(data, sizeof data, "%s/data.mdb", path) >= sizeof data ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/%s", path, LM_COMPACT_TMP) >= sizeof tmp)
        return;
    uint64_t t0 = lmc_now_ms();
    int lfd = lmc_lock(path);
    if (lfd < 0) {
        if (errno == EAGAIN)
            host->log(host, LD_LOG_INFO,
                      "%s: not compacted at close: another process has it open (litedistd "
                      "backup, mdb_copy, mdb_stat); its free pages stay for reuse",
                      path);
        else
            host->log(host, LD_LOG_WARN, "%s: not compacted at close: cannot lock lock.mdb: %s",
                      path, strerror(errno));
        return;
    }
    struct stat sb;
    if (stat(data, &sb) != 0) {
        host->log(host, LD_LOG_WARN, "%s: not compacted at close: %s", data, strerror(errno));
        close(lfd);
        return;
    }
    uint64_t before = (uint64_t)sb.st_size;
    const char *what = "removing an older";
    int err = 0, rc = 0;
    if (unlink(tmp) != 0 && errno != ENOENT) {
        err = errno;
        goto fail;
    }
    what = "writing";
    rc = lmc_copy(path, tmp, maxdbs, sb.st_mode & 0777);
    if (rc != 0) goto fail;
    what = "sizing";
    if (stat(tmp, &sb) != 0) {
        err = errno;
        goto fail;
    }
    what = "renaming";
    if (rename(tmp, data) != 0) {
        err = errno;
        goto fail;
    }
    /* The rename is durable once the directory is; until then a crash leaves either file. */
    err = lmc_fsync_dir(path);
    if (err != 0)
        host->log(host, LD_LOG_WARN, "%s: compacted, but flushing the directory failed: %s", path,
                  strerror(err));
    rc = lmc_reset_locks(path);
    if (rc != 0)
        host->log(host, LD_LOG_ERROR, "%s: the compacted data.mdb does not open: %s (lmdb %d)",
                  path, mdb_strerror(rc), rc);
    else
        host->log(host, LD_LOG_INFO, "%s: compacted at close from %llu to %llu KiB in %llu ms",
                  path, (unsigned long long)(before / 1024),
                  (unsigned long long)((uint64_t)sb.st_size / 1024),
                  (unsigned long long)(lmc_now_ms() - t0));
    close(lfd);
    return;
fail:
    unlink(tmp);
    close(lfd);
    host->log(host, LD_LOG_WARN,
              "%s: compaction at close failed %s %s: %s; data.mdb is unchanged, its free pages "
              "stay for reuse",
              path, what, LM_COMPACT_TMP, rc ? mdb_strerror(rc) : strerror(err));
}

int lm_compact_leftover(const ld_host *host, const char *path)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s", path, LM_COMPACT_TMP) >= sizeof tmp)
        return ENAMETOOLONG;
    struct stat sb;
    if (stat(tmp, &sb) != 0) return errno == ENOENT ? 0 : errno;
    /* Without lock.mdb no process has the environment open (LMDB creates it at open). */
    int lfd = lmc_lock(path);
    if (lfd < 0 && errno == EAGAIN) return 0;
    if (lfd < 0 && errno != ENOENT) return errno;
    int err = unlink(tmp) == 0 || errno == ENOENT ? 0 : errno;
    if (lfd >= 0) close(lfd);
    if (err == 0)
        host->log(host, LD_LOG_INFO,
                  "%s: removed %s, left by a compaction that was interrupted (data.mdb was not "
                  "replaced)",
                  path, LM_COMPACT_TMP);
    return err;
}
