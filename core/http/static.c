/* Static files served from memory (see static.h). The directory is scanned once and the request
 * path is only ever looked up in that list of names, never handed to the file system, so "..",
 * encoded slashes or NUL bytes in a path have nothing to resolve against. Files are small (the
 * Studio is about 100 KiB in all): reading them at start-up keeps disk reads off the event loop
 * at request time except for one lstat that notices edits. */
#include "static.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/http.h>
#include <sodium.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "request.h"

#define ETAG_HASH_BYTES 16
#define ETAG_LEN        (2 * ETAG_HASH_BYTES + 2) /* the hex digits in double quotes */

typedef struct sfile {
    char *rel;  /* path below the root, "/"-separated: the lookup key */
    char *data; /* the content, owned */
    size_t len;
    char etag[ETAG_LEN + 1];
    const char *content_type;
    bool html;
    /* What the content was read from: a change means the file was edited or replaced. */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} sfile;

struct ld_static {
    char *root;
    pthread_mutex_t mu; /* guards files' contents, which a request may re-read */
    sfile *files;       /* sorted by rel */
    size_t n, cap;
    size_t bytes;
};

/* ---------------------------------------------------------------------------------------------
 * Content types
 * ------------------------------------------------------------------------------------------- */

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"map", "application/json; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/plain; charset=utf-8"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"wasm", "application/wasm"},
};

static const char *content_type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++)
            if (!strcmp(dot + 1, content_types[i].ext)) return content_types[i].type;
    /* With nosniff, an unknown type is downloaded, never rendered or run. */
    return "application/octet-stream";
}

/* A name the scan accepts: no dot files (.git, editor swap files), nothing that needs encoding
 * in a URL. */
static bool name_ok(const char *name, size_t len)
{
    if (len == 0 || name[0] == '.') return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Reading files
 * ------------------------------------------------------------------------------------------- */

/* Reads the regular file at path into *data (malloc'd) and records what it was read from.
 * O_NOFOLLOW: a file replaced by a symbolic link after the scan is not followed. */
static bool read_file(const char *path, size_t max, char **data, size_t *len, struct stat *st,
                      char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        ld_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    char *buf = NULL;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        ld_set_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if ((uintmax_t)st->st_size > max) {
        ld_set_err(err, errlen, "%s: %lld bytes, more than the %zu allowed", path,
                   (long long)st->st_size, max);
        goto fail;
    }
    size_t want = (size_t)st->st_size, got = 0;
    buf = malloc(want ? want : 1);
    if (!buf) {
        ld_set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    while (got < want) {
        ssize_t k = read(fd, buf + got, want - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) { /* an error, or the file shrank while being read */
            ld_set_err(err, errlen, "%s: %s", path, k < 0 ? strerror(errno) : "short read");
            goto fail;
        }
        got += (size_t)k;
    }
    close(fd);
    *data = buf;
    *len = got;
    return true;
fail:
    free(buf);
    close(fd);
    return false;
}

static void set_content(sfile *f, char *data, size_t len, const struct stat *st)
{
    unsigned char hash[ETAG_HASH_BYTES];
    char hex[2 * ETAG_HASH_BYTES + 1];
    crypto_generichash(hash, sizeof hash, (const unsigned char *)data, len, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    snprintf(f->etag, sizeof f->etag, "\"%s\"", hex);
    free(f->data);
    f->data = data;
    f->len = len;
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->size = st->st_size;
    f->mtime = st->st_mtim;
}

/* ---------------------------------------------------------------------------------------------
 * Scan
 * ------------------------------------------------------------------------------------------- */

/* Adds the file root/rel. Returns false only when memory runs out; a file that cannot be read
 * or exceeds the bounds is skipped with a warning. */
static bool add_file(ld_static *s, const char *full, const char *rel)
{
    if (s->n == LD_STATIC_MAX_FILES) {
        ld_log_warn("studio: %s skipped: more than %d files", full, LD_STATIC_MAX_FILES);
        return true;
    }
    char err[PATH_MAX + 128];
    char *data;
    size_t len;
    struct stat st;
    if (!read_file(full, LD_STATIC_MAX_FILE_BYTES, &data, &len, &st, err, sizeof err)) {
        ld_log_warn("studio: skipped %s", err);
        return true;
    }
    if (s->bytes + len > LD_STATIC_MAX_BYTES) {
        ld_log_warn("studio: %s skipped: the files would exceed %u bytes", full,
                    LD_STATIC_MAX_BYTES);
        free(data);
        return true;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        sfile *grown = realloc(s->files, cap * sizeof *grown);
        if (!grown) {
            free(data);
            return false;
        }
        s->files = grown;
        s->cap = cap;
    }
    sfile *f = &s->files[s->n];
    memset(f, 0, sizeof *f);
    if (!(f->rel = strdup(rel))) {
        free(data);
        return false;
    }
    set_content(f, data, len, &st);
    f->content_type = content_type_of(rel);
    f->html = !strncmp(f->content_type, "text/html", 9);
    s->n++;
    s->bytes += len;
    return true;
}

static bool scan_dir(ld_static *s, const char *full, const char *rel, int depth)
{
    DIR *d = opendir(full);
    if (!d) {
        ld_log_warn("studio: cannot read directory %s: %s", full, strerror(errno));
        return true;
    }
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[PATH_MAX], child_rel[PATH_MAX];
        int a = snprintf(child, sizeof child, "%s/%s", full, e->d_name);
        int b = snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (!name_ok(e->d_name, strlen(e->d_name)) || a < 0 || (size_t)a >= sizeof child || b < 0 ||
            (size_t)b >= sizeof child_rel) {
            if (e->d_name[0] != '.')
                ld_log_warn("studio: %s/%s skipped: names hold only A-Z a-z 0-9 . _ -", full,
                            e->d_name);
            continue;
        }
        struct stat st;
        if (lstat(child, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 < LD_STATIC_MAX_DEPTH)
                ok = scan_dir(s, child, child_rel, depth + 1);
            else
                ld_log_warn("studio: %s skipped: deeper than %d levels", child,
                            LD_STATIC_MAX_DEPTH);
        } else if (S_ISREG(st.st_mode)) {
            ok = add_file(s, child, child_rel);
        } else {
            /* A link could lead anywhere; the served set holds only what is really here. */
            ld_log_warn("studio: %s skipped: %s", child,
                        S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
        }
    }
    closedir(d);
    return ok;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const sfile *)a)->rel, ((const sfile *)b)->rel);
}

