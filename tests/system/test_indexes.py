"""Indexes (docs/query.md "Indexes"): CREATE INDEX / DROP INDEX over POST /api/query with their
errors and role, GET /api/indexes, entries kept exact through document writes, replication of
definitions and of indexed writes (stamp conflicts included), an online build resumed after
kill -9, and DROP removing every entry.

An index's contents are checked through GET /api/indexes: Entries must equal the live documents
and Bytes the exact sum of the entry keys (4-byte index number, the encoded value, the id), which
the test computes for the values it writes (keyenc.h: an integer is 11 bytes, a string 3 + its
length, a missing path 1)."""

import sqlite3
import threading
import time

import pytest

from conftest import assert_error, assert_ok, key_without

REPL_KEY = "test-cluster-key"


def query(api, q, take=None):
    body = {"Query": q}
    if take is not None:
        body["Take"] = take
    return api.call("POST", "/api/query", body=body)


def indexes(api):
    return assert_ok(api.call("GET", "/api/indexes"))


def index_named(api, name):
    return next((i for i in indexes(api) if i["Name"] == name), None)


def wait_for(pred, timeout=15, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last})")


def wait_ready(api, name, timeout=15):
    return wait_for(lambda: (lambda i: i if i and i["State"] == "Ready" else None)(
        index_named(api, name)), timeout, f"index {name} ready")


def enc_len(v):
    """Bytes of keyenc.h's encoding of the values these tests write."""
    if v is None:
        return 1  # MISSING (the tests never store null)
    if isinstance(v, bool):
        return 1
    if isinstance(v, int):
        return 11
    if isinstance(v, str):
        assert "\0" not in v
        # A single-path index's value has 251 bytes of room (keyenc.h's cut form beyond).
        return min(3 + len(v.encode()), 251)
    raise AssertionError(v)


def expected_size(docs, path):
    """(Entries, Bytes) of an index on top-level member `path` over {id: doc} of live docs."""
    return len(docs), sum(4 + enc_len(d.get(path)) + len(i.encode()) for i, d in docs.items())


def assert_index_matches(api, name, docs, path):
    entries, size = expected_size(docs, path)
    got = index_named(api, name)
    assert got is not None, indexes(api)
    assert (got["Entries"], got["Bytes"]) == (entries, size), (got, entries, size)


# ------------------------------------------------------------------------------------------------
# DDL and the route, on the shared node
# ------------------------------------------------------------------------------------------------


def test_create_list_and_drop_with_their_errors(node, db):
    api = node.api(db)
    for i in range(5):
        assert_ok(api.put("orders", f"o{i}", {"Total": i * 10, "Who": f"c{i % 2}"}))
    r = assert_ok(query(api, "CREATE INDEX by_total ON orders ($.Total)"))
    assert r["AppliedCount"] == 1
    assert r["Rows"] == [{"operation": "createIndex", "collection": "orders", "index": "by_total"}]
    ix = wait_ready(api, "by_total")
    assert ix["Collection"] == "orders" and ix["Paths"] == ["$.Total"]
    assert_index_matches(api, "by_total", {f"o{i}": {"Total": i * 10} for i in range(5)}, "Total")

    # A compound index; IF NOT EXISTS on an existing one changes nothing.
    assert_ok(query(api, "create index if not exists by_who ON orders ($.Who, $.Total)"))
    r = assert_ok(query(api, "CREATE INDEX IF NOT EXISTS by_who ON orders ($.Other)"))
    assert r["AppliedCount"] == 0 and r["Rows"] == []
    assert wait_ready(api, "by_who")["Paths"] == ["$.Who", "$.Total"]
    assert [i["Name"] for i in indexes(api)] == ["by_total", "by_who"]

    assert_error(query(api, "CREATE INDEX by_total ON orders ($.Total)"), 409,
                 "Index 'by_total' already exists on collection 'orders'.")
    assert_error(query(api, "DROP INDEX nope ON orders"), 404,
                 "Index 'nope' does not exist on collection 'orders'.")
    assert_error(query(api, "CREATE INDEX x ON orders ($)"), 400,
                 startswith="An index path must name a member below the document")
    assert_error(query(api, "CREATE INDEX x ON orders (Id)"), 400,
                 startswith="An index path cannot be the document id")
    assert_error(query(api, "CREATE INDEX x ON orders ($.a + 1)"), 400, startswith="Expected ')'")
    assert_error(query(api, "CREATE INDEX x ON orders ()"), 400,
                 startswith="Expected a path such as $.a.b")
    assert_error(query(api, "CREATE INDEX x ON cache ($.a)"), 403,
                 "Collection 'cache' is reserved. Use '/api/cache' endpoints.")
    assert_error(query(api, "CREATE INDEX x ON _sys_indexes ($.a)"), 403)
    assert_error(query(api, "CREATE INDEX x ON 9bad ($.a)"), 400)
    assert_error(query(api, "CREATE TABLE x"), 400, "Unable to determine query command.")
    # Schema-level: ADD_DB, as creating a database.
    assert_error(query(node.api(db, key=key_without("ADD_DB")), "DROP INDEX by_who ON orders"),
                 403, "ApiKey is not allowed to create databases.")
    # The definitions are internal: not a collection a client lists or queries.
    assert "_sys_indexes" not in assert_ok(api.list_collections())

    r = assert_ok(query(api, "DROP INDEX by_who ON orders"))
    assert r["Rows"] == [{"operation": "dropIndex", "collection": "orders", "index": "by_who"}]
    assert_ok(query(api, "DROP INDEX IF EXISTS by_who ON orders"))
    assert [i["Name"] for i in indexes(api)] == ["by_total"]
    # A member called like a DDL word stays usable: the words are not reserved.
    assert_ok(query(api, "SELECT $ FROM orders WHERE index = 1 OR on = 2 OR drop = 3"))


