"""Slow clients and the connection cap: a request must arrive in full within
Node.RequestReadTimeoutSeconds however it trickles, and at most Node.MaxConnections client
connections are open at once, the next ones waiting in the kernel's backlog until a slot frees."""

import json
import select
import socket
import time

from conftest import ROOT_KEY, assert_ok

# The node's dashboard probes itself over a kept-alive connection to its own listener, which
# would count among the client connections these tests count: no probes here.
NO_PROBES = {"PeerProbeIntervalSeconds": 0}


def open_connections(node):
    """ClientConnections.Open of the dashboard overview, asked on its own connection (which the
    count includes)."""
    r = node.request("GET", "/dashboard/api/overview", headers={"ApiKey": ROOT_KEY})
    assert_ok(r)
    return r.body["ClientConnections"]


def wait_open(node, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = open_connections(node)["Open"]
        if seen == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"ClientConnections.Open stayed {seen}, expected {want}")


def wait_log(node, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.log_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"no '{text}' in the log\n{node.log_tail()}")


def connect(node):
    s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    s.setblocking(False)
    return s


def trickle_until_cut(plan, interval=0.25, timeout=8.0):
    """plan: {socket: (first, step)}. Sends each socket's `first` bytes, then its `step` byte
    every `interval` s, until the server has closed each one. Returns {socket: seconds until it
    was closed}."""
    t0 = time.monotonic()
    socks = list(plan)
    for s in socks:
        s.sendall(plan[s][0])
    cut = {}
    next_send = t0 + interval
    while len(cut) < len(socks) and time.monotonic() - t0 < timeout:
        live = [s for s in socks if s not in cut]
        readable, _, _ = select.select(live, [], [], max(0.0, next_send - time.monotonic()))
        for s in readable:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if data == b"":
                cut[s] = time.monotonic() - t0
        if time.monotonic() >= next_send:
            next_send += interval
            for s in live:
                if s not in cut:
                    try:
                        s.send(plan[s][1])
                    except (BrokenPipeError, ConnectionResetError):
                        cut[s] = time.monotonic() - t0
    return cut


def test_slow_headers_and_slow_bodies_are_cut_at_the_deadline(make_node):
    # The idle timeout is far away: each byte is activity, so only the deadline can cut these.
    n = make_node(overrides={"Node": {"RequestReadTimeoutSeconds": 1,
                                      "RequestTimeoutSeconds": 60, **NO_PROBES}})
    headers = [connect(n) for _ in range(20)]
    bodies = [connect(n) for _ in range(10)]
    try:
        body_head = (b"POST /api/documents/slow/items HTTP/1.1\r\nHost: x\r\nApiKey: root\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        plan = {s: (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"x") for s in headers}
        plan.update({s: (body_head, b" ") for s in bodies})
        cut = trickle_until_cut(plan)
        assert len(cut) == 30, f"{30 - len(cut)} slow clients still connected after 8 s"
        # Cut after the deadline (1 s; checked every 0.2 s), long before the idle timeout.
        assert all(0.8 <= t <= 3.0 for t in cut.values()), sorted(cut.values())
    finally:
        for s in headers + bodies:
            s.close()
    wait_open(n, 1)  # only the connection asking
    # A request that arrives in time is served, and its keep-alive connection stays usable
    # beyond the deadline: only the span of reading a request counts.
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in s.recv(4096).split(b"\r\n", 1)[0]
        time.sleep(1.5)  # idle past the read deadline (the idle timeout is 60 s)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in s.recv(4096).split(b"\r\n", 1)[0]


def test_connections_beyond_the_cap_wait_and_are_served_as_slots_free(make_node):
    cap = 10
    n = make_node(overrides={"Node": {"MaxConnections": cap, "RequestReadTimeoutSeconds": 30,
                                      **NO_PROBES}})
    assert open_connections(n)["Max"] == cap
    wait_open(n, 1)  # start-up's health checks have gone
    held = [connect(n) for _ in range(cap)]
    extra = []
    try:
        wait_log(n, "client connections open (Node.MaxConnections)")
        # The listener is paused: this client's connection completes in the kernel's backlog
        # and its request waits there, ahead of the 200 held behind it.
        client = socket.create_connection(("127.0.0.1", n.port), timeout=10)
        client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for _ in range(200):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", n.port))  # beyond the backlog these keep retrying
            extra.append(s)
        t0 = time.monotonic()
        for s in held:
            s.close()
        held = []
        answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert time.monotonic() - t0 < 3.0  # served once the slots freed, not at a timeout
        client.close()
    finally:
        for s in held + extra:
            s.close()
    wait_open(n, 1, timeout=20)
    assert_ok(n.request("GET", "/health"))


def test_a_websocket_is_not_cut_by_the_read_deadline(make_node):
    """Once upgraded, a WebSocket's frames are not a request: it outlives the deadline."""
    from test_replication import REPL_KEY, ws_open, ws_recv_text, ws_send_text
    n = make_node(overrides={"Node": {"RequestReadTimeoutSeconds": 1,
                                      "ReplicationApiKey": REPL_KEY}})
    s, status_line = ws_open(n.port)
    try:
        assert b" 101 " in status_line
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:  # frames for 2.5 deadlines
            ws_send_text(s, json.dumps({"type": "health-check"}))
            assert ws_recv_text(s) == {"accepted": True, "error": None}
            time.sleep(0.3)
    finally:
        s.close()
