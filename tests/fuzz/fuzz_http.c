/* libFuzzer target for the HTTP request path: every input is written as raw bytes on a loopback
 * connection to a whole in-process node (fuzz_node.c), so evhttp's parser, the router, request
 * context (headers, keys, database names, bodies, limits, CORS) and every handler behind it run
 * as in litedistd. Keys and routes the seeds use are in http.dict. Findings are sanitizer reports,
 * crashes, a node that neither answers nor closes the connection, an answer that is not HTTP,
 * and a 500 to the first request. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_node.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_node_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char head[12];
    size_t got = fuzz_node_exchange(NULL, 0, data, size, head, sizeof head);
    /* Whatever came in, what goes out is HTTP (evhttp echoes the request's version, even 0.1;
     * its own refusals included), or nothing. */
    if (got > 0 && (got < 9 || memcmp(head, "HTTP/", 5) != 0)) {
        fprintf(stderr, "the node answered something that is not HTTP: %.*s\n",
                (int)(got < sizeof head ? got : sizeof head), head);
        abort();
    }
    /* 500 is the node's own failure (out of memory, a file or database it cannot handle):
     * no input should cause one on a healthy machine. */
    if (got >= sizeof head && memcmp(head + 8, " 500", 4) == 0) {
        fprintf(stderr, "the node answered 500\n");
        abort();
    }
    return 0;
}
