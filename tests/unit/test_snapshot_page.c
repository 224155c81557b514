/* Unit tests for the snapshot page format (core/repl/snapshot_page.c): a well-formed page is
 * accepted whole, and any defect (magic, header, framing, a record, the count) refuses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/record.h"
#include "repl/snapshot_page.h"

#define HDR_FIRST                                                                                  \
    "{\"ProtocolVersion\":1,\"NodeId\":\"a\",\"LogSequence\":7,\"VersionVector\":{\"a\":7},"       \
    "\"Digest\":\"00112233445566778899aabbccddeeff\",\"First\":true,\"Count\":%d,\"Done\":true,"   \
    "\"Collections\":[\"items\"],\"TotalRecords\":2}"

/* Builds a page of `count` announced records holding the `n` records given. */
static size_t build(uint8_t *out, const char *hdr, int count, int n, bool bad_record)
{
    char h[512];
    snprintf(h, sizeof h, hdr, count);
    size_t p = 0;
    memcpy(out, LD_SNAP_MAGIC, LD_SNAP_MAGIC_LEN);
    p += LD_SNAP_MAGIC_LEN;
    ld_snap_put_be32(out + p, (uint32_t)strlen(h));
    p += 4;
    memcpy(out + p, h, strlen(h));
    p += strlen(h);
    for (int i = 0; i < n; i++) {
        char id[16]; /* "d" and any int: -Wformat-truncation at -O0 */
        snprintf(id, sizeof id, "d%d", i);
        size_t kl;
        uint8_t *key = ld_doc_key("items", 5, id, strlen(id), &kl);
        ld_doc_rec r = {
            .hlc = 100 + (uint64_t)i, .origin = "a", .origin_len = 1, .json = "{}", .json_len = 2};
        size_t vl;
        uint8_t *val = ld_doc_rec_encode(&r, &vl);
        assert_non_null(key);
        assert_non_null(val);
        if (bad_record && i == n - 1) val[0] = 0xee; /* an unknown record version */
        ld_snap_put_be32(out + p, (uint32_t)kl);
        memcpy(out + p + 4, key, kl);
        p += 4 + kl;
        ld_snap_put_be32(out + p, (uint32_t)vl);
        memcpy(out + p + 4, val, vl);
        p += 4 + vl;
        free(key);
        free(val);
    }
    return p;
}

static void accepts_a_whole_page(void **state)
{
    (void)state;
    uint8_t page[2048];
    size_t len = build(page, HDR_FIRST, 2, 2, false);
    ld_snap_hdr h;
    const uint8_t *recs;
    size_t rl;
    char err[200] = "";
    assert_true(ld_snap_parse(page, len, &h, &recs, &rl, err, sizeof err));
    assert_true(h.first && h.done);
    assert_int_equal(h.count, 2);
    assert_int_equal(h.total, 2);
    assert_int_equal(h.log_seq, 7);
    assert_string_equal(h.digest, "00112233445566778899aabbccddeeff");
    const uint8_t *p = recs, *k, *v;
    size_t kl, vl;
    int n = 0;
    while (ld_snap_next(&p, recs + rl, &k, &kl, &v, &vl))
        n++;
    assert_int_equal(n, 2);
    ld_snap_hdr_clear(&h);
}

static void refuses(const uint8_t *page, size_t len)
{
    ld_snap_hdr h;
    const uint8_t *recs;
    size_t rl;
    char err[200] = "";
    assert_false(ld_snap_parse(page, len, &h, &recs, &rl, err, sizeof err));
    assert_true(err[0] != '\0');
    assert_null(h.vv);
    assert_null(h.collections);
}

static void refuses_every_defect(void **state)
{
    (void)state;
    uint8_t page[2048];
    size_t len = build(page, HDR_FIRST, 3, 2, false); /* announces 3, holds 2 */
    refuses(page, len);
    len = build(page, HDR_FIRST, 2, 2, true); /* a record that does not decode */
    refuses(page, len);
    len = build(page, HDR_FIRST, 2, 2, false);
    refuses(page, len - 1); /* cut short */
    page[0] = 'X';          /* not a page */
    refuses(page, len);
    len = build(page, "{\"ProtocolVersion\":1,\"Count\":%d}", 0, 0, false); /* no fields */
    refuses(page, len);
    len = build(page, "{\"ProtocolVersion\":9,\"Count\":%d}", 0, 0, false); /* another protocol */
    refuses(page, len);
    /* A first page without its collections. */
    len = build(page,
                "{\"ProtocolVersion\":1,\"LogSequence\":1,\"VersionVector\":{},\"Digest\":"
                "\"00112233445566778899aabbccddeeff\",\"First\":true,\"Count\":%d,\"Done\":true}",
                0, 0, false);
    refuses(page, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_a_whole_page),
        cmocka_unit_test(refuses_every_defect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
