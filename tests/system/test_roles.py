"""Every role on every route: a key holding every role but the one a route needs gets 403
`ApiKey is not allowed to <action>.` and nothing changes; a key holding just that role succeeds.
ADD_DB is covered at the end (it guards creating a database, not a route)."""

from dataclasses import dataclass
from typing import Callable

import pytest

from conftest import (KEY_ADD_WRITE, ROLES, assert_error, assert_ok, key_only, key_without,
                      msg_no_create, msg_not_allowed)

DOC = {"Id": "d1", "v": 1}


# --- set-ups, run with the root key ---------------------------------------------------------------

def seed(api):
    api.must_post("seed", {"Id": "s"})


def with_doc(api):
    seed(api)
    api.must_post("items", dict(DOC))


def with_tombstone(api):
    with_doc(api)
    api.must_delete("items", "d1")


# --- checks after an allowed request (root key) -----------------------------------------------------

def has_d1(value):
    def check(root, resp):
        assert root.must_get("items", "d1") == {"Id": "d1", "v": value}
    return check


def check_collections(root, resp):
    assert isinstance(resp.body, list) and {"items", "seed"} <= set(resp.body), resp


def check_docs(root, resp):
    assert resp.body == [DOC], resp


def check_doc(root, resp):
    assert resp.body == DOC, resp


def check_d2(root, resp):
    assert root.must_get("items", "d2") == {"Id": "d2", "v": 2}


def check_registered(root, resp):
    assert "fresh" in assert_ok(root.list_collections())


def check_d1_gone(root, resp):
    assert_error(root.get("items", "d1"), 404)
    assert resp.body["IsDeleted"] is True


def check_absent_delete(root, resp):
    assert resp.body["IsDeleted"] is True and resp.body["Operation"]["Payload"] == "{}"


def check_db_gone(root, resp):
    assert resp.body == {"Name": root.db, "Deleted": True}
    assert root.db not in root.node.databases()


@dataclass
class Case:
    id: str
    role: str
    setup: Callable
    send: Callable
    check: Callable


ACTIONS = {"READ_DOCUMENT": "read documents", "WRITE_DOCUMENT": "write documents",
           "UPDATE_DOCUMENT": "update documents", "DELETE_DOCUMENT": "delete documents",
           "DELETE_DB": "delete databases"}

CASES = [
    Case("list-collections", "READ_DOCUMENT", with_doc, lambda a: a.list_collections(),
         check_collections),
    Case("list-documents", "READ_DOCUMENT", with_doc, lambda a: a.list_docs("items"), check_docs),
    Case("get-document", "READ_DOCUMENT", with_doc, lambda a: a.get("items", "d1"), check_doc),
    Case("post-new", "WRITE_DOCUMENT", with_doc, lambda a: a.post("items", {"Id": "d2", "v": 2}),
         check_d2),
    Case("register", "WRITE_DOCUMENT", seed, lambda a: a.register("fresh"), check_registered),
    Case("put-new", "WRITE_DOCUMENT", with_doc, lambda a: a.put("items", "d2", {"v": 2}),
         check_d2),
    Case("put-tombstoned", "WRITE_DOCUMENT", with_tombstone,
         lambda a: a.put("items", "d1", {"v": 5}), has_d1(5)),
    Case("post-tombstoned", "WRITE_DOCUMENT", with_tombstone,
         lambda a: a.post("items", {"Id": "d1", "v": 5}), has_d1(5)),
    Case("put-existing", "UPDATE_DOCUMENT", with_doc, lambda a: a.put("items", "d1", {"v": 7}),
         has_d1(7)),
    Case("post-existing", "UPDATE_DOCUMENT", with_doc,
         lambda a: a.post("items", {"Id": "d1", "v": 7}), has_d1(7)),
    Case("delete-existing", "DELETE_DOCUMENT", with_doc, lambda a: a.delete("items", "d1"),
         check_d1_gone),
    Case("delete-absent", "DELETE_DOCUMENT", with_doc, lambda a: a.delete("items", "nope"),
         check_absent_delete),
    Case("delete-database", "DELETE_DB", with_doc, lambda a: a.drop_database(), check_db_gone),
]


def snapshot(root):
    """What a refused request must leave unchanged."""
    node = root.node
    return {"databases": node.databases(),
            "collections": assert_ok(root.list_collections()),
            "items": assert_ok(root.list_docs("items")),
            "d1": root.get("items", "d1").body}


def test_every_role_has_cases():
    assert {c.role for c in CASES} == set(ROLES) - {"ADD_DB"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_key_lacking_the_role_is_refused(node, db, case):
    root = node.api(db)
    case.setup(root)
    before = snapshot(root)
    resp = case.send(node.api(db, key=key_without(case.role)))
    assert_error(resp, 403, msg_not_allowed(ACTIONS[case.role]))
    assert snapshot(root) == before


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_key_with_only_the_role_is_allowed(node, db, case):
    root = node.api(db)
    case.setup(root)
    resp = case.send(node.api(db, key=key_only(case.role)))
    assert resp.status == 200, resp
    case.check(root, resp)


# --- ADD_DB -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("send", [
    lambda a: a.post("c", {"Id": "a"}),
    lambda a: a.put("c", "a", {"v": 1}),
    lambda a: a.register("c"),
    lambda a: a.list_collections(),
    lambda a: a.get("c", "a"),
    lambda a: a.delete("c", "a"),
], ids=["post", "put", "register", "list", "get", "delete"])
def test_key_without_add_db_cannot_create_a_database(node, db, send):
    count = node.node_info()["LogicalDatabaseCount"]
    assert_error(send(node.api(db, key=key_without("ADD_DB"))), 403, msg_no_create(db))
    assert db not in node.databases()
    assert node.node_info()["LogicalDatabaseCount"] == count


def test_key_without_add_db_uses_an_existing_database(node, db):
    node.api(db).must_post("seed", {"Id": "s"})
    assert_ok(node.api(db, key=key_without("ADD_DB")).post("c", {"Id": "a"}))


def test_key_with_add_db_creates_the_database(node, db):
    count = node.node_info()["LogicalDatabaseCount"]
    assert_ok(node.api(db, key=KEY_ADD_WRITE).post("c", {"Id": "a", "v": 1}))
    assert db in node.databases()
    assert node.node_info()["LogicalDatabaseCount"] == count + 1
    assert node.api(db).must_get("c", "a") == {"Id": "a", "v": 1}


def test_add_db_alone_passes_the_create_check_only(node, db):
    # ADD_DB lets the request past the create check; writing still needs WRITE_DOCUMENT.
    r = node.api(db, key=key_only("ADD_DB")).post("c", {"Id": "a"})
    assert_error(r, 403, msg_not_allowed("write documents"))
