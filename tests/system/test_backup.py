"""litedistd backup, restore, export and import (docs/backup.md): a backup taken under writes,
restored into a new directory under the same NodeId, rejoins its peer and converges without
losing the writes made after the backup, and its new writes reach the peer; documents exported
from one backend and imported into the other are the same documents."""

import json
import threading
import time

from conftest import assert_ok, run_litedistd
from test_replication import (DB, add_peer, cluster_overrides, db_state, dump, make_cluster,
                              status, wait_converged, wait_for)


def cli(build, args, timeout=60, cwd=None):
    return run_litedistd(build, args, timeout=timeout, cwd=cwd)


def test_backup_under_writes_restore_rejoins_and_converges(make_node, build, tmp_path):
    a, b = make_cluster(make_node, ["a", "b"], [(0, 1)])
    api_b = b.api(DB)
    for i in range(20):
        api_b.must_put("items", f"pre{i}", {"n": i})
    wait_converged([a, b])

    # Writes keep arriving on b while the backup runs.
    stop = threading.Event()
    during, refused = [], []

    def writer():
        i = 0
        while not stop.is_set() and i < 2000:
            r = b.api(DB).put("items", f"during{i}", {"n": i})
            if r.status != 200:
                refused.append(r)
                return
            during.append(f"during{i}")
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(lambda: len(during) >= 5, what="writes before the backup")
        backup = tmp_path / "backup"
        res = cli(build, ["backup", "--config", str(b.config_path), "--out", str(backup)])
        assert res.returncode == 0, res
    finally:
        stop.set()
        t.join(timeout=30)
    assert not t.is_alive() and not refused, refused
    manifest = json.loads((backup / "backup.json").read_text())
    assert manifest["NodeId"] == "b" and DB in manifest["Databases"], manifest

    # After the backup: b writes more (these exist only on a once b is lost), and a writes.
    for i in range(10):
        api_b.must_put("items", f"afterb{i}", {"n": i})
        a.api(DB).must_put("items", f"aftera{i}", {"n": i})
    (old_vv, _), _ = wait_converged([a, b])
    b.stop()
    # a is down while the restored node takes its first writes: they cannot learn from a which
    # sequences b's lost life used (the case where reusing them would lose the writes).
    a.stop()

    # A new data directory from the backup, started under the same NodeId at the same address.
    res = cli(build, ["restore", "--from", str(backup), "--data", str(b.data_dir)])
    assert res.returncode != 0 and "not empty" in res.stderr, res
    new_data = tmp_path / "restored"
    res = cli(build, ["restore", "--from", str(backup), "--data", str(new_data)])
    assert res.returncode == 0, res
    ident = json.loads((new_data / "identity.json").read_text())
    old_ident = json.loads((backup / "identity.json").read_text())
    assert ident["NodeId"] == "b" and ident["Format"] == 2
    assert ident["Incarnation"] != old_ident["Incarnation"]
    assert ident["RestoredFromIncarnation"] == old_ident["Incarnation"]
    origin = ident["Origin"]
    assert origin.startswith("b.") and origin != "b"

    cfg = json.loads(json.dumps(b.config))
    cfg["Node"]["DataDirectory"] = str(new_data)
    b2 = make_node(overrides=cfg, node_id="b", name="b2", start=False)
    b2.port = b.port
    b2.config["Node"]["Port"] = b.port
    b2.write_config()
    b2.start()
    for i in range(5):
        b2.api(DB).must_put("items", f"restored{i}", {"n": i})
    a.start()

    # It converges: every write of a and of b's old life (those after the backup included), and
    # its own new writes, which carry the new origin, so a does not drop them as duplicates.
    (vv, _), docs = wait_converged([a, b2])
    ids = {json.loads(d)["Id"] for d in docs["items"]}
    want = ({f"pre{i}" for i in range(20)} | set(during) | {f"afterb{i}" for i in range(10)} |
            {f"aftera{i}" for i in range(10)} | {f"restored{i}" for i in range(5)})
    assert want <= ids, sorted(want - ids)[:10]
    assert vv[origin] == 5, vv
    assert vv["b"] == old_vv["b"], (vv, old_vv)
    # The log continues past the jump, which the counts from positions leave out.
    st = next(d for d in status(b2)["Databases"] if d["DatabaseName"] == DB)
    assert st["LocalMaxLogSequence"] > 2**40, st
    assert st["OperationLogEntries"] < 10**5, st

    # And later writes keep flowing both ways.
    b2.api(DB).must_put("items", "late", {"n": 1})
    wait_for(lambda: a.api(DB).get("items", "late").status == 200, what="b2's write on a")
    a.api(DB).must_put("items", "late-a", {"n": 1})
    wait_for(lambda: b2.api(DB).get("items", "late-a").status == 200, what="a's write on b2")


