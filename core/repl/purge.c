/* The purge of dead records below the purge floor (see purge.h): the loop side that chains one
 * bounded writer transaction after another, and the transaction itself. */
#include "purge.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../db/completions.h"
#include "../db/database.h"
#include "../db/hlc.h"
#include "../db/registry.h"
#include "../db/writer.h"
#include "../node.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "frontier.h"
#include "prune.h"
#include "repl.h"
#include "snapshot_page.h"

/* Records looked at per transaction, per deletion allowed: a long run of live records does not
 * hold one transaction open for the whole database. */
#define SCAN_PER_DELETE 8u

typedef struct purge_run {
    ld_node *node;
    char db[LD_DB_NAME_MAX + 1];
    void (*done)(void *arg, const ld_purge_result *res);
    void *arg;
    /* Input of every transaction */
    ld_purge_origin *origins; /* the writers the frontier counts besides those in the VV */
    size_t n_origins;
    uint64_t cap_stamp, retention_stamp, log_pruned, now_ms;
    size_t batch;
    bool first;                     /* the next transaction raises the floor */
    uint8_t after[LD_SNAP_MAX_KEY]; /* the walk resumes after this key */
    size_t after_len;
    /* Over the whole run */
    ld_purge_result res;
    /* One transaction's results, reset on every run of it */
    uint64_t t_purged, t_dead;
    bool t_more;
    uint8_t t_after[LD_SNAP_MAX_KEY];
    size_t t_after_len;
} purge_run;

/* Adds origin (len bytes) to the frontier's inputs unless it is there, reading its VV entry and
 * last stamp in t. */
static ld_status add_origin(ld_txn *t, ld_frontier_origin **fo, char (**names)[LD_NODE_ID_MAX + 1],
                            size_t *n, const char *origin, size_t len, const ld_purge_origin *p)
{
    if (len == 0 || len > LD_NODE_ID_MAX) return LD_OK;
    size_t i = 0;
    while (i < *n && (strlen((*names)[i]) != len || memcmp((*names)[i], origin, len) != 0))
        i++;
    if (i == *n) {
        ld_frontier_origin *g = realloc(*fo, (*n + 1) * sizeof **fo);
        if (!g) return LD_NOMEM;
        *fo = g;
        char(*h)[LD_NODE_ID_MAX + 1] = realloc(*names, (*n + 1) * sizeof **names);
        if (!h) return LD_NOMEM;
        *names = h;
        memcpy(h[i], origin, len);
        h[i][len] = '\0';
        memset(&g[i], 0, sizeof g[i]);
        const void *v;
        size_t vl;
        ld_status st = ld_txn_get(t, LD_SPACE_VV, origin, len, &v, &vl);
        if (st == LD_OK && vl == 8) g[i].vv = ld_be64_get(v);
        if (st != LD_OK && st != LD_NOT_FOUND) return st;
        st = ld_txn_get(t, LD_SPACE_LSTAMP, origin, len, &v, &vl);
        if (st == LD_OK && vl == 8) g[i].last_stamp = ld_be64_get(v);
        if (st != LD_OK && st != LD_NOT_FOUND) return st;
        (*n)++;
    }
    if (p && p->has_promise) {
        (*fo)[i].has_promise = true;
        (*fo)[i].promise_seq = p->seq;
        (*fo)[i].promise_hlc = p->hlc;
    }
    return LD_OK;
}

/* The frontier of the database in t: every origin of its version vector, every writer with a
 * promise and every active peer, this node excepted (its own ops are stamped by its clock). */
