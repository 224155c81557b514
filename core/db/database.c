/* Opening and reading a logical database: state loaded from the meta space at open, documents
 * read in short read transactions, the digest term of docs/architecture.md §5. */
#include "database.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../index/index.h"
#include "../util/log.h"
#include "../util/threadsched.h"
#include "memo.h"
#include "snapshot.h"
#include "writer.h"

void ld_digest_term(const char *coll, size_t coll_len, const char *id, size_t id_len,
                    const ld_doc_rec *rec, uint8_t out[LD_DIGEST_LEN])
{
    /* Length-prefixed fields so no two different inputs share an encoding. */
    crypto_generichash_state h;
    uint8_t b[8];
    crypto_generichash_init(&h, NULL, 0, LD_DIGEST_LEN);
    ld_be64_put(b, coll_len);
    crypto_generichash_update(&h, b, 8);
    crypto_generichash_update(&h, (const uint8_t *)coll, coll_len);
    ld_be64_put(b, id_len);
    crypto_generichash_update(&h, b, 8);
    crypto_generichash_update(&h, (const uint8_t *)id, id_len);
    ld_be64_put(b, rec->hlc);
    crypto_generichash_update(&h, b, 8);
    ld_be64_put(b, rec->origin_len);
    crypto_generichash_update(&h, b, 8);
    crypto_generichash_update(&h, (const uint8_t *)rec->origin, rec->origin_len);
    b[0] = (rec->flags & LD_REC_TOMBSTONE) ? 1 : 0;
    crypto_generichash_update(&h, b, 1);
    ld_be64_put(b, rec->expires_ms);
    crypto_generichash_update(&h, b, 8);
    crypto_generichash_final(&h, out, LD_DIGEST_LEN);
}

static ld_status meta_u64(ld_txn *t, const char *key, uint64_t *out)
{
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_META, key, strlen(key), &v, &vl);
    if (st == LD_NOT_FOUND) {
        *out = 0;
        return LD_OK;
    }
    if (st != LD_OK) return st;
    if (vl != 8) return LD_CORRUPT;
    *out = ld_be64_get(v);
    return LD_OK;
}

/* The op log's size in bytes (meta "log_bytes", kept by every append and prune). A database
 * written before the count existed is measured once, here. */
static ld_status log_bytes(ld_txn *t, ld_db_state *s)
{
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_META, "log_bytes", 9, &v, &vl);
    if (st == LD_OK) {
        if (vl != 8) return LD_CORRUPT;
        s->log_bytes = ld_be64_get(v);
        return LD_OK;
    }
    if (st != LD_NOT_FOUND) return st;
    s->log_bytes = 0;
    if (s->last_seq == 0) return LD_OK;
    ld_cursor c;
    st = ld_cursor_open(t, LD_SPACE_LOG, &c);
    if (st != LD_OK) return st;
    const void *k;
    size_t kl;
    while ((st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK)
        s->log_bytes += kl + vl;
    ld_cursor_close(&c);
    return st == LD_NOT_FOUND ? LD_OK : st;
}

