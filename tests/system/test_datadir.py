"""The data directory's identity and lock: <data>/identity.json records the node, the storage
backend and the incarnation that wrote the directory; another backend, another node id, or a
database copied in from another node is refused at start naming the recipe; the lock is on the
directory itself, so there is no file whose removal lets a second process in."""

import json
import re
import shutil
import sqlite3
import threading

import pytest

from conftest import assert_ok

DB = "dd"


def other_backend(storage):
    return "lmdb" if storage == "sqlite" else "sqlite"


def identity(node):
    return json.loads((node.data_dir / "identity.json").read_text())


def refused(node, *texts):
    """Starts node expecting exit code 1 before it listens, with every text in its log."""
    node.spawn()
    assert node.wait_exit(timeout=10) == 1, node.log_tail()
    log = node.log_text().split("=== harness: starting")[-1]
    for t in texts:
        assert t in log, (t, node.log_tail())
    assert "listening on" not in log
    return log


def test_identity_is_recorded_and_kept_when_its_file_is_lost(make_node, storage):
    n = make_node()
    assert_ok(n.api(DB).put("c", "x", {"v": 1}))
    rec = identity(n)
    assert rec["Format"] == 1 and rec["NodeId"] == "test-node" and rec["Storage"] == storage
    assert re.fullmatch(r"[0-9a-f]{32}", rec["Incarnation"]), rec
    n.stop()
    (n.data_dir / "identity.json").unlink()
    n.start()  # the databases' records give the incarnation back
    assert identity(n)["Incarnation"] == rec["Incarnation"]
    assert n.api(DB).must_get("c", "x") == {"Id": "x", "v": 1}


def test_a_directory_from_before_the_record_is_adopted(make_node, storage):
    """A data directory written before litedist kept the record: no identity.json, databases
    with data but no incarnation. It is adopted: its databases are stamped with a new
    incarnation and the record names it. (The stamp is removed with sqlite3: sqlite only.)"""
    if storage != "sqlite":
        pytest.skip("the pre-record directory is made by editing the SQLite file")
    n = make_node()
    assert_ok(n.api(DB).put("c", "x", {"v": 1}))
    n.stop()
    identity_before = identity(n)
    (n.data_dir / "identity.json").unlink()
    path = n.data_dir / "databases" / f"{DB}.db"

    def stamp():
        with sqlite3.connect(path) as con:
            row = con.execute("SELECT v FROM ks_meta WHERE k = CAST('incarnation' AS BLOB)")
            row = row.fetchone()
        con.close()
        return row and bytes(row[0]).decode()

    old = stamp()
    assert old == identity_before["Incarnation"]
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM ks_meta WHERE k = CAST('incarnation' AS BLOB)")
    con.close()
    assert stamp() is None
    n.start()
    assert n.api(DB).must_get("c", "x") == {"Id": "x", "v": 1}
    n.stop()
    assert stamp() == identity(n)["Incarnation"] != old  # a new incarnation


def test_another_backend_is_refused_with_the_recipe(make_node, storage):
    n = make_node()
    assert_ok(n.api(DB).put("c", "x", {"v": 1}))
    n.stop()
    n.config["Storage"]["Plugin"] = other_backend(storage)
    n.write_config()
    refused(n, f"was written by storage backend '{storage}'",
            f"configured with '{other_backend(storage)}'", "docs/storage.md")
    # Without the record (a directory from before it), the other backend's files still stop it.
    rec = (n.data_dir / "identity.json").read_text()
    (n.data_dir / "identity.json").unlink()
    refused(n, f"files the storage backend '{other_backend(storage)}' does not use",
            "docs/storage.md")
    (n.data_dir / "identity.json").write_text(rec)
    n.config["Storage"]["Plugin"] = storage
    n.write_config()
    n.start()
    assert n.api(DB).must_get("c", "x") == {"Id": "x", "v": 1}


def test_another_node_id_is_refused(make_node):
    n = make_node()
    n.stop()
    n.config["Node"]["NodeId"] = "someone-else"
    n.write_config()
    refused(n, "holds the data of node 'test-node' and this node is 'someone-else'",
            "docs/storage.md")


def test_a_database_copied_in_from_another_node_is_refused(make_node):
    a = make_node(node_id="a", name="a")
    b = make_node(node_id="b", name="b")
    assert_ok(a.api(DB).put("c", "x", {"v": 1}))
    assert_ok(b.api("moved").put("c", "y", {"v": 2}))
    a.stop()
    b.stop()
    copied = []
    for src in (b.data_dir / "databases").glob("moved*"):
        dst = a.data_dir / "databases" / src.name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
        copied.append(dst)
    assert copied
    log = refused(a, "[moved]", "belongs to incarnation " + identity(b)["Incarnation"],
                  "not to this data directory's (" + identity(a)["Incarnation"] + ")",
                  "docs/storage.md")
    assert "does not belong here" in log
    for p in copied:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    a.start()
    assert a.api(DB).must_get("c", "x") == {"Id": "x", "v": 1}


