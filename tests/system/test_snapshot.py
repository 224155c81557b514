"""Snapshot bootstrap between real litedistd processes: a node with nothing from other nodes
loads a peer's records page by page instead of replaying its log, resumes a cut snapshot, keeps
its own writes, and lands on the source's digest once the log after the snapshot is applied."""

import base64
import json
import signal
import struct
import threading
import time

import pytest

from conftest import assert_error, assert_ok
from test_replication import (DB, REPL_KEY, add_peer, cluster_overrides, db_state, deep, dump,
                              link, repl, status, wait_converged, wait_for)

PAGE_BYTES = 2048  # a few records per page, so a small database takes many pages


def snap_overrides(**node):
    return deep(cluster_overrides(), {"Node": dict({"ReplicationBatchSize": 50,
                                                     "SnapshotPageBytes": PAGE_BYTES}, **node)})


def fill(node, n, coll="items", start=0, threads=8, db=DB):
    """n documents of ~100 bytes written by a few concurrent clients (group commit)."""
    def work(k):
        api = node.api(db)
        for i in range(start + k, start + n, threads):
            api.must_put(coll, f"d{i:06d}", {"i": i, "pad": "x" * 80})
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts)


def snapshot_page(node, after=None, max_bytes=None, db=DB):
    body = {"ProtocolVersion": 1, "RequestingNodeId": "tester"}
    if after is not None:
        body["AfterKey"] = base64.b64encode(after).decode()
    if max_bytes is not None:
        body["MaxBytes"] = max_bytes
    return repl(node, "POST", "/api/replication/snapshot", body, db=db)


def parse_page(raw):
    assert raw[:8] == b"LDSNAP1\n"
    (hl,) = struct.unpack(">I", raw[8:12])
    hdr = json.loads(raw[12:12 + hl])
    p, recs = 12 + hl, []
    while p < len(raw):
        (kl,) = struct.unpack(">I", raw[p:p + 4])
        key = raw[p + 4:p + 4 + kl]
        p += 4 + kl
        (vl,) = struct.unpack(">I", raw[p:p + 4])
        recs.append((key, raw[p + 4:p + 4 + vl]))
        p += 4 + vl
    assert p == len(raw)
    return hdr, recs


def test_snapshot_route_pages_every_record_in_key_order(make_node):
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 120)
    a.api(DB).must_delete("items", "d000007")  # a tombstone travels too
    first = snapshot_page(a, max_bytes=1024)
    assert first.status == 200, first
    assert first.headers.get("Content-Type") == "application/vnd.litedist.snapshot"
    hdr, recs = parse_page(first.raw)
    assert hdr["First"] is True and hdr["Done"] is False
    assert hdr["TotalRecords"] == 120 and hdr["Count"] == len(recs) > 0
    assert hdr["VersionVector"] == {"a": 121} and hdr["LogSequence"] == 121
    assert "items" in hdr["Collections"]
    keys = [k for k, _ in recs]
    for _ in range(200):
        if hdr["Done"]:
            break
        r = snapshot_page(a, after=keys[-1], max_bytes=1024)
        assert r.status == 200, r
        hdr, recs = parse_page(r.raw)
        assert hdr["First"] is False and "TotalRecords" not in hdr
        keys += [k for k, _ in recs]
    assert hdr["Done"] is True
    assert keys == sorted(keys) and len(keys) == len(set(keys)) == 120
    assert keys[0] == b"items\x00d000000"


def test_snapshot_route_input_errors(make_node):
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    a.api(DB).must_put("items", "x", {"v": 1})
    assert_error(repl(a, "POST", "/api/replication/snapshot", {"ProtocolVersion": 1},
                      key="wrong"), 403, "ReplicationApiKey is invalid.")
    assert_error(repl(a, "POST", "/api/replication/snapshot", {"ProtocolVersion": 1}), 400,
                 "Database header is required.")
    assert_error(repl(a, "POST", "/api/replication/snapshot",
                      {"ProtocolVersion": 1, "AfterKey": "***"}, db=DB), 400,
                 "AfterKey must be the base64 of a key of at most 511 bytes, or null.")
    assert_error(repl(a, "POST", "/api/replication/snapshot",
                      {"ProtocolVersion": 1, "MaxBytes": -1}, db=DB), 400,
                 "MaxBytes must be a non-negative integer.")
    assert_error(repl(a, "POST", "/api/replication/snapshot", {"ProtocolVersion": 1},
                      db="nothere"), 404, "Database 'nothere' does not exist on this node.")


