/* GET /api/changes and GET /ws/changes, the changes feed (docs/changes.md): a subscriber reads the
 * op log after its cursor on the worker pool (repl/changes_read.h), answers or streams what it
 * found, then waits for the hub, which a commit on its database wakes on the loop. */
#include "changes.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <litedist/auth.h>

#include "../db/names.h"
#include "../http/cors.h"
#include "../repl/changes_read.h"
#include "../util/jsonbuf.h"
#include "../util/log.h"
#include "../util/workers.h"
#include "../ws/ws.h"
#include "api.h"
#include "context.h"

#define LIMIT_DEFAULT        100
#define LIMIT_MAX            10000
#define TIMEOUT_DEFAULT_MS   30000
#define TIMEOUT_MAX_MS       60000
#define HEARTBEAT_DEFAULT_MS 10000
#define HEARTBEAT_MIN_MS     100
#define HEARTBEAT_MAX_MS     60000
#define COLLECTIONS_MAX      64
/* A stream reads at most this many changes (and about STREAM_BATCH_BYTES) per worker job. */
#define STREAM_BATCH       1000
#define STREAM_BATCH_BYTES (1024 * 1024)
/* A paused WebSocket (its consumer behind on a catch-up) looks at its queue this often. */
#define WS_DRAIN_CHECK_MS 20
/* Close code of a WebSocket whose cursor the log no longer covers (the 410 of HTTP). */
#define WS_CLOSE_GONE 4410

typedef enum feed_kind { FEED_NORMAL, FEED_LONGPOLL, FEED_CONTINUOUS, FEED_WS } feed_kind;

typedef struct sub {
    ld_changes_hub *hub;
    feed_kind kind;
    ld_req *r;      /* the HTTP request until answered or ended; NULL for an upgraded WebSocket */
    ld_ws_conn *ws; /* the WebSocket, until its on_close */
    char db[LD_DB_NAME_MAX + 1];
    ld_changes_query q;    /* q.after is the cursor; q.collections owned */
    uint64_t remaining;    /* changes a stream still sends before it ends (UINT64_MAX: no end) */
    uint32_t heartbeat_ms; /* continuous */
    uint32_t timeout_ms;   /* longpoll */
    struct event *timer;   /* longpoll: its timeout; continuous: heartbeats; ws: drain checks */
    struct event *eof;     /* longpoll: watches the client's socket for its close */
    bool listed;           /* in hub->subs: commits on its database wake it */
    bool reading;          /* a read is on the worker pool */
    bool dirty;            /* woken while reading or paused: read again */
    bool started;          /* continuous: the chunked reply has begun */
    bool paused;           /* catching up, waiting for the consumer to drain its output */
    bool caught_up;        /* a stream reached the end of the log once: it follows live now */
    bool expired;          /* longpoll timed out, or shutdown: answer with the next read */
    bool dead;             /* the consumer went away during a read: freed when it returns */
    bool ending;           /* ws: closes with end_code once what is queued has left */
    int end_code;
    char end_reason[LD_WS_MAX_REASON + 1];
    TAILQ_ENTRY(sub) link;
} sub;

TAILQ_HEAD(sub_list, sub);

struct ld_changes_hub {
    ld_node *node;
    struct event *wake;
    pthread_mutex_t mu; /* guards woken* */
    char (*woken)[LD_DB_NAME_MAX + 1];
    size_t n_woken, cap_woken;
    bool woken_all;       /* a name could not be kept: wake every subscriber */
    atomic_size_t listed; /* subscribers waiting for commits; read by writer threads */
    struct sub_list subs;
    bool stopping;
};

typedef struct read_job {
    sub *s;
    ld_db *db; /* referenced; NULL when the database does not exist (yet) */
    ld_changes_query q;
    ld_changes_batch b;
    ld_status st;
} read_job;

static void sub_read(sub *s);

/* ---------------------------------------------------------------------------------------------
 * Subscribers
 * ------------------------------------------------------------------------------------------- */

static void sub_unlist(sub *s)
{
    if (!s->listed) return;
    TAILQ_REMOVE(&s->hub->subs, s, link);
    atomic_fetch_sub(&s->hub->listed, 1);
    s->listed = false;
}

