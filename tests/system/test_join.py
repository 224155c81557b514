"""Joining, replacing and leaving nodes (docs/replication.md: "Adding a node", "Replacing a node",
"Removing a node"): each test follows its runbook step by step on real processes."""

import time

import pytest

from conftest import assert_error, assert_ok
from test_replication import dump, wait_for

REPL_KEY = "test-cluster-key"
TIMEOUT = 30
DBS = {"shop": 200, "inventory": 80, "quiet": 20}  # database -> documents written before a join


def overrides(**node):
    return {"Node": {"ReplicationApiKey": REPL_KEY, "AntiEntropyIntervalSeconds": 1,
                     "ReplicationTimeoutSeconds": 2, "LogLevel": "info", **node}}


def repl(node, method, path, body=None, db=None):
    h = {"ReplicationApiKey": REPL_KEY}
    if db is not None:
        h["Database"] = db
    return node.request(method, path, body=body, headers=h)


def url(node):
    return f"http://127.0.0.1:{node.port}"


def seed(*members):
    return [{"NodeId": m.config["Node"]["NodeId"], "BaseUrl": url(m)} for m in members]


def peers(node):
    return {p["NodeId"]: p for p in assert_ok(repl(node, "GET", "/api/cluster/peers"))}


def states(node):
    return {d["DatabaseName"]: d for d in assert_ok(repl(node, "GET", "/api/replication/status"))
            ["Databases"]}


def link(node, db, peer_id):
    return next((p for p in states(node).get(db, {}).get("Peers", [])
                 if p["PeerNodeId"] == peer_id), None)


def mesh(make_node, names, **node):
    """Members registered with each other by hand (an existing cluster), each database written
    on one of them; returns the nodes once every database has converged everywhere."""
    nodes = [make_node(overrides=overrides(**node), node_id=n, name=n) for n in names]
    for a in nodes:
        for b in nodes:
            if a is not b:
                assert_ok(repl(a, "POST", "/api/cluster/peers",
                               {"NodeId": b.config["Node"]["NodeId"], "BaseUrl": url(b)}))
    for i, (db, count) in enumerate(DBS.items()):
        api = nodes[i % len(nodes)].api(db)
        for k in range(count):
            api.must_put("items", f"{db}-{k}", {"k": k, "db": db, "pad": "x" * 40})
    for db in DBS:
        wait_converged(nodes, db)
    return nodes


