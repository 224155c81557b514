"""The command line, the config file and its environment overrides, keygen, and the log."""

import hashlib
import re
import socket
import time


from conftest import (DROP, MSG_KEY_INVALID, ROLES, ROOT_KEY, api_key_entry, assert_error,
                      assert_ok, free_port, port_accepts, run_litedistd)

LEVEL_WORD = re.compile(r"\b(ERROR|WARN|INFO|DEBUG)\b")


def test_help_and_version(build):
    res = run_litedistd(build, ["--help"])
    assert res.returncode == 0, res
    assert "--config" in res.stdout + res.stderr
    res = run_litedistd(build, ["--version"])
    assert res.returncode == 0, res
    assert re.search(r"litedistd \d+\.\d+", res.stdout + res.stderr), res


def test_unknown_option_fails(build, tmp_path):
    res = run_litedistd(build, ["--no-such-option"], cwd=tmp_path)
    assert res.returncode != 0, res


# ------------------------------------------------------------------------------------------------
# keygen
# ------------------------------------------------------------------------------------------------

def keygen(build):
    res = run_litedistd(build, ["keygen"])
    assert res.returncode == 0, res
    key = re.search(r"^Key: (\S+)$", res.stdout, re.M)
    key_hash = re.search(r"^KeyHash: blake2b:([0-9a-f]{64})$", res.stdout, re.M)
    assert key and key_hash, res.stdout
    return key.group(1), key_hash.group(1)


def test_keygen_hash_is_blake2b_256_of_the_key(build):
    key, digest = keygen(build)
    assert hashlib.blake2b(key.encode(), digest_size=32).hexdigest() == digest
    assert len(key) >= 32
    other, _ = keygen(build)
    assert other != key


def test_keygen_hash_authenticates(make_node, build):
    key, digest = keygen(build)
    entry = {"Name": "generated", "KeyHash": "blake2b:" + digest, "Databases": ["*"],
             "Roles": {r: True for r in ROLES}}
    n = make_node(keys=[entry])
    assert key not in n.config_path.read_text()
    api = n.api("kg", key=key)
    assert_ok(api.post("c", {"Id": "a"}))
    assert api.must_get("c", "a") == {"Id": "a"}
    assert_error(n.api("kg", key=key + "x").get("c", "a"), 401, MSG_KEY_INVALID)
    assert_error(n.api("kg", key=digest).get("c", "a"), 401, MSG_KEY_INVALID)
    assert_error(n.api("kg", key="blake2b:" + digest).get("c", "a"), 401, MSG_KEY_INVALID)


# ------------------------------------------------------------------------------------------------
# Config file errors
# ------------------------------------------------------------------------------------------------

def test_invalid_json_config_fails_naming_the_file(build, tmp_path):
    cfg = tmp_path / "broken-config.json"
    cfg.write_text('{"Node": {"Port": 1,}')
    res = run_litedistd(build, ["--config", str(cfg)], cwd=tmp_path)
    assert res.returncode != 0, res
    assert "broken-config.json" in res.stdout + res.stderr, res


def test_missing_config_fails_naming_the_file(build, tmp_path):
    res = run_litedistd(build, ["-c", str(tmp_path / "absent.json")], cwd=tmp_path)
    assert res.returncode != 0, res
    assert "absent.json" in res.stdout + res.stderr, res


def test_unknown_key_is_a_warning(make_node):
    n = make_node(overrides={"Node": {"Prot": 1234}})
    warn = [line for line in n.log_text().splitlines() if "Node.Prot" in line]
    assert warn, n.log_tail()
    assert any("WARN" in line for line in warn), warn
    assert_ok(n.request("GET", "/health"))


def test_short_config_flag(make_node):
    n = make_node(start=False)
    n.config_flag = "-c"
    n.start()
    assert n.node_id() == "test-node"


# ------------------------------------------------------------------------------------------------
# Overrides: environment and flags
# ------------------------------------------------------------------------------------------------

def test_env_sets_the_port(make_node):
    port = free_port()
    n = make_node(overrides={"Node": {"Port": DROP}}, env={"LITEDIST_Node__Port": str(port)},
                  start=False)
    n.port = port
    n.start()
    assert n.node_id() == "test-node"


def test_env_overrides_the_file(make_node):
    n = make_node(env={"LITEDIST_Node__NodeId": "from-env",
                       "LITEDIST_Node__MaxBodyBytes": "1024"})
    assert n.node_id() == "from-env"
    api = n.api("envdb")
    assert_error(api.post("c", {"Id": "big", "pad": "x" * 2000}), 413)
    assert_ok(api.post("c", {"Id": "small"}))


def test_env_overrides_auth_section(make_node):
    n = make_node(env={"LITEDIST_Auth__RootApiKey": "env-root-key"})
    assert_ok(n.api("envroot", key="env-root-key").post("c", {"Id": "a"}))
    assert_error(n.api("envroot", key=ROOT_KEY).get("c", "a"), 401, MSG_KEY_INVALID)


