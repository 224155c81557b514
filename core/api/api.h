/* The HTTP API handlers, one file per resource: node.c (health, node), databases.c,
 * documents.c, query.c, cache.c, replication.c, dashboard.c, webhook.c. Each answers exactly once
 * through ld_reply_* (http/request.h). */
#ifndef LD_API_H
#define LD_API_H

#include "../http/request.h"

void ld_api_root(ld_req *r);   /* GET /: to the node dashboard (studio.c) */
void ld_api_studio(ld_req *r); /* GET /studio/...: the Studio's files (studio.c) */

void ld_api_health(ld_req *r);
void ld_api_node(ld_req *r);
void ld_api_livez(ld_req *r);   /* health.c */
void ld_api_readyz(ld_req *r);  /* health.c */
void ld_api_metrics(ld_req *r); /* metrics.c */

void ld_api_databases_list(ld_req *r);
void ld_api_databases_delete(ld_req *r);

void ld_api_collections_list(ld_req *r);
void ld_api_collection_register(ld_req *r);
void ld_api_docs_list(ld_req *r);
void ld_api_docs_post(ld_req *r);
void ld_api_doc_get(ld_req *r);
void ld_api_doc_put(ld_req *r);
void ld_api_doc_delete(ld_req *r);

void ld_api_repl_push(ld_req *r);
void ld_api_repl_snapshot(ld_req *r);
void ld_api_repl_prune(ld_req *r);
void ld_api_repl_pull(ld_req *r);
void ld_api_repl_conflicts(ld_req *r);
void ld_api_repl_status(ld_req *r);
void ld_api_repl_databases(ld_req *r);
void ld_api_repl_announce(ld_req *r);
void ld_api_cluster_leave(ld_req *r);
void ld_api_repl_ws(ld_req *r);
void ld_api_peers_list(ld_req *r);
void ld_api_peers_upsert(ld_req *r);
void ld_api_peers_delete(ld_req *r);

void ld_api_query(ld_req *r);
void ld_api_indexes_list(ld_req *r); /* GET /api/indexes (indexes.c) */

void ld_api_changes(ld_req *r);    /* GET /api/changes (changes.c) */
void ld_api_changes_ws(ld_req *r); /* GET /ws/changes */

void ld_api_cache_list(ld_req *r);
void ld_api_cache_get(ld_req *r);
void ld_api_cache_put(ld_req *r);
void ld_api_cache_delete(ld_req *r);

void ld_api_dashboard_overview(ld_req *r);

void ld_api_webhook_ready(ld_req *r);
void ld_api_webhook(ld_req *r);

#endif
