"""The replicated TTL cache (/api/cache): every route and error, the key list and its globs,
roles, lazy expiry that writes nothing, the sweeper's batches, replication to a peer, and the
races the original loses (an expired read must not erase a newer write made elsewhere; a late
older op must not resurrect a swept key)."""

import datetime
import json
import re
import subprocess
import sys
import time

import pytest

from conftest import (MSG_CACHE_RESERVED, REPO, ROOT_KEY, HEX32, ISO_Z, assert_error, assert_ok,
                      key_only, key_without, msg_not_allowed, seg)
from test_replication import REPL_KEY, add_peer, db_state, repl, wait_for

MSG_TTL_FORMAT = "Invalid ttl format. Use values like '30s', '5m', '2h', or '1d'."
MSG_TTL_ZERO = "ttl must be greater than zero."
MSG_TTL_MAX = "ttl cannot exceed 2592000000ms."
MSG_KEY_REQUIRED = "Cache key is required."
MSG_KEY_LONG = "Cache key cannot exceed 256 characters."
MSG_KEY_CHARS = "Cache key must be UTF-8 text without control characters."
MS = re.compile(r"^(\d+)ms$")


NO_BODY = object()


def cache(node, db, method, key, body=NO_BODY, raw=None, ttl=None, api_key=ROOT_KEY):
    path = "/api/cache/" + seg(key)
    if ttl is not None:
        path += "?ttl=" + seg(ttl)
    headers = {"Database": db, "ApiKey": api_key}
    if raw is None and body is not NO_BODY:
        raw = json.dumps(body)
    return node.request(method, path, raw=raw, headers=headers)


def put(node, db, key, value, ttl=None, **kw):
    return assert_ok(cache(node, db, "PUT", key, body=value, ttl=ttl, **kw))


def get(node, db, key, **kw):
    return cache(node, db, "GET", key, **kw)


def iso_ms(text):
    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)


def log_seq(node, db):
    for d in assert_ok(repl(node, "GET", "/api/replication/status"))["Databases"]:
        if d["DatabaseName"] == db:
            return d["LocalMaxLogSequence"]
    return 0


def cache_overrides(**node):
    return {"Node": {"ReplicationApiKey": REPL_KEY, "AntiEntropyIntervalSeconds": 1,
                     "ReplicationTimeoutSeconds": 2, **node}}


# ------------------------------------------------------------------------------------------------
# Routes and shapes
# ------------------------------------------------------------------------------------------------

def test_put_then_get_round_trip(node, db):
    before = int(time.time() * 1000)
    r = cache(node, db, "PUT", "user:42", raw='{"name": "Ada", "score": 1.10}', ttl="30s")
    body = assert_ok(r)
    assert set(body) == {"Key", "Version", "CommittedUtc", "ExpiresAtUtc", "Ttl", "Durability"}
    assert body["Key"] == "user:42" and HEX32.match(body["Version"])
    assert body["Durability"] == "full"  # Node.CacheDurability's default
    assert ISO_Z.match(body["CommittedUtc"]) and ISO_Z.match(body["ExpiresAtUtc"])
    assert body["Ttl"] == "30000ms"
    committed = iso_ms(body["CommittedUtc"])
    assert iso_ms(body["ExpiresAtUtc"]) == committed + 30000
    assert before - 1000 <= committed <= int(time.time() * 1000) + 1000

    g = get(node, db, "user:42")
    got = assert_ok(g)
    assert set(got) == {"Key", "Value", "CreatedUtc", "UpdatedUtc", "ExpiresAtUtc",
                        "RemainingTtl"}
    assert got["Key"] == "user:42"
    assert got["Value"] == {"name": "Ada", "score": 1.1}
    assert '"score": 1.10' in g.text  # the value is kept byte for byte
    assert got["CreatedUtc"] == got["UpdatedUtc"] == body["CommittedUtc"]
    assert got["ExpiresAtUtc"] == body["ExpiresAtUtc"]
    remaining = int(MS.match(got["RemainingTtl"]).group(1))
    assert 0 < remaining <= 30000


