"""Storage faults and crashes: the server must answer a failed storage call with a 5xx in the
contract's error shape, change nothing, stay up and serve the next request; and a node killed
with SIGKILL at random moments under write load must come back with every acknowledged write and
its op log, version vector and digest consistent (docs/architecture.md §5 invariants).

Faults come from the storage-fault test plugin (tests/plugins/storage_fault.c, docs/testing.md),
which wraps the storage plugin under test and is armed through its control file."""

import hashlib
import http.client
import json
import os
import random
import threading
import time

import pytest

from conftest import ROOT_KEY, assert_ok

REPL_KEY = "fault-cluster-key"
DB = "faults"
COLL = "c"


def repl(node, method, path, body=None, db=DB):
    h = {"ReplicationApiKey": REPL_KEY}
    if db is not None:
        h["Database"] = db
    return node.request(method, path, body=body, headers=h)


def db_status(node, db=DB):
    """(LocalMaxLogSequence, VersionVector, Digest) of db from /api/replication/status."""
    for d in assert_ok(repl(node, "GET", "/api/replication/status", db=None))["Databases"]:
        if d["DatabaseName"] == db:
            return d["LocalMaxLogSequence"], d["VersionVector"], d["Digest"]
    return None


def pull_all(node, after=0, db=DB):
    """Every op of the log after `after`, in log order (bounded: at most 1000 batches)."""
    ops = []
    for _ in range(1000):
        r = assert_ok(repl(node, "POST", "/api/replication/pull",
                           {"AfterLogSequence": after, "BatchSize": 10000}, db=db))
        ops.extend(r["Operations"])
        after = r["LastLogSequence"]
        if not r["HasMore"]:
            return ops
    pytest.fail("pull did not finish within 1000 batches")


def assert_5xx(resp):
    """A storage failure: a 5xx with the contract's {"Error": "..."} body."""
    assert 500 <= resp.status < 600, f"expected a 5xx, got {resp!r}"
    assert isinstance(resp.body, dict) and isinstance(resp.body.get("Error"), str) \
        and resp.body["Error"], f"error body is not {{\"Error\": ...}}: {resp!r}"
    assert set(resp.body) == {"Error"}, resp


# ------------------------------------------------------------------------------------------------
# Injected faults
# ------------------------------------------------------------------------------------------------

class FaultNode:
    """A node on storage-fault wrapping the storage under test, and its control file."""

    def __init__(self, make_node, build, storage, tmp_path):
        self.control = tmp_path / "fault-control.json"
        plugin = str(build.test_plugin("storage-fault.so"))
        self.node = make_node(overrides={
            "Node": {"ReplicationApiKey": REPL_KEY},
            "Storage": {"Plugin": plugin,
                        "Fault": {"Inner": storage, "ControlFile": str(self.control)}}})
        self.api = self.node.api(DB)

    def arm(self, op, kind, nth=1, times=1):
        """Makes the nth `op` (put, del, commit) from the next write transaction on fail with
        `kind`; written by rename so the plugin never reads half a file."""
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"Op": op, "Nth": nth, "Status": kind, "Times": times}))
        os.replace(tmp, self.control)

    def consumed(self):
        return not self.control.exists()

    def snapshot(self):
        """Everything a failed write must leave as it was: the documents, the log, (VV, digest)."""
        docs = sorted(json.dumps(d, sort_keys=True)
                      for d in assert_ok(self.api.list_docs(COLL, take=10000)))
        ops = [(o["LogSequence"], o["Id"]) for o in pull_all(self.node)]
        colls = assert_ok(self.api.list_collections())
        return docs, ops, db_status(self.node), colls


FAULT_KINDS = ["IO", "NOMEM", "BUSY"]


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("op", ["put", "commit"])
def test_a_failed_write_changes_nothing_and_the_next_succeeds(make_node, build, storage,
                                                              tmp_path, op, kind):
    f = FaultNode(make_node, build, storage, tmp_path)
    f.api.must_put(COLL, "x", {"v": 1})
    f.api.must_put(COLL, "y", {"v": 1})
    before = f.snapshot()
    writes = [("update", lambda: f.api.put(COLL, "x", {"v": 2})),
              ("insert", lambda: f.api.put(COLL, "new", {"v": 1})),
              ("post", lambda: f.api.post(COLL, {"Id": "posted", "v": 1})),
              ("delete", lambda: f.api.delete(COLL, "y")),
              ("register", lambda: f.api.register("other"))]
    for what, write in writes:
        f.arm(op, kind)
        r = write()
        assert f.consumed(), f"{what}: the fault was not armed"
        assert_5xx(r)
        assert f.node.running(), f"{what}: the node died"
        assert f.snapshot() == before, f"{what}: a failed {op} ({kind}) changed the state"
        assert f.node.log_text().count(f"injected {kind} on {op}") >= 1
    assert f.api.must_get(COLL, "x") == {"Id": "x", "v": 1}
    f.api.absent(COLL, "new")
    # The next request succeeds and lands right after the last committed entry.
    seq_before = before[2][0]
    wr = f.api.must_put(COLL, "x", {"v": 3})
    assert wr["Operation"]["LogSequence"] == seq_before + 1
    assert wr["Operation"]["Sequence"] == before[2][1]["test-node"] + 1
    assert f.api.must_get(COLL, "x") == {"Id": "x", "v": 3}
    f.api.must_delete(COLL, "y")
    f.api.absent(COLL, "y")
    check_integrity(f.node, {})


