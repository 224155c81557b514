/* auth-probe: a test plugin of ABI 1.2 that shows what the host hands it. create writes its
 * host table's plugin_name, settings_json and config_json to the file named by its own setting
 * "Dump"; decide counts its calls (also in that file, one line "decide <action>" per call) and
 * knows one key, "probe", with READ_DOCUMENT and WRITE_DOCUMENT on every database but "closed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <litedist/auth.h>

typedef struct probe {
    FILE *dump; /* appended to by decide, from any thread: one fputs per line */
} probe;

static ld_status probe_create(const ld_host *host, void **out)
{
    if (!LD_HOST_HAS(host, settings_json)) return LD_INVALID;
    json_t *settings = json_loads(host->settings_json, 0, NULL);
    const char *path = json_string_value(json_object_get(settings, "Dump"));
    if (!path) {
        host->log(host, LD_LOG_ERROR, "Auth.%s.Dump: a file name is required", host->plugin_name);
        json_decref(settings);
        return LD_INVALID;
    }
    probe *p = calloc(1, sizeof *p);
    if (p) p->dump = fopen(path, "w");
    json_decref(settings);
    if (!p || !p->dump) {
        free(p);
        return LD_IO;
    }
    fprintf(p->dump, "name %s\nsettings %s\nconfig %s\n", host->plugin_name, host->settings_json,
            host->config_json);
    fflush(p->dump);
    *out = p;
    return LD_OK;
}

static int is_probe_key(const char *key, size_t len)
{
    return len == 5 && memcmp(key, "probe", 5) == 0;
}

static ld_status probe_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    (void)inst;
    *decision = !is_probe_key(req->api_key, req->api_key_len)                      ? LD_AUTH_UNKNOWN
                : (req->roles & ~(LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT)) ? LD_AUTH_DENY
                                                                                   : LD_AUTH_ALLOW;
    return LD_OK;
}

static ld_status probe_decide(void *inst, const ld_auth_query *q, ld_auth_answer *a)
{
    probe *p = inst;
    char line[160];
    snprintf(line, sizeof line, "decide %s %s needs=%u may=%u exists=%d\n", q->action,
             q->database ? q->database : "-", q->needs, q->may_need, q->db_exists);
    fputs(line, p->dump);
    fflush(p->dump);
    if (!is_probe_key(q->api_key, q->api_key_len)) return LD_OK; /* UNKNOWN */
    if (q->database && !strcmp(q->database, "closed")) {
        a->decision = LD_AUTH_DENY;
        return LD_OK;
    }
    a->decision = LD_AUTH_ALLOW;
    a->granted = LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT;
    for (uint32_t i = 0; a->access && i < q->n_databases; i++)
        a->access[i] = strcmp(q->databases[i], "closed") != 0;
    return LD_OK;
}

static void probe_destroy(void *inst)
{
    probe *p = inst;
    fclose(p->dump);
    free(p);
}

static const ld_auth_v1 probe_ops = {
    LD_ABI_HEADER_INIT(ld_auth_v1),      .create = probe_create,
    .authorize = probe_authorize,        .destroy = probe_destroy,
    .wants = LD_AUTH_WANT_ROOT_KEY_HASH, .decide = probe_decide,
};

static const ld_plugin_descriptor probe_descriptor = {LD_ABI_HEADER_INIT(ld_plugin_descriptor),
                                                      LD_PLUGIN_KIND_AUTH, "auth-probe", "1.2.0",
                                                      &probe_ops};

static const ld_plugin_descriptor *probe_entry(const ld_host *host)
{
    return host->abi_major == LD_ABI_MAJOR ? &probe_descriptor : NULL;
}

LD_PLUGIN_ENTRY(probe_entry)
