"""The plugin kit (issues 16 and 22): `cmake --install` into a temporary prefix, the examples/
plugins built out of tree through `pkg-config --cflags litedist-plugin` against it, the installed
litedistd finding its installed plugins and Studio, the installed litedist-conformance, the ABI
1.2 one-question-per-request seen by an out-of-tree auth plugin, and the docs' ABI range."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, ROOT_KEY, Build, NodeFactory, run_litedistd

EXAMPLES = REPO / "examples"
QUESTION = re.compile(r"\[auth-tsv\] question: (\S+) db=(\S+) exists=(-?\d) needs=(\S+) "
                      r"may_need=(\S+) -> (\w+) granted=(\S+)")


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    assert res.returncode == 0, f"{cmd}: {res.stdout}\n{res.stderr}"
    return res


class Kit:
    def __init__(self, prefix, out, env):
        self.prefix, self.out, self.env = prefix, out, env

    def pkg_config(self, *args):
        return run(["pkg-config", *args], env=self.env).stdout.strip()


@pytest.fixture(scope="module")
def kit(build, tmp_path_factory):
    """The build installed under a temporary prefix, and the examples built against it."""
    root = tmp_path_factory.mktemp("kit")
    prefix, out = root / "prefix", root / "plugins"
    out.mkdir()
    run(["cmake", "--install", str(build.bin_dir.parent), "--prefix", str(prefix)])
    pcs = list(prefix.glob("lib*/**/pkgconfig/litedist-plugin.pc"))
    assert len(pcs) == 1, pcs
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent))
    for example in ("auth-tsv", "storage-memlog"):
        run(["make", "-s", "-C", str(EXAMPLES / example), f"OUT={out}"], env=env)
    return Kit(prefix, out, env)


@pytest.fixture
def installed_node(kit, storage, tmp_path):
    """Nodes of the installed litedistd (prefix/bin), stopped at the end like make_node's."""
    factory = NodeFactory(Build(kit.prefix / "bin"), storage, tmp_path)
    yield factory
    factory.close()


def test_pkg_config_points_at_the_installed_headers(kit):
    cflags = kit.pkg_config("--cflags", "litedist-plugin")
    include = Path(re.match(r"-I(\S+)", cflags).group(1)).resolve()
    assert include == (kit.prefix / "include").resolve()
    for header in ("plugin.h", "auth.h", "storage.h"):
        assert (include / "litedist" / header).read_text() == \
            (REPO / "include" / "litedist" / header).read_text()
    minor = re.search(r"#define LD_ABI_MINOR (\d+)",
                      (include / "litedist" / "plugin.h").read_text()).group(1)
    assert kit.pkg_config("--variable=abi_minor", "litedist-plugin") == minor
    plugindir = Path(kit.pkg_config("--variable=plugindir", "litedist-plugin"))
    assert (plugindir / "auth-config.so").exists()
    for doc in ("LICENSE", "CHANGELOG.md"):
        assert list(kit.prefix.glob(f"share/doc/*/{doc}")), doc


def test_installed_litedistd_finds_its_plugins_and_studio(installed_node, kit):
    n = installed_node()
    assert n.api("inst").must_post("c", {"Id": "a"})["EntityId"] == "a"
    log = n.log_text()
    prefix = re.escape(str(kit.prefix.resolve()))
    assert re.search(rf"loading storage plugin '\w+' from {prefix}/lib[^ ]*/litedist/plugins/"
                     rf"storage-\w+\.so", log), n.log_tail()
    assert re.search(rf"loading auth plugin 'auth-config' from {prefix}/lib[^ ]*/litedist/"
                     rf"plugins/auth-config\.so", log), n.log_tail()
    assert re.search(rf"studio: serving \d+ files from {prefix}/share/litedist/studio", log), \
        n.log_tail()
    r = n.request("GET", "/studio/")
    assert r.status == 200 and "<html" in r.text.lower(), r