def test_default_ttl_is_five_minutes(node, db):
    assert put(node, db, "k", 1)["Ttl"] == "300000ms"


@pytest.mark.parametrize("value", [None, 0, -1.5, "text", True, [], [1, {"a": None}], {},
                                   {"deep": {"er": [1, 2, 3]}}, "<b>x</b>", "ключ"])
def test_any_json_value(node, db, value):
    put(node, db, "v", value, ttl="1m")
    assert assert_ok(get(node, db, "v"))["Value"] == value


@pytest.mark.parametrize("ttl,ms", [("30s", 30000), ("5M", 300000), ("2h", 7200000),
                                    ("1d", 86400000), ("250ms", 250), ("1.5s", 1500),
                                    ("45", 45000), ("00:01:30", 90000), ("30d", 2592000000)])
def test_ttl_forms(node, db, ttl, ms):
    assert put(node, db, "t", 1, ttl=ttl)["Ttl"] == f"{ms}ms"


@pytest.mark.parametrize("ttl,message", [
    ("0s", MSG_TTL_ZERO), ("-5m", MSG_TTL_ZERO), ("0", MSG_TTL_ZERO),
    ("5x", MSG_TTL_FORMAT), ("", MSG_TTL_FORMAT), ("abc", MSG_TTL_FORMAT), ("1e3s", MSG_TTL_FORMAT),
    ("31d", MSG_TTL_MAX), ("2592000001ms", MSG_TTL_MAX), ("9" * 40 + "d", MSG_TTL_MAX)])
def test_bad_ttl_is_refused_and_nothing_is_stored(node, db, ttl, message):
    assert_error(cache(node, db, "PUT", "bad", body=1, ttl=ttl), 400, message)
    assert_error(get(node, db, "bad"), 404, "Cache key 'bad' was not found.")


def test_keys_are_trimmed_and_checked(node, db):
    put(node, db, "  spaced  ", "v")
    assert assert_ok(get(node, db, "spaced"))["Key"] == "spaced"
    assert_error(cache(node, db, "PUT", "   ", body=1), 400, MSG_KEY_REQUIRED)
    assert_error(get(node, db, " "), 400, MSG_KEY_REQUIRED)
    assert_error(cache(node, db, "PUT", "x" * 257, body=1), 400, MSG_KEY_LONG)
    put(node, db, "x" * 256, 1)
    put(node, db, "é" * 250, 1)  # 250 characters, 500 bytes: the storage key's limit
    assert_error(cache(node, db, "PUT", "é" * 251, body=1), 400,
                 "Cache key cannot exceed 500 bytes of UTF-8.")
    assert_error(cache(node, db, "PUT", "é" * 257, body=1), 400, MSG_KEY_LONG)
    for bad in ["a\x00b", "a\x01", "tab\tinside"]:
        assert_error(cache(node, db, "PUT", bad, body=1), 400, MSG_KEY_CHARS)
    r = node.request("PUT", "/api/cache/%FF", raw="1", headers={"Database": db, "ApiKey": ROOT_KEY})
    assert_error(r, 400, MSG_KEY_CHARS)


def test_bad_bodies_are_refused_and_nothing_is_stored(node, db):
    assert_error(cache(node, db, "PUT", "b", raw="nope"), 400,
                 startswith="Request body is not valid JSON")
    assert_error(cache(node, db, "PUT", "b", raw=""), 400,
                 startswith="Request body is not valid JSON")
    assert_error(cache(node, db, "PUT", "b", raw=b'{"a": "x"}\x00'), 400,
                 startswith="Request body is not valid JSON")
    big = '"' + "x" * (1024 * 1024 + 10) + '"'
    assert_error(cache(node, db, "PUT", "b", raw=big), 413)
    assert_error(get(node, db, "b"), 404)


def test_overwrite_keeps_created_and_a_shorter_ttl_wins(node, db):
    first = put(node, db, "o", 1, ttl="1h")
    time.sleep(0.02)
    second = put(node, db, "o", 2, ttl="10s")
    assert second["Version"] != first["Version"]
    got = assert_ok(get(node, db, "o"))
    assert got["Value"] == 2
    assert got["CreatedUtc"] == first["CommittedUtc"]
    assert got["UpdatedUtc"] == second["CommittedUtc"]
    assert got["ExpiresAtUtc"] == second["ExpiresAtUtc"]
    assert int(MS.match(got["RemainingTtl"]).group(1)) <= 10000