static ld_status load_state(ld_db *db)
{
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    ld_db_state s = {0};
    st = meta_u64(&t, "last_seq", &s.last_seq);
    if (st == LD_OK) st = meta_u64(&t, "hlc", &s.hlc_hw);
    if (st == LD_OK) st = meta_u64(&t, "pruned_through", &s.pruned_through);
    if (st == LD_OK) st = meta_u64(&t, "skip_from", &s.skip_from);
    if (st == LD_OK) st = meta_u64(&t, "skip_to", &s.skip_to);
    if (st == LD_OK) st = meta_u64(&t, "purge_floor", &s.purge_floor);
    if (st == LD_OK) st = meta_u64(&t, "refused", &s.refused);
    if (st == LD_OK) st = meta_u64(&t, "conflicts", &s.conflicts);
    if (st == LD_OK) st = log_bytes(&t, &s);
    if (st == LD_OK) {
        const void *v;
        size_t vl;
        ld_status g = ld_txn_get(&t, LD_SPACE_META, "last_prune", 10, &v, &vl);
        if (g == LD_OK && vl == 32) {
            s.last_prune_ms = ld_be64_get(v);
            s.last_prune_entries = ld_be64_get((const uint8_t *)v + 8);
            s.last_prune_purged = ld_be64_get((const uint8_t *)v + 16);
            s.dead_records = ld_be64_get((const uint8_t *)v + 24);
        } else if (g == LD_OK) {
            st = LD_CORRUPT;
        } else if (g != LD_NOT_FOUND) {
            st = g;
        }
    }
    if (st == LD_OK) {
        const void *v;
        size_t vl;
        ld_status g = ld_txn_get(&t, LD_SPACE_META, "purged_digest", 13, &v, &vl);
        if (g == LD_OK && vl == LD_DIGEST_LEN)
            memcpy(s.purged_digest, v, LD_DIGEST_LEN);
        else if (g == LD_OK)
            st = LD_CORRUPT;
        else if (g != LD_NOT_FOUND)
            st = g;
    }
    if (st == LD_OK) {
        const char *self = ld_env_origin(db->env);
        const void *v;
        size_t vl;
        ld_status g = ld_txn_get(&t, LD_SPACE_VV, self, strlen(self), &v, &vl);
        if (g == LD_OK && vl == 8)
            s.self_seq = ld_be64_get(v);
        else if (g == LD_OK)
            st = LD_CORRUPT;
        else if (g != LD_NOT_FOUND)
            st = g;
    }
    if (st == LD_OK) {
        const void *v;
        size_t vl;
        ld_status g = ld_txn_get(&t, LD_SPACE_META, "digest", 6, &v, &vl);
        if (g == LD_OK && vl == LD_DIGEST_LEN)
            memcpy(s.digest, v, LD_DIGEST_LEN);
        else if (g == LD_OK)
            st = LD_CORRUPT;
        else if (g != LD_NOT_FOUND)
            st = g;
    }
    ld_txn_abort(&t);
    if (st == LD_OK) db->committed = s;
    return st;
}

/* Checks that the database belongs to this data directory's incarnation (env->incarnation),
 * stamping it when it has no record yet and is being adopted, or marking it for its first commit
 * when it is empty (new). One of the backup a restored directory was made from
 * (env->restored_from) is taken over: stamped, its log moved past every earlier life. A database of
 * another incarnation was copied in from another node or from an earlier life of this one: its
 * op log does not continue this node's, so it is refused (logged with the recipe). */
