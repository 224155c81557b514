/* The HTTP ceiling for bench/run: a bare libevent evhttp server answering every request with a
 * small fixed JSON body, built with the same libevent and flags as litedistd. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* As long as litedistd's /health answer (its NodeId is "node-" and 12 hex digits). */
static const char body[] = "{\"Status\":\"Healthy\",\"NodeId\":\"node-000000000000\"}";

static void on_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *buf = arg;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    /* The same headers litedistd sends with a JSON reply. */
    evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evbuffer_add_reference(buf, body, sizeof body - 1, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", buf);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--port N] [--address A]\n", prog);
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1";
    long port = 18080;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            char *end;
            errno = 0;
            port = strtol(argv[++i], &end, 10);
            if (errno || *end || port < 1 || port > 65535) {
                fprintf(stderr, "invalid port: %s\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--address") && i + 1 < argc) {
            address = argv[++i];
        } else {
            usage(argv[0]);
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    struct evbuffer *buf = evbuffer_new();
    struct event *sig_int = base ? evsignal_new(base, SIGINT, on_signal, base) : NULL;
    struct event *sig_term = base ? evsignal_new(base, SIGTERM, on_signal, base) : NULL;
    int rc = 1;
    if (!http || !buf || !sig_int || !sig_term || event_add(sig_int, NULL) ||
        event_add(sig_term, NULL)) {
        fprintf(stderr, "cannot set up the event loop\n");
        goto out;
    }
    evhttp_set_gencb(http, on_request, buf);
    evhttp_set_timeout(http, 60);
    if (!evhttp_bind_socket_with_handle(http, address, (ev_uint16_t)port)) {
        fprintf(stderr, "cannot listen on %s:%ld: %s\n", address, port, strerror(errno));
        goto out;
    }
    fprintf(stderr, "evhttp_ceiling listening on %s:%ld\n", address, port);
    event_base_dispatch(base);
    rc = 0;

out:
    if (sig_int) event_free(sig_int);
    if (sig_term) event_free(sig_term);
    if (http) evhttp_free(http);
    if (buf) evbuffer_free(buf);
    if (base) event_base_free(base);
    return rc;
}
