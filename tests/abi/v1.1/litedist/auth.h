/* litedist auth ABI: an ordered chain of API-key deciders. Each plugin answers ALLOW, DENY or
 * UNKNOWN ("not my key: ask the next one"); the first ALLOW or DENY ends the chain. */
#ifndef LITEDIST_AUTH_H
#define LITEDIST_AUTH_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Roles. A request needs a set of role bits; a plugin grants only when every required bit is
 * one of the key's roles, so a bit added by a later ABI minor is denied by plugins that do not
 * know it. Values are stable forever.
 * ------------------------------------------------------------------------------------------- */
#define LD_ROLE_ADD_DB          (1u << 0) /* create a database that does not exist yet */
#define LD_ROLE_DELETE_DB       (1u << 1) /* delete a database */
#define LD_ROLE_READ_DOCUMENT   (1u << 2) /* read documents and cache keys, run SELECT */
#define LD_ROLE_WRITE_DOCUMENT  (1u << 3) /* create documents and cache keys, run INSERT */
#define LD_ROLE_UPDATE_DOCUMENT (1u << 4) /* replace or merge existing documents, run UPDATE */
#define LD_ROLE_DELETE_DOCUMENT (1u << 5) /* delete documents and cache keys, run DELETE */
#define LD_ROLE_ALL             0x3fu

/* Decisions */
#define LD_AUTH_ALLOW   1 /* the key is this plugin's and has access and every required role */
#define LD_AUTH_DENY    2 /* the key is this plugin's but lacks access or a role: 403, chain ends */
#define LD_AUTH_UNKNOWN 3 /* not this plugin's key: the host asks the next one; 401 at the end */

/* ---------------------------------------------------------------------------------------------
 * ld_auth_request: one question. Filled and owned by the host; every pointer is borrowed for the
 * duration of the authorize() call only.
 * ------------------------------------------------------------------------------------------- */
typedef struct ld_auth_request {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    uint32_t roles; /* LD_ROLE_* bits required; 0 asks only "may this key use `database`?" */

    /* The ApiKey header, trimmed, as bytes (not NUL-terminated; may contain any byte). Compare
     * it in constant time (sodium_memcmp or a hash comparison), never with strcmp. */
    const char *api_key;
    size_t api_key_len;

    /* The logical database, already trimmed, lowercased and validated, NUL-terminated. NULL
     * when the request names no database: then ALLOW means "a known key holding `roles` on at
     * least one database" (used by node-wide routes such as GET /api/databases). */
    const char *database;

    /* The client's address as text ("127.0.0.1", "::1"), NUL-terminated. Since ABI 1.0. */
    const char *client_addr;
} ld_auth_request;

typedef struct ld_auth_v1 {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    uint32_t reserved0;

    /* create: builds the plugin's state from host->config_json (the whole `Auth` section; a
     * plugin conventionally reads its own settings from the member named after it).
     *   out   receives the instance; owned by the plugin until destroy().
     * Returns LD_OK, LD_INVALID (bad config: log which key and why; the server will not start),
     * LD_NOMEM, LD_IO. Main thread, once. Since ABI 1.0. Required. */
    ld_status (*create)(const ld_host *host, void **out);

    /* authorize: decides one request.
     *   decision  receives LD_AUTH_ALLOW, LD_AUTH_DENY or LD_AUTH_UNKNOWN.
     * Returns LD_OK when *decision is set. Any other status fails the request closed with 503;
     * the host never asks a later plugin after an error. Must not block for long: it runs on
     * the network thread. Called concurrently from any thread: keep state read-only after
     * create or lock it. Never log the key. Since ABI 1.0. Required. */
    ld_status (*authorize)(void *inst, const ld_auth_request *req, int32_t *decision);

    /* destroy: frees the instance. Main thread, after every authorize() has returned.
     * Since ABI 1.0. Required. */
    void (*destroy)(void *inst);
} ld_auth_v1;

#ifdef __cplusplus
}
#endif

#endif /* LITEDIST_AUTH_H */
