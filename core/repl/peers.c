/* Peer list files (see peers.h). */
#include "peers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/http.h>

#include "../http/tls.h"
#include "../util/jsonget.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"

void ld_peer_list_free(ld_peer_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].base_url);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

char *ld_peer_url_normalize(const char *url, char *err, size_t errlen)
{
    struct evhttp_uri *u = url ? evhttp_uri_parse(url) : NULL;
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    char *out = NULL;
    if (!u || !scheme || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) ||
        !host || !*host || evhttp_uri_get_query(u) || evhttp_uri_get_fragment(u) ||
        evhttp_uri_get_userinfo(u)) {
        ld_set_err(err, errlen,
                   "BaseUrl must be an http:// or https:// URL such as "
                   "http://10.0.0.2:1446");
        goto out;
    }
    size_t n = strlen(url);
    out = malloc(n + 1);
    if (!out) {
        ld_set_err(err, errlen, "out of memory");
        goto out;
    }
    memcpy(out, url, n + 1);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
out:
    if (u) evhttp_uri_free(u);
    return out;
}

const ld_peer *ld_peer_list_find(const ld_peer_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].id, id) == 0) return &l->v[i];
    return NULL;
}

bool ld_peer_list_upsert(ld_peer_list *l, const char *id, const char *base_url, bool active,
                         uint64_t now_ms)
{
    return ld_peer_list_upsert_from(l, id, base_url, active, now_ms, NULL);
}

bool ld_peer_list_upsert_from(ld_peer_list *l, const char *id, const char *base_url, bool active,
                              uint64_t now_ms, const char *learned)
{
    char *url = strdup(base_url);
    if (!url) return false;
    ld_peer *p = (ld_peer *)ld_peer_list_find(l, id);
    if (!p) {
        ld_peer *v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v) {
            free(url);
            return false;
        }
        l->v = v;
        p = &l->v[l->n++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", id);
        snprintf(p->learned, sizeof p->learned, "api");
    }
    if (learned) snprintf(p->learned, sizeof p->learned, "%s", learned);
    free(p->base_url);
    p->base_url = url;
    p->active = active;
    p->updated_ms = now_ms;
    return true;
}

bool ld_peer_list_remove(ld_peer_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].id, id) != 0) continue;
        free(l->v[i].base_url);
        memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
        l->n--;
        return true;
    }
    return false;
}

json_t *ld_peer_list_json(const ld_peer_list *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        char when[LD_ISO_TIME_LEN];
        ld_iso_time(l->v[i].updated_ms, when);
        if (json_array_append_new(a,
                                  json_pack("{s:s, s:s, s:b, s:s, s:s}", "NodeId", l->v[i].id,
                                            "BaseUrl", l->v[i].base_url, "IsActive", l->v[i].active,
                                            "UpdatedUtc", when, "LearnedFrom", l->v[i].learned))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

bool ld_peer_list_load(const char *path, ld_peer_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (access(path, F_OK) != 0 && errno == ENOENT) return true;
        ld_set_err(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
        return false;
    }
    bool ok = json_is_array(root);
    size_t i;
    json_t *e;
    json_array_foreach(root, i, e)
    {
        if (!ok) break;
        const char *id = json_string_value(json_object_get(e, "NodeId"));
        const char *url = json_string_value(json_object_get(e, "BaseUrl"));
        json_t *act = json_object_get(e, "IsActive");
        const char *learned = json_string_value(json_object_get(e, "LearnedFrom"));
        uint64_t upd = 0;
        ld_json_as_u64(json_object_get(e, "UpdatedMs"), &upd);
        /* Files written before LearnedFrom existed hold peers given by config or the API. */
        if (learned && strcmp(learned, "config") != 0 && strcmp(learned, "api") != 0 &&
            strcmp(learned, "announce") != 0)
            learned = NULL;
        ok = id && ld_node_id_valid(id) && url &&
             ld_peer_list_upsert_from(out, id, url, !json_is_false(act), upd, learned);
    }
    json_decref(root);
    if (!ok) {
        ld_peer_list_free(out);
        ld_set_err(err, errlen, "%s: not a valid peer list", path);
    }
    return ok;
}

bool ld_peer_list_save(const char *path, const ld_peer_list *l, char *err, size_t errlen)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++)
        if (json_array_append_new(
                a, json_pack("{s:s, s:s, s:b, s:I, s:s}", "NodeId", l->v[i].id, "BaseUrl",
                             l->v[i].base_url, "IsActive", l->v[i].active, "UpdatedMs",
                             (json_int_t)l->v[i].updated_ms, "LearnedFrom", l->v[i].learned))) {
            json_decref(a);
            a = NULL;
        }
    char *text = a ? json_dumps(a, JSON_INDENT(2)) : NULL;
    json_decref(a);
    if (!text) {
        ld_set_err(err, errlen, "out of memory");
        return false;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    bool ok = false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t w = write(fd, text + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
        ok = off == len && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        ok = ok && rename(tmp, path) == 0;
        if (!ok) unlink(tmp);
    }
    if (!ok) ld_set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
    free(text);
    return ok;
}

bool ld_peer_addr_parse(const char *url, ld_peer_addr *out)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) return false;
    const char *host = evhttp_uri_get_host(u), *path = evhttp_uri_get_path(u);
    int port = evhttp_uri_get_port(u);
    snprintf(out->host, sizeof out->host, "%s", host ? host : "");
    snprintf(out->prefix, sizeof out->prefix, "%s", path ? path : "");
    size_t pl = strlen(out->prefix);
    while (pl > 0 && out->prefix[pl - 1] == '/')
        out->prefix[--pl] = '\0';
    out->tls = ld_tls_url_is_tls(url);
    out->port = port > 0 ? port : out->tls ? 443 : 80;
    evhttp_uri_free(u);
    return true;
}