def wait_loaded(node, peer, timeout=30):
    return wait_for(lambda: node.log_text().count(f"snapshot from {peer} loaded") > 0,
                    timeout=timeout, what=f"the snapshot from {peer} to finish")


def test_an_empty_database_loads_a_snapshot_and_keeps_its_own_writes(make_node):
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 400)
    b = make_node(overrides=snap_overrides(), node_id="b", name="b")
    # b's own writes, never pushed before it meets a: they must survive its snapshot.
    for i in range(5):
        b.api(DB).must_put("mine", f"b{i}", {"from": "b", "i": i})
    add_peer(a, b)
    add_peer(b, a)
    wait_loaded(b, "a")
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": 400, "b": 5}
    assert len(docs["items"]) == 400 and len(docs["mine"]) == 5
    # b did not replay a's log: its own log holds only its 5 writes (and a's relayed none).
    st = next(d for d in status(b)["Databases"] if d["DatabaseName"] == DB)
    assert st["LocalMaxLogSequence"] == 5
    assert st["LogFloorVersionVector"] == {"a": 400}
    assert link(b, "a")["PulledOperations"] == 0
    # The snapshot finished: no progress left, and the link is back to Ready.
    assert st["Snapshot"] is None
    wait_for(lambda: link(b, "a")["CatchUpStatus"] == "Ready", what="b's link Ready")
    # Writes after the snapshot flow by the log as before.
    a.api(DB).must_put("items", "after", {"v": 1})
    wait_converged([a, b])


def test_a_log_that_lacks_ops_sends_the_puller_to_a_snapshot(make_node):
    """b was loaded by snapshot, so its log lacks a's first 300 ops: c, pulling from b only, is
    refused with 410 and loads a snapshot from b instead of stopping at a gap for ever."""
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 300)
    b = make_node(overrides=snap_overrides(), node_id="b", name="b")
    b.api(DB).must_put("mine", "b0", {"v": 0})
    add_peer(b, a)
    wait_loaded(b, "a")
    wait_converged([a, b])
    c = make_node(overrides=snap_overrides(), node_id="c", name="c")
    # A pull without a version vector covering b's floor is refused, naming what is missing.
    r = repl(b, "POST", "/api/replication/pull",
             {"ProtocolVersion": 1, "RequestingNodeId": "c", "AfterLogSequence": 0,
              "VersionVector": {}}, db=DB)
    assert r.status == 410, r
    body = r.body
    assert body["SnapshotRequired"] is True and body["LogFloorVersionVector"] == {"a": 300}
    assert "OldestAvailableLogSequence" in body
    c.api(DB).must_put("mine", "c0", {"v": 0})
    add_peer(c, b)
    add_peer(b, c)
    wait_loaded(c, "b")
    (vv, _), docs = wait_converged([a, b, c])
    assert vv == {"a": 300, "b": 1, "c": 1}


