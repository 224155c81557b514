/* The replication scheduler's links and their cycle (see link.h for the state machine): one link
 * per (database, peer), queued for a slot, backing off on failure; the triggers (commits, hints,
 * the sweep) that start cycles, the peers files, and the life cycle of ld_repl. */
#include "link.h"

static void link_kick(ld_link *l, bool force);

/* ---------------------------------------------------------------------------------------------
 * Links
 * ------------------------------------------------------------------------------------------- */

static ld_link *link_find(ld_repl *r, const char *db, const char *peer)
{
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db) && !strcmp(r->links[i]->peer, peer)) return r->links[i];
    return NULL;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_kick(arg, true);
}

/* Points the link at base_url (a new connection when it changed). */
static bool link_set_url(ld_link *l, const char *base_url)
{
    if (l->base_url && !strcmp(l->base_url, base_url)) return true;
    if (!ld_peer_addr_parse(base_url, &l->addr)) return false;
    char *copy = strdup(base_url);
    if (!copy) return false;
    free(l->base_url);
    l->base_url = copy;
    if (l->ph == PH_IDLE) ld_peer_conn_release(&l->pc);
    return true;
}

static ld_link *link_get(ld_repl *r, const char *db, const ld_peer *p)
{
    ld_link *l = link_find(r, db, p->id);
    if (!l) {
        if (r->n_links == r->cap_links) {
            size_t cap = r->cap_links ? 2 * r->cap_links : 8;
            ld_link **v = realloc(r->links, cap * sizeof *v);
            if (!v) return NULL;
            r->links = v;
            r->cap_links = cap;
        }
        l = calloc(1, sizeof *l);
        if (!l) return NULL;
        l->repl = r;
        snprintf(l->db, sizeof l->db, "%s", db);
        snprintf(l->peer, sizeof l->peer, "%s", p->id);
        l->push_limit = (size_t)r->node->cfg.repl_batch_size;
        /* A new link (the node started, or the peer was added) pulls in its first cycle even
         * while the peer pushes: what this node missed is unknown, and the pipelined pull is
         * the fast way to catch up (the peer pauses its pushes meanwhile). Left to whichever
         * side moved first, a restarted node was caught up by 20-op pushes one at a time. */
        l->must_pull = true;
        l->retry_ev = evtimer_new(r->node->base, retry_cb, l);
        if (!l->retry_ev) {
            free(l);
            return NULL;
        }
        r->links[r->n_links++] = l;
    }
    if (!link_set_url(l, p->base_url)) return NULL;
    l->active = p->active;
    l->removed = false;
    return l;
}

void ld_repl_link_free(ld_link *l)
{
    ld_peer_conn_close(&l->pc);              /* a request in flight goes without its callback */
    if (l->call) ld_repl_call_free(l->call); /* its callback will not run */
    if (l->reading) l->reading->l = NULL;    /* its completion only frees what it read */
    ld_repl_pull_drop(l);                    /* an answer held for the next batch */
    if (l->retry_ev) event_free(l->retry_ev);
    free(l->sent);
    free(l->base_url);
    json_decref(l->peer_vv);
    free(l->boot);
    free(l);
}

static char *db_peers_path(ld_repl *r, const char *db)
{
    size_t n = strlen(r->db_peers_dir) + strlen(db) + 8;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.json", r->db_peers_dir, db);
    return p;
}

/* The peers of db: its own list over the node-wide one (same id: its own entry wins). */
static bool effective_peers(ld_repl *r, const char *db, ld_peer_list *out)
{
    memset(out, 0, sizeof *out);
    char *path = db_peers_path(r, db);
    char err[256];
    ld_peer_list own;
    bool ok = path && ld_peer_list_load(path, &own, err, sizeof err);
    free(path);
    if (!ok) {
        ld_log(LD_LOG_WARN, db, "peers: %s", err);
        memset(&own, 0, sizeof own);
    }
    for (size_t i = 0; i < r->node_peers.n; i++) {
        const ld_peer *p = &r->node_peers.v[i];
        if (!ld_peer_list_find(&own, p->id))
            ld_peer_list_upsert(&own, p->id, p->base_url, p->active, p->updated_ms);
    }
    *out = own;
    return true;
}

