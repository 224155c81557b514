/* litedist plugin ABI: the entry point, the descriptor and the host services table shared by
 * every plugin kind. Read this file first; storage.h and auth.h build on it. */
#ifndef LITEDIST_PLUGIN_H
#define LITEDIST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Versioning
 *
 * The ABI has a major and a minor number. A plugin built against 1.x loads into any litedistd
 * that speaks 1.y; structs only ever grow at their end (each new field is tagged with the minor
 * that added it), and every struct that crosses the boundary starts with the same three fields:
 *
 *     uint32_t abi_major;   LD_ABI_MAJOR the side that filled the struct was built against
 *     uint32_t abi_minor;   LD_ABI_MINOR likewise
 *     uint32_t struct_size; sizeof the struct as that side knows it
 *
 * The reader checks abi_major first and reads nothing else on a mismatch. A field lies "beyond
 * struct_size" when offsetof(field) + sizeof(field) > struct_size: the other side predates it and
 * the field must be treated as absent (NULL). A major bump renames the structs (ld_storage_v2),
 * so old source fails to compile instead of claiming the new ABI.
 * ------------------------------------------------------------------------------------------- */
#define LD_ABI_MAJOR 1
#define LD_ABI_MINOR 4

/* Fills the common header of an ABI struct. */
#define LD_ABI_HEADER_INIT(type) LD_ABI_MAJOR, LD_ABI_MINOR, (uint32_t)sizeof(type)

