/* Static files served from memory (the Studio): one directory scanned at start-up, GET and HEAD
 * with content types, ETags and 304s, no directory listing, and no way for a request path to
 * reach a file outside the scanned set. */
#ifndef LD_STATIC_H
#define LD_STATIC_H

#include <stddef.h>

struct ld_req;

/* Bounds of a scan: beyond them files are skipped with a warning, so a wrong Studio.Root (say,
 * "/") costs a bounded amount of start-up time and memory. */
#define LD_STATIC_MAX_FILES      1024
#define LD_STATIC_MAX_FILE_BYTES (8u * 1024 * 1024)
#define LD_STATIC_MAX_BYTES      (64u * 1024 * 1024)
#define LD_STATIC_MAX_DEPTH      6

typedef struct ld_static ld_static;

/* Scans `root` (resolved with realpath) and reads every regular file under it into memory.
 * Skipped, with a warning: names starting with "." or holding characters other than
 * A-Z a-z 0-9 . _ -, symbolic links, special files, and whatever exceeds the bounds above.
 * Returns NULL with a message in err when root is not a readable directory, holds no
 * index.html, or memory runs out. The caller owns the result (ld_static_free). */
ld_static *ld_static_new(const char *root, char *err, size_t errlen);

void ld_static_free(ld_static *s);

/* The resolved directory, and how many files it serves. */
const char *ld_static_root(const ld_static *s);
size_t ld_static_count(const ld_static *s);

/* Answers r with the file named by its path segments from index `first` on ("index.html" when
 * there are none): 200 with the body (none for HEAD), 304 when If-None-Match holds its ETag,
 * 404 JSON for anything else: a name not in the set, a segment that is empty, starts with "."
 * or holds "/", "\" or NUL. A file changed on disk since it was read is read again first (one
 * lstat per request), so editing the Studio needs no restart; a file added after start-up is
 * served after a restart. Safe to call from several threads. */
void ld_static_serve(ld_static *s, struct ld_req *r, size_t first);

#endif
