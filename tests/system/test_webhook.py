"""POST /webhook-ingestion/{database}/{apiKey}: events become document writes."""

import pytest

from conftest import (HEX32, ISO_Z, MSG_DB_INVALID, MSG_KEY_INVALID, ROOT_KEY, assert_error,
                      assert_ok, key_only, key_without, msg_no_create, msg_not_allowed, seg)


def event(entity, action, data, **extra):
    body = {"webhookId": "wh-1", "webhookName": "test hook", "eventId": "ev-1",
            "entityName": entity, "action": action, "primaryKey": "pk",
            "occurredDate": "2024-05-01T10:00:00Z", "data": data}
    body.update(extra)
    return body


def ingest(node, db, key, body=None, raw=None):
    return node.request("POST", f"/webhook-ingestion/{seg(db)}/{seg(key)}", body=body, raw=raw)


def check_accepted(resp, db, coll, entity_id, action):
    body = assert_ok(resp)
    assert body["Accepted"] is True
    assert body["Database"] == db
    assert body["Collection"] == coll
    assert body["EntityId"] == entity_id
    assert body["Action"] == action
    assert HEX32.match(body["Version"]), body
    assert body["IsDeleted"] is (action == "Delete")
    assert ISO_Z.match(body["CommittedUtc"]), body
    return body


def test_ready_text_on_get(node, db):
    r = node.request("GET", f"/webhook-ingestion/{db}/{ROOT_KEY}")
    assert r.status == 200, r
    assert r.text == "Ingestion endpoint is Ready!"


def test_add_update_delete(node, db):
    api = node.api(db)
    r = ingest(node, db, ROOT_KEY, event("orders", "Add", {"Id": "w1", "v": 1}))
    added = check_accepted(r, db, "orders", "w1", "Upsert")
    assert api.must_get("orders", "w1") == {"Id": "w1", "v": 1}

    r = ingest(node, db, ROOT_KEY, event("orders", "Update", {"Id": "w1", "v": 2}))
    updated = check_accepted(r, db, "orders", "w1", "Upsert")
    assert updated["Version"] != added["Version"]
    assert api.must_get("orders", "w1") == {"Id": "w1", "v": 2}

    r = ingest(node, db, ROOT_KEY, event("orders", "Delete", {"Id": "w1"}))
    check_accepted(r, db, "orders", "w1", "Delete")
    assert_error(api.get("orders", "w1"), 404)


@pytest.mark.parametrize("action,expected", [
    ("add", "Upsert"), ("ADD", "Upsert"), ("uPdAtE", "Upsert"), ("delete", "Delete"),
    ("DELETE", "Delete"),
])
def test_action_is_case_insensitive(node, db, action, expected):
    r = ingest(node, db, ROOT_KEY, event("orders", action, {"Id": "c1", "v": 1}))
    check_accepted(r, db, "orders", "c1", expected)


@pytest.mark.parametrize("data,entity_id", [
    ({"Id": "by-Id", "id": "not-this", "v": 1}, "by-Id"),
    ({"id": "by-id", "v": 1}, "by-id"),
    ({"code": "by-first", "v": 1}, "by-first"),
])
def test_entity_id_from_data(node, db, data, entity_id):
    r = ingest(node, db, ROOT_KEY, event("things", "Add", data))
    check_accepted(r, db, "things", entity_id, "Upsert")
    doc = node.api(db).must_get("things", entity_id)
    assert doc["Id"] == entity_id and doc["v"] == 1


def test_webhook_write_is_an_ordinary_write(node, db):
    api = node.api(db)
    api.must_post("orders", {"Id": "x", "v": 0})
    r = ingest(node, db, ROOT_KEY, event("orders", "Update", {"Id": "x", "v": 1}))
    body = check_accepted(r, db, "orders", "x", "Upsert")
    # The next API write sees the webhook's version as current.
    wr = assert_ok(api.put("orders", "x", {"v": 2}, parentVersion=body["Version"]))
    assert wr["Operation"]["LogSequence"] == 3


def test_invalid_key_is_401(node, db):
    r = ingest(node, db, "not-a-key", event("orders", "Add", {"Id": "a"}))
    assert_error(r, 401, MSG_KEY_INVALID)
    assert db not in node.databases()


def test_invalid_database_is_400(node):
    r = ingest(node, "bad name", ROOT_KEY, event("orders", "Add", {"Id": "a"}))
    assert_error(r, 400, MSG_DB_INVALID)


def test_key_without_add_db_cannot_create(node, db):
    r = ingest(node, db, key_without("ADD_DB"), event("orders", "Add", {"Id": "a"}))
    assert_error(r, 403, msg_no_create(db))
    assert db not in node.databases()