static bool db_synced(const ld_repl *r, const char *db)
{
    for (size_t i = 0; i < r->n_synced; i++)
        if (!strcmp(r->synced[i], db)) return true;
    return false;
}

/* Remembers that db's peers were read; out of memory it is only read again next time. */
static void mark_synced(ld_repl *r, const char *db)
{
    if (db_synced(r, db)) return;
    if (r->n_synced == r->cap_synced) {
        size_t cap = r->cap_synced ? 2 * r->cap_synced : 8;
        void *v = realloc(r->synced, cap * sizeof *r->synced);
        if (!v) return;
        r->synced = v;
        r->cap_synced = cap;
    }
    snprintf(r->synced[r->n_synced++], LD_DB_NAME_MAX + 1, "%s", db);
}

/* Brings the links of db in line with its peers. */
static void links_sync_db(ld_repl *r, const char *db)
{
    ld_peer_list peers;
    effective_peers(r, db, &peers);
    mark_synced(r, db);
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db) && !ld_peer_list_find(&peers, r->links[i]->peer))
            r->links[i]->removed = true;
    for (size_t i = 0; i < peers.n; i++)
        if (strcmp(peers.v[i].id, r->node->node_id) != 0) link_get(r, db, &peers.v[i]);
    ld_peer_list_free(&peers);
}

/* Nothing refers to a removed link any more: no cycle, no queue slot, no request, no writer
 * job (a checkpoint save or a snapshot page) whose completion would find it. */
static bool link_unreferenced(const ld_link *l)
{
    return l->removed && l->ph == PH_IDLE && !l->queued && !l->call && !l->reading &&
           !l->ckpt_saving && !(l->boot && (l->boot->jobs > 0 || l->boot->requesting));
}

/* Frees the removed links nothing refers to; the others go at a later sync. Callers hold no
 * link pointer across it. */
static void links_reap(ld_repl *r)
{
    size_t kept = 0;
    for (size_t i = 0; i < r->n_links; i++) {
        if (link_unreferenced(r->links[i])) {
            ld_log(LD_LOG_INFO, r->links[i]->db, "peer %s removed: its link is freed",
                   r->links[i]->peer);
            ld_repl_link_free(r->links[i]);
        } else {
            r->links[kept++] = r->links[i];
        }
    }
    r->n_links = kept;
}

void ld_repl_links_sync_all(ld_repl *r, bool reread)
{
    size_t n;
    char **names = ld_registry_names(&r->node->reg, &n);
    for (size_t i = 0; names && i < n; i++)
        if (reread || !db_synced(r, names[i])) links_sync_db(r, names[i]);
    /* Links of databases that are gone stop. */
    for (size_t i = 0; i < r->n_links; i++) {
        bool found = false;
        for (size_t j = 0; names && j < n && !found; j++)
            found = !strcmp(names[j], r->links[i]->db);
        if (!found) r->links[i]->removed = true;
    }
    /* A database dropped since is read afresh if it comes back. */
    size_t kept = 0;
    for (size_t i = 0; i < r->n_synced; i++) {
        bool found = false;
        for (size_t j = 0; names && j < n && !found; j++)
            found = !strcmp(names[j], r->synced[i]);
        if (found) memmove(r->synced[kept++], r->synced[i], sizeof r->synced[i]);
    }
    r->n_synced = kept;
    ld_registry_names_free(names, n);
    links_reap(r);
}

/* ---------------------------------------------------------------------------------------------
 * Cycle control
 * ------------------------------------------------------------------------------------------- */

static void start_queued(ld_repl *r);

