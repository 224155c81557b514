/* The data directory's identity file and lock (see datadir.h): read and checked at start, written
 * once, atomically, when a directory gets its incarnation. */
#include "datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "../util/jsonget.h"
#include "names.h"
#include "../util/strutil.h"

#define RECIPE "see \"The data directory's identity\" in docs/storage.md"

bool ld_datadir_lock(ld_datadir *d, const char *dir, char *err, size_t errlen)
{
    d->lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->lock_fd < 0) {
        ld_set_err(err, errlen, "cannot open data directory %s: %s", dir, strerror(errno));
        return false;
    }
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(d->lock_fd);
        ld_set_err(err, errlen,
                   "data directory %s is in use by another litedistd (%s): stop it, or give this "
                   "node its own Node.DataDirectory",
                   dir, e == EWOULDBLOCK ? "locked" : strerror(e));
        return false;
    }
    d->locked = true;
    return true;
}

void ld_datadir_unlock(ld_datadir *d)
{
    if (d->locked) close(d->lock_fd); /* releases the flock */
    d->locked = false;
}

/* Whether db_dir holds anything at all (a backend's files). */
static bool has_entries(const char *db_dir)
{
    DIR *dh = opendir(db_dir);
    if (!dh) return false;
    bool any = false;
    struct dirent *e;
    while (!any && (e = readdir(dh)) != NULL)
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(dh);
    return any;
}

bool ld_incarnation_valid(const char *s)
{
    if (!s || strlen(s) != LD_INCARNATION_LEN) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

/* A restored directory's Origin and RestoredFromIncarnation (both or neither). */
static bool read_restore(ld_datadir *d, json_t *j, const char *path, char *err, size_t errlen)
{
    json_t *o = ld_json_get_ci(j, "Origin");
    json_t *r = ld_json_get_ci(j, "RestoredFromIncarnation");
    d->origin[0] = d->restored_from[0] = '\0';
    if (!o && !r) return true;
    const char *origin = json_string_value(o), *from = json_string_value(r);
    if (!origin || !ld_node_id_valid(origin) || strlen(origin) > LD_WRITER_ORIGIN_MAX ||
        !ld_incarnation_valid(from)) {
        ld_set_err(err, errlen,
                   "%s is not a valid identity record: a restored directory has both Origin (a "
                   "node id) and RestoredFromIncarnation (32 hex digits); see docs/backup.md",
                   path);
        return false;
    }
    memcpy(d->origin, origin, strlen(origin) + 1);
    memcpy(d->restored_from, from, LD_INCARNATION_LEN + 1);
    return true;
}

bool ld_datadir_check(ld_datadir *d, const char *dir, const char *db_dir, const char *backend,
                      const char *node_id, size_t n_listed, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, LD_IDENTITY_FILE);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        if (access(path, F_OK) == 0 || errno != ENOENT) {
            ld_set_err(err, errlen, "%s cannot be read: %s (line %d); restore it or %s", path,
                       je.text, je.line, RECIPE);
            return false;
        }
        if (n_listed == 0 && has_entries(db_dir)) {
            ld_set_err(err, errlen,
                       "%s holds files the storage backend '%s' does not use, and no record of "
                       "which backend wrote them (Storage.Plugin changed?): data is not converted "
                       "between backends; start with the backend that wrote them, or %s",
                       db_dir, backend, RECIPE);
            return false;
        }
        unsigned char rnd[LD_INCARNATION_LEN / 2];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(d->incarnation, sizeof d->incarnation, rnd, sizeof rnd);
        d->adopting = true;
        return true;
    }
    bool ok = false;
    json_t *v = ld_json_get_ci(j, "Format");
    const char *rec_backend = json_string_value(ld_json_get_ci(j, "Storage"));
    const char *rec_node = json_string_value(ld_json_get_ci(j, "NodeId"));
    const char *inc = json_string_value(ld_json_get_ci(j, "Incarnation"));
    if (!json_is_integer(v) || json_integer_value(v) < 1 || !rec_backend || !rec_node ||
        !ld_incarnation_valid(inc)) {
        ld_set_err(err, errlen,
                   "%s is not a valid identity record (Format, Storage, NodeId and a 32-digit "
                   "hex Incarnation are required); restore it or %s",
                   path, RECIPE);
    } else if (json_integer_value(v) > LD_IDENTITY_VERSION) {
        ld_set_err(err, errlen,
                   "%s has format %lld, written by a newer litedistd (this one reads %d)", path,
                   (long long)json_integer_value(v), LD_IDENTITY_VERSION);
    } else if (strcmp(rec_backend, backend) != 0) {
        ld_set_err(err, errlen,
                   "data directory %s was written by storage backend '%s' and this node is "
                   "configured with '%s' (Storage.Plugin): data is not converted between "
                   "backends; set Storage.Plugin back to '%s', or %s",
                   dir, rec_backend, backend, rec_backend, RECIPE);
    } else if (strcmp(rec_node, node_id) != 0) {
        ld_set_err(err, errlen,
                   "data directory %s holds the data of node '%s' and this node is '%s' "
                   "(Node.NodeId or <data>/node-id changed?): a node's data keeps its id; set "
                   "Node.NodeId to '%s', or %s",
                   dir, rec_node, node_id, rec_node, RECIPE);
    } else if (!read_restore(d, j, path, err, errlen)) {
        /* err is set */
    } else {
        memcpy(d->incarnation, inc, LD_INCARNATION_LEN + 1);
        d->adopting = false;
        ok = true;
    }
    json_decref(j);
    return ok;
}

bool ld_datadir_record(ld_datadir *d, const char *dir, const char *backend, const char *node_id,
                       char *err, size_t errlen)
{
    if (!d->adopting) return true;
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    /* Format 1: a directory never restored reads the same in a litedistd before restores. */
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s}", "Format", 1, "NodeId", node_id, "Storage",
                          backend, "Incarnation", d->incarnation, "CreatedUtc", created);
    if (!j) {
        ld_set_err(err, errlen, "out of memory writing the identity record in %s", dir);
        return false;
    }
    /* Written whole or not at all: a crash leaves the old state (no file: adopted again). */
    bool ok = ld_datadir_write(dir, d->locked ? d->lock_fd : -1, j, err, errlen);
    json_decref(j);
    if (!ok) return false;
    d->adopting = false;
    return true;
}

bool ld_datadir_write(const char *dir, int dir_fd, json_t *rec, char *err, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/%s", dir, LD_IDENTITY_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *text = json_dumps(rec, JSON_INDENT(2));
    if (!text) {
        ld_set_err(err, errlen, "out of memory writing %s", path);
        return false;
    }
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%s\n", text) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = false;
    free(text);
    ok = ok && rename(tmp, path) == 0 && (dir_fd < 0 || fsync(dir_fd) == 0);
    if (!ok) {
        ld_set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}
