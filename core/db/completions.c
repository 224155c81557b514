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
