/* Writer completions back to the loop (see completions.h). */
#include "completions.h"

#include <pthread.h>

#include "../node.h"
#include "database.h"
#include "writer.h"

void ld_node_submit(ld_node *n, ld_db *db, ld_wjob *job)
{
    n->inflight++;
    ld_writer_submit(db->writer, job);
}

void ld_node_submit_later(ld_node *n, ld_db *db, ld_wjob *job)
{
    n->inflight++;
    job->later_db = db;
    job->next = NULL;
    if (n->done.later_tail)
        n->done.later_tail->next = job;
    else
        n->done.later_head = job;
    n->done.later_tail = job;
    /* Activated, not run: libevent runs it after the callbacks already active in this pass
     * (other connections' reads among them), so their writes join the same chain. */
    if (job == n->done.later_head) event_active(n->done.later_ev, EV_READ, 0);
}

void ld_completions_submit_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_node *n = arg;
    ld_wjob *j = n->done.later_head;
    n->done.later_head = n->done.later_tail = NULL;
    while (j) {
        /* The longest run for one database, in order: one chain for its writer. */
        ld_wjob *last = j;
        while (last->next && last->next->later_db == j->later_db)
            last = last->next;
        ld_wjob *rest = last->next;
        ld_writer_submit_chain(j->later_db->writer, j, last);
        j = rest;
    }
}

void ld_completions_post(void *ctx, ld_wjob *jobs)
{
    ld_node *n = ctx;
    ld_wjob *last = jobs;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&n->done.mu);
    if (n->done.tail)
        n->done.tail->next = jobs;
    else
        n->done.head = jobs;
    n->done.tail = last;
    pthread_mutex_unlock(&n->done.mu);
    event_active(n->done.ev, EV_READ, 0);
}

void ld_completions_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_node *n = arg;
    pthread_mutex_lock(&n->done.mu);
    ld_wjob *j = n->done.head;
    n->done.head = n->done.tail = NULL;
    pthread_mutex_unlock(&n->done.mu);
    while (j) {
        ld_wjob *next = j->next;
        n->inflight--;
        j->done(j);
        j = next;
    }
}
