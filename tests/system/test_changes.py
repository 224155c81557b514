"""The changes feed (GET /api/changes, GET /ws/changes; docs/changes.md): shapes, errors and roles,
longpoll waking on a commit, continuous streams with heartbeats, the WebSocket, a consumer killed
-9 and restarted with its last cursor missing and repeating nothing, replicated ops, 410 after
pruning, and a slow consumer cut off."""

import base64
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (KEY_LIMITED, LIMITED_DBS, ROOT_KEY, NodeFactory, assert_error, assert_ok,
                      key_without, msg_no_access, msg_not_allowed)
from test_replication import DB, add_peer, cluster_overrides, deep, repl, wait_for

CAP = 65536  # Node.ChangesFeedMaxBufferBytes of the shared node
READER = Path(__file__).with_name("changes_reader.py")


@pytest.fixture(scope="module")
def fnode(build, storage, tmp_path_factory):
    factory = NodeFactory(build, storage, tmp_path_factory.mktemp("changes"))
    yield factory(overrides={"Node": {"ChangesFeedMaxBufferBytes": CAP}}, name="changes")
    factory.close()


def changes(node, db, key=ROOT_KEY, **params):
    q = urllib.parse.urlencode(params)
    return node.request("GET", "/api/changes" + ("?" + q if q else ""),
                        headers={"Database": db, "ApiKey": key})


def feed(node, db, **params):
    return assert_ok(changes(node, db, **params))


class Stream:
    """A continuous feed read line by line (bounded by the socket timeout)."""

    def __init__(self, node, db, rcvbuf=None, **params):
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        if rcvbuf:
            self.conn.sock = socket.socket()
            self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.conn.sock.settimeout(10)
            self.conn.sock.connect(("127.0.0.1", node.port))
        q = urllib.parse.urlencode(dict(params, feed="continuous"))
        self.conn.request("GET", "/api/changes?" + q, headers={"Database": db, "ApiKey": ROOT_KEY})
        self.resp = self.conn.getresponse()

    def line(self):
        return self.resp.readline()

    def change(self, skip_heartbeats=True):
        for _ in range(1000):
            line = self.line()
            if not line:
                return None
            if line.strip() or not skip_heartbeats:
                return json.loads(line) if line.strip() else line
        raise AssertionError("no change in 1000 heartbeats")

    def close(self):
        self.conn.close()


class WsClient:
    """A minimal RFC 6455 client over a socket (the server's frames are unmasked)."""

    def __init__(self, node, db, query, key=ROOT_KEY, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:  # a small receive buffer: a consumer that stops reading is soon behind
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", node.port))
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws/changes?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {nonce}\r\n"
                           f"Database: {db}\r\nApiKey: {key}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, f"connection closed during the upgrade: {self.buf!r}"
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.head = head

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def frame(self):
        """(opcode, payload) of the next frame; pings are answered."""
        for _ in range(1000):
            self._need(2)
            op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            off = 2
            if n == 126:
                self._need(4)
                n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10)
                n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            self._need(off + n)
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            if op == 9:
                self.send(payload, opcode=10)
                continue
            return op, payload
        raise AssertionError("only pings")

    def change(self):
        op, payload = self.frame()
        assert op == 1, (op, payload)
        return json.loads(payload)

    def send(self, payload, opcode=1):
        mask = os.urandom(4)
        head = bytes([0x80 | opcode, 0x80 | len(payload)])
        self.sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))

    def close(self):
        self.sock.close()


