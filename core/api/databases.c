/* Logical databases: GET /api/databases (those the key can reach) and
 * DELETE /api/databases/{name} (DELETE_DB; removes the database's files). */
#include "api.h"

#include <stdlib.h>

#include <litedist/auth.h>

#include "../db/names.h"
#include "context.h"

void ld_api_databases_list(ld_req *r)
{
    size_t n;
    char **names = ld_registry_names(&r->node->reg, &n);
    uint8_t *access = names ? calloc(n ? n : 1, 1) : NULL;
    json_t *arr = access ? json_array() : NULL;
    if (!arr) {
        ld_registry_names_free(names, n);
        free(access);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    /* One question for the whole list: the key's plugin answers which names it may use. */
    if (ld_api_authorize_list(r, "databases.list", names, n, access)) {
        for (size_t i = 0; i < n; i++) /* names come sorted from the registry */
            if (access[i]) json_array_append_new(arr, json_string(names[i]));
        ld_reply_json(r, 200, arr);
    } else {
        json_decref(arr);
    }
    ld_registry_names_free(names, n);
    free(access);
}

void ld_api_databases_delete(ld_req *r)
{
    char name[LD_DB_NAME_MAX + 1];
    if (!ld_req_seg_is_text(r, 2) || !ld_db_name_normalize(r->segs[2], name)) {
        ld_reply_error(r, 400,
                       "Database name contains invalid characters. Use lowercase "
                       "letters, numbers, '-' or '_' only.");
        return;
    }
    if (!ld_api_authorize(r, name, LD_NEED("databases.delete", LD_ROLE_DELETE_DB, 0))) return;
    ld_status st = ld_registry_drop(&r->node->reg, name);
    if (st == LD_NOT_FOUND) {
        ld_reply_error(r, 404, "Database '%s' does not exist.", name);
        return;
    }
    if (st != LD_OK) {
        ld_reply_error(r, 500, "Database '%s' could not be deleted: %s.", name, ld_status_str(st));
        return;
    }
    ld_reply_json(r, 200, json_pack("{s:s, s:b}", "Name", name, "Deleted", 1));
}