def test_delete_is_an_ordinary_replicated_op(node, db):
    put(node, db, "d", {"x": 1})
    wr = assert_ok(cache(node, db, "DELETE", "d"))
    assert wr["Collection"] == "cache" and wr["EntityId"] == "d" and wr["IsDeleted"] is True
    assert wr["Operation"]["OperationType"] == 3
    assert wr["Durability"] == "full"
    assert_error(get(node, db, "d"), 404, "Cache key 'd' was not found.")
    absent = assert_ok(cache(node, db, "DELETE", "never-there"))
    assert absent["IsDeleted"] is True


def test_missing_database_reads_as_missing(node, db):
    assert_error(get(node, db + "-none", "k"), 404)
    assert db + "-none" not in node.databases()


def list_keys(node, db, api_key=ROOT_KEY, **params):
    query = "&".join(f"{k}={seg(str(v))}" for k, v in params.items())
    return node.request("GET", "/api/cache" + ("?" + query if query else ""),
                        headers={"Database": db, "ApiKey": api_key})


def wait_expired(node, db, key):
    deadline = time.time() + 5
    for _ in range(500):
        if get(node, db, key).status == 404 or time.time() > deadline:
            break
        time.sleep(0.01)
    assert_error(get(node, db, key), 404)


def test_key_list_pages_live_keys_in_key_order(node, db):
    live = {"user:1": put(node, db, "user:1", 1, ttl="1h"), "user:2": put(node, db, "user:2", 2),
            "user:10": put(node, db, "user:10", 10), "order:7": put(node, db, "order:7", 7),
            "é-key": put(node, db, "é-key", "x")}
    put(node, db, "user:gone", 0)
    assert_ok(cache(node, db, "DELETE", "user:gone"))
    put(node, db, "user:brief", 0, ttl="1ms")
    wait_expired(node, db, "user:brief")

    whole = assert_ok(list_keys(node, db))
    assert whole["Next"] is None
    assert [k["Key"] for k in whole["Keys"]] == sorted(live, key=lambda k: k.encode())
    for k in whole["Keys"]:
        assert set(k) == {"Key", "ExpiresAtUtc", "UpdatedUtc"}
        assert k["ExpiresAtUtc"] == live[k["Key"]]["ExpiresAtUtc"]
        assert k["UpdatedUtc"] == live[k["Key"]]["CommittedUtc"]

    # Pages of 2, each continuing after the previous page's Next, give the same keys once.
    seen, after = [], None
    for _ in range(10):
        page = assert_ok(list_keys(node, db, take=2, **({"after": after} if after else {})))
        assert len(page["Keys"]) <= 2
        seen += [k["Key"] for k in page["Keys"]]
        after = page["Next"]
        if after is None:
            break
    assert seen == [k["Key"] for k in whole["Keys"]]

    # Redis globs, matched against the whole key.
    def matched(pattern, **kw):
        return [k["Key"] for k in assert_ok(list_keys(node, db, match=pattern, **kw))["Keys"]]
    assert matched("user:*") == ["user:1", "user:10", "user:2"]
    assert matched("user:?") == ["user:1", "user:2"]
    assert matched("user:[^1]*") == ["user:2"]
    assert matched("[a-p]*") == ["order:7"]
    assert matched("*:1*") == ["user:1", "user:10"]
    assert matched("user:1", after="user:1") == []
    assert matched("nothing*") == []


