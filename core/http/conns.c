/* Client connection accounting: the Node.MaxConnections cap and the Node.RequestReadTimeoutSeconds
 * deadline (see conns.h for how the connections are found and counted). */
#include "conns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/listener.h>

#include "../util/log.h"
#include "../util/timeutil.h"
#include "errpage.h"

#define SWEEP_MS      200   /* how often freed connections are found and deadlines checked */
#define PAUSE_FD_MS   100   /* accepting pauses this long after accept() ran out of descriptors */
#define WARN_EVERY_MS 10000 /* one warning per this long about a paused listener */

typedef struct conn {
    struct bufferevent *bev; /* one reference is ours */
    struct evbuffer_cb_entry *incb, *outcb;
    /* True from the connection's start, and from a later request's first byte, until the
     * router has the request in full: the span the deadline measures. */
    bool reading;
    bool cut; /* the deadline passed and evhttp was told to drop the connection */
    /* A request was answered and the next is not handed over yet: evhttp may parse it from
     * bytes already buffered (pipelined), so what it sends now is its own answer too. */
    bool between;
    /* evhttp answered a request it never handed over (its HTML error page): 1 waiting to be
     * made JSON, 2 done. */
    int page;
    uint64_t read_started_ms;
    /* evhttp's read callback, seen when a request was handed over: bytes that arrive while
     * another callback reads (a WebSocket took the connection over) are not a request. */
    bufferevent_data_cb http_readcb;
    struct ld_conns *owner;
    struct conn *hnext; /* in the bucket of bev */
    size_t idx;         /* in all */
} conn;

struct ld_conns {
    struct event_base *base;
    /* Makes the bufferevent of an accepted connection (an accepting TLS one, http/tls.h);
     * NULL: a plain socket bufferevent. */
    struct bufferevent *(*make)(struct event_base *base, void *arg);
    void *make_arg;
    int max;
    uint64_t read_timeout_ms;
    conn **all; /* every tracked connection, live or freed by evhttp and not yet swept */
    size_t n, cap;
    size_t live; /* at the last sweep, plus those accepted since */
    conn **buckets;
    size_t nbuckets; /* a power of 2 */
    struct event *tick;
    struct event *resume;
    struct event *pages; /* rewrites evhttp's error pages (see on_output) */
    ld_errpage_limits lim;
    struct evconnlistener *lev;
    bool listening; /* lev is enabled */
    bool paused_fd; /* accept() ran out of descriptors: waiting for resume */
    uint64_t warned_full_ms, warned_fd_ms;
};

/* The listener's error callback receives evhttp's argument, not ours; litedistd has one
 * listener, so the accounting it belongs to is kept here. */
static ld_conns *g_listener_owner;

static size_t bucket_of(const ld_conns *c, const struct bufferevent *bev)
{
    uintptr_t p = (uintptr_t)bev;
    p ^= p >> 17;
    p *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(p >> 7) & (c->nbuckets - 1);
}

static conn *find(const ld_conns *c, const struct bufferevent *bev)
{
    for (conn *k = c->buckets[bucket_of(c, bev)]; k; k = k->hnext)
        if (k->bev == bev) return k;
    return NULL;
}

/* Opens or closes the door: below the cap and with descriptors to spare, accept. */
static void apply_listener(ld_conns *c)
{
    if (!c->lev) return;
    bool want = c->live < (size_t)c->max && !c->paused_fd;
    if (want == c->listening) return;
    if (want) {
        evconnlistener_enable(c->lev);
    } else {
        evconnlistener_disable(c->lev);
        uint64_t now = ld_mono_ms();
        if (!c->paused_fd && now - c->warned_full_ms >= WARN_EVERY_MS) {
            ld_log_warn("%zu client connections open (Node.MaxConnections): new connections "
                        "wait until one closes",
                        c->live);
            c->warned_full_ms = now;
        }
    }
    c->listening = want;
}

static void drop(ld_conns *c, size_t i)
{
    conn *k = c->all[i];
    conn **pp = &c->buckets[bucket_of(c, k->bev)];
    while (*pp != k)
        pp = &(*pp)->hnext;
    *pp = k->hnext;
    c->all[i] = c->all[--c->n];
    c->all[i]->idx = i;
    evbuffer_remove_cb_entry(bufferevent_get_input(k->bev), k->incb);
    evbuffer_remove_cb_entry(bufferevent_get_output(k->bev), k->outcb);
    bufferevent_free(k->bev); /* our reference: evhttp let go; this closes the socket */
    free(k);
}