def test_normal_feed_shapes_filters_and_errors(fnode, db):
    api = fnode.api(db)
    assert feed(fnode, db) == {"Changes": [], "LastCursor": "0", "HasMore": False}
    api.must_put("items", "a", {"v": 1})
    api.must_put("other", "b", {"v": 2, "_sys_x": 1})
    api.must_put("items", "a", {"v": 3})
    api.must_delete("other", "b")
    assert_ok(api.call("PUT", "/api/cache/k1", raw="42"))
    body = feed(fnode, db, include_docs="true")
    got = [(c["Collection"], c["Id"], c["Deleted"], c["Doc"]) for c in body["Changes"]]
    # Docs are the current documents (CouchDB's include_docs), null once deleted.
    assert got == [("items", "a", False, {"Id": "a", "v": 3}), ("other", "b", False, None),
                   ("items", "a", False, {"Id": "a", "v": 3}), ("other", "b", True, None)]
    assert [c["Cursor"] for c in body["Changes"]] == ["1", "2", "3", "4"]
    assert body["LastCursor"] == "5" and body["HasMore"] is False  # the cache write is passed over
    assert all(c["Stamp"].isdigit() and "Doc" in c for c in body["Changes"])
    wr = api.must_get("items", "a")
    assert wr["v"] == 3
    # Cache keys only when asked; collections filter; limit, HasMore and resuming.
    cache = feed(fnode, db, include_cache="true", since="4")["Changes"]
    assert [(c["Collection"], c["Id"]) for c in cache] == [("cache", "k1")]
    assert [c["Id"] for c in feed(fnode, db, collections="other")["Changes"]] == ["b", "b"]
    page = feed(fnode, db, limit=2)
    assert len(page["Changes"]) == 2 and page["HasMore"] and page["LastCursor"] == "2"
    rest = feed(fnode, db, since=page["LastCursor"], limit=10)
    assert [c["Cursor"] for c in rest["Changes"]] == ["3", "4"] and not rest["HasMore"]
    assert feed(fnode, db, since="now") == {"Changes": [], "LastCursor": "5", "HasMore": False}
    assert "Doc" not in feed(fnode, db, limit=1)["Changes"][0]
    # Bad input.
    cases = [({"bogus": "1"}, "Unknown query parameter 'bogus'"),
             ({"since": "x"}, "since must be a cursor"),
             ({"feed": "sometimes"}, "feed must be 'normal', 'longpoll' or 'continuous'."),
             ({"limit": "0"}, "limit must be between 1 and 10000."),
             ({"limit": "10001"}, "limit must be between 1 and 10000."),
             ({"timeout": "60001"}, "timeout must be between 1 and 60000 milliseconds."),
             ({"heartbeat": "5"}, "heartbeat must be between 100 and 60000 milliseconds."),
             ({"collections": "a,,b"}, "collections must be a comma-separated list"),
             ({"collections": "cache"}, "Collection 'cache' is reserved"),
             ({"include_docs": "maybe"}, "include_docs")]
    for params, msg in cases:
        err = assert_error(changes(fnode, db, **params), 400)
        assert msg in err, (params, err)


def test_roles_and_database_scope(fnode, db):
    fnode.api(db).must_put("items", "a", {"v": 1})
    assert_error(changes(fnode, db, key=key_without("READ_DOCUMENT")), 403,
                 msg_not_allowed("read documents"))
    assert_error(changes(fnode, db, key=KEY_LIMITED), 403, msg_no_access(db))
    assert feed(fnode, LIMITED_DBS[0], key=KEY_LIMITED)["Changes"] == []
    ws = WsClient(fnode, db, "since=0", key=key_without("READ_DOCUMENT"))
    assert ws.status == 403
    ws.close()


def test_longpoll_wakes_on_a_write(fnode, db):
    api = fnode.api(db)
    api.must_put("items", "a", {"v": 1})
    cursor = feed(fnode, db, since="now")["LastCursor"]
    out = {}

    def poll():
        out["resp"] = changes(fnode, db, feed="longpoll", since=cursor, timeout=10000)
        out["done"] = time.monotonic()

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)  # let the poll reach the server and wait (it answers at once otherwise)
    before_write = time.monotonic()
    api.must_put("items", "b", {"v": 2})
    written = time.monotonic()
    t.join(timeout=15)
    assert not t.is_alive()
    body = assert_ok(out["resp"])
    assert [c["Id"] for c in body["Changes"]] == ["b"] and body["LastCursor"] == "2"
    assert out["done"] >= before_write, "the poll answered before anything was written"
    # Woken by the commit, not found by a later look: well within the 10 s timeout.
    assert out["done"] - written < 1.0, f"woke {out['done'] - written:.3f} s after the write"
    # Nothing comes: the poll answers empty at its timeout, with the cursor unchanged.
    t0 = time.monotonic()
    body = feed(fnode, db, feed="longpoll", since="2", timeout=300)
    assert body == {"Changes": [], "LastCursor": "2", "HasMore": False}
    assert 0.25 <= time.monotonic() - t0 < 5
    # A filtered-out commit does not answer a poll; the next matching one does.
    out.clear()
    t = threading.Thread(target=lambda: out.update(
        resp=changes(fnode, db, feed="longpoll", since="2", collections="wanted", timeout=10000)))
    t.start()
    time.sleep(0.2)
    api.must_put("items", "c", {"v": 3})
    api.must_put("wanted", "w", {"v": 4})
    t.join(timeout=15)
    body = assert_ok(out["resp"])
    assert [c["Id"] for c in body["Changes"]] == ["w"] and body["LastCursor"] == "4"


