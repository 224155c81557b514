"""Node.TestClockOffsetMilliseconds, the fault test's clock skew: it moves the stamps a node
issues, a restart without it never makes them go back, and it is refused beyond loopback."""

import time

REPLICATION_KEY = "I_AM_ONE_OF_YOU"


def write_stamp_ms(node, db, doc_id):
    r = node.api(db).put("items", doc_id, {"V": doc_id})
    assert r.status == 200, r
    return int(r.body["Operation"]["Hlc"]) >> 16, r.body["Operation"]


def test_offset_moves_stamps_and_restart_never_goes_back(make_node):
    n = make_node({"Node": {"TestClockOffsetMilliseconds": 30000}}, node_id="skewed")
    t0 = int(time.time() * 1000)
    ahead_ms, ahead_op = write_stamp_ms(n, "skew", "one")
    assert t0 + 29000 <= ahead_ms <= int(time.time() * 1000) + 31000, (t0, ahead_ms)
    assert "TEST ONLY: this node's clock runs 30000 ms off" in n.log_text()
    # Back on the real clock: the next stamp is still above the one issued 30 s ahead.
    n.stop()
    n.config["Node"].pop("TestClockOffsetMilliseconds")
    n.write_config()
    n.start()
    _, op = write_stamp_ms(n, "skew", "two")
    assert int(op["Hlc"]) > int(ahead_op["Hlc"])
    assert op["Sequence"] == ahead_op["Sequence"] + 1


def test_negative_offset_stamps_behind(make_node):
    n = make_node({"Node": {"TestClockOffsetMilliseconds": -20000}}, node_id="late")
    t1 = int(time.time() * 1000)
    ms, _ = write_stamp_ms(n, "late", "one")
    assert ms <= t1 - 19000, (t1, ms)


def test_offset_refused_beyond_loopback(make_node):
    # Own keys, so that the default-key check is not what refuses it. The node must exit before
    # listening, so it never opens a socket beyond loopback.
    n = make_node({"Node": {"ListenAddress": "0.0.0.0", "TestClockOffsetMilliseconds": 1000,
                            "ReplicationApiKey": "fault-test-cluster-key"},
                   "Auth": {"RootApiKey": "fault-test-root-key"}},
                  start=False)
    n.spawn()
    code = n.wait_exit(15)
    assert code not in (None, 0), f"exit code {code}\n{n.log_tail()}"
    assert "Node.TestClockOffsetMilliseconds is for tests on loopback only" in n.log_text()
