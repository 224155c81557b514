"""GET /metrics: the Prometheus text exposition format, parsed by Debian's python3-prometheus-client
(a real exposition parser), with the families docs/operations.md lists, counting what the test
did; Node.MetricsApiKey; X-Request-Id and the access log."""

import json
import math
import re
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT_KEY, assert_ok

REPL_KEY = "metrics-cluster-key"
DB = "mx"

FAMILIES = [
    "litedist_build_info",
    "litedist_http_requests", "litedist_http_request_duration_seconds",
    "litedist_http_connections_open", "litedist_http_requests_in_flight",
    "litedist_worker_jobs", "litedist_worker_queue_length",
    "litedist_auth_failures",
    "litedist_db_commit_writes", "litedist_db_commit_duration_seconds",
    "litedist_oplog_entries", "litedist_oplog_oldest_sequence", "litedist_oplog_last_sequence",
    "litedist_oplog_bytes", "litedist_event_loop_lag_seconds", "litedist_event_loop_lag_max_seconds",
    "litedist_database_size_bytes", "litedist_databases",
    "litedist_replication_ops_behind", "litedist_replication_pending_push_ops",
    "litedist_replication_seconds_since_last_success", "litedist_replication_peer_online",
    "litedist_replication_sent_ops", "litedist_replication_received_ops",
    "litedist_replication_sent_bytes", "litedist_replication_received_bytes",
    "litedist_replication_failures", "litedist_replication_divergences",
    "litedist_replication_diverged", "litedist_replication_snapshot_records_done",
    "litedist_replication_snapshot_records_total",
    "litedist_cache_live_keys", "litedist_cache_expired_keys",
    "litedist_cache_sweeper_runs", "litedist_cache_sweeper_scanned_entries",
    "litedist_cache_expired_entries_freed", "litedist_resp_commands", "litedist_resp_connections",
    "litedist_index_step_failures",
    "process_cpu_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_open_fds", "process_max_fds", "process_start_time_seconds",
]


def scrape(node, headers=None):
    r = node.request("GET", "/metrics", headers=headers)
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    text = r.raw.decode("utf-8")
    # The parser raises on anything out of format; every family is returned by name.
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, family, sample_name, **labels):
    for s in fams[family].samples:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def wait_for(pred, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"{what} not seen within {timeout} s")


def test_every_family_parses_and_counts_what_happened(make_node):
    a = make_node(overrides={"Node": {"LogLevel": "info"}})
    api = a.api(DB)
    for i in range(5):
        api.must_put("c", f"d{i}", {"i": i})
    assert a.request("GET", "/api/documents/c/d0", headers={"Database": DB}).status == 401
    assert a.request("GET", "/api/documents/c/d0",
                     headers={"Database": DB, "ApiKey": "wrong"}).status == 401
    assert a.request("GET", "/no/such/route").status == 404

    fams = scrape(a)
    missing = [f for f in FAMILIES if f not in fams]
    assert not missing, missing
    assert fams["litedist_http_requests"].type == "counter"
    assert fams["litedist_http_request_duration_seconds"].type == "histogram"
    assert value(fams, "litedist_build_info", "litedist_build_info") == 1
    route = "/api/documents/{collection}/{id}"
    assert value(fams, "litedist_http_requests", "litedist_http_requests_total", method="PUT",
                 route=route, status_class="2xx") == 5
    assert value(fams, "litedist_http_requests", "litedist_http_requests_total", method="GET",
                 route=route, status_class="4xx") == 2
    assert value(fams, "litedist_http_requests", "litedist_http_requests_total",
                 route="unmatched", status_class="4xx") == 1
    assert value(fams, "litedist_http_request_duration_seconds",
                 "litedist_http_request_duration_seconds_count", method="PUT", route=route) == 5
    assert value(fams, "litedist_auth_failures", "litedist_auth_failures_total",
                 reason="missing_key") == 1
    assert value(fams, "litedist_auth_failures", "litedist_auth_failures_total",
                 reason="unknown_key") == 1
    # Five writes, each its own group commit or shared ones: five writes in all.
    assert value(fams, "litedist_db_commit_writes", "litedist_db_commit_writes_sum",
                 database=DB) >= 5
    assert value(fams, "litedist_db_commit_writes", "litedist_db_commit_writes_count",
                 database=DB) >= 1
    assert value(fams, "litedist_db_commit_duration_seconds",
                 "litedist_db_commit_duration_seconds_bucket", database=DB, le="+Inf") >= 1
    assert value(fams, "litedist_oplog_entries", "litedist_oplog_entries", database=DB) == 5
    assert value(fams, "litedist_oplog_last_sequence", "litedist_oplog_last_sequence",
                 database=DB) == 5
    assert value(fams, "litedist_oplog_oldest_sequence", "litedist_oplog_oldest_sequence",
                 database=DB) == 1
    assert value(fams, "litedist_database_size_bytes", "litedist_database_size_bytes",
                 database=DB) > 0
    # Five entries of at least their key and a small document each.
    assert value(fams, "litedist_oplog_bytes", "litedist_oplog_bytes", database=DB) > 5 * 50
    assert value(fams, "litedist_databases", "litedist_databases") == 1
    # The loop-lag timer runs every 5 ms: the node has been up long enough for some samples,
    # and the buckets are cumulative up to +Inf, which holds them all.
    lag = "litedist_event_loop_lag_seconds"
    count = value(fams, lag, lag + "_count")
    assert count > 0
    assert value(fams, lag, lag + "_bucket", le="+Inf") == count
    assert value(fams, lag, lag + "_bucket", le="0.00025") <= value(fams, lag, lag + "_bucket",
                                                                     le="0.001") <= count
    assert value(fams, "litedist_event_loop_lag_max_seconds",
                 "litedist_event_loop_lag_max_seconds") >= 0
    assert value(fams, "process_open_fds", "process_open_fds") > 3
    assert value(fams, "process_resident_memory_bytes", "process_resident_memory_bytes") > 1e6
    assert value(fams, "process_max_fds", "process_max_fds") >= 1024
    start = value(fams, "process_start_time_seconds", "process_start_time_seconds")
    assert abs(start - time.time()) < 600
    assert value(fams, "litedist_http_connections_open", "litedist_http_connections_open") >= 1

    # The access log: one line per request, the route template (never the id), status, key name.
    log = a.log_text()
    lines = [ln for ln in log.splitlines() if "[access]" in ln and "PUT " in ln]
    assert len(lines) == 5, lines
    assert "/api/documents/{collection}/{id} 200" in lines[0], lines[0]
    assert "/d0" not in lines[0] and f"db={DB}" in lines[0] and "key=root" in lines[0], lines[0]
    assert ROOT_KEY + " " not in lines[0].split("key=")[0]