def test_entries_follow_every_kind_of_write(node, db):
    api = node.api(db)
    docs = {}
    for i in range(20):
        doc = {"Total": i} if i % 5 else {"Other": "x"}  # some without the path: MISSING
        assert_ok(api.put("t", f"d{i:02}", doc))
        docs[f"d{i:02}"] = doc
    assert_ok(query(api, "CREATE INDEX tot ON t ($.Total)"))
    wait_ready(api, "tot")
    assert_index_matches(api, "tot", docs, "Total")

    assert_ok(api.put("t", "d01", {"Total": "now a string"}))
    docs["d01"] = {"Total": "now a string"}
    assert_ok(api.delete("t", "d02"))
    del docs["d02"]
    assert_ok(api.post("t", {"Id": "new", "Total": 7}))
    docs["new"] = {"Total": 7}
    assert_ok(api.put("t", "d03", {"Total": 3}))  # the same value again
    # A value longer than a storage key holds: indexed by its prefix, the write goes through.
    assert_ok(api.put("t", "long", {"Total": "x" * 3000}))
    assert_ok(api.put("t", "long", {"Total": "x" * 2000 + "y"}))  # the same prefix, same key
    docs["long"] = {"Total": "x" * 2000 + "y"}
    assert_ok(query(api, "INSERT INTO t VALUES {\"Id\": \"q\", \"Total\": 12345}"))
    docs["q"] = {"Total": 12345}
    # Strings sort above numbers (docs/query.md), so the string matches >= 10 too.
    assert_ok(query(api, "UPDATE t SET {\"Total\": 1000000} WHERE $.Total >= 10"))
    for k, d in docs.items():
        v = d.get("Total")
        if isinstance(v, str) or (isinstance(v, int) and v >= 10):
            d["Total"] = 1000000
    assert_ok(query(api, "DELETE FROM t WHERE $.Total = 7"))
    docs = {k: d for k, d in docs.items() if d.get("Total") != 7}
    assert "new" not in docs and "d07" not in docs
    assert_ok(api.delete("t", "d02"))  # deleting a tombstone changes nothing
    assert_index_matches(api, "tot", docs, "Total")
    assert_index_matches(api, "tot", docs, "Total")  # stable on a second read


# ------------------------------------------------------------------------------------------------
# Replication
# ------------------------------------------------------------------------------------------------


def cluster_overrides(**node):
    return {"Node": {"ReplicationApiKey": REPL_KEY, "AntiEntropyIntervalSeconds": 1,
                     "ReplicationTimeoutSeconds": 2, "LogLevel": "info", **node}}


def add_peer(node, peer):
    r = node.request("POST", "/api/cluster/peers",
                     body={"NodeId": peer.node_id(), "BaseUrl": f"http://127.0.0.1:{peer.port}",
                           "IsActive": True},
                     headers={"ReplicationApiKey": REPL_KEY})
    assert r.status == 200, r