/* True when `field` of the struct *p lies within the struct_size the other side declared. */
#define LD_ABI_HAS(p, type, field)                                                                 \
    ((p)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---------------------------------------------------------------------------------------------
 * Status codes. Every ABI call that can fail returns one of these. Values are stable forever.
 * ------------------------------------------------------------------------------------------- */
typedef int32_t ld_status;

#define LD_OK          0  /* success */
#define LD_NOT_FOUND   1  /* key, database or record absent (not an error for the caller) */
#define LD_EXISTS      2  /* object already exists */
#define LD_INVALID     3  /* bad argument or bad configuration */
#define LD_IO          4  /* I/O error from the OS or the engine */
#define LD_NOMEM       5  /* allocation failed */
#define LD_CORRUPT     6  /* stored data is damaged */
#define LD_BUSY        7  /* resource locked; the caller may retry */
#define LD_UNSUPPORTED 8  /* the operation is not offered by this plugin */
#define LD_FULL        9  /* storage full (disk, map) after the plugin's own remedies */
#define LD_DENIED      10 /* permission denied by the OS */
#define LD_INTERNAL    11 /* a bug or an unexpected engine state */

/* A status the host does not know (a value not listed above, e.g. one a later minor adds) is a
 * failure of that call, handled as LD_INTERNAL: the host logs it with its number ("unknown
 * status"), and never reads it as success, as LD_NOT_FOUND or as LD_BUSY. A storage call
 * failing so fails the write or read it served (the client gets a 5xx; a write transaction is
 * aborted, nothing of it is visible); an auth call failing so refuses the request (503, fail
 * closed). Plugins return only the codes their function's comment lists. */

/* ---------------------------------------------------------------------------------------------
 * Plugin kinds and log levels
 * ------------------------------------------------------------------------------------------- */
#define LD_PLUGIN_KIND_STORAGE 1 /* descriptor.ops points to an ld_storage_v1 */
#define LD_PLUGIN_KIND_AUTH    2 /* descriptor.ops points to an ld_auth_v1 */

#define LD_LOG_ERROR 0
#define LD_LOG_WARN  1
#define LD_LOG_INFO  2
#define LD_LOG_DEBUG 3

/* ---------------------------------------------------------------------------------------------
 * ld_host: the services the host offers to a plugin.
 *
 * Ownership: owned by the host; valid (and unchanged) from the entry call until the process
 * exits, so a plugin may keep the pointer. Strings in it are NUL-terminated UTF-8.
 * Threading: every function in it may be called from any thread at any time.
 * Later minors append fields; test with LD_HOST_HAS(host, field) before using one.
 * ------------------------------------------------------------------------------------------- */
typedef struct ld_host ld_host;
struct ld_host {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    uint32_t reserved0; /* zero; keeps the pointers below 8-byte aligned */

    /* Writes one log line at `level` (LD_LOG_*), prefixed with the plugin's name. printf-style.
     * Never pass secrets (API keys) to it. Since ABI 1.0. */
    void (*log)(const ld_host *host, int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* The plugin's configuration as JSON object text ("{}" when absent). A storage plugin gets
     * the whole `Storage` section. An auth plugin gets an object shaped like the `Auth` section
     * holding only `Plugins`, its own settings member (see settings_json) and the contract's key
     * settings it asked for through ld_auth_v1.wants (those are added after the entry point
     * returns, before create); never another plugin's member or secret. Since ABI 1.0. */
    const char *config_json;

    /* The node's data directory (Node:DataDirectory), absolute. Since ABI 1.0. */
    const char *data_dir;

    /* The path of the shared object this table was given to. Since ABI 1.0. */
    const char *plugin_path;

    /* Host-private; plugins must not touch it. Since ABI 1.0. */
    void *host_private;

    /* The name the plugin was configured under: the entry of Auth.Plugins or Storage.Plugin as
     * written ("tsv"), or for a path the file's base name without ".so" ("auth-tsv" for
     * "/x/auth-tsv.so"). Use it in messages about your settings. Since ABI 1.2. */
    const char *plugin_name;

    /* The plugin's own settings as JSON object text ("{}" when absent). Auth plugin: the member
     * of the `Auth` section named after the configured name, else after the file's base name,
     * matched case-insensitively ("tsv" or "auth-tsv" for Auth.Plugins ["tsv"] resolved to
     * auth-tsv.so). Storage plugin: the whole `Storage` section. Since ABI 1.2. */
    const char *settings_json;
};

#define LD_HOST_HAS(host, field) LD_ABI_HAS(host, ld_host, field)

/* ---------------------------------------------------------------------------------------------
 * ld_plugin_descriptor: what the entry point returns.
 *
 * Ownership: owned by the plugin, usually a static const; must stay valid until the process
 * exits (plugins are never unloaded while the server runs).
 * ------------------------------------------------------------------------------------------- */
typedef struct ld_plugin_descriptor {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    int32_t kind;        /* LD_PLUGIN_KIND_* */
    const char *name;    /* short name, [a-z0-9_-]+, e.g. "sqlite", "auth-config" */
    const char *version; /* the plugin's own version string, e.g. "1.0.0" */
    const void *ops;     /* const ld_storage_v1 * or const ld_auth_v1 *, per kind */
} ld_plugin_descriptor;

/* ---------------------------------------------------------------------------------------------
 * The entry point.
 *
 * Every plugin exports exactly one symbol, `ld_plugin_entry`, of this type. The host calls it
 * once, on the main thread, before anything else, and reads the descriptor's abi_major before
 * any other field. Returning NULL refuses to load (log the reason through host->log first).
 * Define it with LD_PLUGIN_ENTRY(fn); build plugins with -fvisibility=hidden so this is the
 * only exported symbol.
 * ------------------------------------------------------------------------------------------- */
typedef const ld_plugin_descriptor *(*ld_plugin_entry_fn)(const ld_host *host);

#define LD_PLUGIN_ENTRY_SYMBOL "ld_plugin_entry"

#if defined(__GNUC__)
#define LD_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define LD_PLUGIN_EXPORT
#endif

/* LD_PLUGIN_ENTRY(fn) exports `ld_plugin_entry` calling fn. When the plugin is compiled with
 * LD_PLUGIN_STATIC defined (linked into a program instead of dlopen'ed), no symbol is exported
 * and the program calls fn directly, so several plugins can share one binary: fn must then be
 * non-static, prototyped and uniquely named (auth-config's is ld_auth_config_entry). */
#ifdef LD_PLUGIN_STATIC
#define LD_PLUGIN_ENTRY(fn)
#else
#define LD_PLUGIN_ENTRY(fn)                                                                        \
    LD_PLUGIN_EXPORT const ld_plugin_descriptor *ld_plugin_entry(const ld_host *host);             \
    const ld_plugin_descriptor *ld_plugin_entry(const ld_host *host)                               \
    {                                                                                              \
        return fn(host);                                                                           \
    }
#endif

#ifdef __cplusplus
}
#endif

#endif /* LITEDIST_PLUGIN_H */