static void sub_list_in(sub *s)
{
    if (s->listed) return;
    TAILQ_INSERT_TAIL(&s->hub->subs, s, link);
    atomic_fetch_add(&s->hub->listed, 1);
    s->listed = true;
}

static void sub_free(sub *s)
{
    sub_unlist(s);
    if (s->timer) event_free(s->timer);
    if (s->eof) event_free(s->eof);
    for (size_t i = 0; i < s->q.n_collections; i++)
        free(s->q.collections[i]);
    free(s->q.collections);
    if (s->r) {
        /* Not answered (a client gone, or the node stopping): a started stream is ended, and a
         * request evhttp let go of (its client left) is freed that way too; one still on its
         * connection goes with the connection. */
        if (s->started || !evhttp_request_get_connection(s->r->ev)) evhttp_send_reply_end(s->r->ev);
        ld_req_free(s->r);
    }
    free(s);
}

/* The bytes this subscriber's consumer has not taken yet; *gone when the client went away. */
static size_t sub_buffered(sub *s, bool *gone)
{
    *gone = false;
    if (s->kind == FEED_WS) {
        if (!s->ws || !ld_ws_is_open(s->ws)) {
            *gone = true;
            return 0;
        }
        return ld_ws_buffered(s->ws);
    }
    struct evhttp_connection *evcon = s->r ? evhttp_request_get_connection(s->r->ev) : NULL;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev) {
        *gone = true;
        return 0;
    }
    return evbuffer_get_length(bufferevent_get_output(bev));
}

static void drained(struct evhttp_connection *evcon, void *arg);

/* Sends buf's lines to the consumer (drains buf). */
static void sub_send(sub *s, struct evbuffer *buf)
{
    if (s->kind == FEED_CONTINUOUS) {
        if (s->r && evhttp_request_get_connection(s->r->ev))
            evhttp_send_reply_chunk_with_cb(s->r->ev, buf, drained, s);
        evbuffer_drain(buf, evbuffer_get_length(buf));
        return;
    }
    /* WebSocket: one change per text frame. */
    size_t len = evbuffer_get_length(buf);
    const char *p = len ? (const char *)evbuffer_pullup(buf, -1) : NULL;
    for (size_t i = 0; p && i < len && s->ws;) {
        const char *nl = memchr(p + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (p + i)) : len - i;
        if (n > 0 && ld_ws_send_text(s->ws, p + i, n) != LD_OK) break;
        i += n + 1;
    }
    evbuffer_drain(buf, len);
}

/* Closes an ending WebSocket once its queue is empty, else looks again shortly. */
static void ws_end_when_drained(sub *s)
{
    if (!s->ws) return;
    if (ld_ws_buffered(s->ws) == 0 || !ld_ws_is_open(s->ws)) {
        ld_ws_close(s->ws, s->end_code, s->end_reason);
        return;
    }
    struct timeval tv = {0, WS_DRAIN_CHECK_MS * 1000};
    event_add(s->timer, &tv);
}

/* Ends a stream: final (NULL: none) as its last line (continuous) or message (ws), then the
 * end of the chunked reply or a close frame. A WebSocket is freed by its on_close. */
static void sub_end(sub *s, json_t *final, int ws_code, const char *ws_reason)
{
    if (final) {
        struct evbuffer *buf = evbuffer_new();
        if (buf && ld_json_dump_evbuffer(final, JSON_COMPACT, buf) &&
            evbuffer_add(buf, "\n", 1) == 0)
            sub_send(s, buf);
        if (buf) evbuffer_free(buf);
        json_decref(final);
    }
    if (s->kind == FEED_WS) {
        sub_unlist(s);
        if (s->timer) event_del(s->timer);
        s->ending = true;
        s->end_code = ws_code;
        snprintf(s->end_reason, sizeof s->end_reason, "%s", ws_reason);
        /* wslay sends a close frame ahead of queued messages and nothing after it: an orderly
         * end waits until the last change has left; a cut consumer is closed at once. */
        if (ws_code == LD_WS_CLOSE_POLICY) {
            if (s->ws) ld_ws_close(s->ws, ws_code, ws_reason);
        } else {
            ws_end_when_drained(s);
        }
        return;
    }
    /* With the client gone evhttp has let go of the request: send_reply_end frees it. */
    evhttp_send_reply_end(s->r->ev);
    ld_req_free(s->r);
    s->r = NULL;
    s->started = false;
    sub_free(s);
}