def test_a_sticky_fault_fails_every_write_and_reads_go_on(make_node, build, storage, tmp_path):
    f = FaultNode(make_node, build, storage, tmp_path)
    f.api.must_put(COLL, "x", {"v": 1})
    before = f.snapshot()
    f.arm("commit", "IO", times=0)  # every commit from now on
    for i in range(3):
        assert_5xx(f.api.put(COLL, "x", {"v": 10 + i}))
        assert f.api.must_get(COLL, "x") == {"Id": "x", "v": 1}
    assert f.snapshot() == before
    f.arm("commit", "IO", nth=0)  # disarmed at the next write's begin
    f.api.must_put(COLL, "x", {"v": 2})
    assert f.api.must_get(COLL, "x") == {"Id": "x", "v": 2}


def test_a_failed_replicated_batch_changes_nothing(make_node, build, storage, tmp_path):
    """Ingest (push) runs through the same writer: a fault leaves VV, log and digest as they
    were, and the same push succeeds afterwards."""
    f = FaultNode(make_node, build, storage, tmp_path)
    f.api.must_put(COLL, "x", {"v": 1})
    src = make_node(overrides={"Node": {"ReplicationApiKey": REPL_KEY}}, node_id="src",
                    name="src")
    ops = [src.api(DB).must_put(COLL, f"r{i}", {"i": i})["Operation"] for i in range(3)]
    before = f.snapshot()
    body = {"SourceNodeId": "src", "Operations": ops}
    for op in ("put", "commit"):
        f.arm(op, "IO")
        r = repl(f.node, "POST", "/api/replication/push", body)
        assert f.consumed()
        assert_5xx(r)
        assert f.snapshot() == before
    r = assert_ok(repl(f.node, "POST", "/api/replication/push", body))
    assert (r["ProcessedCount"], r["AcceptedCount"]) == (3, 3)
    assert db_status(f.node)[1]["src"] == 3
    check_integrity(f.node, {})


@pytest.mark.parametrize("fault, message", [
    ({"Op": "rename", "Nth": 1}, 'Op must be "put", "del" or "commit"'),
    ({"Op": "put", "Nth": -1}, "Nth must be an integer >= 0"),
    ({"Op": "put", "Nth": 1, "Status": "CORRUPT"}, 'Status must be "IO", "NOMEM", "BUSY" or "FULL"'),
    ({"Inner": "no-such-engine"}, "not found: no-such-engine"),
    ({"Inner": "SELF"}, "cannot be storage-fault itself"),
])
def test_a_bad_fault_config_stops_start_up(make_node, build, storage, fault, message):
    plugin = str(build.test_plugin("storage-fault.so"))
    fault = {"Inner": storage, **fault}
    if fault["Inner"] == "SELF":
        fault["Inner"] = plugin
    n = make_node(start=False, overrides={"Storage": {"Plugin": plugin, "Fault": fault}})
    n.spawn()
    assert n.wait_exit() == 1
    assert message in n.log_text()


# ------------------------------------------------------------------------------------------------
# Integrity: what a node's log, VV and digest must satisfy (docs/architecture.md §5 invariants)
# ------------------------------------------------------------------------------------------------

def digest_term(coll, doc_id, hlc, origin, deleted, expires):
    """ld_digest_term (core/db/database.c): BLAKE2b-128 of length-prefixed fields."""
    h = hashlib.blake2b(digest_size=16)
    for field in (coll.encode(), doc_id.encode()):
        h.update(len(field).to_bytes(8, "big"))
        h.update(field)
    h.update(hlc.to_bytes(8, "big"))
    h.update(len(origin.encode()).to_bytes(8, "big"))
    h.update(origin.encode())
    h.update(b"\x01" if deleted else b"\x00")
    h.update(expires.to_bytes(8, "big"))
    return int.from_bytes(h.digest(), "big")


