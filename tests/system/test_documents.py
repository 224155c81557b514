"""The document routes: CRUD, the body Id rules, listing and paging, collection names and document
ids, tombstones, number and Unicode fidelity."""

import json
import threading

import pytest

from conftest import (MSG_CACHE_RESERVED, MSG_INVALID_COLLECTION, MSG_INVALID_ID, MSG_POST_NO_ID,
                      MSG_PUT_NOT_OBJECT, assert_error, assert_ok, check_write_result, seg)


def casefold_sorted(names):
    return sorted(names, key=lambda s: (s.lower(), s))


def is_casefold_sorted(names):
    keys = [s.lower() for s in names]
    return keys == sorted(keys)


def write_many(api, coll, docs, threads=4):
    """POSTs the docs from a few threads (to keep set-up quick); fails on any non-200."""
    errors = []

    def worker(part):
        for d in part:
            r = api.post(coll, d)
            if r.status != 200:
                errors.append(r)

    parts = [docs[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors[:3]


# ------------------------------------------------------------------------------------------------
# Basic CRUD
# ------------------------------------------------------------------------------------------------

def test_post_then_get_returns_the_document_as_sent(node, db):
    api = node.api(db)
    doc = {"Id": "o1", "Total": 12.5, "Lines": [{"Sku": "a", "Qty": 2}], "Note": None,
           "Paid": False, "Meta": {"k": {"deep": [1, 2, {"x": "y"}]}}}
    wr = assert_ok(api.post("orders", doc))
    check_write_result(wr, "orders", "o1", 1, node_id="test-node", doc=doc)
    assert api.must_get("orders", "o1") == doc


def test_post_upsert_replaces_the_whole_document(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "a", "x": 1, "y": 2})
    wr = api.must_post("c", {"Id": "a", "x": 3})
    check_write_result(wr, "c", "a", 2, doc={"Id": "a", "x": 3})
    assert api.must_get("c", "a") == {"Id": "a", "x": 3}


def test_put_creates_then_replaces(node, db):
    api = node.api(db)
    wr = api.must_put("c", "p1", {"Id": "p1", "a": 1})
    check_write_result(wr, "c", "p1", 1, doc={"Id": "p1", "a": 1})
    wr = api.must_put("c", "p1", {"Id": "p1", "b": 2})
    check_write_result(wr, "c", "p1", 2, doc={"Id": "p1", "b": 2})
    assert api.must_get("c", "p1") == {"Id": "p1", "b": 2}


def test_put_adds_the_path_id(node, db):
    api = node.api(db)
    api.must_put("c", "p2", {"a": 1})
    assert api.must_get("c", "p2") == {"a": 1, "Id": "p2"}


def test_reads_see_every_acknowledged_write_under_concurrency(node, db):
    """GETs that arrive together share one read snapshot (db/snapshot.h); a write acknowledged
    before a GET was sent must still be visible to it, and to the other clients' GETs, while
    eight clients write and read at once."""
    errors = []

    def client(k):
        api = node.api(db)
        try:
            for i in range(60):
                api.must_put("rw", f"d{k}", {"v": i})
                got = api.must_get("rw", f"d{k}")
                if got["v"] != i:
                    errors.append((k, i, got))
                j = (k + 1) % 8
                floor = seen[j]  # j's write of `floor` was acknowledged before this GET
                other = api.get("rw", f"d{j}")
                if other.status == 200 and other.body["v"] < floor:
                    errors.append(("other", k, floor, other.body))
                seen[k] = i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    seen = [-1] * 8
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_a_raw_nul_byte_is_not_json(node, db):
    """jansson skips a raw NUL outside strings; such a body must be refused, not stored with the
    byte in it (it would also stop replication of the document). An escaped one is data."""
    api = node.api(db)
    r = api.put("c", "x", raw=b'{"Id":"x","n":1\x00}')
    assert_error(r, 400, startswith="Request body is not valid JSON: a NUL byte")
    assert api.get("c", "x").status == 404
    assert api.put("c", "y", raw='{"Id":"y","s":"a\\u0000b"}').status == 200
    assert api.must_get("c", "y")["s"] == "a\x00b"


def test_get_missing_document_is_404_json(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "a"})
    assert_error(api.get("c", "b"), 404)
    assert_error(api.get("never", "a"), 404)