/* Answers a normal or longpoll request with out's changes. */
static void reply_batch(sub *s, struct evbuffer *out, uint64_t last, bool more)
{
    char cur[21];
    ld_changes_cursor_str(last, cur);
    struct evbuffer *body = evbuffer_new();
    if (!body || evbuffer_add(body, "{\"Changes\":[", 12) != 0 ||
        (out && evbuffer_add_buffer(body, out) != 0) ||
        evbuffer_add_printf(body, "],\"LastCursor\":\"%s\",\"HasMore\":%s}", cur,
                            more ? "true" : "false") < 0) {
        if (body) evbuffer_free(body);
        ld_reply_error(s->r, 500, "Out of memory.");
    } else {
        ld_reply_buffer(s->r, 200, body);
        evbuffer_free(body);
    }
    s->r = NULL;
    sub_free(s);
}

/* A failure reading the log. */
static void sub_fail(sub *s, ld_status st)
{
    ld_log(LD_LOG_ERROR, s->db, "changes feed: reading the log failed: %s", ld_status_str(st));
    if (s->kind == FEED_NORMAL || s->kind == FEED_LONGPOLL ||
        (s->kind == FEED_CONTINUOUS && !s->started)) {
        ld_reply_error(s->r, 500, "Reading the changes failed: %s.", ld_status_str(st));
        s->r = NULL;
        sub_free(s);
        return;
    }
    sub_end(
        s,
        json_pack("{s:s}", "Error", "Reading the changes failed; reconnect with your last cursor."),
        LD_WS_CLOSE_INTERNAL, "reading the changes failed");
}

/* The cursor is below what the log still holds (pruned): 410, telling where to start again. */
static void sub_gone(sub *s, const ld_changes_batch *b)
{
    char cur[21], use[21], oldest[21];
    ld_changes_cursor_str(s->q.after, cur);
    ld_changes_cursor_str(b->local_max, use);
    ld_changes_cursor_str(b->oldest - 1, oldest);
    char msg[400];
    snprintf(msg, sizeof msg,
             "The operation log no longer holds the changes after cursor '%s' (it was pruned, or "
             "the database was deleted and created again; the oldest cursor it can follow is "
             "'%s'). Re-read the documents you need, then follow the feed from cursor '%s'.",
             cur, oldest, use);
    json_t *body = json_pack("{s:s, s:s}", "Error", msg, "Cursor", use);
    if (s->kind == FEED_NORMAL || s->kind == FEED_LONGPOLL ||
        (s->kind == FEED_CONTINUOUS && !s->started)) {
        ld_reply_json(s->r, 410, body);
        s->r = NULL;
        sub_free(s);
        return;
    }
    char reason[LD_WS_MAX_REASON + 1];
    snprintf(reason, sizeof reason,
             "cursor no longer in the operation log (pruned): re-read, then resume from cursor %s",
             use);
    sub_end(s, body, WS_CLOSE_GONE, reason);
}

/* The consumer left more than Node.ChangesFeedMaxBufferBytes unread: cut it off, saying so. */
static void sub_cut(sub *s, size_t buffered)
{
    size_t cap = s->hub->node->cfg.changes_max_buffer;
    char cur[21], msg[300];
    ld_changes_cursor_str(s->q.after, cur);
    snprintf(msg, sizeof msg,
             "The consumer is reading too slowly: %zu bytes were waiting to be sent, more than "
             "Node.ChangesFeedMaxBufferBytes (%zu). Reconnect with the cursor of the last change "
             "you processed.",
             buffered, cap);
    ld_log(LD_LOG_INFO, s->db, "changes feed: a slow consumer was disconnected (%zu bytes unread)",
           buffered);
    sub_end(s, json_pack("{s:s, s:s}", "Error", msg, "Cursor", cur), LD_WS_CLOSE_POLICY,
            "slow consumer: more than Node.ChangesFeedMaxBufferBytes unread; reconnect with your "
            "last cursor");
}

