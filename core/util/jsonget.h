/* Reading request JSON the way the contract's wire conventions say: member names matched
 * case-insensitively (the last one wins when repeated), numbers also accepted as strings. */
#ifndef LD_JSONGET_H
#define LD_JSONGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The member `name` of obj, any case; NULL when absent or obj is not an object. */
json_t *ld_json_get_ci(json_t *obj, const char *name);

/* ld_json_get_ci for n (at most LD_JSON_CI_MAX) names in one pass over obj's members:
 * out[i] is the member names[i], any case, the last one when repeated; NULL when absent. */
#define LD_JSON_CI_MAX 32
void ld_json_get_ci_all(json_t *obj, const char *const *names, size_t n, json_t **out);

/* A non-negative integer given as a JSON integer or a decimal string. False otherwise. */
bool ld_json_as_u64(json_t *v, uint64_t *out);

#endif