def test_definitions_and_entries_replicate(make_node):
    a = make_node(overrides=cluster_overrides(), node_id="a", name="a")
    b = make_node(overrides=cluster_overrides(), node_id="b", name="b")
    aa, bb = a.api("ix"), b.api("ix")
    docs = {}
    for i in range(10):
        assert_ok(aa.put("c", f"k{i}", {"v": i}))
        docs[f"k{i}"] = {"v": i}
    # Two CREATEs of the same name with other paths before the nodes meet: the greater stamp
    # wins everywhere and the loser's entries go.
    assert_ok(query(bb, "CREATE INDEX by_v ON c ($.w)"))
    time.sleep(0.002)  # a later stamp for a's definition (HLC milliseconds)
    assert_ok(query(aa, "CREATE INDEX by_v ON c ($.v)"))
    add_peer(a, b)
    add_peer(b, a)
    for api in (aa, bb):
        wait_for(lambda: (lambda i: i and i["State"] == "Ready" and i["Paths"] == ["$.v"]
                          and i["Entries"] == 10)(index_named(api, "by_v")), 20,
                 "the winning definition built on both")

    # Writes on both sides, and one id written on both at once: only the winning state counts.
    assert_ok(bb.put("c", "k1", {"v": 100}))
    assert_ok(aa.put("c", "k2", {"v": "two"}))
    assert_ok(bb.delete("c", "k3"))
    assert_ok(aa.put("c", "k4", {"v": 40}))
    assert_ok(bb.put("c", "k4", {"v": "forty"}))
    docs["k1"] = {"v": 100}
    docs["k2"] = {"v": "two"}
    del docs["k3"]

    def converged():
        la, lb = (sorted((d["Id"], d["v"]) for d in assert_ok(x.list_docs("c", take=1000)))
                  for x in (aa, bb))
        return la == lb and len(la) == 9 and la
    final = wait_for(converged, 20, "documents converged")
    docs = {i: {"v": v} for i, v in final}
    for api in (aa, bb):
        wait_for(lambda: index_named(api, "by_v")["Bytes"] == expected_size(docs, "v")[1], 10,
                 "entries follow replicated writes")
        assert_index_matches(api, "by_v", docs, "v")

    # DROP replicates too.
    assert_ok(query(bb, "DROP INDEX by_v ON c"))
    wait_for(lambda: indexes(aa) == [], 20, "the drop replicated")


def test_a_node_loaded_by_snapshot_gets_the_index(make_node):
    from test_snapshot import DB, fill, snap_overrides, wait_loaded
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 150)
    assert_ok(query(a.api(DB), "CREATE INDEX by_i ON items ($.i)"))
    b = make_node(overrides=snap_overrides(), node_id="b", name="b")
    # b's own documents of the collection, never pushed before it meets a: indexed too.
    for i in range(3):
        assert_ok(b.api(DB).put("items", f"b{i}", {"i": f"b{i}"}))
    add_peer(a, b)
    add_peer(b, a)
    wait_loaded(b, "a")
    docs = {f"d{i:06d}": {"i": i} for i in range(150)}
    docs.update({f"b{i}": {"i": f"b{i}"} for i in range(3)})
    for node in (a, b):
        api = node.api(DB)
        wait_for(lambda: (lambda i: i and i["State"] == "Ready" and i["Entries"] == 153)(
            index_named(api, "by_i")), 30, f"the index complete on {node.name}")
        assert_index_matches(api, "by_i", docs, "i")


# ------------------------------------------------------------------------------------------------
# Online build: kill -9 in the middle, then DROP
# ------------------------------------------------------------------------------------------------


def test_build_resumes_after_kill9_and_drop_removes_every_entry(make_node, storage):
    # Sync normal: a kill -9 (not a power loss) keeps every commit, and the test stays quick.
    n = make_node(overrides={"Node": {"IndexBuildBatchSize": 1, "LogLevel": "info"},
                             "Storage": {"Sync": "normal"}})
    api = n.api("big")
    total = 400
    docs = {f"d{i:04}": {"n": i} for i in range(total)}
    failures = []

    def writer(ids):
        w = n.api("big")
        for i in ids:
            r = w.put("c", i, docs[i])
            if r.status != 200:
                failures.append(r)
    ids = list(docs)
    threads = [threading.Thread(target=writer, args=(ids[k::6],)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures and not any(t.is_alive() for t in threads), failures[:3]

    assert_ok(query(api, "CREATE INDEX by_n ON c ($.n)"))
    ix = wait_for(lambda: (lambda i: i if i and i["Entries"] > 0 else None)(
        index_named(api, "by_n")), 20, "the build under way", interval=0.002)
    n.kill9()
    assert ix["State"] == "Building", "the build finished before the kill: make it bigger"
    n.start()
    # Writes while it resumes: above the cursor the build takes them, below it they are kept.
    assert_ok(api.put("c", "d0000", {"n": "first"}))
    assert_ok(api.put("c", "d0399", {"n": "last"}))
    assert_ok(api.delete("c", "d0200"))
    docs["d0000"] = {"n": "first"}
    docs["d0399"] = {"n": "last"}
    del docs["d0200"]
    wait_ready(api, "by_n", timeout=60)
    assert_index_matches(api, "by_n", docs, "n")

    assert_ok(query(api, "DROP INDEX by_n ON c"))
    assert indexes(api) == []
    if storage != "sqlite":
        return
    # The entries themselves go, in bounded steps after the drop: read the file as it runs.
    files = list(n.data_dir.rglob("big*.db")) + list(n.data_dir.rglob("big*.sqlite"))
    assert files, list(n.data_dir.rglob("*"))
    con = sqlite3.connect(f"file:{files[0]}?mode=ro", uri=True, timeout=5)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        ix_tables = [t for t in tables if t.endswith("ix") and "def" not in t]
        assert len(ix_tables) == 1, tables
        wait_for(lambda: con.execute(f'SELECT COUNT(*) FROM "{ix_tables[0]}"').fetchone()[0] == 0,
                 30, "the dropped index's entries deleted")
    finally:
        con.close()
