/* The Studio: where its files are found at start-up (see studio.c). Its routes are in api.h. */
#ifndef LD_API_STUDIO_H
#define LD_API_STUDIO_H

#include <stdbool.h>
#include <stddef.h>

#include "../node.h"

/* Finds and reads the Studio's files into n->studio: Studio.Root when set (a start-up error
 * when it is unusable), else <dir of litedistd>/../share/litedist/studio (the build tree and
 * an installed tree alike), else LD_STUDIO_INSTALL_DIR. When no default place holds the Studio,
 * n->studio stays NULL and /studio/ answers 404 saying so: the API works without it. Returns
 * false with a message in err only for a configured Studio.Root that cannot be served. */
bool ld_studio_init(ld_node *n, char *err, size_t errlen);

#endif