/* Starts a continuous reply: 200, chunked, newline-delimited JSON. */
static void stream_start(sub *s)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(s->r->ev);
    evhttp_add_header(h, "Content-Type", "application/x-ndjson; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    /* The stream is the connection's last answer: it ends with the connection. */
    evhttp_add_header(h, "Connection", "close");
    ld_cors_headers(s->r);
    evhttp_send_reply_start(s->r->ev, 200, "OK");
    s->started = true;
    struct timeval tv = {s->heartbeat_ms / 1000, (s->heartbeat_ms % 1000) * 1000};
    event_add(s->timer, &tv);
}

/* A stream's batch is read: send it, then read on (catching up), pause (the consumer is
 * behind) or wait for the next commit. */
static void stream_batch(sub *s, read_job *j)
{
    if (s->kind == FEED_CONTINUOUS && !s->started) stream_start(s);
    s->q.after = j->b.last;
    if (j->b.n) sub_send(s, j->b.out);
    if (s->remaining != UINT64_MAX) s->remaining -= j->b.n < s->remaining ? j->b.n : s->remaining;
    bool gone;
    size_t buffered = sub_buffered(s, &gone);
    if (gone) {
        if (s->kind == FEED_WS)
            sub_unlist(s); /* its on_close frees it */
        else
            sub_end(s, NULL, 0, NULL);
        return;
    }
    if (s->remaining == 0 || s->hub->stopping) {
        char cur[21];
        ld_changes_cursor_str(s->q.after, cur);
        sub_end(s, json_pack("{s:s, s:b}", "LastCursor", cur, "HasMore", j->b.more),
                s->hub->stopping ? LD_WS_CLOSE_GOING_AWAY : LD_WS_CLOSE_NORMAL,
                s->hub->stopping ? "node shutting down" : "limit reached");
        return;
    }
    size_t cap = s->hub->node->cfg.changes_max_buffer;
    if (buffered > cap) {
        sub_cut(s, buffered);
        return;
    }
    if (!j->b.more) s->caught_up = true;
    if (j->b.more || s->dirty) {
        if (!s->caught_up && buffered > cap / 2) {
            /* Catching up on the backlog faster than the consumer reads: wait for it (the log is
             * the buffer). Once caught up, a consumer that falls behind live commits by more
             * than the cap is cut off above instead. */
            s->paused = true;
            s->dirty = true;
            if (s->kind == FEED_WS) {
                struct timeval tv = {0, WS_DRAIN_CHECK_MS * 1000};
                event_add(s->timer, &tv);
            }
            return;
        }
        sub_read(s);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Reads on the worker pool
 * ------------------------------------------------------------------------------------------- */

static void read_work(void *arg)
{
    read_job *j = arg;
    if (!j->db) { /* no database yet: nothing after any cursor */
        j->b.last = j->q.after;
        j->b.oldest = 1;
        j->st = LD_OK;
        return;
    }
    j->st = ld_changes_read(j->db, &j->q, &j->b);
}

static void job_free(read_job *j)
{
    if (j->b.out) evbuffer_free(j->b.out);
    free(j);
}

static void read_done(void *arg)
{
    read_job *j = arg;
    sub *s = j->s;
    ld_node *n = s->hub->node;
    n->inflight--;
    if (j->db) ld_registry_release(&n->reg, j->db);
    s->reading = false;
    if (s->dead) {
        sub_free(s);
    } else if (j->st != LD_OK) {
        sub_fail(s, j->st);
    } else if (j->b.gone) {
        sub_gone(s, &j->b);
    } else if (s->kind == FEED_NORMAL || (s->kind == FEED_LONGPOLL && (j->b.n > 0 || s->expired))) {
        reply_batch(s, j->b.out, j->b.last, j->b.more);
    } else if (s->kind == FEED_LONGPOLL) {
        /* Nothing for this consumer yet (or only entries its filter skips): go on from there. */
        s->q.after = j->b.last;
        if (j->b.more || s->dirty) sub_read(s);
    } else {
        stream_batch(s, j);
    }
    job_free(j);
}

/* Reads what follows the cursor; a read already running is followed by another. */
static void sub_read(sub *s)
{
    if (s->reading) {
        s->dirty = true;
        return;
    }
    ld_node *n = s->hub->node;
    read_job *j = calloc(1, sizeof *j);
    if (j) j->b.out = evbuffer_new();
    if (!j || !j->b.out) {
        if (j) job_free(j);
        sub_fail(s, LD_NOMEM);
        return;
    }
    j->s = s;
    j->q = s->q;
    if (s->kind == FEED_CONTINUOUS || s->kind == FEED_WS) {
        j->q.max_changes = s->remaining < STREAM_BATCH ? (size_t)s->remaining : STREAM_BATCH;
        size_t third = n->cfg.changes_max_buffer / 4;
        j->q.max_bytes = third < STREAM_BATCH_BYTES ? third : STREAM_BATCH_BYTES;
    }
    j->db = ld_registry_get(&n->reg, s->db);
    s->reading = true;
    s->dirty = false;
    s->paused = false;
    n->inflight++;
    if (!ld_workers_submit(n->workers, read_work, read_done, j)) {
        n->inflight--;
        s->reading = false;
        if (j->db) ld_registry_release(&n->reg, j->db);
        job_free(j);
        sub_fail(s, LD_NOMEM);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Timers and callbacks
 * ------------------------------------------------------------------------------------------- */

/* evhttp wrote everything queued on a continuous stream: a paused catch-up goes on. */
static void drained(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    sub *s = arg;
    if (s->paused && !s->reading && !s->dead) sub_read(s);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sub *s = arg;
    if (s->kind == FEED_LONGPOLL) {
        if (s->reading) {
            s->expired = true; /* answered when the read returns */
            return;
        }
        reply_batch(s, NULL, s->q.after, false);
        return;
    }
    bool gone;
    size_t buffered = sub_buffered(s, &gone);
    if (s->kind == FEED_WS) {
        if (gone) return; /* its on_close frees it */
        if (s->ending) {
            ws_end_when_drained(s);
            return;
        }
        if (s->paused && !s->reading) {
            if (buffered <= s->hub->node->cfg.changes_max_buffer / 2) {
                sub_read(s);
            } else {
                struct timeval tv = {0, WS_DRAIN_CHECK_MS * 1000};
                event_add(s->timer, &tv);
            }
        }
        return;
    }
    /* Continuous: a heartbeat line, which also finds out whether the client is still there. */
    if (gone) {
        if (s->reading) {
            s->dead = true; /* freed when its read returns */
            sub_unlist(s);
        } else {
            sub_end(s, NULL, 0, NULL);
        }
        return;
    }
    struct evbuffer *nl = evbuffer_new();
    if (nl && evbuffer_add(nl, "\n", 1) == 0) sub_send(s, nl);
    if (nl) evbuffer_free(nl);
}

/* A longpoll's client closed its end: answer at once, as at the timeout (the write fails and
 * evhttp frees the connection), rather than hold the request and its connection until then. */
static void eof_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    sub *s = arg;
    char c;
    ssize_t got = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got > 0) return; /* bytes waiting (a pipelined request, a TLS alert): evhttp's to read */
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(s->eof, NULL);
        return;
    }
    timer_cb(-1, EV_TIMEOUT, s);
}

/* evhttp stops reading a connection while its request is with the handler, so a client that
 * leaves a longpoll would be noticed only at the poll's timeout; an event of our own on the
 * socket sees the close. Without one (no memory) the timeout still ends the poll. */
static void watch_eof(sub *s)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->r->ev);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0) return;
    s->eof = event_new(s->hub->node->base, fd, EV_READ, eof_cb, s);
    if (s->eof && event_add(s->eof, NULL) != 0) {
        event_free(s->eof);
        s->eof = NULL;
    }
}