static ld_status frontier_of(ld_db *db, ld_txn *t, const purge_run *pr, uint64_t *out)
{
    ld_frontier_origin *fo = NULL;
    char(*names)[LD_NODE_ID_MAX + 1] = NULL;
    size_t n = 0;
    const char *self = db->env->node_id;
    ld_status st = LD_OK;
    for (size_t i = 0; i < pr->n_origins && st == LD_OK; i++)
        if (strcmp(pr->origins[i].origin, self) != 0)
            st = add_origin(t, &fo, &names, &n, pr->origins[i].origin,
                            strlen(pr->origins[i].origin), &pr->origins[i]);
    ld_cursor c;
    if (st == LD_OK) st = ld_cursor_open(t, LD_SPACE_VV, &c);
    if (st == LD_OK) {
        /* The origins first, then their entries: no read in a space a cursor walks. */
        char(*vvk)[LD_NODE_ID_MAX + 1] = NULL;
        size_t nv = 0;
        const void *k, *v;
        size_t kl, vl;
        while ((st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK) {
            if (kl == 0 || kl > LD_NODE_ID_MAX || (kl == strlen(self) && !memcmp(k, self, kl)))
                continue;
            char(*g)[LD_NODE_ID_MAX + 1] = realloc(vvk, (nv + 1) * sizeof *vvk);
            if (!g) {
                st = LD_NOMEM;
                break;
            }
            vvk = g;
            memcpy(vvk[nv], k, kl);
            vvk[nv++][kl] = '\0';
        }
        ld_cursor_close(&c);
        if (st == LD_NOT_FOUND) st = LD_OK;
        for (size_t i = 0; i < nv && st == LD_OK; i++)
            st = add_origin(t, &fo, &names, &n, vvk[i], strlen(vvk[i]), NULL);
        free(vvk);
    }
    if (st == LD_OK) *out = ld_frontier(ld_hlc_peek(db->env->clock), pr->cap_stamp, fo, n);
    free(fo);
    free(names);
    return st;
}

static void xor16(uint8_t *d, const uint8_t *t)
{
    for (int i = 0; i < LD_DIGEST_LEN; i++)
        d[i] ^= t[i];
}

static ld_status purge_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    purge_run *pr = job->ctx;
    job->result = LD_WR_OK;
    pr->t_purged = pr->t_dead = 0;
    pr->t_more = false;
    pr->t_after_len = 0;
    ld_status st = LD_OK;
    if (pr->first) {
        uint64_t r;
        if ((st = frontier_of(db, t, pr, &r)) != LD_OK) return st;
        pending->purge_floor = ld_purge_floor_next(pending->purge_floor, r, pr->retention_stamp);
    }
    uint64_t floor = pending->purge_floor;
    size_t cap = pr->batch, scan_cap = pr->batch * SCAN_PER_DELETE, scanned = 0, nk = 0;
    const uint64_t t0 = ld_mono_us();
    uint8_t **keys = calloc(cap, sizeof *keys);
    size_t *klens = calloc(cap, sizeof *klens);
    if (!keys || !klens) {
        free(keys);
        free(klens);
        return LD_NOMEM;
    }
    uint8_t purged_terms[LD_DIGEST_LEN] = {0};
    ld_cursor c;
    st = ld_cursor_open(t, LD_SPACE_DOCS, &c); /* floor 0: only counts the dead */
    if (st == LD_OK) {
        const void *k, *v;
        size_t kl, vl;
        st = ld_cursor_seek(&c, pr->after, pr->after_len, &k, &kl, &v, &vl);
        if (st == LD_OK && pr->after_len && kl == pr->after_len && !memcmp(k, pr->after, kl))
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        while (st == LD_OK) {
            if (nk == cap || scanned == scan_cap ||
                (scanned && !(scanned & 63) &&
                 ld_mono_us() - t0 >= LD_WRITER_BACKGROUND_BUDGET_US / 2)) {
                pr->t_more = true;
                break;
            }
            ld_doc_rec rec;
            const char *coll, *id;
            size_t cl, il;
            if (kl > LD_SNAP_MAX_KEY || !ld_doc_rec_decode(v, vl, &rec) ||
                !ld_doc_key_split(k, kl, &coll, &cl, &id, &il)) {
                st = LD_CORRUPT;
                break;
            }
            scanned++;
            memcpy(pr->t_after, k, kl);
            pr->t_after_len = kl;
            if (ld_rec_dead(&rec) && rec.hlc < floor) {
                uint8_t term[LD_DIGEST_LEN];
                ld_digest_term(coll, cl, id, il, &rec, term);
                xor16(purged_terms, term);
                if (!(keys[nk] = malloc(kl))) {
                    st = LD_NOMEM;
                    break;
                }
                memcpy(keys[nk], k, kl);
                klens[nk++] = kl;
            } else if (ld_rec_dead(&rec)) {
                pr->t_dead++;
            }
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        }
        ld_cursor_close(&c);
    }
    if (st == LD_NOT_FOUND) st = LD_OK;
    /* Deleted after the walk: a transaction does not write to a space its open cursor reads. */
    for (size_t i = 0; i < nk && st == LD_OK; i++)
        st = ld_txn_del(t, LD_SPACE_DOCS, keys[i], klens[i]);
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    free(keys);
    free(klens);
    if (st != LD_OK) return st;
    /* The digest keeps the purged terms (purge.h); the accumulator records them. */
    xor16(pending->purged_digest, purged_terms);
    pr->t_purged = nk;
    if (!pr->t_more) {
        pending->last_prune_ms = pr->now_ms;
        pending->last_prune_entries = pr->log_pruned;
        pending->last_prune_purged = pr->res.purged + nk;
        pending->dead_records = pr->res.dead + pr->t_dead;
    }
    return LD_OK;
}

