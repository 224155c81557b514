/* A small fixed pool of worker threads for work that must not run on the event loop (a SELECT
 * scanning a large collection would stall every other request and replication). Work runs on a
 * worker; its completion runs back on the loop thread, woken through an event that workers
 * activate (the event_base must be thread-enabled: evthread_use_pthreads before creating it). */
#ifndef LD_WORKERS_H
#define LD_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct ld_workers ld_workers;

/* Called with the submitter's argument: `work` on a worker thread, then `done` on the loop. */
typedef void (*ld_work_fn)(void *arg);

/* Starts `threads` workers (at least 1) whose completions run on `base`'s loop. NULL when a
 * thread or the event cannot be created (nothing is left running then). */
ld_workers *ld_workers_new(struct event_base *base, int threads);

/* Queues work(arg), then done(arg) on the loop. Never blocks on other work. Returns false
 * (having run neither) when memory runs out or the pool is being freed. */
bool ld_workers_submit(ld_workers *p, ld_work_fn work, ld_work_fn done, void *arg);

/* What the pool holds now: items waiting for a worker, and items run to their end since it
 * started (for the metrics). Any thread. */
void ld_workers_stats(ld_workers *p, size_t *queued, uint64_t *finished);

/* Runs every queued work item to its end, joins the threads, runs the `done` of each finished
 * item on the calling thread (which must be the loop's thread, after the loop stopped or from a
 * loop callback), and frees the pool. NULL is ignored. */
void ld_workers_free(ld_workers *p);

#endif
