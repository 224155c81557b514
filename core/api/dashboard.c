/* GET /dashboard/api/overview: the node, its peers as the probes see them (repl/probe.c), and
 * each database with its files and replication state. Needs a valid ApiKey (databases limited
 * to those it may access) or the ReplicationApiKey: peer addresses and paths are not public. */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../db/registry.h"
#include "../http/conns.h"
#include "../repl/repl.h"
#include "../util/jsonget.h"
#include "../util/timeutil.h"
#include "api.h"
#include "context.h"

static uint64_t mtime_ms(const struct stat *sb)
{
    return (uint64_t)sb->st_mtim.tv_sec * 1000u + (uint64_t)sb->st_mtim.tv_nsec / 1000000u;
}

/* The newest modification among a directory's files (an engine's directory changes its own
 * mtime only when files come and go). */
static uint64_t dir_last_write(const char *dir, uint64_t dflt)
{
    DIR *d = opendir(dir);
    if (!d) return dflt;
    uint64_t best = dflt;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4096];
        struct stat sb;
        if (e->d_name[0] == '.') continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && mtime_ms(&sb) > best) best = mtime_ms(&sb);
    }
    closedir(d);
    return best;
}

/* {Path, Exists, SizeBytes, LastWriteUtc} of a database, Path and LastWriteUtc null when the
 * storage plugin cannot tell where it keeps it. */
static json_t *file_json(ld_node *n, const char *name)
{
    char path[4096];
    bool have_path = false, exists = false;
    uint64_t size = 0, last = 0;
    ld_db *db = ld_registry_get(&n->reg, name);
    if (db) {
        have_path = ld_store_location(&n->store, db->st, path, sizeof path);
        size = ld_store_size(&n->store, db->st);
        ld_registry_release(&n->reg, db);
    }
    struct stat sb;
    if (have_path && stat(path, &sb) == 0) {
        exists = true;
        last = S_ISDIR(sb.st_mode) ? dir_last_write(path, 0) : mtime_ms(&sb);
    }
    char when[LD_ISO_TIME_LEN];
    ld_iso_time(last, when);
    return json_pack("{s:s?, s:b, s:I, s:s?}", "Path", have_path ? path : NULL, "Exists", exists,
                     "SizeBytes", (json_int_t)size, "LastWriteUtc", last ? when : NULL);
}

/* One overview entry from a database of the replication status (ld_repl_status): the
 * contract's fields, plus the op-log length, VV, digest and the purge's figures; ReplicationPeers
 * carry every field of the status route (checkpoints, ops behind, last error, next retry). */
static json_t *database_json(ld_node *n, json_t *st)
{
    const char *name = json_string_value(json_object_get(st, "DatabaseName"));
    json_t *peers = json_object_get(st, "Peers");
    json_t *o =
        json_pack("{s:s, s:O?, s:O?, s:o, s:I, s:O?, s:O?, s:O?, s:O?, s:O?}", "Name", name,
                  "Status", json_object_get(st, "Status"), "Error", json_object_get(st, "Error"),
                  "DatabaseFile", file_json(n, name), "PeerCount",
                  (json_int_t)json_array_size(peers), "TotalEstimatedPendingPushOperations",
                  json_object_get(st, "TotalEstimatedPendingPushOperations"), "LocalMaxLogSequence",
                  json_object_get(st, "LocalMaxLogSequence"), "VersionVector",
                  json_object_get(st, "VersionVector"), "Digest", json_object_get(st, "Digest"),
                  "ReplicationPeers", peers);
    /* The storage bound (docs/replication.md, "Purging tombstones"), as the status has it. */
    static const char *const bound[] = {
        "OperationLogEntries", "OperationLogBytes", "Tombstones", "PurgeFloor",
        "RefusedBelowFloor",   "ConflictRecords",   "LastPrune"};
    for (size_t i = 0; o && i < sizeof bound / sizeof *bound; i++) {
        json_t *v = json_object_get(st, bound[i]);
        if (v && json_object_set(o, bound[i], v)) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

/* The caller's reach, decided by one question: every database for the cluster key, else the
 * databases of the node the ApiKey may use (sorted names with their access bytes). */
typedef struct reach {
    bool all;
    char **names;
    size_t n;
    uint8_t *access;
} reach;

static void reach_free(reach *w)
{
    ld_registry_names_free(w->names, w->n);
    free(w->access);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool reaches(const reach *w, const char *name)
{
    if (w->all) return true;
    if (!name) return false;
    char *const *hit = bsearch(&name, w->names, w->n, sizeof *w->names, by_name);
    return hit && w->access[hit - w->names];
}

/* Replies and returns false on refusal. */
static bool authenticate(ld_req *r, reach *w)
{
    memset(w, 0, sizeof *w);
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    const char *rk = evhttp_find_header(h, "ReplicationApiKey");
    /* The same (trimmed) comparison as ld_api_cluster_auth below: a key that only that one
     * accepted left the request without an answer. */
    if (ld_api_has_cluster_key(r)) return (w->all = true);
    if (evhttp_find_header(h, "ApiKey") || !rk) {
        w->names = ld_registry_names(&r->node->reg, &w->n);
        w->access = w->names ? calloc(w->n ? w->n : 1, 1) : NULL;
        if (!w->access) {
            reach_free(w);
            ld_reply_error(r, 500, "Out of memory.");
            return false;
        }
        if (ld_api_authorize_list(r, "node.overview", w->names, w->n, w->access)) return true;
        reach_free(w);
        return false;
    }
    ld_api_cluster_auth(r); /* refuses (after the failure delay) */
    return false;
}

void ld_api_dashboard_overview(ld_req *r)
{
    reach w;
    if (!authenticate(r, &w)) return;
    ld_node *n = r->node;
    json_t *status = ld_repl_status(n->repl);
    json_t *dbs = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(status, "Databases"), i, e)
    {
        const char *name = json_string_value(json_object_get(e, "DatabaseName"));
        if (!reaches(&w, name)) continue;
        if (!dbs || json_array_append_new(dbs, database_json(n, e)) != 0) break;
    }
    reach_free(&w);
    char now[LD_ISO_TIME_LEN], started[LD_ISO_TIME_LEN];
    uint64_t wall = ld_wall_ms();
    ld_iso_time(wall, now);
    ld_iso_time(n->started_ms, started);
    json_t *out = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:O?, s:o?, s:o?, s:o?, s:{s:I, s:i}, s:i}", "NodeId",
        n->node_id, "TimestampUtc", now, "DataRootPath", n->data_dir, "NodeDataPath", n->db_dir,
        "StartedUtc", started, "UptimeSeconds", (json_int_t)((wall - n->started_ms) / 1000u),
        "DivergenceCount", json_object_get(status, "DivergenceCount"), "Nodes",
        ld_repl_overview_nodes(n->repl), "PeerConnections", ld_repl_overview_connections(n->repl),
        "Databases", dbs, "ClientConnections", "Open", (json_int_t)ld_conns_open(n->conns), "Max",
        ld_conns_max(n->conns), "RequestsInFlight", n->inflight);
    json_decref(status);
    if (!out || !json_is_array(json_object_get(out, "Nodes")) ||
        !json_is_array(json_object_get(out, "PeerConnections")) ||
        !json_is_array(json_object_get(out, "Databases"))) {
        json_decref(out);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    ld_reply_json(r, 200, out);
}
