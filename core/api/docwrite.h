/* Document writes shared by the routes that make them (documents.c, webhook.c): the contract's
 * Id rule on bodies, and jobs queued to the database's writer. */
#ifndef LD_DOCWRITE_H
#define LD_DOCWRITE_H

#include <jansson.h>

#include "../db/writer.h"
#include "../http/request.h"

/* Applies the Id rule to an object body for `id`: kept byte for byte when its only id field is
 * an "Id" string equal to id and it has no "_id"/"_sys_*" field; otherwise those fields are
 * dropped and "Id" is put first. Returns the text to store (malloc'd), or NULL having replied. */
char *ld_doc_normalize(ld_req *r, json_t *obj, const char *text, size_t len, const char *id,
                       size_t *out_len);

/* The same rule without a request, for code off the loop (query writes in the writer's
 * transaction): NULL when memory runs out. */
char *ld_doc_normalize_text(json_t *obj, const char *text, size_t len, const char *id,
                            size_t *out_len);

/* A job for coll/id (id NULL for REGISTER) whose completion calls done on the loop with
 * job->arg == r. Replies 500 and returns NULL when out of memory. */
ld_wjob *ld_doc_job(ld_req *r, ld_wkind kind, const char *coll, const char *id,
                    void (*done)(ld_wjob *job));

/* Queues the job to r->db's writer (r->db must be open) and counts it as in flight. */
void ld_doc_submit(ld_req *r, ld_wjob *job);

#endif