def test_a_cut_snapshot_resumes_where_it_stopped(make_node):
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 3000)
    # The smallest pages (about 8 records): hundreds of them, so the cut lands in the middle.
    b = make_node(overrides=snap_overrides(SnapshotPageBytes=1024), node_id="b", name="b")
    b.api(DB).must_put("mine", "b0", {"v": 0})
    add_peer(b, a)

    def midway():
        s = link(b, "a")
        snap = s and s.get("Snapshot")
        return snap and 0 < snap["RecordsDone"] < snap["RecordsTotal"] * 3 // 4 and snap
    snap = wait_for(midway, timeout=30, what="b in the middle of its snapshot")
    # b pushed its own write before it asked for the snapshot, so a's records count it too.
    assert snap["RecordsTotal"] == 3001
    assert link(b, "a")["CatchUpStatus"] == "TooOldNeedsSnapshot"
    a.send_signal(signal.SIGSTOP)  # the page in flight never answers
    try:
        done_before = link(b, "a")["Snapshot"]["RecordsDone"]
        # The dashboard shows the same progress.
        over = assert_ok(b.request("GET", "/dashboard/api/overview",
                                   headers={"ReplicationApiKey": REPL_KEY}))
        peer = next(p for d in over["Databases"] if d["Name"] == DB for p in d["ReplicationPeers"])
        assert peer["Snapshot"]["SourceNodeId"] == "a"
        assert peer["Snapshot"]["RecordsDone"] >= done_before  # a page may commit meanwhile
        assert peer["CatchUpStatus"] == "TooOldNeedsSnapshot"
        done_before = link(b, "a")["Snapshot"]["RecordsDone"]
        b.kill9()
    finally:
        a.send_signal(signal.SIGCONT)
    b.start()
    wait_loaded(b, "a")
    log = b.log_text()
    assert "snapshot from a was cut after" in log and "resuming" in log
    loaded = [l for l in log.splitlines() if "snapshot from a loaded" in l][-1]
    # "3001 records (N in T ms": only what was not merged before the cut moved again.
    moved = int(loaded.split("records (")[1].split(" ")[0])
    assert moved <= 3001 - done_before + 100, loaded
    (vv, _), docs = wait_converged([a, b])
    assert len(docs["items"]) == 3000 and vv == {"a": 3000, "b": 1}


def test_a_snapshot_taken_while_the_source_writes_lands_on_its_digest(make_node):
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 2000)
    b = make_node(overrides=snap_overrides(), node_id="b", name="b")
    b.api(DB).must_put("mine", "b0", {"v": 0})
    stop = threading.Event()
    written = []

    def writer():
        api = a.api(DB)
        i = 0
        while not stop.is_set() and i < 5000:
            doc_id = f"d{(i * 7) % 2500:06d}"  # rewrites and new ids, across the key range
            if i % 5 == 4:
                api.must_delete("items", doc_id)
            else:
                api.must_put("items", doc_id, {"i": i, "pad": "y" * 80})
            written.append(doc_id)
            i += 1
    t = threading.Thread(target=writer)
    t.start()
    try:
        add_peer(b, a)
        wait_loaded(b, "a")
    finally:
        stop.set()
        t.join(timeout=60)
    assert not t.is_alive() and written
    add_peer(a, b)
    (vv, digest), docs = wait_converged([a, b])
    assert vv["b"] == 1


def test_a_node_seeded_with_a_member_loads_its_databases_by_snapshot(make_node):
    """The whole join with one setting: the newcomer discovers the database, the member registers
    it and holds its long log back, and the newcomer loads a snapshot instead of a replay."""
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 400)
    seed = {"Node": {"SeedPeers": [{"NodeId": "a", "BaseUrl": f"http://127.0.0.1:{a.port}"}]}}
    b = make_node(overrides=deep(snap_overrides(), seed), node_id="b", name="b")
    wait_loaded(b, "a")
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": 400} and len(docs["items"]) == 400
    # Nothing was replayed: b's log is empty, and a pushed none of its 400 ops to b.
    st = next(d for d in status(b)["Databases"] if d["DatabaseName"] == DB)
    assert st["LocalMaxLogSequence"] == 0 and st["LogFloorVersionVector"] == {"a": 400}
    assert link(a, "b")["PushedOperations"] == 0
    # Both directions work after it.
    b.api(DB).must_put("items", "from-b", {"v": 1})
    a.api(DB).must_put("items", "from-a", {"v": 2})
    wait_converged([a, b])


def test_a_peer_that_takes_no_snapshot_gets_the_log_after_two_sweeps(make_node):
    """a pushes to b, but b has no link to a (manual membership, one way): a holds its long log
    back for two sweep intervals, waiting for b to load a snapshot, then pushes it."""
    a = make_node(overrides=snap_overrides(), node_id="a", name="a")
    fill(a, 200)
    b = make_node(overrides=deep(snap_overrides(), {"Node": {"AutoRegisterPeers": False}}),
                  node_id="b", name="b")
    add_peer(a, b)
    wait_for(lambda: "b takes no snapshot from this node: pushing the log" in a.log_text(),
             timeout=15, what="a giving up on b's snapshot")
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": 200} and len(docs["items"]) == 200
    assert "loading a snapshot" not in b.log_text()
