"""The compact node-to-node encoding (application/x-litedist-ops): two litedist nodes replicate
through it, a client that does not ask for it gets the contract's JSON, and a compact push is
validated as a JSON one is."""

import json

from conftest import ROOT_KEY, assert_error, assert_ok
from test_replication import (DB, add_peer, cluster_overrides, repl, status, wait_converged,
                              wait_for)

CT = "application/x-litedist-ops"


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def read_varint(b, i):
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def string(b):
    return varint(len(b)) + b


def frame(header, ops):
    h = json.dumps(header).encode()
    return b"LDOP\x01" + string(h) + varint(len(ops)) + b"".join(ops)


def op(id_byte, seq, doc_id, payload, op_type=1, origin=b"z", hlc=1764800000000 << 16):
    return (bytes([op_type, 0]) + bytes([id_byte]) * 16 + varint(seq) + varint(seq) + varint(hlc) +
            string(origin) + string(b"items") + string(doc_id) + string(payload))


def decode(b):
    """A compact frame to (header, [op dict]); the layout docs/replication.md describes."""
    assert b[:5] == b"LDOP\x01", b[:16]
    n, i = read_varint(b, 5)
    header = json.loads(b[i:i + n])
    i += n
    count, i = read_varint(b, i)
    ops = []
    for _ in range(count):
        t, flags = b[i], b[i + 1]
        o = {"OperationType": t, "Id": b[i + 2:i + 18].hex()}
        i += 18
        if flags & 1:
            o["ParentVersion"] = b[i:i + 16].hex()
            i += 16
        o["Sequence"], i = read_varint(b, i)
        o["LogSequence"], i = read_varint(b, i)
        o["Hlc"], i = read_varint(b, i)
        if flags & 2:
            o["ExpiresAtMs"], i = read_varint(b, i)
        for name in ("NodeId", "Collection", "EntityId", "Payload"):
            n, i = read_varint(b, i)
            o[name] = b[i:i + n].decode()
            i += n
        ops.append(o)
    assert i == len(b)
    return header, ops


def link(node, peer):
    for d in status(node)["Databases"]:
        if d["DatabaseName"] == DB:
            for p in d["Peers"]:
                if p["PeerNodeId"] == peer:
                    return p
    return None


def cache_get(node, key):
    return node.request("GET", f"/api/cache/{key}", headers={"Database": DB, "ApiKey": ROOT_KEY})