def test_request_id_is_returned_and_taken_from_a_sane_client(make_node):
    a = make_node()
    r = a.request("GET", "/health")
    made = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{24}", made), made
    assert a.request("GET", "/health").headers["X-Request-Id"] != made
    r = a.request("GET", "/health", headers={"X-Request-Id": "client-id.42:a_b"})
    assert r.headers["X-Request-Id"] == "client-id.42:a_b"
    for bad in ["has space", "x" * 65, "quote\"", ""]:
        got = a.request("GET", "/health", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{24}", got), (bad, got)
    # Errors carry it too, and the access log names it.
    r = a.request("GET", "/nope", headers={"X-Request-Id": "trace-404"})
    assert r.status == 404 and r.headers["X-Request-Id"] == "trace-404"
    wait_for(lambda: "id=trace-404" in a.log_text(), "the access-log line of trace-404")


def test_json_log_lines(make_node):
    a = make_node(overrides={"Node": {"LogFormat": "json", "LogLevel": "info"}})
    a.api(DB).must_put("c", "x", {"v": 1})
    a.request("GET", "/health", headers={"X-Request-Id": "json-1"})

    def access_line():
        for ln in a.log_text().splitlines():
            if ln.startswith("{") and '"json-1"' in ln:
                return json.loads(ln)
        return None
    entry = wait_for(access_line, "the JSON access line")
    assert entry["scope"] == "access" and entry["level"] == "info"
    assert entry["method"] == "GET" and entry["route"] == "/health"
    assert entry["status"] == 200 and isinstance(entry["bytes"], int)
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["request_id"] == "json-1" and "time" in entry and "msg" in entry
    # Every line the node wrote (the harness's own line aside) is a JSON object.
    for ln in a.log_text().splitlines():
        if ln and not ln.startswith("=== harness"):
            assert isinstance(json.loads(ln), dict), ln


def test_bad_log_format_is_refused(make_node):
    a = make_node(overrides={"Node": {"LogFormat": "xml"}}, start=False)
    a.spawn()
    assert a.wait_exit() == 1
    assert "Node.LogFormat must be text or json" in a.log_text()


def test_metrics_api_key(make_node):
    a = make_node(overrides={"Node": {"MetricsApiKey": "scrape-secret"}})
    r = a.request("GET", "/metrics")
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), r
    assert a.request("GET", "/metrics", headers={"Authorization": "Bearer nope"}).status == 401
    assert a.request("GET", "/metrics", headers={"ApiKey": ROOT_KEY}).status == 401
    fams = scrape(a, headers={"Authorization": "Bearer scrape-secret"})
    assert value(fams, "litedist_auth_failures", "litedist_auth_failures_total",
                 reason="metrics_key") == 3