def open_connections(node):
    """litedist_http_connections_open, read over a connection of its own (counted too)."""
    r = node.request("GET", "/metrics", headers={"ApiKey": ROOT_KEY})
    for line in r.text.splitlines():
        if line.startswith("litedist_http_connections_open "):
            return int(float(line.split()[1]))
    raise AssertionError("no litedist_http_connections_open in /metrics")


def test_a_longpoll_client_that_leaves_is_let_go_at_once(fnode, db):
    # evhttp reads nothing more from a connection whose request is with the handler, so a client
    # leaving a longpoll was noticed only at its timeout (here 60 s): its connection and
    # subscriber stayed. The node now watches the socket and ends the poll when the client closes.
    baseline = open_connections(fnode)
    cursor = feed(fnode, db, since="now")["LastCursor"]
    sock = socket.create_connection(("127.0.0.1", fnode.port), timeout=10)
    try:
        sock.sendall((f"GET /api/changes?feed=longpoll&timeout=60000&since={cursor} HTTP/1.1\r\n"
                      f"Host: 127.0.0.1\r\nDatabase: {db}\r\nApiKey: {ROOT_KEY}\r\n\r\n").encode())
        wait_for(lambda: open_connections(fnode) >= baseline + 1, what="the poll's connection open")
    finally:
        sock.close()
    t0 = time.monotonic()
    wait_for(lambda: open_connections(fnode) <= baseline, what="the poll's connection let go",
             timeout=10)
    assert time.monotonic() - t0 < 10
    # The node still serves polls as before.
    assert feed(fnode, db, feed="longpoll", since=cursor, timeout=100)["Changes"] == []


def test_continuous_streams_with_heartbeats(fnode, db):
    api = fnode.api(db)
    api.must_put("items", "a", {"v": 1})
    s = Stream(fnode, db, heartbeat=100, limit=3, include_docs="true")
    assert s.resp.status == 200
    assert s.resp.getheader("Content-Type").startswith("application/x-ndjson")
    first = s.change()
    assert (first["Id"], first["Cursor"], first["Doc"]) == ("a", "1", {"Id": "a", "v": 1})
    # Heartbeats: empty lines while nothing happens.
    beats = 0
    for _ in range(5):
        assert s.change(skip_heartbeats=False) == b"\n"
        beats += 1
    api.must_put("items", "b", {"v": 2})
    api.must_delete("items", "a")
    assert [s.change()["Cursor"] for _ in range(2)] == ["2", "3"]
    # limit=3 reached: a last line with the cursor, then the end of the stream.
    assert s.change() == {"LastCursor": "3", "HasMore": False}
    assert s.line() == b""
    s.close()