static ld_status check_incarnation(ld_db *db)
{
    const char *want = db->env->incarnation;
    /* Adopting (no identity file), the first database that has a record decides; stamped after
     * it, the others must agree. */
    if (!want) return LD_OK;
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    const void *v;
    size_t vl;
    char have[80] = "";
    st = ld_txn_get(&t, LD_SPACE_META, "incarnation", 11, &v, &vl);
    if (st == LD_OK) snprintf(have, sizeof have, "%.*s", (int)(vl < 64 ? vl : 64), (const char *)v);
    ld_txn_abort(&t);
    if (st == LD_OK && !strcmp(have, want)) return LD_OK;
    if (st != LD_OK && st != LD_NOT_FOUND) return st;
    bool restored = st == LD_OK && db->env->restored_from && !strcmp(have, db->env->restored_from);
    if (restored) {
        /* A database of the backup this directory was restored from (litedistd restore): it
         * continues here under the new incarnation, and its writes under the new origin. */
        ld_log(LD_LOG_INFO, db->name, "restored from incarnation %s: now %s", have, want);
        goto stamp;
    }
    if (st == LD_OK && db->env->adopt && !db->env->adopt_taken && strlen(have) == strlen(want)) {
        memcpy(db->env->incarnation, have, strlen(have) + 1);
        db->env->adopt_taken = true;
        return LD_OK;
    }
    if (st == LD_OK || (db->committed.last_seq > 0 && !db->env->adopt)) {
        if (have[0])
            ld_log(LD_LOG_ERROR, db->name,
                   "this database belongs to incarnation %s, not to this data directory's (%s): "
                   "it was copied in from another node or from an earlier life of this one; move "
                   "it out of %s and let replication bring the data back (see \"The data "
                   "directory's identity\" in docs/storage.md)",
                   have, want, db->env->dir);
        else
            ld_log(LD_LOG_ERROR, db->name,
                   "this database holds data but no incarnation, and this data directory has one "
                   "(%s): it was copied in from another node's data directory; move it out of %s "
                   "and let replication bring the data back (see \"The data directory's "
                   "identity\" in docs/storage.md)",
                   want, db->env->dir);
        return LD_INVALID;
    }
    db->env->adopt_taken = true;
    if (db->committed.last_seq == 0 && !db->env->adopt) {
        /* New: recorded with its first commit, so opening costs no write (and a database whose
         * first write fails holds nothing, not even this). */
        db->unstamped = true;
        return LD_OK;
    }
stamp:
    st = ld_txn_begin(db->env->store, db->st, true, &t);
    if (st != LD_OK) return st;
    st = ld_txn_put(&t, LD_SPACE_META, "incarnation", 11, want, strlen(want));
    uint64_t last_seq = db->committed.last_seq;
    uint64_t skip_from = db->committed.skip_from, skip_to = db->committed.skip_to;
    if (st == LD_OK && restored) {
        /* Peers remember how far they read this node's log (their pull checkpoints), and the
         * life after the backup went further than the copy did: the log continues at a position
         * no earlier life can have reached, so no new entry hides behind a peer's checkpoint. */
        uint64_t base = ld_restored_log_base((uint64_t)time(NULL));
        if (base > last_seq) {
            /* The positions jumped over hold nothing: counts from positions leave them out. */
            skip_from = last_seq;
            skip_to = last_seq = base;
        }
        uint8_t b[8];
        ld_be64_put(b, last_seq);
        st = ld_txn_put(&t, LD_SPACE_META, "last_seq", 8, b, 8);
        ld_be64_put(b, skip_from);
        if (st == LD_OK) st = ld_txn_put(&t, LD_SPACE_META, "skip_from", 9, b, 8);
        ld_be64_put(b, skip_to);
        if (st == LD_OK) st = ld_txn_put(&t, LD_SPACE_META, "skip_to", 7, b, 8);
    }
    if (st != LD_OK) {
        ld_txn_abort(&t);
        return st;
    }
    st = ld_txn_commit(&t);
    if (st == LD_OK) {
        db->committed.last_seq = last_seq;
        db->committed.skip_from = skip_from;
        db->committed.skip_to = skip_to;
    }
    return st;
}

static ld_status db_open(ld_db_env *env, const char *name, ld_db **out);

ld_status ld_db_open(ld_db_env *env, const char *name, ld_db **out)
{
    /* The database's writer thread, and any the storage plugin starts, at the default slice
     * rather than the loop's short one (util/threadsched.h). */
    bool was_short = ld_thread_slice_default();
    ld_status st = db_open(env, name, out);
    ld_thread_slice_restore(was_short);
    return st;
}

static ld_status db_open(ld_db_env *env, const char *name, ld_db **out)
{
    ld_db *db = calloc(1, sizeof *db);
    if (!db) return LD_NOMEM;
    snprintf(db->name, sizeof db->name, "%s", name);
    db->env = env;
    pthread_mutex_init(&db->mu, NULL);
    ld_status st = ld_store_open(env->store, env->dir, name, &db->st);
    if (st != LD_OK) goto fail;
    st = load_state(db);
    if (st != LD_OK) {
        ld_log(LD_LOG_ERROR, db->name, "cannot read the database state: %s", ld_status_str(st));
        goto fail;
    }
    st = check_incarnation(db);
    if (st != LD_OK) {
        if (st != LD_INVALID)
            ld_log(LD_LOG_ERROR, db->name, "cannot check or record its incarnation: %s",
                   ld_status_str(st));
        goto fail;
    }
    /* Stamps never go back: the clock starts past everything this database has stored. */
    ld_hlc_observe(env->clock, db->committed.hlc_hw);
    /* No write is in flight yet: every own op from now on is stamped above a stamp issued now. */
    db->committed.promise_seq = db->committed.self_seq;
    db->committed.promise_hlc = ld_hlc_now(env->clock);
    db->ix_work = true; /* an index build or drop may have been cut short: the writer looks */
    db->ix_shared = ld_index_shared_new();
    db->memo = ld_memo_new(env->read_cache_bytes);
    bool memo_ok = !env->read_cache_bytes || db->memo;
    db->writer = db->ix_shared && memo_ok ? ld_writer_new(db) : NULL;
    if (!db->writer) {
        st = LD_NOMEM;
        goto fail;
    }
    *out = db;
    return LD_OK;
fail:
    ld_index_shared_free(db->ix_shared);
    ld_memo_free(db->memo);
    if (db->st) ld_store_close(env->store, db->st);
    pthread_mutex_destroy(&db->mu);
    free(db);
    return st;
}

