/* The per-pass read snapshots (see snapshot.h). */
#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_MAX 8 /* databases read in one pass beyond this get their own transactions */

typedef struct snap {
    ld_db *db; /* holds a registry reference */
    ld_txn t;
    uint64_t commits; /* db's commit count when t began */
} snap;

struct ld_snapshots {
    ld_registry *reg;
    struct event *close_ev;
    snap open[SNAP_MAX];
    size_t n;
};

static void close_all(ld_snapshots *s)
{
    for (size_t i = 0; i < s->n; i++) {
        ld_txn_abort(&s->open[i].t);
        ld_registry_release(s->reg, s->open[i].db);
    }
    s->n = 0;
}

static void close_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    close_all(arg);
}

ld_snapshots *ld_snapshots_new(struct event_base *base, ld_registry *reg)
{
    ld_snapshots *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->reg = reg;
    s->close_ev = event_new(base, -1, 0, close_cb, s);
    if (!s->close_ev) {
        free(s);
        return NULL;
    }
    return s;
}

void ld_snapshots_free(ld_snapshots *s)
{
    if (!s) return;
    close_all(s);
    event_free(s->close_ev);
    free(s);
}

static uint64_t commits_of(ld_db *db)
{
    ld_db_state st;
    ld_db_state_get(db, &st);
    return st.commits;
}

ld_status ld_snapshots_txn(ld_snapshots *s, ld_db *db, ld_txn **out)
{
    uint64_t commits = commits_of(db);
    for (size_t i = 0; i < s->n; i++) {
        snap *p = &s->open[i];
        if (p->db != db) continue;
        if (p->commits != commits) { /* a commit since: a new snapshot that sees it */
            ld_txn_abort(&p->t);
            ld_status st = ld_txn_begin(db->env->store, db->st, false, &p->t);
            if (st != LD_OK) {
                ld_registry_release(s->reg, p->db);
                *p = s->open[--s->n];
                return st;
            }
            p->commits = commits;
        }
        *out = &p->t;
        return LD_OK;
    }
    if (s->n == SNAP_MAX) return LD_BUSY; /* the caller reads in its own transaction */
    /* The reference keeps db open until the pass ends, even if it is dropped meanwhile. */
    ld_db *held = ld_registry_get(s->reg, db->name);
    if (held != db) {
        if (held) ld_registry_release(s->reg, held);
        return LD_NOT_FOUND; /* dropped (or replaced): no snapshot */
    }
    snap *p = &s->open[s->n];
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &p->t);
    if (st != LD_OK) {
        ld_registry_release(s->reg, db);
        return st;
    }
    p->db = db;
    p->commits = commits;
    if (s->n++ == 0) event_active(s->close_ev, EV_TIMEOUT, 0); /* runs after this pass's events */
    *out = &p->t;
    return LD_OK;
}
