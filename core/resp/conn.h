/* One RESP client connection, shared by the listener (server.c) and the commands (commands.c).
 * Replies leave in command order: a command that waits for the writer (or a held AUTH refusal)
 * reserves a slot, and the replies of the commands after it queue behind that slot. */
#ifndef LD_RESP_CONN_H
#define LD_RESP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../db/names.h"
#include "proto.h"

struct ld_node;
struct ld_resp_server;

/* A reply not sent yet: the command that owns it has not finished, or an earlier one has not. */
typedef struct ld_resp_slot {
    struct evbuffer *buf;
    bool ready;
    struct ld_resp_slot *next;
} ld_resp_slot;

#define LD_RESP_CURSORS 16 /* SCAN cursors a connection keeps (the most recent ones) */

typedef struct ld_resp_cursor {
    uint64_t id;
    char *after; /* the key to continue after, malloc'd */
    size_t len;
} ld_resp_cursor;

/* One answer of the auth chain kept for the connection's key and database: the question's
 * other inputs (roles, whether the database exists, the action, a static string) are its key. */
#define LD_RESP_AUTHZ_KEPT 4

typedef struct ld_resp_authz {
    bool used;
    uint32_t needs, may_need;
    int32_t db_exists;
    const char *action;
    uint64_t gen;   /* node->auth_gen when asked */
    uint64_t batch; /* the input batch it was asked in (see authz_batch) */
    int result;     /* ld_auth_result */
    uint32_t granted;
} ld_resp_authz;

typedef struct ld_resp_conn {
    struct ld_resp_server *srv;
    struct ld_node *node;
    struct bufferevent *bev; /* NULL once closed (the conn lives on while busy) */
    bool plain;              /* bev is the socket itself, not a TLS filter over it */
    char addr[64];           /* the client's address, for the failure delays and logs */
    uint64_t id;
    ld_resp_parser parser;
    int proto; /* 2, or 3 after HELLO 3 */
    bool authed;
    char db_name[LD_DB_NAME_MAX + 1];
    char *api_key; /* malloc'd, as given to AUTH */
    size_t api_key_len;
    char *name; /* CLIENT SETNAME */
    /* The chain's answers for this login: reused by the commands of one input batch (they
     * arrived together, as one HTTP request's question covers it), and across batches until
     * a reload when the chain is stable (auth/chain.h). Cleared by AUTH. */
    ld_resp_authz authz[LD_RESP_AUTHZ_KEPT];
    uint64_t authz_batch; /* counts conn_process passes */
    unsigned authz_next;  /* the slot an answer replaces when none is free */
    /* Commands not finished: writes in the writer, and a held AUTH refusal (delayed). Reads
     * start only when busy is 0; writes may start while other writes are in flight (they reach
     * the same writer in order), not while an AUTH refusal is held. */
    int busy;
    bool delayed;
    struct event *delay;      /* the held AUTH refusal's timer */
    ld_resp_slot *delay_slot; /* and its reply */
    bool in_process;          /* conn_process is running: a release inside it must not re-enter */
    /* The replies of the pass conn_process is running, written to the socket at its end in one
     * go (see pass_flush in server.c); made with the connection. */
    struct evbuffer *pass_out;
    bool eof; /* the client closed its side: finish its commands, then close */
    ld_resp_slot *head, *tail;
    bool closing; /* QUIT or a protocol error: close once the replies are out */
    ld_resp_cursor cursors[LD_RESP_CURSORS];
    uint64_t next_cursor;
    struct ld_resp_conn *prev, *next;
} ld_resp_conn;

/* Where a command's reply goes now: the connection's output when nothing is queued before it,
 * else a new slot's buffer (ready). NULL when memory runs out (the connection is closing). */
struct evbuffer *ld_resp_out(ld_resp_conn *c);

/* Reserves the reply slot of a command that finishes later, counted in c->busy. NULL when
 * memory runs out. */
ld_resp_slot *ld_resp_hold(ld_resp_conn *c);

/* The held command finished (its reply is in s->buf): sends what is ready, and runs the
 * commands waiting for it. A connection closed meanwhile is freed once nothing is held. */
void ld_resp_release(ld_resp_conn *c, ld_resp_slot *s);

/* Close once every reply is out (QUIT). */
void ld_resp_close_after_replies(ld_resp_conn *c);

#endif
