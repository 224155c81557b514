/* Readiness (GET /readyz): the node's write probe and start-up catch-up state (api/health.c). */
#ifndef LD_API_HEALTH_H
#define LD_API_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "../node.h"

typedef struct ld_readiness ld_readiness;

/* The probe's state for node n (whose data_dir is set); NULL when memory fails. */
ld_readiness *ld_readiness_new(ld_node *n);
/* After the workers stopped (no probe running). NULL is ignored. */
void ld_readiness_free(ld_readiness *rd);

/* True once the start-up catch-up settled or timed out (then logged once); else false with what
 * is pending in why. Loop thread; main.c polls it for sd_notify READY=1. */
bool ld_readiness_catchup(ld_node *n, char *why, size_t len);

#endif
