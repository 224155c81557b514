/* The cache sweeper's scheduling on the event loop (see sweeper.h); the page itself runs in the
 * database's writer (entry.c), as a lazy job: what it frees may be freed again after a crash. */
#include "sweeper.h"

#include <stdlib.h>
#include <string.h>

#include "../db/completions.h"
#include "../db/writer.h"
#include "../node.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "entry.h"

/* Where the last run stopped in one database. */
typedef struct resume_pos {
    char *db;
    uint8_t *key; /* NULL: start from the first entry */
    size_t len;
    /* Cache keys counted since the pass over the database began (acc_*), and as of the last
     * complete pass (published by GET /metrics once `counted`). */
    uint64_t acc_live, acc_expired, live, expired;
    bool counted;
} resume_pos;

struct ld_sweeper {
    ld_node *node;
    struct event *timer;
    bool stopped;
    /* The run in progress (names == NULL when idle) */
    char **names;
    size_t n_names, next_name;
    ld_db *db; /* the database being swept, a registry reference */
    int pages;
    uint64_t spent_ms, db_started_ms; /* writer time spent on s->db in this run */
    size_t scanned, freed;
    /* Resume positions of every database seen, replaced at each run */
    resume_pos *pos;
    size_t n_pos;
};

static resume_pos *find_pos(ld_sweeper *s, const char *db)
{
    for (size_t i = 0; i < s->n_pos; i++)
        if (!strcmp(s->pos[i].db, db)) return &s->pos[i];
    return NULL;
}

/* Keeps the positions of databases that still exist (names is sorted and complete). */
static void prune_pos(ld_sweeper *s)
{
    size_t w = 0;
    for (size_t i = 0; i < s->n_pos; i++) {
        bool keep = false;
        for (size_t j = 0; j < s->n_names && !keep; j++)
            keep = !strcmp(s->names[j], s->pos[i].db);
        if (keep) {
            s->pos[w++] = s->pos[i];
        } else {
            free(s->pos[i].db);
            free(s->pos[i].key);
        }
    }
    s->n_pos = w;
}

static void set_pos(ld_sweeper *s, const char *db, uint8_t *key, size_t len)
{
    resume_pos *p = find_pos(s, db);
    if (!p) {
        char *name = strdup(db);
        resume_pos *grown = name ? realloc(s->pos, (s->n_pos + 1) * sizeof *grown) : NULL;
        if (!grown) { /* out of memory: the next run starts from the first entry */
            free(name);
            free(key);
            return;
        }
        s->pos = grown;
        p = &s->pos[s->n_pos++];
        *p = (resume_pos){.db = name};
    }
    free(p->key);
    p->key = key;
    p->len = len;
}

static void next_db(ld_sweeper *s);

static void end_run(ld_sweeper *s)
{
    ld_registry_names_free(s->names, s->n_names);
    s->names = NULL;
    s->n_names = s->next_name = 0;
}

static void end_db(ld_sweeper *s)
{
    if (s->freed)
        ld_log(LD_LOG_INFO, s->db->name,
               "cache sweep: freed %zu expired entries (%zu scanned, %d "
               "pages, %llu ms)",
               s->freed, s->scanned, s->pages,
               (unsigned long long)(ld_mono_ms() - s->db_started_ms));
    else
        ld_log(LD_LOG_DEBUG, s->db->name, "cache sweep: nothing expired (%zu scanned, %d pages)",
               s->scanned, s->pages);
    ld_registry_release(&s->node->reg, s->db);
    s->db = NULL;
}

static void page_done(ld_wjob *job);

/* Queues the next page of s->db. Returns false when it could not (out of memory). */
static bool submit_page(ld_sweeper *s)
{
    ld_cache_sweep *sw = calloc(1, sizeof *sw);
    ld_wjob *job = ld_wjob_custom(ld_cache_sweep_apply, page_done, s);
    if (!sw || !job) {
        free(sw);
        free(job);
        return false;
    }
    resume_pos *p = find_pos(s, s->db->name);
    if (p && p->key) {
        sw->start = malloc(p->len);
        if (!sw->start) {
            free(sw);
            free(job);
            return false;
        }
        memcpy(sw->start, p->key, p->len);
        sw->start_len = p->len;
    }
    sw->batch = (size_t)s->node->cfg.cache_cleanup_batch;
    uint64_t budget = (uint64_t)s->node->cfg.cache_cleanup_budget_ms;
    sw->budget_ms = s->spent_ms < budget ? budget - s->spent_ms : 0;
    job->ctx = sw;
    job->lazy = true; /* losing a sweep to a crash only means sweeping again */
    job->background = true;
    s->pages++;
    ld_node_submit(s->node, s->db, job);
    return true;
}