static bool queue_push(ld_repl *r, ld_link *l)
{
    if (r->n_queue == r->cap_queue) {
        size_t cap = r->cap_queue ? 2 * r->cap_queue : 8;
        ld_link **v = realloc(r->queue, cap * sizeof *v);
        if (!v) return false;
        r->queue = v;
        r->cap_queue = cap;
    }
    r->queue[r->n_queue++] = l;
    l->queued = true;
    return true;
}

static void cycle_begin(ld_link *l)
{
    ld_repl *r = l->repl;
    r->running++;
    l->last_attempt_wall = ld_wall_ms();
    if (!l->loaded) {
        /* The checkpoints from storage: what this link already moved in an earlier life. */
        ld_db *db = ld_registry_get(&r->node->reg, l->db);
        if (db) {
            ld_txn t;
            if (ld_txn_begin(db->env->store, db->st, false, &t) == LD_OK) {
                uint8_t key[LD_NODE_ID_MAX + 6];
                for (int push = 0; push < 2; push++) {
                    size_t kl = ld_ckpt_key(l->peer, push, key);
                    const void *v;
                    size_t vl;
                    uint64_t *ckpt = push ? &l->push_ckpt : &l->pull_ckpt;
                    /* ld_repl_peer_pulled may have moved it already: keep the larger. */
                    if (ld_txn_get(&t, LD_SPACE_CKPT, key, kl, &v, &vl) == LD_OK && vl == 8 &&
                        ld_be64_get(v) > *ckpt)
                        *ckpt = ld_be64_get(v);
                }
                ld_txn_abort(&t);
                l->loaded = true;
                /* A snapshot cut short (kill -9, a network failure) resumes after the last
                 * page that committed, with the peer it came from. */
                ld_boot_progress p;
                bool found = false;
                if (ld_boot_progress_load(db, &p, &found) == LD_OK && found) {
                    ld_link *src = link_find(r, l->db, p.peer);
                    if (src && !src->removed && src->active && !src->boot) {
                        ld_log(LD_LOG_INFO, l->db,
                               "snapshot from %s was cut after %" PRIu64 " of %" PRIu64
                               " records: resuming",
                               p.peer, p.done, p.total);
                        ld_repl_boot_begin(src, false);
                        src->boot->done = src->boot->resumed_done = p.done;
                        src->boot->total = p.total;
                        src->boot->log_seq = p.log_seq;
                        if (src != l) link_kick(src, true);
                    }
                }
                ld_boot_progress_clear(&p);
                /* After a restart this says how much will move again: what lies between these
                 * stored checkpoints and where the link was when the process ended. */
                ld_log(LD_LOG_INFO, l->db,
                       "replication with %s resumes after push checkpoint %" PRIu64
                       ", pull checkpoint %" PRIu64,
                       l->peer, l->push_ckpt, l->pull_ckpt);
            }
            ld_registry_release(&r->node->reg, db);
        }
    }
    ld_repl_step_push(l);
}

void ld_repl_cycle_end(ld_link *l)
{
    ld_repl *r = l->repl;
    l->ph = PH_IDLE;
    r->running--;
    if (l->again && !r->node->shutting_down) {
        l->again = false;
        link_kick(l, false);
    }
    start_queued(r);
}

void ld_repl_cycle_fail(ld_link *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->last_error, sizeof l->last_error, fmt, ap);
    va_end(ap);
    l->fails[l->fail_reason >= 0 && l->fail_reason < FAIL_N ? l->fail_reason : FAIL_LOCAL]++;
    l->fail_reason = FAIL_LOCAL;
    l->online = false;
    l->failures++;
    int shift = l->failures - 1 < 5 ? l->failures - 1 : 5;
    uint64_t delay = (uint64_t)BACKOFF_BASE_MS << shift;
    if (delay > BACKOFF_CAP_MS) delay = BACKOFF_CAP_MS;
    delay += randombytes_uniform(JITTER_MS + 1);
    l->next_retry_wall = ld_wall_ms() + delay;
    if (l->failures == 1 || l->failures % 10 == 0)
        ld_log(LD_LOG_WARN, l->db,
               "replication with %s failed (%d in a row): %s; retry in %" PRIu64 " ms", l->peer,
               l->failures, l->last_error, delay);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    evtimer_add(l->retry_ev, &tv);
    l->again = false;
    ld_repl_cycle_end(l);
}

