"""Op-log pruning between real litedistd processes: the contract's route and settings, entries a
peer lacks kept until it has them, the hard cap sending a peer that stayed away to a snapshot,
and documents untouched by pruning under concurrent writes."""

import threading

from conftest import assert_ok
from test_replication import (DB, add_peer, db_state, deep, dump, link, repl, status,
                              wait_converged, wait_for)
from test_snapshot import fill, snap_overrides, wait_loaded


def prune_overrides(**node):
    return snap_overrides(**dict({"OperationLogRetentionDays": 0,
                                  "OperationLogRetainRecentOperations": 0}, **node))


def prune(node):
    return assert_ok(repl(node, "POST", "/api/replication/operation-log/prune"))


def db_status(node):
    return next(d for d in status(node)["Databases"] if d["DatabaseName"] == DB)


def test_the_prune_route_and_the_status_it_changes(make_node):
    off = make_node(overrides=prune_overrides(OperationLogPruningEnabled=False), node_id="off")
    off.api(DB).must_put("items", "x", {"v": 1})
    assert prune(off) == []
    a = make_node(overrides=prune_overrides(OperationLogPruningBatchSize=7), node_id="a")
    fill(a, 40)
    before = db_status(a)
    assert before["OldestAvailableLogSequence"] == 1 and before["OperationLogEntries"] == 40
    rows = prune(a)
    assert rows == [{"DatabaseName": DB, "Status": "Pruned", "Reason": None,
                     "PruneThroughLogSequence": 40, "PrunedCount": 40,
                     "MaxPrunedLogSequence": 40, "PrunedReceiptCount": 0}]
    after = db_status(a)
    assert after["OldestAvailableLogSequence"] == 41 and after["OperationLogEntries"] == 0
    assert after["LogFloorVersionVector"] == {"a": 40}
    assert (after["VersionVector"], after["Digest"]) == (before["VersionVector"], before["Digest"])
    assert prune(a)[0]["Status"] == "Skipped"
    # The recent operations stay.
    r = make_node(overrides=prune_overrides(OperationLogRetainRecentOperations=15), node_id="r")
    fill(r, 40)
    row = prune(r)[0]
    assert row["PrunedCount"] == 25 and row["MaxPrunedLogSequence"] == 25
    assert "retained" in prune(r)[0]["Reason"]
    # Entries younger than the retention window stay.
    w = make_node(overrides=prune_overrides(OperationLogRetentionDays=7), node_id="w")
    fill(w, 10)
    row = prune(w)[0]
    assert row["Status"] == "Skipped" and "OperationLogRetentionDays" in row["Reason"]


def test_pruning_keeps_what_a_registered_peer_lacks(make_node):
    a = make_node(overrides=prune_overrides(), node_id="a", name="a")
    b = make_node(overrides=prune_overrides(), node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    fill(a, 20)
    wait_converged([a, b])
    wait_for(lambda: link(a, "b")["LastPushedLocalLogSequence"] == 20, what="a's push checkpoint")
    b.stop()
    fill(a, 30, start=20)
    row = prune(a)[0]
    assert row["PrunedCount"] == 20 and row["MaxPrunedLogSequence"] == 20
    assert "peer b has not received operation 21" in row["Reason"]
    b.start()
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": 50} and len(docs["items"]) == 50
    # b caught up from the log (no snapshot): nothing it lacked was pruned.
    assert "loading a snapshot" not in b.log_text()
    wait_for(lambda: link(a, "b")["LastPushedLocalLogSequence"] == 50, what="b acknowledging")
    assert prune(a)[0]["MaxPrunedLogSequence"] == 50


def test_pruning_asks_the_peers_in_memory_not_the_peers_file(make_node):
    """At every batch the prune asks which peers hold it back from the links the node keeps in
    memory (every peers change brings them in line), not by reading the database's peers file
    again: with the file gone under the running node, b still holds pruning back."""
    quiet = {"AntiEntropyIntervalSeconds": 3600}  # no sweep re-reads the file meanwhile
    a = make_node(overrides=prune_overrides(OperationLogPruningBatchSize=4, **quiet),
                  node_id="a", name="a")
    b = make_node(overrides=prune_overrides(**quiet), node_id="b", name="b")
    a.api(DB).must_put("items", "first", {"v": 1})
    b.api(DB).must_put("items", "from-b", {"v": 1})
    add_peer(a, b, db=DB)
    add_peer(b, a, db=DB)
    fill(a, 10)
    wait_converged([a, b])
    held = a.data_dir / "peers" / f"{DB}.json"
    assert held.exists()
    wait_for(lambda: link(a, "b")["LastPushedLocalLogSequence"] ==
             db_status(a)["LocalMaxLogSequence"], what="b holding all of a's log")
    acked = link(a, "b")["LastPushedLocalLogSequence"]
    b.stop()
    fill(a, 10, start=10)
    held.unlink()
    row = prune(a)[0]
    assert row["MaxPrunedLogSequence"] == acked, row
    assert f"peer b has not received operation {acked + 1}" in row["Reason"], row


def test_a_peer_away_past_the_hard_cap_returns_through_a_snapshot(make_node):
    cap = prune_overrides(OperationLogMaxRetentionDays=0)
    a = make_node(overrides=cap, node_id="a", name="a")
    b = make_node(overrides=cap, node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    fill(a, 10)
    wait_converged([a, b])
    b.stop()
    fill(a, 300, start=10)
    a.api(DB).must_delete("items", "d000003")
    # Past the hard cap b no longer holds pruning back: every entry goes. The cap (0 days) lets
    # go of entries stamped before the pass's clock reading, so the delete goes once a
    # millisecond has passed since it: a pass in the same millisecond keeps it.
    wait_for(lambda: prune(a)[0]["MaxPrunedLogSequence"] == 311, timeout=5,
             what="the last entry past the hard cap")
    b.start()
    wait_loaded(b, "a")
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": 311} and len(docs["items"]) == 309


def test_pruning_under_concurrent_writes_changes_no_document(make_node):
    a = make_node(overrides=prune_overrides(OperationLogPruningBatchSize=50), node_id="a",
                  name="a")
    b = make_node(overrides=prune_overrides(), node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    stop = threading.Event()
    acked = {}

    def writer():
        api = a.api(DB)
        for i in range(1500):
            if stop.is_set():
                break
            doc_id = f"w{i % 400:04d}"
            api.must_put("items", doc_id, {"i": i})
            acked[doc_id] = i
    t = threading.Thread(target=writer)
    t.start()
    rounds = 0
    try:
        while t.is_alive() and rounds < 200:
            prune(a)
            rounds += 1
    finally:
        stop.set()
        t.join(timeout=60)
    assert not t.is_alive() and rounds > 1
    (vv, _), docs = wait_converged([a, b])
    got = {d["Id"]: d["i"] for d in map(__import__("json").loads, docs["items"])}
    assert got == acked  # every acknowledged write, at its last value, on both nodes
    prune(a)
    assert db_status(a)["OperationLogEntries"] < 1500