def test_key_list_errors_and_an_absent_database(node, db):
    put(node, db, "k", 1)
    for take in (0, 1001):
        assert_error(list_keys(node, db, take=take), 400,
                     "Query parameter 'take' must be between 1 and 1000.")
    assert_error(list_keys(node, db, take="x"), 400, "Query parameter 'take' must be an integer.")
    assert_error(list_keys(node, db, match=""), 400,
                 "Query parameter 'match' must be a glob pattern of 1 to 1024 bytes.")
    assert_error(list_keys(node, db, match="*" * 1025), 400,
                 "Query parameter 'match' must be a glob pattern of 1 to 1024 bytes.")
    assert_error(list_keys(node, db, after="x" * 257), 400,
                 "Query parameter 'after' is not a cache key: " + MSG_KEY_LONG)
    assert assert_ok(list_keys(node, db, take=1000, after=""))["Keys"][0]["Key"] == "k"
    assert assert_ok(list_keys(node, db + "-none")) == {"Keys": [], "Next": None}
    assert db + "-none" not in node.databases()
    assert_error(list_keys(node, db, api_key=key_without("READ_DOCUMENT")), 403,
                 msg_not_allowed("read documents"))


# ------------------------------------------------------------------------------------------------
# Roles
# ------------------------------------------------------------------------------------------------

def test_roles(node, db):
    put(node, db, "live", 1)
    assert_error(get(node, db, "live", api_key=key_without("READ_DOCUMENT")), 403,
                 msg_not_allowed("read documents"))
    assert assert_ok(get(node, db, "live", api_key=key_only("READ_DOCUMENT")))["Value"] == 1
    # Creating needs WRITE_DOCUMENT, overwriting a live key UPDATE_DOCUMENT.
    assert_error(cache(node, db, "PUT", "new", body=1, api_key=key_only("UPDATE_DOCUMENT")), 403,
                 msg_not_allowed("write documents"))
    assert_error(cache(node, db, "PUT", "live", body=2, api_key=key_only("WRITE_DOCUMENT")), 403,
                 msg_not_allowed("update documents"))
    assert assert_ok(get(node, db, "live"))["Value"] == 1
    put(node, db, "new", 1, api_key=key_only("WRITE_DOCUMENT"))
    put(node, db, "live", 3, api_key=key_only("UPDATE_DOCUMENT"))
    assert assert_ok(get(node, db, "live"))["Value"] == 3
    assert_error(cache(node, db, "PUT", "x", body=1, api_key=key_only("READ_DOCUMENT")), 403,
                 msg_not_allowed("write documents"))
    assert_error(cache(node, db, "DELETE", "live", api_key=key_without("DELETE_DOCUMENT")), 403,
                 msg_not_allowed("delete documents"))
    assert_ok(cache(node, db, "DELETE", "live", api_key=key_only("DELETE_DOCUMENT")))
    # An expired key is not live: WRITE_DOCUMENT alone may write it again.
    put(node, db, "short", 1, ttl="100ms")
    time.sleep(0.15)
    put(node, db, "short", 2, api_key=key_only("WRITE_DOCUMENT"))


def test_reserved_collection_is_refused_by_documents_and_queries(node, db):
    put(node, db, "secret", {"v": 1})
    api = node.api(db)
    assert_error(api.get("cache", "secret"), 403, MSG_CACHE_RESERVED)
    assert_error(api.put("cache", "secret", {"v": 2}), 403, MSG_CACHE_RESERVED)
    assert_error(api.delete("Cache", "secret"), 403, MSG_CACHE_RESERVED)
    assert_error(api.list_docs("CACHE"), 403, MSG_CACHE_RESERVED)
    for q in ["SELECT $ FROM cache", "DELETE FROM cache", "UPDATE cache SET {\"v\": 3}",
              "INSERT INTO cache VALUES {\"Id\": \"secret\"}"]:
        assert_error(api.call("POST", "/api/query", body={"query": q}), 403, MSG_CACHE_RESERVED)
    assert assert_ok(get(node, db, "secret"))["Value"] == {"v": 1}
    assert "cache" not in assert_ok(api.list_collections())
    assert "cache" in assert_ok(api.list_collections(includeSystemCollections="true"))


# ------------------------------------------------------------------------------------------------
# Expiry: derived state
# ------------------------------------------------------------------------------------------------

