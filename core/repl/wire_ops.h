/* The compact node-to-node batch encoding (application/x-litedist-ops, "ops1"): a pull answer or a
 * push body whose ops are length-prefixed bytes, the Payload raw, between litedist nodes that
 * announce it. The contract's JSON (wire.h) stays the form for every other client. */
#ifndef LD_WIRE_OPS_H
#define LD_WIRE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "wire.h"

#define LD_WIREOPS_CONTENT_TYPE "application/x-litedist-ops"
/* What a node sends in Accept on its replication calls: the compact form first. */
#define LD_WIREOPS_ACCEPT "application/x-litedist-ops, application/json"
/* The answer header by which a node says it reads and writes the compact form. */
#define LD_WIREOPS_HEADER  "X-Litedist-Wire"
#define LD_WIREOPS_TOKEN   "ops1"
#define LD_WIREOPS_VERSION 1

/* Frame: "LDOP", the version byte, varint(header length), the header (a JSON object: the
 * batch's other fields, exactly as the JSON body carries them but without Operations),
 * varint(op count), the ops. An op: OperationType (1 byte), flags (1: ParentVersion follows,
 * 2: ExpiresAtMs follows), Id (16 bytes), [ParentVersion (16 bytes)], varint Sequence, varint
 * LogSequence, varint Hlc, [varint ExpiresAtMs], then NodeId, Collection, EntityId and Payload
 * each as varint(length) and the bytes. Varints are LEB128 (7 bits a byte, low first). */

/* Appends op (at log_seq in the sender's log) in the compact form. False when out of memory. */
bool ld_wireops_op_write(const ld_op_rec *op, uint64_t log_seq, struct evbuffer *out);

/* Appends a frame holding header (a JSON object) and n ops, which are already in the compact
 * form in ops (drained into out). False when out of memory. */
bool ld_wireops_frame_write(json_t *header, size_t n, struct evbuffer *ops, struct evbuffer *out);

/* A decoded frame: the header object and the ops (each validated as ld_wire_op_decode does). */
typedef struct ld_wireops_frame {
    json_t *header;
    ld_wire_op *ops;
    size_t n;
} ld_wireops_frame;

/* Decodes and validates a whole frame. On failure returns false with a message in err (a bad op
 * is named "Operations[i]: ..."), *out left clear. */
bool ld_wireops_decode(const uint8_t *buf, size_t len, ld_wireops_frame *out, char *err,
                       size_t errlen);

/* Frees what a decoded frame owns. Safe on a zeroed frame. */
void ld_wireops_frame_clear(ld_wireops_frame *f);

/* Whether an Accept header value names the compact form (NULL: no). */
bool ld_wireops_accepted(const char *accept);

/* Whether a Content-Type header value is the compact form (NULL: no). */
bool ld_wireops_is_type(const char *content_type);

/* Whether an X-Litedist-Wire header value names the compact form (NULL: no). */
bool ld_wireops_announced(const char *value);

/* A pull answer's X-Litedist-Wire also names this token when its node reads a pull's
 * CommittedLogSequence (moving its push checkpoint to it, not to AfterLogSequence): a requester
 * may then send pulls ahead of its commits (pull.c's pipeline). */
#define LD_WIRE_COMMITTED_TOKEN "committed1"
/* Whether an X-Litedist-Wire value names LD_WIRE_COMMITTED_TOKEN. */
bool ld_wire_committed_announced(const char *value);

#endif
