/* litedistd export and import (docs/backup.md): documents as JSON Lines
 * {"collection", "id", "document"} (plus "database" when every database is exported), to move
 * data between storage backends or to other tools. Export reads a consistent copy (the storage
 * ABI 1.3 `copy`), so it runs beside a node; import writes through the node's own write path
 * (op log, version vector, digest) with the node stopped, so what it writes replicates. */
#include "admin.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../api/docwrite.h"
#include "../db/database.h"
#include "../db/datadir.h"
#include "../db/hlc.h"
#include "../db/names.h"
#include "../db/record.h"
#include "../db/registry.h"
#include "../index/index.h"
#include "../util/jsonget.h"
#include "../util/jsontext.h"
#include "../util/strutil.h"
#include "admin_util.h"

/* Jobs queued to the writers before the import waits for them: bounds the memory it holds. */
#define IMPORT_WINDOW 512

static bool is_reserved_field(const char *key, void *ctx)
{
    (void)ctx;
    return !strcmp(key, "_id") || !strncmp(key, "_sys_", 5);
}

/* Writes one line per live document of the database open as `stdb`, and one per index
 * definition (a record of LD_INDEX_DEFS_COLL, counted in *defs), so a restore keeps them. */
static bool export_db(ld_store *store, ld_stdb *stdb, const char *name, bool with_db, FILE *out,
                      size_t *count, size_t *defs, char *err, size_t errlen)
{
    ld_txn t;
    ld_cursor c;
    ld_status st = ld_txn_begin(store, stdb, false, &t);
    if (st != LD_OK) {
        ld_set_err(err, errlen, "[%s] cannot read: %s", name, ld_status_str(st));
        return false;
    }
    st = ld_cursor_open(&t, LD_SPACE_DOCS, &c);
    if (st != LD_OK) {
        ld_txn_abort(&t);
        ld_set_err(err, errlen, "[%s] cannot read: %s", name, ld_status_str(st));
        return false;
    }
    const void *k, *v;
    size_t kl, vl;
    bool ok = true;
    for (st = ld_cursor_seek(&c, "", 0, &k, &kl, &v, &vl); ok && st == LD_OK;
         st = ld_cursor_next(&c, &k, &kl, &v, &vl)) {
        const char *coll, *id;
        size_t cl, il;
        ld_doc_rec rec;
        if (!ld_doc_key_split(k, kl, &coll, &cl, &id, &il) || !ld_doc_rec_decode(v, vl, &rec)) {
            ld_set_err(err, errlen, "[%s] a stored document cannot be decoded", name);
            ok = false;
            break;
        }
        if (rec.flags & LD_REC_TOMBSTONE) continue;
        char cname[256];
        snprintf(cname, sizeof cname, "%.*s", (int)cl, coll);
        /* Cache entries expire and are not documents; internal collections are the node's,
         * except the index definitions: the user's, and replicated like documents. */
        bool def = cl == LD_INDEX_DEFS_COLL_LEN && !memcmp(coll, LD_INDEX_DEFS_COLL, cl);
        if (ld_collection_is_cache(cname) || (ld_collection_is_internal(cname) && !def)) continue;
        size_t n = rec.json_len;
        char *clean =
            (rec.flags & LD_REC_RESERVED)
                ? ld_json_rewrite_object(rec.json, rec.json_len, NULL, is_reserved_field, NULL, &n)
                : NULL;
        json_error_t je;
        json_t *doc = json_loadb(clean ? clean : rec.json, n, 0, &je);
        free(clean);
        json_t *line = doc ? json_pack("{s:s%, s:s%, s:o}", "collection", coll, cl, "id", id, il,
                                       "document", doc)
                           : NULL;
        if (line && with_db) json_object_set_new(line, "database", json_string(name));
        if (!line || json_dumpf(line, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
            fputc('\n', out) == EOF) {
            ld_set_err(err, errlen, "[%s] cannot write document %.*s/%.*s: %s", name, (int)cl, coll,
                       (int)il, id, doc ? strerror(errno) : je.text);
            ok = false;
        }
        json_decref(line);
        ++*(def ? defs : count);
    }
    if (ok && st != LD_NOT_FOUND) {
        ld_set_err(err, errlen, "[%s] cannot read: %s", name, ld_status_str(st));
        ok = false;
    }
    ld_cursor_close(&c);
    ld_txn_abort(&t);
    return ok;
}

static int add_name(void *ctx, const char *name)
{
    json_t *list = ctx;
    return json_array_append_new(list, json_string(name)) == 0 ? 0 : 1;
}

int ld_cmd_export(int argc, char **argv)
{
    ld_admin_opts o;
    if (!ld_admin_parse(argc, argv, "cPdno", &o)) return 2;
    if (!o.out) {
        fprintf(stderr, "usage: litedistd export [--config FILE] [--plugin-dir DIR] [--data DIR] "
                        "[--database NAME] --out FILE|-\n");
        return 2;
    }
    char err[1024] = "", tmp[PATH_MAX] = "";
    ld_admin_dir d;
    memset(&d, 0, sizeof d);
    json_t *names = json_array();
    FILE *out = NULL;
    size_t count = 0, defs = 0;
    int rc = 1;
    if (!ld_admin_open(&d, &o, err, sizeof err)) goto done;
    if (!ld_store_can_copy(&d.store)) {
        ld_set_err(err, sizeof err,
                   "storage backend '%s' offers no online copy (the storage ABI 1.3 'copy'), "
                   "which export reads from",
                   d.store.plugin->name);
        goto done;
    }
    if (o.database) {
        char norm[LD_DB_NAME_MAX + 1];
        if (!ld_db_name_normalize(o.database, norm)) {
            ld_set_err(err, sizeof err, "--database '%s' is not a valid database name", o.database);
            goto done;
        }
        json_array_append_new(names, json_string(norm));
    } else if (ld_store_list(&d.store, d.db_dir, add_name, names) != LD_OK) {
        ld_set_err(err, sizeof err, "cannot list the databases in %s", d.db_dir);
        goto done;
    }
    /* The copy lives beside the data (same file system, same permissions) while it is read. */
    snprintf(tmp, sizeof tmp, "%s/.export-XXXXXX", d.data_dir);
    if (!mkdtemp(tmp)) {
        ld_set_err(err, sizeof err, "cannot create a directory in %s: %s", d.data_dir,
                   strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    out = strcmp(o.out, "-") ? fopen(o.out, "w") : stdout;
    if (!out) {
        ld_set_err(err, sizeof err, "cannot create %s: %s", o.out, strerror(errno));
        goto done;
    }
    size_t i;
    json_t *nv;
    json_array_foreach(names, i, nv)
    {
        const char *name = json_string_value(nv);
        ld_status st = ld_store_copy(&d.store, d.db_dir, name, tmp);
        if (st != LD_OK) {
            ld_set_err(err, sizeof err, "cannot read database %s: %s%s", name, ld_status_str(st),
                       st == LD_NOT_FOUND ? " (no such database)" : "");
            goto done;
        }
        ld_stdb *stdb = NULL;
        st = ld_store_open(&d.store, tmp, name, &stdb);
        bool ok = st == LD_OK &&
                  export_db(&d.store, stdb, name, !o.database, out, &count, &defs, err, sizeof err);
        if (st != LD_OK) ld_set_err(err, sizeof err, "cannot open the copy of %s", name);
        if (stdb) ld_store_close(&d.store, stdb);
        ld_store_drop(&d.store, tmp, name);
        if (!ok) goto done;
    }
    if (fflush(out) != 0) {
        ld_set_err(err, sizeof err, "cannot write %s: %s", o.out, strerror(errno));
        goto done;
    }
    fprintf(stderr, "exported %zu documents and %zu index definitions from %zu databases\n", count,
            defs, json_array_size(names));
    rc = 0;
done:
    if (out && out != stdout && fclose(out) != 0 && rc == 0) {
        ld_set_err(err, sizeof err, "cannot write %s: %s", o.out, strerror(errno));
        rc = 1;
    }
    if (tmp[0]) rmdir(tmp);
    if (rc != 0) fprintf(stderr, "litedistd export: %s\n", err);
    json_decref(names);
    ld_admin_close(&d);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * import
 * ------------------------------------------------------------------------------------------- */

/* The writers hand finished jobs here (ld_db_env.complete), on their threads. */
typedef struct import_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending, failed;
} import_wait;

static void import_done(void *ctx, ld_wjob *jobs)
{
    import_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    while (jobs) {
        ld_wjob *next = jobs->next;
        if (jobs->result != LD_WR_OK) w->failed++;
        w->pending--;
        ld_wjob_free(jobs);
        jobs = next;
    }
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The databases the import writes to, each held (a registry reference) until it ends. */
typedef struct held_dbs {
    ld_db **v;
    size_t n;
} held_dbs;

static ld_db *held_find(const held_dbs *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->v[i]->name, name)) return h->v[i];
    return NULL;
}

static ld_status held_open(held_dbs *h, ld_registry *reg, const char *name, ld_db **out)
{
    ld_db **v = realloc(h->v, (h->n + 1) * sizeof *v);
    if (!v) return LD_NOMEM;
    h->v = v;
    ld_status st = ld_registry_get_or_create(reg, name, out);
    if (st == LD_OK) h->v[h->n++] = *out;
    return st;
}

static size_t failed_so_far(import_wait *w)
{
    pthread_mutex_lock(&w->mu);
    size_t f = w->failed;
    pthread_mutex_unlock(&w->mu);
    return f;
}

static void wait_below(import_wait *w, size_t n)
{
    pthread_mutex_lock(&w->mu);
    while (w->pending > n)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* A PUT job for one line, or NULL with err naming the line. A line of LD_INDEX_DEFS_COLL is an
 * index definition (*def): written as CREATE INDEX writes it, so the index builds online and
 * the definition replicates. */
static ld_wjob *line_job(json_t *line, const char *only_db, char db_out[LD_DB_NAME_MAX + 1],
                         size_t lineno, bool *def, char *err, size_t errlen)
{
    const char *coll = json_string_value(json_object_get(line, "collection"));
    const char *id = json_string_value(json_object_get(line, "id"));
    const char *dbn = only_db ? only_db : json_string_value(json_object_get(line, "database"));
    json_t *doc = json_object_get(line, "document");
    if (!coll || !id || !json_is_object(doc)) {
        ld_set_err(err, errlen,
                   "line %zu: needs \"collection\" and \"id\" strings and a \"document\" object",
                   lineno);
        return NULL;
    }
    if (!dbn || !ld_db_name_normalize(dbn, db_out)) {
        ld_set_err(err, errlen,
                   dbn ? "line %zu: \"%s\" is not a valid database name"
                       : "line %zu: no \"database\" member, and no --database given%s",
                   lineno, dbn ? dbn : "");
        return NULL;
    }
    *def = !strcmp(coll, LD_INDEX_DEFS_COLL);
    if (!*def && (!ld_collection_name_valid(coll, strlen(coll)) || ld_collection_is_cache(coll) ||
                  ld_collection_is_internal(coll))) {
        ld_set_err(err, errlen, "line %zu: collection '%s' is invalid or reserved", lineno, coll);
        return NULL;
    }
    if (!ld_doc_id_valid(id, strlen(id))) {
        ld_set_err(err, errlen, "line %zu: invalid document id", lineno);
        return NULL;
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (*def && text) {
        char why[300];
        ld_status st =
            ld_index_definition_check(id, strlen(id), text, strlen(text), why, sizeof why);
        if (st != LD_OK) {
            free(text);
            ld_set_err(err, errlen, "line %zu: %s", lineno, st == LD_NOMEM ? "out of memory" : why);
            return NULL;
        }
    }
    size_t len = 0;
    char *norm = text ? ld_doc_normalize_text(doc, text, strlen(text), id, &len) : NULL;
    free(text);
    ld_wjob *job = norm ? calloc(1, sizeof *job) : NULL;
    if (job) {
        job->kind = LD_W_PUT;
        job->collection = strdup(coll);
        job->id = strdup(id);
        job->json = norm;
        job->json_len = len;
        job->may_create = job->may_update = true;
        norm = NULL;
    }
    free(norm);
    if (!job || !job->collection || !job->id) {
        ld_wjob_free(job);
        ld_set_err(err, errlen, "line %zu: out of memory", lineno);
        return NULL;
    }
    return job;
}

int ld_cmd_import(int argc, char **argv)
{
    ld_admin_opts o;
    if (!ld_admin_parse(argc, argv, "cPdni", &o)) return 2;
    if (!o.in) {
        fprintf(stderr, "usage: litedistd import [--config FILE] [--plugin-dir DIR] [--data DIR] "
                        "[--database NAME] --in FILE|-\n");
        return 2;
    }
    char err[1024] = "", only[LD_DB_NAME_MAX + 1];
    ld_admin_dir d;
    ld_datadir dir = {0};
    ld_hlc clock;
    ld_db_env env;
    ld_registry reg;
    bool reg_up = false;
    import_wait w = {.pending = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    FILE *in = NULL;
    char *buf = NULL;
    size_t cap = 0, lineno = 0, written = 0, defs = 0;
    held_dbs held = {0};
    int rc = 1;
    memset(&d, 0, sizeof d);
    if (o.database && !ld_db_name_normalize(o.database, only)) {
        ld_set_err(err, sizeof err, "--database '%s' is not a valid database name", o.database);
        goto done;
    }
    if (!ld_admin_open(&d, &o, err, sizeof err)) goto done;
    /* Written the way the node writes, so the node must not run meanwhile: its lock says. */
    if (!ld_datadir_lock(&dir, d.data_dir, err, sizeof err)) goto done;
    const char *node_id = json_string_value(ld_json_get_ci(d.identity, "NodeId"));
    if (d.cfg.node_id && strcmp(d.cfg.node_id, node_id) != 0) {
        ld_set_err(err, sizeof err, "data directory %s holds node '%s' and Node.NodeId is '%s'",
                   d.data_dir, node_id, d.cfg.node_id);
        goto done;
    }
    if (!ld_datadir_check(&dir, d.data_dir, d.db_dir, d.store.plugin->name, node_id, 1, err,
                          sizeof err))
        goto done;
    ld_hlc_init(&clock, NULL);
    env = (ld_db_env){
        .store = &d.store,
        .clock = &clock,
        .node_id = node_id,
        .origin = dir.origin[0] ? dir.origin : NULL,
        .restored_from = dir.restored_from[0] ? dir.restored_from : NULL,
        .dir = d.db_dir,
        .incarnation = dir.incarnation,
        .writer_batch_max = d.cfg.writer_batch_max,
        .complete = import_done,
        .complete_ctx = &w,
    };
    ld_status st = ld_registry_init(&reg, &env);
    reg_up = true;
    if (st != LD_OK) {
        ld_set_err(err, sizeof err, "cannot open the databases in %s: %s", d.db_dir,
                   ld_status_str(st));
        goto done;
    }
    in = strcmp(o.in, "-") ? fopen(o.in, "r") : stdin;
    if (!in) {
        ld_set_err(err, sizeof err, "cannot read %s: %s", o.in, strerror(errno));
        goto done;
    }
    ssize_t n;
    while ((n = getline(&buf, &cap, in)) >= 0) {
        lineno++;
        if (n == 0 || buf[0] == '\n') continue;
        json_error_t je;
        json_t *line = json_loadb(buf, (size_t)n, 0, &je);
        if (!json_is_object(line)) {
            json_decref(line);
            ld_set_err(err, sizeof err, "line %zu: not a JSON object (%s)", lineno, je.text);
            goto done;
        }
        char dbn[LD_DB_NAME_MAX + 1];
        bool def = false;
        ld_wjob *job = line_job(line, o.database ? only : NULL, dbn, lineno, &def, err, sizeof err);
        json_decref(line);
        if (!job) goto done;
        ld_db *db = held_find(&held, dbn);
        if (!db && (st = held_open(&held, &reg, dbn, &db)) != LD_OK) {
            ld_wjob_free(job);
            ld_set_err(err, sizeof err, "line %zu: cannot open database %s: %s", lineno, dbn,
                       ld_status_str(st));
            goto done;
        }
        pthread_mutex_lock(&w.mu);
        w.pending++;
        pthread_mutex_unlock(&w.mu);
        ld_writer_submit(db->writer, job);
        written++;
        if (def) defs++;
        if (written % IMPORT_WINDOW == 0) wait_below(&w, 0);
        if (failed_so_far(&w)) break;
    }
    wait_below(&w, 0);
    if (ferror(in)) {
        ld_set_err(err, sizeof err, "cannot read %s: %s", o.in, strerror(errno));
        goto done;
    }
    if (w.failed) {
        ld_set_err(err, sizeof err, "%zu writes failed in storage (see the log above)", w.failed);
        goto done;
    }
    fprintf(stderr,
            "imported %zu documents and %zu index definitions into %zu databases of node %s "
            "(indexes build online, also once the node runs)\n",
            written - defs, defs, held.n, node_id);
    rc = 0;
done:
    wait_below(&w, 0);
    for (size_t i = 0; i < held.n; i++)
        ld_registry_release(&reg, held.v[i]);
    free(held.v);
    if (reg_up) ld_registry_close_all(&reg);
    if (in && in != stdin) fclose(in);
    free(buf);
    ld_datadir_unlock(&dir);
    if (rc != 0) fprintf(stderr, "litedistd import: %s\n", err);
    ld_admin_close(&d);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
