/* stallprobe: tells when a core did not run user space at all. At SCHED_FIFO it preempts every
 * ordinary thread on its core, so a wake-up it gets late means the core itself was unavailable
 * (a hypervisor's steal, an interrupt storm), not that a server on that core was busy. B12 lines
 * the event loop's stalls up with these (bench/scenarios.py).
 *
 * Usage: stallprobe OUT.json [PERIOD_US]   (pin it with taskset; stop it with SIGTERM)
 * Writes {"period_us", "wakeups", "late": [[due_unix_us, late_us], ...]} for every wake-up later
 * than LATE_MIN_US. Exit 2: the probe cannot run at SCHED_FIFO (its figures would mean nothing). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define LATE_MIN_US 250 /* below this a wake-up is on time (timer slack, the kernel's own work) */
#define MAX_LATE    200000

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t us(clockid_t clk)
{
    struct timespec t;
    clock_gettime(clk, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static struct timespec ts_of(uint64_t u)
{
    return (struct timespec){.tv_sec = (time_t)(u / 1000000u),
                             .tv_nsec = (long)(u % 1000000u) * 1000};
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: stallprobe OUT.json [PERIOD_US]\n");
        return 2;
    }
    uint64_t period = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
    if (period < 100 || period > 1000000) {
        fprintf(stderr, "stallprobe: PERIOD_US must be 100..1000000\n");
        return 2;
    }
    static uint64_t late[MAX_LATE][2]; /* static: no page faults once locked */
    struct sched_param sp = {.sched_priority = 50};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
        fprintf(stderr, "stallprobe: SCHED_FIFO: %s\n", strerror(errno));
        return 2;
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        fprintf(stderr, "stallprobe: mlockall: %s (a page fault may show as a stall)\n",
                strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* Real time minus monotonic, to report each due time on the clock other processes log. */
    int64_t offset = (int64_t)us(CLOCK_REALTIME) - (int64_t)us(CLOCK_MONOTONIC);
    uint64_t due = us(CLOCK_MONOTONIC), wakeups = 0;
    size_t n = 0;
    while (!stop) {
        due += period;
        struct timespec d = ts_of(due);
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL);
        if (rc == EINTR) continue;
        uint64_t now = us(CLOCK_MONOTONIC);
        wakeups++;
        if (now > due + LATE_MIN_US && n < MAX_LATE) {
            late[n][0] = (uint64_t)((int64_t)due + offset);
            late[n][1] = now - due;
            n++;
        }
        if (now > due + period) due = now; /* one record per stall, not one per period missed */
    }

    FILE *f = fopen(argv[1], "w");
    if (!f) {
        fprintf(stderr, "stallprobe: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fprintf(f, "{\"period_us\": %llu, \"wakeups\": %llu, \"late_min_us\": %d, \"late\": [",
            (unsigned long long)period, (unsigned long long)wakeups, LATE_MIN_US);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s[%llu, %llu]", i ? ", " : "", (unsigned long long)late[i][0],
                (unsigned long long)late[i][1]);
    fprintf(f, "]}\n");
    return fclose(f) == 0 ? 0 : 1;
}
