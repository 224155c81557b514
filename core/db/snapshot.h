/* Read snapshots shared by the point reads of one event-loop pass: the GETs that arrived
 * together read through one read transaction per database instead of one each (on SQLite a
 * read transaction is two statements and two fcntl locks, ~15% of a GET). Loop thread only. */
#ifndef LD_SNAPSHOT_H
#define LD_SNAPSHOT_H

#include <event2/event.h>

#include "../storage/storage.h"
#include "database.h"
#include "registry.h"

typedef struct ld_snapshots ld_snapshots;

/* NULL when out of memory. reg must outlive the result. */
ld_snapshots *ld_snapshots_new(struct event_base *base, ld_registry *reg);

/* Closes every open snapshot; before the registry closes its databases. NULL is a no-op. */
void ld_snapshots_free(ld_snapshots *s);

/* A read transaction on db valid until the current callback returns (do not keep it): the
 * pass's snapshot when db has not committed since it was opened, else a fresh one, so a read
 * sees every write whose commit finished before it. The snapshot holds a registry reference
 * to db and closes at the end of the pass. */
ld_status ld_snapshots_txn(ld_snapshots *s, ld_db *db, ld_txn **out);

#endif
