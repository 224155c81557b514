"""TLS transport between real litedistd processes: large answers that close cleanly
(close_notify) or stay kept alive, https:// peers replicating over pooled connections that
resume their TLS session, and TLS refusals reported with their cause on both sides (the dialling
node's replication status and dashboard, the refusing node's log)."""

import json
import socket
import ssl
import time

from conftest import assert_ok
from test_replication import wait_for
from test_tls import (DB, REPL_KEY, add_peer, client_context, has_doc, peer_status, pki,  # noqa: F401
                      repl, tls_node, tls_section)

BIG_DOCS = 50
BIG_VALUE = 100 * 1024  # 50 x 100 KB: one pull answer of about 5 MB


def fill(node, prefix, docs=BIG_DOCS):
    api = node.api(DB)
    for i in range(docs):
        api.must_put("big", f"{prefix}{i}", {"v": chr(97 + i % 26) * BIG_VALUE})


def pull_body():
    return json.dumps({"ProtocolVersion": 1, "RequestingNodeId": "harness",
                       "AfterLogSequence": 0, "BatchSize": 1000,
                       "VersionVector": {}}).encode()


def http_request(close):
    body = pull_body()
    return (f"POST /api/replication/pull HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"ReplicationApiKey: {REPL_KEY}\r\nDatabase: {DB}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode() + body


def read_answer(s):
    """One HTTP answer from s (Content-Length framing): (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "connection closed before the answer's headers"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = [int(v) for k, v in (ln.split(":", 1) for ln in lines[1:])
              if k.strip().lower() == "content-length"][0]
    while len(rest) < length:
        chunk = s.recv(min(1 << 20, length - len(rest)))
        assert chunk, f"connection closed after {len(rest)} of {length} bytes"
        rest += chunk
    return status, rest


def test_large_pull_answers_close_cleanly_or_stay_alive(make_node, pki):
    """100 pulls of a ~5 MB answer over mutual TLS: every other one asks Connection: close and
    must end with the server's close_notify (Python raises SSLEOFError on a ragged EOF when
    suppress_ragged_eofs is off); the rest share one kept-alive connection."""
    a = tls_node(make_node, pki, "a", tls=tls_section(pki, client_ca=True),
                 overrides={"ReplicationBatchBytes": 8 * 1024 * 1024})
    fill(a, "d")
    ctx = client_context(pki, with_cert=True)
    sizes = set()
    with socket.create_connection(("127.0.0.1", a.port), timeout=10) as raw_keep, \
            ctx.wrap_socket(raw_keep, server_hostname="127.0.0.1") as keep:
        for i in range(100):
            if i % 2:
                keep.sendall(http_request(close=False))
                status, body = read_answer(keep)
            else:
                with socket.create_connection(("127.0.0.1", a.port), timeout=10) as raw, \
                        ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                        suppress_ragged_eofs=False) as s:
                    s.sendall(http_request(close=True))
                    status, body = read_answer(s)
                    assert s.recv(1) == b""  # close_notify, not a bare FIN
            assert status == 200, body[:200]
            sizes.add(len(body))
            assert len(json.loads(body)["Operations"]) == BIG_DOCS
    assert len(sizes) == 1 and sizes.pop() > 5_000_000


def handshakes(n):
    return assert_ok(repl(n, "GET", "/api/replication/status"))["TlsClientHandshakes"]


def test_large_replication_both_ways_over_pooled_mutual_tls(make_node, pki):
    """Two mutual-TLS nodes, each with ~1 MB the other lacks, replicate both ways without a
    single failed call; afterwards steady replication reuses the connections: no new full
    handshake for 20 more writes."""
    # No dashboard probes: their WebSocket health-checks connect anew (resumed) every time.
    cfg = {"ReplicationBatchBytes": 8 * 1024 * 1024, "ReplicationTimeoutSeconds": 30,
           "MaxBodyBytes": 8 * 1024 * 1024, "PeerProbeIntervalSeconds": 0}
    a = tls_node(make_node, pki, "a", tls=tls_section(pki, client_ca=True), overrides=cfg)
    b = tls_node(make_node, pki, "b", tls=tls_section(pki, client_ca=True), overrides=cfg)
    fill(a, "a", 10)
    fill(b, "b", 10)
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    add_peer(b, "a", f"https://127.0.0.1:{a.port}")
    wait_for(lambda: has_doc(b, "big", "a9") and has_doc(a, "big", "b9"), timeout=30,
             what="1 MB each way")
    for n, peer in ((a, "b"), (b, "a")):
        p = wait_for(lambda: (peer_status(n, peer) or {}).get("LastSuccessUtc") and
                     peer_status(n, peer), what="link reported")
        assert p["ConsecutiveFailures"] == 0 and not p["LastError"], p

    before = handshakes(a)
    assert before["Full"] >= 1
    for i in range(20):
        a.api(DB).must_put("c", f"steady{i}", {"v": i})
        wait_for(lambda: has_doc(b, "c", f"steady{i}"), what=f"steady write {i} on b")
    after = handshakes(a)
    assert after["Full"] == before["Full"], (before, after)
    # Replication calls and probes reuse their connections: at most a few resumptions.
    assert after["Resumed"] - before["Resumed"] <= 3, (before, after)
    p = peer_status(a, "b")
    assert p["ConsecutiveFailures"] == 0 and not p["LastError"], p


def test_connections_used_once_per_sweep_stay_open_across_sweeps(make_node, pki):
    """Steady replication makes no TLS handshake after warm-up, not even a resumed one: the
    calls made once per anti-entropy sweep (the sweep's pull, discovery) find their connection
    still open at the next sweep. Sweeps every 2 s here, while both sides would close an idle
    connection after 1 s (ReplicationTimeoutSeconds on the client, RequestTimeoutSeconds on the
    server): only the peer connection's longer idle allowance keeps them."""
    cfg = {"AntiEntropyIntervalSeconds": 2, "ReplicationTimeoutSeconds": 1,
           "RequestTimeoutSeconds": 1, "PeerProbeIntervalSeconds": 0}
    tls = tls_section(pki, client_ca=True)
    a = tls_node(make_node, pki, "a", tls=tls, overrides=cfg)
    b = tls_node(make_node, pki, "b", tls=tls, overrides=cfg)
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    add_peer(b, "a", f"https://127.0.0.1:{a.port}")
    a.api(DB).must_put("c", "first", {"v": 0})
    wait_for(lambda: has_doc(b, "c", "first"), what="the first write on b")

    def total(n):
        h = handshakes(n)
        return h["Full"] + h["Resumed"]

    def steady(seconds, i):
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            a.api(DB).must_put("c", f"s{i % 10}", {"v": i})
            i += 1
            time.sleep(0.25)
        return i

    # Warm-up: steady writes until a whole sweep passes without a handshake, so that every kind
    # of call has its connection (pushes, sweeps, discovery, and the hint WebSocket, dialled at
    # the first push the peer accepts: the first write may reach b by b's pull instead).
    i, seen = 0, [total(a), total(b)]
    for _ in range(8):  # at most 8 x 2.5 s
        i = steady(2.5, i)
        now = [total(a), total(b)]
        if now == seen:
            break
        seen = now
    else:
        raise AssertionError(f"handshakes still growing after 20 s of warm-up: {seen}")
    before = [total(a), total(b)]
    i = steady(7, i)  # three more sweeps
    wait_for(lambda: has_doc(b, "c", "s0"), what="the steady writes on b")
    after = [total(a), total(b)]
    assert after == before, (before, after)
    for n, peer in ((a, "b"), (b, "a")):
        link_clean(n, peer)


def test_probe_connections_resume_their_tls_sessions(make_node, pki):
    """The dashboard's probes (every second here) open a WebSocket per health-check: each such
    connection must resume the TLS session, which OpenSSL allows only if the previous one ended
    with a close_notify; a full handshake every probe was the symptom."""
    tls = tls_section(pki, client_ca=True)
    a = tls_node(make_node, pki, "a", tls=tls)
    b = tls_node(make_node, pki, "b", tls=tls)
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    warm = wait_for(lambda: handshakes(a)["Resumed"] >= 2 and handshakes(a), timeout=15,
                    what="the first resumed probes")
    later = wait_for(lambda: handshakes(a)["Resumed"] >= warm["Resumed"] + 4 and handshakes(a),
                     timeout=15, what="four more resumed probes")
    assert later["Full"] == warm["Full"], (warm, later)


MIB = 1024 * 1024


def link_clean(node, peer):
    p = peer_status(node, peer)
    assert p and p["ConsecutiveFailures"] == 0 and not p["LastError"], p


def test_large_pushes_over_tls_in_one_piece_or_split_by_the_peers_limit(make_node, pki):
    """Backlogs of about 5 MB pushed over mutual TLS: from a (ReplicationBatchBytes 8 MiB) in one
    push to b (MaxBodyBytes 8 MiB); from d in pushes of the default ReplicationBatchBytes, 4 MiB,
    to b; and from a to c, whose MaxBodyBytes is 1 MiB: c's 413 must reach a, which splits the
    push. A body past the listener's guard (twice MaxBodyBytes) used to be answered and closed
    while the sender was still writing, so over TLS the sender saw a write error, never the 413,
    and failed the same push forever."""
    tls = tls_section(pki, client_ca=True)
    slow = {"ReplicationTimeoutSeconds": 30}
    a = tls_node(make_node, pki, "a", tls=tls,
                 overrides=dict(slow, ReplicationBatchBytes=8 * MIB, MaxBodyBytes=8 * MIB))
    b = tls_node(make_node, pki, "b", tls=tls, overrides=dict(slow, MaxBodyBytes=8 * MIB))
    # c learns nothing by itself (no introduction, so no link back to a): a's pushes are what
    # must reach it, split by c's 413.
    c = tls_node(make_node, pki, "c", tls=tls,
                 overrides=dict(slow, MaxBodyBytes=MIB, AutoRegisterPeers=False))
    d = tls_node(make_node, pki, "d", tls=tls, overrides=dict(slow, MaxBodyBytes=8 * MIB))
    fill(a, "p")
    fill(d, "q")
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    add_peer(a, "c", f"https://127.0.0.1:{c.port}")
    add_peer(d, "b", f"https://127.0.0.1:{b.port}")
    last = BIG_DOCS - 1
    for n, doc in ((b, f"p{last}"), (b, f"q{last}"), (c, f"p{last}")):
        wait_for(lambda: has_doc(n, "big", doc), timeout=60, what=f"{doc} on {n.name}")
    for n, peer in ((a, "b"), (a, "c"), (d, "b")):
        wait_for(lambda: (peer_status(n, peer) or {}).get("LastSuccessUtc"), what="link reported")
        link_clean(n, peer)
    pushes = [ln for ln in b.log_text().splitlines() if "POST /api/replication/push " in ln]
    assert pushes and all("POST /api/replication/push 200 " in ln for ln in pushes), pushes
    assert "POST /api/replication/push 413 " in c.log_text()  # the split reached a
    # Operations apply in log order: with the last one there, all are.
    assert has_doc(b, "big", "p0") and has_doc(b, "big", "q0") and has_doc(c, "big", "p0")


# ------------------------------------------------------------------------------------------------
# Refusals, reported with their cause on both sides
# ------------------------------------------------------------------------------------------------

def overview_peer(node, peer_id):
    nodes = assert_ok(node.request("GET", "/dashboard/api/overview",
                                   headers={"ApiKey": "root"}))["Nodes"]
    return next((n for n in nodes if n["NodeId"] == peer_id), None)


def failed_link(node, peer_id):
    p = peer_status(node, peer_id)
    return p and p["LastError"] and p


def test_missing_client_certificate_is_named_on_both_sides(make_node, pki):
    b = tls_node(make_node, pki, "b", tls=tls_section(pki, client_ca=True))
    # a verifies b's certificate but has none of its own to present (it serves plain HTTP).
    a = make_node(overrides={"Node": {"ReplicationApiKey": REPL_KEY, "ReplicationTimeoutSeconds": 2,
                                      "PeerProbeIntervalSeconds": 1,
                                      "Tls": {"PeerCaFile": pki.ca}}}, node_id="a", name="a")
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    a.api(DB).must_put("c", "x", {"v": 1})
    p = wait_for(lambda: failed_link(a, "b"), what="the refusal reported")
    assert ("requires a client certificate and this node sent none" in p["LastError"] or
            "did it refuse this node's client certificate?" in p["LastError"]), p
    wait_for(lambda: "no client certificate" in b.log_text(), what="b's log")
    assert "WARN" in [ln for ln in b.log_text().splitlines() if "no client certificate" in ln][0]
    peer = wait_for(lambda: (overview_peer(a, "b") or {}).get("Error") and overview_peer(a, "b"),
                    what="the dashboard's probe error")
    assert "client certificate" in json.dumps(peer), peer


def test_untrusted_client_certificate_is_named_on_both_sides(make_node, pki):
    b = tls_node(make_node, pki, "b", tls=tls_section(pki, client_ca=True))
    # a's own certificate comes from a CA that b does not trust; a trusts b's.
    rogue = dict(tls_section(pki, cert=pki.rogue), PeerCaFile=pki.ca)
    a = tls_node(make_node, pki, "a", tls=rogue, cafile=pki.rogue_ca, client_cert=False)
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    a.api(DB).must_put("c", "x", {"v": 1})
    p = wait_for(lambda: failed_link(a, "b"), what="the refusal reported")
    # The alert (unknown ca) when it arrives before the connection closes, else the hint.
    assert ("the peer refused this node's certificate" in p["LastError"] and
            "unknown ca" in p["LastError"] or
            "did it refuse this node's client certificate?" in p["LastError"]), p
    wait_for(lambda: "its client certificate did not verify" in b.log_text(), what="b's log")


def test_plain_http_peer_at_a_tls_port_is_named_on_both_sides(make_node, pki):
    b = tls_node(make_node, pki, "b", tls=tls_section(pki))
    a = make_node(overrides={"Node": {"ReplicationApiKey": REPL_KEY,
                                      "ReplicationTimeoutSeconds": 2,
                                      "PeerProbeIntervalSeconds": 1}}, node_id="a", name="a")
    add_peer(a, "b", f"http://127.0.0.1:{b.port}")
    a.api(DB).must_put("c", "x", {"v": 1})
    p = wait_for(lambda: failed_link(a, "b"), what="the failure reported")
    assert "a TLS port? then its BaseUrl is https://" in p["LastError"], p
    wait_for(lambda: "plain HTTP on the TLS port" in b.log_text(), what="b's log")
    peer = wait_for(lambda: (overview_peer(a, "b") or {}).get("Error") and overview_peer(a, "b"),
                    what="the dashboard's probe error")
    assert "https://" in peer["Error"], peer
