"""GET /livez and /readyz (storage write probe, start-up catch-up, draining) and systemd's
notification protocol (READY, WATCHDOG, RELOADING, STOPPING) on a unix datagram socket given as
NOTIFY_SOCKET."""

import http.client
import os
import signal
import socket
import time

import pytest

from conftest import assert_ok

DB = "ready"


def wait_for(pred, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"{what} not seen within {timeout} s")


def test_live_and_ready_alone(make_node):
    a = make_node()
    live = assert_ok(a.request("GET", "/livez"))
    assert live == {"Status": "Alive", "NodeId": "test-node"}
    ready = assert_ok(a.request("GET", "/readyz"))
    assert ready == {"Status": "Ready", "NodeId": "test-node", "CatchUp": "Done", "Storage": "Ok"}
    assert (a.data_dir / "probe").is_dir()
    # The probe's database is not one of the node's.
    assert a.databases() == []
    # /health keeps the contract.
    assert assert_ok(a.request("GET", "/health")) == {"Status": "Healthy", "NodeId": "test-node"}


def test_not_ready_when_storage_cannot_commit(make_node):
    a = make_node(start=False)
    a.data_dir.mkdir(parents=True)
    (a.data_dir / "probe").write_text("a file where the probe's directory belongs")
    a.start()
    r = a.request("GET", "/readyz")
    assert r.status == 503, r
    assert r.body["Status"] == "NotReady"
    assert r.body["Reason"] == "storage does not commit a write" and r.body["Storage"], r.body
    assert a.request("GET", "/livez").status == 200


def test_catch_up_holds_readiness_until_it_times_out(make_node):
    # A peer that accepts connections and never answers: the link neither succeeds nor finds
    # it unreachable before Node.ReadinessCatchUpTimeoutSeconds.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        port = silent.getsockname()[1]
        a = make_node(overrides={"Node": {"ReplicationApiKey": "k", "ReplicationTimeoutSeconds": 30,
                                          "ReadinessCatchUpTimeoutSeconds": 2}})
        a.api(DB).must_put("c", "x", {"v": 1})
        a.stop()
        a.config["Node"]["SeedPeers"] = [{"NodeId": "silent",
                                          "BaseUrl": f"http://127.0.0.1:{port}"}]
        a.write_config()
        started = time.monotonic()
        a.start()
        r = a.request("GET", "/readyz")
        assert r.status == 503, r
        assert r.body["Reason"] == f"start-up catch-up: catching up '{DB}' with silent", r.body

        def ready():
            r = a.request("GET", "/readyz")
            return r.body if r.status == 200 else None
        body = wait_for(ready, "/readyz 200 after the catch-up timeout")
        assert body["CatchUp"] == "TimedOut", body
        assert time.monotonic() - started >= 1.5
        assert "start-up catch-up timed out" in a.log_text()
    finally:
        silent.close()


def test_draining_after_sigterm(make_node):
    a = make_node(overrides={"Node": {"ShutdownTimeoutSeconds": 5, "LogLevel": "info"}})
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
    try:
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        a.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM received" in a.log_text(), "the shutdown to begin")
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 503 and "draining" in body, body
    finally:
        conn.close()
    assert a.wait_exit() == 0


def test_sd_notify(make_node, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    seen = []

    def receive_until(pred, what, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.extend(sock.recv(4096).decode().split("\n"))
            except socket.timeout:
                pass
            if pred():
                return
        pytest.fail(f"{what} not notified within {timeout} s; got {seen}")
    try:
        a = make_node(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        receive_until(lambda: "READY=1" in seen, "READY=1")
        assert any(m.startswith("STATUS=ready") for m in seen), seen
        receive_until(lambda: seen.count("WATCHDOG=1") >= 3, "WATCHDOG=1 every 100 ms")
        seen.clear()
        a.send_signal(signal.SIGHUP)
        receive_until(lambda: "RELOADING=1" in seen and "READY=1" in seen, "a reload")
        a.send_signal(signal.SIGTERM)
        receive_until(lambda: "STOPPING=1" in seen, "STOPPING=1")
        assert a.wait_exit() == 0
    finally:
        sock.close()
        os.unlink(path)
