"""/health, /node, the node id, and the HTTP-level errors (404, 405, 413, malformed JSON)."""

import datetime
import re

import pytest

from conftest import (DROP, ISO_Z, MSG_BAD_JSON_PREFIX, ROOT_KEY, assert_error, assert_ok)


def test_health_needs_no_key(node):
    r = node.request("GET", "/health")
    body = assert_ok(r)
    assert body["Status"] == "Healthy"
    assert "json" in (r.headers.get("Content-Type") or "")


def test_node_info_needs_no_key(node):
    body = assert_ok(node.request("GET", "/node"))
    assert body["NodeId"] == "test-node"
    assert ISO_Z.match(body["TimestampUtc"]), body
    assert isinstance(body["LogicalDatabaseCount"], int) and body["LogicalDatabaseCount"] >= 0
    assert body["CacheDurability"] == "full"  # Node.CacheDurability's default


def test_node_timestamp_is_current_utc(node):
    stamp = node.node_info()["TimestampUtc"]
    when = datetime.datetime.strptime(re.sub(r"\.\d+Z$", "Z", stamp), "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - when).total_seconds()) < 300, (stamp, now)


def test_generated_node_id_is_kept_across_restart(make_node):
    n = make_node(overrides={"Node": {"NodeId": DROP}})
    first = n.node_id()
    assert isinstance(first, str) and first.strip(), first
    n.restart()
    assert n.node_id() == first
    # The id is also what stamps the op log.
    wr = assert_ok(n.api("nid").post("c", {"Id": "x"}))
    assert wr["Operation"]["NodeId"] == first


def test_generated_node_ids_differ_between_data_dirs(make_node):
    a = make_node(overrides={"Node": {"NodeId": DROP}})
    b = make_node(overrides={"Node": {"NodeId": DROP}})
    assert a.node_id() != b.node_id()


def test_configured_node_id_stamps_writes(make_node):
    n = make_node(node_id="configured-7")
    assert n.node_id() == "configured-7"
    wr = assert_ok(n.api("cfgid").post("c", {"Id": "x"}))
    assert wr["Operation"]["NodeId"] == "configured-7"


# ------------------------------------------------------------------------------------------------
# HTTP-level errors: every one is {"Error": "..."}
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"),
    ("GET", "/api/nope"),
    ("POST", "/api/documents/c/x/y"),
    ("GET", "/api/documents/c/x/y/z"),
    ("GET", "/healthz"),
])
def test_unknown_route_is_404_json(node, db, method, path):
    r = node.request(method, path, headers={"Database": db, "ApiKey": ROOT_KEY})
    assert_error(r, 404)


@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", "/health", {"GET"}),
    ("POST", "/node", {"GET"}),
    ("PATCH", "/api/documents/c/x", {"GET", "PUT", "DELETE"}),
    ("POST", "/api/cache/k", {"GET", "PUT", "DELETE"}),
    ("PUT", "/api/documents/c", {"GET", "POST"}),
    ("DELETE", "/api/documents", {"GET"}),
    ("POST", "/api/databases", {"GET"}),
    ("GET", "/api/documents/c/register", None),  # GET of a document named "register" is fine
])
def test_wrong_method_is_405_with_allow(node, db, method, path, allowed):
    r = node.request(method, path, headers={"Database": db, "ApiKey": ROOT_KEY}, body=None)
    if allowed is None:
        assert r.status == 404, r  # a document id, not the register route
        return
    assert_error(r, 405)
    allow = r.headers.get("Allow")
    assert allow, f"405 without an Allow header: {r!r}"
    methods = {m.strip().upper() for m in allow.split(",")}
    assert allowed <= methods, (allow, allowed)
    assert ("HEAD" in methods) == ("GET" in allowed), allow  # HEAD is served wherever GET is


def test_body_over_limit_is_413_and_not_written(make_node):
    n = make_node(overrides={"Node": {"MaxBodyBytes": 1024}})
    api = n.api("limits")
    big = {"Id": "big", "pad": "x" * 2000}
    assert_error(api.post("c", big), 413)
    assert_error(api.put("c", "big", big), 413)
    r = api.get("c", "big")
    assert r.status in (403, 404), r  # the database may not even exist
    # A body under the limit is accepted.
    small = {"Id": "small", "pad": "x" * 900}
    assert_ok(api.post("c", small))
    assert api.must_get("c", "small") == small


@pytest.mark.parametrize("raw", [
    b"{",
    b"{\"Id\": \"a\",}",
    b"{\"Id\": 'a'}",
    b"not json",
    b"{\"Id\": \"a\"} trailing",
    b"\xff\xfe\x00{",
])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_malformed_json_is_400(node, db, method, raw):
    api = node.api(db)
    r = api.post("c", raw=raw) if method == "POST" else api.put("c", "a", raw=raw)
    assert_error(r, 400, startswith=MSG_BAD_JSON_PREFIX)
    assert_error(api.get("c", "a"), 404)
