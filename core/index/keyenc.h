/* The index key encoding: JSON values as order-preserving, self-delimiting bytes, so that an
 * index (docs/query.md "Indexes") is a plain byte-ordered range of the `ix` key space. */
#ifndef LD_KEYENC_H
#define LD_KEYENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <litedist/plugin.h>

#include "../query/qbuf.h"

/* Type tags, the first byte of every encoded value. Their order is the evaluator's order across
 * types (eval.h: null < numbers < strings < booleans < arrays < objects); MISSING (a document
 * without the path) sorts below every value. 0x00 is never a tag: it ends arrays and objects,
 * so a shorter array sorts first. */
#define LD_KE_MISSING 0x01
#define LD_KE_NULL    0x02
#define LD_KE_NUMBER  0x10
#define LD_KE_STRING  0x20
#define LD_KE_FALSE   0x30
#define LD_KE_TRUE    0x31
#define LD_KE_ARRAY   0x40
#define LD_KE_OBJECT  0x50

/* Appends enc(v) to out. For all a, b: comparing enc(a) and enc(b) with memcmp (on the shorter
 * length, then shorter first) has the sign of ld_ql_compare(a, b), and enc(a) is never a proper
 * prefix of enc(b): a compound key is the concatenation of its values' encodings.
 * Numbers compare exactly as the evaluator does (an integer against a real exactly; -0.0 equals
 * 0 and 0.0 equals 0). Returns LD_OK, LD_NOMEM (out->oom set), LD_INVALID (a NaN or infinite
 * real, which JSON cannot hold). */
ld_status ld_keyenc_append(ld_qbuf *out, const json_t *v);

/* The longest encoding of a value other than a string, array or object (a number). */
#define LD_KEYENC_SCALAR_MAX 19

/* Appends enc(v) when it takes at most cap bytes (cap >= LD_KEYENC_SCALAR_MAX), else a cut form
 * of at most cap bytes (*cut set): a string's longest prefix that fits, ended by 0x00 0x01; an
 * array's or object's leading elements or members that fit (the last possibly cut), ended by
 * 0x01. Storage keys are at most 511 bytes, so an index entry holds its values capped. The cut
 * form is self-delimiting and monotone: ld_ql_compare(a, b) <= 0 implies capped(a) <= capped(b)
 * (memcmp, shorter first) for the same cap, so a range read with capped bounds misses nothing,
 * but values that differ only past the cap share a key: a reader re-checks those documents.
 * Returns LD_OK, LD_NOMEM, LD_INVALID (cap too small, a non-finite real). */
ld_status ld_keyenc_append_capped(ld_qbuf *out, const json_t *v, size_t cap, bool *cut);

/* Appends the MISSING tag: the key part of a document that lacks the indexed path. */
ld_status ld_keyenc_append_missing(ld_qbuf *out);

/* The length of the encoded value starting at p (at most n bytes available), or 0 when p does
 * not start with a complete encoded value. Lets a reader split a compound key and find the
 * document id after the values. */
size_t ld_keyenc_skip(const uint8_t *p, size_t n);
/* ld_keyenc_skip that also tells whether the value is a cut form (ld_keyenc_append_capped):
 * then it stands for every value sharing its prefix, not for one value. */
size_t ld_keyenc_skip_cut(const uint8_t *p, size_t n, bool *cut);

#endif
