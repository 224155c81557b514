"""Limits and abuse: URL length, slow and idle clients, and the per-address delay that makes a
flood of wrong keys slow itself down without slowing requests that carry good keys."""

import json
import os
import resource
import socket
import statistics
import threading
import time

from conftest import MSG_KEY_INVALID, ROOT_KEY, assert_error, assert_ok

DELAY_MS = 200


def delayed_node(make_node, delay=DELAY_MS, **node):
    return make_node(overrides={"Node": {"AuthFailureDelayMilliseconds": delay,
                                         "ReplicationApiKey": "cluster-key", **node}})


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def test_url_longer_than_the_limit_is_refused(make_node):
    n = make_node(overrides={"Node": {"MaxUrlBytes": 300}})
    ok = "/health?a=" + "a" * (300 - len("/health?a="))
    assert_ok(n.request("GET", ok))
    assert_error(n.request("GET", ok + "a"), 414,
                 "The URL is longer than Node.MaxUrlBytes (300 bytes).")


def recv_until_closed(sock, timeout):
    """Reads until the server closes; returns (closed, seconds waited)."""
    sock.settimeout(0.2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if sock.recv(4096) == b"":
                return True, time.monotonic() - t0
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True, time.monotonic() - t0
    return False, time.monotonic() - t0


def test_slow_and_idle_clients_are_disconnected(make_node):
    n = make_node(overrides={"Node": {"RequestTimeoutSeconds": 1}})
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
        closed, waited = recv_until_closed(slow, 6)
        assert closed and 0.5 <= waited < 4, waited
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as idle:
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, waited = recv_until_closed(idle, 6)  # the answer, then the idle close
        assert closed and waited < 4, waited
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as body:
        body.sendall(b"PUT /api/documents/c/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"Database: d\r\nApiKey: root\r\n\r\n{\"a\":")  # body never completed
        closed, waited = recv_until_closed(body, 6)
        assert closed and waited < 4, waited
    assert n.api("d").absent("c", "1")
    assert_ok(n.request("GET", "/health"))  # the node is fine


def test_wrong_keys_wait_longer_each_time_good_keys_never_wait(make_node):
    n = delayed_node(make_node)
    h = {"Database": "lim"}
    r, first = timed(lambda: n.request("GET", "/api/documents", headers={**h, "ApiKey": "bad"}))
    assert_error(r, 401, MSG_KEY_INVALID)
    r, second = timed(lambda: n.request("GET", "/api/documents", headers={**h, "ApiKey": "bad"}))
    assert_error(r, 401, MSG_KEY_INVALID)
    assert first >= DELAY_MS / 1000 * 0.9 and second >= 2 * DELAY_MS / 1000 * 0.9, (first, second)
    r, good = timed(lambda: n.request("GET", "/api/documents", headers={**h, "ApiKey": ROOT_KEY}))
    assert_ok(r)
    assert good < DELAY_MS / 1000, good
    # A missing key is not a guess: answered at once.
    r, missing = timed(lambda: n.request("GET", "/api/documents", headers=h))
    assert_error(r, 401)
    assert missing < DELAY_MS / 1000, missing
    # The cluster key: a wrong one waits (and keeps growing the same address's delay), a missing
    # one does not.
    r, wrong = timed(lambda: n.request("GET", "/api/replication/status",
                                       headers={"ReplicationApiKey": "guess"}))
    assert_error(r, 403, "ReplicationApiKey is invalid.")
    assert wrong >= 4 * DELAY_MS / 1000 * 0.9, wrong
    r, none = timed(lambda: n.request("GET", "/api/replication/status"))
    assert_error(r, 403, "ReplicationApiKey is invalid.")
    assert none < DELAY_MS / 1000, none


def test_the_delay_can_be_turned_off(make_node):
    n = delayed_node(make_node, delay=0)
    for _ in range(5):
        r, t = timed(lambda: n.request("GET", "/api/documents",
                                       headers={"Database": "x", "ApiKey": "bad"}))
        assert_error(r, 401, MSG_KEY_INVALID)
        assert t < DELAY_MS / 1000, t


def test_a_flood_of_wrong_keys_does_not_slow_good_requests(make_node):
    """8 clients send wrong keys as fast as they are answered while one client with the right key
    reads a document: its latency stays what it is without the flood, and the flood's answers
    are held back (the server spends timers on them, not work)."""
    n = delayed_node(make_node)
    api = n.api("flood")
    api.must_put("c", "1", {"v": 1})

    def good_latencies(count):
        out = []
        for _ in range(count):
            r, t = timed(lambda: api.get("c", "1"))
            assert_ok(r)
            out.append(t)
        return out

    quiet = statistics.median(good_latencies(30))
    stop = threading.Event()
    flood_counts, flood_times = [], []

    def flooder():
        count = 0
        while not stop.is_set() and count < 200:  # bounded either way
            r, t = timed(lambda: n.request("GET", "/api/documents/c/1",
                                           headers={"Database": "flood", "ApiKey": "guess"},
                                           timeout=10))
            assert r.status == 401
            flood_times.append(t)
            count += 1
        flood_counts.append(count)

    threads = [threading.Thread(target=flooder) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        busy = statistics.median(good_latencies(30))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    # Held back: after the first few, every wrong key waited the capped delay.
    assert sum(flood_counts) < 8 * 40, flood_counts
    assert statistics.median(flood_times) >= DELAY_MS / 1000, statistics.median(flood_times)
    # Good requests: no slower than a generous bound over the quiet figure (busy CI machine).
    assert busy < max(5 * quiet, 0.05), (quiet, busy)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_descriptors_pauses_accepting_instead_of_spinning(make_node):
    n = make_node()
    pid = n.proc.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 8, hard))  # the soft limit only
    socks = []
    try:
        for _ in range(40):  # more than the limit: the rest wait in the listen backlog
            s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        time.sleep(0.3)
        before = cpu_seconds(pid)
        time.sleep(1.0)
        spent = cpu_seconds(pid) - before
        assert spent < 0.1, f"the node spent {spent:.2f} s of CPU in 1 s while out of descriptors"
        assert "pausing new connections" in n.log_text()
    finally:
        for s in socks:
            s.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    deadline = time.monotonic() + 10
    while True:  # accepting resumes by itself
        try:
            if n.request("GET", "/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the node did not accept again"
        time.sleep(0.1)


def test_nul_in_a_query_parameter_is_refused(node, db):
    """evhttp decodes %00 into the parsed value, where it would cut it short: refused, whatever
    the route and parameter."""
    api = node.api(db)
    v = api.must_post("c", {"Id": "a"})["Version"]
    cases = [("PUT", "/api/cache/k?ttl=5m%00garbage", "ttl"),
             ("GET", "/api/documents/c?take=2%00x", "take"),
             ("PUT", f"/api/documents/c/a?parentVersion={v}%00zz", "parentVersion"),
             ("GET", "/api/documents/c?includeSystemCollections=true&skip=%00", "skip"),
             ("GET", "/health?x=%00", "x")]
    for method, path, name in cases:
        r = node.request(method, path, body={"Id": "a"}, headers=api.headers())
        assert_error(r, 400, f"Query parameter '{name}' contains a NUL byte (%00).")
    r = node.request("GET", "/api/documents/c?take%00x=2", headers=api.headers())
    assert_error(r, 400, "A query parameter name contains a NUL byte (%00).")
    assert api.must_get("c", "a") == {"Id": "a"}
    assert api.list_docs("c", take="2").status == 200  # %-encoding is otherwise fine: %30 is 0
    assert assert_ok(node.request("GET", "/api/documents/c?take=%32", headers=api.headers()))


def test_a_header_block_over_the_limit_is_a_json_431(make_node):
    n = make_node(overrides={"Node": {"MaxHeaderBytes": 4096}})
    r = n.request("GET", "/health", headers={"X-Big": "a" * 4000})
    assert_ok(r)
    r = n.request("GET", "/health", headers={"X-Big": "a" * 4100})
    assert_error(r, 431, "The request headers are larger than Node.MaxHeaderBytes (4096 bytes).")
    r = n.request("GET", "/health", headers={f"X-{i}": "a" * 100 for i in range(50)})
    assert_error(r, 431, "The request headers are larger than Node.MaxHeaderBytes (4096 bytes).")


def raw_exchange(port, data, timeout=5):
    """Sends data, reads until the server closes; returns (status, headers text, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode(), body


def test_errors_libevent_answers_itself_are_json(make_node):
    """Requests refused before any handler runs get the same JSON error shape."""
    n = make_node(overrides={"Node": {"MaxBodyBytes": 1024, "MaxHeaderBytes": 1024}})
    cases = [
        (b"GARBAGE\r\n\r\n", 400,
         "The request is malformed: its request line or headers could not be parsed."),
        (b"GET /health HTTP/1.1\r\nHost\r\n\r\n", 400,
         "The request is malformed: its request line or headers could not be parsed."),
        # A body past twice the limit plus 64 KiB: evhttp reads it to its end and drops it
        # (lingering close, so the sender sees the 413 and not a write error), then refuses.
        (b"POST /api/documents/c HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n" +
         b"x" * 999999, 413,
         "The request is far larger than Node.MaxHeaderBytes (1024 bytes) of headers or "
         "Node.MaxBodyBytes (1024 bytes) of body allow."),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nExpect: later\r\nContent-Length: 3\r\n\r\nabc",
         417, "Only 'Expect: 100-continue' is supported."),
        (b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", 501,
         "The request method is not implemented."),
    ]
    for data, status, message in cases:
        got, head, body = raw_exchange(n.port, data)
        assert got == status, (data, head)
        assert "Content-Type: application/json" in head and "Connection: close" in head, head
        assert json.loads(body) == {"Error": message}
    # 100 Continue is still evhttp's own, and the request goes on to its handler.
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        s.sendall(b"POST /api/documents/c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 2\r\nDatabase: d\r\n\r\n")
        assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"{}")
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401"), answer  # no ApiKey: the router answered
    # A malformed request pipelined behind a good one is answered in JSON too.
    got, head, body = raw_exchange(n.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                           b"GET /health HTTP/1.1\r\nHost\r\n\r\n")
    second = body.split(b"\r\n\r\n", 1)
    assert got == 200 and b"HTTP/1.1 400 Bad Request" in body, body
    assert json.loads(second[1]) == {"Error": cases[0][2]}
    assert_ok(n.request("GET", "/health"))
