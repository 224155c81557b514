"""GET /api/databases and DELETE /api/databases/{name}, and /node's LogicalDatabaseCount and
EventLoop (its lag and recent stalls)."""

import datetime
import signal
import time

import pytest

from conftest import (KEY_LIMITED, LIMITED_DBS, MSG_DB_INVALID, MSG_KEY_INVALID, MSG_KEY_REQUIRED,
                      ROOT_KEY, assert_error, assert_ok, msg_no_access, seg)


def list_dbs(node, key):
    return node.request("GET", "/api/databases", headers={"ApiKey": key} if key else {})


def test_list_needs_only_a_key_and_is_sorted(node, new_db):
    names = [new_db("zulu"), new_db("alpha"), new_db("mike")]
    for name in names:
        node.api(name).must_post("c", {"Id": "a"})
    listed = assert_ok(list_dbs(node, ROOT_KEY))  # no Database header sent
    assert isinstance(listed, list)
    assert listed == sorted(listed)
    assert set(names) <= set(listed)


def test_list_without_key_is_401(node):
    assert_error(list_dbs(node, None), 401, MSG_KEY_REQUIRED)
    assert_error(list_dbs(node, "wrong-key"), 401, MSG_KEY_INVALID)


def test_list_shows_only_reachable_databases(node, new_db):
    other = new_db("other")
    node.api(other).must_post("c", {"Id": "a"})
    node.api(LIMITED_DBS[0]).must_post("c", {"Id": "a"})  # LIMITED_DBS[1] is never created
    assert assert_ok(list_dbs(node, KEY_LIMITED)) == [LIMITED_DBS[0]]
    assert other in assert_ok(list_dbs(node, ROOT_KEY))


def test_delete_database_removes_it_and_its_documents(node, db):
    api = node.api(db)
    api.must_post("orders", {"Id": "o1", "v": 1})
    api.must_post("other", {"Id": "x"})
    count = node.node_info()["LogicalDatabaseCount"]

    r = api.drop_database()
    assert assert_ok(r) == {"Name": db, "Deleted": True}
    assert db not in node.databases()
    assert node.node_info()["LogicalDatabaseCount"] == count - 1

    # A later write with ADD_DB recreates it, empty, and restarts its log.
    wr = api.must_post("fresh", {"Id": "f"})
    assert wr["Operation"]["LogSequence"] == 1
    assert assert_ok(api.list_collections()) == ["fresh"]
    assert_error(api.get("orders", "o1"), 404)
    assert db in node.databases()
    assert node.node_info()["LogicalDatabaseCount"] == count


def test_delete_unknown_database_is_404(node, db):
    assert_error(node.api(None).drop_database(db), 404)
    assert db not in node.databases()


@pytest.mark.parametrize("name", ["a b", "..", "-x", "a" * 64, "caf\u00e9", "a.b"])
def test_delete_invalid_name_is_400(node, name):
    r = node.request("DELETE", f"/api/databases/{seg(name)}", headers={"ApiKey": ROOT_KEY})
    assert_error(r, 400, MSG_DB_INVALID)


def test_delete_without_key_is_401(node, db):
    node.api(db).must_post("c", {"Id": "a"})
    path = f"/api/databases/{db}"
    assert_error(node.request("DELETE", path), 401, MSG_KEY_REQUIRED)
    assert_error(node.request("DELETE", path, headers={"ApiKey": "nope"}), 401, MSG_KEY_INVALID)
    assert db in node.databases()


def test_delete_by_key_without_access_is_403(node, db):
    node.api(db).must_post("c", {"Id": "a"})
    r = node.request("DELETE", f"/api/databases/{db}", headers={"ApiKey": KEY_LIMITED})
    assert_error(r, 403, msg_no_access(db))
    assert db in node.databases()


