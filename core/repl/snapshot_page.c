/* The snapshot page format: checked and walked on arrival (see snapshot_page.h). */
#include "snapshot_page.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../db/record.h"
#include "../util/jsonget.h"
#include "../util/strutil.h"
#include "wire.h"

void ld_snap_hdr_clear(ld_snap_hdr *h)
{
    json_decref(h->vv);
    json_decref(h->collections);
    memset(h, 0, sizeof *h);
}

void ld_snap_put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

bool ld_snap_next(const uint8_t **p, const uint8_t *end, const uint8_t **key, size_t *klen,
                  const uint8_t **val, size_t *vlen)
{
    const uint8_t *q = *p;
    if ((size_t)(end - q) < 4) return false;
    *klen = get_be32(q);
    q += 4;
    if ((size_t)(end - q) < *klen + 4) return false;
    *key = q;
    q += *klen;
    *vlen = get_be32(q);
    q += 4;
    if ((size_t)(end - q) < *vlen) return false;
    *val = q;
    *p = q + *vlen;
    return true;
}

bool ld_snap_parse(const uint8_t *buf, size_t len, ld_snap_hdr *h, const uint8_t **recs,
                   size_t *recs_len, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (len < LD_SNAP_MAGIC_LEN + 4 || memcmp(buf, LD_SNAP_MAGIC, LD_SNAP_MAGIC_LEN) != 0) {
        ld_set_err(err, errlen, "the answer is not a snapshot page");
        return false;
    }
    size_t hl = get_be32(buf + LD_SNAP_MAGIC_LEN);
    const uint8_t *p = buf + LD_SNAP_MAGIC_LEN + 4, *end = buf + len;
    if (hl > (size_t)(end - p)) {
        ld_set_err(err, errlen, "the page's header is cut short");
        return false;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)p, hl, 0, &je);
    p += hl;
    const char *dg = json_string_value(ld_json_get_ci(j, "Digest"));
    json_t *vv = ld_json_get_ci(j, "VersionVector");
    json_t *colls = ld_json_get_ci(j, "Collections");
    bool ok = json_is_object(j) && ld_wire_protocol_ok(j, err, errlen);
    if (ok &&
        (!ld_json_as_u64(ld_json_get_ci(j, "LogSequence"), &h->log_seq) ||
         !ld_json_as_u64(ld_json_get_ci(j, "Count"), &h->count) || !json_is_object(vv) || !dg ||
         strlen(dg) != 2 * LD_DIGEST_LEN || !json_is_boolean(ld_json_get_ci(j, "Done")))) {
        ld_set_err(err, errlen,
                   "the page's header lacks LogSequence, Count, VersionVector, "
                   "Digest or Done");
        ok = false;
    }
    if (ok) {
        h->done = json_is_true(ld_json_get_ci(j, "Done"));
        h->first = json_is_true(ld_json_get_ci(j, "First"));
        snprintf(h->digest, sizeof h->digest, "%s", dg);
        h->vv = json_incref(vv);
        json_t *pf = ld_json_get_ci(j, "PurgeFloor");
        const char *pd = json_string_value(ld_json_get_ci(j, "PurgedDigest"));
        size_t pl = 0;
        if ((pf && !ld_json_as_u64(pf, &h->purge_floor)) ||
            (pd &&
             (sodium_hex2bin(h->purged, LD_DIGEST_LEN, pd, strlen(pd), NULL, &pl, NULL) != 0 ||
              pl != LD_DIGEST_LEN))) {
            ld_set_err(err, errlen, "the page's PurgeFloor or PurgedDigest is malformed");
            ok = false;
        }
        const char *k;
        json_t *v;
        json_object_foreach(vv, k, v)
        {
            uint64_t seq;
            if (!ld_node_id_valid(k) || !ld_json_as_u64(v, &seq)) {
                ld_set_err(err, errlen, "the page's VersionVector is not {node id: sequence}");
                ok = false;
                break;
            }
        }
    }
    if (ok && h->first) {
        size_t i;
        json_t *c;
        if (!json_is_array(colls) ||
            !ld_json_as_u64(ld_json_get_ci(j, "TotalRecords"), &h->total)) {
            ld_set_err(err, errlen, "the first page lacks Collections or TotalRecords");
            ok = false;
        }
        json_array_foreach(ok ? colls : NULL, i, c)
        {
            /* Internal collections (the cache's) are not client names: only the framing is
             * checked, as the docs keys' collections are. */
            size_t cl = json_string_length(c);
            if (!json_is_string(c) || cl == 0 || cl > 255 || memchr(json_string_value(c), 0, cl)) {
                ld_set_err(err, errlen, "the first page names an invalid collection");
                ok = false;
                break;
            }
        }
        if (ok) h->collections = json_incref(colls);
    }
    json_decref(j);
    if (!ok) {
        if (err[0] == '\0') ld_set_err(err, errlen, "the page's header is not valid JSON");
        ld_snap_hdr_clear(h);
        return false;
    }
    /* Every record is checked before any is applied: a bad page changes nothing. */
    *recs = p;
    *recs_len = (size_t)(end - p);
    uint64_t n = 0;
    const uint8_t *key, *val;
    size_t kl, vl;
    while (ld_snap_next(&p, end, &key, &kl, &val, &vl)) {
        const char *coll, *id;
        size_t cl, il;
        ld_doc_rec rec;
        if (kl == 0 || kl > LD_SNAP_MAX_KEY || !ld_doc_key_split(key, kl, &coll, &cl, &id, &il) ||
            cl == 0 || il == 0 || !ld_doc_rec_decode(val, vl, &rec) || rec.origin_len == 0 ||
            rec.origin_len > LD_NODE_ID_MAX) {
            ld_set_err(err, errlen, "record %" PRIu64 " of the page is malformed", n + 1);
            ld_snap_hdr_clear(h);
            return false;
        }
        n++;
    }
    if (p != end || n != h->count) {
        ld_set_err(err, errlen,
                   "the page holds %" PRIu64 " whole records where it announced %" PRIu64, n,
                   h->count);
        ld_snap_hdr_clear(h);
        return false;
    }
    return true;
}
