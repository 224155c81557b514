/* The changes feed's subscriptions: the hub a commit wakes (any writer thread) and that wakes,
 * on the loop, the longpoll, continuous and WebSocket subscribers of that database. The routes
 * themselves are ld_api_changes and ld_api_changes_ws (api.h). */
#ifndef LD_API_CHANGES_H
#define LD_API_CHANGES_H

struct ld_node;
struct ld_db;

typedef struct ld_changes_hub ld_changes_hub;

/* NULL when memory or the wake event cannot be had. */
ld_changes_hub *ld_changes_hub_new(struct ld_node *n);

/* A commit appended to db's log (called on its writer thread): wakes its subscribers on the
 * loop. Cheap when nobody is subscribed. */
void ld_changes_committed(ld_changes_hub *h, struct ld_db *db);

/* Shutdown has begun: every waiting longpoll is answered, every continuous feed ended, every
 * WebSocket subscriber closed (1001), and no new subscriber waits. Loop thread. */
void ld_changes_stop(ld_changes_hub *h);

/* Releases the subscribers still held without sending anything (the loop has stopped; call
 * before evhttp_free, after the worker pool and the WebSocket server were freed). */
void ld_changes_drop_all(ld_changes_hub *h);

/* Frees the hub (after every writer thread stopped). NULL is ignored. */
void ld_changes_hub_free(ld_changes_hub *h);

#endif
