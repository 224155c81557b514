"""Plugin loading: broken plugins stop start-up before the port is opened, with a message naming
the file; --plugin-info describes a plugin."""

import shutil
import time

import pytest

from conftest import port_accepts, run_litedistd

REFUSE_TIMEOUT = 10.0


# (fixture file, where it is configured)
BROKEN = [
    ("bad-major.so", "auth"),
    ("short-struct.so", "auth"),
    ("no-entry.so", "auth"),
    ("wrong-kind.so", "auth"),
    ("missing-fn.so", "auth"),
    ("auth-fail-create.so", "auth"),
    ("half-pair.so", "storage"),
    ("bad-major.so", "storage"),
    ("no-entry.so", "storage"),
]


def watch_refusal(node, timeout=REFUSE_TIMEOUT):
    """Runs an already spawned node until it exits; returns (exit code, port ever accepted)."""
    accepted = False
    deadline = time.monotonic() + timeout
    while node.proc.poll() is None and time.monotonic() < deadline:
        accepted = accepted or port_accepts(node.port, timeout=0.05)
        time.sleep(0.01)
    rc = node.wait_exit(timeout=0.5)
    return rc, accepted


@pytest.mark.parametrize("fixture,where", BROKEN, ids=[f"{w}-{f}" for f, w in BROKEN])
def test_broken_plugin_stops_start_up(make_node, build, fixture, where):
    path = str(build.test_plugin(fixture))
    if where == "auth":
        overrides = {"Auth": {"Plugins": ["auth-config", path]}}
    else:
        overrides = {"Storage": {"Plugin": path}}
    n = make_node(overrides=overrides, start=False).spawn()
    rc, accepted = watch_refusal(n)
    assert rc is not None, f"litedistd still running {REFUSE_TIMEOUT} s after start\n" + \
        n.log_tail()
    assert rc != 0, n.log_tail()
    assert rc > 0, f"exited by signal {-rc}, not by refusing\n{n.log_tail()}"
    assert not accepted, "the port accepted a connection before the refusal\n" + n.log_tail()
    assert path in n.log_text(), f"the log does not name {path}\n{n.log_tail()}"


def test_missing_plugin_file_stops_start_up(make_node, tmp_path):
    path = str(tmp_path / "no-such-plugin.so")
    n = make_node(overrides={"Auth": {"Plugins": ["auth-config", path]}}, start=False).spawn()
    rc, accepted = watch_refusal(n)
    assert rc not in (None, 0), n.log_tail()
    assert not accepted
    assert "no-such-plugin" in n.log_text(), n.log_tail()


def test_unknown_plugin_name_stops_start_up(make_node):
    n = make_node(overrides={"Storage": {"Plugin": "no-such-backend"}}, start=False).spawn()
    rc, accepted = watch_refusal(n)
    assert rc not in (None, 0), n.log_tail()
    assert not accepted
    assert "no-such-backend" in n.log_text(), n.log_tail()


def test_storage_plugin_given_by_path(make_node, build, storage):
    if storage != "sqlite":
        pytest.skip("uses the sqlite plugin's file name")
    n = make_node(overrides={"Storage": {"Plugin": str(build.plugin("storage-sqlite.so"))}})
    assert n.api("bypath").must_post("c", {"Id": "a"})["EntityId"] == "a"


def test_plugin_dir_adds_a_directory(make_node, build, tmp_path):
    """--plugin-dir (Node.PluginDirectory) is searched before the defaults, not instead of them:
    a plugin of its own is found there and the bundled ones are still found."""
    mine = tmp_path / "my-plugins"
    mine.mkdir()
    shutil.copy(build.test_plugin("auth-file.so"), mine / "auth-mine.so")
    (tmp_path / "keys.txt").write_text("mine-key * READ_DOCUMENT,WRITE_DOCUMENT,ADD_DB\n")
    n = make_node(args=["--plugin-dir", str(mine)],
                  overrides={"Auth": {"Plugins": ["auth-config", "mine"],
                                      "auth-mine": {"Path": str(tmp_path / "keys.txt")}}})
    assert n.api("pdir").must_post("c", {"Id": "a"})["EntityId"] == "a"  # bundled auth-config
    assert n.api("pdir", key="mine-key").must_get("c", "a")["Id"] == "a"
    log = n.log_text()
    assert f"loading auth plugin 'mine' from {mine}/auth-mine.so" in log, n.log_tail()
    assert "unknown key" not in log, n.log_tail()


def test_missing_plugin_names_every_directory_searched(make_node, tmp_path):
    empty = tmp_path / "empty-plugins"
    empty.mkdir()
    n = make_node(args=["--plugin-dir", str(empty)],
                  overrides={"Auth": {"Plugins": ["auth-config", "nowhere"]}}, start=False).spawn()
    rc, accepted = watch_refusal(n)
    assert rc not in (None, 0), n.log_tail()
    assert not accepted
    line = next(l for l in n.log_text().splitlines() if "'nowhere' not found" in l)
    assert str(empty) in line and "/plugins" in line, line


def test_plugin_info_describes_sqlite(build):
    path = str(build.plugin("storage-sqlite.so"))
    res = run_litedistd(build, ["--plugin-info", path])
    assert res.returncode == 0, res
    out = res.stdout + res.stderr
    assert "sqlite" in out, out
    assert "1.0" in out, out


def test_plugin_info_describes_auth_config(build):
    res = run_litedistd(build, ["--plugin-info", str(build.plugin("auth-config.so"))])
    assert res.returncode == 0, res
    assert "auth-config" in res.stdout + res.stderr


@pytest.mark.parametrize("fixture", ["bad-major.so", "no-entry.so"])
def test_plugin_info_refuses_unreadable_plugins(build, fixture):
    path = str(build.test_plugin(fixture))
    res = run_litedistd(build, ["--plugin-info", path])
    assert res.returncode != 0, res
    assert path in res.stdout + res.stderr or fixture in res.stdout + res.stderr, res