static void ws_on_text(ld_ws_conn *c, const char *msg, size_t len, void *arg)
{
    (void)msg;
    (void)len;
    (void)arg;
    static const char err[] = "{\"Error\":\"This feed takes no messages: its parameters are in "
                              "the query string of the upgrade request.\"}";
    ld_ws_send_text(c, err, sizeof err - 1);
}

static void ws_on_close(ld_ws_conn *c, int code, const char *reason, void *arg)
{
    (void)c;
    (void)code;
    (void)reason;
    sub *s = arg;
    s->ws = NULL;
    sub_unlist(s);
    if (s->reading)
        s->dead = true;
    else
        sub_free(s);
}

/* ---------------------------------------------------------------------------------------------
 * The hub
 * ------------------------------------------------------------------------------------------- */

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_changes_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    size_t n = h->n_woken;
    char(*names)[LD_DB_NAME_MAX + 1] = h->woken;
    bool all = h->woken_all;
    h->woken = NULL;
    h->n_woken = h->cap_woken = 0;
    h->woken_all = false;
    pthread_mutex_unlock(&h->mu);
    sub *s = TAILQ_FIRST(&h->subs), *next;
    for (; s; s = next) {
        next = TAILQ_NEXT(s, link); /* sub_read may end s, never another subscriber */
        bool match = all;
        for (size_t i = 0; i < n && !match; i++)
            match = !strcmp(names[i], s->db);
        if (!match) continue;
        if (s->paused)
            s->dirty = true; /* its catch-up reads this commit too */
        else
            sub_read(s);
    }
    free(names);
}

