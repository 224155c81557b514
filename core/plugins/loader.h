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
    char *config_json;                /* backs host.config_json */
    char *data_dir;                   /* backs host.data_dir */
} ld_plugin;

/* Finds the file for a plugin named in the config: a path (contains '/') is used as is; a name
 * is looked up in plugin_dir as "<name>.so", then "<prefix><name>.so" (prefix "storage-" or
 * "auth-" per kind). Returns a malloc'd path, or NULL with a message in err. */
char *ld_plugin_resolve(const char *name, const char *plugin_dir, int32_t kind, char *err,
                        size_t errlen);

/* Loads and checks the plugin at `path`, expecting `kind` (LD_PLUGIN_KIND_*). config_json and
 * data_dir are copied into the host table. On success *out owns the plugin (free with
 * ld_plugin_free at exit). On refusal returns NULL-*out and a message in err. */
ld_status ld_plugin_load(const char *path, int32_t kind, const char *config_json,
                         const char *data_dir, ld_plugin **out, char *err, size_t errlen);

/* Prints a plugin's descriptor (for `litedistd --plugin-info FILE`). Returns 0 when it loads. */
int ld_plugin_print_info(const char *path, char *err, size_t errlen);

/* Frees the loader's record. dlclose is deliberately not called: plugins may have started
 * threads or registered atexit handlers, so they stay mapped until the process ends. */
void ld_plugin_free(ld_plugin *p);

/* The directory holding the running executable (for <exe dir>/plugins); malloc'd or NULL. */
char *ld_exe_dir(void);

#endif
