"""Node.Tls against real litedistd processes: HTTPS and WSS on the listener, client certificates,
replication between https:// peers (push/pull, and the WebSocket hint both received from a
client and sent by a node), peers whose certificate does not verify or that do not answer, and
start-up refusing bad files. The CAs and certificates are made here with the openssl command
line, in a temporary directory, when the module starts."""

import datetime
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import ROOT_KEY, assert_ok, free_port
from test_replication import wait_for, ws_open, ws_recv_text, ws_send_text

REPL_KEY = "tls-cluster-key"
DB = "tlsdb"

# ------------------------------------------------------------------------------------------------
# A throw-away PKI: two CAs; node and client certificates from the first, a rogue node
# certificate from the second
# ------------------------------------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


class Pki:
    def __init__(self, d):
        self.dir = d
        self.ca = self._ca("ca", "litedist test CA")
        self.rogue_ca = self._ca("rogue-ca", "someone else's CA")
        # Nodes use one certificate for both ends: served, and presented when dialling peers.
        self.node = self._leaf("node", "ca", "subjectAltName=IP:127.0.0.1\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n")
        self.client = self._leaf("client", "ca", "extendedKeyUsage=clientAuth\n")
        self.rogue = self._leaf("rogue", "rogue-ca", "subjectAltName=IP:127.0.0.1\n"
                                "extendedKeyUsage=serverAuth,clientAuth\n")

    def path(self, name):
        return str(self.dir / name)

    def _ca(self, name, cn):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={cn}", cwd=self.dir)
        return self.path(f"{name}.pem")

    def _leaf(self, name, ca, ext):
        (self.dir / f"{name}.ext").write_text(ext)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                f"{name}.ext", cwd=self.dir)
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test certificates: "
                    "scripts/deps.sh --test installs it")
    return Pki(tmp_path_factory.mktemp("pki"))


def client_context(pki, with_cert=False, cafile=None):
    ctx = ssl.create_default_context(cafile=cafile or pki.ca)
    if with_cert:
        ctx.load_cert_chain(*pki.client)
    return ctx


def tls_section(pki, cert=None, client_ca=False):
    cert, key = cert or pki.node
    t = {"CertificateFile": cert, "KeyFile": key, "PeerCaFile": pki.ca}
    if client_ca:
        t["ClientCaFile"] = pki.ca
    return t


def tls_node(make_node, pki, node_id="a", tls=None, overrides=None, env=None, client_cert=True,
             cafile=None, start=True):
    """A started node serving HTTPS; the harness talks to it trusting the test CA (or cafile),
    with the client certificate, which a node with ClientCaFile requires."""
    cfg = {"Node": {"ReplicationApiKey": REPL_KEY, "AntiEntropyIntervalSeconds": 3600,
                    "ReplicationTimeoutSeconds": 2, "PeerProbeIntervalSeconds": 1}}
    if tls is not None:
        cfg["Node"]["Tls"] = tls
    for k, v in (overrides or {}).items():
        cfg["Node"][k] = v
    n = make_node(overrides=cfg, node_id=node_id, name=node_id, env=env, start=False)
    n.ssl_context = client_context(pki, with_cert=client_cert, cafile=cafile)
    return n.start() if start else n


def repl(node, method, path, body=None, db=None):
    h = {"ReplicationApiKey": REPL_KEY}
    if db is not None:
        h["Database"] = db
    return node.request(method, path, body=body, headers=h)


def add_peer(node, peer_id, url):
    assert_ok(repl(node, "POST", "/api/cluster/peers",
                   {"NodeId": peer_id, "BaseUrl": url, "IsActive": True}))


def peer_status(node, peer_id, db=DB):
    for d in assert_ok(repl(node, "GET", "/api/replication/status"))["Databases"]:
        if d["DatabaseName"] == db:
            for p in d["Peers"]:
                if p["PeerNodeId"] == peer_id:
                    return p
    return None


def has_doc(node, coll, doc_id, db=DB):
    return node.api(db).get(coll, doc_id).status == 200


# ------------------------------------------------------------------------------------------------
# The listener
# ------------------------------------------------------------------------------------------------