def test_two_nodes_replicate_through_the_compact_encoding(make_node):
    a = make_node(overrides=cluster_overrides(), node_id="a", name="a")
    b = make_node(overrides=cluster_overrides(), node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    api = a.api(DB)
    # Payloads that JSON would escape travel raw; a delete and a cache entry's expiry too.
    api.must_put("items", "d1", {"s": "quote \" back \\ \u00e9 \u2028 nl\n", "n": [1, 2.5]})
    api.must_put("items", "d2", {"n": 2})
    api.must_delete("items", "d2")
    r = a.request("PUT", "/api/cache/k1?ttl=1h", body={"v": "x"},
                  headers={"Database": DB, "ApiKey": ROOT_KEY})
    assert r.status == 200, r
    b.api(DB).must_put("items", "from-b", {"n": 3})
    wait_converged([a, b])
    ca, cb = cache_get(a, "k1"), cache_get(b, "k1")
    assert ca.status == cb.status == 200, (ca, cb)
    ca.body.pop("RemainingTtl"), cb.body.pop("RemainingTtl")  # counts down between the reads
    assert ca.body == cb.body and ca.body["ExpiresAtUtc"], (ca.body, cb.body)
    # Each side learned from the other's answers that it speaks the compact form, and batches
    # went through it (pulls ask for it; pushes use it once the peer announced it).
    wait_for(lambda: link(a, "b") and link(b, "a") and link(a, "b")["PeerWire"] == "ops1" and
             link(b, "a")["PeerWire"] == "ops1", what="both links to learn ops1")
    wait_for(lambda: link(b, "a")["CompactPulls"] > 0 and link(a, "b")["CompactPulls"] > 0,
             what="compact pulls")
    # A write after that travels compact too, by push or pull.
    before = link(a, "b")["CompactPushes"] + link(b, "a")["CompactPulls"]
    api.must_put("items", "d3", {"after": True})
    wait_converged([a, b])
    wait_for(lambda: link(a, "b")["CompactPushes"] + link(b, "a")["CompactPulls"] > before,
             what="the new write to go compact")


def test_json_stays_the_default_and_compact_pushes_are_validated(make_node):
    a = make_node(overrides=cluster_overrides(), node_id="a", name="a")
    api = a.api(DB)
    api.must_put("items", "d1", {"s": "\u00e9\"\\"})
    api.must_put("items", "d2", {"n": 1})
    body = {"AfterLogSequence": 0, "RequestingNodeId": "c"}

    # A client that does not ask (the original, a script) gets the contract's JSON.
    plain = repl(a, "POST", "/api/replication/pull", body, db=DB)
    assert plain.status == 200, plain
    assert plain.headers.get("Content-Type", "").startswith("application/json")
    # A pull answer also says its node reads CommittedLogSequence (the pull pipeline).
    assert plain.headers.get("X-Litedist-Wire") == "ops1, committed1"
    assert [o["EntityId"] for o in plain.body["Operations"]] == ["d1", "d2"]

    # One that asks gets the same batch compact: the same fields, the Payload as its raw bytes.
    r = a.request("POST", "/api/replication/pull", body=body,
                  headers={"ReplicationApiKey": "test-cluster-key", "Database": DB,
                           "Accept": f"{CT}, application/json"})
    assert r.status == 200 and r.headers.get("Content-Type") == CT, r
    header, ops = decode(r.raw)
    for k in ("ProtocolVersion", "NodeId", "LastLogSequence", "LocalMaxLogSequence", "HasMore",
              "VersionVector", "Digest", "PurgePromises"):
        assert header[k] == plain.body[k], k
    assert "Operations" not in header
    for c, j in zip(ops, plain.body["Operations"], strict=True):
        for k in ("Id", "NodeId", "Collection", "EntityId", "OperationType", "Payload",
                  "Sequence", "LogSequence"):
            assert c[k] == j[k], k
        assert str(c["Hlc"]) == j["Hlc"]

    # A compact push: applied when valid, refused whole with the field named when not.
    hdrs = {"ReplicationApiKey": "test-cluster-key", "Database": DB, "Content-Type": CT}
    good = frame({"ProtocolVersion": 1, "SourceNodeId": "z", "PurgePromises": {}},
                 [op(1, 1, b"z1", b'{"via":"compact"}')])
    r = a.request("POST", "/api/replication/push", raw=good, headers=hdrs)
    assert r.status == 200 and r.body["AcceptedCount"] == 1, r
    assert r.headers.get("X-Litedist-Wire") == "ops1"
    assert api.must_get("items", "z1")["via"] == "compact"
    bad = frame({"ProtocolVersion": 1, "SourceNodeId": "z"},
                [op(2, 2, b"z2", b'{"ok":1}'), op(3, 3, b"z3", b"[1]")])
    r = a.request("POST", "/api/replication/push", raw=bad, headers=hdrs)
    assert_error(r, 400, f"The {CT} body is malformed: Operations[1]: operation field Payload "
                 "must hold a JSON object.")
    # An error does not announce the compact form: the sender's next push goes as JSON.
    assert r.headers.get("X-Litedist-Wire") is None
    assert_error(a.request("POST", "/api/replication/push", raw=good[:-3], headers=hdrs), 400,
                 f"The {CT} body is malformed: Operations[0]: operation field Payload is "
                 "truncated.")
    wrong = frame({"ProtocolVersion": 2, "SourceNodeId": "z"}, [])
    r = a.request("POST", "/api/replication/push", raw=wrong, headers=hdrs)
    assert r.status == 400 and "version mismatch" in r.body["Error"], r
    assert api.get("items", "z2").status == 404