def wait_converged(nodes, db, timeout=TIMEOUT):
    """Equal VersionVector and Digest in every node's status, then identical dumps."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        seen = [states(n).get(db) for n in nodes]
        last = [(s or {}).get("VersionVector") for s in seen]
        if all(seen) and all((s["VersionVector"], s["Digest"]) ==
                             (seen[0]["VersionVector"], seen[0]["Digest"]) for s in seen):
            dumps = [dump(n, db) for n in nodes]
            if all(d == dumps[0] for d in dumps):
                return dumps[0]
        time.sleep(0.1)
    pytest.fail(f"{db}: no convergence within {timeout} s: {last}")


def test_a_node_seeded_with_one_member_gets_every_database(make_node):
    a, b, c = mesh(make_node, ["a", "b", "c"])
    # Runbook "Adding a node": the new node names one member in Node.SeedPeers and starts.
    d = make_node(overrides=overrides(SeedPeers=seed(a)), node_id="d", name="d")
    for db, count in DBS.items():  # none of them sees a write after the join
        docs = wait_converged([a, b, c, d], db)
        assert len(docs["items"]) == count
    assert peers(a)["d"]["LearnedFrom"] == "announce" and peers(a)["d"]["IsActive"] is True
    assert peers(a)["b"]["LearnedFrom"] == "api"
    assert peers(d)["a"]["LearnedFrom"] == "config"
    assert peers(d)["a"]["Discovery"]["Introduced"] is True
    # The registration is persisted: it survives a's restart.
    a.restart()
    assert peers(a)["d"]["LearnedFrom"] == "announce"

    # A database created on a member afterwards reaches the newcomer with no write on it; b
    # does not know d, so it arrives through a (b's push creates it there, a tells d).
    b.api("late").must_put("items", "1", {"v": 1})
    assert wait_converged([a, b, c, d], "late")["items"]


def test_auto_registration_off_keeps_membership_manual(make_node):
    a = make_node(overrides=overrides(AutoRegisterPeers=False), node_id="a", name="a")
    for k in range(30):
        a.api("shop").must_put("items", str(k), {"k": k})
    d = make_node(overrides=overrides(SeedPeers=seed(a)), node_id="d", name="d")
    # d still learns a's databases and pulls them (discovery needs no registration) ...
    docs = wait_converged([a, d], "shop")
    assert len(docs["items"]) == 30
    # ... but a did not register it, and d says why.
    err = wait_for(lambda: peers(d)["a"]["Discovery"]["IntroductionError"], timeout=TIMEOUT,
                   what="d's introduction refused by a")
    assert "Node.AutoRegisterPeers is false on 'a'" in err
    assert "d" not in peers(a)
    # Manual membership: the operator registers d by hand, as before.
    assert_ok(repl(a, "POST", "/api/cluster/peers", {"NodeId": "d", "BaseUrl": url(d)}))
    assert peers(a)["d"]["LearnedFrom"] == "api"
    # A node with the setting off does not introduce itself either.
    e = make_node(overrides=overrides(AutoRegisterPeers=False, SeedPeers=seed(a)), node_id="e",
                  name="e")
    wait_converged([a, e], "shop")
    assert peers(e)["a"]["Discovery"]["Introduced"] is False
    assert peers(e)["a"]["Discovery"]["IntroductionError"] is None
    assert "e" not in peers(a)


def test_replacing_a_node_with_a_new_backend_and_id(make_node, storage):
    a, b, c = mesh(make_node, ["a", "b", "c"])
    # b retires a peer whose address answers as another registered node after 2 s of silence;
    # a keeps the default (an hour): there the operator confirms.
    b.config["Node"]["PeerReplacementSilenceSeconds"] = 2
    b.write_config()
    b.restart()
    # Runbook "Replacing a node": stop it, fresh data directory, the other backend, a new
    # NodeId, the same address, the members as SeedPeers.
    c.stop()
    c.config["Node"].update(NodeId="c2", DataDirectory=str(c.workdir / "data-c2"),
                            SeedPeers=seed(a, b))
    c.config["Storage"]["Plugin"] = "lmdb" if storage == "sqlite" else "sqlite"
    c.write_config()
    c.start()
    assert c.node_id() == "c2"
    for db, count in DBS.items():
        assert len(wait_converged([a, b, c], db)["items"]) == count
    assert peers(a)["c2"]["LearnedFrom"] == "announce"

    # The old id's links on a say what answers at its address instead of Ready.
    def mismatch():
        got = [link(a, db, "c") for db in DBS]
        return all(g and g["CatchUpStatus"] == "IdentityMismatch" for g in got) and got
    got = wait_for(mismatch, timeout=TIMEOUT, what="a's links to c reporting IdentityMismatch")
    for g in got:
        assert g["PeerAnswersAs"] == "c2"
        assert "This node is 'c2', not 'c'" in g["LastError"]
    assert "the node at " + url(c) + " (peer 'c') is 'c2'" in a.log_text()
    # A request naming the old id is refused by the new node, naming both.
    r = c.request("POST", "/api/replication/pull", body={"ProtocolVersion": 1},
                  headers={"ReplicationApiKey": REPL_KEY, "Database": "shop",
                           "TargetNodeId": "c"})
    assert_error(r, 409, contains="This node is 'c2', not 'c'")
    assert r.body["NodeId"] == "c2" and r.body["TargetNodeId"] == "c"

    # b removed c by itself (silent past its setting, c2 registered at its address) ...
    wait_for(lambda: "c" not in peers(b), timeout=TIMEOUT, what="b retiring c")
    assert "peer 'c' removed: its address" in b.log_text()
    assert "c" in peers(a)
    # ... and on a the operator confirms: its links to c go.
    assert_ok(repl(a, "DELETE", "/api/cluster/peers/c"))
    assert all(link(a, db, "c") is None for db in DBS)
    c.api("shop").must_put("items", "after", {"v": 1})
    wait_converged([a, b, c], "shop")


def test_leave_removes_the_node_from_its_peers(make_node):
    a = make_node(overrides=overrides(), node_id="a", name="a")
    b = make_node(overrides=overrides(SeedPeers=seed(a)), node_id="b", name="b")
    d = make_node(overrides=overrides(SeedPeers=seed(a, b)), node_id="d", name="d")
    wait_for(lambda: "d" in peers(a) and "d" in peers(b), timeout=TIMEOUT,
             what="d registered by a and b")
    # Runbook "Removing a node": announce the leave, then stop the node.
    out = assert_ok(repl(d, "POST", "/api/cluster/leave"))
    assert out["NodeId"] == "d" and out["Left"] is True
    assert sorted((p["NodeId"], p["Removed"], p["Error"]) for p in out["Peers"]) == \
        [("a", True, None), ("b", True, None)]
    assert "d" not in peers(a) and "d" not in peers(b)
    assert "announced its leave: removed" in a.log_text()
    # d's sweeps go on until it stops, yet it does not introduce itself again.
    before = peers(d)["a"]["Discovery"]["LastSuccessUtc"]
    wait_for(lambda: peers(d)["a"]["Discovery"]["LastSuccessUtc"] != before, timeout=TIMEOUT,
             what="a sweep of d after its leave")
    assert "d" not in peers(a)
    assert d.stop() == 0
    assert_error(repl(a, "DELETE", "/api/cluster/peers/d"), 404)


def test_announce_input_errors(make_node):
    a = make_node(overrides=overrides(), node_id="a", name="a")
    body = {"ProtocolVersion": 1, "NodeId": "x", "BaseUrl": "http://127.0.0.1:9", "Event": "join"}
    assert_error(repl(a, "POST", "/api/replication/announce", {**body, "Event": "hello"}), 400,
                 "Event must be 'join', 'leave' or 'database'.")
    assert_error(repl(a, "POST", "/api/replication/announce", {**body, "NodeId": "a"}), 409,
                 "NodeId is this node's own id: node ids must be unique.")
    assert_error(repl(a, "POST", "/api/replication/announce", {**body, "BaseUrl": "ftp://x"}),
                 400, startswith="BaseUrl must be")
    assert_error(a.request("POST", "/api/replication/announce", body=body), 403)
    assert_error(a.request("GET", "/api/replication/databases"), 403)
    a.api("one").must_put("c", "1", {"v": 1})
    dbs = assert_ok(repl(a, "GET", "/api/replication/databases"))
    assert dbs["NodeId"] == "a"
    assert [(d["DatabaseName"], d["LocalMaxLogSequence"], d["VersionVector"])
            for d in dbs["Databases"]] == [("one", 1, {"a": 1})]
    assert len(dbs["Databases"][0]["Digest"]) == 32


def test_an_invalid_advertised_url_stops_the_node(make_node):
    # (An URL that cannot be derived, ListenAddress 0.0.0.0, is a unit test: tests stay on
    # loopback.)
    bad = make_node(overrides=overrides(AdvertisedUrl="ftp://x"), node_id="b", name="b",
                    start=False)
    bad.spawn()
    assert bad.wait_exit(timeout=10) == 1
    assert "Node.AdvertisedUrl: BaseUrl must be" in bad.log_text()