ld_status ld_db_close(ld_db *db, bool drop)
{
    ld_writer_free(db->writer);
    ld_index_cache_free(db->ix_cache);
    ld_index_shared_free(db->ix_shared);
    ld_memo_free(db->memo);
    ld_keylog_free(&db->written);
    ld_store_close(db->env->store, db->st);
    ld_status st = LD_OK;
    if (drop) st = ld_store_drop(db->env->store, db->env->dir, db->name);
    pthread_mutex_destroy(&db->mu);
    free(db);
    return st;
}

void ld_db_state_get(ld_db *db, ld_db_state *out)
{
    pthread_mutex_lock(&db->mu);
    *out = db->committed;
    pthread_mutex_unlock(&db->mu);
}

ld_status ld_db_get_doc(ld_db *db, struct ld_snapshots *snaps, const char *coll, size_t coll_len,
                        const char *id, size_t id_len, uint8_t **buf, ld_doc_rec *rec)
{
    *buf = NULL;
    /* The key on the stack when it fits (a cache key's does: at most 500 bytes), since a point
     * read is hot (every RESP GET); longer ids are rare and get an allocation. */
    uint8_t small[640];
    size_t klen = coll_len + 1 + id_len;
    uint8_t *key = small;
    if (klen <= sizeof small) {
        memcpy(small, coll, coll_len);
        small[coll_len] = 0;
        memcpy(small + coll_len + 1, id, id_len);
    } else if (!(key = ld_doc_key(coll, coll_len, id, id_len, &klen))) {
        return LD_NOMEM;
    }
    /* The memo is the loop's (snaps: a loop-thread read). It is looked at before the snapshot
     * is taken: a miss then reads a snapshot taken after the memo applied the invalidations
     * handed over so far (memo.h). */
    ld_memo *memo = snaps ? db->memo : NULL;
    size_t vl;
    const uint8_t *mv = memo ? ld_memo_get(memo, key, klen, &vl) : NULL;
    if (mv) {
        ld_status st = LD_OK;
        *buf = malloc(vl ? vl : 1);
        if (!*buf)
            st = LD_NOMEM;
        else if (memcpy(*buf, mv, vl), !ld_doc_rec_decode(*buf, vl, rec))
            st = LD_CORRUPT;
        if (key != small) free(key);
        if (st != LD_OK) {
            free(*buf);
            *buf = NULL;
        }
        return st;
    }
    ld_txn own, *t = NULL;
    ld_status st = snaps ? ld_snapshots_txn(snaps, db, &t) : LD_NOT_FOUND;
    if (st != LD_OK) { /* no snapshot to share: a transaction of its own */
        t = NULL;
        st = ld_txn_begin(db->env->store, db->st, false, &own);
        if (st == LD_OK) t = &own;
    }
    if (st == LD_OK) {
        const void *v;
        st = ld_txn_get(t, LD_SPACE_DOCS, key, klen, &v, &vl);
        if (st == LD_OK) {
            *buf = malloc(vl ? vl : 1);
            if (!*buf)
                st = LD_NOMEM;
            else {
                memcpy(*buf, v, vl);
                if (!ld_doc_rec_decode(*buf, vl, rec))
                    st = LD_CORRUPT;
                else if (memo)
                    ld_memo_put(memo, key, klen, *buf, vl);
            }
        }
        if (t == &own) ld_txn_abort(&own);
    }
    if (key != small) free(key);
    if (st != LD_OK) {
        free(*buf);
        *buf = NULL;
    }
    return st;
}