def check_integrity(node, acked, node_id="test-node"):
    """Checks the node's database DB against `acked` (key -> (op id, value or None when
    deleted) of every acknowledged write; op id None for a state observed after a write whose
    answer was lost) and the invariants of its log. Returns the fold."""
    ops = pull_all(node)
    seqs = [o["LogSequence"] for o in ops]
    assert seqs == list(range(1, len(ops) + 1)), "the log has gaps or disorder"
    own = [o for o in ops if o["NodeId"] == node_id]
    assert [o["Sequence"] for o in own] == list(range(1, len(own) + 1)), \
        "origin sequences are not 1, 2, 3, ..."
    hlcs = [int(o["Hlc"]) for o in own]
    assert all(a < b for a, b in zip(hlcs, hlcs[1:])), "HLC went back across a restart"
    fold = {}
    for o in ops:
        k = (o["Collection"], o["EntityId"])
        stamp = (int(o["Hlc"]), o["NodeId"].encode())
        if k not in fold or stamp > fold[k][0]:
            fold[k] = (stamp, o)
    digest = 0
    for (coll, doc_id), (stamp, o) in fold.items():
        digest ^= digest_term(coll, doc_id, stamp[0], o["NodeId"], o["IsTombstone"],
                              int(o.get("ExpiresAtMs") or 0))
    local_max, vv, dig = db_status(node) or (0, {}, "0" * 32)
    assert local_max == len(ops)
    assert vv.get(node_id, 0) == len(own), f"VV {vv} does not match the log ({len(own)} own)"
    assert int(dig, 16) == digest, "the digest does not match the log"
    # The documents are the fold of the log.
    live = {doc["Id"]: doc for doc in (assert_ok(node.api(DB).list_docs(COLL, take=100000))
                                       if fold else [])}
    expect = {k[1]: json.loads(o["Payload"]) for k, (_, o) in fold.items()
              if k[0] == COLL and not o["IsTombstone"]}
    assert live.keys() == expect.keys(), "the documents are not the fold of the log"
    for doc_id, doc in live.items():
        assert {k: v for k, v in doc.items() if k != "Id"} == \
            {k: v for k, v in expect[doc_id].items() if k != "Id"}, doc_id
    # Every acknowledged write is there: its op in the log, and the latest one is the state.
    ids = {o["Id"] for o in ops}
    for doc_id, (op_id, value) in acked.items():
        assert op_id is None or op_id in ids, \
            f"acknowledged write {op_id} of {doc_id} is not in the log"
        if value is None:
            assert doc_id not in live, f"{doc_id} was deleted (acknowledged) but is there"
        else:
            assert live.get(doc_id, {}).get("t") == value, f"{doc_id}: lost {value}"
    return fold


# ------------------------------------------------------------------------------------------------
# Crash loop
# ------------------------------------------------------------------------------------------------

CRASH_SEED = 9
CRASH_WRITERS = 3
# Under ASan every start and request is several times slower; fewer rounds keep the test under
# a minute there (the release build runs all 50).
CRASH_ROUNDS = 20 if os.environ.get("LD_ASAN") or "asan" in os.environ.get("LD_BIN_DIR", "") \
    else 50
CRASH_BUDGET_S = 60


def writer(api, rng, tag, rnd, stop, acked, pending, lock):
    """Writes, updates and deletes its own keys until the connection fails; records every
    acknowledged write in `acked` and the one in flight in `pending`."""
    i = 0
    while not stop.is_set() and i < 100000:
        i += 1
        doc_id = f"{tag}-{rng.randrange(8)}"
        value = f"{tag}-{rnd}-{i}"
        delete = rng.random() < 0.15
        with lock:
            pending[doc_id] = None if delete else value
        try:
            r = api.delete(COLL, doc_id) if delete else api.put(COLL, doc_id, {"t": value})
        except (OSError, http.client.HTTPException):
            return  # the node is gone: this write's fate is unknown, pending says what it was
        if r.status == 404 and delete:
            with lock:
                pending.pop(doc_id, None)
            continue
        if r.status != 200:
            return
        with lock:
            acked[doc_id] = (r.body["Version"], None if delete else value)
            pending.pop(doc_id, None)


