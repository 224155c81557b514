"""SIGHUP: API keys and the TLS certificate reloaded from the config file without dropping open
connections; a failed reload keeps the old ones and says why. litedistd --check-config."""

import hashlib
import http.client
import json
import shutil
import signal
import ssl
import subprocess
import time

import pytest

from conftest import ROOT_KEY, api_key_entry, run_litedistd

DB = "rl"
ALL = ["ADD_DB", "READ_DOCUMENT", "WRITE_DOCUMENT"]


def wait_for(pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} not seen within {timeout} s")


def status_with(node, key):
    return node.request("GET", "/api/documents/c/x",
                        headers={"Database": DB, "ApiKey": key}).status


def keep_alive_get(conn, key):
    conn.request("GET", "/api/documents/c/x", headers={"Database": DB, "ApiKey": key})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def test_sighup_swaps_api_keys_and_keeps_connections(make_node):
    a = make_node(keys=[api_key_entry("old-key", ALL, name="old-app")],
                  overrides={"Node": {"LogLevel": "info"}})
    a.api(DB).must_put("c", "x", {"v": 1})
    assert status_with(a, "old-key") == 200 and status_with(a, "new-key") == 401
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
    try:
        assert keep_alive_get(conn, "old-key") == 200
        a.config["Auth"]["ApiKeys"] = [api_key_entry("new-key", ALL, name="new-app")]
        a.config["Node"]["ReplicationApiKey"] = "new-cluster-key"
        a.write_config()
        a.send_signal(signal.SIGHUP)
        wait_for(lambda: status_with(a, "new-key") == 200, "the new key to work")
        assert status_with(a, "old-key") == 401
        # The cluster key too.
        for key, want in (("new-cluster-key", 200), ("I_AM_ONE_OF_YOU", 403)):
            got = a.request("GET", "/api/replication/status", headers={"ReplicationApiKey": key})
            assert got.status == want, (key, got)
        # The connection opened before the reload is still served, with the new keys.
        assert keep_alive_get(conn, "new-key") == 200
        assert keep_alive_get(conn, "old-key") == 401
    finally:
        conn.close()
    assert "reload (SIGHUP): API keys reloaded" in a.log_text()
    assert "key=new-app" in a.log_text()
    assert "settings other than the API keys and TLS files changed" not in a.log_text()

    # Any other setting waits for a restart, and the reload says so.
    a.config["Node"]["MaxConnections"] = 77
    a.write_config()
    a.send_signal(signal.SIGHUP)
    wait_for(lambda: "settings other than the API keys and TLS files changed; they apply at the "
             "next restart" in a.log_text(), "the warning about unapplied settings")

    # A reload that fails (the file is not JSON) keeps the keys in use and says why.
    a.config_path.write_text("{ not json")
    a.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload (SIGHUP) failed, keeping the current keys" in a.log_text(),
             "the failed reload's message")
    assert status_with(a, "new-key") == 200
    assert a.running()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def self_signed(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "subjectAltName=IP:127.0.0.1", cwd=d)
    return str(d / f"{name}.pem"), str(d / f"{name}.key")


def served_cert(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
    try:
        conn.connect()
        return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()
    finally:
        conn.close()


def fingerprint(pem):
    der = ssl.PEM_cert_to_DER_cert(open(pem).read())
    return hashlib.sha256(der).hexdigest()


def test_sighup_rotates_the_tls_certificate(make_node, tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed: scripts/deps.sh --test installs it")
    first = self_signed(tmp_path, "first")
    second = self_signed(tmp_path, "second")
    a = make_node(overrides={"Node": {"Tls": {"CertificateFile": first[0],
                                              "KeyFile": first[1]}}}, start=False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    a.ssl_context = ctx
    a.start()
    assert served_cert(a.port) == fingerprint(first[0])
    open_conn = http.client.HTTPSConnection("127.0.0.1", a.port, timeout=5, context=ctx)
    try:
        open_conn.request("GET", "/health")
        open_conn.getresponse().read()
        a.config["Node"]["Tls"] = {"CertificateFile": second[0], "KeyFile": second[1]}
        a.write_config()
        a.send_signal(signal.SIGHUP)
        wait_for(lambda: served_cert(a.port) == fingerprint(second[0]),
                 "the second certificate on new connections")
        # The TLS connection made before the reload goes on.
        open_conn.request("GET", "/health")
        resp = open_conn.getresponse()
        resp.read()
        assert resp.status == 200
        assert hashlib.sha256(open_conn.sock.getpeercert(binary_form=True)).hexdigest() == \
            fingerprint(first[0])
    finally:
        open_conn.close()

    # A key that does not match the certificate: refused, the second one stays.
    a.config["Node"]["Tls"] = {"CertificateFile": first[0], "KeyFile": second[1]}
    a.write_config()
    a.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload (SIGHUP) failed" in a.log_text(), "the failed reload's message")
    assert served_cert(a.port) == fingerprint(second[0])
    # Plain HTTP cannot be switched to by a reload.
    del a.config["Node"]["Tls"]
    a.write_config()
    a.send_signal(signal.SIGHUP)
    wait_for(lambda: "cannot be removed by a reload" in a.log_text(), "the refusal to drop TLS")
    assert served_cert(a.port) == fingerprint(second[0])


def test_check_config(build, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"Node": {"Port": 1446, "LogFormat": "json"},
                                "Auth": {"RootApiKey": "a-long-root-key"}}))
    res = run_litedistd(build, ["--check-config", "--config", str(good)], cwd=tmp_path)
    assert res.returncode == 0, res
    assert f"configuration {good} is valid" in res.stdout
    assert not (tmp_path / "data").exists()  # the data directory is not touched

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Node": {"Port": "many"}}))
    res = run_litedistd(build, ["--check-config", "-c", str(bad)], cwd=tmp_path)
    assert res.returncode == 1, res
    assert "invalid configuration" in res.stderr and "Node.Port" in res.stderr, res.stderr

    tls = tmp_path / "tls.json"
    tls.write_text(json.dumps({"Node": {"Tls": {"CertificateFile": str(tmp_path / "none.pem"),
                                                "KeyFile": str(tmp_path / "none.key")}}}))
    res = run_litedistd(build, ["--check-config", "-c", str(tls)], cwd=tmp_path)
    assert res.returncode == 1 and "none.pem" in res.stderr, res

    res = run_litedistd(build, ["--check-config", "-c", str(good)], cwd=tmp_path,
                        env={"LITEDIST_Storage__Plugin": "no-such-backend"})
    assert res.returncode == 1 and "no-such-backend" in res.stderr, res
