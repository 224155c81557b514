/* Scheduling hints for litedist's threads on a CPU they share: the event loop answers every
 * request, so on waking it should run at once; a worker's reads can wait for it. */
#ifndef LD_THREADSCHED_H
#define LD_THREADSCHED_H

#include <stdbool.h>
#include <stddef.h>

/* Asks the kernel for the shortest time slice for the calling thread (Linux 6.12+: EEVDF lets
 * a waking thread with a shorter slice preempt the running one; older kernels accept and
 * ignore it). False with the reason in why when the kernel refuses. */
bool ld_thread_short_slice(char *why, size_t whylen);

/* Lowers the calling thread's priority (nice 10), for the worker pool's threads. Raising one's
 * own nice needs no privilege; should it fail, the thread runs at the loop's priority. */
void ld_thread_background(void);

#endif
