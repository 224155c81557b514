/* Scheduling hints for the loop and the workers (see threadsched.h). */
#include "threadsched.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/sched.h>
#include <linux/sched/types.h>
#endif

/* How much lower than the event loop a worker runs: its work is reading (scans, op-log walks,
 * snapshot pages), and on a core it shares with the loop it should give way to the loop. */
#define WORKER_NICE 10

/* The shortest slice the kernel grants (sched_attr.sched_runtime, in ns, clamped to 0.1-100 ms). */
#define SHORT_SLICE_NS 100000u

#if defined(__linux__) && defined(SYS_sched_setattr)
/* Sets the calling thread's nice value and slice (0: the kernel's default) in one call. */
static int set_attr(int nice, uint64_t slice_ns)
{
    struct sched_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.sched_policy = SCHED_NORMAL;
    a.sched_nice = nice;
    a.sched_runtime = slice_ns;
    return (int)syscall(SYS_sched_setattr, 0, &a, 0);
}

/* Whether this thread asked for (and got) the short slice. */
static _Thread_local bool g_short;

/* Sets the calling thread's slice, keeping its nice value (sched_setattr sets both). */
static int set_slice(uint64_t slice_ns, const char **what)
{
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (nice == -1 && errno) {
        *what = "getpriority";
        return -1;
    }
    *what = "sched_setattr";
    return set_attr(nice, slice_ns);
}
#endif

bool ld_thread_short_slice(char *why, size_t whylen)
{
#if defined(__linux__) && defined(SYS_sched_setattr)
    const char *what;
    if (set_slice(SHORT_SLICE_NS, &what) != 0) {
        snprintf(why, whylen, "%s: %s", what, strerror(errno));
        return false;
    }
    g_short = true;
    return true;
#else
    snprintf(why, whylen, "not supported on this system");
    return false;
#endif
}

bool ld_thread_slice_default(void)
{
#if defined(__linux__) && defined(SYS_sched_setattr)
    const char *what;
    if (!g_short || set_slice(0, &what) != 0) return false;
    g_short = false;
    return true;
#else
    return false;
#endif
}

void ld_thread_slice_restore(bool was_short)
{
#if defined(__linux__) && defined(SYS_sched_setattr)
    const char *what;
    if (was_short && set_slice(SHORT_SLICE_NS, &what) == 0) g_short = true;
#else
    (void)was_short;
#endif
}

unsigned long long ld_thread_slice_ns(void)
{
#if defined(__linux__) && defined(SYS_sched_getattr)
    struct sched_attr a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0) return 0;
    return (unsigned long long)a.sched_runtime;
#else
    return 0;
#endif
}

void ld_thread_background(void)
{
#if defined(__linux__) && defined(SYS_sched_setattr)
    /* A thread started by the loop's thread inherits its short slice: back to the default. */
    if (set_attr(WORKER_NICE, 0) == 0) return;
#endif
#ifdef __linux__
    /* On Linux a thread's nice value is its own. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE);
#endif
}