def test_websocket_streams_and_resumes(fnode, db):
    api = fnode.api(db)
    for i in range(3):
        api.must_put("items", f"d{i}", {"i": i})
    ws = WsClient(fnode, db, "since=0&include_docs=true")
    assert ws.status == 101
    got = [ws.change() for _ in range(3)]
    assert [(c["Id"], c["Doc"]["i"]) for c in got] == [("d0", 0), ("d1", 1), ("d2", 2)]
    api.must_put("items", "d3", {"i": 3})
    last = ws.change()
    assert (last["Id"], last["Cursor"]) == ("d3", "4")
    ws.send(b"{}")
    assert "takes no messages" in ws.change()["Error"]
    ws.close()
    # limit: the stream ends with the cursor, then a normal close.
    ws = WsClient(fnode, db, "since=3&limit=1")
    assert ws.change()["Id"] == "d3"
    assert ws.change() == {"LastCursor": "4", "HasMore": False}
    op, payload = ws.frame()
    assert op == 8 and struct.unpack(">H", payload[:2])[0] == 1000
    ws.close()
    api.must_put("items", "d4", {"i": 4})
    ws = WsClient(fnode, db, "since=" + last["Cursor"])
    assert ws.change()["Id"] == "d4"
    ws.close()
    plain = fnode.request("GET", "/ws/changes", headers={"Database": db, "ApiKey": ROOT_KEY})
    assert_error(plain, 400, "A WebSocket request is required.")


def test_a_killed_reader_misses_nothing_and_repeats_nothing(fnode, db, tmp_path):
    api = fnode.api(db)
    out = tmp_path / "seen.txt"
    n_writes = 240

    def writer():
        for i in range(n_writes):
            if i % 5 == 4:
                api.must_delete("items", f"d{i - 2}")
            else:
                api.must_put("items", f"d{i}", {"i": i})

    def start_reader():
        return subprocess.Popen([sys.executable, str(READER), str(fnode.port), db, ROOT_KEY,
                                 str(out)], stderr=subprocess.PIPE)

    def lines():
        return out.read_bytes().count(b"\n") if out.exists() else 0

    reader = start_reader()
    w = threading.Thread(target=writer)
    w.start()
    try:
        for kill_at in (30, 90, 150):
            wait_for(lambda: lines() >= kill_at, timeout=20, what=f"{kill_at} changes read")
            reader.kill()  # SIGKILL
            reader.wait(timeout=10)
            reader = start_reader()
        w.join(timeout=60)
        assert not w.is_alive()
        expect = feed(fnode, db, limit=10000)["Changes"]
        assert len(expect) == n_writes
        wait_for(lambda: lines() >= n_writes, timeout=20, what="the reader catching up")
    finally:
        reader.kill()
        reader.wait(timeout=10)
    got = [ln.split(" ") for ln in out.read_text().splitlines()]
    assert [g[0] for g in got] == [c["Cursor"] for c in expect]  # nothing missed or repeated
    assert [(g[2], g[3], g[4]) for g in got] == \
        [(c["Id"], c["Stamp"], str(int(c["Deleted"]))) for c in expect]


