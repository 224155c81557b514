/* Kept-alive client connections to peers (see peerconn.h). */
#include "peerconn.h"

#include <event2/bufferevent.h>

bool ld_peer_conn_prepare(ld_peer_conn *pc, ld_tls *tls, struct event_base *base,
                          struct evdns_base *dns, const ld_peer_addr *addr, int timeout_s)
{
    if (pc->tconn && !ld_tls_http_usable(pc->tconn)) ld_peer_conn_release(pc);
    if (!pc->conn) {
        if (addr->tls) {
            pc->tconn = ld_tls_http_open(tls, base, dns, addr->host, addr->port);
            pc->conn = pc->tconn ? ld_tls_http_evcon(pc->tconn) : NULL;
        } else {
            pc->conn = evhttp_connection_base_new(base, dns, addr->host, (ev_uint16_t)addr->port);
        }
        if (!pc->conn) return false;
        evhttp_connection_set_retries(pc->conn, 0);
    }
    /* Sets the bufferevent's timeouts again, which ld_peer_conn_done cleared while it idled. */
    evhttp_connection_set_timeout(pc->conn, timeout_s);
    return true;
}

int ld_peer_conn_request(ld_peer_conn *pc, struct evhttp_request *req, enum evhttp_cmd_type type,
                         const char *uri)
{
    int rc = pc->tconn ? ld_tls_http_request(pc->tconn, req, type, uri)
                       : evhttp_make_request(pc->conn, req, type, uri);
    if (rc != 0 && pc->tconn) ld_peer_conn_release(pc); /* unless its callback did already */
    return rc;
}

bool ld_peer_conn_done(ld_peer_conn *pc, int code, char *why, size_t len, bool *reused)
{
    bool described = false;
    if (reused) *reused = false;
    if (pc->tconn) {
        described = code == 0 && ld_tls_http_failure(pc->tconn, why, len);
        if (reused) *reused = ld_tls_http_reused(pc->tconn);
        if (code == 0 || !ld_tls_http_usable(pc->tconn)) {
            ld_peer_conn_release(pc); /* freed after this callback */
            return described;
        }
    }
    /* evhttp watches an idle client connection for the peer's close with the request timeout
     * still armed, so it would drop it after timeout_s of quiet: waiting for the next request
     * needs no timeout of ours (the peer ends an idle connection, and that close is seen). */
    if (code != 0 && pc->conn) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(pc->conn);
        if (bev) bufferevent_set_timeouts(bev, NULL, NULL);
    }
    return described;
}

void ld_peer_conn_release(ld_peer_conn *pc)
{
    if (pc->tconn)
        ld_tls_http_release(pc->tconn);
    else if (pc->conn)
        evhttp_connection_free(pc->conn);
    pc->tconn = NULL;
    pc->conn = NULL;
}

void ld_peer_conn_close(ld_peer_conn *pc)
{
    if (pc->tconn)
        ld_tls_http_close(pc->tconn);
    else if (pc->conn)
        evhttp_connection_free(pc->conn);
    pc->tconn = NULL;
    pc->conn = NULL;
}