def test_expired_read_is_404_and_writes_nothing(make_node, db):
    n = make_node(overrides=cache_overrides(CacheCleanupIntervalSeconds=0))
    w = put(n, db, "e", "soon", ttl="3s")  # long enough to read it back on a loaded machine
    assert assert_ok(get(n, db, "e"))["Value"] == "soon"
    seq, (vv, digest) = log_seq(n, db), db_state(n, db)
    time.sleep(max(0.0, (iso_ms(w["ExpiresAtUtc"]) - time.time() * 1000) / 1000) + 0.05)
    for _ in range(3):
        assert_error(get(n, db, "e"), 404, "Cache key 'e' was not found.")
    assert log_seq(n, db) == seq and db_state(n, db) == (vv, digest)
    # A PUT after expiry revives the key as new: a fresh CreatedUtc.
    again = put(n, db, "e", "again", ttl="1m")
    got = assert_ok(get(n, db, "e"))
    assert got["Value"] == "again" and got["CreatedUtc"] == again["CommittedUtc"]


def cache_flush(node, db):
    """(litedist_cache_flush_total, litedist_cache_unflushed, litedist_cache_flush_age_seconds or
    None) of db from GET /metrics."""
    text = node.request("GET", "/metrics").text
    def sample(name):
        m = re.search(r'^%s\{database="%s"\} (\S+)$' % (name, re.escape(db)), text, re.M)
        return float(m.group(1)) if m else None
    return (sample("litedist_cache_flush_total"), sample("litedist_cache_unflushed"),
            sample("litedist_cache_flush_age_seconds"))


def test_everysec_is_reported_flushed_in_the_background_and_survives_kill9(make_node, db):
    """Node.CacheDurability everysec: cache PUT and DELETE answers say so (documents keep their
    WriteResult), the writer makes them durable within about a second (the flush metrics), and
    a process crash right after acknowledged, not yet flushed writes loses none of them."""
    n = make_node(overrides=cache_overrides(CacheDurability="everysec",
                                            CacheCleanupIntervalSeconds=0))
    assert assert_ok(n.request("GET", "/node"))["CacheDurability"] == "everysec"
    first = put(n, db, "first", {"n": 0}, ttl="1h")
    assert first["Durability"] == "everysec"
    wait_for(lambda: (lambda t, u, age: t and t >= 1 and u == 0 and age is not None)(
        *cache_flush(n, db)), timeout=10, what="the background flush")

    # Acknowledged everysec writes, the last of them not yet flushed when the process dies.
    acked = {}
    for i in range(20):
        acked[f"k{i}"] = {"i": i, "pad": "x" * 100}
        assert put(n, db, f"k{i}", acked[f"k{i}"], ttl="1h")["Durability"] == "everysec"
    gone = assert_ok(cache(n, db, "DELETE", "first"))
    assert gone["Durability"] == "everysec" and gone["IsDeleted"] is True
    for i in range(20, 60):  # bounded: a flush could land between the last write and the check
        if cache_flush(n, db)[1] == 1:
            break
        acked[f"k{i}"] = {"i": i}
        assert put(n, db, f"k{i}", acked[f"k{i}"], ttl="1h")["Durability"] == "everysec"
    else:
        pytest.fail("every check found the writes already flushed")
    n.kill9()
    n.start()
    for key, value in acked.items():
        assert value_on(n, db, key) == value, key
    assert_error(get(n, db, "first"), 404, "Cache key 'first' was not found.")


def sweep_lines(node):
    return [tuple(int(x) for x in m.groups()) for m in re.finditer(
        r"cache sweep: freed (\d+) expired entries \((\d+) scanned, (\d+) pages", node.log_text())]