def test_replicated_ops_appear_in_the_feed(make_node):
    a = make_node(overrides=cluster_overrides(), node_id="a", name="a")
    b = make_node(overrides=cluster_overrides(), node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    ws = WsClient(b, DB, "since=0")
    assert ws.status == 101
    a.api(DB).must_put("items", "from-a", {"v": 1})
    ch = ws.change()
    assert (ch["Collection"], ch["Id"], ch["Deleted"]) == ("items", "from-a", False)
    assert ch["Stamp"] == next(c for c in feed(a, DB)["Changes"])["Stamp"]
    ws.close()


def test_a_pruned_cursor_answers_410_with_where_to_restart(make_node):
    node = make_node(overrides=deep(cluster_overrides(), {"Node": {
        "OperationLogRetentionDays": 0, "OperationLogRetainRecentOperations": 0}}))
    api = node.api(DB)
    for i in range(6):
        api.must_put("items", f"d{i}", {"i": i})
    assert len(feed(node, DB)["Changes"]) == 6
    rows = assert_ok(repl(node, "POST", "/api/replication/operation-log/prune"))
    assert rows[0]["MaxPrunedLogSequence"] == 6
    err = assert_error(changes(node, DB, since="3"), 410, contains="Re-read the documents")
    assert err.startswith("The operation log no longer holds the changes after cursor '3'")
    resp = changes(node, DB, since="0", feed="continuous")
    assert resp.status == 410
    cursor = resp.body["Cursor"]
    assert cursor == "6" and "'6'" in err
    # The cursor at the end of the pruned log is still good, and so is the one it gave; one
    # past the log's end (a database deleted and created again) is refused like a pruned one.
    assert feed(node, DB, since="6")["Changes"] == []
    assert changes(node, DB, since="99").body["Cursor"] == "6"
    api.must_put("items", "after", {"v": 1})
    assert [c["Id"] for c in feed(node, DB, since=cursor)["Changes"]] == ["after"]
    ws = WsClient(node, DB, "since=1")
    gone = ws.change()
    assert gone["Cursor"] == "7" and "Re-read the documents" in gone["Error"]
    op, payload = ws.frame()
    assert op == 8 and struct.unpack(">H", payload[:2])[0] == 4410
    assert payload[2:].decode().endswith("resume from cursor 7")
    ws.close()


def test_a_slow_consumer_is_cut_off_with_a_reason(fnode, db):
    api = fnode.api(db)
    big = {"pad": "x" * 100_000}
    before = fnode.log_text().count("slow consumer was disconnected")
    s = Stream(fnode, db, rcvbuf=4096, since="now", include_docs="true", heartbeat=60000)
    assert s.resp.status == 200
    # The consumer reads nothing more; writes pile up past the kernel's buffers and the cap.
    for i in range(80):
        api.must_put("items", "big", dict(big, i=i))
        if fnode.log_text().count("slow consumer was disconnected") > before:
            break
    wait_for(lambda: fnode.log_text().count("slow consumer was disconnected") > before,
             timeout=10, what="the cut")
    last = None
    for _ in range(10000):
        line = s.line()
        if not line:
            break
        if line.strip():
            last = json.loads(line)
    assert "Node.ChangesFeedMaxBufferBytes" in last["Error"] and last["Cursor"].isdigit()
    s.close()
    # The node is fine and the consumer resumes from its cursor.
    assert feed(fnode, db, since=last["Cursor"])["HasMore"] is False


def test_shutdown_ends_every_subscriber(make_node):
    node = make_node()
    node.api(DB).must_put("items", "a", {"v": 1})
    s = Stream(node, DB, since="now", heartbeat=100)
    assert s.change(skip_heartbeats=False) == b"\n"  # the stream is open and waiting
    ws = WsClient(node, DB, "since=now")
    assert ws.status == 101
    # The longpoll is sent first; a request answered after it means the node has read it.
    poll = http.client.HTTPConnection("127.0.0.1", node.port, timeout=20)
    poll.request("GET", "/api/changes?feed=longpoll&since=now&timeout=60000",
                 headers={"Database": DB, "ApiKey": ROOT_KEY})
    assert feed(node, DB)["LastCursor"] == "1"
    t0 = time.monotonic()
    node.send_signal(signal.SIGTERM)
    resp = poll.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["Changes"] == []
    poll.close()
    assert s.change() == {"LastCursor": "1", "HasMore": False}
    assert s.line() == b""
    s.close()
    op, payload = ws.frame()
    assert op == 8 and struct.unpack(">H", payload[:2])[0] == 1001
    ws.send(payload[:2], opcode=8)  # the closing handshake's answer
    ws.close()
    assert node.stop() == 0
    assert time.monotonic() - t0 < 4


def test_a_slow_websocket_consumer_is_closed_with_a_reason(fnode, db):
    api = fnode.api(db)
    before = fnode.log_text().count("slow consumer was disconnected")
    ws = WsClient(fnode, db, "since=now&include_docs=true", rcvbuf=4096)
    assert ws.status == 101
    big = {"pad": "y" * 100_000}
    for i in range(80):
        api.must_put("items", "big", dict(big, i=i))
        if fnode.log_text().count("slow consumer was disconnected") > before:
            break
    wait_for(lambda: fnode.log_text().count("slow consumer was disconnected") > before,
             timeout=10, what="the cut")
    # Whatever was queued before it, the close frame says why.
    for _ in range(10000):
        op, payload = ws.frame()
        if op == 8:
            break
    assert struct.unpack(">H", payload[:2])[0] == 1008
    assert b"ChangesFeedMaxBufferBytes" in payload[2:]
    ws.close()
