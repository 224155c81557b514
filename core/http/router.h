/* Routing: the table of every HTTP route litedistd serves, matched by method and path segments;
 * unknown paths get 404 and known paths with the wrong method 405, both as JSON. */
#ifndef LD_ROUTER_H
#define LD_ROUTER_H

#include <event2/http.h>

#include "../node.h"

/* The evhttp generic callback: builds the request context and dispatches. arg is the node. */
void ld_router_handle(struct evhttp_request *ev, void *arg);

/* The route table for the metrics: how many routes, and route i's template ("/api/documents/
 * {collection}") and method; i == ld_router_count() is "unmatched" with method "". */
size_t ld_router_count(void);
const char *ld_router_template(size_t i, const char **method);

#endif