/* Drops what evhttp freed, counts the rest and cuts requests past their deadline. */
static void sweep(ld_conns *c)
{
    uint64_t now = ld_mono_ms();
    for (size_t i = 0; i < c->n;) {
        conn *k = c->all[i];
        bufferevent_data_cb rcb;
        bufferevent_event_cb ecb;
        bufferevent_getcb(k->bev, &rcb, NULL, &ecb, NULL);
        if (!rcb && !ecb) { /* bufferevent_free cleared them: evhttp freed the connection */
            drop(c, i);
            continue;
        }
        if (k->reading && !k->cut && now - k->read_started_ms >= c->read_timeout_ms) {
            /* evhttp drops an incoming connection on a read timeout without answering, as it
             * does for its own idle timeout; deferred, so it runs outside this loop. */
            k->cut = true;
            ld_log_debug("a request was not read in full within %llu ms "
                         "(Node.RequestReadTimeoutSeconds): closing its connection",
                         (unsigned long long)c->read_timeout_ms);
            bufferevent_trigger_event(k->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT,
                                      BEV_TRIG_DEFER_CALLBACKS);
        }
        i++;
    }
    c->live = c->n;
    if (c->n == 0) event_del(c->tick);
    apply_listener(c);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sweep(arg);
}

/* Bytes reached a connection's input: the first after a request was handed over starts the
 * next request's deadline. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    conn *k = arg;
    if (k->reading || info->n_added == 0) return;
    bufferevent_data_cb rcb;
    bufferevent_getcb(k->bev, &rcb, NULL, NULL, NULL);
    if (rcb != k->http_readcb) return;
    k->reading = true;
    k->read_started_ms = ld_mono_ms();
}

/* Bytes were queued to a connection whose request the router has not received: evhttp is
 * answering by itself (a request it cannot parse, or far past its limits), with an HTML page.
 * A "100 Continue" is evhttp's too and stays. The page is whole once evhttp_send returns and
 * is written only when the socket polls writable, so it is replaced from an event activated
 * now, which runs in this same loop pass. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    conn *k = arg;
    if (!(k->reading || k->between) || k->page || info->n_added == 0) return;
    /* The status line is added whole. Peeked: the start of a socket bufferevent's output is
     * frozen once it has written (only the bufferevent drains it). */
    char head[12];
    struct evbuffer_iovec v[2];
    int nv = evbuffer_peek(buf, sizeof head, NULL, v, 2);
    size_t got = 0;
    for (int i = 0; i < nv && i < 2 && got < sizeof head; i++) {
        size_t take = v[i].iov_len < sizeof head - got ? v[i].iov_len : sizeof head - got;
        memcpy(head + got, v[i].iov_base, take);
        got += take;
    }
    if (got < sizeof head) return;
    if (!memcmp(head + 8, " 100", 4)) return;
    k->page = 1;
    event_active(k->owner->pages, EV_TIMEOUT, 1);
}

static void on_pages(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_conns *c = arg;
    for (size_t i = 0; i < c->n; i++) {
        conn *k = c->all[i];
        if (k->page != 1) continue;
        k->page = 2;
        if (!ld_errpage_to_json(bufferevent_get_output(k->bev), &c->lim))
            ld_log_warn("could not make libevent's error answer JSON (out of memory)");
    }
}

static bool grow(ld_conns *c)
{
    if (c->n < c->cap) return true;
    size_t cap = c->cap ? 2 * c->cap : 64;
    conn **all = realloc(c->all, cap * sizeof *all);
    if (!all) return false;
    c->all = all;
    c->cap = cap;
    return true;
}

/* evhttp's bufferevent factory: a socket bufferevent that closes its socket when destroyed,
 * referenced once more by the table. NULL makes evhttp build its own, untracked. */
static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    ld_conns *c = arg;
    if (c->live >= (size_t)c->max) sweep(c); /* accepted at the cap: find the freed slots */
    struct bufferevent *bev = c->make ? c->make(base, c->make_arg)
                                      : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    conn *k = bev ? calloc(1, sizeof *k) : NULL;
    if (!k || !grow(c) || !(k->incb = evbuffer_add_cb(bufferevent_get_input(bev), on_input, k)) ||
        !(k->outcb = evbuffer_add_cb(bufferevent_get_output(bev), on_output, k))) {
        ld_log_error("out of memory accounting a new connection: it is served without "
                     "Node.MaxConnections and Node.RequestReadTimeoutSeconds");
        free(k);
        if (bev) bufferevent_free(bev); /* with the callback entries added to its buffers */
        return NULL;
    }
    k->owner = c;
    bufferevent_incref(bev);
    k->bev = bev;
    k->reading = true;
    k->read_started_ms = ld_mono_ms();
    size_t b = bucket_of(c, bev);
    k->hnext = c->buckets[b];
    c->buckets[b] = k;
    k->idx = c->n;
    c->all[c->n++] = k;
    c->live++;
    if (!event_pending(c->tick, EV_TIMEOUT, NULL)) {
        struct timeval tv = {0, SWEEP_MS * 1000};
        event_add(c->tick, &tv);
    }
    apply_listener(c);
    return bev;
}