def test_register_creates_an_empty_collection(node, db):
    api = node.api(db)
    r = api.register("Empty")
    assert r.status == 200 and r.raw == b"", r
    assert assert_ok(api.list_collections()) == ["Empty"]
    assert assert_ok(api.list_docs("Empty")) == []
    r = api.register("Empty")  # again: still fine
    assert r.status == 200, r


@pytest.mark.parametrize("body", [
    {"v": 1},
    {"Id": "", "v": 1},
    {"Id": "   ", "v": 1},
    {"Id": 5},
    {"Id": None},
    {"Id": ["a"]},
    {"id": "lower"},
    {"ID": "upper"},
    {"_id": "underscore"},
    [{"Id": "in-array"}],
    "Id",
    42,
    None,
], ids=lambda b: json.dumps(b))
def test_post_without_id_string_is_400(node, db, body):
    api = node.api(db)
    api.must_post("c", {"Id": "keep"})
    r = api.post("c", raw=json.dumps(body))
    assert_error(r, 400, MSG_POST_NO_ID)
    assert assert_ok(api.list_docs("c")) == [{"Id": "keep"}]


@pytest.mark.parametrize("body", [[], [1, 2], "text", 3, True, None],
                         ids=lambda b: json.dumps(b))
def test_put_body_must_be_an_object(node, db, body):
    api = node.api(db)
    r = api.put("c", "a", raw=json.dumps(body))
    assert_error(r, 400, MSG_PUT_NOT_OBJECT)
    assert_error(api.get("c", "a"), 404)


# ------------------------------------------------------------------------------------------------
# The body Id rules
# ------------------------------------------------------------------------------------------------

# (body sent with PUT to id "t1", the document stored)
PUT_ID_RULES = [
    ({"Id": "t1", "a": 1}, {"Id": "t1", "a": 1}),
    ({"a": 1, "Id": "t1"}, {"a": 1, "Id": "t1"}),
    ({"Id": "other", "a": 1}, {"a": 1, "Id": "t1"}),
    ({"Id": "T1", "a": 1}, {"a": 1, "Id": "t1"}),
    ({"id": "t1", "a": 1}, {"a": 1, "Id": "t1"}),
    ({"Id": "t1", "id": "t1", "a": 1}, {"a": 1, "Id": "t1"}),
    ({"Id": "t1", "_id": "t1", "a": 1}, {"a": 1, "Id": "t1"}),
    ({"Id": "t1", "_sys_hlc": 5, "a": 1}, {"a": 1, "Id": "t1"}),
    ({"_sys_x": 1, "_id": 9, "id": 3, "a": 1}, {"a": 1, "Id": "t1"}),
    ({"Id": 7, "a": 1}, {"a": 1, "Id": "t1"}),
    ({"Id": None}, {"Id": "t1"}),
    ({}, {"Id": "t1"}),
    ({"Id": "t1", "nested": {"id": 1, "_id": 2, "_sys_y": 3, "Id": "z"}},
     {"Id": "t1", "nested": {"id": 1, "_id": 2, "_sys_y": 3, "Id": "z"}}),
    ({"Id": "t1", "ID": "x", "iD": "y"}, {"Id": "t1", "ID": "x", "iD": "y"}),
    ({"Id": "t1", "sys_x": 1, "_sysx": 2}, {"Id": "t1", "sys_x": 1, "_sysx": 2}),
]


@pytest.mark.parametrize("sent,stored", PUT_ID_RULES, ids=lambda v: json.dumps(v))
def test_put_id_rules(node, db, sent, stored):
    api = node.api(db)
    wr = api.must_put("c", "t1", sent)
    assert json.loads(wr["Operation"]["Payload"]) == stored
    assert api.must_get("c", "t1") == stored