def test_installed_conformance_runner(kit):
    res = run([str(kit.prefix / "bin" / "litedist-conformance"), "--help"])
    assert "LD_TEST_STORAGE_CONFIG" in res.stdout and "PLUGIN.so" in res.stdout
    bad = subprocess.run([str(kit.prefix / "bin" / "litedist-conformance"), "--bogus"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
    res = run([str(kit.prefix / "bin" / "litedist-conformance"),
               str(kit.out / "storage-memlog.so")], env=dict(os.environ, TMPDIR="/tmp"))
    out = res.stdout + res.stderr
    assert re.search(r"PASSED\s+\]\s+2\d test", out) and "FAILED" not in out, out[-2000:]


def test_out_of_tree_storage_plugin_serves_and_keeps_data(installed_node, kit):
    n = installed_node(overrides={"Storage": {"Plugin": str(kit.out / "storage-memlog.so")}})
    api = n.api("memlog")
    api.must_post("orders", {"Id": "o-1", "Total": 42})
    api.must_put("orders", "o-1", {"Total": 43})
    api.must_post("orders", {"Id": "o-2", "Total": 7})
    api.must_delete("orders", "o-2")
    n.restart()
    assert api.must_get("orders", "o-1")["Total"] == 43
    assert api.absent("orders", "o-2")
    assert list((n.data_dir).rglob("memlog.memlog")), "the database's log file"


def questions(node):
    return [m.groups() for m in QUESTION.finditer(node.log_text())]


def test_one_question_per_request(installed_node, kit, tmp_path):
    """An ABI 1.2 plugin configured by name ("tsv", found as auth-tsv.so in the plugin
    directory, settings under the file's name) is asked once per request, however many roles
    the request involves, and gets no warning and no foreign secret."""
    keys = tmp_path / "keys.tsv"
    keys.write_text("# key\tdatabases\troles\n"
                    "w-only\tshop\tREAD_DOCUMENT,WRITE_DOCUMENT\n"
                    "reader\tshop,other\tREAD_DOCUMENT\n")
    n = installed_node(args=["--plugin-dir", str(kit.out)],
                       overrides={"Auth": {"Plugins": ["auth-config", "tsv"],
                                           "auth-tsv": {"Path": str(keys)}}})
    n.api("shop", key=ROOT_KEY).must_post("c", {"Id": "a"})  # root: auth-config, not asked
    assert questions(n) == []
    log = n.log_text()
    assert "unknown key" not in log, n.log_tail()
    assert "loading auth plugin 'tsv' from" in log
    assert "auth plugin 'tsv' receives, as it asked: the root key as a hash" in log

    w = n.api("shop", key="w-only")
    before = len(questions(n))
    w.must_post("c", {"Id": "b"})                       # new id: WRITE suffices
    assert w.put("c", "a", {"X": 1}).status == 403      # existing id: UPDATE missing
    w.must_get("c", "b")
    status, _, _ = n.request("GET", "/api/databases", headers={"ApiKey": "reader"})
    assert status == 200
    asked = questions(n)[before:]
    assert [q[0] for q in asked] == ["documents.write", "documents.write", "documents.read",
                                     "databases.list"], asked
    write = asked[0]
    assert write[1:6] == ("shop", "1", "0x0", "0x18", "allow"), write  # may_need WRITE|UPDATE
    assert asked[2][3] == "0x4"                                        # needs READ

    # A database that does not exist yet: one question, needing ADD_DB, refused with the
    # contract's message; the plugin's answer is the key's roles, not a verdict per role.
    before = len(questions(n))
    r = n.api("other", key="reader").call("GET", "/api/documents/c/x")
    assert r.status == 403 and "create database 'other'" in r.text, r
    asked = questions(n)[before:]
    assert len(asked) == 1 and asked[0][2:4] == ("0", "0x5"), asked


def test_old_plugins_are_asked_per_role(make_node, build, tmp_path):
    """An auth plugin without decide (ABI 1.0 style: auth-file) still works through authorize."""
    keys = tmp_path / "keys.txt"
    keys.write_text("svc shop READ_DOCUMENT,WRITE_DOCUMENT,ADD_DB\n")
    n = make_node(overrides={"Auth": {"Plugins": ["auth-config",
                                                  str(build.test_plugin("auth-file.so"))],
                                      "auth-file": {"Path": str(keys)}}})
    api = n.api("shop", key="svc")
    api.must_post("c", {"Id": "a"})
    assert api.put("c", "a", {"X": 1}).status == 403  # UPDATE not granted
    assert api.must_get("c", "a")["Id"] == "a"


def test_docs_state_the_abi_range_the_binary_speaks(build):
    res = run_litedistd(build, ["--plugin-info", str(build.plugin("auth-config.so"))])
    assert res.returncode == 0, res
    m = re.search(r"litedistd speaks (\d+)\.(\d+)-(\d+)\.(\d+)", res.stdout)
    assert m, res.stdout
    speaks = f"{m[1]}.{m[2]}-{m[3]}.{m[4]}"
    version = run_litedistd(build, ["--version"]).stdout
    assert f"plugin ABI {m[3]}.{m[4]}" in version, version
    docs = {p.name: p.read_text() for p in (REPO / "docs").glob("*.md")}
    for name, text in docs.items():
        for found in re.findall(r"speaks (\d+\.\d+-\d+\.\d+)", text):
            assert found == speaks, f"docs/{name} says 'speaks {found}', the binary {speaks}"
    plugins_md = docs["plugins.md"]
    assert f"speaks {speaks}" in plugins_md
    assert f"now {m[3]}.{m[4]}" in plugins_md
    for term in ("location", "LD_TXN_LAZY", "decide", "wants", "settings_json", "plugin_name"):
        assert term in plugins_md, term
    storage_h = (REPO / "include/litedist/storage.h").read_text()
    begin = storage_h[storage_h.index("/* begin:"):storage_h.index("ld_status (*begin)")]
    assert "LD_INVALID" in begin