/* accept() failed. Out of descriptors (or kernel memory) the pending connection stays queued
 * and the listener would spin on it at full CPU (libevent#71): stop accepting for a moment;
 * connections wait in the backlog meanwhile. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    ld_conns *c = g_listener_owner;
    int err = EVUTIL_SOCKET_ERROR();
    if (!c || lev != c->lev ||
        (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)) {
        ld_log_warn("accept: %s", strerror(err));
        return;
    }
    uint64_t now = ld_mono_ms();
    if (now - c->warned_fd_ms >= WARN_EVERY_MS) {
        ld_log_warn("accept: %s; pausing new connections for %d ms (raise the open-file limit: "
                    "ulimit -n, or lower Node.MaxConnections)",
                    strerror(err), PAUSE_FD_MS);
        c->warned_fd_ms = now;
    }
    c->paused_fd = true;
    apply_listener(c);
    struct timeval tv = {0, PAUSE_FD_MS * 1000};
    evtimer_add(c->resume, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_conns *c = arg;
    c->paused_fd = false;
    sweep(c);
}

ld_conns *ld_conns_new(struct event_base *base, struct evhttp *http, int max_conns,
                       int read_timeout_s, const ld_errpage_limits *lim)
{
    ld_conns *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base = base;
    c->lim = *lim;
    c->max = max_conns;
    c->read_timeout_ms = (uint64_t)read_timeout_s * 1000u;
    /* About one connection per bucket at the cap. */
    c->nbuckets = 64;
    while (c->nbuckets < (size_t)max_conns && c->nbuckets < ((size_t)1 << 20))
        c->nbuckets *= 2;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    c->tick = event_new(base, -1, EV_PERSIST, on_tick, c);
    c->resume = evtimer_new(base, on_resume, c);
    c->pages = event_new(base, -1, 0, on_pages, c);
    if (!c->buckets || !c->tick || !c->resume || !c->pages) {
        ld_conns_free(c);
        return NULL;
    }
    evhttp_set_bevcb(http, make_bev, c);
    return c;
}

void ld_conns_set_maker(ld_conns *c, struct bufferevent *(*make)(struct event_base *, void *),
                        void *arg)
{
    c->make = make;
    c->make_arg = arg;
}

void ld_conns_set_listener(ld_conns *c, struct evhttp_bound_socket *listener)
{
    if (!c) return;
    if (!listener) {
        c->lev = NULL;
        if (g_listener_owner == c) g_listener_owner = NULL;
        event_del(c->resume);
        return;
    }
    c->lev = evhttp_bound_socket_get_listener(listener);
    c->listening = true; /* evhttp enables what it binds */
    g_listener_owner = c;
    evconnlistener_set_error_cb(c->lev, on_accept_error);
    apply_listener(c);
}

/* evhttp sent the answer of a request the router had (the connection is alive: a tracked
 * connection is dropped only after evhttp freed it, which ends its requests first). */
static void on_answered(struct evhttp_request *req, void *arg)
{
    (void)req;
    conn *k = arg;
    k->between = true;
}

void ld_conns_request_read(ld_conns *c, struct evhttp_request *req)
{
    if (!c) return;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    conn *k = bev ? find(c, bev) : NULL;
    if (!k) return; /* served untracked (see make_bev) */
    k->reading = false;
    k->between = false;
    bufferevent_getcb(bev, &k->http_readcb, NULL, NULL, NULL);
    evhttp_request_set_on_complete_cb(req, on_answered, k);
}

size_t ld_conns_open(ld_conns *c)
{
    if (!c) return 0;
    sweep(c);
    return c->live;
}

int ld_conns_max(const ld_conns *c)
{
    return c ? c->max : 0;
}

void ld_conns_free(ld_conns *c)
{
    if (!c) return;
    if (g_listener_owner == c) g_listener_owner = NULL;
    while (c->n > 0)
        drop(c, c->n - 1);
    free(c->all);
    free(c->buckets);
    if (c->tick) event_free(c->tick);
    if (c->resume) event_free(c->resume);
    if (c->pages) event_free(c->pages);
    free(c);
}
