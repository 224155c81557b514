/* A whole litedistd node inside a libFuzzer process, for the targets that drive the server from
 * the network side (fuzz_http, fuzz_ws): the real config loader, storage and auth plugins,
 * registry, writers, replication, router and WebSocket server on one libevent loop, listening on
 * 127.0.0.1 at a free port. Inputs arrive as raw bytes on a loopback connection. */
#ifndef LD_FUZZ_NODE_H
#define LD_FUZZ_NODE_H

#include <stddef.h>
#include <stdint.h>

/* Keys the node accepts; the seeds and dictionaries use them so the fuzzer gets past auth. */
#define FUZZ_ROOT_KEY "fuzz-root"
#define FUZZ_REPL_KEY "fuzz-cluster"

/* Starts the node once (aborts with a message when it cannot: a harness problem, not a
 * finding). The storage and auth plugins come from $LD_FUZZ_PLUGIN_DIR, default
 * build/bin/plugins (the CMake build's). Data lives in a temporary directory removed at exit. */
void fuzz_node_start(void);

/* Connects to the node, sends prefix then data, half-closes, and runs the node's loop until the
 * node closes the connection. The first head_len bytes of the answer are copied into head (the
 * rest is read and dropped); returns the answer's whole length. Aborts when the node neither
 * answers nor closes within 20 s: a hang is a finding too. */
size_t fuzz_node_exchange(const void *prefix, size_t prefix_len, const uint8_t *data, size_t size,
                          char *head, size_t head_len);

#endif