def test_port_and_data_flags(make_node, tmp_path):
    port = free_port()
    data = tmp_path / "flag-data"
    n = make_node(overrides={"Node": {"Port": DROP, "DataDirectory": DROP}},
                  args=["--port", str(port), "--data", str(data)], start=False)
    n.port = port
    n.start()
    n.api("flagdb").must_post("c", {"Id": "a", "v": 1})
    assert data.is_dir() and any(data.rglob("*")), "nothing written under --data"
    n.restart()
    assert n.api("flagdb").must_get("c", "a") == {"Id": "a", "v": 1}


def test_port_flag_overrides_config(make_node):
    port = free_port()
    n = make_node(args=["--port", str(port)], start=False)
    config_port = n.port
    n.port = port
    n.start()
    assert n.node_id() == "test-node"
    assert not port_accepts(config_port)


def test_port_zero_logs_the_port_really_bound(make_node):
    n = make_node(overrides={"Node": {"Port": 0}}, start=False)
    n.spawn()
    line = None
    deadline = time.monotonic() + 10
    while line is None and time.monotonic() < deadline:
        line = next((ln for ln in n.log_text().splitlines()
                     if "listening on http://127.0.0.1:" in ln), None)
        time.sleep(0.05)
    assert line, n.log_tail()
    port = int(re.search(r"127\.0\.0\.1:(\d+) ", line).group(1))
    assert port != 0, line
    n.port = port
    n.wait_healthy()
    assert n.node_id() == "test-node"


def test_a_section_in_another_case_is_refused_naming_both(make_node):
    n = make_node(overrides={"node": {"LogLevel": "info"}}, start=False)
    n.spawn()
    assert n.wait_exit(timeout=10) == 1, n.log_tail()
    assert "config: Node and node are one section" in n.log_text(), n.log_tail()
    assert "listening on" not in n.log_text()


def test_indexed_env_overrides_make_the_api_keys_array(make_node):
    n = make_node(overrides={"Auth": {"ApiKeys": DROP}},
                  env={"LITEDIST_Auth__ApiKeys__0__Key": "env-key-0",
                       "LITEDIST_Auth__ApiKeys__0__Name": "env0",
                       "LITEDIST_Auth__ApiKeys__0__Databases__0": "*",
                       "LITEDIST_Auth__ApiKeys__0__Roles__ADD_DB": "true",
                       "LITEDIST_Auth__ApiKeys__0__Roles__WRITE_DOCUMENT": "true"})
    assert_ok(n.api("envkeys", key="env-key-0").post("c", {"Id": "a"}))


def test_port_in_use_fails_before_listening(make_node):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        n = make_node(overrides={"Node": {"Port": busy}}, start=False)
        n.port = busy
        n.spawn()
        rc = n.wait_exit(timeout=10)
    assert rc not in (None, 0), n.log_tail()
    assert str(busy) in n.log_text(), n.log_tail()


# ------------------------------------------------------------------------------------------------
# Logs
# ------------------------------------------------------------------------------------------------

def test_log_lines_carry_a_level(make_node):
    n = make_node()
    n.api("logdb").must_post("c", {"Id": "a"})
    assert n.stop() == 0
    lines = [l for l in n.log_text().splitlines() if l.strip() and not l.startswith("=== harness")]
    assert lines, "the server logged nothing"
    assert all(LEVEL_WORD.search(l) for l in lines), [l for l in lines
                                                      if not LEVEL_WORD.search(l)][:5]
    assert any("INFO" in l for l in lines)


def test_api_keys_never_reach_the_log(make_node, build, tmp_path):
    root = "LeakProbeRoot-9a8b7c6d5e"
    valid = "LeakProbeValid-1f2e3d4c5b"
    invalid = "LeakProbeInvalid-0a1b2c3d4e"
    hashed = "LeakProbeHashed-6f7e8d9c0b"
    keys = [api_key_entry(valid, ROLES, name="valid-entry"),
            api_key_entry(hashed, ["READ_DOCUMENT"], hashed=True, name="hashed-entry"),
            api_key_entry("LeakProbeReader-77", ["READ_DOCUMENT"], databases=["leak-a"],
                          name="reader-entry")]
    n = make_node(overrides={"Auth": {"RootApiKey": root}}, keys=keys)
    for key in (root, valid, invalid, hashed, "LeakProbeReader-77", " " + valid + " "):
        api = n.api("leak-b", key=key)
        api.post("c", {"Id": "a", "v": 1})
        api.get("c", "a")
        api.put("c", "a", {"v": 2})
        api.delete("c", "zz")
        api.list_collections()
        n.request("GET", "/api/databases", headers={"ApiKey": key})
        n.request("DELETE", "/api/databases/leak-none", headers={"ApiKey": key})
        n.request("POST", f"/webhook-ingestion/leak-b/{key.strip()}",
                  body={"entityName": "c", "action": "Add", "data": {"Id": "w"}})
        n.request("GET", f"/webhook-ingestion/leak-b/{key.strip()}")
        n.request("GET", f"/webhook-ingestion/Bad%20Name/{key.strip()}")
    assert n.stop() == 0
    log = n.log_text()
    assert "LeakProbe" not in log, [l for l in log.splitlines() if "LeakProbe" in l][:5]
