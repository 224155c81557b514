"""The auth chain: plugins asked in order, the first ALLOW or DENY decides, an unknown key at the
end is 401, and a plugin error fails the request closed (503), never falling through."""

import pytest

from conftest import (MSG_KEY_INVALID, ROLES, ROOT_KEY, api_key_entry, assert_error, assert_ok,
                      msg_no_access, msg_not_allowed)

KEYS_TXT = """\
# auth-file keys for the chain tests
file-writer   *                  ADD_DB,READ_DOCUMENT,WRITE_DOCUMENT
file-limited  chain-a,chain-b    ADD_DB,READ_DOCUMENT,WRITE_DOCUMENT,UPDATE_DOCUMENT
dual          *                  ADD_DB,DELETE_DB,READ_DOCUMENT,WRITE_DOCUMENT,UPDATE_DOCUMENT,DELETE_DOCUMENT
# a commented line is not a key:
#file-commented * ADD_DB,READ_DOCUMENT
"""

# In auth-config, "dual" may only read: auth-config decides, auth-file is never asked.
CONFIG_KEYS = [api_key_entry("dual", ["ADD_DB", "READ_DOCUMENT"]),
               api_key_entry("cfg-reader", ["READ_DOCUMENT"])]


def chain_config(tmp_path, plugins):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(KEYS_TXT)
    return {"Auth": {"Plugins": plugins, "RootApiKey": ROOT_KEY,
                     "auth-file": {"Path": str(keys_file)}}}


@pytest.fixture
def chain_node(make_node, build, tmp_path):
    auth_file = str(build.test_plugin("auth-file.so"))
    return make_node(overrides=chain_config(tmp_path, ["auth-config", auth_file]),
                     keys=CONFIG_KEYS)


def test_key_known_only_to_the_second_plugin(chain_node):
    api = chain_node.api("chain-x", key="file-writer")
    wr = assert_ok(api.post("c", {"Id": "a", "v": 1}))
    assert wr["EntityId"] == "a"
    assert api.must_get("c", "a") == {"Id": "a", "v": 1}
    assert_error(api.put("c", "a", {"v": 2}), 403, msg_not_allowed("update documents"))
    assert_error(api.delete("c", "a"), 403, msg_not_allowed("delete documents"))
    assert chain_node.api("chain-x").must_get("c", "a") == {"Id": "a", "v": 1}


def test_second_plugin_database_list(chain_node):
    api = chain_node.api("chain-b", key="file-limited")
    assert_ok(api.post("c", {"Id": "a"}))
    assert_error(chain_node.api("chain-c", key="file-limited").list_collections(), 403,
                 msg_no_access("chain-c"))
    r = chain_node.request("GET", "/api/databases", headers={"ApiKey": "file-limited"})
    assert assert_ok(r) == ["chain-b"]


def test_deny_by_first_plugin_ends_the_chain(chain_node):
    chain_node.api("chain-d").must_post("c", {"Id": "a", "v": 1})
    dual = chain_node.api("chain-d", key="dual")
    assert dual.must_get("c", "a") == {"Id": "a", "v": 1}   # auth-config allows reading
    assert_error(dual.post("c", {"Id": "b"}), 403, msg_not_allowed("write documents"))
    assert_error(dual.delete("c", "a"), 403, msg_not_allowed("delete documents"))
    assert_error(dual.drop_database(), 403, msg_not_allowed("delete databases"))
    assert chain_node.api("chain-d").must_get("c", "a") == {"Id": "a", "v": 1}
    assert_error(chain_node.api("chain-d").get("c", "b"), 404)


def test_unknown_to_every_plugin_is_401(chain_node):
    for key in ("nobody", "file-commented", "#file-commented", "dual2", "Dual"):
        assert_error(chain_node.api("chain-e", key=key).list_collections(), 401, MSG_KEY_INVALID)


def test_first_plugin_still_works(chain_node):
    api = chain_node.api("chain-f", key="cfg-reader")
    chain_node.api("chain-f").must_post("c", {"Id": "a"})
    assert api.must_get("c", "a") == {"Id": "a"}
    assert_error(api.post("c", {"Id": "b"}), 403, msg_not_allowed("write documents"))


def test_plugins_given_by_absolute_path(make_node, build, tmp_path):
    plugins = [str(build.plugin("auth-config.so")), str(build.test_plugin("auth-file.so"))]
    n = make_node(overrides=chain_config(tmp_path, plugins), keys=CONFIG_KEYS)
    assert_ok(n.api("paths", key="file-writer").post("c", {"Id": "a"}))
    assert_ok(n.api("paths").post("c", {"Id": "b"}))
    assert_error(n.api("paths", key="dual").post("c", {"Id": "c"}), 403,
                 msg_not_allowed("write documents"))


def test_only_the_second_plugin(make_node, build, tmp_path):
    """auth-file alone: the root key of the Auth section means nothing to it."""
    n = make_node(overrides=chain_config(tmp_path, [str(build.test_plugin("auth-file.so"))]),
                  keys=[])
    assert_ok(n.api("solo", key="dual").post("c", {"Id": "a"}))
    assert_error(n.api("solo", key=ROOT_KEY).list_collections(), 401, MSG_KEY_INVALID)


# ------------------------------------------------------------------------------------------------
# Fail closed
# ------------------------------------------------------------------------------------------------

def error_chain_node(make_node, build, order):
    err = str(build.test_plugin("auth-error.so"))
    plugins = [err, "auth-config"] if order == "error-first" else ["auth-config", err]
    return make_node(overrides={"Auth": {"Plugins": plugins}},
                     keys=[api_key_entry("cfg-all", ROLES)])


def test_erroring_plugin_first_fails_every_request(make_node, build):
    n = error_chain_node(make_node, build, "error-first")
    assert assert_ok(n.request("GET", "/health"))["Status"] == "Healthy"
    for key in (ROOT_KEY, "cfg-all", "unknown"):
        assert_error(n.api("closed", key=key).post("c", {"Id": "a"}), 503)
        assert_error(n.api("closed", key=key).get("c", "a"), 503)
        assert_error(n.request("GET", "/api/databases", headers={"ApiKey": key}), 503)
    assert n.node_info()["LogicalDatabaseCount"] == 0


def test_erroring_plugin_is_not_skipped_for_unknown_keys(make_node, build):
    n = error_chain_node(make_node, build, "error-second")
    # auth-config decides its own keys before the erroring plugin is reached ...
    assert_ok(n.api("closed2").post("c", {"Id": "a"}))
    assert_ok(n.api("closed2", key="cfg-all").post("c", {"Id": "b"}))
    # ... but a key it does not know goes on to the erroring plugin: 503, never 401 or 200.
    assert_error(n.api("closed2", key="unknown").get("c", "a"), 503)
    assert_error(n.api("closed2", key="unknown").post("c", {"Id": "z"}), 503)
    assert_error(n.api("closed2").get("c", "z"), 404)