static sfile *find(ld_static *s, const char *rel)
{
    sfile key = {.rel = (char *)rel};
    return bsearch(&key, s->files, s->n, sizeof *s->files, cmp_file);
}

ld_static *ld_static_new(const char *root, char *err, size_t errlen)
{
    ld_static *s = calloc(1, sizeof *s);
    if (!s) {
        ld_set_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    struct stat st;
    if (!(s->root = realpath(root, NULL)) || stat(s->root, &st) != 0) {
        ld_set_err(err, errlen, "%s: %s", root, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        ld_set_err(err, errlen, "%s is not a directory", root);
        goto fail;
    }
    if (!scan_dir(s, s->root, "", 0)) {
        ld_set_err(err, errlen, "out of memory reading %s", s->root);
        goto fail;
    }
    if (s->n) qsort(s->files, s->n, sizeof *s->files, cmp_file);
    if (!find(s, "index.html")) {
        ld_set_err(err, errlen, "%s holds no index.html", s->root);
        goto fail;
    }
    return s;
fail:
    ld_static_free(s);
    return NULL;
}

void ld_static_free(ld_static *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->files[i].rel);
        free(s->files[i].data);
    }
    free(s->files);
    free(s->root);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *ld_static_root(const ld_static *s)
{
    return s->root;
}

size_t ld_static_count(const ld_static *s)
{
    return s->n;
}

/* ---------------------------------------------------------------------------------------------
 * Serving
 * ------------------------------------------------------------------------------------------- */

/* Joins segments [first, nsegs) into rel; false when one may not name a file of the set. */
static bool request_rel(struct ld_req *r, size_t first, char *rel, size_t rellen)
{
    if (first >= r->nsegs) {
        snprintf(rel, rellen, "index.html");
        return true;
    }
    size_t o = 0;
    for (size_t i = first; i < r->nsegs; i++) {
        if (!ld_req_seg_is_text(r, i) || !name_ok(r->segs[i], r->seg_lens[i])) return false;
        int k = snprintf(rel + o, rellen - o, "%s%s", i > first ? "/" : "", r->segs[i]);
        if (k < 0 || (size_t)k >= rellen - o) return false;
        o += (size_t)k;
    }
    return true;
}

/* Re-reads f when the file on disk is no longer what it was read from. Returns 200 when f is
 * current, 404 when the file is gone, 500 when it cannot be read. Called with s->mu held. */
static int refresh(ld_static *s, sfile *f)
{
    char path[PATH_MAX];
    struct stat st;
    int k = snprintf(path, sizeof path, "%s/%s", s->root, f->rel);
    if (k < 0 || (size_t)k >= sizeof path) return 404;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 404;
    if (st.st_dev == f->dev && st.st_ino == f->ino && st.st_size == f->size &&
        st.st_mtim.tv_sec == f->mtime.tv_sec && st.st_mtim.tv_nsec == f->mtime.tv_nsec)
        return 200;
    char err[PATH_MAX + 128];
    char *data;
    size_t len;
    if (!read_file(path, LD_STATIC_MAX_FILE_BYTES, &data, &len, &st, err, sizeof err)) {
        ld_log_error("studio: cannot re-read %s", err);
        return 500;
    }
    s->bytes = s->bytes - f->len + len;
    set_content(f, data, len, &st);
    ld_log_info("studio: %s changed on disk, re-read (%zu bytes)", f->rel, len);
    return 200;
}

/* If-None-Match: a list of entity tags, weak or strong, or "*"; compared weakly (RFC 9110
 * 13.1.2), so an intermediary's W/ prefix still matches. */
static bool etag_matches(const char *header, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*') return true;
        if (!strncmp(p, "W/", 2)) p += 2;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - start) == elen && !strncmp(start, etag, elen)) return true;
    }
    return false;
}