void ld_repl_cycle_ok(ld_link *l)
{
    l->answers_as[0] = '\0';
    if (l->failures) ld_log(LD_LOG_INFO, l->db, "replication with %s recovered", l->peer);
    l->failures = 0;
    l->online = true;
    l->last_error[0] = '\0';
    l->last_success_wall = ld_wall_ms();
    ld_repl_cycle_end(l);
}

static void start_queued(ld_repl *r)
{
    while (r->n_queue > 0 && r->running < r->node->cfg.repl_peer_concurrency &&
           !r->node->shutting_down) {
        ld_link *l = r->queue[0];
        memmove(r->queue, r->queue + 1, (r->n_queue - 1) * sizeof *r->queue);
        r->n_queue--;
        l->queued = false;
        if (l->removed || !l->active) continue;
        l->ph = PH_PUSH;
        cycle_begin(l);
    }
}

/* Asks for a cycle: coalesced with one running or queued; `force` ignores the backoff. */
static void link_kick(ld_link *l, bool force)
{
    ld_repl *r = l->repl;
    if (l->removed || !l->active || r->node->shutting_down) return;
    if (l->ph != PH_IDLE) {
        l->again = true;
        return;
    }
    if (l->queued) return;
    if (!force && l->failures > 0 && ld_wall_ms() < l->next_retry_wall) return; /* timer set */
    evtimer_del(l->retry_ev);
    if (queue_push(r, l)) start_queued(r);
}

/* ---------------------------------------------------------------------------------------------
 * Triggers
 * ------------------------------------------------------------------------------------------- */

static void kick_db(ld_repl *r, const char *db)
{
    bool any = false;
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) {
            any = true;
            break;
        }
    /* A database we have not seen before (created by this write) gets its links now, and the
     * node-wide peers hear of it (those that do not replicate it with us yet ask for it). */
    if (!any) {
        if (!db_synced(r, db)) links_sync_db(r, db);
        ld_discovery_db_created(r->node->disc, db);
    }
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) link_kick(r->links[i], false);
}

static void kicked_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_repl *r = arg;
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_kicked;
    char(*names)[LD_DB_NAME_MAX + 1] = r->kicked;
    r->kicked = NULL;
    r->n_kicked = r->cap_kicked = 0;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++)
        kick_db(r, names[i]);
    free(names);
}

void ld_repl_committed(void *repl, ld_db *db)
{
    ld_repl *r = repl;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    bool dup = false;
    for (size_t i = 0; i < r->n_kicked && !dup; i++)
        dup = !strcmp(r->kicked[i], db->name);
    if (!dup) {
        if (r->n_kicked == r->cap_kicked) {
            size_t cap = r->cap_kicked ? 2 * r->cap_kicked : 8;
            void *v = realloc(r->kicked, cap * sizeof *r->kicked);
            if (v) {
                r->kicked = v;
                r->cap_kicked = cap;
            }
        }
        /* Out of memory: the sweep still covers this database. */
        if (r->n_kicked < r->cap_kicked)
            snprintf(r->kicked[r->n_kicked++], LD_DB_NAME_MAX + 1, "%s", db->name);
    }
    pthread_mutex_unlock(&r->mu);
    event_active(r->kick_ev, EV_READ, 0);
}

void ld_repl_sync_request(ld_repl *r, const char *db, const char *peer_id)
{
    ld_link *l = link_find(r, db, peer_id);
    if (!l) {
        links_sync_db(r, db);
        l = link_find(r, db, peer_id);
    }
    if (l) link_kick(l, true);
}

