"""Paging document lists: keyset pages with after=<id> and the X-Next-After header, skip capped at
10000, answers capped at Node.MaxListBytes, and a bounded read per page however many deleted
documents lie in the way."""

import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from conftest import assert_error, assert_ok


def page(api, coll, **params):
    r = api.list_docs(coll, **params)
    docs = assert_ok(r)
    nxt = r.headers.get("X-Next-After")
    return docs, None if nxt is None else urllib.parse.unquote(nxt)


def all_pages(api, coll, limit=200, **params):
    """Follows X-Next-After from the first page; returns (ids, number of pages)."""
    ids, after, pages = [], None, 0
    while pages < limit:
        extra = dict(params, **({"after": after} if after is not None else {}))
        docs, after = page(api, coll, **extra)
        ids += [d["Id"] for d in docs]
        pages += 1
        if after is None:
            return ids, pages
    raise AssertionError(f"still paging after {limit} pages")


def write_all(api, coll, docs):
    with ThreadPoolExecutor(8) as pool:  # concurrent writes share commits
        for r in pool.map(lambda d: api.post(coll, d), docs):
            assert_ok(r)


def test_keyset_pages_cover_the_collection_in_order(node, db):
    api = node.api(db)
    ids = [f"d{i:03d}" for i in range(25)]
    write_all(api, "c", [{"Id": i} for i in ids])
    got, pages = all_pages(api, "c", take=10)
    assert got == ids and pages == 3
    # after is strictly after, present or not; ids with any character travel percent-encoded.
    docs, nxt = page(api, "c", after="d009", take=3)
    assert [d["Id"] for d in docs] == ["d010", "d011", "d012"] and nxt == "d012"
    docs, nxt = page(api, "c", after="d0095", take=1)
    assert [d["Id"] for d in docs] == ["d010"] and nxt == "d010"
    docs, nxt = page(api, "c", after="d024")
    assert docs == [] and nxt is None
    docs, nxt = page(api, "c", after="d020", skip=2)  # skip counts from after
    assert [d["Id"] for d in docs] == ["d023", "d024"] and nxt is None
    odd = "a b/ü&?"
    api.must_post("o", {"Id": odd})
    api.must_post("o", {"Id": "zz"})
    docs, nxt = page(api, "o", take=1)
    assert [d["Id"] for d in docs] == [odd] and nxt == odd
    assert [d["Id"] for d in page(api, "o", after=nxt)[0]] == ["zz"]
    assert_error(api.list_docs("c", after=""), 400,
                 "Query parameter 'after' is not a valid document id.")


def test_skip_is_capped(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "a"})
    assert assert_ok(api.list_docs("c", skip=10000)) == []
    assert_error(api.list_docs("c", skip=10001), 400,
                 "Query parameter 'skip' is at most 10000; page with after=<the last id of the "
                 "previous page> instead.")


def test_answers_stop_at_max_list_bytes(make_node, db):
    n = make_node(overrides={"Node": {"MaxListBytes": 1024}})
    api = n.api(db)
    ids = [f"d{i:02d}" for i in range(12)]
    write_all(api, "c", [{"Id": i, "pad": "x" * 400} for i in ids])
    docs, nxt = page(api, "c")
    assert len(docs) == 3 and nxt == "d02"  # the third passes 1024 bytes: the page ends
    got, pages = all_pages(api, "c")
    assert got == ids and pages == 4
    # A query's Rows stop there too; MatchedCount still counts every match.
    for q in ("SELECT $ FROM c", "SELECT $ FROM c ORDER BY $.Id DESC"):
        r = n.request("POST", "/api/query", body={"Query": q, "Take": 100}, headers=api.headers())
        body = assert_ok(r)
        assert body["MatchedCount"] == 12 and body["ReturnedRows"] == 3, body
        assert len(body["Rows"]) == 3
    # One document larger than the cap still comes, alone.
    api.must_post("big", {"Id": "b1", "pad": "y" * 4000})
    api.must_post("big", {"Id": "b2"})
    docs, nxt = page(api, "big")
    assert [d["Id"] for d in docs] == ["b1"] and nxt == "b1"


def test_deleted_documents_are_read_a_bounded_number_per_page(make_node, db):
    n = make_node(overrides={"Storage": {"Sync": "normal"}})
    api = n.api(db)
    dead = [f"a{i:04d}" for i in range(1100)]
    write_all(api, "c", [{"Id": i} for i in dead])
    r = n.request("POST", "/api/query", body={"Query": "DELETE FROM c", "Take": 10000}, headers=api.headers())
    assert assert_ok(r)["AppliedCount"] == 1100
    api.must_post("c", {"Id": "z-live"})
    # take=1 reads at most 1000 entries: the first page ends among the tombstones.
    docs, nxt = page(api, "c", take=1)
    assert docs == [] and nxt == "a0999"
    assert all_pages(api, "c", take=1) == (["z-live"], 2)


def test_a_page_on_another_allowed_origin_can_read_x_next_after(node, db):
    api = node.api(db)
    api.must_post("c", {"Id": "a"})
    api.must_post("c", {"Id": "b"})
    r = api.call("GET", "/api/documents/c", {"take": 1},
                 headers={"Origin": "http://localhost:5173"})
    assert r.headers.get("Access-Control-Allow-Origin") == "http://localhost:5173"
    assert r.headers.get("Access-Control-Expose-Headers") == "X-Next-After"
    assert r.headers.get("X-Next-After") == "a"