# (body sent with POST, the id it targets, the document stored)
POST_ID_RULES = [
    ({"Id": "p1", "a": 1}, "p1", {"Id": "p1", "a": 1}),
    ({"Id": "p1", "id": "zz", "a": 1}, "p1", {"a": 1, "Id": "p1"}),
    ({"Id": "p1", "_id": "zz", "a": 1}, "p1", {"a": 1, "Id": "p1"}),
    ({"Id": "p1", "_sys_origin": "n", "a": 1}, "p1", {"a": 1, "Id": "p1"}),
]


@pytest.mark.parametrize("sent,target,stored", POST_ID_RULES, ids=lambda v: json.dumps(v))
def test_post_id_rules(node, db, sent, target, stored):
    api = node.api(db)
    wr = api.must_post("c", sent)
    assert wr["EntityId"] == target
    assert json.loads(wr["Operation"]["Payload"]) == stored
    assert api.must_get("c", target) == stored


def test_document_stored_as_sent_keeps_its_text(node, db):
    """A document stored as sent comes back with its members in the order sent."""
    api = node.api(db)
    raw = '{"z": 1, "Id": "ord", "a": {"y": 2, "b": 3}, "m": [3, 1, 2]}'
    assert_ok(api.put("c", "ord", raw=raw))
    r = api.get("c", "ord")
    assert list(json.loads(r.text).keys()) == ["z", "Id", "a", "m"]
    assert list(json.loads(r.text)["a"].keys()) == ["y", "b"]


@pytest.mark.parametrize("flag", [None, "false", "true"])
def test_include_reserved_fields(node, db, flag):
    api = node.api(db)
    api.must_put("c", "r1", {"_id": "x", "_sys_a": 1, "keep": {"_id": 2}})
    params = {} if flag is None else {"includeReservedFields": flag}
    got = assert_ok(api.get("c", "r1", **params))
    assert got == {"keep": {"_id": 2}, "Id": "r1"}
    listed = assert_ok(api.list_docs("c", **params))
    assert listed == [got]


# ------------------------------------------------------------------------------------------------
# Listing collections and documents
# ------------------------------------------------------------------------------------------------

def test_collections_sorted_case_insensitively(node, db):
    api = node.api(db)
    names = ["beta", "Alpha", "gamma", "_under", "Zeta", "delta$1", "Beta2"]
    for name in names[:4]:
        api.must_post(name, {"Id": "x"})
    for name in names[4:]:
        assert api.register(name).status == 200
    listed = assert_ok(api.list_collections())
    assert sorted(listed) == sorted(names)
    assert is_casefold_sorted(listed), listed
    assert listed == casefold_sorted(names)


@pytest.mark.parametrize("flag", ["true", "false"])
def test_cache_listed_only_with_system_collections(node, db, flag):
    api = node.api(db)
    api.must_post("orders", {"Id": "x"})
    listed = assert_ok(api.list_collections(includeSystemCollections=flag))
    assert [c for c in listed if c != "cache"] == ["orders"]
    if flag == "false":
        assert "cache" not in listed
    assert assert_ok(api.list_collections()) == ["orders"]


def test_list_documents_and_tombstones_are_hidden(node, db):
    api = node.api(db)
    for i in range(5):
        api.must_post("c", {"Id": f"d{i}", "v": i})
    api.must_delete("c", "d2")
    listed = assert_ok(api.list_docs("c"))
    assert sorted(d["Id"] for d in listed) == ["d0", "d1", "d3", "d4"]
    assert {d["Id"]: d for d in listed}["d3"] == {"Id": "d3", "v": 3}
    assert_error(api.get("c", "d2"), 404)


@pytest.fixture(scope="module")
def paged(node):
    """A collection of 15 documents p00..p14 in database 'paging' (made once per module)."""
    api = node.api("paging")
    write_many(api, "p", [{"Id": f"p{i:02d}", "n": i} for i in range(15)])
    return api