void ld_repl_peer_pulled(ld_repl *r, const char *db, const char *peer_id, uint64_t held,
                         uint64_t local_max, bool more, json_t *vv)
{
    ld_link *l = link_find(r, db, peer_id);
    if (!l) return;
    if (json_is_object(vv)) {
        json_decref(l->peer_vv);
        l->peer_vv = json_incref(vv);
    }
    if (held > local_max) held = local_max;
    if (held > l->push_ckpt) {
        l->push_ckpt = held;
        ld_repl_save_ckpts(l);
    }
    l->peer_pulling_until = more ? ld_mono_ms() + PEER_PULLING_MS : 0;
}

/* The links of db as they stand: every change of its peers (the peers routes, the configured
 * ones at start) already brought them in line, so only a database not seen yet reads its peers
 * file. For the prune and purge passes, which ask at every batch. */
static void links_known(ld_repl *r, const char *db)
{
    if (!db_synced(r, db)) links_sync_db(r, db);
}

uint64_t ld_repl_prune_limit(ld_repl *r, const char *db, char *blocker, size_t len)
{
    links_known(r, db);
    uint64_t limit = UINT64_MAX;
    if (len) blocker[0] = '\0';
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active || strcmp(l->db, db) != 0) continue;
        /* A link whose stored checkpoints are not loaded yet counts as having nothing. */
        uint64_t has = l->loaded ? l->push_ckpt : 0;
        if (has < limit) {
            limit = has;
            snprintf(blocker, len, "%s", l->peer);
        }
    }
    return limit;
}

static promise *promise_find(ld_repl *r, const char *db, const char *origin)
{
    for (size_t i = 0; i < r->n_promises; i++)
        if (!strcmp(r->promises[i].db, db) && !strcmp(r->promises[i].origin, origin))
            return &r->promises[i];
    return NULL;
}

void ld_repl_promises_merge(ld_repl *r, const char *db, json_t *promises)
{
    if (!json_is_object(promises)) return;
    const char *origin;
    json_t *v;
    json_object_foreach(promises, origin, v)
    {
        uint64_t seq, hlc;
        if (!ld_node_id_valid(origin) || !strcmp(origin, r->node->node_id) ||
            !ld_json_as_u64(ld_json_get_ci(v, "Sequence"), &seq) ||
            !ld_json_as_u64(ld_json_get_ci(v, "Hlc"), &hlc))
            continue; /* a malformed entry promises nothing */
        promise *p = promise_find(r, db, origin);
        if (!p) {
            if (r->n_promises == r->cap_promises) {
                size_t cap = r->cap_promises ? 2 * r->cap_promises : 8;
                promise *g = realloc(r->promises, cap * sizeof *g);
                if (!g) return; /* the frontier stays lower: safe */
                r->promises = g;
                r->cap_promises = cap;
            }
            p = &r->promises[r->n_promises++];
            snprintf(p->db, sizeof p->db, "%s", db);
            snprintf(p->origin, sizeof p->origin, "%s", origin);
            p->seq = p->hlc = 0;
        }
        /* An origin's promises grow in both fields: the later one (higher stamp) wins. */
        if (hlc > p->hlc || (hlc == p->hlc && seq > p->seq)) {
            p->seq = seq;
            p->hlc = hlc;
        }
    }
}