def test_sweeper_frees_expired_entries_in_batches_and_creates_no_op(make_node, db):
    n = make_node(overrides=cache_overrides(CacheCleanupIntervalSeconds=1, CacheCleanupBatchSize=2,
                                            CacheCleanupMaxScanPages=1, LogLevel="info"))
    put(n, db, "keep", "live", ttl="1h")
    for i in range(5):
        put(n, db, f"gone{i}", i, ttl="100ms")
    seq, (vv, digest) = log_seq(n, db), db_state(n, db)
    # Each run scans one page of 2 records; 6 records with 5 expired take at least 3 runs.
    wait_for(lambda: sum(f for f, _, _ in sweep_lines(n)) >= 5, timeout=15,
             what="the sweeper to free 5 entries")
    lines = sweep_lines(n)
    assert sum(f for f, _, _ in lines) == 5, lines
    assert all(f <= 2 and s <= 2 and p == 1 for f, s, p in lines), lines
    assert len(lines) >= 3
    # Nothing replicated: the log, the version vector and the digest are unchanged.
    assert log_seq(n, db) == seq and db_state(n, db) == (vv, digest)
    assert assert_ok(get(n, db, "keep"))["Value"] == "live"
    for i in range(5):
        assert_error(get(n, db, f"gone{i}"), 404)
    # A swept key can be written again, and survives a restart.
    put(n, db, "gone0", "back", ttl="1h")
    n.restart()
    assert assert_ok(get(n, db, "gone0"))["Value"] == "back"
    assert sum(f for f, _, _ in sweep_lines(n)) >= 5


def test_sweeper_resumes_a_large_cache_across_runs(make_node, db):
    n = make_node(overrides=cache_overrides(CacheCleanupIntervalSeconds=1, CacheCleanupBatchSize=3,
                                            CacheCleanupMaxScanPages=2, LogLevel="info"))
    for i in range(10):
        put(n, db, f"k{i:02d}", i, ttl="100ms")
    wait_for(lambda: sum(f for f, _, _ in sweep_lines(n)) >= 10, timeout=15,
             what="every entry swept")
    lines = sweep_lines(n)
    assert sum(f for f, _, _ in lines) == 10 and all(s <= 6 and p <= 2 for _, s, p in lines)


# ------------------------------------------------------------------------------------------------
# Replication
# ------------------------------------------------------------------------------------------------

def pair(make_node, connect=True, **node_cfg):
    a = make_node(overrides=cache_overrides(**node_cfg), node_id="a", name="a")
    b = make_node(overrides=cache_overrides(**node_cfg), node_id="b", name="b")
    if connect:
        add_peer(a, b)
        add_peer(b, a)
    return a, b


def value_on(node, db, key):
    r = get(node, db, key)
    return r.body["Value"] if r.status == 200 else None


def test_put_and_delete_replicate_with_the_same_expiry(make_node, db):
    a, b = pair(make_node)
    w = put(a, db, "r", {"n": 1}, ttl="1h")
    wait_for(lambda: value_on(b, db, "r") == {"n": 1}, what="the entry on b")
    on_b = assert_ok(get(b, db, "r"))
    assert on_b["ExpiresAtUtc"] == w["ExpiresAtUtc"] and on_b["UpdatedUtc"] == w["CommittedUtc"]
    assert_ok(cache(b, db, "DELETE", "r"))
    wait_for(lambda: get(a, db, "r").status == 404, what="the delete on a")
    wait_for(lambda: db_state(a, db) == db_state(b, db), what="equal (VV, digest)")


def read_cache_lookups(node, db):
    """(hits, misses) of db's read memo from GET /metrics."""
    text = node.request("GET", "/metrics").text
    def sample(result):
        m = re.search(r'^litedist_read_cache_lookups_total\{database="%s",result="%s"\} (\S+)$'
                      % (re.escape(db), result), text, re.M)
        return float(m.group(1)) if m else None
    return sample("hit"), sample("miss")