@pytest.mark.parametrize("params,expected", [
    ({}, list(range(15))),
    ({"take": 5}, list(range(5))),
    ({"skip": 10}, list(range(10, 15))),
    ({"skip": 3, "take": 4}, [3, 4, 5, 6]),
    ({"skip": -3, "take": 2}, [0, 1]),
    ({"skip": 14, "take": 5}, [14]),
    ({"skip": 15}, []),
    ({"skip": 1000}, []),
    ({"take": 0}, [0]),
    ({"take": -5}, [0]),
    ({"take": 20000}, list(range(15))),
], ids=lambda v: json.dumps(v))
def test_skip_and_take(paged, params, expected):
    listed = assert_ok(paged.list_docs("p", **params))
    assert [d["n"] for d in listed] == expected


@pytest.mark.parametrize("params", [
    {"skip": "abc"}, {"take": "abc"}, {"take": "1.5"}, {"skip": "2x"}, {"take": "0x10"},
], ids=lambda v: json.dumps(v))
def test_non_integer_skip_take_is_400(paged, params):
    assert_error(paged.list_docs("p", **params), 400)


def test_take_defaults_to_100(node, db):
    api = node.api(db)
    write_many(api, "many", [{"Id": f"m{i:03d}"} for i in range(101)])
    assert len(assert_ok(api.list_docs("many"))) == 100
    assert len(assert_ok(api.list_docs("many", take=101))) == 101
    assert [d["Id"] for d in assert_ok(api.list_docs("many", skip=100))] == ["m100"]


# ------------------------------------------------------------------------------------------------
# Deletes and tombstones
# ------------------------------------------------------------------------------------------------

def test_delete_payload_is_the_document_before(node, db):
    api = node.api(db)
    doc = {"Id": "d", "v": [1, 2], "s": "x"}
    api.must_post("c", doc)
    wr = api.must_delete("c", "d")
    check_write_result(wr, "c", "d", 3, doc=doc)
    assert wr["IsDeleted"] is True
    assert_error(api.get("c", "d"), 404)


def test_delete_absent_id(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "other"})
    wr = api.must_delete("c", "ghost")
    check_write_result(wr, "c", "ghost", 3)
    assert wr["Operation"]["Payload"] == "{}"
    assert_error(api.get("c", "ghost"), 404)


def test_write_after_delete_is_an_insert(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "a", "v": 1})
    api.must_delete("c", "a")
    wr = api.must_post("c", {"Id": "a", "v": 2})
    check_write_result(wr, "c", "a", 1, doc={"Id": "a", "v": 2})
    assert api.must_get("c", "a") == {"Id": "a", "v": 2}
    wr = api.must_delete("c", "a")
    api.must_put("c", "a", {"v": 3})
    assert api.must_get("c", "a") == {"v": 3, "Id": "a"}


# ------------------------------------------------------------------------------------------------
# Fidelity: numbers, case, Unicode, unusual ids
# ------------------------------------------------------------------------------------------------

def test_numbers_keep_their_json_form(node, db):
    api = node.api(db)
    raw = ('{"Id": "n", "big": 12345678901234567, "neg": -9223372036854775809, '
           '"huge": 1.5e300, "tiny": 5e-324, "f": 0.1, "i": 1}')
    wr = assert_ok(api.post("c", raw=raw))
    for text in (wr["Operation"]["Payload"], api.get("c", "n").text):
        doc = json.loads(text)
        assert doc["big"] == 12345678901234567 and isinstance(doc["big"], int)
        assert doc["neg"] == -9223372036854775809 and isinstance(doc["neg"], int)
        assert doc["huge"] == 1.5e300
        assert doc["tiny"] == 5e-324
        assert doc["f"] == 0.1
        assert doc["i"] == 1 and isinstance(doc["i"], int)
        assert "12345678901234567" in text and "-9223372036854775809" in text
    listed = assert_ok(api.list_docs("c"))
    assert listed[0]["big"] == 12345678901234567