json_t *ld_repl_promises_json(ld_repl *r, ld_db *db)
{
    json_t *o = json_object();
    if (!o) return NULL;
    ld_db_state s;
    ld_db_state_get(db, &s);
    char hb[24];
    bool ok = true;
    snprintf(hb, sizeof hb, "%" PRIu64, s.promise_hlc);
    ok = !json_object_set_new(
        o, r->node->node_id,
        json_pack("{s:I, s:s}", "Sequence", (json_int_t)s.promise_seq, "Hlc", hb));
    for (size_t i = 0; ok && i < r->n_promises; i++) {
        const promise *p = &r->promises[i];
        if (strcmp(p->db, db->name) != 0) continue;
        snprintf(hb, sizeof hb, "%" PRIu64, p->hlc);
        ok = !json_object_set_new(
            o, p->origin, json_pack("{s:I, s:s}", "Sequence", (json_int_t)p->seq, "Hlc", hb));
    }
    /* Our active peers we have no promise of yet: named with an empty promise, so the
     * receiver counts them as writers too (they hold its frontier until they report). */
    for (size_t i = 0; ok && i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active || strcmp(l->db, db->name) != 0 || json_object_get(o, l->peer))
            continue;
        ok = !json_object_set_new(o, l->peer,
                                  json_pack("{s:I, s:s}", "Sequence", (json_int_t)0, "Hlc", "0"));
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

size_t ld_repl_purge_origins(ld_repl *r, const char *db, ld_purge_origin **out)
{
    links_known(r, db);
    size_t n = 0;
    *out = NULL;
    ld_purge_origin *a = calloc(r->n_promises + r->n_links + 1, sizeof *a);
    if (!a) return SIZE_MAX;
    for (size_t i = 0; i < r->n_promises; i++) {
        const promise *p = &r->promises[i];
        if (strcmp(p->db, db) != 0) continue;
        snprintf(a[n].origin, sizeof a[n].origin, "%s", p->origin);
        a[n].has_promise = true;
        a[n].seq = p->seq;
        a[n].hlc = p->hlc;
        n++;
    }
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active || strcmp(l->db, db) != 0) continue;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = !strcmp(a[j].origin, l->peer);
        if (seen) continue;
        snprintf(a[n].origin, sizeof a[n].origin, "%s", l->peer);
        n++;
    }
    *out = a;
    return n;
}

void ld_repl_peer_snapshotting(ld_repl *r, const char *db, const char *peer_id)
{
    ld_link *l = link_find(r, db, peer_id);
    if (l) l->peer_snapshot_at = ld_mono_ms();
}

void ld_repl_peer_too_old(ld_repl *r, const char *db, const char *peer_id, bool too_old)
{
    ld_link *l = link_find(r, db, peer_id);
    if (l) l->peer_too_old = too_old;
}

static bool db_has_links(ld_repl *r, const char *db)
{
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) return true;
    return false;
}

void ld_repl_db_discovered(ld_repl *r, const char *db)
{
    links_sync_db(r, db);
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) link_kick(r->links[i], true);
}

void ld_repl_peer_pushed(ld_repl *r, const char *db, const char *peer_id)
{
    ld_link *l = link_find(r, db, peer_id);
    if (!l) { /* the push just created db here: its links too */
        bool created = !db_has_links(r, db);
        links_sync_db(r, db);
        if (created) ld_discovery_db_created(r->node->disc, db);
        l = link_find(r, db, peer_id);
    }
    if (l) l->peer_pushed_at = ld_mono_ms();
}

void ld_repl_peer_alive(ld_repl *r, const char *peer_id)
{
    for (size_t i = 0; i < r->n_links; i++) {
        ld_link *l = r->links[i];
        if (l->failures > 0 && !strcmp(l->peer, peer_id)) link_kick(l, true);
    }
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_repl *r = arg;
    ld_repl_links_sync_all(r, true);
    for (size_t i = 0; i < r->n_links; i++) {
        r->links[i]->must_pull = true;
        link_kick(r->links[i], false);
    }
    ld_discovery_sweep(r->node->disc);
}

/* ---------------------------------------------------------------------------------------------
 * Peers
 * ------------------------------------------------------------------------------------------- */

