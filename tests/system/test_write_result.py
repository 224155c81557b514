"""WriteResult and its Operation (op-log record): types, sequences, the HLC, and optimistic
concurrency with ?parentVersion=."""

import json

import pytest

from conftest import assert_error, assert_ok, check_write_result, msg_version_mismatch


def test_operation_types_and_payloads(node, db):
    api = node.api(db)
    steps = [
        (lambda: api.post("c", {"Id": "a", "v": 1}), 1, {"Id": "a", "v": 1}),
        (lambda: api.put("c", "a", {"v": 2}), 2, {"v": 2, "Id": "a"}),
        (lambda: api.post("c", {"Id": "a", "v": 3}), 2, {"Id": "a", "v": 3}),
        (lambda: api.delete("c", "a"), 3, {"Id": "a", "v": 3}),
        (lambda: api.put("c", "a", {"Id": "a", "v": 4}), 1, {"Id": "a", "v": 4}),
        (lambda: api.delete("c", "zz"), 3, {}),
    ]
    for i, (send, op_type, payload) in enumerate(steps, start=1):
        wr = check_write_result(assert_ok(send()), "c", "zz" if i == 6 else "a", op_type,
                                node_id="test-node", doc=payload)
        assert wr["Operation"]["LogSequence"] == i, (i, wr)
        assert wr["Operation"]["Sequence"] == i


def test_log_sequence_is_per_database(node, new_db):
    a, b = node.api(new_db("a")), node.api(new_db("b"))
    assert a.must_post("c", {"Id": "1"})["Operation"]["LogSequence"] == 1
    assert a.must_post("c", {"Id": "2"})["Operation"]["LogSequence"] == 2
    assert b.must_post("c", {"Id": "1"})["Operation"]["LogSequence"] == 1
    assert a.must_post("d", {"Id": "1"})["Operation"]["LogSequence"] == 3


def test_versions_are_unique_and_versions_move(node, db):
    api = node.api(db)
    seen = set()
    for i in range(10):
        wr = api.must_post("c", {"Id": "same", "v": i})
        assert wr["Version"] not in seen
        seen.add(wr["Version"])


def test_parent_version_is_the_previous_version(node, db):
    api = node.api(db)
    first = api.must_post("c", {"Id": "a"})
    assert first["Operation"]["ParentVersion"] is None
    second = api.must_put("c", "a", {"v": 1})
    assert second["Operation"]["ParentVersion"] == first["Version"]
    third = api.must_delete("c", "a")
    assert third["Operation"]["ParentVersion"] == second["Version"]


def test_hlc_strictly_increases_across_writes_and_restart(make_node):
    n = make_node()
    api = n.api("hlc")
    stamps = []
    for i in range(20):
        coll = "c" if i % 2 else "d"
        wr = api.must_post(coll, {"Id": f"x{i % 3}", "i": i})
        stamps.append(int(wr["Operation"]["Hlc"]))
    stamps.append(int(api.must_delete("c", "x1")["Operation"]["Hlc"]))
    seq_before = api.must_post("c", {"Id": "last"})["Operation"]["LogSequence"]
    n.restart()
    wr = api.must_post("c", {"Id": "after"})
    stamps.append(int(wr["Operation"]["Hlc"]))
    assert all(a < b for a, b in zip(stamps, stamps[1:])), stamps
    assert wr["Operation"]["LogSequence"] == seq_before + 1
    assert api.must_get("c", "last") == {"Id": "last"}


def test_hlc_increases_across_databases(node, new_db):
    stamps = []
    for i in range(6):
        wr = node.api(new_db(f"h{i % 2}")).must_post("c", {"Id": str(i)})
        stamps.append(int(wr["Operation"]["Hlc"]))
    assert all(a < b for a, b in zip(stamps, stamps[1:])), stamps


# ------------------------------------------------------------------------------------------------
# parentVersion
# ------------------------------------------------------------------------------------------------