def test_the_read_memo_never_answers_a_record_a_write_replaced(make_node, db):
    """Node.ReadCacheKiB (db/memo.h): repeated reads of a key are served from the memo, and a
    read that follows a write, local or replicated, an overwrite, a delete or an expiry never
    gets the record from before it."""
    a, b = pair(make_node)
    put(a, db, "hot", 0, ttl="1h")
    for i in range(1, 120):
        assert value_on(a, db, "hot") == i - 1
        assert value_on(a, db, "hot") == i - 1  # from the memo
        put(a, db, "hot", i, ttl="1h")
    assert value_on(a, db, "hot") == 119
    # The same for documents, through their own route.
    api = a.api(db)
    for i in range(30):
        assert_ok(api.put("docs", "d", {"i": i}))
        assert api.must_get("docs", "d") == {"Id": "d", "i": i}
        assert api.must_get("docs", "d") == {"Id": "d", "i": i}
    hits, misses = read_cache_lookups(a, db)
    assert hits >= 140 and misses >= 140
    # Writes that arrive by replication: b overwrites, deletes, writes with a short TTL.
    wait_for(lambda: value_on(b, db, "hot") == 119, what="the key on b")
    put(b, db, "hot", "from b", ttl="1h")
    wait_for(lambda: value_on(a, db, "hot") == "from b", what="b's overwrite read on a")
    assert_ok(cache(b, db, "DELETE", "hot"))
    wait_for(lambda: get(a, db, "hot").status == 404, what="b's delete read on a")
    put(b, db, "hot", "brief", ttl="1s")
    wait_for(lambda: value_on(a, db, "hot") == "brief", what="b's short-lived key on a")
    wait_for(lambda: get(a, db, "hot").status == 404, what="the key expired on a")
    # With the memo off, nothing is looked up in it.
    a.stop()
    a.config["Node"]["ReadCacheKiB"] = 0
    a.write_config()
    a.start()
    assert value_on(a, db, "hot") is None
    assert_ok(api.put("docs", "d", {"i": 99}))
    assert api.must_get("docs", "d") == {"Id": "d", "i": 99}
    assert read_cache_lookups(a, db) == (0, 0)


def test_expired_key_on_a_and_fresh_put_on_b_converge_to_b(make_node, db):
    """The original turns A's expired read into a replicated delete that can erase B's newer
    write; here A's read writes nothing, so both nodes end with B's value."""
    a, b = pair(make_node, CacheCleanupIntervalSeconds=1)
    put(a, db, "race", "old", ttl="200ms")
    wait_for(lambda: log_seq(b, db) >= 1, what="the first put on b")
    time.sleep(0.25)
    assert_error(get(a, db, "race"), 404)  # expired on A
    put(b, db, "race", "fresh", ttl="1h")
    for _ in range(3):
        get(a, db, "race")
    wait_for(lambda: value_on(a, db, "race") == "fresh", what="B's value on A")
    time.sleep(1.5)  # a sweep runs on both
    assert value_on(a, db, "race") == "fresh" and value_on(b, db, "race") == "fresh"
    wait_for(lambda: db_state(a, db) == db_state(b, db), what="equal (VV, digest)")


def test_late_older_op_does_not_resurrect_a_swept_key(make_node, db):
    a, b = pair(make_node, connect=False, CacheCleanupIntervalSeconds=1, LogLevel="info")
    put(b, db, "z", "older", ttl="1h")   # the older stamp, still unseen by A
    time.sleep(0.01)
    put(a, db, "z", "newer", ttl="100ms")
    wait_for(lambda: sum(f for f, _, _ in sweep_lines(a)) >= 1, timeout=10,
             what="A sweeping its expired entry")
    add_peer(a, b)
    add_peer(b, a)
    wait_for(lambda: log_seq(a, db) >= 2 and log_seq(b, db) >= 2, what="the ops crossing")
    wait_for(lambda: db_state(a, db) == db_state(b, db), what="equal (VV, digest)")
    # A's newer (expired) write wins on both nodes: the older value never comes back.
    assert_error(get(a, db, "z"), 404)
    assert_error(get(b, db, "z"), 404)


def test_visibility_probe_measures_cache_keys(make_node, db):
    """tools/visibility_probe.py --cache: each key written on A is polled on B until visible."""
    a, b = pair(make_node)
    out = subprocess.run(
        [sys.executable, str(REPO / "tools" / "visibility_probe.py"), "--cache", "--ttl", "1m",
         "--a", f"http://127.0.0.1:{a.port}", "--b", f"http://127.0.0.1:{b.port}", "--db", db,
         "-n", "20", "--poll-ms", "1", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["kind"] == "cache" and result["visible"] == 20 and result["lost"] == 0
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert value_on(b, db, "probe-19")["token"]
