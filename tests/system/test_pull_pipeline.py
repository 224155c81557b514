"""The pull pipeline (docs/replication.md, "The pull pipeline"): a catching-up node sends its
next pull while the batch before it commits, tells the peer what it has committed
(CommittedLogSequence), and loses nothing when it is killed in the middle."""

import json
import os
import time

import pytest

from conftest import assert_error, assert_ok, free_port
from test_replication import (DB, add_peer, add_peer_url, cluster_overrides, db_state, deep, link,
                              repl, wait_converged, wait_for)

BATCH = 20
DOCS = 100
UPDATES = 29  # DOCS puts + UPDATES x DOCS updates: 3,000 ops, 150 batches of BATCH


def pair(make_node, b_extra=None):
    over = deep(cluster_overrides(), {"Node": {"ReplicationBatchSize": BATCH}})
    a = make_node(overrides=over, node_id="a", name="a")
    b = make_node(overrides=deep(over, b_extra or {}), node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    # b knows the database (a node that never saw one waits for the other side's push) and holds
    # an op of a's, so its catch-up replays the log instead of loading a snapshot.
    a.api(DB).must_put("c", "warm", {"i": -1})
    wait_converged([a, b])
    return a, b


def write_while_down(a):
    """DOCS documents and UPDATES statements over all of them: 3,000 small ops on a."""
    api = a.api(DB)
    for i in range(DOCS):
        api.must_put("c", f"d{i}", {"i": i, "round": 0})
    for r in range(1, UPDATES + 1):
        res = assert_ok(api.call("POST", "/api/query",
                                 body={"Query": f'UPDATE c SET {{"round": {r}}} WHERE $.i >= 0'}))
        assert res["MatchedCount"] == DOCS, res


def local_max(node):
    d = next(d for d in assert_ok(repl(node, "GET", "/api/replication/status"))["Databases"]
             if d["DatabaseName"] == DB)
    return d["LocalMaxLogSequence"]


def test_a_catching_up_node_pipelines_its_pulls_and_converges(make_node):
    a, b = pair(make_node)
    b.stop()
    write_while_down(a)
    total = local_max(a)
    assert total >= 1 + DOCS * (UPDATES + 1)
    b.start()
    (vv, digest), docs = wait_converged([a, b])
    assert vv == {"a": total} and len(docs["c"]) == DOCS + 1
    ba = link(b, "a")
    # Pulls went out while the batch before them committed, and counting them did not change
    # what the pull counters mean: each op of the catch-up was processed once (a's pushes,
    # paused while b pulls, may have carried a batch of it: the rest came by b's pulls).
    assert ba["PipelinedPulls"] > 0, ba
    assert ba["PulledOperations"] <= total and ba["PulledDuplicates"] <= 3 * BATCH, ba
    # b's pulls told a what b had committed: a's push checkpoint for b reaches a's log end.
    wait_for(lambda: link(a, "b")["LastPushedLocalLogSequence"] == total, timeout=10,
             what="a's push checkpoint for b at a's log end")
    metrics = b.request("GET", "/metrics").raw.decode()
    assert "litedist_replication_pipelined_pulls_total{" in metrics


def held_by(node):
    """How much of a's log node holds: a's log is a's own writes only, so its LogSequence is
    a's origin Sequence, and node's VersionVector entry for a says how far node has it."""
    vv, _ = db_state(node)
    return (vv or {}).get("a", 0)


def test_a_receiver_killed_mid_catch_up_loses_nothing(make_node):
    a, b = pair(make_node)
    b.stop()
    write_while_down(a)
    total = local_max(a)
    b.start()
    # While b catches up, a's push checkpoint for b never passes what b has committed: a is
    # read first, and what b holds only grows.
    deadline = time.monotonic() + 30
    while True:
        pushed = link(a, "b")["LastPushedLocalLogSequence"]
        has = held_by(b)
        assert pushed <= has, (pushed, has)
        ba = link(b, "a")
        if ba["PulledOperations"] >= 10 * BATCH and ba["PipelinedPulls"] > 0:
            break
        assert has < total, "caught up before the kill: " + str(ba)
        assert time.monotonic() < deadline, ba
    # Over 2,500 ops (125 batches) are left: the kill comes in the middle of the catch-up.
    b.kill9()
    pushed = link(a, "b")["LastPushedLocalLogSequence"]
    b.start()
    # What a believes b holds, b had committed when it died.
    assert pushed <= held_by(b), pushed
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": total} and len(docs["c"]) == DOCS + 1
    rounds = {json.loads(d)["i"]: json.loads(d)["round"] for d in docs["c"] if '"round"' in d}
    assert rounds == {i: UPDATES for i in range(DOCS)}


def test_a_failed_commit_mid_catch_up_restarts_from_the_committed_checkpoint(
        make_node, build, storage, tmp_path):
    """b's storage fails every commit for a while in the middle of its catch-up (the
    storage-fault plugin, docs/testing.md): the pipeline drops what is in flight, the cycle
    fails, and once the storage is back b pulls from its committed checkpoint: nothing skipped."""
    control = tmp_path / "fault-control.json"

    def arm(fault):
        tmp = control.with_suffix(".tmp")
        tmp.write_text(json.dumps(fault))
        os.replace(tmp, control)  # whole: the plugin never reads half a file

    a, b = pair(make_node, {"Storage": {
        "Plugin": str(build.test_plugin("storage-fault.so")),
        "Fault": {"Inner": storage, "ControlFile": str(control)}}})
    b.stop()
    write_while_down(a)
    total = local_max(a)
    b.start()
    wait_for(lambda: link(b, "a")["PulledOperations"] >= 10 * BATCH
             and link(b, "a")["PipelinedPulls"] > 0, timeout=30, what="b pipelining its pulls")
    arm({"Op": "commit", "Nth": 1, "Status": "IO", "Times": 0})  # every commit from now on
    failed = wait_for(lambda: "ingest could not be committed" in (link(b, "a")["LastError"] or ""),
                      timeout=20, what="b's pull step failing on its commit")
    has = held_by(b)
    assert has < total, "caught up before the fault"
    assert link(a, "b")["LastPushedLocalLogSequence"] <= held_by(b)
    arm({"Op": "commit", "Nth": 0})  # disarmed when b's retry begins its transaction
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": total} and len(docs["c"]) == DOCS + 1
    rounds = {json.loads(d)["i"]: json.loads(d)["round"] for d in docs["c"] if '"round"' in d}
    assert rounds == {i: UPDATES for i in range(DOCS)}
    assert failed and not control.exists()


def test_a_pull_moves_the_push_checkpoint_only_to_its_committed_position(make_node):
    a = make_node(overrides=cluster_overrides(), node_id="a", name="a")
    # A peer b that does not answer: a's pushes to it fail, only pulls move the checkpoint.
    add_peer_url(a, "b", f"http://127.0.0.1:{free_port()}")
    for i in range(10):
        a.api(DB).must_put("c", f"x{i}", {"i": i})
    # The pull b sends ahead of its commits: after entry 8, having committed through 3.
    body = {"ProtocolVersion": 1, "RequestingNodeId": "b", "AfterLogSequence": 8,
            "CommittedLogSequence": 3, "BatchSize": 100, "VersionVector": {}}
    r = repl(a, "POST", "/api/replication/pull", body, db=DB)
    assert_ok(r)
    assert "committed1" in r.headers.get("X-Litedist-Wire", ""), dict(r.headers)
    assert [op["LogSequence"] for op in r.body["Operations"]] == [9, 10]
    assert link(a, "b")["LastPushedLocalLogSequence"] == 3
    # Without it (the contract's clients) the checkpoint moves to AfterLogSequence.
    body.pop("CommittedLogSequence")
    assert_ok(repl(a, "POST", "/api/replication/pull", body, db=DB))
    assert link(a, "b")["LastPushedLocalLogSequence"] == 8
    for bad in (-1, "x", 1.5, {}):
        assert_error(repl(a, "POST", "/api/replication/pull",
                          {**body, "CommittedLogSequence": bad}, db=DB),
                     400, "CommittedLogSequence must be a non-negative integer.")