def test_collection_names_are_case_sensitive(node, db):
    api = node.api(db)
    api.must_post("Orders", {"Id": "A", "who": "Orders/A"})
    api.must_post("orders", {"Id": "A", "who": "orders/A"})
    api.must_post("orders", {"Id": "a", "who": "orders/a"})
    assert api.must_get("Orders", "A")["who"] == "Orders/A"
    assert api.must_get("orders", "A")["who"] == "orders/A"
    assert api.must_get("orders", "a")["who"] == "orders/a"
    assert_error(api.get("Orders", "a"), 404)
    assert assert_ok(api.list_collections()) == casefold_sorted(["Orders", "orders"])
    assert len(assert_ok(api.list_docs("orders"))) == 2
    assert len(assert_ok(api.list_docs("Orders"))) == 1


@pytest.mark.parametrize("doc_id", [
    "\u043a\u043b\u044e\u0447",            # Cyrillic
    "\u6f22\u5b57-\U0001f600",             # CJK and an emoji (4-byte UTF-8)
    "caf\u00e9", "cafe\u0301",             # two spellings of one word stay two ids
    "a/b", "../x", "..", "a b", "a+b", "a%2Fb", "a?b=c&d", "#frag", "'quote\"",
    "x" * 256,                             # longest id: 256 bytes
    "\u00e9" * 128,                        # 256 bytes of two-byte characters
])
def test_unusual_ids_round_trip(node, db, doc_id):
    api = node.api(db)
    doc = {"Id": doc_id, "text": "\u00fcber \u2603 \U0001f680 \u00e9\u0301 \u200b"}
    wr = api.must_post("c", doc)
    assert wr["EntityId"] == doc_id
    assert api.must_get("c", doc_id) == doc
    wr = api.must_put("c", doc_id, {"v": 2})
    check_write_result(wr, "c", doc_id, 2)
    assert api.must_get("c", doc_id) == {"v": 2, "Id": doc_id}
    assert [d["Id"] for d in assert_ok(api.list_docs("c"))] == [doc_id]
    check_write_result(api.must_delete("c", doc_id), "c", doc_id, 3)
    assert_error(api.get("c", doc_id), 404)


def test_nul_character_in_a_value_round_trips(node, db):
    """U+0000 is valid in a JSON string ("\\u0000"); a document holding one is stored as sent."""
    api = node.api(db)
    raw = '{"Id": "nul", "text": "a\\u0000b"}'
    assert_ok(api.post("c", raw=raw))
    assert api.must_get("c", "nul") == {"Id": "nul", "text": "a\u0000b"}


def test_similar_ids_are_distinct(node, db):
    api = node.api(db)
    ids = ["caf\u00e9", "cafe\u0301", "Caf\u00e9", "cafe", "cafe "]
    for i, doc_id in enumerate(ids):
        api.must_post("c", {"Id": doc_id, "i": i})
    for i, doc_id in enumerate(ids):
        assert api.must_get("c", doc_id)["i"] == i
    assert len(assert_ok(api.list_docs("c"))) == len(ids)


# ------------------------------------------------------------------------------------------------
# Collection names and document ids that are refused
# ------------------------------------------------------------------------------------------------

BAD_COLLECTIONS = ["1abc", "a-b", "a b", "a.b", "caf\u00e9", "a" * 65, "$a", "a/b", "a\u0000"]
GOOD_COLLECTIONS = ["_x", "a$b", "A" * 64, "a_1$", "Z"]


def collection_routes(api, coll):
    """One call per document route on collection `coll`."""
    return {
        "list": lambda: api.list_docs(coll),
        "get": lambda: api.get(coll, "a"),
        "post": lambda: api.post(coll, {"Id": "a"}),
        "register": lambda: api.register(coll),
        "put": lambda: api.put(coll, "a", {"v": 1}),
        "delete": lambda: api.delete(coll, "a"),
    }


