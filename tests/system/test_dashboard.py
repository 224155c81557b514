"""GET /dashboard/api/overview: who may read it, the contract's shape, and what the peer probes
(GET /node and a WebSocket health-check) report for live, dead, misnamed and mis-keyed peers."""

import os
import time

import pytest

from conftest import (ISO_Z, KEY_LIMITED, LIMITED_DBS, MSG_KEY_INVALID, MSG_KEY_REQUIRED,
                      ROOT_KEY, assert_error, assert_ok, free_port)
from test_replication import REPL_KEY, add_peer, repl

PROBE_WAIT = 15  # seconds: probes run every second here, each bounded by 2 s

NODE_FIELDS = {"NodeId", "BaseUrl", "IsOnline", "Status", "HttpStatus", "WebSocketStatus",
               "HttpProbeDurationMs", "WebSocketProbeDurationMs", "Error", "LastCheckedUtc"}


def overrides(probe=1, key=REPL_KEY):
    return {"Node": {"ReplicationApiKey": key, "PeerProbeIntervalSeconds": probe,
                     "ReplicationTimeoutSeconds": 2}}


def overview(node, key=ROOT_KEY, **headers):
    h = dict(headers)
    if key is not None:
        h["ApiKey"] = key
    return node.request("GET", "/dashboard/api/overview", headers=h)


