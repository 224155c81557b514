/* Finished writer jobs travelling back to the event loop: writer threads queue them on the
 * node's ld_completions and wake the loop, which runs each job's `done` there (and counts it out
 * of node->inflight, which ld_node_submit counted in). Shared by litedistd and the in-process fuzz
 * node. */
#ifndef LD_COMPLETIONS_H
#define LD_COMPLETIONS_H

#include <event2/event.h>

struct ld_db;
struct ld_node;
struct ld_wjob;

/* The only way a job reaches a writer from the loop: counts it in node->inflight (shutdown
 * waits for that count) and queues it on db's writer; ld_completions_run counts it out when
 * its `done` runs. Loop thread. */
void ld_node_submit(struct ld_node *node, struct ld_db *db, struct ld_wjob *job);

/* ld_node_submit for a job whose submitter may have more to send in this loop pass (a RESP
 * connection's pipelined writes): it is counted in at once but reaches db's writer only when
 * the callbacks already due in this pass have run, together with every other job submitted so
 * meanwhile, one chain per database in submission order. So a pipeline of writes (and those of
 * other connections read in the same pass) wakes the writer once and shares one group instead
 * of the writer waking on the first and committing it alone. The caller keeps its reference on
 * db until the job's `done` runs. Loop thread. */
void ld_node_submit_later(struct ld_node *node, struct ld_db *db, struct ld_wjob *job);

/* The callback of node->done.later_ev: hands the held jobs to their writers. Loop thread. */
void ld_completions_submit_later(evutil_socket_t fd, short what, void *node);

/* ld_db_env.complete: ctx is the ld_node. Any thread. */
void ld_completions_post(void *node, struct ld_wjob *jobs);

/* The callback of node->done.ev (arg is the ld_node). Loop thread. */
void ld_completions_run(evutil_socket_t fd, short what, void *node);

#endif
