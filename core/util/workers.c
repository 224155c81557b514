/* The worker pool (see workers.h): one queue of work guarded by a mutex and a condition
 * variable, and a list of finished items that the loop drains when the workers' event fires. */
#include "workers.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "threadsched.h"

typedef struct task {
    ld_work_fn work, done;
    void *arg;
    struct task *next;
} task;

struct ld_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    task *head, *tail;           /* waiting for a worker */
    task *done_head, *done_tail; /* finished, waiting for the loop */
    bool stop;
    size_t queued;     /* waiting for a worker */
    uint64_t finished; /* work items run to their end since the pool started */
    struct event *ev;  /* activated by workers; runs deliver() on the loop */
    pthread_t *threads;
    int nthreads;
};

static void *worker_main(void *arg)
{
    ld_workers *p = arg;
    /* Reads yield to the loop, which answers every request (threadsched.h). */
    ld_thread_background();
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        task *t = p->head;
        if (!t) { /* stopping and nothing left */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = t->next;
        if (!p->head) p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);

        t->work(t->arg);

        t->next = NULL;
        pthread_mutex_lock(&p->mu);
        if (p->done_tail)
            p->done_tail->next = t;
        else
            p->done_head = t;
        p->done_tail = t;
        p->finished++;
        pthread_mutex_unlock(&p->mu);
        event_active(p->ev, EV_READ, 0);
    }
}

/* Runs the completions of finished work (loop thread). */
static void run_done(ld_workers *p)
{
    pthread_mutex_lock(&p->mu);
    task *t = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (t) {
        task *next = t->next;
        t->done(t->arg);
        free(t);
        t = next;
    }
}

static void deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_done(arg);
}

ld_workers *ld_workers_new(struct event_base *base, int threads)
{
    if (threads < 1) threads = 1;
    ld_workers *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    p->ev = event_new(base, -1, 0, deliver, p);
    if (!p->threads || !p->ev) goto fail;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (; p->nthreads < threads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) != 0) {
            ld_workers_free(p);
            return NULL;
        }
    return p;
fail:
    if (p->ev) event_free(p->ev);
    free(p->threads);
    free(p);
    return NULL;
}

bool ld_workers_submit(ld_workers *p, ld_work_fn work, ld_work_fn done, void *arg)
{
    task *t = malloc(sizeof *t);
    if (!t) return false;
    *t = (task){.work = work, .done = done, .arg = arg};
    pthread_mutex_lock(&p->mu);
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        free(t);
        return false;
    }
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return true;
}

void ld_workers_stats(ld_workers *p, size_t *queued, uint64_t *finished)
{
    pthread_mutex_lock(&p->mu);
    *queued = p->queued;
    *finished = p->finished;
    pthread_mutex_unlock(&p->mu);
}

void ld_workers_free(ld_workers *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    run_done(p); /* whatever finished after the loop last looked */
    event_free(p->ev);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