def test_delete_name_is_lowercased(node, db):
    node.api(db).must_post("c", {"Id": "a"})
    r = node.request("DELETE", f"/api/databases/{db.upper()}", headers={"ApiKey": ROOT_KEY})
    assert assert_ok(r) == {"Name": db, "Deleted": True}
    assert db not in node.databases()


def test_logical_database_count_follows_creates_and_deletes(node, new_db):
    start = node.node_info()["LogicalDatabaseCount"]
    a, b = new_db("a"), new_db("b")
    node.api(a).must_post("c", {"Id": "x"})
    assert node.node_info()["LogicalDatabaseCount"] == start + 1
    node.api(b).must_post("c", {"Id": "x"})
    node.api(b).must_post("c", {"Id": "y"})  # a second write creates nothing
    assert node.node_info()["LogicalDatabaseCount"] == start + 2
    assert_ok(node.api(a).drop_database())
    assert node.node_info()["LogicalDatabaseCount"] == start + 1
    assert len(node.databases()) == start + 1


def test_databases_survive_restart(make_node):
    n = make_node()
    n.api("keep-a").must_post("c", {"Id": "x", "v": 1})
    n.api("keep-b").must_post("c", {"Id": "y"})
    n.api("gone").must_post("c", {"Id": "z"})
    assert_ok(n.api("gone").drop_database())
    n.restart()
    assert n.databases() == ["keep-a", "keep-b"]
    assert n.node_info()["LogicalDatabaseCount"] == 2
    assert n.api("keep-a").must_get("c", "x") == {"Id": "x", "v": 1}


def test_node_reports_how_late_its_event_loop_runs(node):
    """GET /node's EventLoop (litedist's addition): the loop-lag monitor's samples, max and p99."""
    loop = node.node_info()["EventLoop"]
    for _ in range(100):  # the monitor samples every 5 ms: a few samples within a second
        if loop["LagSamples"] > 0:
            break
        time.sleep(0.01)
        loop = node.node_info()["EventLoop"]
    assert loop["LagSamples"] > 0
    assert isinstance(loop["MaxLagMs"], float) and isinstance(loop["P99LagMs"], float)
    assert 0 <= loop["P99LagMs"] <= loop["MaxLagMs"]
    hist = loop["LagHistogram"]
    assert hist["BoundsMs"] == sorted(hist["BoundsMs"]) and hist["BoundsMs"][0] > 0
    assert len(hist["Counts"]) == len(hist["BoundsMs"]) + 1
    assert sum(hist["Counts"]) == loop["LagSamples"]
    later = node.node_info()["EventLoop"]
    assert later["LagSamples"] >= loop["LagSamples"]
    assert later["MaxLagMs"] >= loop["MaxLagMs"]


def utc(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_node_lists_its_event_loops_recent_stalls_with_their_times(node):
    """EventLoop.RecentStalls: a stop of the whole process (SIGSTOP for 200 ms) is a stall of the
    loop, listed with the time it ended, after the stop began."""
    stalls = node.node_info()["EventLoop"]["RecentStalls"]
    assert isinstance(stalls, list)
    seen = len(stalls)
    t0 = time.time()
    node.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.2)
    finally:
        node.send_signal(signal.SIGCONT)
    after = []
    for _ in range(200):  # the loop's 5 ms timer fires once the process runs again
        after = [s for s in node.node_info()["EventLoop"]["RecentStalls"] if utc(s["AtUtc"]) >= t0]
        if after:
            break
        time.sleep(0.01)
    assert after, "the stop is not listed"
    assert max(s["LagMs"] for s in after) >= 150
    assert all(t0 <= utc(s["AtUtc"]) <= time.time() for s in after)
    stalls = node.node_info()["EventLoop"]["RecentStalls"]
    assert len(stalls) >= min(seen + 1, 64) and len(stalls) <= 64
    times = [utc(s["AtUtc"]) for s in stalls]
    assert times == sorted(times) and all(s["LagMs"] > 5 for s in stalls)