json_t *ld_repl_peers_list(ld_repl *r, const char *db)
{
    if (!db) return ld_peer_list_json(&r->node_peers);
    char *path = db_peers_path(r, db);
    ld_peer_list l;
    char err[256];
    json_t *out = NULL;
    if (path && ld_peer_list_load(path, &l, err, sizeof err)) {
        out = ld_peer_list_json(&l);
        ld_peer_list_free(&l);
    }
    free(path);
    return out;
}

/* Loads, changes and saves the list of db (NULL: node-wide), then re-syncs the links. */
static bool peers_change(ld_repl *r, const char *db, const char *id, const char *url, bool active,
                         bool remove, const char *learned, int *status, char *err, size_t errlen)
{
    ld_peer_list tmp, *l = &r->node_peers;
    char *path = db ? db_peers_path(r, db) : r->node_peers_path;
    *status = 500;
    if (!path) {
        ld_set_err(err, errlen, "Out of memory.");
        return false;
    }
    if (db) {
        if (mkdir(r->db_peers_dir, 0700) != 0 && errno != EEXIST) {
            ld_set_err(err, errlen, "cannot create %s: %s", r->db_peers_dir, strerror(errno));
            free(path);
            return false;
        }
        if (!ld_peer_list_load(path, &tmp, err, errlen)) {
            free(path);
            return false;
        }
        l = &tmp;
    }
    bool ok;
    if (remove) {
        ok = ld_peer_list_remove(l, id);
        if (!ok) {
            *status = 404;
            ld_set_err(err, errlen, "Peer '%s' is not registered.", id);
        }
    } else {
        ok = ld_peer_list_upsert_from(l, id, url, active, ld_wall_ms(), learned);
        if (!ok) ld_set_err(err, errlen, "Out of memory.");
    }
    ok = ok && ld_peer_list_save(path, l, err, errlen);
    if (db) {
        ld_peer_list_free(&tmp);
        free(path);
    }
    if (!ok) return false;
    if (db)
        links_sync_db(r, db);
    else
        ld_repl_links_sync_all(r, true);
    /* A new or re-activated peer starts at once, and a node-wide one is introduced to and
     * asked for its databases now, not at the next sweep. */
    for (size_t i = 0; i < r->n_links; i++)
        if (!remove && !strcmp(r->links[i]->peer, id) && (!db || !strcmp(r->links[i]->db, db)))
            link_kick(r->links[i], true);
    if (!remove && !db) ld_discovery_peer_added(r->node->disc, id);
    return true;
}

bool ld_repl_peer_upsert(ld_repl *r, const char *db, const char *id, const char *base_url,
                         bool active, int *status, char *err, size_t errlen)
{
    *status = 400;
    if (!id || !ld_node_id_valid(id)) {
        ld_set_err(err, errlen, "NodeId is required: 1-128 of A-Z a-z 0-9 . _ : -");
        return false;
    }
    if (!strcmp(id, r->node->node_id)) {
        ld_set_err(err, errlen, "Cannot register local node as a peer.");
        return false;
    }
    char *url = ld_peer_url_normalize(base_url, err, errlen);
    if (!url) return false;
    bool ok = peers_change(r, db, id, url, active, false, "api", status, err, errlen);
    free(url);
    return ok;
}

bool ld_repl_peer_introduced(ld_repl *r, const char *id, const char *base_url, bool *added,
                             char *err, size_t errlen)
{
    *added = false;
    if (ld_peer_list_find(&r->node_peers, id)) return true;
    int status;
    *added = peers_change(r, NULL, id, base_url, true, false, "announce", &status, err, errlen);
    return *added;
}