def test_https_health_and_document_round_trip(make_node, pki):
    # The section comes from the environment, as every other key can.
    cert, key = pki.node
    env = {"LITEDIST_Node__Tls__CertificateFile": cert, "LITEDIST_Node__Tls__KeyFile": key}
    a = tls_node(make_node, pki, env=env, client_cert=False)
    r = assert_ok(a.request("GET", "/health"))
    assert r["Status"] == "Healthy"
    api = a.api(DB)
    api.must_put("notes", "n1", {"Text": "over TLS", "N": 1})
    assert api.must_get("notes", "n1")["Text"] == "over TLS"
    assert "listening on https://127.0.0.1:" in a.log_text()


def test_plain_http_to_the_tls_port_fails(make_node, pki):
    a = tls_node(make_node, pki, tls=tls_section(pki), client_cert=False)
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/health")
            conn.getresponse().read()
    finally:
        conn.close()
    # A client that does not trust the node's CA is refused too.
    ctx = ssl.create_default_context()
    conn = http.client.HTTPSConnection("127.0.0.1", a.port, timeout=5, context=ctx)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            conn.request("GET", "/health")
    finally:
        conn.close()
    assert assert_ok(a.request("GET", "/health"))["Status"] == "Healthy"


def test_tls12_with_forward_secrecy_or_tls13_only(make_node, pki):
    a = tls_node(make_node, pki, tls=tls_section(pki), client_cert=False)

    def handshake(ctx):
        with socket.create_connection(("127.0.0.1", a.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return s.version(), s.cipher()[0]

    assert handshake(client_context(pki))[0] == "TLSv1.3"
    tls12 = client_context(pki)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    version, cipher = handshake(tls12)
    assert version == "TLSv1.2" and cipher.startswith("ECDHE-") and "GCM" in cipher, cipher
    static_rsa = client_context(pki)
    static_rsa.maximum_version = ssl.TLSVersion.TLSv1_2
    static_rsa.set_ciphers("AES128-SHA:AES256-GCM-SHA384")  # no forward secrecy
    with pytest.raises(ssl.SSLError):
        handshake(static_rsa)


def test_client_certificate_required_with_client_ca(make_node, pki):
    a = tls_node(make_node, pki, tls=tls_section(pki, client_ca=True))  # harness has a cert
    assert assert_ok(a.request("GET", "/health"))["Status"] == "Healthy"
    # No certificate, and one from a CA the node does not trust: both refused.
    rogue = client_context(pki)
    rogue.load_cert_chain(*pki.rogue)
    for ctx in (client_context(pki, with_cert=False), rogue):
        conn = http.client.HTTPSConnection("127.0.0.1", a.port, timeout=5, context=ctx)
        try:
            # TLS 1.3 finishes the client's side of the handshake before the server has checked
            # the certificate, so the refusal may surface at the handshake or at the first read.
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                conn.request("GET", "/health")
                conn.getresponse().read()
        finally:
            conn.close()
    assert assert_ok(a.request("GET", "/health"))["Status"] == "Healthy"
    assert "client certificates required" in a.log_text()


# ------------------------------------------------------------------------------------------------
# Replication between https:// peers
# ------------------------------------------------------------------------------------------------

def test_tls_nodes_replicate_both_ways_with_mutual_tls(make_node, pki):
    # Both nodes require client certificates: each dials the other with its own certificate.
    a = tls_node(make_node, pki, "a", tls=tls_section(pki, client_ca=True))
    b = tls_node(make_node, pki, "b", tls=tls_section(pki, client_ca=True))
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    add_peer(b, "a", f"https://127.0.0.1:{a.port}")
    a.api(DB).must_put("c", "from-a", {"v": 1})
    b.api(DB).must_put("c", "from-b", {"v": 2})
    wait_for(lambda: has_doc(b, "c", "from-a"), what="a's write on b")
    wait_for(lambda: has_doc(a, "c", "from-b"), what="b's write on a")
    assert b.api(DB).must_get("c", "from-a")["v"] == 1
    p = wait_for(lambda: (peer_status(a, "b") or {}).get("LastSuccessUtc") and peer_status(a, "b"),
                 what="a's link to b reported")
    assert p["IsOnline"] is True and not p["LastError"]

    # The dashboard probes dial the peer over HTTPS and WSS (the WebSocket client side).
    def probed_online():
        nodes = assert_ok(a.request("GET", "/dashboard/api/overview",
                                    headers={"ApiKey": "root"}))["Nodes"]
        peer = [n for n in nodes if n["NodeId"] == "b"]
        return peer and peer[0]["HttpStatus"] == "Online" and \
            peer[0]["WebSocketStatus"] == "Online" and peer[0]
    wait_for(probed_online, what="b probed online over https and wss")


def test_wss_sync_request_makes_the_receiver_pull_over_https(make_node, pki):
    a = tls_node(make_node, pki, "a", tls=tls_section(pki, client_ca=True))
    b = tls_node(make_node, pki, "b", tls=tls_section(pki, client_ca=True),
                 overrides={"AutoRegisterPeers": False})
    # b knows a; a does not know b (b does not introduce itself), so nothing of a reaches b
    # unless b pulls.
    add_peer(b, "a", f"https://127.0.0.1:{a.port}")
    b.api(DB).must_put("c", "seed", {"v": 0})  # b's first cycle with a runs now
    wait_for(lambda: (peer_status(b, "a") or {}).get("LastSuccessUtc"), what="b's first cycle")
    first = peer_status(b, "a")["LastAttemptUtc"]
    a.api(DB).must_put("c", "x", {"v": 1})
    # No cycle of b with a since its first: no trigger but the hint brings x.
    assert peer_status(b, "a")["LastAttemptUtc"] == first
    assert not has_doc(b, "c", "x")
    s, status_line = ws_open(b.port, key=REPL_KEY, ssl_context=client_context(pki, with_cert=True))
    try:
        assert b" 101 " in status_line
        ws_send_text(s, json.dumps({"type": "sync-request", "sourceNodeId": "a",
                                    "database": DB, "replicationApiKey": REPL_KEY}))
        assert ws_recv_text(s) == {"accepted": True, "error": None}
        wait_for(lambda: has_doc(b, "c", "x"), what="the hint's pull")
        assert peer_status(b, "a")["LastAttemptUtc"] > first  # the cycle the hint began
    finally:
        s.close()


def utc(text):
    return datetime.datetime.strptime(text.rstrip("Z")[:23], "%Y-%m-%dT%H:%M:%S.%f")


def test_wss_hint_from_a_node_cuts_the_peers_backoff_short(make_node, pki):
    # b's link to a fails while a is down and backs off (1 s, 2 s, 4 s, ...). Once a is up and
    # pushes to b, a's sync-request hint over WSS makes b cycle with a at once: b's link
    # succeeds before the retry it had scheduled, and nothing else forces a cycle (no sweep,
    # and commits on b never skip a backoff).
    a = tls_node(make_node, pki, "a", tls=tls_section(pki, client_ca=True), start=False)
    b = tls_node(make_node, pki, "b", tls=tls_section(pki, client_ca=True), overrides={
        "SeedPeers": [{"NodeId": "a", "BaseUrl": f"https://127.0.0.1:{a.port}",
                       "IsActive": True}]})
    b.api(DB).must_put("c", "from-b", {"v": 2})
    p = wait_for(lambda: ((peer_status(b, "a") or {}).get("ConsecutiveFailures") or 0) >= 3
                 and peer_status(b, "a"), what="b backing off from a", timeout=15)
    scheduled = utc(p["NextRetryUtc"])
    a.start()
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    a.api(DB).must_put("c", "from-a", {"v": 1})  # a pushes to b, then hints b
    p = wait_for(lambda: (peer_status(b, "a") or {}).get("ConsecutiveFailures") == 0
                 and peer_status(b, "a"), what="b's link to a recovering", timeout=15)
    assert utc(p["LastSuccessUtc"]) < scheduled, (p, scheduled)
    wait_for(lambda: has_doc(a, "c", "from-b"), what="b's write on a")
    assert has_doc(b, "c", "from-a")


def test_untrusted_peer_is_not_replicated_with(make_node, pki):
    a = tls_node(make_node, pki, "a", tls=tls_section(pki))
    # rogue's certificate comes from a CA that a does not trust.
    rogue = tls_node(make_node, pki, "rogue", tls=tls_section(pki, cert=pki.rogue),
                     cafile=pki.rogue_ca)
    add_peer(a, "rogue", f"https://127.0.0.1:{rogue.port}")
    a.api(DB).must_put("c", "secret", {"v": 1})

    def failed():
        p = peer_status(a, "rogue")
        return p and p["LastError"] and p

    p = wait_for(failed, what="a failed attempt reported")
    assert "TLS certificate verification failed" in p["LastError"], p
    assert p["IsOnline"] is False and p["ConsecutiveFailures"] >= 1 and p["NextRetryUtc"]
    assert not has_doc(rogue, "c", "secret")

    # A trusted certificate for another address fails the same way (host check).
    b = tls_node(make_node, pki, "b", tls=tls_section(pki))
    add_peer(a, "b", f"https://localhost:{b.port}")
    p = wait_for(lambda: (peer_status(a, "b") or {}).get("LastError") and peer_status(a, "b"),
                 what="the host mismatch reported")
    assert "TLS certificate verification failed" in p["LastError"], p
    assert not has_doc(b, "c", "secret")


def test_plain_node_dials_https_peers_with_the_system_trust_store(make_node, pki):
    """No Node.Tls at all: the client context (system CAs) is made at the first https:// dial.
    The test CA is not in the system store, so the peer must fail verification, not be
    reached without it."""
    a = make_node(overrides={"Node": {"ReplicationApiKey": REPL_KEY,  # plain HTTP, no TLS files
                                      "ReplicationTimeoutSeconds": 2}}, node_id="a", name="a")
    b = tls_node(make_node, pki, "b", tls=tls_section(pki))
    add_peer(a, "b", f"https://127.0.0.1:{b.port}")
    a.api(DB).must_put("c", "x", {"v": 1})
    p = wait_for(lambda: (peer_status(a, "b") or {}).get("LastError") and peer_status(a, "b"),
                 what="a failed attempt reported")
    assert "TLS certificate verification failed" in p["LastError"], p
    assert not has_doc(b, "c", "x")


def test_unreachable_https_peer_backs_off_and_retries(make_node, pki):
    a = tls_node(make_node, pki, "a", tls=tls_section(pki))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    add_peer(a, "gone", f"https://127.0.0.1:{port}")
    a.api(DB).must_put("c", "x", {"v": 1})
    # The first retry comes after about 1 s: each attempt opens (and frees) a TLS connection.
    p = wait_for(lambda: ((peer_status(a, "gone") or {}).get("ConsecutiveFailures") or 0) >= 2
                 and peer_status(a, "gone"), what="two failed attempts")
    assert p["IsOnline"] is False and p["LastError"] and p["NextRetryUtc"]
    assert "TLS" not in p["LastError"], p  # refused before any handshake
    assert assert_ok(a.request("GET", "/health"))["Status"] == "Healthy"


# ------------------------------------------------------------------------------------------------
# Start-up
# ------------------------------------------------------------------------------------------------

def start_fails(make_node, tls, needle):
    n = make_node(overrides={"Node": {"Tls": tls}}, start=False)
    n.spawn()
    code = n.wait_exit(timeout=10)
    assert code not in (None, 0), n.log_tail()
    log = n.log_text()
    assert needle in log, log
    assert "listening on" not in log
    assert not port_open(n.port)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_startup_fails_cleanly_with_bad_files(make_node, pki, tmp_path):
    cert, key = pki.node
    missing = str(tmp_path / "nope.pem")
    start_fails(make_node, {"CertificateFile": missing, "KeyFile": key},
                f"Node.Tls.CertificateFile {missing}: No such file or directory")
    start_fails(make_node, {"CertificateFile": cert, "KeyFile": missing},
                f"Node.Tls.KeyFile {missing}: No such file or directory")
    # The rogue key does not belong to the node certificate.
    start_fails(make_node, {"CertificateFile": cert, "KeyFile": pki.rogue[1]},
                f"Node.Tls.KeyFile {pki.rogue[1]}")
    not_pem = tmp_path / "garbage.pem"
    not_pem.write_text("not a certificate\n")
    start_fails(make_node, {"CertificateFile": str(not_pem), "KeyFile": key},
                f"Node.Tls.CertificateFile {not_pem}: not a PEM certificate chain")
    start_fails(make_node, {"CertificateFile": cert, "KeyFile": key, "ClientCaFile": missing},
                f"Node.Tls.ClientCaFile {missing}")
    start_fails(make_node, {"PeerCaFile": missing}, f"Node.Tls.PeerCaFile {missing}")


def test_the_tls_listener_counts_connections_and_cuts_slow_requests(make_node, pki):
    """The HTTPS listener's connections go through the same accounting as plain ones: a client
    trickling its headers over TLS is cut at Node.RequestReadTimeoutSeconds, and the open
    connections are counted (and freed)."""
    a = tls_node(make_node, pki, "a", tls=tls_section(pki, client_ca=True),
                 overrides={"RequestReadTimeoutSeconds": 1})
    ctx = client_context(pki, with_cert=True)

    def open_count():
        r = a.request("GET", "/dashboard/api/overview", headers={"ApiKey": "root"})
        return assert_ok(r)["ClientConnections"]["Open"]
    base = open_count()
    raw = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        wait_for(lambda: open_count() == base + 1, what="the TLS connection counted")
        t0 = time.monotonic()
        closed = False
        for _ in range(40):  # one header byte every 0.1 s: the deadline cuts it, not idleness
            try:
                s.sendall(b"X")
                s.settimeout(0.1)
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                closed = True
                break
        assert closed and time.monotonic() - t0 < 3.5, "a trickling TLS client was not cut"
    finally:
        s.close()
    wait_for(lambda: open_count() == base, what="the TLS connection freed")


# ------------------------------------------------------------------------------------------------
# The RESP listener (docs/resp.md) speaks TLS with Node.Tls
# ------------------------------------------------------------------------------------------------

def test_resp_listener_speaks_tls_with_the_nodes_certificate(make_node, pki):
    import redis  # python3-redis, as tests/system/test_resp.py

    resp_port = free_port()
    tls = tls_section(pki, client_ca=True)
    n = make_node(overrides={"Node": {"Tls": tls}, "Resp": {"Enabled": True, "Port": resp_port}},
                  start=False)
    n.ssl_context = client_context(pki, with_cert=True)
    n.start()
    assert f"RESP (Redis protocol) listening on 127.0.0.1:{resp_port} over TLS" in n.log_text()
    cert, key = pki.client
    r = redis.Redis(port=resp_port, username=DB, password=ROOT_KEY, ssl=True,
                    ssl_ca_certs=pki.ca, ssl_certfile=cert, ssl_keyfile=key,
                    decode_responses=True, socket_timeout=10)
    assert r.set("over-tls", "yes", ex=60) is True and r.get("over-tls") == "yes"
    assert assert_ok(n.api(DB).call("GET", "/api/cache/over-tls"))["Value"] == "yes"
    r.close()
    # Without a client certificate (ClientCaFile is set) the handshake fails.
    bare = redis.Redis(port=resp_port, username=DB, password=ROOT_KEY, ssl=True,
                       ssl_ca_certs=pki.ca, socket_timeout=10)
    with pytest.raises(redis.ConnectionError):
        bare.ping()
    # Plain RESP to the TLS port gets no RESP answer.
    s = socket.create_connection(("127.0.0.1", resp_port), timeout=5)
    try:
        s.sendall(b"PING\r\n")
        s.settimeout(5)
        try:
            got = s.recv(100)
        except (socket.timeout, ConnectionResetError):
            got = b""
        assert not got.startswith(b"+PONG") and not got.startswith(b"-")
    finally:
        s.close()
