/* Index DDL over POST /api/query (indexes.c): the query route hands CREATE INDEX and DROP INDEX
 * statements here once it has checked the key's role and the collection name. */
#ifndef LD_API_INDEXES_H
#define LD_API_INDEXES_H

#include <jansson.h>

#include "../http/request.h"
#include "../query/parser.h"

/* Runs CREATE INDEX or DROP INDEX stmt (taken over) for r and answers in the query answer's
 * shape; query is the statement text as sent (echoed), take the request's Take. */
void ld_api_query_ddl(ld_req *r, ld_ql_stmt *stmt, json_t *query, long long take);

#endif
