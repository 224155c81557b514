/* wire_bench: the CPU cost per op of a replication pull batch, phase by phase: the sender
 * encoding op-log entries into the answer, the receiver parsing the answer and decoding (and
 * validating) each op, in the contract's JSON and in the compact encoding (wire_ops.h).
 * Documents of about 200 B and 1 KB, as bench/run's B7 writes them. */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/record.h"
#include "repl/wire.h"
#include "repl/wire_ops.h"
#include "util/jsontext.h"

#define BATCH 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The document bench/wrk/common.lua writes, with a Note of pad bytes. */
static char *document(int n, int pad)
{
    char *note = malloc((size_t)pad + 1);
    memset(note, 'x', (size_t)pad);
    note[pad] = '\0';
    char *s = NULL;
    if (asprintf(&s,
                 "{\"Id\":\"doc-%d\",\"Customer\":\"customer-%05d\",\"Email\":\"customer-%05d@"
                 "example.com\",\"Status\":\"shipped\",\"Items\":[{\"Sku\":\"sku-%03d\",\"Qty\":%d,"
                 "\"Price\":19.95},{\"Sku\":\"sku-%03d\",\"Qty\":1,\"Price\":5.5}],\"Total\":%d.45,"
                 "\"Note\":\"%s\"}",
                 n, n % 100000, n % 100000, n % 997, 1 + n % 5, (n * 7) % 997, 20 + n % 300,
                 note) < 0)
        s = NULL;
    free(note);
    return s;
}

/* Builds a pull answer of BATCH ops into a new evbuffer (the sender's work, as
 * ld_api_repl_pull does it). */
static struct evbuffer *encode(ld_op_rec *ops)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "{\"ProtocolVersion\":%d,\"NodeId\":\"node-a\",\"Operations\":[",
                        LD_REPL_PROTOCOL);
    for (int i = 0; i < BATCH; i++) {
        if (i) evbuffer_add(out, ",", 1);
        ld_wire_op_write(&ops[i], (uint64_t)i + 1, out);
    }
    evbuffer_add_printf(out, "],\"HasMore\":true}");
    return out;
}

/* The same batch as a compact pull answer. */
static struct evbuffer *encode_compact(ld_op_rec *ops)
{
    struct evbuffer *body = evbuffer_new(), *out = evbuffer_new();
    for (int i = 0; i < BATCH; i++)
        ld_wireops_op_write(&ops[i], (uint64_t)i + 1, body);
    json_t *h = json_pack("{s:i, s:s, s:b}", "ProtocolVersion", LD_REPL_PROTOCOL, "NodeId",
                          "node-a", "HasMore", 1);
    ld_wireops_frame_write(h, BATCH, body, out);
    json_decref(h);
    evbuffer_free(body);
    return out;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    int pads[] = {24, 850};
    printf("%-6s %-28s %12s\n", "doc", "phase", "us/op");
    for (size_t p = 0; p < sizeof pads / sizeof *pads; p++) {
        ld_op_rec *ops = calloc(BATCH, sizeof *ops);
        char **docs = calloc(BATCH, sizeof *docs), ids[BATCH][16];
        for (int i = 0; i < BATCH; i++) {
            docs[i] = document(i, pads[p]);
            snprintf(ids[i], sizeof ids[i], "doc-%d", i);
            ld_op_rec *o = &ops[i];
            o->op_type = LD_OP_UPDATE;
            for (int b = 0; b < LD_OP_ID_LEN; b++)
                o->id[b] = (uint8_t)(i * 31 + b);
            o->hlc = ((uint64_t)1764800000000 + (uint64_t)i) << 16;
            o->origin_seq = (uint64_t)i + 1;
            o->origin = "node-a";
            o->origin_len = 6;
            o->collection = "items";
            o->collection_len = 5;
            o->doc_id = ids[i];
            o->doc_id_len = strlen(ids[i]);
            o->payload = docs[i];
            o->payload_len = strlen(docs[i]);
        }
        double t_enc = 0, t_load = 0, t_dec = 0, t_payload = 0, t_cenc = 0, t_cdec = 0;
        size_t cbytes = 0;
        size_t bytes = 0;
        for (int r = 0; r < rounds; r++) {
            double t0 = now_s();
            struct evbuffer *b = encode(ops);
            double t1 = now_s();
            bytes = evbuffer_get_length(b);
            json_error_t je;
            json_t *body = json_loadb((const char *)evbuffer_pullup(b, -1), bytes, 0, &je);
            double t2 = now_s();
            json_t *arr = json_object_get(body, "Operations");
            for (int i = 0; i < BATCH; i++) {
                ld_wire_op op;
                char err[256];
                if (!ld_wire_op_decode(json_array_get(arr, (size_t)i), &op, err, sizeof err)) {
                    fprintf(stderr, "decode: %s\n", err);
                    return 1;
                }
                ld_wire_op_clear(&op);
            }
            double t3 = now_s();
            for (int i = 0; i < BATCH; i++) {
                json_t *d = ld_json_parse(docs[i], ops[i].payload_len, &je);
                json_decref(d);
            }
            double t4 = now_s();
            json_decref(body);
            evbuffer_free(b);
            double t5 = now_s();
            struct evbuffer *cb = encode_compact(ops);
            double t6 = now_s();
            cbytes = evbuffer_get_length(cb);
            ld_wireops_frame f;
            char ferr[300];
            if (!ld_wireops_decode(evbuffer_pullup(cb, -1), cbytes, &f, ferr, sizeof ferr)) {
                fprintf(stderr, "compact decode: %s\n", ferr);
                return 1;
            }
            double t7 = now_s();
            ld_wireops_frame_clear(&f);
            evbuffer_free(cb);
            t_cenc += t6 - t5;
            t_cdec += t7 - t6;
            t_enc += t1 - t0;
            t_load += t2 - t1;
            t_dec += t3 - t2;
            t_payload += t4 - t3;
        }
        double per = 1e6 / ((double)rounds * BATCH);
        const char *name = pads[p] == 24 ? "200B" : "1KB";
        printf("%-6s %-28s %12.2f\n", name, "encode (sender)", t_enc * per);
        printf("%-6s %-28s %12.2f\n", name, "parse the answer", t_load * per);
        printf("%-6s %-28s %12.2f\n", name, "decode + validate ops", t_dec * per);
        printf("%-6s %-28s %12.2f\n", name, "  of which: payload parse", t_payload * per);
        printf("%-6s %-28s %12zu\n", name, "answer bytes per op", bytes / BATCH);
        printf("%-6s %-28s %12.2f\n", name, "compact encode (sender)", t_cenc * per);
        printf("%-6s %-28s %12.2f\n", name, "compact decode + validate", t_cdec * per);
        printf("%-6s %-28s %12zu\n", name, "compact bytes per op", cbytes / BATCH);
        for (int i = 0; i < BATCH; i++)
            free(docs[i]);
        free(docs);
        free(ops);
    }
    return 0;
}
