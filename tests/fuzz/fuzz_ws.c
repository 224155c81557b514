/* libFuzzer target for WebSocket frames and the sync-request messages: a valid upgrade to
 * /ws/replication with the cluster key is sent to a whole in-process node (fuzz_node.c), then the
 * input as the client's frames. Runs the evhttp takeover (core/ws/ws_server.c), wslay framing
 * and the close handshake (core/ws/ws_conn.c) and the message handler of core/api/replication.c
 * (health-check, sync-request with its node id, database and key checks). Frames from a client
 * must be masked; the seeds show the shape (see tests/fuzz/corpus/ws). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_node.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char upgrade[] = "GET /ws/replication HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "ReplicationApiKey: " FUZZ_REPL_KEY "\r\n"
                              "\r\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_node_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char ok[] = "HTTP/1.1 101 ";
    char head[sizeof ok - 1];
    size_t got = fuzz_node_exchange(upgrade, strlen(upgrade), data, size, head, sizeof head);
    /* The upgrade is valid whatever frames follow: it must always be taken. */
    if (got < sizeof head || memcmp(head, ok, sizeof head) != 0) {
        fprintf(stderr, "the upgrade was not answered 101 (%zu bytes: %.*s)\n", got,
                (int)(got < sizeof head ? got : sizeof head), head);
        abort();
    }
    return 0;
}
