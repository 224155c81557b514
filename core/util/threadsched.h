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

/* A thread inherits its creator's slice, so code on the loop that starts threads (opening a
 * database starts its writer, and a storage plugin may start its own) sets the default slice
 * first and restores the short one after: ld_thread_slice_default returns whether the calling
 * thread had the short slice, to hand to ld_thread_slice_restore. No-ops on other threads. */
bool ld_thread_slice_default(void);
void ld_thread_slice_restore(bool was_short);

/* The calling thread's slice as the kernel reports it (ns; 0 when it cannot say). */
unsigned long long ld_thread_slice_ns(void);

/* Lowers the calling thread's priority (nice 10), for the worker pool's threads. Raising one's
 * own nice needs no privilege; should it fail, the thread runs at the loop's priority. */
void ld_thread_background(void);

#endif
