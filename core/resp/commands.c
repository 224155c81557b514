/* The RESP commands (see commands.h, docs/resp.md). Error texts are Redis 7's where Redis has
 * one (arity, syntax, integers, auth); litedist's own rules (key rules, the 30-day ttl limit,
 * roles) answer with the HTTP API's message after Redis's error code. */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include <litedist/auth.h>

#include "../api/context.h"
#include "../cache/entry.h"
#include "../cache/scan.h"
#include "../cache/ttl.h"
#include "../db/completions.h"
#include "../db/registry.h"
#include "../http/failures.h"
#include "../node.h"
#include "../util/jsontext.h"
#include "../util/timeutil.h"
#include "value.h"

#define F_WRITE  1u /* goes to the writer: may start while other writes are in flight */
#define F_NOAUTH 2u /* runs before AUTH */

typedef void (*cmd_fn)(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);

typedef struct cmddef {
    const char *name;
    int arity; /* Redis's: n exactly n arguments (the name included), -n at least n */
    unsigned flags;
    cmd_fn fn;
    const char *summary;
    int first_key, last_key, key_step; /* COMMAND's key positions (0: no keys; last -1: all) */
} cmddef;

static void cmd_auth(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_hello(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_ping(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_quit(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_client(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_command(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_get(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_set(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_mget(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_mset(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_del(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_exists(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_expire(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_pexpire(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_ttl(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_pttl(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_persist(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);
static void cmd_scan(ld_resp_conn *c, size_t argc, const char **v, const size_t *l);

static const cmddef commands[] = {
    {"auth", -2, F_NOAUTH, cmd_auth, "Authenticates the connection: AUTH <database> <apikey>.", 0,
     0, 0},
    {"hello", -1, F_NOAUTH, cmd_hello, "Handshakes: protocol version, AUTH and SETNAME.", 0, 0, 0},
    {"ping", -1, 0, cmd_ping, "Returns PONG, or the argument.", 0, 0, 0},
    {"quit", -1, F_NOAUTH, cmd_quit, "Closes the connection.", 0, 0, 0},
    {"client", -2, 0, cmd_client, "CLIENT SETNAME, GETNAME, ID and SETINFO.", 0, 0, 0},
    {"command", -1, 0, cmd_command, "Lists the commands, or their docs (COMMAND DOCS).", 0, 0, 0},
    {"get", 2, 0, cmd_get, "Returns the value of a key.", 1, 1, 1},
    {"set", -3, F_WRITE, cmd_set, "Sets the value of a key, with its expiry.", 1, 1, 1},
    {"mget", -2, 0, cmd_mget, "Returns the values of several keys.", 1, -1, 1},
    {"mset", -3, F_WRITE, cmd_mset, "Sets several keys, each with the default expiry.", 1, -1, 2},
    {"del", -2, F_WRITE, cmd_del, "Deletes keys.", 1, -1, 1},
    {"exists", -2, 0, cmd_exists, "Counts the given keys that exist.", 1, -1, 1},
    {"expire", -3, F_WRITE, cmd_expire, "Sets a key's time to live in seconds.", 1, 1, 1},
    {"pexpire", -3, F_WRITE, cmd_pexpire, "Sets a key's time to live in milliseconds.", 1, 1, 1},
    {"ttl", 2, 0, cmd_ttl, "Returns a key's time to live in seconds.", 1, 1, 1},
    {"pttl", 2, 0, cmd_pttl, "Returns a key's time to live in milliseconds.", 1, 1, 1},
    {"persist", 2, 0, cmd_persist, "Refused for a live key: cache keys always expire.", 1, 1, 1},
    {"scan", -2, 0, cmd_scan, "Iterates over the keys, MATCH and COUNT.", 0, 0, 0},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

#define WRONGPASS "WRONGPASS invalid username-password pair or user is disabled."
#define NOT_INT   "ERR value is not an integer or out of range"
#define SYNTAX    "ERR syntax error"
#define STORAGE                                                                                    \
    "ERR The write could not be committed to storage; nothing was written. Retry the request."

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static bool is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static const cmddef *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (is(name, len, commands[i].name)) return &commands[i];
    return NULL;
}

/* Redis's string2ll: optional '-', digits, no leading zero, no blanks. */
static bool arg_ll(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    bool neg = n > 0 && s[0] == '-';
    if (neg) i++;
    if (i == n || n > 20 || (s[i] == '0' && n - i > 1)) return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (9223372036854775808ULL - d) / 10) return false;
        v = v * 10 + d;
    }
    if (!neg && v > 9223372036854775807ULL) return false;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

static struct evbuffer *out(ld_resp_conn *c)
{
    return ld_resp_out(c); /* NULL: out of memory, the connection is closing */
}

static void reply_error(ld_resp_conn *c, const char *text)
{
    struct evbuffer *o = out(c);
    if (o) ld_resp_error(o, "%s", text);
}

static void reply_arity(ld_resp_conn *c, const char *name)
{
    struct evbuffer *o = out(c);
    if (o) ld_resp_error(o, "ERR wrong number of arguments for '%s' command", name);
}

static void reply_ok(ld_resp_conn *c)
{
    struct evbuffer *o = out(c);
    if (o) ld_resp_simple(o, "OK");
}

/* A key as the cache takes it: the HTTP rules, not trimmed (a RESP key is exact bytes). */
static const char *key_problem(const char *k, size_t n)
{
    return ld_cache_key_problem(k, n);
}

/* ---------------------------------------------------------------------------------------------
 * Authorization: the same one question per command as an HTTP request asks
 * ------------------------------------------------------------------------------------------- */

/* The kept answer to this question, or NULL: one of this batch, or of an earlier one when the
 * chain is stable; never one from before a reload. */
static const ld_resp_authz *kept(const ld_resp_conn *c, int32_t exists, uint32_t needs,
                                 uint32_t may_need, const char *action)
{
    const ld_node *n = c->node;
    for (size_t i = 0; i < LD_RESP_AUTHZ_KEPT; i++) {
        const ld_resp_authz *a = &c->authz[i];
        if (a->used && a->needs == needs && a->may_need == may_need && a->db_exists == exists &&
            (a->action == action || !strcmp(a->action, action)) && a->gen == n->auth_gen &&
            (n->auth.stable || a->batch == c->authz_batch))
            return a;
    }
    return NULL;
}

static void keep(ld_resp_conn *c, int32_t exists, uint32_t needs, uint32_t may_need,
                 const char *action, ld_auth_result res, uint32_t granted)
{
    /* A free or stale slot, else the next in turn (a connection asks a few questions over and
     * over: a read, a write, a delete). */
    size_t at = c->authz_next++ % LD_RESP_AUTHZ_KEPT;
    for (size_t i = 0; i < LD_RESP_AUTHZ_KEPT; i++) {
        const ld_resp_authz *a = &c->authz[i];
        if (!a->used || a->gen != c->node->auth_gen ||
            (!c->node->auth.stable && a->batch != c->authz_batch)) {
            at = i;
            break;
        }
    }
    c->authz[at] =
        (ld_resp_authz){true,           needs,    may_need, exists, action, c->node->auth_gen,
                        c->authz_batch, (int)res, granted};
}

static ld_auth_result ask(ld_resp_conn *c, const char *db, int32_t exists, uint32_t needs,
                          uint32_t may_need, const char *action, uint32_t *granted)
{
    /* An error is never kept: the next command asks again. */
    const ld_resp_authz *a = kept(c, exists, needs, may_need, action);
    if (a) {
        *granted = a->granted;
        return (ld_auth_result)a->result;
    }
    ld_auth_question q = {.key = c->api_key,
                          .key_len = c->api_key_len,
                          .database = db,
                          .db_exists = exists,
                          .id_exists = -1,
                          .needs = needs,
                          .may_need = may_need,
                          .action = action,
                          .client_addr = c->addr};
    *granted = 0;
    ld_auth_result res = ld_auth_chain_ask(&c->node->auth, &q, granted, NULL);
    if (res != LD_AUTHZ_ERROR) keep(c, exists, needs, may_need, action, res, *granted);
    return res;
}

static void count_failure(ld_resp_conn *c, ld_auth_fail why)
{
    ld_counter_add(&c->node->stats.auth_failures[why], 1);
}

static void deny_role(ld_resp_conn *c, uint32_t role)
{
    count_failure(c, LD_AUTHFAIL_ROLE);
    struct evbuffer *o = out(c);
    if (o) ld_resp_error(o, "NOPERM ApiKey is not allowed to %s.", ld_role_action(role));
}

/* Asks the chain about this command: the connection's key on its database, ADD_DB when the
 * database does not exist yet (as every HTTP route naming a database does), and needs; the
 * granted may_need roles in *granted. Replies and returns false on refusal. On true *db is a
 * registry reference (NULL when the database does not exist) the caller releases. */
static bool authorize(ld_resp_conn *c, uint32_t needs, uint32_t may_need, const char *action,
                      ld_db **db, uint32_t *granted)
{
    ld_node *n = c->node;
    *db = ld_registry_get(&n->reg, c->db_name);
    uint32_t all = needs | (*db ? 0 : LD_ROLE_ADD_DB);
    ld_auth_result res = ask(c, c->db_name, *db != NULL, all, may_need, action, granted);
    const char *fail = NULL;
    if (res == LD_AUTHZ_UNKNOWN) {
        count_failure(c, LD_AUTHFAIL_UNKNOWN_KEY); /* the key was removed since AUTH */
        fail = WRONGPASS;
    } else if (res == LD_AUTHZ_DENY) {
        count_failure(c, LD_AUTHFAIL_DATABASE);
        fail = WRONGPASS;
    } else if (res == LD_AUTHZ_ERROR) {
        count_failure(c, LD_AUTHFAIL_PLUGIN_ERROR);
        fail = "ERR Authorization is unavailable; the request was refused.";
    }
    if (!fail && !*db && !(*granted & LD_ROLE_ADD_DB)) {
        count_failure(c, LD_AUTHFAIL_ROLE);
        struct evbuffer *o = out(c);
        if (o)
            ld_resp_error(o, "NOPERM ApiKey is not allowed to create database '%s'.", c->db_name);
        fail = "";
    }
    for (uint32_t bit = 1; !fail && bit <= LD_ROLE_ALL; bit <<= 1) {
        if ((needs & bit) && !(*granted & bit)) {
            deny_role(c, bit);
            fail = "";
        }
    }
    if (fail) {
        if (*fail) reply_error(c, fail);
        if (*db) ld_registry_release(&n->reg, *db);
        *db = NULL;
        return false;
    }
    return true;
}

/* The database a write goes to, created on first use (authorize checked ADD_DB). Replies and
 * returns false when it cannot be. */
static bool ensure_db(ld_resp_conn *c, ld_db **db)
{
    if (*db) return true;
    ld_status st = ld_registry_get_or_create(&c->node->reg, c->db_name, db);
    if (st == LD_OK) return true;
    struct evbuffer *o = out(c);
    if (o && st == LD_BUSY)
        ld_resp_error(o, "ERR Database '%s' is being deleted; retry shortly.", c->db_name);
    else if (o)
        ld_resp_error(o, "ERR Database '%s' could not be created: %s.", c->db_name,
                      ld_status_str(st));
    *db = NULL;
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * AUTH and HELLO
 * ------------------------------------------------------------------------------------------- */

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_resp_conn *c = arg;
    ld_resp_slot *s = c->delay_slot;
    c->delay_slot = NULL;
    c->delayed = false;
    ld_resp_error(s->buf, "%s", WRONGPASS);
    ld_resp_release(c, s);
}

/* Refuses an unknown key after the per-address delay HTTP applies (http/failures.h), holding
 * the connection's later commands meanwhile. */
static void refuse_unknown(ld_resp_conn *c)
{
    count_failure(c, LD_AUTHFAIL_UNKNOWN_KEY);
    uint32_t ms = ld_failures_note(c->node->failures, c->addr, ld_mono_ms());
    ld_resp_slot *s = NULL;
    if (ms > 0 && (c->delay || (c->delay = evtimer_new(c->node->base, on_delay, c))))
        s = ld_resp_hold(c);
    if (!s) {
        reply_error(c, WRONGPASS);
        return;
    }
    c->delay_slot = s;
    c->delayed = true;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->delay, &tv);
}

/* AUTH <database> <apikey>: the username names the database. True when authenticated; false
 * having replied (or held a reply) otherwise. A refusal leaves the earlier login in place, as
 * in Redis. */
static bool authenticate(ld_resp_conn *c, const char *user, size_t ulen, const char *pass,
                         size_t plen)
{
    char raw[LD_DB_NAME_MAX + 2], name[LD_DB_NAME_MAX + 1];
    if (ulen == 0 || ulen > LD_DB_NAME_MAX || memchr(user, '\0', ulen)) {
        reply_error(c, WRONGPASS);
        return false;
    }
    memcpy(raw, user, ulen);
    raw[ulen] = '\0';
    if (!ld_db_name_normalize(raw, name)) {
        reply_error(c, "ERR Database name contains invalid characters. Use lowercase letters, "
                       "numbers, '-' or '_' only.");
        return false;
    }
    char *key = malloc(plen + 1);
    if (!key) {
        reply_error(c, "ERR out of memory");
        return false;
    }
    memcpy(key, pass, plen);
    key[plen] = '\0';
    ld_db *db = ld_registry_get(&c->node->reg, name);
    bool exists = db != NULL;
    if (db) ld_registry_release(&c->node->reg, db);
    ld_auth_question q = {.key = key,
                          .key_len = plen,
                          .database = name,
                          .db_exists = exists,
                          .id_exists = -1,
                          .action = "cache.auth",
                          .client_addr = c->addr};
    uint32_t granted = 0;
    ld_auth_result res =
        plen ? ld_auth_chain_ask(&c->node->auth, &q, &granted, NULL) : LD_AUTHZ_UNKNOWN;
    if (res != LD_AUTHZ_ALLOW) {
        free(key);
        if (res == LD_AUTHZ_UNKNOWN) {
            refuse_unknown(c);
        } else if (res == LD_AUTHZ_DENY) {
            count_failure(c, LD_AUTHFAIL_DATABASE);
            reply_error(c, WRONGPASS);
        } else {
            count_failure(c, LD_AUTHFAIL_PLUGIN_ERROR);
            reply_error(c, "ERR Authorization is unavailable; the request was refused.");
        }
        return false;
    }
    free(c->api_key);
    c->api_key = key;
    c->api_key_len = plen;
    memcpy(c->db_name, name, sizeof c->db_name);
    memset(c->authz, 0, sizeof c->authz); /* answers about the previous login */
    c->authed = true;
    return true;
}

static void cmd_auth(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    if (argc == 2) {
        /* Redis's one-argument form logs in as "default": there is no default database. */
        reply_error(c, "ERR AUTH needs a database and an ApiKey: AUTH <database> <apikey>");
        return;
    }
    if (argc != 3) {
        reply_error(c, SYNTAX);
        return;
    }
    if (authenticate(c, v[1], l[1], v[2], l[2])) reply_ok(c);
}

static bool valid_client_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '!' || s[i] > '~') return false;
    return true;
}

static bool set_name(ld_resp_conn *c, const char *s, size_t n)
{
    if (!valid_client_name(s, n)) {
        reply_error(c, "ERR Client names cannot contain spaces, newlines or special characters.");
        return false;
    }
    char *name = n ? strndup(s, n) : NULL;
    if (n && !name) {
        reply_error(c, "ERR out of memory");
        return false;
    }
    free(c->name);
    c->name = name;
    return true;
}

static void cmd_hello(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    long long proto = c->proto;
    size_t i = 1;
    if (argc > 1) {
        if (!arg_ll(v[1], l[1], &proto)) {
            reply_error(c, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (proto != 2 && proto != 3) {
            reply_error(c, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
    }
    size_t auth_at = 0, name_at = 0;
    for (; i < argc; i++) {
        size_t left = argc - i - 1;
        if (is(v[i], l[i], "auth") && left >= 2) {
            auth_at = i;
            i += 2;
        } else if (is(v[i], l[i], "setname") && left >= 1) {
            if (!valid_client_name(v[i + 1], l[i + 1])) {
                reply_error(c, "ERR Client names cannot contain spaces, newlines or special "
                               "characters.");
                return;
            }
            name_at = ++i;
        } else {
            struct evbuffer *o = out(c);
            if (o) ld_resp_error(o, "ERR Syntax error in HELLO option '%.*s'", (int)l[i], v[i]);
            return;
        }
    }
    if (auth_at && !authenticate(c, v[auth_at + 1], l[auth_at + 1], v[auth_at + 2], l[auth_at + 2]))
        return;
    if (!c->authed) {
        reply_error(c, "NOAUTH HELLO must be called with the client already authenticated, "
                       "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                       "authenticate the client and select the RESP protocol version at the same "
                       "time");
        return;
    }
    if (name_at && !set_name(c, v[name_at], l[name_at])) return;
    c->proto = (int)proto;
    struct evbuffer *o = out(c);
    if (!o) return;
    ld_resp_map(o, c->proto, 7);
    ld_resp_bulk(o, "server", 6);
    ld_resp_bulk(o, "litedist", 8);
    ld_resp_bulk(o, "version", 7);
    ld_resp_bulk(o, LD_VERSION, strlen(LD_VERSION));
    ld_resp_bulk(o, "proto", 5);
    ld_resp_int(o, c->proto);
    ld_resp_bulk(o, "id", 2);
    ld_resp_int(o, (long long)c->id);
    ld_resp_bulk(o, "mode", 4);
    ld_resp_bulk(o, "standalone", 10);
    ld_resp_bulk(o, "role", 4);
    ld_resp_bulk(o, "master", 6);
    ld_resp_bulk(o, "modules", 7);
    ld_resp_array(o, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Connection commands
 * ------------------------------------------------------------------------------------------- */

static void cmd_ping(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    if (argc > 2) {
        reply_arity(c, "ping");
        return;
    }
    struct evbuffer *o = out(c);
    if (!o) return;
    if (argc == 2)
        ld_resp_bulk(o, v[1], l[1]);
    else
        ld_resp_simple(o, "PONG");
}

static void cmd_quit(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    (void)argc;
    (void)v;
    (void)l;
    reply_ok(c);
    ld_resp_close_after_replies(c);
}

static void cmd_client(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    struct evbuffer *o;
    if (is(v[1], l[1], "setname")) {
        if (argc != 3) {
            reply_arity(c, "client|setname");
        } else if (set_name(c, v[2], l[2])) {
            reply_ok(c);
        }
    } else if (is(v[1], l[1], "getname")) {
        if (argc != 2) {
            reply_arity(c, "client|getname");
        } else if ((o = out(c))) {
            if (c->name)
                ld_resp_bulk(o, c->name, strlen(c->name));
            else
                ld_resp_null(o, c->proto);
        }
    } else if (is(v[1], l[1], "id")) {
        if (argc != 2)
            reply_arity(c, "client|id");
        else if ((o = out(c)))
            ld_resp_int(o, (long long)c->id);
    } else if (is(v[1], l[1], "setinfo")) {
        /* Client libraries announce themselves (LIB-NAME, LIB-VER): noted by Redis, accepted. */
        if (argc != 4)
            reply_arity(c, "client|setinfo");
        else if (!is(v[2], l[2], "lib-name") && !is(v[2], l[2], "lib-ver")) {
            if ((o = out(c))) ld_resp_error(o, "ERR Unrecognized option '%.*s'", (int)l[2], v[2]);
        } else {
            reply_ok(c);
        }
    } else if ((o = out(c))) {
        ld_resp_error(o, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.", (int)l[1], v[1]);
    }
}

static const char *group_of(const cmddef *d)
{
    static const char *const conn[] = {"auth", "hello", "ping", "quit", "client", "command"};
    static const char *const str[] = {"get", "set", "mget", "mset"};
    for (size_t i = 0; i < sizeof conn / sizeof *conn; i++)
        if (!strcmp(d->name, conn[i])) return "connection";
    for (size_t i = 0; i < sizeof str / sizeof *str; i++)
        if (!strcmp(d->name, str[i])) return "string";
    return "generic";
}

static void doc_entry(struct evbuffer *o, int proto, const cmddef *d)
{
    ld_resp_bulk(o, d->name, strlen(d->name));
    ld_resp_map(o, proto, 4);
    ld_resp_bulk(o, "summary", 7);
    ld_resp_bulk(o, d->summary, strlen(d->summary));
    ld_resp_bulk(o, "since", 5);
    ld_resp_bulk(o, "1.0.0", 5);
    const char *g = group_of(d);
    ld_resp_bulk(o, "group", 5);
    ld_resp_bulk(o, g, strlen(g));
    ld_resp_bulk(o, "complexity", 10);
    ld_resp_bulk(o, "O(1)", 4);
}

static void cmd_command(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    struct evbuffer *o = out(c);
    if (!o) return;
    if (argc == 1) { /* COMMAND: name, arity, flags, first key, last key, step */
        ld_resp_array(o, N_COMMANDS);
        for (size_t i = 0; i < N_COMMANDS; i++) {
            const cmddef *d = &commands[i];
            ld_resp_array(o, 6);
            ld_resp_bulk(o, d->name, strlen(d->name));
            ld_resp_int(o, d->arity);
            ld_resp_array(o, 1);
            ld_resp_simple(o, d->flags & F_WRITE ? "write" : "readonly");
            ld_resp_int(o, d->first_key);
            ld_resp_int(o, d->last_key);
            ld_resp_int(o, d->key_step);
        }
    } else if (is(v[1], l[1], "count")) {
        ld_resp_int(o, (long long)N_COMMANDS);
    } else if (is(v[1], l[1], "docs")) {
        size_t n = 0;
        for (size_t i = 2; i < argc; i++)
            n += lookup(v[i], l[i]) != NULL;
        ld_resp_map(o, c->proto, argc > 2 ? n : N_COMMANDS);
        if (argc == 2) {
            for (size_t i = 0; i < N_COMMANDS; i++)
                doc_entry(o, c->proto, &commands[i]);
        } else {
            for (size_t i = 2; i < argc; i++) {
                const cmddef *d = lookup(v[i], l[i]);
                if (d) doc_entry(o, c->proto, d);
            }
        }
    } else {
        ld_resp_error(o, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.", (int)l[1], v[1]);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------------- */

/* Reads key's entry: 1 live (*buf holds the record, free it), 0 missing or expired, -1 when
 * storage failed (replied). An invalid key is missing: it cannot have been written. */
static int read_entry(ld_resp_conn *c, ld_db *db, const char *k, size_t kl, uint8_t **buf,
                      ld_doc_rec *rec)
{
    *buf = NULL;
    if (!db || key_problem(k, kl)) return 0;
    ld_status st = ld_db_get_doc(db, c->node->snaps, LD_CACHE_COLLECTION,
                                 strlen(LD_CACHE_COLLECTION), k, kl, buf, rec);
    if (st == LD_NOT_FOUND) return 0;
    if (st != LD_OK) {
        struct evbuffer *o = out(c);
        if (o) ld_resp_error(o, "ERR Reading the cache entry failed: %s.", ld_status_str(st));
        return -1;
    }
    if (!ld_cache_rec_live(rec, ld_cache_now_ms(db))) {
        free(*buf);
        *buf = NULL;
        return 0;
    }
    return 1;
}

/* Appends the entry's value as GET answers it. False when the stored entry is not one. */
static bool append_value(struct evbuffer *o, const ld_doc_rec *rec)
{
    size_t vs, vl;
    if (!ld_json_member_span(rec->json, rec->json_len, "Value", &vs, &vl)) return false;
    /* Out of memory (-1) leaves the reply short: the output is failing anyway, as for every
     * other reply written into it. */
    return ld_resp_bulk_value(o, rec->json + vs, vl) <= 0;
}

/* What a one-key read answers, the entry read: found (rec live) or not (missing, expired). */
typedef void (*read_answer)(const ld_resp_conn *c, struct evbuffer *o, ld_db *db, bool found,
                            const ld_doc_rec *rec, const char *k, size_t kl, bool ms);

/* The frame of GET, TTL, PTTL and PERSIST: READ_DOCUMENT, then key v[1]'s entry read and
 * answered by fn (a storage failure was answered by read_entry). */
static void one_key_read(ld_resp_conn *c, const char **v, const size_t *l, read_answer fn, bool ms)
{
    ld_db *db;
    uint32_t g;
    if (!authorize(c, LD_ROLE_READ_DOCUMENT, 0, "cache.read", &db, &g)) return;
    uint8_t *buf;
    ld_doc_rec rec;
    int found = read_entry(c, db, v[1], l[1], &buf, &rec);
    struct evbuffer *o = found >= 0 ? out(c) : NULL;
    if (o) fn(c, o, db, found > 0, &rec, v[1], l[1], ms);
    free(buf);
    if (db) ld_registry_release(&c->node->reg, db);
}

static void get_answer(const ld_resp_conn *c, struct evbuffer *o, ld_db *db, bool found,
                       const ld_doc_rec *rec, const char *k, size_t kl, bool ms)
{
    (void)db;
    (void)ms;
    if (!found)
        ld_resp_null(o, c->proto);
    else if (!append_value(o, rec))
        ld_resp_error(o, "ERR Cache entry '%.*s' is not a cache entry document.", (int)kl, k);
}

static void cmd_get(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    (void)argc;
    one_key_read(c, v, l, get_answer, false);
}

static void cmd_mget(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    ld_db *db;
    uint32_t g;
    if (!authorize(c, LD_ROLE_READ_DOCUMENT, 0, "cache.read", &db, &g)) return;
    /* Built aside: a storage failure half-way answers an error, not half an array. */
    struct evbuffer *tmp = evbuffer_new();
    bool ok = tmp && ld_resp_array(tmp, argc - 1);
    for (size_t i = 1; ok && i < argc; i++) {
        uint8_t *buf;
        ld_doc_rec rec;
        int found = read_entry(c, db, v[i], l[i], &buf, &rec);
        if (found < 0) {
            ok = false;
            evbuffer_free(tmp);
            tmp = NULL;
            break;
        }
        if (found == 0 || !append_value(tmp, &rec)) ld_resp_null(tmp, c->proto);
        free(buf);
    }
    struct evbuffer *o = ok ? out(c) : NULL;
    if (o) evbuffer_add_buffer(o, tmp);
    if (!ok && tmp) reply_error(c, "ERR out of memory");
    if (tmp) evbuffer_free(tmp);
    if (db) ld_registry_release(&c->node->reg, db);
}

static void cmd_exists(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    ld_db *db;
    uint32_t g;
    if (!authorize(c, LD_ROLE_READ_DOCUMENT, 0, "cache.read", &db, &g)) return;
    long long n = 0;
    int found = 0;
    for (size_t i = 1; i < argc && found >= 0; i++) {
        uint8_t *buf;
        ld_doc_rec rec;
        found = read_entry(c, db, v[i], l[i], &buf, &rec);
        n += found > 0;
        free(buf);
    }
    struct evbuffer *o = found >= 0 ? out(c) : NULL;
    if (o) ld_resp_int(o, n);
    if (db) ld_registry_release(&c->node->reg, db);
}

/* TTL (seconds, rounded as Redis rounds) and PTTL: -2 for a missing key. */
static void ttl_answer(const ld_resp_conn *c, struct evbuffer *o, ld_db *db, bool found,
                       const ld_doc_rec *rec, const char *k, size_t kl, bool ms)
{
    (void)c;
    (void)k;
    (void)kl;
    if (!found) {
        ld_resp_int(o, -2);
    } else if (rec->expires_ms == 0) {
        ld_resp_int(o, -1);
    } else {
        uint64_t now = ld_cache_now_ms(db);
        uint64_t left = rec->expires_ms > now ? rec->expires_ms - now : 0;
        ld_resp_int(o, (long long)(ms ? left : (left + 500) / 1000));
    }
}

static void cmd_ttl(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    (void)argc;
    one_key_read(c, v, l, ttl_answer, false);
}

static void cmd_pttl(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    (void)argc;
    one_key_read(c, v, l, ttl_answer, true);
}

static void persist_answer(const ld_resp_conn *c, struct evbuffer *o, ld_db *db, bool found,
                           const ld_doc_rec *rec, const char *k, size_t kl, bool ms)
{
    (void)c;
    (void)db;
    (void)rec;
    (void)k;
    (void)kl;
    (void)ms;
    if (!found)
        ld_resp_int(o, 0);
    else
        ld_resp_error(o, "ERR litedist cache keys always expire (at most 30 days after their "
                         "last write): PERSIST cannot remove a TTL; use EXPIRE to set another");
}

static void cmd_persist(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    (void)argc;
    one_key_read(c, v, l, persist_answer, false);
}

typedef struct scan_ctx {
    struct evbuffer *keys;
    size_t n;
} scan_ctx;

static int scan_one(void *ctx, const char *key, size_t len, const ld_doc_rec *rec)
{
    (void)rec;
    scan_ctx *s = ctx;
    s->n++;
    return ld_resp_bulk(s->keys, key, len) ? 0 : 1;
}

/* SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. A cursor other than 0 is one this
 * connection got from one of its last LD_RESP_CURSORS scans (it names the key to go on after). */
static void cmd_scan(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    long long cur;
    /* Redis reads the cursor as an unsigned 64-bit number. */
    if (!arg_ll(v[1], l[1], &cur) || cur < 0) {
        reply_error(c, "ERR invalid cursor");
        return;
    }
    ld_resp_cursor *from = NULL;
    if (cur != 0) {
        for (int i = 0; i < LD_RESP_CURSORS && !from; i++)
            if (c->cursors[i].id == (uint64_t)cur && c->cursors[i].after) from = &c->cursors[i];
        if (!from) {
            reply_error(c, "ERR invalid cursor");
            return;
        }
    }
    const char *match = NULL;
    size_t match_len = 0;
    long long count = 10;
    bool other_type = false;
    for (size_t i = 2; i < argc; i++) {
        bool has = i + 1 < argc;
        if (is(v[i], l[i], "match") && has) {
            match = v[++i];
            match_len = l[i];
            if (match_len == 1 && match[0] == '*') match = NULL; /* every key */
        } else if (is(v[i], l[i], "count") && has) {
            if (!arg_ll(v[i + 1], l[i + 1], &count)) {
                reply_error(c, NOT_INT);
                return;
            }
            if (count < 1) {
                reply_error(c, SYNTAX);
                return;
            }
            i++;
        } else if (is(v[i], l[i], "type") && has) {
            other_type = !is(v[i + 1], l[i + 1], "string"); /* every cache value is a string */
            i++;
        } else {
            reply_error(c, SYNTAX);
            return;
        }
    }
    ld_db *db;
    uint32_t g;
    if (!authorize(c, LD_ROLE_READ_DOCUMENT, 0, "cache.read", &db, &g)) return;
    /* COUNT is the work of one call, as in Redis: at most that many keys, and the records
     * read bounded as for GET /api/cache (so the loop is never held long). */
    size_t take = count > 1000 ? 1000 : (size_t)count;
    ld_cache_scan scan = {
        .match = match,
        .match_len = match_len,
        .after = from ? from->after : NULL,
        .after_len = from ? from->len : 0,
        .take = take,
        .max_read = take * 4 < 1000 ? 1000 : take * 4,
    };
    scan_ctx sc = {.keys = evbuffer_new()};
    ld_status st = sc.keys ? LD_OK : LD_NOMEM;
    if (st == LD_OK && db && !other_type) {
        scan.now_ms = ld_cache_now_ms(db);
        st = ld_cache_scan_page(db, &scan, scan_one, &sc);
    }
    if (db) ld_registry_release(&c->node->reg, db);
    uint64_t next = 0;
    if (st == LD_OK && scan.next) {
        next = ++c->next_cursor;
        ld_resp_cursor *slot = &c->cursors[next % LD_RESP_CURSORS];
        free(slot->after);
        slot->id = next;
        slot->after = scan.next; /* handed over */
        slot->len = scan.next_len;
        scan.next = NULL;
    }
    free(scan.next);
    struct evbuffer *o = out(c);
    if (o && st != LD_OK) {
        ld_resp_error(o, "ERR Reading the cache keys failed: %s.", ld_status_str(st));
    } else if (o) {
        char num[24];
        int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)next);
        ld_resp_array(o, 2);
        ld_resp_bulk(o, num, (size_t)nl);
        ld_resp_array(o, sc.n);
        evbuffer_add_buffer(o, sc.keys);
    }
    if (sc.keys) evbuffer_free(sc.keys);
}

/* ---------------------------------------------------------------------------------------------
 * Writes: jobs on the database's writer; the reply waits in the connection's slot
 * ------------------------------------------------------------------------------------------- */

typedef enum wkind { W_SET, W_MSET, W_EXPIRE, W_DEL } wkind;

struct wgroup;
typedef struct wone {
    struct wgroup *g;
    ld_cache_put put;
    bool deleted;
} wone;

typedef struct wgroup {
    ld_resp_conn *c;
    ld_resp_slot *slot;
    ld_db *db;
    wkind kind;
    size_t n, left;
    long long deleted;
    ld_wresult failed; /* the first job that did not succeed (LD_WR_OK: none) */
    wone one[];
} wgroup;

static wgroup *group_new(ld_resp_conn *c, wkind kind, size_t n)
{
    wgroup *g = calloc(1, sizeof *g + n * sizeof(wone));
    if (!g) return NULL;
    g->c = c;
    g->kind = kind;
    g->n = g->left = n;
    for (size_t i = 0; i < n; i++)
        g->one[i].g = g;
    return g;
}

static void group_free(wgroup *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->one[i].put.value);
        free(g->one[i].put.old_value);
    }
    free(g);
}

static void group_reply(wgroup *g)
{
    ld_resp_conn *c = g->c;
    struct evbuffer *o = g->slot->buf;
    if (g->failed == LD_WR_NEED_CREATE || g->failed == LD_WR_NEED_UPDATE) {
        uint32_t role =
            g->failed == LD_WR_NEED_CREATE ? LD_ROLE_WRITE_DOCUMENT : LD_ROLE_UPDATE_DOCUMENT;
        count_failure(c, LD_AUTHFAIL_ROLE);
        ld_resp_error(o, "NOPERM ApiKey is not allowed to %s.", ld_role_action(role));
        return;
    }
    if (g->failed != LD_WR_OK) {
        ld_resp_error(o, "%s", STORAGE);
        return;
    }
    const ld_cache_put *p = &g->one[0].put;
    switch (g->kind) {
    case W_SET:
        if (p->want_old) {
            size_t n;
            char *owned;
            const char *val =
                p->old_value ? ld_resp_value_from_json(p->old_value, p->old_value_len, &n, &owned)
                             : NULL;
            if (val)
                ld_resp_bulk(o, val, n);
            else
                ld_resp_null(o, c->proto);
            if (val) free(owned);
        } else if (p->skipped) {
            ld_resp_null(o, c->proto);
        } else {
            ld_resp_simple(o, "OK");
        }
        break;
    case W_MSET:
        ld_resp_simple(o, "OK");
        break;
    case W_EXPIRE:
        ld_resp_int(o, p->skipped ? 0 : 1);
        break;
    case W_DEL:
        ld_resp_int(o, g->deleted);
        break;
    }
}

static void write_done(ld_wjob *job)
{
    wone *w = job->arg;
    wgroup *g = w->g;
    if (job->result != LD_WR_OK && g->failed == LD_WR_OK) g->failed = job->result;
    if (w->deleted) g->deleted++;
    ld_wjob_free(job);
    if (--g->left > 0) return;
    group_reply(g);
    ld_resp_conn *c = g->c;
    ld_resp_slot *s = g->slot;
    ld_registry_release(&c->node->reg, g->db);
    group_free(g);
    ld_resp_release(c, s);
}

/* Makes the group's jobs (keys[i], one job per wone), holds the reply slot and submits them.
 * Takes over g and the db reference; replies on failure. */
static void group_submit(ld_resp_conn *c, wgroup *g, ld_db *db, const char **keys,
                         const size_t *klens, bool may_create, bool may_update)
{
    ld_wjob **jobs = calloc(g->n, sizeof *jobs);
    bool ok = jobs != NULL;
    for (size_t i = 0; ok && i < g->n; i++) {
        wone *w = &g->one[i];
        jobs[i] = g->kind == W_DEL ? ld_wjob_custom(ld_cache_delete_live_apply, write_done, w)
                                   : ld_wjob_custom(ld_cache_put_apply, write_done, w);
        if (!jobs[i]) {
            ok = false;
            break;
        }
        jobs[i]->collection = strdup(LD_CACHE_COLLECTION);
        jobs[i]->id = strndup(keys[i], klens[i]);
        jobs[i]->ctx = g->kind == W_DEL ? (void *)&w->deleted : (void *)&w->put;
        jobs[i]->may_create = may_create;
        jobs[i]->may_update = may_update;
        ok = jobs[i]->collection && jobs[i]->id;
    }
    if (ok) ok = (g->slot = ld_resp_hold(c)) != NULL;
    if (!ok) {
        for (size_t i = 0; jobs && i < g->n; i++)
            ld_wjob_free(jobs[i]);
        free(jobs);
        group_free(g);
        ld_registry_release(&c->node->reg, db);
        reply_error(c, "ERR out of memory");
        return;
    }
    g->db = db;
    /* Later, not now: the connection's next pipelined writes (and other connections' read in
     * this loop pass) join these in one chain, one wake-up and one group of the writer. g holds
     * the db reference until the last job is done. */
    for (size_t i = 0; i < g->n; i++)
        ld_node_submit_later(c->node, db, jobs[i]);
    free(jobs);
}

/* The JSON text of a SET value; replies and returns NULL when it cannot be stored. */
static char *value_json(ld_resp_conn *c, const char *s, size_t n, size_t *len)
{
    bool not_utf8;
    char *json = ld_resp_value_to_json(s, n, len, &not_utf8);
    if (!json)
        reply_error(c, not_utf8 ? "ERR value is not UTF-8 text: cache values are JSON, a RESP "
                                  "value is stored as a JSON string (docs/resp.md)"
                                : "ERR out of memory");
    return json;
}

static bool check_key(ld_resp_conn *c, const char *k, size_t n)
{
    const char *problem = key_problem(k, n);
    if (!problem) return true;
    struct evbuffer *o = out(c);
    if (o) ld_resp_error(o, "ERR %s", problem);
    return false;
}

#define TTL_TOO_LONG "ERR ttl cannot exceed 2592000000ms."

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] */
static void cmd_set(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    ld_cache_put p = {.ttl_ms = LD_TTL_DEFAULT_MS, .cond = LD_CACHE_ANY};
    int expire_kind = 0; /* 1 EX, 2 PX, 3 EXAT, 4 PXAT */
    long long expire = 0;
    for (size_t i = 3; i < argc; i++) {
        bool has = i + 1 < argc;
        if (is(v[i], l[i], "nx") && p.cond != LD_CACHE_IF_LIVE) {
            p.cond = LD_CACHE_IF_ABSENT;
        } else if (is(v[i], l[i], "xx") && p.cond != LD_CACHE_IF_ABSENT) {
            p.cond = LD_CACHE_IF_LIVE;
        } else if (is(v[i], l[i], "get")) {
            p.want_old = true;
        } else if (is(v[i], l[i], "keepttl") && !expire_kind) {
            p.keep_ttl = true;
        } else if (has && !expire_kind && !p.keep_ttl &&
                   (is(v[i], l[i], "ex") || is(v[i], l[i], "px") || is(v[i], l[i], "exat") ||
                    is(v[i], l[i], "pxat"))) {
            expire_kind = is(v[i], l[i], "ex")     ? 1
                          : is(v[i], l[i], "px")   ? 2
                          : is(v[i], l[i], "exat") ? 3
                                                   : 4;
            i++;
            if (!arg_ll(v[i], l[i], &expire)) {
                reply_error(c, NOT_INT);
                return;
            }
        } else {
            reply_error(c, SYNTAX);
            return;
        }
    }
    if (expire_kind) {
        bool secs = expire_kind == 1 || expire_kind == 3;
        if (expire <= 0 || (secs && expire > 9223372036854775807LL / 1000)) {
            reply_error(c, "ERR invalid expire time in 'set' command");
            return;
        }
        uint64_t ms = (uint64_t)expire * (secs ? 1000u : 1u);
        if (expire_kind <= 2) {
            if (ms > LD_TTL_MAX_MS) {
                reply_error(c, TTL_TOO_LONG);
                return;
            }
            p.ttl_ms = ms;
        } else {
            p.at = true;
            p.expires_at_ms = ms;
        }
    }
    if (!check_key(c, v[1], l[1])) return;
    ld_db *db;
    uint32_t g;
    uint32_t needs = p.want_old ? LD_ROLE_READ_DOCUMENT : 0;
    if (!authorize(c, needs, LD_ROLE_WRITE_DOCUMENT | LD_ROLE_UPDATE_DOCUMENT, "cache.write", &db,
                   &g))
        return;
    bool may_create = g & LD_ROLE_WRITE_DOCUMENT, may_update = g & LD_ROLE_UPDATE_DOCUMENT;
    if (p.at && db && p.expires_at_ms > ld_cache_now_ms(db) + LD_TTL_MAX_MS) {
        reply_error(c, TTL_TOO_LONG);
    } else if (!may_create && !may_update) {
        deny_role(c, LD_ROLE_WRITE_DOCUMENT);
    } else if (ensure_db(c, &db)) {
        if (p.at && p.expires_at_ms > ld_cache_now_ms(db) + LD_TTL_MAX_MS) {
            reply_error(c, TTL_TOO_LONG);
        } else {
            wgroup *grp = group_new(c, W_SET, 1);
            char *value = NULL;
            size_t value_len = 0;
            if (!grp)
                reply_error(c, "ERR out of memory");
            else
                value = value_json(c, v[2], l[2], &value_len);
            if (value) {
                grp->one[0].put = p;
                grp->one[0].put.value = value;
                grp->one[0].put.value_len = value_len;
                group_submit(c, grp, db, &v[1], &l[1], may_create, may_update);
                return;
            }
            if (grp) group_free(grp);
        }
    }
    if (db) ld_registry_release(&c->node->reg, db);
}

static void cmd_mset(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    if (argc % 2 == 0) {
        reply_arity(c, "mset");
        return;
    }
    size_t n = (argc - 1) / 2;
    for (size_t i = 0; i < n; i++)
        if (!check_key(c, v[1 + 2 * i], l[1 + 2 * i])) return;
    ld_db *db;
    uint32_t g;
    if (!authorize(c, 0, LD_ROLE_WRITE_DOCUMENT | LD_ROLE_UPDATE_DOCUMENT, "cache.write", &db, &g))
        return;
    bool may_create = g & LD_ROLE_WRITE_DOCUMENT, may_update = g & LD_ROLE_UPDATE_DOCUMENT;
    if (!may_create && !may_update) {
        deny_role(c, LD_ROLE_WRITE_DOCUMENT);
    } else if (ensure_db(c, &db)) {
        wgroup *grp = group_new(c, W_MSET, n);
        const char **keys = calloc(n, sizeof *keys);
        size_t *klens = calloc(n, sizeof *klens);
        bool ok = grp && keys && klens;
        if (!ok) reply_error(c, "ERR out of memory");
        for (size_t i = 0; ok && i < n; i++) {
            ld_cache_put *p = &grp->one[i].put;
            p->ttl_ms = LD_TTL_DEFAULT_MS;
            keys[i] = v[1 + 2 * i];
            klens[i] = l[1 + 2 * i];
            ok = (p->value = value_json(c, v[2 + 2 * i], l[2 + 2 * i], &p->value_len)) != NULL;
        }
        if (ok) {
            group_submit(c, grp, db, keys, klens, may_create, may_update);
            db = NULL;
            grp = NULL;
        }
        if (grp) group_free(grp);
        free(keys);
        free(klens);
    }
    if (db) ld_registry_release(&c->node->reg, db);
}

static void cmd_del(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    ld_db *db;
    uint32_t g;
    if (!authorize(c, LD_ROLE_DELETE_DOCUMENT, 0, "cache.delete", &db, &g)) return;
    /* Only valid keys can exist; a database that does not exist has none. */
    const char **keys = calloc(argc, sizeof *keys);
    size_t *klens = calloc(argc, sizeof *klens);
    size_t n = 0;
    for (size_t i = 1; keys && klens && i < argc; i++) {
        if (key_problem(v[i], l[i])) continue;
        keys[n] = v[i];
        klens[n++] = l[i];
    }
    struct evbuffer *o;
    if (!keys || !klens) {
        reply_error(c, "ERR out of memory");
    } else if (n == 0 || !db) {
        if ((o = out(c))) ld_resp_int(o, 0);
    } else {
        wgroup *grp = group_new(c, W_DEL, n);
        if (grp) {
            group_submit(c, grp, db, keys, klens, false, false);
            db = NULL;
        } else {
            reply_error(c, "ERR out of memory");
        }
    }
    free(keys);
    free(klens);
    if (db) ld_registry_release(&c->node->reg, db);
}

/* EXPIRE / PEXPIRE key n [NX|XX|GT|LT]: a new expiry for a live key, its value kept; n <= 0
 * leaves it expired (hidden), as Redis deletes it. */
static void expire_cmd(ld_resp_conn *c, size_t argc, const char **v, const size_t *l, bool ms,
                       const char *name)
{
    long long n;
    if (!arg_ll(v[2], l[2], &n)) {
        reply_error(c, NOT_INT);
        return;
    }
    bool nx = false, xx = false, gt = false, lt = false;
    for (size_t i = 3; i < argc; i++) {
        if (is(v[i], l[i], "nx"))
            nx = true;
        else if (is(v[i], l[i], "xx"))
            xx = true;
        else if (is(v[i], l[i], "gt"))
            gt = true;
        else if (is(v[i], l[i], "lt"))
            lt = true;
        else {
            struct evbuffer *o = out(c);
            if (o) ld_resp_error(o, "ERR Unsupported option %.*s", (int)l[i], v[i]);
            return;
        }
    }
    if (nx && (xx || gt || lt)) {
        reply_error(c, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if (gt && lt) {
        reply_error(c, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    if (!ms && (n > 9223372036854775807LL / 1000 || n < -9223372036854775807LL / 1000)) {
        struct evbuffer *o = out(c);
        if (o) ld_resp_error(o, "ERR invalid expire time in '%s' command", name);
        return;
    }
    long long ttl = ms ? n : n * 1000;
    if (ttl > (long long)LD_TTL_MAX_MS) {
        reply_error(c, TTL_TOO_LONG);
        return;
    }
    ld_db *db;
    uint32_t g;
    if (!authorize(c, LD_ROLE_UPDATE_DOCUMENT, 0, "cache.write", &db, &g)) return;
    struct evbuffer *o;
    /* NX: only a key without an expiry, and every cache key has one. */
    if (nx || !db || key_problem(v[1], l[1])) {
        if ((o = out(c))) ld_resp_int(o, 0);
    } else {
        wgroup *grp = group_new(c, W_EXPIRE, 1);
        if (grp) {
            ld_cache_put *p = &grp->one[0].put;
            p->cond = LD_CACHE_IF_LIVE;
            p->keep_value = true;
            p->expire_cmp = gt ? 1 : lt ? -1 : 0;
            if (ttl > 0) {
                p->ttl_ms = (uint64_t)ttl;
            } else {
                p->at = true;
                p->expires_at_ms = 1; /* long past: the key reads as expired everywhere */
            }
            group_submit(c, grp, db, &v[1], &l[1], false, true);
            db = NULL;
        } else {
            reply_error(c, "ERR out of memory");
        }
    }
    if (db) ld_registry_release(&c->node->reg, db);
}

static void cmd_expire(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    expire_cmd(c, argc, v, l, false, "expire");
}

static void cmd_pexpire(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    expire_cmd(c, argc, v, l, true, "pexpire");
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------------------------- */

bool ld_resp_may_start(const ld_resp_conn *c, const char *name, size_t len)
{
    if (c->busy == 0) return true;
    if (c->delayed) return false;
    const cmddef *d = lookup(name, len);
    return d && (d->flags & F_WRITE) && c->authed;
}

void ld_resp_run(ld_resp_conn *c, size_t argc, const char **v, const size_t *l)
{
    ld_counter_add(&c->node->stats.resp_commands, 1);
    const cmddef *d = lookup(v[0], l[0]);
    if (!d) {
        char args[160] = "";
        size_t w = 0;
        for (size_t i = 1; i < argc && w < 128; i++) {
            int n = snprintf(args + w, sizeof args - w, "'%.*s' ",
                             (int)(l[i] < 128 - w ? l[i] : 128 - w), v[i]);
            if (n < 0) break;
            w += (size_t)n < sizeof args - w ? (size_t)n : sizeof args - w - 1;
        }
        struct evbuffer *o = out(c);
        if (o)
            ld_resp_error(o, "ERR unknown command '%.*s', with args beginning with: %s",
                          (int)(l[0] < 128 ? l[0] : 128), v[0], args);
        return;
    }
    if ((d->arity > 0 && argc != (size_t)d->arity) || (d->arity < 0 && argc < (size_t)-d->arity)) {
        reply_arity(c, d->name);
        return;
    }
    if (!c->authed && !(d->flags & F_NOAUTH)) {
        reply_error(c, "NOAUTH Authentication required.");
        return;
    }
    d->fn(c, argc, v, l);
}