ld_changes_hub *ld_changes_hub_new(ld_node *n)
{
    ld_changes_hub *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->node = n;
    TAILQ_INIT(&h->subs);
    atomic_init(&h->listed, 0);
    pthread_mutex_init(&h->mu, NULL);
    if (!(h->wake = event_new(n->base, -1, 0, wake_cb, h))) {
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

void ld_changes_committed(ld_changes_hub *h, ld_db *db)
{
    /* A subscriber lists itself before its first read, so a commit this skips is one that read
     * sees. */
    if (!h || atomic_load(&h->listed) == 0) return;
    pthread_mutex_lock(&h->mu);
    bool dup = false;
    for (size_t i = 0; i < h->n_woken && !dup; i++)
        dup = !strcmp(h->woken[i], db->name);
    if (!dup && h->n_woken == h->cap_woken) {
        size_t cap = h->cap_woken ? 2 * h->cap_woken : 8;
        void *v = realloc(h->woken, cap * sizeof *h->woken);
        if (v) {
            h->woken = v;
            h->cap_woken = cap;
        }
    }
    if (!dup && h->n_woken < h->cap_woken)
        snprintf(h->woken[h->n_woken++], LD_DB_NAME_MAX + 1, "%s", db->name);
    else if (!dup)
        h->woken_all = true; /* out of memory: wake everyone rather than miss this one */
    pthread_mutex_unlock(&h->mu);
    event_active(h->wake, EV_READ, 0);
}

void ld_changes_stop(ld_changes_hub *h)
{
    if (!h) return;
    h->stopping = true;
    sub *s = TAILQ_FIRST(&h->subs), *next;
    for (; s; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->reading || s->dead) {
            s->expired = true; /* stream_batch and read_done end it */
            continue;
        }
        if (s->kind == FEED_LONGPOLL) {
            reply_batch(s, NULL, s->q.after, false);
        } else if (s->kind == FEED_CONTINUOUS) {
            char cur[21];
            ld_changes_cursor_str(s->q.after, cur);
            sub_end(s, json_pack("{s:s, s:b}", "LastCursor", cur, "HasMore", false), 0, NULL);
        } else {
            sub_end(s, NULL, LD_WS_CLOSE_GOING_AWAY, "node shutting down");
        }
    }
}

void ld_changes_drop_all(ld_changes_hub *h)
{
    if (!h) return;
    sub *s;
    while ((s = TAILQ_FIRST(&h->subs)) != NULL)
        sub_free(s); /* evhttp_free, next, frees their requests and connections */
}

void ld_changes_hub_free(ld_changes_hub *h)
{
    if (!h) return;
    ld_changes_drop_all(h);
    event_free(h->wake);
    pthread_mutex_destroy(&h->mu);
    free(h->woken);
    free(h);
}

/* ---------------------------------------------------------------------------------------------
 * The routes
 * ------------------------------------------------------------------------------------------- */

static const char *const known_params[] = {"since",   "collections",  "limit",
                                           "feed",    "include_docs", "include_cache",
                                           "timeout", "heartbeat",    NULL};

/* A bounded integer parameter; replies 400 when it is not one. */
static bool int_param(ld_req *r, const char *name, long long def, long long min, long long max,
                      const char *unit, long long *out)
{
    if (!ld_req_param_int(r, name, def, out)) return false;
    if (*out < min || *out > max) {
        ld_reply_error(r, 400, "%s must be between %lld and %lld%s.", name, min, max, unit);
        return false;
    }
    return true;
}

static bool parse_collections(ld_req *r, sub *s, const char *list)
{
    s->q.collections = calloc(COLLECTIONS_MAX, sizeof *s->q.collections);
    if (!s->q.collections) {
        ld_reply_error(r, 500, "Out of memory.");
        return false;
    }
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        if (s->q.n_collections == COLLECTIONS_MAX) {
            ld_reply_error(r, 400, "collections may name at most %d collections.", COLLECTIONS_MAX);
            return false;
        }
        if (len == 0 || !ld_collection_name_valid(p, len)) {
            ld_reply_error(r, 400,
                           "collections must be a comma-separated list of collection names; "
                           "'%.*s' is not one.",
                           (int)(len > 64 ? 64 : len), p);
            return false;
        }
        char *name = strndup(p, len);
        if (!name) {
            ld_reply_error(r, 500, "Out of memory.");
            return false;
        }
        s->q.collections[s->q.n_collections++] = name;
        if (ld_collection_is_cache(name)) {
            ld_reply_error(r, 400,
                           "Collection 'cache' is reserved: ask for cache keys with "
                           "include_cache=true.");
            return false;
        }
        if (ld_collection_is_internal(name)) {
            ld_reply_error(r, 403, "Collection '%s' is reserved for internal use.", name);
            return false;
        }
        p += len;
        if (!*p) break;
    }
    return true;
}

