/* Helpers of the operator commands (see admin_util.h): command line, configuration, storage
 * plugin, identity record and durable file copies. */
#include "admin_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../db/datadir.h"
#include "../plugins/loader.h"
#include "../util/jsonget.h"
#include "../util/log.h"
#include "../util/strutil.h"

extern char **environ;

bool ld_admin_parse(int argc, char **argv, const char *allowed, ld_admin_opts *o)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"plugin-dir", required_argument, NULL, 'P'},
        {"data", required_argument, NULL, 'd'},     {"out", required_argument, NULL, 'o'},
        {"from", required_argument, NULL, 'f'},     {"in", required_argument, NULL, 'i'},
        {"database", required_argument, NULL, 'n'}, {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == '?' || !strchr(allowed, c)) {
            const char *name = "?";
            for (const struct option *p = opts; p->name; p++)
                if (p->val == c) name = p->name;
            if (c != '?')
                fprintf(stderr, "litedistd %s: option --%s does not apply here\n", argv[0], name);
            return false;
        }
        const char **slot = c == 'c'   ? &o->config
                            : c == 'P' ? &o->plugin_dir
                            : c == 'd' ? &o->data
                            : c == 'o' ? &o->out
                            : c == 'f' ? &o->from
                            : c == 'i' ? &o->in
                                       : &o->database;
        *slot = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "litedistd %s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return false;
    }
    return true;
}

json_t *ld_admin_read_identity(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, LD_IDENTITY_FILE);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        if (access(path, F_OK) != 0)
            ld_set_err(err, errlen,
                       "%s not found: %s is not a litedist data directory (or no node has "
                       "started there yet)",
                       path, dir);
        else
            ld_set_err(err, errlen, "%s cannot be read: %s (line %d)", path, je.text, je.line);
        return NULL;
    }
    if (!json_is_string(ld_json_get_ci(j, "NodeId")) ||
        !json_is_string(ld_json_get_ci(j, "Storage")) ||
        !ld_incarnation_valid(json_string_value(ld_json_get_ci(j, "Incarnation")))) {
        ld_set_err(err, errlen, "%s is not a valid identity record (NodeId, Storage, Incarnation)",
                   path);
        json_decref(j);
        return NULL;
    }
    return j;
}

bool ld_admin_open(ld_admin_dir *d, const ld_admin_opts *o, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    ld_config_overrides ov = {.data_dir = o->data, .plugin_dir = o->plugin_dir};
    if (!ld_config_load(&d->cfg, o->config, environ, &ov, err, errlen)) return false;
    d->cfg_up = true;
    d->data_dir = realpath(d->cfg.data_dir, NULL);
    if (!d->data_dir) {
        ld_set_err(err, errlen, "data directory %s: %s", d->cfg.data_dir, strerror(errno));
        return false;
    }
    if (asprintf(&d->db_dir, "%s/databases", d->data_dir) < 0) {
        d->db_dir = NULL;
        ld_set_err(err, errlen, "out of memory");
        return false;
    }
    if (!(d->identity = ld_admin_read_identity(d->data_dir, err, errlen))) return false;
    const char *rec = json_string_value(ld_json_get_ci(d->identity, "Storage"));
    /* Without Storage.Plugin in the configuration (`backup --data DIR` alone), the backend the
     * directory records is the one to load; a configured one must match it (below). */
    bool configured = ld_json_get_ci(ld_json_get_ci(d->cfg.root, "Storage"), "Plugin") != NULL;
    const char *plugin = configured ? d->cfg.storage_plugin : rec;
    char *path = ld_plugin_resolve(plugin, d->cfg.plugin_dir, LD_PLUGIN_KIND_STORAGE, err, errlen);
    if (!path) return false;
    ld_status st =
        ld_store_init(&d->store, path, plugin, d->cfg.storage_json, d->data_dir, err, errlen);
    free(path);
    if (st != LD_OK) return false;
    d->store_up = true;
    if (strcmp(rec, d->store.plugin->name) != 0) {
        ld_set_err(err, errlen,
                   "data directory %s was written by storage backend '%s' and Storage.Plugin "
                   "is '%s': set Storage.Plugin to '%s' (--config or LITEDIST_Storage__Plugin)",
                   d->data_dir, rec, d->store.plugin->name, rec);
        return false;
    }
    return true;
}

void ld_admin_close(ld_admin_dir *d)
{
    if (d->store_up) ld_store_destroy(&d->store);
    if (d->cfg_up) ld_config_free(&d->cfg);
    json_decref(d->identity);
    free(d->data_dir);
    free(d->db_dir);
    memset(d, 0, sizeof *d);
}

int ld_admin_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -1;
    return 0;
}

bool ld_admin_copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        ld_set_err(err, errlen, "cannot read %s: %s", src, strerror(errno));
        return false;
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (out < 0) {
        ld_set_err(err, errlen, "cannot create %s: %s", dst, strerror(errno));
        close(in);
        return false;
    }
    char buf[1 << 16];
    bool ok = true;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        for (ssize_t off = 0; off < n && ok;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) ok = false;
            off += w > 0 ? w : 0;
        }
        if (!ok) break;
    }
    if (ok && fsync(out) != 0) ok = false;
    int e = errno;
    if (close(out) != 0 && ok) {
        ok = false;
        e = errno;
    }
    close(in);
    if (!ok) {
        ld_set_err(err, errlen, "cannot copy %s to %s: %s", src, dst, strerror(e));
        unlink(dst);
    }
    return ok;
}

bool ld_admin_sync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    if (!ok) ld_set_err(err, errlen, "cannot flush directory %s: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return ok;
}

void ld_admin_utc_now(char out[32])
{
    time_t now = time(NULL);
    struct tm tm;
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
}
