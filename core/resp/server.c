/* The RESP listener and its connections (see server.h, conn.h): accept on the node's loop, read
 * into the bufferevent's input, parse every complete command there (pipelining), run each
 * (commands.h), and send replies in command order. */
#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/listener.h>

#include "../http/tls.h"
#include "../node.h"
#include "../util/log.h"
#include "../util/sockopt.h"
#include "commands.h"
#include "conn.h"

/* Output a client has not read past which its connection stops reading commands (resumed
 * when it drains below half): a client that pipelines and never reads cannot grow it further. */
#define OUT_HIGH (4u << 20)
/* Writes a connection may have in the writer at once before it stops reading. */
#define BUSY_MAX 4096

struct ld_resp_server {
    ld_node *node;
    struct evconnlistener *listener;
    ld_resp_conn *conns;
    size_t open;
    uint64_t next_id;
    ld_resp_limits limits;
    struct event *resume; /* re-enables accepting after it ran out of descriptors */
};

static void conn_process(ld_resp_conn *c);

static void conn_free(ld_resp_conn *c)
{
    ld_resp_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->open--;
    while (c->head) {
        ld_resp_slot *n = c->head->next;
        evbuffer_free(c->head->buf);
        free(c->head);
        c->head = n;
    }
    for (int i = 0; i < LD_RESP_CURSORS; i++)
        free(c->cursors[i].after);
    if (c->delay) event_free(c->delay);
    if (c->pass_out) evbuffer_free(c->pass_out);
    ld_resp_parser_free(&c->parser);
    free(c->api_key);
    free(c->name);
    free(c);
}

/* Drops the socket now; the conn itself goes when nothing is held (a write's completion still
 * refers to it). */
static void conn_close(ld_resp_conn *c)
{
    if (c->bev) {
        ld_tls_close_notify(c->bev);
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->busy == 0) conn_free(c);
}

/* Where replies ready to leave go: the pass's buffer while conn_process runs, else the
 * bufferevent's output. */
static struct evbuffer *sink(ld_resp_conn *c)
{
    return c->in_process && c->pass_out ? c->pass_out : bufferevent_get_output(c->bev);
}

static void flush_ready(ld_resp_conn *c)
{
    while (c->head && c->head->ready) {
        ld_resp_slot *s = c->head;
        if (c->bev) evbuffer_add_buffer(sink(c), s->buf);
        c->head = s->next;
        if (!c->head) c->tail = NULL;
        evbuffer_free(s->buf);
        free(s);
    }
}

static ld_resp_slot *new_slot(ld_resp_conn *c, bool ready)
{
    ld_resp_slot *s = calloc(1, sizeof *s);
    if (s && !(s->buf = evbuffer_new())) {
        free(s);
        s = NULL;
    }
    if (!s) {
        c->closing = true; /* a reply would go missing: the client must not read a later one */
        return NULL;
    }
    s->ready = ready;
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    return s;
}

struct evbuffer *ld_resp_out(ld_resp_conn *c)
{
    if (!c->head && c->bev) return sink(c);
    ld_resp_slot *s = new_slot(c, true);
    return s ? s->buf : NULL;
}

ld_resp_slot *ld_resp_hold(ld_resp_conn *c)
{
    ld_resp_slot *s = new_slot(c, false);
    if (s) c->busy++;
    return s;
}

void ld_resp_release(ld_resp_conn *c, ld_resp_slot *s)
{
    s->ready = true;
    c->busy--;
    if (!c->bev) {
        flush_ready(c);
        if (c->busy == 0) conn_free(c);
        return;
    }
    /* Within a pass the replies join its buffer; otherwise the pass run here takes them first,
     * so a completed write's reply leaves with pass_flush's one write too, not through the
     * bufferevent's write event (two epoll_ctl calls per SET). */
    if (c->in_process)
        flush_ready(c);
    else
        conn_process(c);
}

void ld_resp_close_after_replies(ld_resp_conn *c)
{
    c->closing = true;
}

/* Closes a closing connection once its replies are out. True when it was closed. */
static bool maybe_finish(ld_resp_conn *c)
{
    if (!c->closing || c->head) return false;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        bufferevent_disable(c->bev, EV_READ); /* the write callback closes it */
        return false;
    }
    conn_close(c);
    return true;
}