def restore_as(make_node, build, node, node_id, backup, new_data):
    """Restores `backup` into new_data and starts it as the stopped `node` (same NodeId and
    address)."""
    res = cli(build, ["restore", "--from", str(backup), "--data", str(new_data)])
    assert res.returncode == 0, res
    cfg = json.loads(json.dumps(node.config))
    cfg["Node"]["DataDirectory"] = str(new_data)
    n2 = make_node(overrides=cfg, node_id=node_id, name=node_id + "2", start=False)
    n2.port = node.port
    n2.config["Node"]["Port"] = node.port
    n2.write_config()
    n2.start()
    return n2


def link_of(node, peer):
    row = next(d for d in status(node)["Databases"] if d["DatabaseName"] == DB)
    return next(p for p in row["Peers"] if p["PeerNodeId"] == peer)


def test_restored_node_on_a_one_way_link_gets_its_own_lost_writes(make_node, build, tmp_path):
    """Only a has a link (to b): a pulls b's writes and pushes its log to b, and b never pulls.
    b is restored from a backup: the writes its lost life made after the backup come back by
    a's pushes, which follow b's version vector for b's own id too (docs/backup.md)."""
    a = make_node(overrides=cluster_overrides(), node_id="a", name="a")
    one_way = cluster_overrides()
    one_way["Node"]["AutoRegisterPeers"] = False  # a's introduction does not make b a link
    b = make_node(overrides=one_way, node_id="b", name="b")
    add_peer(a, b)
    for i in range(5):
        b.api(DB).must_put("items", f"pre{i}", {"n": i})
    a.api(DB).must_put("items", "from-a", {"n": 0})
    wait_converged([a, b])
    backup = tmp_path / "backup"
    res = cli(build, ["backup", "--config", str(b.config_path), "--out", str(backup)])
    assert res.returncode == 0, res
    # Writes of b's life after the backup: a pulls them, so only a holds them once b is lost.
    for i in range(5):
        b.api(DB).must_put("items", f"afterb{i}", {"n": i})
    (old_vv, _), _ = wait_converged([a, b])
    assert [p for d in status(b)["Databases"] for p in d["Peers"]] == []
    b.stop()

    b2 = restore_as(make_node, build, b, "b", backup, tmp_path / "restored")
    origin = json.loads((tmp_path / "restored" / "identity.json").read_text())["Origin"]
    # Its first write under the new origin tells a that the origin "b" is a lost life's.
    b2.api(DB).must_put("items", "restored0", {"n": 0})
    (vv, _), docs = wait_converged([a, b2])
    ids = {json.loads(d)["Id"] for d in docs["items"]}
    want = ({f"pre{i}" for i in range(5)} | {f"afterb{i}" for i in range(5)} |
            {"from-a", "restored0"})
    assert want == ids, sorted(want ^ ids)
    assert vv["b"] == old_vv["b"] and vv[origin] == 1, (vv, old_vv)
    # Pushed again from the start of a's log, only what b2 lacked went (a's own write and the
    # pre-backup ones are in its version vector).
    link = link_of(a, "b")
    assert link["PushedDuplicates"] == 0, link


def other_backend(storage):
    return "lmdb" if storage == "sqlite" else "sqlite"