def test_replication_families_per_database_and_peer(make_node):
    over = {"Node": {"ReplicationApiKey": REPL_KEY, "AntiEntropyIntervalSeconds": 1,
                     "ReplicationTimeoutSeconds": 2}}
    b = make_node(overrides=over, node_id="b", name="b")
    over_a = json.loads(json.dumps(over))
    over_a["Node"]["SeedPeers"] = [{"NodeId": "b", "BaseUrl": f"http://127.0.0.1:{b.port}"},
                                   {"NodeId": "gone", "BaseUrl": "http://127.0.0.1:1"}]
    a = make_node(overrides=over_a, node_id="a", name="a")
    for i in range(3):
        a.api(DB).must_put("c", f"r{i}", {"i": i})

    def synced():
        fams = scrape(a)
        pending = value(fams, "litedist_replication_pending_push_ops",
                        "litedist_replication_pending_push_ops", database=DB, peer="b")
        since = value(fams, "litedist_replication_seconds_since_last_success",
                      "litedist_replication_seconds_since_last_success", database=DB, peer="b")
        failed = value(fams, "litedist_replication_failures",
                       "litedist_replication_failures_total", database=DB, peer="gone",
                       reason="unreachable")
        ok = pending == 0 and since is not None and since < 60 and failed and failed >= 1
        return fams if ok else None
    fams = wait_for(synced, "b in sync with a's log and a failure to reach 'gone'", timeout=30)
    # The ops reached b by a's pushes or by b's pulls (discovery may make b pull first).
    on_b = scrape(b)
    moved = value(fams, "litedist_replication_sent_ops", "litedist_replication_sent_ops_total",
                  database=DB, peer="b") + \
        (value(on_b, "litedist_replication_received_ops",
               "litedist_replication_received_ops_total", database=DB, peer="a") or 0)
    assert moved >= 3, moved
    assert value(fams, "litedist_replication_sent_bytes", "litedist_replication_sent_bytes_total",
                 database=DB, peer="b") > 0
    assert value(fams, "litedist_replication_received_bytes",
                 "litedist_replication_received_bytes_total", database=DB, peer="b") > 0
    assert value(fams, "litedist_replication_peer_online", "litedist_replication_peer_online",
                 database=DB, peer="b") == 1
    assert math.isinf(value(fams, "litedist_replication_seconds_since_last_success",
                            "litedist_replication_seconds_since_last_success", database=DB,
                            peer="gone"))
    assert value(fams, "litedist_replication_divergences",
                 "litedist_replication_divergences_total") == 0
    # Replication's reads (a's pushes, b's pull answers) run on a pool of their own, never on the
    # queries' pool, so long SELECTs cannot delay them; a SELECT runs on the queries' pool.
    def jobs(fams, pool):
        return value(fams, "litedist_worker_jobs", "litedist_worker_jobs_total", pool=pool)
    on_a = scrape(a)
    assert jobs(on_a, "replication") + jobs(scrape(b), "replication") >= 1
    assert jobs(on_a, "queries") == 0
    assert value(on_a, "litedist_worker_queue_length", "litedist_worker_queue_length",
                 pool="queries") == 0
    assert_ok(a.request("POST", "/api/query", body={"Query": "SELECT $ FROM c"},
                        headers={"Database": DB, "ApiKey": ROOT_KEY}))
    assert jobs(scrape(a), "queries") == 1


def test_cache_families(make_node):
    a = make_node(overrides={"Node": {"CacheCleanupIntervalSeconds": 1}})
    h = {"Database": DB, "ApiKey": ROOT_KEY}
    for key, ttl in (("short", "1s"), ("long", "1h"), ("default", None)):
        path = f"/api/cache/{key}" + (f"?ttl={ttl}" if ttl else "")
        assert a.request("PUT", path, raw='{"v": 1}', headers=h).status == 200

    def swept():
        fams = scrape(a)
        live = value(fams, "litedist_cache_live_keys", "litedist_cache_live_keys", database=DB)
        expired = value(fams, "litedist_cache_expired_keys", "litedist_cache_expired_keys",
                        database=DB)
        return fams if (live, expired) == (2, 1) else None
    fams = wait_for(swept, "a sweep counting 2 live keys and 1 expired", timeout=20)
    assert value(fams, "litedist_cache_sweeper_runs", "litedist_cache_sweeper_runs_total") >= 1
    assert value(fams, "litedist_cache_expired_entries_freed",
                 "litedist_cache_expired_entries_freed_total") == 1
    assert value(fams, "litedist_cache_sweeper_scanned_entries",
                 "litedist_cache_sweeper_scanned_entries_total") >= 3


def test_websocket_upgrade_is_counted_and_logged(make_node):
    # No dashboard probes: they open WebSockets to the node itself.
    a = make_node(overrides={"Node": {"ReplicationApiKey": REPL_KEY, "LogLevel": "info",
                                      "PeerProbeIntervalSeconds": 0}})
    upgrade = ("GET /ws/replication HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"ReplicationApiKey: {REPL_KEY}\r\nX-Request-Id: ws-1\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", a.port), timeout=5) as s:
        s.sendall(upgrade)
        got = b""
        for _ in range(100):
            got += s.recv(4096)
            if b"\r\n\r\n" in got:
                break
        assert got.startswith(b"HTTP/1.1 101"), got
    wait_for(lambda: "id=ws-1" in a.log_text(), "the upgrade's access line")
    line = next(ln for ln in a.log_text().splitlines() if "id=ws-1" in ln)
    assert "GET /ws/replication 101 0 B" in line and "key=replication" in line, line
    fams = scrape(a)
    assert value(fams, "litedist_http_requests", "litedist_http_requests_total", method="GET",
                 route="/ws/replication", status_class="1xx") == 1