bool ld_repl_peer_remove(ld_repl *r, const char *db, const char *id, int *status, char *err,
                         size_t errlen)
{
    return peers_change(r, db, id, NULL, false, true, NULL, status, err, errlen);
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

ld_repl *ld_repl_new(ld_node *node, char *err, size_t errlen)
{
    ld_repl *r = calloc(1, sizeof *r);
    if (!r) {
        ld_set_err(err, errlen, "out of memory");
        return NULL;
    }
    r->node = node;
    pthread_mutex_init(&r->mu, NULL);
    r->node_peers_path = join(node->data_dir, "peers.json");
    r->db_peers_dir = join(node->data_dir, "peers");
    r->kick_ev = event_new(node->base, -1, 0, kicked_cb, r);
    r->dns = evdns_base_new(node->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!r->dns) r->dns = evdns_base_new(node->base, 0); /* no resolv.conf: numeric peers only */
    r->sweep_ev = event_new(node->base, -1, EV_PERSIST, sweep_cb, r);
    r->probe =
        ld_probe_new(node->base, r->dns, node->tls, node->node_id, node->cfg.replication_api_key,
                     node->cfg.peer_probe_interval_s, ld_repl_probe_targets, r);
    if (!r->node_peers_path || !r->db_peers_dir || !r->kick_ev || !r->sweep_ev || !r->probe) {
        ld_set_err(err, errlen, "out of memory");
        goto fail;
    }
    if (!ld_peer_list_load(r->node_peers_path, &r->node_peers, err, errlen)) goto fail;

    /* Node.SeedPeers join the node-wide list (blank ids or URLs and the local id skipped). */
    size_t i;
    json_t *e;
    bool changed = false;
    json_array_foreach(node->cfg.seed_peers, i, e)
    {
        const char *id = json_string_value(ld_json_get_ci(e, "NodeId"));
        const char *url = json_string_value(ld_json_get_ci(e, "BaseUrl"));
        json_t *act = ld_json_get_ci(e, "IsActive");
        if (!id || !*id || !url || !*url || !strcmp(id, node->node_id)) continue;
        char uerr[200];
        char *norm = ld_peer_url_normalize(url, uerr, sizeof uerr);
        if (!ld_node_id_valid(id) || !norm) {
            ld_set_err(err, errlen, "Node.SeedPeers[%zu]: %s", i,
                       norm ? "NodeId is not a valid node id" : uerr);
            free(norm);
            goto fail;
        }
        const ld_peer *have = ld_peer_list_find(&r->node_peers, id);
        bool active = !json_is_false(act);
        if (!have || strcmp(have->base_url, norm) != 0 || have->active != active ||
            strcmp(have->learned, "config") != 0) {
            changed = true;
            if (!ld_peer_list_upsert_from(&r->node_peers, id, norm, active, ld_wall_ms(),
                                          "config")) {
                free(norm);
                ld_set_err(err, errlen, "out of memory");
                goto fail;
            }
        }
        free(norm);
    }
    if (changed && !ld_peer_list_save(r->node_peers_path, &r->node_peers, err, errlen)) goto fail;

    struct timeval tv = {node->cfg.anti_entropy_s, 0};
    event_add(r->sweep_ev, &tv);
    ld_repl_links_sync_all(r, true);
    /* Start-up is a sweep: catch up with every peer at once. */
    for (size_t j = 0; j < r->n_links; j++)
        link_kick(r->links[j], true);
    return r;
fail:
    ld_repl_free(r);
    return NULL;
}

void ld_repl_free(ld_repl *r)
{
    if (!r) return;
    ld_probe_free(r->probe); /* before the links and dns it reads */
    for (size_t i = 0; i < r->n_links; i++)
        ld_repl_link_free(r->links[i]);
    free(r->links);
    free(r->synced);
    free(r->promises);
    for (size_t i = 0; i < r->n_hints; i++) {
        if (r->hints[i]->c) ld_ws_conn_free(r->hints[i]->c);
        free(r->hints[i]);
    }
    free(r->hints);
    if (r->dns) evdns_base_free(r->dns, 0);
    free(r->queue);
    free(r->kicked);
    if (r->kick_ev) event_free(r->kick_ev);
    if (r->sweep_ev) event_free(r->sweep_ev);
    ld_peer_list_free(&r->node_peers);
    free(r->node_peers_path);
    free(r->db_peers_dir);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
