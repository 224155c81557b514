/* Loading plugins: dlopen, the entry call, and every ABI check before the core trusts a plugin.
 * A refusal names the file, what was expected, what was found, and what to do. */
#ifndef LD_LOADER_H
#define LD_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include <litedist/auth.h>
#include <litedist/storage.h>

typedef struct ld_plugin {
    void *dl;                         /* dlopen handle; never closed while the server runs */
    char *path;                       /* the file loaded */
    char *name;                       /* short name for logs (descriptor name) */
    const ld_plugin_descriptor *desc; /* owned by the plugin */
    ld_host host;                     /* the services table handed to it; lives with this */
    char *config_json;                /* backs host.config_json as the entry point saw it */
    char *config_extended;            /* backs host.config_json from create on, when extended */
    char *settings_json;              /* backs host.settings_json */
    char *configured_name;            /* backs host.plugin_name */
    char *data_dir;                   /* backs host.data_dir */
} ld_plugin;

/* What the host table of a plugin about to be loaded holds. */
typedef struct ld_plugin_spec {
    const char *path;          /* the file to load */
    const char *name;          /* the name it was configured under (NULL: the file's base name) */
    const char *config_json;   /* host.config_json (NULL: "{}") */
    const char *settings_json; /* host.settings_json (NULL: the same as config_json) */
    const char *data_dir;      /* host.data_dir */
} ld_plugin_spec;

/* Finds the file for a plugin named in the config: a path (contains '/') is used as is; a name
 * is looked up as "<name>.so", then "<prefix><name>.so" (prefix "storage-" or "auth-" per
 * kind), in plugin_dir (Node.PluginDirectory, may be NULL) first, then in the default places:
 * <dir of litedistd>/plugins (the build tree), the install layout relative to the binary
 * (<bindir>/../lib/litedist/plugins) and the install directory compiled in. Returns a malloc'd
 * path, or NULL with a message in err naming every directory searched. */
char *ld_plugin_resolve(const char *name, const char *plugin_dir, int32_t kind, char *err,
                        size_t errlen);

/* Loads and checks the plugin spec->path, expecting `kind` (LD_PLUGIN_KIND_*). The strings of
 * spec are copied into the host table. Logs which plugin it loads before calling the entry
 * point, so a plugin that crashes there is named by the last log line. On success *out owns the
 * plugin (free with ld_plugin_free at exit). On refusal returns NULL-*out and a message in err. */
ld_status ld_plugin_load(const ld_plugin_spec *spec, int32_t kind, ld_plugin **out, char *err,
                         size_t errlen);

/* Points host.config_json at a copy of `json` from now on (before create: the entry point has
 * returned). The text the entry point saw stays valid until the plugin is freed. */
ld_status ld_plugin_extend_config(ld_plugin *p, const char *json);

/* An auth table's decide (ABI 1.2), or NULL when absent or beyond its struct_size. */
ld_status (*ld_auth_ops_decide(const ld_auth_v1 *a))(void *, const ld_auth_query *,
                                                     ld_auth_answer *);

/* An auth table's wants bits (ABI 1.2); 0 when beyond its struct_size. */
uint32_t ld_auth_ops_wants(const ld_auth_v1 *a);

/* An auth table's flags bits (ABI 1.4); 0 when beyond its struct_size. */
uint32_t ld_auth_ops_flags(const ld_auth_v1 *a);

/* Prints a plugin's descriptor (for `litedistd --plugin-info FILE`). Returns 0 when it loads. */
int ld_plugin_print_info(const char *path, char *err, size_t errlen);

/* Frees the loader's record. dlclose is deliberately not called: plugins may have started
 * threads or registered atexit handlers, so they stay mapped until the process ends. */
void ld_plugin_free(ld_plugin *p);

/* The directory holding the running executable (for <exe dir>/plugins); malloc'd or NULL. */
char *ld_exe_dir(void);

#endif
