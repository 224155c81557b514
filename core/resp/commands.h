/* The RESP commands of the cache (docs/resp.md): AUTH, HELLO, PING, QUIT, CLIENT, COMMAND and
 * the key commands, each checking the connection's key against its database through the auth
 * chain as the HTTP cache routes do, reading through the same storage calls and writing
 * through the same cache writes (cache/entry.h) on the database's writer. */
#ifndef LD_RESP_COMMANDS_H
#define LD_RESP_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

/* Whether the command named name may start now: anything when nothing is held; a write when
 * only writes are (so pipelined writes share group commits, and a read still sees every
 * write sent before it); nothing while an AUTH refusal is held. */
bool ld_resp_may_start(const ld_resp_conn *c, const char *name, size_t len);

/* Runs one command; argv points into the connection's input, valid only during the call. */
void ld_resp_run(ld_resp_conn *c, size_t argc, const char **argv, const size_t *lens);

#endif