static void page_done(ld_wjob *job)
{
    ld_sweeper *s = job->arg;
    ld_cache_sweep *sw = job->ctx;
    bool ok = job->result == LD_WR_OK;
    if (ok) {
        s->scanned += sw->scanned;
        s->freed += sw->freed;
        ld_counter_add(&s->node->stats.sweeper_scanned, sw->scanned);
        ld_counter_add(&s->node->stats.sweeper_freed, sw->freed);
        s->spent_ms += sw->elapsed_ms;
        if (sw->at_end) { /* wrap: the next page or run starts from the first entry again */
            free(sw->next);
            set_pos(s, s->db->name, NULL, 0);
        } else if (sw->next) {
            set_pos(s, s->db->name, sw->next, sw->next_len);
        }
        sw->next = NULL;
        resume_pos *p = find_pos(s, s->db->name);
        if (p) { /* a pass starts at the first entry (positions are made there) */
            p->acc_live += sw->live;
            p->acc_expired += sw->expired;
            if (sw->at_end) {
                p->live = p->acc_live;
                p->expired = p->acc_expired;
                p->counted = true;
                p->acc_live = p->acc_expired = 0;
            }
        }
    } else {
        ld_log(LD_LOG_WARN, s->db->name, "cache sweep: a page failed in storage; retried next run");
        free(sw->next);
    }
    free(sw->start);
    free(sw);
    ld_wjob_free(job);

    bool more = ok && !s->stopped && s->pages < s->node->cfg.cache_cleanup_max_pages &&
                s->spent_ms < (uint64_t)s->node->cfg.cache_cleanup_budget_ms &&
                find_pos(s, s->db->name) && find_pos(s, s->db->name)->key;
    if (more && submit_page(s)) return;
    end_db(s);
    next_db(s);
}

/* Starts the next database of the run, or ends the run. */
static void next_db(ld_sweeper *s)
{
    while (!s->stopped && s->next_name < s->n_names) {
        const char *name = s->names[s->next_name++];
        s->db = ld_registry_get(&s->node->reg, name);
        if (!s->db) continue; /* deleted meanwhile */
        s->pages = 0;
        s->scanned = s->freed = 0;
        s->db_started_ms = ld_mono_ms();
        s->spent_ms = 0;
        if (submit_page(s)) return;
        ld_log(LD_LOG_WARN, name, "cache sweep: out of memory; retried next run");
        ld_registry_release(&s->node->reg, s->db);
        s->db = NULL;
    }
    end_run(s);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_sweeper *s = arg;
    if (s->names || s->stopped || s->node->shutting_down) return; /* a run is still going */
    s->names = ld_registry_names(&s->node->reg, &s->n_names);
    if (!s->names) {
        s->n_names = 0;
        return;
    }
    prune_pos(s);
    ld_counter_add(&s->node->stats.sweeper_runs, 1);
    s->next_name = 0;
    next_db(s);
}

ld_sweeper *ld_sweeper_new(ld_node *node)
{
    ld_sweeper *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->node = node;
    if (node->cfg.cache_cleanup_interval_s <= 0) return s;
    s->timer = event_new(node->base, -1, EV_PERSIST, tick, s);
    struct timeval tv = {node->cfg.cache_cleanup_interval_s, 0};
    if (!s->timer || event_add(s->timer, &tv) != 0) {
        ld_sweeper_free(s);
        return NULL;
    }
    return s;
}

bool ld_sweeper_counts(ld_sweeper *s, const char *db, uint64_t *live, uint64_t *expired)
{
    resume_pos *p = s ? find_pos(s, db) : NULL;
    if (!p || !p->counted) return false;
    *live = p->live;
    *expired = p->expired;
    return true;
}

void ld_sweeper_stop(ld_sweeper *s)
{
    if (!s) return;
    s->stopped = true;
    if (s->timer) event_del(s->timer);
}

void ld_sweeper_free(ld_sweeper *s)
{
    if (!s) return;
    if (s->timer) event_free(s->timer);
    if (s->db) ld_registry_release(&s->node->reg, s->db);
    if (s->names) ld_registry_names_free(s->names, s->n_names);
    for (size_t i = 0; i < s->n_pos; i++) {
        free(s->pos[i].db);
        free(s->pos[i].key);
    }
    free(s->pos);
    free(s);
}