/* Sends the pass's replies. A plain socket with nothing queued in the output gets them with
 * one write from here: adding them to the bufferevent's output instead adds its write event
 * and deletes it once drained, two epoll_ctl calls per pipelined batch (13% of the loop in a
 * GET -P 16 run). What the socket does not take, and everything over TLS, goes to the output,
 * behind what is queued there, in order. */
static void pass_flush(ld_resp_conn *c)
{
    struct evbuffer *p = c->pass_out;
    if (!p || evbuffer_get_length(p) == 0) return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->plain && evbuffer_get_length(out) == 0) {
        /* EAGAIN or a short write leaves the rest; an error (the peer left) leaves it all, and
         * the bufferevent's own write then reports the error and the connection closes. */
        (void)evbuffer_write(p, bufferevent_getfd(c->bev));
    }
    if (evbuffer_get_length(p) > 0 && evbuffer_add_buffer(out, p) != 0)
        c->closing = true; /* replies would go missing: the client must not read later ones */
}

static void conn_process(ld_resp_conn *c)
{
    if (c->in_process || !c->bev) return;
    c->in_process = true;
    flush_ready(c);   /* the replies completed since the last pass, into the pass's buffer */
    c->authz_batch++; /* answers asked by the commands before this pass are not reused by it */
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (!c->closing) {
        size_t len = evbuffer_get_length(in);
        if (len == 0 || (c->parser.want && len < c->parser.want)) break;
        if (c->busy >= BUSY_MAX || evbuffer_get_length(out) > OUT_HIGH) break;
        /* A pass that wrote much sends it before going on, so pass_out stays small. */
        if (c->pass_out && evbuffer_get_length(c->pass_out) > OUT_HIGH / 4) pass_flush(c);
        const char *buf = (const char *)evbuffer_pullup(in, -1);
        if (!buf) {
            c->closing = true;
            break;
        }
        size_t used = 0;
        ld_resp_status st = ld_resp_parse(&c->parser, &c->srv->limits, buf, len, &used);
        if (st == LD_RESP_MORE) break;
        if (st == LD_RESP_ERROR) {
            struct evbuffer *o = ld_resp_out(c);
            if (o) ld_resp_error(o, "%s", c->parser.error);
            c->closing = true;
            break;
        }
        if (c->parser.argc > 0) {
            if (!ld_resp_may_start(c, c->parser.argv[0], c->parser.lens[0])) break;
            ld_resp_run(c, c->parser.argc, c->parser.argv, c->parser.lens);
        }
        evbuffer_drain(in, used);
    }
    pass_flush(c);
    c->in_process = false;
    /* The client sent its last bytes: what is left cannot complete. */
    if (c->eof && c->busy == 0) c->closing = true;
    if (maybe_finish(c)) return;
    bool more =
        !c->closing && !c->eof && c->busy < BUSY_MAX && evbuffer_get_length(out) <= OUT_HIGH;
    if (more)
        bufferevent_enable(c->bev, EV_READ);
    else
        bufferevent_disable(c->bev, EV_READ); /* resumed by a completion or drained output */
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    ld_resp_conn *c = arg;
    (void)bev;
    if (c->closing) {
        maybe_finish(c);
        return;
    }
    /* Drained below the low-water mark (set at half of OUT_HIGH): read again. */
    conn_process(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    ld_resp_conn *c = arg;
    if (what & BEV_EVENT_EOF) { /* answer what it sent before its end of stream */
        c->eof = true;
        conn_process(c);
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        conn_close(c);
    }
}

static void client_addr(const struct sockaddr *sa, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
    snprintf(out, len, "%s", host);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)salen;
    ld_resp_server *s = arg;
    ld_node *n = s->node;
    /* Replies are small and a client waits for each: never hold one back for Nagle (a refusal
     * only costs the client a delayed ACK). */
    (void)ld_sock_nodelay(fd);
    if (s->open >= (size_t)n->cfg.resp.max_connections) {
        /* Redis's answer at maxclients, then the close. */
        static const char full[] = "-ERR max number of clients reached\r\n";
        if (send(fd, full, sizeof full - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* closing */
        }
        evutil_closesocket(fd);
        return;
    }
    ld_resp_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = NULL;
    if (c && !(c->pass_out = evbuffer_new())) {
        free(c);
        c = NULL;
    }
    if (c) {
        if (ld_tls_serves(n->tls)) {
            bev = ld_tls_server_bev(n->base, n->tls);
            if (bev && bufferevent_setfd(bev, fd) != 0) {
                bufferevent_free(bev); /* has no socket yet: fd is still ours */
                bev = NULL;
            }
        } else {
            bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
        }
    }
    if (!bev) {
        ld_log_error("resp: cannot accept a connection: out of memory");
        if (c) evbuffer_free(c->pass_out);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->srv = s;
    c->node = n;
    c->bev = bev;
    c->plain = !ld_tls_serves(n->tls);
    c->proto = 2;
    c->id = ++s->next_id;
    client_addr(sa, c->addr, sizeof c->addr);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->open++;
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(bev, EV_WRITE, OUT_HIGH / 2, 0);
    if (n->cfg.resp.idle_timeout_s > 0) {
        struct timeval idle = {n->cfg.resp.idle_timeout_s, 0};
        bufferevent_set_timeouts(bev, &idle, NULL);
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_resp_server *s = arg;
    if (s->listener) evconnlistener_enable(s->listener);
}

static void on_listen_error(struct evconnlistener *l, void *arg)
{
    ld_resp_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors, typically: pause accepting for a moment instead of spinning on the
     * same error; new connections wait in the backlog. */
    ld_log_warn("resp: accept failed: %s; pausing for 1 s", evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval later = {1, 0};
    event_add(s->resume, &later);
}

ld_resp_server *ld_resp_start(ld_node *n, char *err, size_t errlen)
{
    ld_resp_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "resp: out of memory");
        return NULL;
    }
    s->node = n;
    s->limits.max_bulk = n->cfg.max_body_bytes; /* a value is bounded as an HTTP body is */
    s->limits.max_args = 1024 * 1024;
    s->limits.max_inline = 64 * 1024;
    const char *addr = n->cfg.resp.listen_address;
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST};
    struct evutil_addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", n->cfg.resp.port);
    int rc = evutil_getaddrinfo(addr, port, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "resp: Resp.ListenAddress '%s' is not an IP address: %s", addr,
                 evutil_gai_strerror(rc));
        free(s);
        return NULL;
    }
    s->listener = evconnlistener_new_bind(
        n->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        511, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!s->listener) {
        snprintf(err, errlen, "resp: cannot listen on %s:%d: %s", addr, n->cfg.resp.port,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        free(s);
        return NULL;
    }
    if (!(s->resume = evtimer_new(n->base, on_resume, s))) {
        snprintf(err, errlen, "resp: out of memory");
        evconnlistener_free(s->listener);
        free(s);
        return NULL;
    }
    evconnlistener_set_error_cb(s->listener, on_listen_error);
    return s;
}

int ld_resp_port(const ld_resp_server *s)
{
    if (!s->listener) return 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&ss, &sl) != 0) return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

size_t ld_resp_open(const ld_resp_server *s)
{
    return s ? s->open : 0;
}

void ld_resp_stop_listening(ld_resp_server *s)
{
    if (s && s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
}

void ld_resp_drain(ld_resp_server *s)
{
    if (!s) return;
    ld_resp_stop_listening(s);
    for (ld_resp_conn *c = s->conns, *next; c; c = next) {
        next = c->next; /* c may be freed below */
        c->closing = true;
        /* Closed sockets whose writes are in flight go when those complete; an open one whose
         * writes are in flight keeps its socket for their replies (ld_resp_release then
         * conn_process close it once they are out); an idle one closes now, or once its output
         * drained. */
        if (c->bev && !c->in_process && !maybe_finish(c) && c->bev)
            bufferevent_disable(c->bev, EV_READ);
    }
}

void ld_resp_free(ld_resp_server *s)
{
    if (!s) return;
    ld_resp_stop_listening(s);
    while (s->conns) {
        ld_resp_conn *c = s->conns;
        c->busy = 0; /* the loop has stopped with no write in flight: nothing refers to it */
        conn_close(c);
    }
    if (s->resume) event_free(s->resume);
    free(s);
}