/* Reads the query parameters into s; replies 400 and returns false on a bad one. */
static bool parse_params(ld_req *r, sub *s, bool ws)
{
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &r->query, next)
    {
        bool known = false;
        for (size_t i = 0; known_params[i] && !known; i++)
            known = !strcmp(kv->key, known_params[i]);
        if (!known) {
            ld_reply_error(r, 400,
                           "Unknown query parameter '%.64s'; the feed takes since, collections, "
                           "limit, feed, include_docs, include_cache, timeout and heartbeat.",
                           kv->key);
            return false;
        }
    }
    const char *feed = ld_req_param(r, "feed");
    if (ws) {
        if (feed && strcmp(feed, "continuous") != 0) {
            ld_reply_error(r, 400, "feed must be 'continuous' (or absent) on /ws/changes.");
            return false;
        }
        s->kind = FEED_WS;
    } else if (!feed || !strcmp(feed, "normal")) {
        s->kind = FEED_NORMAL;
    } else if (!strcmp(feed, "longpoll")) {
        s->kind = FEED_LONGPOLL;
    } else if (!strcmp(feed, "continuous")) {
        s->kind = FEED_CONTINUOUS;
    } else {
        ld_reply_error(r, 400, "feed must be 'normal', 'longpoll' or 'continuous'.");
        return false;
    }
    bool stream = s->kind == FEED_CONTINUOUS || s->kind == FEED_WS;
    long long limit, timeout, heartbeat;
    if (!int_param(r, "limit", stream ? 0 : LIMIT_DEFAULT, stream ? 0 : 1,
                   stream ? INT64_MAX : LIMIT_MAX, "", &limit) ||
        !int_param(r, "timeout", TIMEOUT_DEFAULT_MS, 1, TIMEOUT_MAX_MS, " milliseconds",
                   &timeout) ||
        !int_param(r, "heartbeat", HEARTBEAT_DEFAULT_MS, HEARTBEAT_MIN_MS, HEARTBEAT_MAX_MS,
                   " milliseconds", &heartbeat) ||
        !ld_req_param_bool(r, "include_docs", false, &s->q.include_docs) ||
        !ld_req_param_bool(r, "include_cache", false, &s->q.include_cache))
        return false;
    if (stream && ld_req_param(r, "limit") && limit == 0) {
        ld_reply_error(r, 400, "limit must be at least 1 (or absent: no end) on a stream.");
        return false;
    }
    s->q.max_changes = stream ? STREAM_BATCH : (size_t)limit;
    s->remaining = stream && limit > 0 ? (uint64_t)limit : UINT64_MAX;
    s->q.max_bytes = r->node->cfg.max_list_bytes;
    s->timeout_ms = (uint32_t)timeout;
    s->heartbeat_ms = (uint32_t)heartbeat;
    s->q.comma = !stream;
    const char *colls = ld_req_param(r, "collections");
    if (colls && !parse_collections(r, s, colls)) return false;
    const char *since = ld_req_param(r, "since");
    if (since && !strcmp(since, "now")) {
        ld_db_state st = {0};
        if (r->db) ld_db_state_get(r->db, &st);
        s->q.after = st.last_seq;
    } else if (since && !ld_changes_cursor_parse(since, &s->q.after)) {
        ld_reply_error(r, 400,
                       "since must be a cursor this feed gave (LastCursor or a change's Cursor), "
                       "'0' for the beginning or 'now' for the current end.");
        return false;
    }
    return true;
}

