/* The Studio in the browser: GET / sends a visitor to the node dashboard, GET /studio/... serves
 * the Studio's static files (http/static.h), and start-up finds those files. */
#include "studio.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "../http/static.h"
#include "../plugins/loader.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"

#ifndef LD_STUDIO_INSTALL_DIR
#define LD_STUDIO_INSTALL_DIR "/usr/local/share/litedist/studio"
#endif
/* The Studio relative to the directory of litedistd: the build tree and any install prefix. */
#ifndef LD_STUDIO_REL_DIR
#define LD_STUDIO_REL_DIR "../share/litedist/studio"
#endif

/* Where the contract's "GET / serves the node dashboard page" lands. A redirect rather than the
 * page itself: the Studio's files are referenced relative to /studio/. */
#define DASHBOARD_URL "/studio/#/dashboard"

bool ld_studio_init(ld_node *n, char *err, size_t errlen)
{
    const char *configured = n->cfg.studio_root;
    if (configured && configured[0]) {
        n->studio = ld_static_new(configured, err, errlen);
        if (!n->studio) {
            char why[PATH_MAX + 200];
            snprintf(why, sizeof why, "%s", err);
            ld_set_err(err, errlen, "Studio.Root: %s", why);
            return false;
        }
    } else {
        char beside[PATH_MAX] = "";
        char *exe = ld_exe_dir();
        if (exe) snprintf(beside, sizeof beside, "%s/%s", exe, LD_STUDIO_REL_DIR);
        free(exe);
        const char *places[] = {beside, LD_STUDIO_INSTALL_DIR};
        for (size_t i = 0; i < 2 && !n->studio; i++) {
            char why[PATH_MAX + 200];
            if (places[i][0]) n->studio = ld_static_new(places[i], why, sizeof why);
            if (!n->studio && places[i][0]) ld_log_debug("studio: not in %s", why);
        }
        if (!n->studio) {
            ld_log_warn("studio: no Studio files found beside litedistd (%s) nor in %s; "
                        "/studio/ answers 404 until Studio.Root names them",
                        beside[0] ? beside : "?", LD_STUDIO_INSTALL_DIR);
            return true;
        }
    }
    ld_log_info("studio: serving %zu files from %s at /studio/", ld_static_count(n->studio),
                ld_static_root(n->studio));
    return true;
}

static void redirect(ld_req *r, int status, const char *location)
{
    char body[128];
    int n = snprintf(body, sizeof body, "Moved to %s\n", location);
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Location", location);
    ld_reply_text(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

void ld_api_root(ld_req *r)
{
    redirect(r, 302, DASHBOARD_URL);
}

void ld_api_studio(ld_req *r)
{
    if (!r->node->studio) {
        ld_reply_error(r, 404,
                       "The Studio is not installed on this node: set Studio.Root to the "
                       "directory holding its index.html.");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t plen = path ? strlen(path) : 0;
    bool trailing_slash = plen > 0 && path[plen - 1] == '/';
    if (r->nsegs == 1 && !trailing_slash) {
        /* "/studio" -> "/studio/", so the page's relative references resolve below it. */
        redirect(r, 301, "/studio/");
        return;
    }
    if (r->nsegs > 1 && trailing_slash) {
        /* A directory: there is no listing. */
        ld_reply_error(r, 404, "No such file.");
        return;
    }
    ld_static_serve(r->node->studio, r, 1);
}