void ld_static_serve(ld_static *s, struct ld_req *r, size_t first)
{
    char rel[PATH_MAX];
    if (!request_rel(r, first, rel, sizeof rel)) {
        ld_reply_error(r, 404, "No such file.");
        return;
    }
    pthread_mutex_lock(&s->mu);
    sfile *f = find(s, rel);
    int status = f ? refresh(s, f) : 404;
    if (status != 200) {
        pthread_mutex_unlock(&s->mu);
        if (status == 404)
            ld_reply_error(r, 404, "No such file: %s.", rel);
        else
            ld_reply_error(r, 500, "The file %s cannot be read.", rel);
        return;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    /* No max-age: the file names carry no content hash (there is no build step), so a cached
     * copy could mix old and new modules after an upgrade. Revalidating costs a 304. */
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "ETag", f->etag);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    if (f->html) {
        /* Scripts and styles only from the Studio's own files (no inline script can run, so a
         * value from the server rendered by mistake as HTML still executes nothing); the API
         * may be any node the user connects to. */
        evhttp_add_header(out, "Content-Security-Policy",
                          "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self' http: https:; "
                          "object-src 'none'; base-uri 'none'; form-action 'none'; "
                          "frame-ancestors 'none'");
        evhttp_add_header(out, "X-Frame-Options", "DENY");
        evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    }
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "If-None-Match");
    /* Replying copies the bytes into the connection's buffer, so the lock covers the copy and
     * a concurrent re-read cannot free them underneath. */
    if (inm && etag_matches(inm, f->etag)) {
        ld_reply_text(r, 304, NULL, NULL, 0);
    } else {
        if (r->method == EVHTTP_REQ_HEAD) {
            /* evhttp sends no body for HEAD and so counts none: say what GET would send. */
            char clen[32];
            snprintf(clen, sizeof clen, "%zu", f->len);
            evhttp_add_header(out, "Content-Length", clen);
        }
        ld_reply_text(r, 200, f->content_type, f->data, f->len);
    }
    pthread_mutex_unlock(&s->mu);
}