static bool submit(purge_run *pr);

static void run_free(purge_run *pr)
{
    free(pr->origins);
    free(pr);
}

static void purge_done(ld_wjob *job)
{
    purge_run *pr = job->ctx;
    bool ok = job->result == LD_WR_OK;
    ld_wjob_free(job);
    if (ok) {
        pr->first = false;
        pr->res.purged += pr->t_purged;
        pr->res.dead += pr->t_dead;
        memcpy(pr->after, pr->t_after, pr->t_after_len);
        pr->after_len = pr->t_after_len;
    } else {
        pr->res.ok = false;
    }
    if (ok && pr->t_more && !pr->node->shutting_down && submit(pr)) return;
    pr->res.complete = ok && !pr->t_more;
    ld_db *db = ld_registry_get(&pr->node->reg, pr->db);
    if (db) {
        ld_db_state s;
        ld_db_state_get(db, &s);
        pr->res.floor = s.purge_floor;
        ld_registry_release(&pr->node->reg, db);
    }
    if (pr->res.purged)
        ld_log(LD_LOG_INFO, pr->db, "purged %" PRIu64 " dead records below the purge floor",
               pr->res.purged);
    pr->done(pr->arg, &pr->res);
    run_free(pr);
}

static bool submit(purge_run *pr)
{
    ld_db *db = ld_registry_get(&pr->node->reg, pr->db);
    if (!db) return false; /* dropped meanwhile */
    ld_wjob *job = ld_wjob_custom(purge_apply, purge_done, pr);
    if (!job) {
        ld_registry_release(&pr->node->reg, db);
        pr->res.ok = false;
        return false;
    }
    job->ctx = pr;
    /* A purge lost to a crash brings back dead records and the floor below them together,
     * which only means purging again; and it never rides in a client's commit. */
    job->lazy = true;
    job->background = true;
    ld_node_submit(pr->node, db, job);
    ld_registry_release(&pr->node->reg, db);
    return true;
}

bool ld_purge_db(ld_node *n, ld_db *db, uint64_t log_pruned,
                 void (*done)(void *arg, const ld_purge_result *res), void *arg)
{
    purge_run *pr = calloc(1, sizeof *pr);
    if (!pr) return false;
    size_t no = ld_repl_purge_origins(n->repl, db->name, &pr->origins);
    if (no == SIZE_MAX) {
        free(pr);
        return false;
    }
    pr->n_origins = no;
    pr->node = n;
    snprintf(pr->db, sizeof pr->db, "%s", db->name);
    pr->done = done;
    pr->arg = arg;
    pr->first = true;
    pr->res.ok = true;
    pr->log_pruned = log_pruned;
    uint64_t now = ld_hlc_wall(&n->clock);
    pr->now_ms = now;
    uint64_t keep = (uint64_t)n->cfg.tombstone_retention_s * 1000u;
    pr->cap_stamp = ld_hlc_make(ld_prune_cap_ms(n, now), 0);
    pr->retention_stamp = ld_hlc_make(now > keep ? now - keep : 0, 0);
    pr->batch = (size_t)n->cfg.oplog_prune_batch;
    if (!submit(pr)) {
        run_free(pr);
        return false;
    }
    return true;
}