def wait_for(node, pred, what, timeout=PROBE_WAIT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = assert_ok(overview(node))
        if pred(last):
            return last
        time.sleep(0.2)
    pytest.fail(f"{what} not seen within {timeout} s; last overview: {last}")


def by_id(entries, node_id):
    return next((e for e in entries if e["NodeId"] == node_id), None)


def test_overview_needs_an_api_key_or_the_cluster_key(make_node):
    a = make_node(overrides=overrides(), node_id="a")
    assert_error(overview(a, key=None), 401, MSG_KEY_REQUIRED)
    assert_error(overview(a, key="not-a-key"), 401, MSG_KEY_INVALID)
    assert_error(overview(a, key=None, ReplicationApiKey="wrong"), 403,
                 "ReplicationApiKey is invalid.")
    assert assert_ok(overview(a))["NodeId"] == "a"
    assert assert_ok(overview(a, key=None, ReplicationApiKey=REPL_KEY))["NodeId"] == "a"
    # Trimmed like on every node-to-node route (found by fuzz_http: this one compared the raw
    # header, the refusal path the trimmed one, and the request was never answered).
    assert assert_ok(overview(a, key=None, ReplicationApiKey=REPL_KEY + "\x0b"))["NodeId"] == "a"


def test_an_api_key_sees_only_its_databases(make_node):
    a = make_node(overrides=overrides(), node_id="a")
    for db in (LIMITED_DBS[0], "other-db"):
        a.api(db).must_put("c", "1", {"x": 1})
    every = {d["Name"] for d in assert_ok(overview(a))["Databases"]}
    assert {LIMITED_DBS[0], "other-db"} <= every
    limited = {d["Name"] for d in assert_ok(overview(a, key=KEY_LIMITED))["Databases"]}
    assert limited == {LIMITED_DBS[0]}
    cluster = {d["Name"] for d in assert_ok(overview(a, key=None,
                                                     ReplicationApiKey=REPL_KEY))["Databases"]}
    assert cluster == every


def test_overview_shape_probes_and_history(make_node):
    a = make_node(overrides=overrides(), node_id="a")
    b = make_node(overrides=overrides(), node_id="b")
    add_peer(a, b)
    add_peer(b, a)
    dead_port = free_port()
    assert repl(a, "POST", "/api/cluster/peers",
                {"NodeId": "dead", "BaseUrl": f"http://127.0.0.1:{dead_port}"}).status == 200
    for i in range(3):
        a.api("dash").must_put("c", str(i), {"i": i})

    ov = wait_for(a, lambda o: (by_id(o["Nodes"], "b") or {}).get("Status") == "Online" and
                  (by_id(o["Nodes"], "dead") or {}).get("Status") == "Offline",
                  "b online and dead offline")
    assert {"NodeId", "TimestampUtc", "DataRootPath", "NodeDataPath", "Nodes", "PeerConnections",
            "Databases"} <= set(ov)
    assert ov["NodeId"] == "a" and ISO_Z.match(ov["TimestampUtc"])
    assert os.path.samefile(ov["DataRootPath"], a.data_dir)
    assert ov["UptimeSeconds"] >= 0 and ISO_Z.match(ov["StartedUtc"])

    # Nodes: this node first, probed like a peer; every entry has the contract's fields.
    assert ov["Nodes"][0]["NodeId"] == "a"
    assert ov["Nodes"][0]["BaseUrl"] == f"http://127.0.0.1:{a.port}"
    for e in ov["Nodes"]:
        assert NODE_FIELDS <= set(e), e
    me = ov["Nodes"][0]
    assert me["IsOnline"] and me["Status"] == "Online" and me["Error"] is None

    nb = by_id(ov["Nodes"], "b")
    assert nb["IsOnline"] is True and nb["HttpStatus"] == "Online"
    assert nb["WebSocketStatus"] == "Online" and nb["Error"] is None
    assert 0 < nb["HttpProbeDurationMs"] < 2000 and 0 < nb["WebSocketProbeDurationMs"] < 2000
    assert ISO_Z.match(nb["LastCheckedUtc"])
    dead = by_id(ov["Nodes"], "dead")
    assert dead["IsOnline"] is False and dead["HttpStatus"] == "Offline"
    assert dead["WebSocketStatus"] == "Offline"
    assert "HTTP probe" in dead["Error"] and "WebSocket probe" in dead["Error"]

    # PeerConnections: peers only, with activity, overall status and the latency history.
    conns = ov["PeerConnections"]
    assert {c["NodeId"] for c in conns} == {"b", "dead"}
    cb = by_id(conns, "b")
    assert NODE_FIELDS | {"IsPeerActive", "OverallStatus", "LatencyHistory"} <= set(cb)
    assert cb["IsPeerActive"] is True and cb["OverallStatus"] == "Online"
    assert cb["LatencyHistory"], cb
    for s in cb["LatencyHistory"]:
        assert set(s) == {"TimestampUtc", "HttpDurationMs", "WebSocketDurationMs"}
        assert ISO_Z.match(s["TimestampUtc"])
    assert any(s["HttpDurationMs"] is not None for s in cb["LatencyHistory"])
    assert all(s["HttpDurationMs"] is None for s in by_id(conns, "dead")["LatencyHistory"])

    # Databases: files, op-log length and the replication state of each peer.
    d = next(d for d in ov["Databases"] if d["Name"] == "dash")
    assert d["Status"] == "Healthy" and d["Error"] is None
    f = d["DatabaseFile"]
    assert f["Exists"] is True and f["SizeBytes"] > 0 and ISO_Z.match(f["LastWriteUtc"])
    assert os.path.exists(f["Path"])
    assert os.path.realpath(f["Path"]).startswith(os.path.realpath(ov["NodeDataPath"]))
    assert d["LocalMaxLogSequence"] == 3 and d["PeerCount"] == 2
    peers = {p["PeerNodeId"]: p for p in d["ReplicationPeers"]}
    assert set(peers) == {"b", "dead"}
    for p in peers.values():
        assert {"CatchUpStatus", "EstimatedPendingPushOperations", "LastPushedLocalLogSequence",
                "LastPulledPeerLogSequence", "OpsBehind", "LastError", "NextRetryUtc"} <= set(p)
    assert peers["dead"]["EstimatedPendingPushOperations"] == 3
    assert peers["dead"]["LastError"]
    assert d["TotalEstimatedPendingPushOperations"] >= 3


def test_history_keeps_samples_five_seconds_apart(make_node):
    a = make_node(overrides=overrides(), node_id="a")
    b = make_node(overrides=overrides(), node_id="b")
    add_peer(a, b)
    first = wait_for(a, lambda o: (by_id(o["PeerConnections"], "b") or {}).get(
        "OverallStatus") == "Online", "b online")
    checked = by_id(first["Nodes"], "b")["LastCheckedUtc"]
    # Rounds run every second; within 5 s of the first sample no second one is kept.
    later = wait_for(a, lambda o: by_id(o["Nodes"], "b")["LastCheckedUtc"] != checked,
                     "a later probe round")
    hist = by_id(later["PeerConnections"], "b")["LatencyHistory"]
    stamps = [s["TimestampUtc"] for s in hist]
    assert stamps == sorted(stamps)
    assert len(hist) <= 2  # the first round may predate b listening: one sample each side


def test_a_peer_answering_as_another_node_is_reported(make_node):
    a = make_node(overrides=overrides(), node_id="a")
    b = make_node(overrides=overrides(), node_id="b")
    assert repl(a, "POST", "/api/cluster/peers",
                {"NodeId": "impostor", "BaseUrl": f"http://127.0.0.1:{b.port}"}).status == 200
    ov = wait_for(a, lambda o: (by_id(o["Nodes"], "impostor") or {}).get("Error"),
                  "an error for the misnamed peer")
    e = by_id(ov["Nodes"], "impostor")
    assert e["IsOnline"] is False and e["HttpStatus"] == "Offline"
    assert "the node at this address is 'b'" in e["Error"]


def test_a_peer_with_another_cluster_key_is_degraded(make_node):
    a = make_node(overrides=overrides(), node_id="a")
    b = make_node(overrides=overrides(key="another-key"), node_id="b")
    add_peer(a, b)
    ov = wait_for(a, lambda o: (by_id(o["Nodes"], "b") or {}).get("Status") == "Degraded",
                  "b degraded")
    e = by_id(ov["Nodes"], "b")
    assert e["HttpStatus"] == "Online" and e["WebSocketStatus"] == "Offline"
    assert "403" in e["Error"]


def test_inactive_peers_are_probed_but_shown_inactive(make_node):
    a = make_node(overrides=overrides(), node_id="a")
    b = make_node(overrides=overrides(), node_id="b")
    assert repl(a, "POST", "/api/cluster/peers",
                {"NodeId": "b", "BaseUrl": f"http://127.0.0.1:{b.port}",
                 "IsActive": False}).status == 200
    ov = wait_for(a, lambda o: (by_id(o["PeerConnections"], "b") or {}).get("Status") == "Online",
                  "b probed")
    c = by_id(ov["PeerConnections"], "b")
    assert c["IsPeerActive"] is False and c["OverallStatus"] == "Inactive"


def test_probes_can_be_turned_off(make_node):
    a = make_node(overrides=overrides(probe=0), node_id="a")
    b = make_node(overrides=overrides(), node_id="b")
    control = make_node(overrides=overrides(probe=1), node_id="control")
    add_peer(a, b)
    add_peer(control, b)
    # The control node, started after a with 1 s probes, has probed b twice: a would have
    # probed at least once by now had its probes been on.
    first = wait_for(control, lambda o: (by_id(o["PeerConnections"], "b") or {}).get(
        "LastCheckedUtc"), "the control's first probe of b")
    first = by_id(first["PeerConnections"], "b")["LastCheckedUtc"]
    wait_for(control, lambda o: by_id(o["PeerConnections"], "b")["LastCheckedUtc"] > first,
             "the control's second probe of b")
    ov = assert_ok(overview(a))
    assert ov["Nodes"][0]["Status"] == "Unknown"
    assert ov["Nodes"][0]["HttpProbeDurationMs"] is None
    assert ov["Nodes"][0]["LastCheckedUtc"] is None
    conns = ov["PeerConnections"]
    assert [c["NodeId"] for c in conns] == ["b"]  # listed, never probed
    assert conns[0]["Status"] == "Unknown" and conns[0]["LatencyHistory"] == []
