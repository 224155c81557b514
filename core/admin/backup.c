/* litedistd backup and restore (docs/backup.md): a consistent copy of every database of a data
 * directory while its node runs (the storage plugin's ABI 1.3 `copy`), and a new data directory
 * made from it under a new incarnation and origin, so the restored node never reuses an op
 * sequence or a log position its peers have already seen. */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "../db/datadir.h"
#include "../db/names.h"
#include "../util/jsonget.h"
#include "../util/strutil.h"
#include "admin_util.h"

/* The manifest a finished backup holds; a directory without it is an unfinished backup. */
#define MANIFEST        "backup.json"
#define MANIFEST_FORMAT 1

/* Whether path is absent or an empty directory (where a backup or a restore may write). */
static bool absent_or_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT;
    bool empty = true;
    struct dirent *e;
    while (empty && (e = readdir(d)) != NULL)
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

typedef struct name_list {
    char **v;
    size_t n, cap;
    bool nomem;
} name_list;

static int collect_name(void *ctx, const char *name)
{
    name_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->nomem = true;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name))) {
        l->nomem = true;
        return 1;
    }
    l->n++;
    return 0;
}

static void names_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Copies <from>/<file> to <to>/<file> when it exists. */
static bool copy_if_there(const char *from, const char *to, const char *file, char *err,
                          size_t errlen)
{
    char src[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/%s", from, file);
    snprintf(dst, sizeof dst, "%s/%s", to, file);
    if (access(src, F_OK) != 0) return true;
    return ld_admin_copy_file(src, dst, err, errlen);
}

static bool write_json(const char *path, json_t *j, char *err, size_t errlen)
{
    if (!j || json_dump_file(j, path, JSON_INDENT(2)) != 0) {
        ld_set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

/* Copies the tree `from` into the new directory `to` (databases/ of a backup: the files of each
 * database, and of a directory-shaped one, like lmdb's, the files inside it; or peers/). Hidden
 * names are leftovers of an interrupted copy; lmdb's lock.mdb is rebuilt by the engine. */
static bool copy_tree(const char *from, const char *to, char *err, size_t errlen)
{
    DIR *d = opendir(from);
    if (!d) {
        ld_set_err(err, errlen, "cannot read %s: %s", from, strerror(errno));
        return false;
    }
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        struct stat sb;
        if (stat(src, &sb) != 0) {
            ld_set_err(err, errlen, "cannot read %s: %s", src, strerror(errno));
            ok = false;
        } else if (S_ISDIR(sb.st_mode)) {
            if (mkdir(dst, 0750) != 0) {
                ld_set_err(err, errlen, "cannot create %s: %s", dst, strerror(errno));
                ok = false;
            } else {
                ok = copy_tree(src, dst, err, errlen) && ld_admin_sync_dir(dst, err, errlen);
            }
        } else if (S_ISREG(sb.st_mode) && strcmp(e->d_name, "lock.mdb") != 0) {
            ok = ld_admin_copy_file(src, dst, err, errlen);
        }
    }
    closedir(d);
    return ok;
}

/* The peer lists a node keeps beside its databases (repl/peers.h): peers.json and peers/. */
static bool copy_peer_lists(const char *from, const char *to, char *err, size_t errlen)
{
    char src[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/peers", from);
    snprintf(dst, sizeof dst, "%s/peers", to);
    if (!copy_if_there(from, to, "peers.json", err, errlen)) return false;
    if (access(src, F_OK) != 0) return true;
    if (mkdir(dst, 0750) != 0) {
        ld_set_err(err, errlen, "cannot create %s: %s", dst, strerror(errno));
        return false;
    }
    return copy_tree(src, dst, err, errlen) && ld_admin_sync_dir(dst, err, errlen);
}

int ld_cmd_backup(int argc, char **argv)
{
    ld_admin_opts o;
    if (!ld_admin_parse(argc, argv, "cPdo", &o)) return 2;
    if (!o.out) {
        fprintf(stderr, "usage: litedistd backup [--config FILE] [--plugin-dir DIR] [--data DIR] "
                        "--out DIR\n");
        return 2;
    }
    char err[1024] = "";
    ld_admin_dir d;
    name_list names = {0};
    json_t *manifest = NULL;
    int rc = 1;
    char out_db[PATH_MAX], path[PATH_MAX];
    if (!ld_admin_open(&d, &o, err, sizeof err)) goto out;
    if (!ld_store_can_copy(&d.store)) {
        ld_set_err(err, sizeof err,
                   "storage backend '%s' (plugin ABI %u.%u) offers no online copy (the storage "
                   "ABI 1.3 'copy'); stop the node and copy its files (docs/storage.md, Backups)",
                   d.store.plugin->name, d.store.plugin->desc->abi_major,
                   d.store.plugin->desc->abi_minor);
        goto out;
    }
    if (!absent_or_empty(o.out)) {
        ld_set_err(err, sizeof err,
                   "%s exists and is not empty: a backup goes into a new directory", o.out);
        goto out;
    }
    snprintf(out_db, sizeof out_db, "%s/databases", o.out);
    if (ld_admin_mkdirs(out_db) != 0) {
        ld_set_err(err, sizeof err, "cannot create %s: %s", out_db, strerror(errno));
        goto out;
    }
    ld_status st = ld_store_list(&d.store, d.db_dir, collect_name, &names);
    if (st != LD_OK || names.nomem) {
        ld_set_err(err, sizeof err, "cannot list the databases in %s: %s", d.db_dir,
                   names.nomem ? "out of memory" : ld_status_str(st));
        goto out;
    }
    json_t *list = json_array();
    manifest = json_pack("{s:i, s:O, s:O, s:O, s:o, s:s}", "Format", MANIFEST_FORMAT, "NodeId",
                         ld_json_get_ci(d.identity, "NodeId"), "Storage",
                         ld_json_get_ci(d.identity, "Storage"), "Incarnation",
                         ld_json_get_ci(d.identity, "Incarnation"), "Databases", list,
                         "LitedistVersion", LD_VERSION);
    if (!manifest) {
        ld_set_err(err, sizeof err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < names.n; i++) {
        st = ld_store_copy(&d.store, d.db_dir, names.v[i], out_db);
        if (st == LD_NOT_FOUND) { /* deleted while the backup ran */
            fprintf(stderr,
                    "litedistd backup: database %s was deleted meanwhile; not in the "
                    "backup\n",
                    names.v[i]);
            continue;
        }
        if (st != LD_OK) {
            ld_set_err(err, sizeof err, "cannot copy database %s: %s (%s)", names.v[i],
                       ld_status_str(st), d.store.ops->last_error(d.store.inst));
            goto out;
        }
        json_array_append_new(list, json_string(names.v[i]));
        printf("copied %s\n", names.v[i]);
    }
    if (!copy_if_there(d.data_dir, o.out, LD_IDENTITY_FILE, err, sizeof err) ||
        !copy_if_there(d.data_dir, o.out, "node-id", err, sizeof err) ||
        !copy_peer_lists(d.data_dir, o.out, err, sizeof err) ||
        !ld_admin_sync_dir(out_db, err, sizeof err))
        goto out;
    char now[32];
    ld_admin_utc_now(now);
    json_object_set_new(manifest, "CreatedUtc", json_string(now));
    /* Written last: a backup without its manifest did not finish, and restore refuses it. */
    snprintf(path, sizeof path, "%s/%s", o.out, MANIFEST);
    if (!write_json(path, manifest, err, sizeof err) || !ld_admin_sync_dir(o.out, err, sizeof err))
        goto out;
    printf("backup of node %s (%zu databases) written to %s\n",
           json_string_value(ld_json_get_ci(d.identity, "NodeId")), json_array_size(list), o.out);
    rc = 0;
out:
    if (rc != 0) fprintf(stderr, "litedistd backup: %s\n", err);
    json_decref(manifest);
    names_free(&names);
    ld_admin_close(&d);
    return rc;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (ftw->level == 0) return 0; /* the directory itself stays: it was given to us */
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int ld_cmd_restore(int argc, char **argv)
{
    ld_admin_opts o;
    if (!ld_admin_parse(argc, argv, "fd", &o)) return 2;
    if (!o.from || !o.data) {
        fprintf(stderr, "usage: litedistd restore --from BACKUP_DIR --data NEW_DATA_DIR\n");
        return 2;
    }
    char err[1024] = "", path[PATH_MAX], db_from[PATH_MAX], db_to[PATH_MAX];
    json_t *manifest = NULL, *identity = NULL, *rec = NULL;
    ld_datadir dir = {0};
    int rc = 1;
    snprintf(path, sizeof path, "%s/%s", o.from, MANIFEST);
    json_error_t je;
    if (!(manifest = json_load_file(path, 0, &je))) {
        ld_set_err(err, sizeof err, "%s is not a finished litedistd backup (%s cannot be read: %s)",
                   o.from, path, je.text);
        goto out;
    }
    if (!(identity = ld_admin_read_identity(o.from, err, sizeof err))) goto out;
    if (!absent_or_empty(o.data)) {
        ld_set_err(err, sizeof err,
                   "%s exists and is not empty: restore makes a NEW data directory (move the old "
                   "one aside; see docs/backup.md)",
                   o.data);
        goto out;
    }
    snprintf(db_to, sizeof db_to, "%s/databases", o.data);
    if (ld_admin_mkdirs(db_to) != 0) {
        ld_set_err(err, sizeof err, "cannot create %s: %s", db_to, strerror(errno));
        goto out;
    }
    /* No node starts on the directory while it is being made. */
    if (!ld_datadir_lock(&dir, o.data, err, sizeof err)) goto out;
    snprintf(db_from, sizeof db_from, "%s/databases", o.from);
    if (!copy_tree(db_from, db_to, err, sizeof err) ||
        !copy_if_there(o.from, o.data, "node-id", err, sizeof err) ||
        !copy_peer_lists(o.from, o.data, err, sizeof err) ||
        !ld_admin_sync_dir(db_to, err, sizeof err))
        goto out;

    /* A new life: a new incarnation, and an origin of its own for the node's writes. */
    unsigned char rnd[LD_INCARNATION_LEN / 2];
    char inc[LD_INCARNATION_LEN + 1], origin[LD_WRITER_ORIGIN_MAX + 1], now[32];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(inc, sizeof inc, rnd, sizeof rnd);
    const char *node_id = json_string_value(ld_json_get_ci(identity, "NodeId"));
    snprintf(origin, sizeof origin, "%.*s.%.8s", LD_WRITER_ORIGIN_MAX - 9, node_id, inc);
    if (!ld_node_id_valid(origin)) {
        ld_set_err(err, sizeof err, "the backup's NodeId '%s' is not a valid node id", node_id);
        goto out;
    }
    ld_admin_utc_now(now);
    char from_abs[PATH_MAX];
    if (!realpath(o.from, from_abs)) snprintf(from_abs, sizeof from_abs, "%s", o.from);
    rec = json_pack("{s:i, s:s, s:O, s:s, s:s, s:O, s:O, s:s, s:s}", "Format", LD_IDENTITY_VERSION,
                    "NodeId", node_id, "Storage", ld_json_get_ci(identity, "Storage"),
                    "Incarnation", inc, "Origin", origin, "RestoredFromIncarnation",
                    ld_json_get_ci(identity, "Incarnation"), "BackupCreatedUtc",
                    ld_json_get_ci(manifest, "CreatedUtc") ? ld_json_get_ci(manifest, "CreatedUtc")
                                                           : json_null(),
                    "RestoredUtc", now, "RestoredFrom", from_abs);
    if (!rec) {
        ld_set_err(err, sizeof err, "out of memory");
        goto out;
    }
    if (!ld_datadir_write(o.data, dir.lock_fd, rec, err, sizeof err)) goto out;
    printf("restored node %s into %s: incarnation %s, its new writes carry origin %s; start it "
           "with its peers (docs/backup.md)\n",
           node_id, o.data, inc, origin);
    rc = 0;
out:
    if (rc != 0) fprintf(stderr, "litedistd restore: %s\n", err);
    /* A half-made directory must not be started: without its record, a node would adopt the
     * databases under their old incarnation and origin, the very trap restore avoids. It was
     * empty or absent when we began, so what is in it is ours. */
    if (rc != 0 && dir.locked && nftw(o.data, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr,
                "litedistd restore: could not empty %s: delete it before starting a node "
                "there\n",
                o.data);
    ld_datadir_unlock(&dir);
    json_decref(rec);
    json_decref(identity);
    json_decref(manifest);
    return rc;
}