ROUTE_NAMES = ["list", "get", "post", "register", "put", "delete"]


@pytest.mark.parametrize("route", ROUTE_NAMES)
@pytest.mark.parametrize("coll", BAD_COLLECTIONS, ids=lambda c: repr(c[:12]))
def test_invalid_collection_name_is_400(node, db, coll, route):
    api = node.api(db)
    api.must_post("seed", {"Id": "s"})
    assert_error(collection_routes(api, coll)[route](), 400, MSG_INVALID_COLLECTION)
    assert assert_ok(api.list_collections()) == ["seed"]


@pytest.mark.parametrize("coll", GOOD_COLLECTIONS, ids=lambda c: c[:12])
def test_valid_collection_names(node, db, coll):
    api = node.api(db)
    api.must_post(coll, {"Id": "a"})
    assert api.must_get(coll, "a") == {"Id": "a"}
    assert assert_ok(api.list_collections()) == [coll]


@pytest.mark.parametrize("route", ROUTE_NAMES)
@pytest.mark.parametrize("coll", ["cache", "Cache", "CACHE", "cAcHe"])
def test_cache_collection_is_reserved(node, db, coll, route):
    api = node.api(db)
    api.must_post("seed", {"Id": "s"})
    assert_error(collection_routes(api, coll)[route](), 403, MSG_CACHE_RESERVED)
    assert assert_ok(api.list_collections(includeSystemCollections="true")) == ["seed"]


@pytest.mark.parametrize("route", ROUTE_NAMES)
@pytest.mark.parametrize("coll", ["_sys_", "_sys_meta", "_sys_oplog"])
def test_sys_collections_are_reserved(node, db, coll, route):
    api = node.api(db)
    api.must_post("seed", {"Id": "s"})
    assert_error(collection_routes(api, coll)[route](), 403, contains="reserved")
    assert assert_ok(api.list_collections(includeSystemCollections="true")) == ["seed"]


BAD_IDS = ["x" * 257, "\u00e9" * 129, " ", "   ", "\t", "a\u0000b", "a\u0001b", "a\nb",
           "\u001f", "a\rb"]


def id_routes(api, doc_id):
    return {
        "get": lambda: api.get("c", doc_id),
        "put": lambda: api.put("c", doc_id, {"v": 1}),
        "delete": lambda: api.delete("c", doc_id),
        "post": lambda: api.post("c", {"Id": doc_id, "v": 1}),
    }


@pytest.mark.parametrize("route", ["get", "put", "delete", "post"])
@pytest.mark.parametrize("doc_id", BAD_IDS, ids=lambda i: repr(i[:10]) + f"/{len(i)}")
def test_invalid_document_id_is_400(node, db, doc_id, route):
    api = node.api(db)
    api.must_post("c", {"Id": "keep"})
    resp = id_routes(api, doc_id)[route]()
    if route == "post" and not doc_id.strip(" \t\n\r\v\f"):
        assert_error(resp, 400, MSG_POST_NO_ID)  # blank: the POST rule speaks first
    else:
        assert_error(resp, 400, MSG_INVALID_ID)
    assert assert_ok(api.list_docs("c")) == [{"Id": "keep"}]


def test_empty_id_segment_is_not_a_document(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "keep"})
    r = node.request("PUT", "/api/documents/c/", body={"v": 1}, headers=api.headers())
    assert r.status in (400, 404, 405), r
    assert isinstance(r.body, dict) and "Error" in r.body, r
    assert assert_ok(api.list_docs("c")) == [{"Id": "keep"}]


def test_percent_encoded_path_is_decoded_once(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "a%41"})
    r = node.request("GET", f"/api/documents/c/{seg('a%41')}", headers=api.headers())
    assert seg("a%41") == "a%2541"
    assert r.status == 200 and r.body == {"Id": "a%41"}, r
    assert_error(node.request("GET", "/api/documents/c/aA", headers=api.headers()), 404)
