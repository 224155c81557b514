"""Purging tombstones and swept cache records between real litedistd processes: purged once every
writer's promise covers them, held back by a peer that is down (until it reports again) unless it
is past the hard cap, never letting an older write bring a deleted document back (it becomes a
conflict record), and digests that stay equal across the nodes."""

import time

from conftest import assert_ok
from test_cache import get as cache_get, put as cache_put, sweep_lines
from test_prune import db_status, prune, prune_overrides
from test_replication import DB, add_peer, repl, wait_converged, wait_for
from test_snapshot import wait_loaded


def purge_overrides(**node):
    return prune_overrides(**dict({"TombstoneRetentionSeconds": 0}, **node))


def conflicts(node, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    r = repl(node, "GET", "/api/replication/conflicts" + ("?" + q if q else ""), db=DB)
    return assert_ok(r), r.headers.get("X-Next-After")


def purge_until(node, pred, what, timeout=15):
    """Prune passes until pred(status row) holds: the frontier moves when the peers' next
    reports arrive (their anti-entropy sweeps run every second)."""
    def once():
        prune(node)
        row = db_status(node)
        return row if pred(row) else None
    return wait_for(once, timeout=timeout, what=what)


def pair(make_node, **node):
    a = make_node(overrides=purge_overrides(**node), node_id="a", name="a")
    b = make_node(overrides=purge_overrides(**node), node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    return a, b


def test_tombstones_purge_once_peers_report_and_wait_for_a_peer_that_is_down(make_node):
    a, b = pair(make_node)
    api = a.api(DB)
    for i in range(10):
        api.must_put("items", f"d{i}", {"i": i})
    for i in range(4):
        api.must_delete("items", f"d{i}")
    (vv, digest), docs = wait_converged([a, b])
    before = db_status(a)
    assert before["Tombstones"] is None and before["LastPrune"] is None  # no pass yet
    assert before["OperationLogBytes"] > 0
    # b's promise covers the deletes once it reported after ingesting them.
    row = purge_until(a, lambda s: s["Tombstones"] == 0 and s["OperationLogEntries"] == 0,
                      "a to purge its 4 tombstones and prune its log")
    assert row["OperationLogBytes"] == 0
    assert row["LastPrune"]["TimeUtc"] and int(row["PurgeFloor"]) > 0
    purge_until(b, lambda s: s["Tombstones"] == 0, "b to purge its 4 tombstones")
    # Purging changes no digest, no version vector, no document.
    assert wait_converged([a, b]) == ((vv, digest), docs)

    # b is down: deletes made since its last report are held back.
    b.stop()
    for i in range(4, 7):
        api.must_delete("items", f"d{i}")
    prune(a)
    prune(a)
    held = db_status(a)
    assert held["Tombstones"] == 3 and held["LastPrune"]["TombstonesPurged"] == 0
    # Back, b ingests them and reports again: they go.
    b.start()
    purge_until(a, lambda s: s["Tombstones"] == 0, "a to purge the deletes b missed")
    purge_until(b, lambda s: s["Tombstones"] == 0, "b to purge them too")
    (vv2, _), docs2 = wait_converged([a, b])
    assert vv2 == {"a": 17} and len(docs2["items"]) == 3
    assert db_status(a)["RefusedBelowFloor"] == 0 and db_status(a)["ConflictRecords"] == 0


def test_swept_cache_records_are_purged(make_node):
    a = make_node(overrides=purge_overrides(CacheCleanupIntervalSeconds=1, LogLevel="info"),
                  node_id="a")
    cache_put(a, DB, "keep", "live", ttl="1h")
    for i in range(3):
        cache_put(a, DB, f"gone{i}", i, ttl="100ms")
    wait_for(lambda: sum(f for f, _, _ in sweep_lines(a)) >= 3, timeout=15,
             what="the sweeper to free 3 entries")
    # Swept entries are dead records; with no peer the frontier is the clock.
    prune(a)
    row = db_status(a)
    assert row["LastPrune"]["TombstonesPurged"] == 3 and row["Tombstones"] == 0
    assert assert_ok(cache_get(a, DB, "keep"))["Value"] == "live"
    # A purged key is simply new again.
    cache_put(a, DB, "gone0", "back", ttl="1h")
    assert assert_ok(cache_get(a, DB, "gone0"))["Value"] == "back"


def test_a_peer_past_the_hard_cap_stops_holding_and_returns_with_conflicts(make_node):
    a, b = pair(make_node, OperationLogMaxRetentionDays=0)
    api = a.api(DB)
    for i in range(6):
        api.must_put("items", f"d{i}", {"i": i})
    wait_converged([a, b])
    b.stop()
    for i in range(3):
        api.must_delete("items", f"d{i}")
    # Past the hard cap (0 days here) the silent b holds nothing back: the deletes go now.
    purge_until(a, lambda s: s["Tombstones"] == 0 and s["LastPrune"]["TombstonesPurged"] == 3,
                "a to purge without b")
    # b returns: a's log no longer holds what it lacks, so it loads a snapshot, in which its
    # old copies of d0-d2 (stamped below the floor) are absent: they become conflict records.
    b.start()
    wait_loaded(b, "a")
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": 9} and len(docs["items"]) == 3
    rows, _ = conflicts(b)
    assert sorted(r["EntityId"] for r in rows) == ["d0", "d1", "d2"]
    assert db_status(b)["ConflictRecords"] == 3


def test_an_older_write_arriving_after_the_purge_stays_a_conflict(make_node):
    a, b = pair(make_node, AutoRegisterPeers=False)
    # c: a writer a and b never registered, whose clock is an hour behind.
    c = make_node(overrides=purge_overrides(TestClockOffsetMilliseconds=-3600 * 1000,
                                            AutoRegisterPeers=False), node_id="c", name="c")
    c.api(DB).must_put("items", "x", {"from": "c"})
    c.api(DB).must_put("items", "y", {"from": "c"})
    api = a.api(DB)
    api.must_put("items", "x", {"from": "a"})
    api.must_delete("items", "x")
    api.must_put("items", "z", {"from": "a"})
    wait_converged([a, b])
    purge_until(a, lambda s: s["Tombstones"] == 0, "a to purge x's tombstone")
    purge_until(b, lambda s: s["Tombstones"] == 0, "b to purge x's tombstone")
    # c reaches a late: its x (an hour old) is older than the purged delete.
    add_peer(c, a)
    wait_for(lambda: db_status(a)["RefusedBelowFloor"] == 2, what="a refusing c's two writes")
    (vv, _), docs = wait_converged([a, b])
    assert vv == {"a": 3, "c": 2}
    assert [d for d in docs["items"] if '"x"' in d] == []  # x stays deleted on a and b
    a.api(DB).absent("items", "x")
    b.api(DB).absent("items", "x")
    # y never existed on a or b, and is as old: it is refused the same way (no tombstone tells).
    page1, nxt = conflicts(a, take=1)
    page2, nxt2 = conflicts(a, take=1, after=nxt)
    assert [r["EntityId"] for r in page1 + page2] == ["x", "y"] and nxt2 is None
    assert page1[0]["NodeId"] == "c" and '"c"' in page1[0]["Payload"]
    assert db_status(b)["ConflictRecords"] == 2
    r = repl(a, "GET", "/api/replication/conflicts?after=nonsense", db=DB)
    assert r.status == 400


def test_the_retention_keeps_recent_tombstones(make_node):
    a = make_node(overrides=prune_overrides(), node_id="a")  # TombstoneRetentionSeconds: 7 days
    a.api(DB).must_put("items", "x", {"v": 1})
    a.api(DB).must_delete("items", "x")
    prune(a)
    row = db_status(a)
    assert row["Tombstones"] == 1 and row["LastPrune"]["TombstonesPurged"] == 0
    # The floor stands a week back: the tombstone (stamped now) is far above it.
    assert 0 < int(row["PurgeFloor"]) >> 16 < int(time.time() * 1000) - 6 * 86400000