def test_the_lock_is_the_directory_itself(make_node):
    a = make_node()
    second = make_node(start=False, overrides={"Node": {"DataDirectory": str(a.data_dir)}})
    for p in a.data_dir.iterdir():  # nothing to delete to get in
        assert "lock" not in p.name, p
    refused(second, "is in use by another litedistd")
    assert a.request("GET", "/health").status == 200


def page_size(node, db):
    c = sqlite3.connect(f"file:{node.data_dir / 'databases' / (db + '.db')}?mode=ro", uri=True)
    try:
        return c.execute("PRAGMA page_size").fetchone()[0]
    finally:
        c.close()


def test_sqlite_page_size_is_chosen_for_new_files_and_kept_by_existing_ones(make_node, storage):
    """Storage.PageSizeKiB (docs/storage.md, write amplification): 8 KiB by default, set for
    database files made after it, never changing a file that exists; a bad value stops the node."""
    if storage != "sqlite":
        pytest.skip("PageSizeKiB is the sqlite backend's")
    n = make_node()
    assert_ok(n.api(DB).put("c", "x", {"v": 1}))
    n.stop()
    assert page_size(n, DB) == 8192
    n.config["Storage"]["PageSizeKiB"] = 4
    n.write_config()
    n.start()
    assert_ok(n.api("small").put("c", "y", {"v": 2}))
    assert n.api(DB).must_get("c", "x") == {"Id": "x", "v": 1}
    n.stop()
    assert (page_size(n, "small"), page_size(n, DB)) == (4096, 8192)
    n.config["Storage"]["PageSizeKiB"] = 5
    n.write_config()
    refused(n, "Storage:PageSizeKiB must be 4, 8, 16, 32 or 64")


def mapped(node, db):
    """Whether litedistd maps the database's file (its /proc maps name the file)."""
    path = str(node.data_dir / "databases" / (db + ".db"))
    with open(f"/proc/{node.proc.pid}/maps") as f:
        return any(line.rstrip("\n").endswith(" " + path) for line in f)


def test_sqlite_reads_the_file_through_a_map_unless_told_not_to(make_node, storage):
    """Storage.MmapSizeMiB (docs/storage.md): by default SQLite reads each database file through
    a memory map (as LMDB does); 0 reads with pread only; a bad value stops the node."""
    if storage != "sqlite":
        pytest.skip("MmapSizeMiB is the sqlite backend's")
    n = make_node()
    api = n.api(DB)
    assert_ok(api.put("c", "x", {"v": 1}))
    # A page is read through the map once it is in the file, not only in the WAL: a clean stop
    # moves the WAL's pages into the file.
    n.stop()
    n.start()
    assert api.must_get("c", "x") == {"Id": "x", "v": 1}
    assert mapped(n, DB)
    n.stop()
    n.config["Storage"]["MmapSizeMiB"] = 0
    n.write_config()
    n.start()
    assert api.must_get("c", "x") == {"Id": "x", "v": 1}
    assert_ok(api.put("c", "y", {"v": 2}))
    assert not mapped(n, DB)
    n.stop()
    n.config["Storage"]["MmapSizeMiB"] = -1
    n.write_config()
    refused(n, "Storage:MmapSizeMiB must be an integer from 0 to 1048576")


def test_a_clean_stop_hands_a_pruned_logs_pages_back(make_node, storage):
    """SQLite keeps the pages a prune freed inside the file; a clean stop returns them (new files
    are made with auto_vacuum=INCREMENTAL), so the file at rest holds the records, not the log's
    peak. Everything stays readable."""
    if storage != "sqlite":
        pytest.skip("LMDB's data.mdb never shrinks (docs/storage.md)")
    n = make_node(overrides={"Node": {"OperationLogRetentionDays": 0,
                                      "OperationLogRetainRecentOperations": 0}})
    pad = "x" * 1500

    def work(k):
        api = n.api(DB)
        for i in range(k, 1200, 8):
            api.must_put("c", f"d{i:05d}", {"i": i, "pad": pad})
    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts)
    n.stop()
    f = n.data_dir / "databases" / (DB + ".db")
    with_log = f.stat().st_size
    n.start()
    rows = assert_ok(n.request("POST", "/api/replication/operation-log/prune",
                               headers={"ReplicationApiKey": "I_AM_ONE_OF_YOU"}))
    assert rows[0]["PrunedCount"] == 1200, rows
    n.stop()
    # The log took about as much as the documents: most of it is given back.
    assert f.stat().st_size < with_log * 0.6, (f.stat().st_size, with_log)
    n.start()
    assert n.api(DB).must_get("c", "d01199")["i"] == 1199
