/* What the operator commands (admin.h) share: their command line, the configuration and storage
 * plugin of a data directory, and the identity record. */
#ifndef LD_ADMIN_UTIL_H
#define LD_ADMIN_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../config/config.h"
#include "../storage/storage.h"

/* The options the commands take; unset ones are NULL. */
typedef struct ld_admin_opts {
    const char *config, *plugin_dir, *data, *out, *from, *in, *database;
} ld_admin_opts;

/* Parses argv (argv[0] is the command's name) into o, accepting only the options named in
 * `allowed` (a string of the short letters: c config, P plugin-dir, d data, o out, f from, i in,
 * n database). False (after a message on stderr) on anything else. */
bool ld_admin_parse(int argc, char **argv, const char *allowed, ld_admin_opts *o);

/* A data directory opened for a command: its configuration, its identity record and its storage
 * plugin. Owned by the command; ld_admin_close frees it. */
typedef struct ld_admin_dir {
    ld_config cfg;
    bool cfg_up;
    ld_store store;
    bool store_up;
    char *data_dir; /* absolute */
    char *db_dir;   /* <data_dir>/databases */
    json_t *identity;
} ld_admin_dir;

/* Loads the configuration (o->config, the environment, --data and --plugin-dir), reads the
 * directory's identity.json (it must exist: a node has started there) and loads the storage
 * plugin, which must be the one the record names. False with err. */
bool ld_admin_open(ld_admin_dir *d, const ld_admin_opts *o, char *err, size_t errlen);
void ld_admin_close(ld_admin_dir *d);

/* The identity record at <dir>/identity.json, or NULL with err. */
json_t *ld_admin_read_identity(const char *dir, char *err, size_t errlen);

/* mkdir -p with mode 0750. 0, or -1 with errno. */
int ld_admin_mkdirs(const char *path);

/* Copies the regular file src to dst (created, never replaced) and flushes it to disk. */
bool ld_admin_copy_file(const char *src, const char *dst, char *err, size_t errlen);

/* fsync of a directory, so the names written in it survive a power loss. */
bool ld_admin_sync_dir(const char *dir, char *err, size_t errlen);

/* "YYYY-MM-DDTHH:MM:SSZ" of now. */
void ld_admin_utc_now(char out[32]);

#endif