/* The preamble of both routes: auth, a subscriber with its parameters. NULL having replied. */
static sub *sub_begin(ld_req *r, bool ws)
{
    if (!ld_api_begin(r, LD_NEED("documents.read", LD_ROLE_READ_DOCUMENT, 0))) return NULL;
    ld_changes_hub *h = r->node->changes;
    sub *s = calloc(1, sizeof *s);
    if (!s) {
        ld_reply_error(r, 500, "Out of memory.");
        return NULL;
    }
    s->hub = h;
    snprintf(s->db, sizeof s->db, "%s", r->db_name);
    if (!parse_params(r, s, ws)) {
        sub_free(s); /* r was answered and freed */
        return NULL;
    }
    if (s->kind != FEED_NORMAL &&
        !(s->timer = event_new(r->node->base, -1, s->kind == FEED_CONTINUOUS ? EV_PERSIST : 0,
                               timer_cb, s))) {
        sub_free(s);
        ld_reply_error(r, 500, "Out of memory.");
        return NULL;
    }
    return s;
}

void ld_api_changes(ld_req *r)
{
    sub *s = sub_begin(r, false);
    if (!s) return;
    s->r = r;
    if (s->kind == FEED_LONGPOLL) {
        struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
        event_add(s->timer, &tv);
        if (s->hub->stopping) s->expired = true;
        watch_eof(s);
    }
    if (s->kind == FEED_CONTINUOUS && s->hub->stopping) s->remaining = 0;
    /* Listed before the first read: a commit that read misses wakes it. */
    if (s->kind != FEED_NORMAL) sub_list_in(s);
    sub_read(s);
}

void ld_api_changes_ws(ld_req *r)
{
    sub *s = sub_begin(r, true);
    if (!s) return;
    static const ld_ws_callbacks cbs = {.on_text = ws_on_text, .on_close = ws_on_close};
    const char *why = NULL;
    ld_status st = ld_ws_accept(r->node->ws, r->ev, &cbs, s, &s->ws, &why);
    if (st != LD_OK) {
        sub_free(s);
        if (st == LD_INVALID || st == LD_UNSUPPORTED)
            ld_reply_error(r, 400, "A WebSocket request is required.");
        else
            ld_reply_error(r, 500, "The WebSocket could not be set up.");
        return;
    }
    ld_req_free(r); /* the connection now belongs to the WebSocket layer */
    if (s->hub->stopping) {
        sub_end(s, NULL, LD_WS_CLOSE_GOING_AWAY, "node shutting down");
        return;
    }
    sub_list_in(s);
    sub_read(s);
}
