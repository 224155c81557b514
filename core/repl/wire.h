/* The replication wire format: OperationRecord JSON (api-contract.md, plus litedist's Hlc and
 * ExpiresAtMs) to and from op-log entries, and the protocol version both sides check. */
#ifndef LD_WIRE_H
#define LD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "../db/record.h"

/* Sent as ProtocolVersion in every replication request and answer. A request that carries a
 * different one is refused naming both; one that carries none (the original) is accepted. */
#define LD_REPL_PROTOCOL 1

/* A decoded op. rec's pointers point into the owned strings. */
typedef struct ld_wire_op {
    ld_op_rec rec;
    uint64_t log_seq; /* LogSequence: its position in the sender's log */
    char *origin, *collection, *doc_id, *payload; /* malloc'd */
} ld_wire_op;

/* Decodes and validates one OperationRecord (member names in any case, numbers also as
 * strings). On failure returns false with a message naming the field in err; *out is left
 * clear. */
bool ld_wire_op_decode(json_t *j, ld_wire_op *out, char *err, size_t errlen);

/* The rules an op obeys whatever encoding carried it (JSON here, the compact form in
 * wire_ops.c): names, type, Payload, sequences, stamp. Called with the owned strings and rec's
 * scalars filled; on success points rec's strings at the owned ones and marks it synced. False
 * with a message naming the field; op is left as it was (the caller clears it). */
bool ld_wire_op_check(ld_wire_op *op, char *err, size_t errlen);

/* Frees what a decoded op owns. Safe on a zeroed op. */
void ld_wire_op_clear(ld_wire_op *op);

/* Appends the OperationRecord JSON of the log entry at log_seq to out, written directly (no
 * jansson tree: this is the sender's hot path). False when out of memory or a string is not
 * UTF-8; out then holds a partial text the caller discards. */
bool ld_wire_op_write(const ld_op_rec *op, uint64_t log_seq, struct evbuffer *out);

/* Checks a body's ProtocolVersion; false with the message to answer in err. */
bool ld_wire_protocol_ok(json_t *body, char *err, size_t errlen);

#endif
