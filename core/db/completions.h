/* Finished writer jobs travelling back to the event loop: writer threads queue them on the
 * node's ld_completions and wake the loop, which runs each job's `done` there (and counts it out
 * of node->inflight). Shared by litedistd and the in-process fuzz node. */
#ifndef LD_COMPLETIONS_H
#define LD_COMPLETIONS_H

#include <event2/event.h>

struct ld_wjob;

/* ld_db_env.complete: ctx is the ld_node. Any thread. */
void ld_completions_post(void *node, struct ld_wjob *jobs);

/* The callback of node->done.ev (arg is the ld_node). Loop thread. */
void ld_completions_run(evutil_socket_t fd, short what, void *node);

#endif