/* The id of the last entry read, kept in a buffer that grows as needed (ids are short). */
typedef struct last_id {
    char *buf;
    size_t len, cap;
} last_id;

static bool last_id_set(last_id *l, const void *id, size_t len)
{
    if (len + 1 > l->cap) {
        size_t cap = len + 1 < 64 ? 64 : 2 * (len + 1);
        char *buf = realloc(l->buf, cap);
        if (!buf) return false;
        l->buf = buf;
        l->cap = cap;
    }
    memcpy(l->buf, id, len);
    l->buf[len] = '\0';
    l->len = len;
    return true;
}

ld_status ld_db_scan_docs(ld_db *db, const char *coll, size_t coll_len, ld_doc_page *page,
                          int (*cb)(void *ctx, const char *id, size_t id_len,
                                    const ld_doc_rec *rec),
                          void *ctx)
{
    page->more = false;
    page->next_after = NULL;
    page->next_after_len = 0;
    size_t plen, slen;
    uint8_t *prefix = ld_doc_key(coll, coll_len, "", 0, &plen);
    uint8_t *start = prefix && page->after
                         ? ld_doc_key(coll, coll_len, page->after, page->after_len, &slen)
                         : NULL;
    if (!prefix || (page->after && !start)) {
        free(prefix);
        return LD_NOMEM;
    }
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) {
        free(prefix);
        free(start);
        return st;
    }
    ld_cursor c;
    st = ld_cursor_open(&t, LD_SPACE_DOCS, &c);
    if (st == LD_OK) {
        const void *k, *v;
        size_t kl, vl;
        uint64_t seen = 0, sent = 0, read = 0;
        last_id last = {0};
        bool stopped = false; /* by cb: more only if another entry follows */
        st = start ? ld_cursor_seek(&c, start, slen, &k, &kl, &v, &vl)
                   : ld_cursor_seek(&c, prefix, plen, &k, &kl, &v, &vl);
        /* Strictly after: the id itself, when it is there, is not part of the page. */
        if (st == LD_OK && start && kl == slen && memcmp(k, start, slen) == 0)
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        while (st == LD_OK) {
            if (kl < plen || memcmp(k, prefix, plen) != 0) break;
            if (sent == page->take || (page->max_read && read == page->max_read) || stopped) {
                /* Another entry is there: the caller continues after the last one read. */
                page->more = true;
                break;
            }
            read++;
            ld_doc_rec rec;
            if (!ld_doc_rec_decode(v, vl, &rec)) {
                st = LD_CORRUPT;
                break;
            }
            if (!last_id_set(&last, (const char *)k + plen, kl - plen)) {
                st = LD_NOMEM;
                break;
            }
            if (!(rec.flags & LD_REC_TOMBSTONE) && seen++ >= page->skip) {
                int r = cb(ctx, (const char *)k + plen, kl - plen, &rec);
                if (r >= 0) sent++;
                stopped = r > 0;
            }
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        }
        if (st == LD_NOT_FOUND) st = LD_OK;
        if (st == LD_OK && page->more) {
            page->next_after = last.buf; /* handed over */
            page->next_after_len = last.len;
            last.buf = NULL;
        } else {
            page->more = false;
        }
        free(last.buf);
        ld_cursor_close(&c);
    }
    ld_txn_abort(&t);
    free(prefix);
    free(start);
    return st;
}

ld_status ld_db_scan_collections(ld_db *db, int (*cb)(void *ctx, const char *name, size_t len),
                                 void *ctx)
{
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    ld_cursor c;
    st = ld_cursor_open(&t, LD_SPACE_COLLS, &c);
    if (st == LD_OK) {
        const void *k, *v;
        size_t kl, vl;
        st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        while (st == LD_OK) {
            if (cb(ctx, k, kl)) break;
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        }
        if (st == LD_NOT_FOUND) st = LD_OK;
        ld_cursor_close(&c);
    }
    ld_txn_abort(&t);
    return st;
}