def test_export_from_one_backend_imports_into_the_other(make_node, build, storage, tmp_path):
    src = make_node(node_id="src", overrides=cluster_overrides())
    api = src.api("shop")
    for i in range(30):
        api.must_put("orders", f"o{i}", {"n": i, "tags": ["x", i], "nested": {"ok": True}})
    api.must_put("users", "u1", {"name": "Zoë"})
    api.must_put("users", "gone", {"name": "x"})
    api.must_delete("users", "gone")
    assert_ok(api.call("POST", "/api/query", body={"Query": "CREATE INDEX by_n ON orders ($.n)"}))

    out = tmp_path / "shop.jsonl"
    # The source runs meanwhile: export reads a consistent copy beside it.
    res = cli(build, ["export", "--config", str(src.config_path), "--database", "shop",
                      "--out", str(out)])
    assert res.returncode == 0, res
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 32
    assert {"collection": "users", "id": "u1", "document": {"Id": "u1", "name": "Zoë"}} in lines
    # The index definition travels as its record, so a restore keeps the index
    [d] = [x for x in lines if x["collection"] == "_sys_indexes"]
    assert d["id"] == "orders.by_n" and d["document"]["Paths"] == ["$.n"], d
    assert "exported 31 documents and 1 index definitions" in res.stderr, res

    dst = make_node(node_id="dst", overrides={**cluster_overrides(),
                                              "Storage": {"Plugin": other_backend(storage)}})
    res = cli(build, ["import", "--config", str(dst.config_path), "--database", "shop",
                      "--in", str(out)])
    assert res.returncode != 0 and "in use by another litedistd" in res.stderr, res
    dst.stop()
    res = cli(build, ["import", "--config", str(dst.config_path), "--database", "shop",
                      "--in", str(out)])
    assert res.returncode == 0, res
    assert "imported 31 documents and 1 index definitions" in res.stderr, res
    dst.start()

    assert dump(dst, "shop") == dump(src, "shop")
    # Through the write path: one op per document and one for the definition, under the
    # importing node's origin; the index is recreated (built online) and planned.
    vv, _ = db_state(dst, "shop")
    assert vv == {"dst": 32}, vv
    dapi = dst.api("shop")
    q = {"Query": "EXPLAIN SELECT $ FROM orders WHERE $.n = 7"}
    deadline = time.monotonic() + 10
    for _ in range(500):
        ixs = assert_ok(dapi.call("GET", "/api/indexes"))
        if ixs and ixs[0]["State"] == "Ready":
            break
        assert time.monotonic() < deadline, ixs
        time.sleep(0.02)
    assert [(x["Name"], x["Collection"], x["Paths"], x["Entries"]) for x in ixs] == [
        ("by_n", "orders", ["$.n"], 30)]
    assert assert_ok(dapi.call("POST", "/api/query", body=q))["Rows"][0]["Index"] == "by_n"

    # Every database at once: each line names its database.
    res = cli(build, ["export", "--config", str(src.config_path), "--out", "-"])
    assert res.returncode == 0, res
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 32 and all(x["database"] == "shop" for x in lines)


def test_input_errors(make_node, build, tmp_path):
    n = make_node(node_id="n")
    n.api("x").must_put("c", "d", {"v": 1})
    res = cli(build, ["backup", "--config", str(n.config_path)])
    assert res.returncode == 2 and "usage: litedistd backup" in res.stderr, res
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    res = cli(build, ["backup", "--config", str(n.config_path), "--out", str(busy)])
    assert res.returncode == 1 and "is not empty" in res.stderr, res
    res = cli(build, ["restore", "--from", str(busy), "--data", str(tmp_path / "new")])
    assert res.returncode == 1 and "is not a finished litedistd backup" in res.stderr, res
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"collection": "c", "id": "d"}\n')
    n.stop()
    res = cli(build, ["import", "--config", str(n.config_path), "--database", "x", "--in",
                      str(bad)])
    assert res.returncode == 1 and "line 1: needs" in res.stderr, res
    bad.write_text('{"collection": "_sys_indexes", "id": "c.ix", "document": '
                   '{"Collection": "c", "Name": "ix", "Paths": ["Id"]}}\n')
    res = cli(build, ["import", "--config", str(n.config_path), "--database", "x", "--in",
                      str(bad)])
    assert res.returncode == 1 and "line 1: Index path 'Id' names the document id" in res.stderr, res
    # A stopped node is backed up the same way, and its backup restores. Without a config, the
    # backend is the one the directory records (the default would be sqlite).
    res = cli(build, ["backup", "--data", str(n.data_dir), "--out", str(tmp_path / "bk")],
              cwd=str(tmp_path))
    assert res.returncode == 0 and "copied x" in res.stdout, res
    res = cli(build, ["restore", "--from", str(tmp_path / "bk"), "--data", str(tmp_path / "r")])
    assert res.returncode == 0, res
    assert (tmp_path / "r" / "databases").is_dir() and (tmp_path / "r" / "identity.json").exists()