@pytest.mark.parametrize("action", ["Add", "Update"])
def test_add_and_update_need_write_or_update_role(node, db, action):
    node.api(db).must_post("seed", {"Id": "s"})
    r = ingest(node, db, key_only("READ_DOCUMENT"), event("orders", action, {"Id": "a"}))
    assert_error(r, 403, msg_not_allowed("write documents"))
    r = ingest(node, db, key_only("DELETE_DOCUMENT"), event("orders", action, {"Id": "a"}))
    assert_error(r, 403, msg_not_allowed("write documents"))
    assert_error(node.api(db).get("orders", "a"), 404)


@pytest.mark.parametrize("action", ["Add", "Update"])
def test_a_new_id_needs_write_and_an_existing_one_update(node, db, action):
    """The event's action does not matter: what the write does to the id decides the role,
    as for PUT (and the contract's litedist line for the webhook)."""
    api = node.api(db)
    api.must_post("orders", {"Id": "old", "v": 0})
    # UPDATE_DOCUMENT alone: overwrites the existing id, cannot add a new one.
    r = ingest(node, db, key_only("UPDATE_DOCUMENT"), event("orders", action, {"Id": "new"}))
    assert_error(r, 403, msg_not_allowed("write documents"))
    assert_error(api.get("orders", "new"), 404)
    r = ingest(node, db, key_only("UPDATE_DOCUMENT"), event("orders", action,
                                                          {"Id": "old", "v": 1}))
    check_accepted(r, db, "orders", "old", "Upsert")
    assert api.must_get("orders", "old") == {"Id": "old", "v": 1}
    # WRITE_DOCUMENT alone (READ and WRITE, the key): adds, cannot overwrite.
    for key in (key_only("WRITE_DOCUMENT"), key_without("UPDATE_DOCUMENT")):
        r = ingest(node, db, key, event("orders", action, {"Id": "old", "v": 2}))
        assert_error(r, 403, msg_not_allowed("update documents"))
    assert api.must_get("orders", "old") == {"Id": "old", "v": 1}
    r = ingest(node, db, key_only("WRITE_DOCUMENT"), event("orders", action, {"Id": "new"}))
    check_accepted(r, db, "orders", "new", "Upsert")
    # Both roles: either.
    r = ingest(node, db, key_without("DELETE_DOCUMENT"), event("orders", action,
                                                             {"Id": "old", "v": 3}))
    check_accepted(r, db, "orders", "old", "Upsert")


def test_delete_needs_delete_role(node, db):
    api = node.api(db)
    api.must_post("orders", {"Id": "a"})
    r = ingest(node, db, key_without("DELETE_DOCUMENT"), event("orders", "Delete", {"Id": "a"}))
    assert_error(r, 403, msg_not_allowed("delete documents"))
    assert api.must_get("orders", "a") == {"Id": "a"}
    r = ingest(node, db, key_only("DELETE_DOCUMENT"), event("orders", "Delete", {"Id": "a"}))
    check_accepted(r, db, "orders", "a", "Delete")
    assert_error(api.get("orders", "a"), 404)


@pytest.mark.parametrize("entity", ["cache", "Cache", "CACHE"])
def test_cache_collection_is_reserved(node, db, entity):
    node.api(db).must_post("seed", {"Id": "s"})
    r = ingest(node, db, ROOT_KEY, event(entity, "Add", {"Id": "a"}))
    assert_error(r, 400, "Collection 'cache' is reserved.")
    assert assert_ok(node.api(db).list_collections(includeSystemCollections="true")) == ["seed"]


@pytest.mark.parametrize("body", [
    event("orders", "Frobnicate", {"Id": "a"}),
    {k: v for k, v in event("orders", "Add", {}).items() if k != "primaryKey"},
    event("orders", "Add", "not an object"),
    event("1bad", "Add", {"Id": "a"}),
    event("", "Add", {"Id": "a"}),
    [1, 2],
], ids=["bad-action", "empty-data", "data-not-object", "bad-collection", "no-collection",
        "not-object"])
def test_bad_events_are_400(node, db, body):
    node.api(db).must_post("seed", {"Id": "s"})
    assert_error(ingest(node, db, ROOT_KEY, body), 400)
    assert assert_ok(node.api(db).list_collections()) == ["seed"]


def test_malformed_json_is_400(node, db):
    assert_error(ingest(node, db, ROOT_KEY, raw=b"{nope"), 400, startswith="Request body is not "
                 "valid JSON")