def test_crash_loop_keeps_every_acknowledged_write(make_node):
    rng = random.Random(CRASH_SEED)
    node = make_node(overrides={"Node": {"ReplicationApiKey": REPL_KEY, "LogLevel": "warn",
                                         "PeerProbeIntervalSeconds": 0}})
    api = node.api(DB, ROOT_KEY)
    acked = {"seed": (api.must_put(COLL, "seed", {"t": "seed"})["Version"], "seed")}
    started = time.monotonic()
    total_acks = 0
    for rnd in range(CRASH_ROUNDS):
        assert time.monotonic() - started < CRASH_BUDGET_S, f"over budget at round {rnd}"
        stop, lock = threading.Event(), threading.Lock()
        round_acked, pending = {}, {}
        threads = [threading.Thread(target=writer, daemon=True,
                                    args=(api, random.Random(rng.random()), f"w{w}", rnd, stop,
                                          round_acked, pending, lock))
                   for w in range(CRASH_WRITERS)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.02, 0.3))
        node.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=REQUEST_JOIN_S)
            assert not t.is_alive(), "a writer thread hangs"
        total_acks += len(round_acked)
        node.start()
        # A write in flight at the kill may or may not have committed: take what the node has
        # for those keys, after checking it is one of the two possible states.
        for doc_id, value in pending.items():
            r = api.get(COLL, doc_id)
            got = r.body.get("t") if r.status == 200 else None
            prior = round_acked.get(doc_id, acked.get(doc_id, (None, None)))[1]
            assert got in (value, prior), f"{doc_id}: {got!r} is neither {value!r} nor {prior!r}"
            round_acked[doc_id] = (None, got)  # from now on the state it has is the one to keep
        acked.update(round_acked)
        check_integrity(node, acked)
    assert total_acks > CRASH_ROUNDS, f"only {total_acks} writes acknowledged in all rounds"
    print(f"crash loop: {CRASH_ROUNDS} rounds, {total_acks} acknowledged writes, "
          f"{time.monotonic() - started:.1f} s")


REQUEST_JOIN_S = 20


@pytest.mark.parametrize("op", ["put", "commit"])
def test_a_fault_configured_at_start_up_fails_the_first_database(make_node, build, storage, op):
    """Fault in the config, counted from start-up: every put (or commit) fails, from the first
    write of a new database on. The node answers 5xx and stays up; the database exists (it is
    opened, as on any first use by a key with ADD_DB, before the write runs) but holds nothing:
    no document, an empty log, no version vector, a zero digest. Started without the fault, the
    node serves it."""
    n = make_node(overrides={
        "Storage": {"Plugin": str(build.test_plugin("storage-fault.so")),
                    "Fault": {"Inner": storage, "Op": op, "Nth": 1, "Status": "IO", "Times": 0}}})
    api = n.api(DB)
    for _ in range(2):
        assert_5xx(api.put(COLL, "x", {"v": 1}))
    assert n.running()
    assert api.get(COLL, "x").status == 404
    n.config["Node"]["ReplicationApiKey"] = REPL_KEY
    n.stop()
    n.write_config()
    n.start()
    assert db_status(n) == (0, {}, "0" * 32)
    assert pull_all(n) == []
    n.stop()
    n.config["Storage"] = {"Plugin": storage, "Sync": "full"}
    n.write_config()
    # The directory's record names the wrapper, whose files are the inner backend's: back on
    # the inner one, the record is made again (the lost-record case of docs/storage.md).
    (n.data_dir / "identity.json").unlink()
    n.start()
    api.must_put(COLL, "x", {"v": 2})
    assert api.must_get(COLL, "x") == {"Id": "x", "v": 2}


def test_a_failed_index_build_step_is_retried_with_backoff(make_node, build, storage, tmp_path):
    """An online build step whose commit fails is retried by the writer after a backoff (1 s,
    doubling): GET /api/indexes shows the error and the wait, the metric counts the failures,
    and once the storage recovers the index becomes ready without a restart."""
    f = FaultNode(make_node, build, storage, tmp_path)
    for i in range(5):
        f.api.must_put(COLL, f"d{i}", {"v": i})
    # The CREATE's own commit is the 1st after arming; every later one fails.
    f.arm("commit", "IO", nth=2, times=0)
    assert_ok(f.api.call("POST", "/api/query", body={"Query": f"CREATE INDEX by_v ON {COLL} ($.v)"}))
    assert f.consumed()
    deadline = time.monotonic() + 10
    ix = None
    for _ in range(500):
        ix = assert_ok(f.api.call("GET", "/api/indexes"))[0]
        if ix.get("BuildFailures", 0) >= 2:
            break
        assert time.monotonic() < deadline, f"the failed step was not retried: {ix}"
        time.sleep(0.05)
    assert ix["State"] == "Building" and ix["BuildError"] == "I/O error", ix
    assert 0 <= ix["BuildRetryInMs"] <= 2000, ix  # the second failure waits 2 s
    metrics = f.node.request("GET", "/metrics").text
    line = next(l for l in metrics.splitlines()
                if l.startswith(f'litedist_index_step_failures_total{{database="{DB}"}}'))
    assert int(float(line.split()[-1])) >= 2
    f.arm("commit", "IO", nth=0)  # disarmed at the next write transaction's begin: the retry
    deadline = time.monotonic() + 10
    for _ in range(500):
        ix = assert_ok(f.api.call("GET", "/api/indexes"))[0]
        if ix["State"] == "Ready":
            break
        assert time.monotonic() < deadline, f"never ready after the fault cleared: {ix}"
        time.sleep(0.05)
    assert "BuildError" not in ix and ix["Entries"] == 5, ix
    assert f.node.running()
