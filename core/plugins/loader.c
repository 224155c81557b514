/* dlopen-based plugin loading with the ABI checks of docs/architecture.md §3: major version first,
 * then struct sizes, kind, required functions and paired functions. */
#include "loader.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/strutil.h"

#ifndef LD_PLUGIN_INSTALL_DIR
#define LD_PLUGIN_INSTALL_DIR "/usr/local/lib/litedist/plugins"
#endif
/* The plugin directory relative to the installed binary's directory, so a tree installed under
 * another prefix (cmake --install --prefix, a package staging directory) finds its plugins. */
#ifndef LD_PLUGIN_REL_DIR
#define LD_PLUGIN_REL_DIR "../lib/litedist/plugins"
#endif

static const char *kind_name(int32_t kind)
{
    switch (kind) {
    case LD_PLUGIN_KIND_STORAGE:
        return "storage";
    case LD_PLUGIN_KIND_AUTH:
        return "auth";
    default:
        return "unknown";
    }
}

char *ld_exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash) return NULL;
    *slash = '\0';
    return strdup(buf);
}

/* The path without "bin/../lib": the log names the file an operator would look for. */
static char *canonical(const char *path)
{
    char *real = realpath(path, NULL);
    return real ? real : strdup(path);
}

char *ld_plugin_resolve(const char *name, const char *plugin_dir, int32_t kind, char *err,
                        size_t errlen)
{
    if (strchr(name, '/')) return strdup(name);
    const char *prefix = kind == LD_PLUGIN_KIND_STORAGE ? "storage-" : "auth-";
    char *exe = ld_exe_dir();
    char beside[PATH_MAX] = "", installed[PATH_MAX] = "";
    if (exe) {
        snprintf(beside, sizeof beside, "%s/plugins", exe);
        snprintf(installed, sizeof installed, "%s/%s", exe, LD_PLUGIN_REL_DIR);
    }
    free(exe);
    /* Node.PluginDirectory adds a directory in front of the defaults: a plugin of its own
     * must not hide the bundled ones. */
    const char *dirs[] = {plugin_dir, beside, installed, LD_PLUGIN_INSTALL_DIR};
    const size_t ndirs = sizeof dirs / sizeof dirs[0];
    char path[PATH_MAX];
    char searched[4 * PATH_MAX + 16] = "";
    for (size_t d = 0; d < ndirs; d++) {
        if (!dirs[d] || !dirs[d][0]) continue;
        snprintf(path, sizeof path, "%s/%s.so", dirs[d], name);
        if (access(path, R_OK) == 0) return canonical(path);
        snprintf(path, sizeof path, "%s/%s%s.so", dirs[d], prefix, name);
        if (access(path, R_OK) == 0) return canonical(path);
        size_t used = strlen(searched);
        snprintf(searched + used, sizeof searched - used, "%s%s", used ? ", " : "", dirs[d]);
    }
    ld_set_err(err, errlen,
               "%s plugin '%s' not found (looked for %s.so and %s%s.so in %s); set "
               "Node.PluginDirectory or give a path to the .so",
               kind_name(kind), name, name, prefix, name, searched);
    return NULL;
}

static void host_log(const ld_host *host, int32_t level, const char *fmt, ...)
{
    const ld_plugin *p = host->host_private;
    va_list ap;
    va_start(ap, fmt);
    ld_logv(level, p && p->name ? p->name : "plugin", fmt, ap);
    va_end(ap);
}

/* Checks the common header of an ops struct and that it covers `min_size` (every function
 * ABI 1.0 requires). */
