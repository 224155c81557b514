"""The role matrix of docs/api.md, route by route: every route of its table is sent with every
kind of key (each single role, no role, the root key, the cluster key, none), and answers as the
table says: allowed keys succeed, others get 401 or 403 with the contract's message. The route
list is read from docs/api.md, so a documented route without a case here fails."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from conftest import (KEY_NONE, ROLES, ROOT_KEY, assert_error, key_only, msg_not_allowed, seg)

CLUSTER_KEY = "I_AM_ONE_OF_YOU"  # the default Node.ReplicationApiKey of the shared node
API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ACTIONS = {"READ_DOCUMENT": "read documents", "WRITE_DOCUMENT": "write documents",
           "UPDATE_DOCUMENT": "update documents", "DELETE_DOCUMENT": "delete documents",
           "DELETE_DB": "delete databases", "ADD_DB": "create databases"}

# Who may call: a role (that role, or root), a tuple of roles (all of them), ANY_KEY (any valid ApiKey), CLUSTER (the
# ReplicationApiKey only), ANY_KEY_OR_CLUSTER, or PUBLIC (anyone, no key at all).
ANY_KEY, CLUSTER, ANY_KEY_OR_CLUSTER, PUBLIC = "any-key", "cluster", "any-key-or-cluster", "public"


@dataclass
class Op:
    name: str
    who: str
    # send(node, db, kind, key, tag) -> Response; kind is "api", "cluster" or "none"; tag makes
    # the ids this call touches its own.
    send: Callable
    setup: Optional[Callable] = None  # setup(root_api, tag), run with the root key first
    ok: tuple = (200,)
    # An upsert (it adds or replaces, the stored id decides): a key holding neither
    # WRITE_DOCUMENT nor UPDATE_DOCUMENT is refused up front, as a writer.
    upsert: bool = False


def api_headers(db, kind, key):
    if kind == "cluster":
        return {"ReplicationApiKey": key, "Database": db}
    if kind == "api":
        return {"ApiKey": key, "Database": db}
    return {"Database": db}


def call(method, path, body=None, raw=None):
    def send(node, db, kind, key, tag):
        p = path.format(db=seg(db), key=seg(key or "-"), tag=tag)
        b = body(tag) if callable(body) else body
        return node.request(method, p, body=b, raw=raw, headers=api_headers(db, kind, key))
    return send


def query(text):
    return call("POST", "/api/query", body=lambda tag: {"Query": text.format(tag=tag)})


def webhook(action):
    def body(tag):
        return {"webhookId": "w", "eventId": "e", "entityName": "items", "action": action,
                "data": {"Id": tag, "v": 2}}

    def send(node, db, kind, key, tag):
        return node.request("POST", f"/webhook-ingestion/{seg(db)}/{seg(key or 'no-key')}",
                            body=body(tag))
    return send


def put_doc(root, tag):
    root.must_post("items", {"Id": tag, "v": 1})


def put_cache(root, tag):
    r = root.node.request("PUT", f"/api/cache/{tag}", body={"v": 1}, headers=root.headers())
    assert r.status == 200, r


# The routes of docs/api.md's table (its first column, as written) and what exercises them.
MATRIX = {
    "GET /": [Op("root", PUBLIC, call("GET", "/"), ok=(302,))],
    "GET /studio/...": [Op("studio", PUBLIC, call("GET", "/studio/index.html"), ok=(200, 404))],
    "GET /health": [Op("health", PUBLIC, call("GET", "/health"))],
    "GET /node": [Op("node", PUBLIC, call("GET", "/node"))],
    "GET /livez": [Op("livez", PUBLIC, call("GET", "/livez"))],
    "GET /readyz": [Op("readyz", PUBLIC, call("GET", "/readyz"))],
    # Public unless Node.MetricsApiKey is set (test_metrics.py checks that case).
    "GET /metrics": [Op("metrics", PUBLIC, call("GET", "/metrics"))],
    "GET /api/databases": [Op("databases", ANY_KEY, call("GET", "/api/databases"))],
    "DELETE /api/databases/{name}": [
        Op("drop-db", "DELETE_DB", call("DELETE", "/api/databases/{db}"))],
    "GET /api/documents[?includeSystemCollections=false]": [
        Op("collections", "READ_DOCUMENT", call("GET", "/api/documents"), setup=put_doc)],
    "GET /api/documents/{c}?skip=0&take=100": [
        Op("list", "READ_DOCUMENT", call("GET", "/api/documents/items"), setup=put_doc)],
    "GET /api/documents/{c}/{id}": [
        Op("get", "READ_DOCUMENT", call("GET", "/api/documents/items/{tag}"), setup=put_doc)],
    "POST /api/documents/{c}[?parentVersion=V]": [
        Op("post-new", "WRITE_DOCUMENT",
           call("POST", "/api/documents/items", body=lambda t: {"Id": t, "v": 2}), upsert=True),
        Op("post-existing", "UPDATE_DOCUMENT",
           call("POST", "/api/documents/items", body=lambda t: {"Id": t, "v": 2}),
           setup=put_doc, upsert=True)],
    "POST /api/documents/{c}/register": [
        Op("register", "WRITE_DOCUMENT", call("POST", "/api/documents/c{tag}/register", raw=b""))],
    "PUT /api/documents/{c}/{id}[?parentVersion=V]": [
        Op("put-new", "WRITE_DOCUMENT", call("PUT", "/api/documents/items/{tag}", body={"v": 2}), upsert=True),
        Op("put-existing", "UPDATE_DOCUMENT",
           call("PUT", "/api/documents/items/{tag}", body={"v": 2}), setup=put_doc, upsert=True)],
    "GET /api/changes": [
        Op("changes", "READ_DOCUMENT", call("GET", "/api/changes?limit=1"), setup=put_doc)],
    # A plain GET from an allowed key gets past the key checks to the upgrade check.
    "GET /ws/changes": [Op("changes-ws", "READ_DOCUMENT", call("GET", "/ws/changes"), ok=(400,))],
    "DELETE /api/documents/{c}/{id}[?parentVersion=V]": [
        Op("delete", "DELETE_DOCUMENT", call("DELETE", "/api/documents/items/{tag}"),
           setup=put_doc)],
    "POST /api/query[?includeReservedFields=false]": [
        Op("select", "READ_DOCUMENT", query("SELECT $ FROM items"), setup=put_doc),
        Op("insert-new", "WRITE_DOCUMENT", query('INSERT INTO items VALUES {{"Id": "{tag}"}}'), upsert=True),
        # INSERT always writes, and replacing a live document also needs UPDATE (query.md).
        Op("insert-existing", ("WRITE_DOCUMENT", "UPDATE_DOCUMENT"),
           query('INSERT INTO items VALUES {{"Id": "{tag}", "v": 2}}'), setup=put_doc),
        Op("update", "UPDATE_DOCUMENT",
           query("UPDATE items SET {{\"v\": 2}} WHERE $.Id = '{tag}'"), setup=put_doc),
        Op("delete-where", "DELETE_DOCUMENT", query("DELETE FROM items WHERE $.Id = '{tag}'"),
           setup=put_doc),
        # Index DDL is schema-level (query.md "Indexes").
        Op("create-index", "ADD_DB", query("CREATE INDEX {tag} ON items ($.v)"), setup=put_doc),
        Op("drop-index", "ADD_DB", query("DROP INDEX IF EXISTS {tag} ON items"), setup=put_doc)],
    "GET /api/indexes": [
        Op("indexes", "READ_DOCUMENT", call("GET", "/api/indexes"), setup=put_doc)],
    "PUT /api/cache/{key}[?ttl=5m]": [
        Op("cache-new", "WRITE_DOCUMENT", call("PUT", "/api/cache/{tag}", body={"v": 2}),
           setup=put_doc, upsert=True),
        Op("cache-overwrite", "UPDATE_DOCUMENT", call("PUT", "/api/cache/{tag}", body={"v": 2}),
           setup=put_cache, upsert=True)],
    "GET /api/cache[?match=*&after=<key>&take=100]": [
        Op("cache-list", "READ_DOCUMENT", call("GET", "/api/cache?match=*"),
           setup=put_cache)],
    "GET /api/cache/{key}": [
        Op("cache-get", "READ_DOCUMENT", call("GET", "/api/cache/{tag}"), setup=put_cache)],
    "DELETE /api/cache/{key}": [
        Op("cache-delete", "DELETE_DOCUMENT", call("DELETE", "/api/cache/{tag}"),
           setup=put_cache)],
    "POST /webhook-ingestion/{db}/{apiKey}": [
        Op("webhook-add", "WRITE_DOCUMENT", webhook("Add"), setup=lambda r, t: put_doc(r, "s"), upsert=True),
        Op("webhook-update", "UPDATE_DOCUMENT", webhook("Update"), setup=put_doc, upsert=True),
        Op("webhook-delete", "DELETE_DOCUMENT", webhook("Delete"), setup=put_doc)],
    "GET /webhook-ingestion/{db}/{apiKey}": [
        Op("webhook-ready", PUBLIC, call("GET", "/webhook-ingestion/{db}/{key}"))],
    "POST /api/replication/push": [
        Op("push", CLUSTER, call("POST", "/api/replication/push",
                                 body={"SourceNodeId": "peer-x", "Operations": []}),
           setup=put_doc)],
    "POST /api/replication/pull": [
        Op("pull", CLUSTER, call("POST", "/api/replication/pull",
                                 body={"RequestingNodeId": "peer-x", "AfterLogSequence": 0}),
           setup=put_doc)],
    "POST /api/replication/snapshot": [
        Op("snapshot", CLUSTER, call("POST", "/api/replication/snapshot",
                                     body={"RequestingNodeId": "peer-x"}),
           setup=put_doc)],
    "POST /api/replication/operation-log/prune": [
        Op("prune", CLUSTER, call("POST", "/api/replication/operation-log/prune", raw=b""))],
    "GET /api/replication/status": [Op("status", CLUSTER, call("GET", "/api/replication/status"))],
    "GET /api/replication/conflicts": [
        Op("conflicts", CLUSTER, call("GET", "/api/replication/conflicts"), setup=put_doc)],
    "GET /api/replication/databases": [
        Op("repl-databases", CLUSTER, call("GET", "/api/replication/databases"))],
    "POST /api/replication/announce": [
        Op("announce", CLUSTER, call("POST", "/api/replication/announce",
                                     body={"ProtocolVersion": 1, "NodeId": "peer-x",
                                           "BaseUrl": "http://127.0.0.1:9", "Event": "leave"}))],
    "GET/POST /api/cluster/peers, DELETE /api/cluster/peers/{id}": [
        Op("peers-list", CLUSTER, call("GET", "/api/cluster/peers")),
        Op("peers-upsert", CLUSTER, call("POST", "/api/cluster/peers",
                                         body=lambda t: {"NodeId": f"peer-{t}",
                                                         "BaseUrl": "http://127.0.0.1:9",
                                                         "IsActive": False})),
        Op("peers-delete", CLUSTER, call("DELETE", "/api/cluster/peers/nobody-{tag}"),
           ok=(200, 404))],
    "POST /api/cluster/leave": [],  # checked on its own below: it makes the node leave
    "GET /dashboard/api/overview": [
        Op("overview", ANY_KEY_OR_CLUSTER, call("GET", "/dashboard/api/overview"))],
}


def documented_routes():
    text = API_MD.read_text()
    section = text.split("## Routes", 1)[1].split("\n## ", 1)[0]
    routes = []
    for line in section.splitlines():
        m = re.match(r"^\| (`[^|]*`(?:, `[^|]*`)*) \|", line)
        if m:
            routes.append(", ".join(re.findall(r"`([^`]*)`", m.group(1))))
    return routes


def test_every_documented_route_has_cases():
    assert sorted(documented_routes()) == sorted(MATRIX)


# Every kind of caller: (label, kind, key, roles it holds).
CALLERS = ([(f"only-{r}", "api", key_only(r), {r}) for r in ROLES] +
           [("no-roles", "api", KEY_NONE, set()), ("root", "api", ROOT_KEY, set(ROLES)),
            ("cluster", "cluster", CLUSTER_KEY, set()), ("no-key", "none", None, set())])


def expected(op, kind, roles):
    """'ok', or (status, message) of the refusal."""
    if op.who == PUBLIC:
        return "ok"
    if op.who == CLUSTER:
        if kind == "cluster":
            return "ok"
        return 403, "ReplicationApiKey is invalid."
    if kind == "cluster":
        return "ok" if op.who == ANY_KEY_OR_CLUSTER else (401, "ApiKey header is required.")
    if kind == "none":
        return 401, "ApiKey header is required."
    if op.who in (ANY_KEY, ANY_KEY_OR_CLUSTER):
        return "ok"
    if isinstance(op.who, tuple):
        missing = [r for r in op.who if r not in roles]
        return (403, msg_not_allowed(ACTIONS[missing[0]])) if missing else "ok"
    if op.who in roles:
        return "ok"
    if op.upsert and not roles & {"WRITE_DOCUMENT", "UPDATE_DOCUMENT"}:
        return 403, msg_not_allowed(ACTIONS["WRITE_DOCUMENT"])
    return 403, msg_not_allowed(ACTIONS[op.who])


@pytest.mark.parametrize("route", [r for r in MATRIX if MATRIX[r]])
def test_route_answers_every_caller_as_documented(node, db, route):
    root = node.api(db)
    root.must_post("seed", {"Id": "s"})
    wrong = []
    for op in MATRIX[route]:
        for i, (label, kind, key, roles) in enumerate(CALLERS):
            if op.name == "drop-db":  # each caller needs a database to drop
                root.must_post("seed", {"Id": "s"})
            tag = f"{op.name.replace('-', '_')}_{i}"  # ids and collections of its own
            if op.setup:
                op.setup(root, tag)
            if op.name.startswith("webhook") and kind != "api":
                continue  # the webhook's key is in its path: a path without a valid key is 401
            r = op.send(node, db, kind, key, tag)
            want = expected(op, kind, roles)
            if want == "ok":
                if r.status not in op.ok:
                    wrong.append(f"{op.name} as {label}: expected {op.ok}, got {r!r}")
            else:
                try:
                    assert_error(r, *want)
                except AssertionError as e:
                    wrong.append(f"{op.name} as {label}: expected {want}, got {r!r} ({e})")
    assert not wrong, "\n".join(wrong)


def test_cluster_leave_needs_the_cluster_key(make_node):
    node = make_node()  # its own: it leaves
    for label, kind, key, roles in CALLERS:
        if kind == "cluster":
            continue
        r = node.request("POST", "/api/cluster/leave", raw=b"",
                         headers=api_headers("x", kind, key))
        assert_error(r, 403, "ReplicationApiKey is invalid.")
    r = node.request("POST", "/api/cluster/leave", raw=b"",
                     headers={"ReplicationApiKey": CLUSTER_KEY})
    assert r.status == 200 and r.body["Left"] is True, r