WRONG = "0123456789abcdef0123456789abcdef"


def writers(api, doc_id, value):
    """The three writing routes on `doc_id`, each taking parentVersion."""
    return {
        "post": lambda pv: api.post("c", {"Id": doc_id, "v": value}, parentVersion=pv),
        "put": lambda pv: api.put("c", doc_id, {"v": value}, parentVersion=pv),
        "delete": lambda pv: api.delete("c", doc_id, parentVersion=pv),
    }


@pytest.mark.parametrize("route", ["post", "put", "delete"])
def test_parent_version_matching_is_accepted(node, db, route):
    api = node.api(db)
    v = api.must_post("c", {"Id": "a", "v": 0})["Version"]
    wr = assert_ok(writers(api, "a", 1)[route](v))
    assert wr["Operation"]["ParentVersion"] == v
    if route == "delete":
        assert_error(api.get("c", "a"), 404)
    else:
        assert api.must_get("c", "a")["v"] == 1


@pytest.mark.parametrize("route", ["post", "put", "delete"])
@pytest.mark.parametrize("pv", ["", "   "])
def test_blank_parent_version_is_ignored(node, db, route, pv):
    api = node.api(db)
    api.must_post("c", {"Id": "a", "v": 0})
    assert_ok(writers(api, "a", 1)[route](pv))


@pytest.mark.parametrize("route", ["post", "put", "delete"])
def test_stale_parent_version_is_409_and_writes_nothing(node, db, route):
    api = node.api(db)
    old = api.must_post("c", {"Id": "a", "v": 0})
    cur = api.must_post("c", {"Id": "a", "v": 1})
    r = writers(api, "a", 2)[route](old["Version"])
    assert_error(r, 409, msg_version_mismatch("c", "a", old["Version"], cur["Version"]))
    assert api.must_get("c", "a") == {"Id": "a", "v": 1}
    nxt = api.must_post("c", {"Id": "probe"})
    assert nxt["Operation"]["LogSequence"] == cur["Operation"]["LogSequence"] + 1


@pytest.mark.parametrize("route", ["post", "put", "delete"])
def test_parent_version_of_absent_document_is_null(node, db, route):
    api = node.api(db)
    api.must_post("c", {"Id": "other"})
    r = writers(api, "ghost", 1)[route](WRONG)
    assert_error(r, 409, msg_version_mismatch("c", "ghost", WRONG, None))
    assert_error(api.get("c", "ghost"), 404)
    assert [d["Id"] for d in assert_ok(api.list_docs("c"))] == ["other"]


@pytest.mark.parametrize("route", ["post", "put", "delete"])
def test_tombstone_keeps_its_version(node, db, route):
    api = node.api(db)
    api.must_post("c", {"Id": "a", "v": 0})
    dead = api.must_delete("c", "a")["Version"]
    r = writers(api, "a", 1)[route](WRONG)
    assert_error(r, 409, msg_version_mismatch("c", "a", WRONG, dead))
    assert_error(api.get("c", "a"), 404)
    wr = assert_ok(writers(api, "a", 1)[route](dead))
    assert wr["Operation"]["ParentVersion"] == dead


def test_version_mismatch_message_keeps_names_as_sent(node, db):
    api = node.api(db)
    doc_id = "Mixed Case/\u00e9"
    cur = api.must_post("Orders", {"Id": doc_id})["Version"]
    r = api.put("Orders", doc_id, {"v": 1}, parentVersion="not-a-version")
    assert_error(r, 409, msg_version_mismatch("Orders", doc_id, "not-a-version", cur))


def test_payload_is_json_text_of_the_document_after(node, db):
    api = node.api(db)
    wr = api.must_put("c", "a", {"n": 12345678901234567, "s": "\u00e9"})
    assert isinstance(wr["Operation"]["Payload"], str)
    assert json.loads(wr["Operation"]["Payload"]) == api.must_get("c", "a")
    assert "12345678901234567" in wr["Operation"]["Payload"]