static bool check_ops_header(const char *path, const void *ops, uint32_t min_size, char *err,
                             size_t errlen)
{
    const uint32_t *hdr = ops;
    if (hdr[0] != LD_ABI_MAJOR) {
        ld_set_err(
            err, errlen,
            "plugin %s: operations table has ABI %u.%u, litedistd speaks %d.0-%d.%d; rebuild "
            "it against include/litedist of %d.x",
            path, hdr[0], hdr[1], LD_ABI_MAJOR, LD_ABI_MAJOR, LD_ABI_MINOR, LD_ABI_MAJOR);
        return false;
    }
    if (hdr[2] < min_size) {
        ld_set_err(
            err, errlen,
            "plugin %s: operations table struct_size is %u bytes, ABI %d.0 needs at least %u; "
            "the plugin was built against a damaged or foreign header",
            path, hdr[2], LD_ABI_MAJOR, min_size);
        return false;
    }
    return true;
}

#define REQUIRE(ops, field)                                                                        \
    do {                                                                                           \
        if (!(ops)->field) {                                                                       \
            ld_set_err(err, errlen,                                                                \
                       "plugin %s: required function '" #field "' is NULL; implement it (see "     \
                       "include/litedist)",                                                        \
                       path);                                                                      \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

#define PAIR(ops, a, b)                                                                            \
    do {                                                                                           \
        if (!(ops)->a != !(ops)->b) {                                                              \
            ld_set_err(err, errlen,                                                                \
                       "plugin %s: '" #a "' and '" #b "' come as a pair, but only '%s' is set",    \
                       path, (ops)->a ? #a : #b);                                                  \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

static bool check_storage(const char *path, const ld_storage_v1 *s, char *err, size_t errlen)
{
    if (!check_ops_header(path, s, (uint32_t)offsetof(ld_storage_v1, cursor_last), err, errlen))
        return false;
    PAIR(s, begin, commit);
    PAIR(s, begin, abort);
    PAIR(s, cursor_open, cursor_close);
    REQUIRE(s, create);
    REQUIRE(s, destroy);
    REQUIRE(s, open);
    REQUIRE(s, close);
    REQUIRE(s, drop);
    REQUIRE(s, list);
    REQUIRE(s, last_error);
    REQUIRE(s, begin);
    REQUIRE(s, get);
    REQUIRE(s, put);
    REQUIRE(s, del);
    REQUIRE(s, cursor_open);
    REQUIRE(s, cursor_seek);
    REQUIRE(s, cursor_next);
    return true;
}

static bool check_auth(const char *path, const ld_auth_v1 *a, char *err, size_t errlen)
{
    /* ABI 1.0's table ends before `wants`; later fields are optional. */
    if (!check_ops_header(path, a, (uint32_t)offsetof(ld_auth_v1, wants), err, errlen))
        return false;
    PAIR(a, create, destroy);
    REQUIRE(a, create);
    REQUIRE(a, authorize);
    return true;
}

ld_status ld_plugin_load(const ld_plugin_spec *spec, int32_t kind, ld_plugin **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    const char *path = spec->path;
    ld_plugin *p = calloc(1, sizeof *p);
    if (!p) {
        ld_set_err(err, errlen, "plugin %s: out of memory", path);
        return LD_NOMEM;
    }
    char cname[256];
    ld_plugin_config_name(spec->name ? spec->name : path, cname, sizeof cname);
    const char *config = spec->config_json ? spec->config_json : "{}";
    p->path = strdup(path);
    p->config_json = strdup(config);
    p->settings_json = strdup(spec->settings_json ? spec->settings_json : config);
    p->configured_name = strdup(cname);
    p->data_dir = strdup(spec->data_dir ? spec->data_dir : ".");
    if (!p->path || !p->config_json || !p->settings_json || !p->configured_name || !p->data_dir) {
        ld_set_err(err, errlen, "plugin %s: out of memory", path);
        ld_plugin_free(p);
        return LD_NOMEM;
    }
    p->host =
        (ld_host){LD_ABI_HEADER_INIT(ld_host), 0, host_log, NULL, NULL, NULL, NULL, NULL, NULL};
    p->host.config_json = p->config_json;
    p->host.data_dir = p->data_dir;
    p->host.plugin_path = p->path;
    p->host.host_private = p;
    p->host.plugin_name = p->configured_name;
    p->host.settings_json = p->settings_json;

    /* Said before dlopen and the entry call: code there may crash the process, and the last
     * line must then name this plugin, not the one before it. */
    ld_log_info("loading %s plugin '%s' from %s", kind_name(kind), cname, path);
    dlerror();
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        ld_set_err(err, errlen, "plugin %s: cannot load: %s", path, dlerror());
        goto refuse;
    }
    ld_plugin_entry_fn entry;
    *(void **)&entry = dlsym(p->dl, LD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        ld_set_err(err, errlen,
                   "plugin %s: no '%s' symbol; a litedist plugin defines it with "
                   "LD_PLUGIN_ENTRY(fn) from <litedist/plugin.h>",
                   path, LD_PLUGIN_ENTRY_SYMBOL);
        goto refuse;
    }
    const ld_plugin_descriptor *d = entry(&p->host);
    if (!d) {
        ld_set_err(err, errlen, "plugin %s: its entry point refused to load (see its log lines)",
                   path);
        goto refuse;
    }
    /* PostgreSQL's magic-block rule: the major first, nothing else on a mismatch. */
    if (d->abi_major != LD_ABI_MAJOR) {
        ld_set_err(err, errlen,
                   "plugin %s: ABI %u.%u, litedistd speaks %d.0-%d.%d; rebuild it against "
                   "include/litedist of %d.x",
                   path, d->abi_major, d->abi_minor, LD_ABI_MAJOR, LD_ABI_MAJOR, LD_ABI_MINOR,
                   LD_ABI_MAJOR);
        goto refuse;
    }
    if (d->struct_size < sizeof(ld_plugin_descriptor)) {
        ld_set_err(err, errlen,
                   "plugin %s: descriptor struct_size is %u bytes, ABI %d.0 needs %zu; rebuild it "
                   "against include/litedist of %d.x",
                   path, d->struct_size, LD_ABI_MAJOR, sizeof(ld_plugin_descriptor), LD_ABI_MAJOR);
        goto refuse;
    }
    if (d->kind != kind) {
        ld_set_err(err, errlen,
                   "plugin %s: is of kind '%s' (%d) but was configured as kind '%s'; check "
                   "Storage.Plugin and Auth.Plugins",
                   path, kind_name(d->kind), d->kind, kind_name(kind));
        goto refuse;
    }
    if (!d->ops || !d->name || !d->name[0]) {
        ld_set_err(err, errlen, "plugin %s: descriptor has no %s", path, d->ops ? "name" : "ops");
        goto refuse;
    }
    if (kind == LD_PLUGIN_KIND_STORAGE ? !check_storage(path, d->ops, err, errlen)
                                       : !check_auth(path, d->ops, err, errlen))
        goto refuse;
    if (!(p->name = strdup(d->name))) {
        ld_set_err(err, errlen, "plugin %s: out of memory", path);
        goto refuse;
    }
    p->desc = d;
    *out = p;
    ld_log_info("loaded %s plugin %s %s (ABI %u.%u) from %s", kind_name(kind), d->name,
                d->version ? d->version : "?", d->abi_major, d->abi_minor, path);
    return LD_OK;

refuse:
    ld_plugin_free(p);
    return LD_INVALID;
}

int ld_plugin_print_info(const char *path, char *err, size_t errlen)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        ld_set_err(err, errlen, "plugin %s: cannot load: %s", path, dlerror());
        return 1;
    }
    ld_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, LD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        ld_set_err(err, errlen, "plugin %s: no '%s' symbol", path, LD_PLUGIN_ENTRY_SYMBOL);
        return 1;
    }
    ld_plugin tmp = {0};
    tmp.name = "plugin-info";
    tmp.host =
        (ld_host){LD_ABI_HEADER_INIT(ld_host), 0, host_log, NULL, NULL, NULL, NULL, NULL, NULL};
    tmp.host.config_json = "{}";
    tmp.host.settings_json = "{}";
    tmp.host.plugin_name = "plugin-info";
    tmp.host.data_dir = ".";
    tmp.host.plugin_path = path;
    tmp.host.host_private = &tmp;
    const ld_plugin_descriptor *d = entry(&tmp.host);
    if (!d) {
        ld_set_err(err, errlen, "plugin %s: its entry point returned no descriptor", path);
        return 1;
    }
    printf("file:        %s\n", path);
    printf("abi:         %u.%u (litedistd speaks %d.0-%d.%d)\n", d->abi_major, d->abi_minor,
           LD_ABI_MAJOR, LD_ABI_MAJOR, LD_ABI_MINOR);
    if (d->abi_major != LD_ABI_MAJOR) {
        ld_set_err(err, errlen,
                   "plugin %s: ABI %u.%u cannot be loaded by litedistd (ABI %d.x); rebuild it "
                   "against include/litedist of %d.x",
                   path, d->abi_major, d->abi_minor, LD_ABI_MAJOR, LD_ABI_MAJOR);
        return 1;
    }
    printf("kind:        %s\n", kind_name(d->kind));
    printf("name:        %s\n", d->name ? d->name : "(none)");
    printf("version:     %s\n", d->version ? d->version : "(none)");
    if (d->ops) {
        const uint32_t *hdr = d->ops;
        printf("ops:         ABI %u.%u, struct_size %u\n", hdr[0], hdr[1], hdr[2]);
        if (d->kind == LD_PLUGIN_KIND_AUTH && hdr[0] == LD_ABI_MAJOR) {
            const ld_auth_v1 *a = d->ops;
            printf("questions:   %s\n", ld_auth_ops_decide(a)
                                            ? "one per request (decide, ABI 1.2)"
                                            : "one per role (authorize, ABI 1.0)");
            uint32_t w = ld_auth_ops_wants(a);
            printf("wants:       %s%s%s%s\n", w ? "" : "none",
                   w & LD_AUTH_WANT_API_KEYS ? "ApiKeys" : "",
                   w & LD_AUTH_WANT_ROOT_KEY
                       ? (w & LD_AUTH_WANT_API_KEYS ? " RootApiKey" : "RootApiKey")
                       : "",
                   w & LD_AUTH_WANT_ROOT_KEY_HASH ? (w & 3u ? " RootApiKeyHash" : "RootApiKeyHash")
                                                  : "");
            printf("flags:       %s\n",
                   ld_auth_ops_flags(a) & LD_AUTH_FLAG_STABLE ? "stable (ABI 1.4)" : "none");
        }
    }
    return 0;
}

ld_status (*ld_auth_ops_decide(const ld_auth_v1 *a))(void *, const ld_auth_query *,
                                                     ld_auth_answer *)
{
    /* A table of ABI 1.0/1.1 ends before these fields: they count as absent. */
    return LD_ABI_HAS(a, ld_auth_v1, decide) ? a->decide : NULL;
}

uint32_t ld_auth_ops_wants(const ld_auth_v1 *a)
{
    return LD_ABI_HAS(a, ld_auth_v1, wants) ? a->wants : 0;
}

uint32_t ld_auth_ops_flags(const ld_auth_v1 *a)
{
    return LD_ABI_HAS(a, ld_auth_v1, flags) ? a->flags : 0;
}

ld_status ld_plugin_extend_config(ld_plugin *p, const char *json)
{
    char *copy = strdup(json);
    if (!copy) return LD_NOMEM;
    free(p->config_extended);
    p->config_extended = copy;
    p->host.config_json = copy;
    return LD_OK;
}

void ld_plugin_free(ld_plugin *p)
{
    if (!p) return;
    free(p->path);
    free(p->name);
    free(p->config_json);
    free(p->config_extended);
    free(p->settings_json);
    free(p->configured_name);
    free(p->data_dir);
    free(p);
}
