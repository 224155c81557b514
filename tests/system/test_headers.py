"""The Database and ApiKey header checks on every /api/* route: their order and exact messages,
and the database-name rules (trim, lowercase, ^[a-z0-9][a-z0-9_-]{0,62}$)."""

import pytest

from conftest import (KEY_LIMITED, KEY_NONE, LIMITED_DBS, MSG_DB_INVALID, MSG_DB_REQUIRED,
                      MSG_KEY_INVALID, MSG_KEY_REQUIRED, ROOT_KEY, assert_error, assert_ok,
                      msg_no_access)

# Every document route, with a body that would be accepted, so only the headers can fail.
ROUTES = [
    ("GET", "/api/documents", None),
    ("GET", "/api/documents/items", None),
    ("GET", "/api/documents/items/d1", None),
    ("POST", "/api/documents/items", {"Id": "d1", "v": 1}),
    ("POST", "/api/documents/items/register", None),
    ("PUT", "/api/documents/items/d1", {"v": 1}),
    ("DELETE", "/api/documents/items/d1", None),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _ in ROUTES]

BAD_NAMES = ["../x", "a b", "a" * 64, "-abc", "_abc", "ab.c", "a/b", "caf\u00e9", "a;b", "*"]


def send(node, method, path, body, headers):
    return node.request(method, path, body=body, headers=headers)


def assert_db_untouched(node, db):
    assert db not in node.databases(), f"database {db!r} was created by a refused request"


@pytest.mark.parametrize("method,path,body", ROUTES, ids=ROUTE_IDS)
class TestHeaderOrder:
    def test_missing_database_header(self, node, method, path, body):
        assert_error(send(node, method, path, body, {}), 400, MSG_DB_REQUIRED)
        assert_error(send(node, method, path, body, {"ApiKey": ROOT_KEY}), 400, MSG_DB_REQUIRED)

    def test_blank_database_header(self, node, method, path, body):
        r = send(node, method, path, body, {"Database": "   ", "ApiKey": ROOT_KEY})
        assert_error(r, 400, MSG_DB_REQUIRED)

    def test_invalid_database_name_comes_before_key(self, node, method, path, body):
        # No key at all: the name is still checked first.
        assert_error(send(node, method, path, body, {"Database": "a b"}), 400, MSG_DB_INVALID)
        assert_error(send(node, method, path, body, {"Database": "../x", "ApiKey": ROOT_KEY}),
                     400, MSG_DB_INVALID)

    def test_missing_key(self, node, db, method, path, body):
        assert_error(send(node, method, path, body, {"Database": db}), 401, MSG_KEY_REQUIRED)
        assert_error(send(node, method, path, body, {"Database": db, "ApiKey": "  "}), 401,
                     MSG_KEY_REQUIRED)
        assert_db_untouched(node, db)

    def test_invalid_key(self, node, db, method, path, body):
        r = send(node, method, path, body, {"Database": db, "ApiKey": "not-a-key"})
        assert_error(r, 401, MSG_KEY_INVALID)
        assert_db_untouched(node, db)

    def test_key_without_access_to_database(self, node, db, method, path, body):
        r = send(node, method, path, body, {"Database": db, "ApiKey": KEY_LIMITED})
        assert_error(r, 403, msg_no_access(db))
        assert_db_untouched(node, db)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_database_names(node, name):
    r = node.request("GET", "/api/documents", headers={"Database": name, "ApiKey": ROOT_KEY})
    assert_error(r, 400, MSG_DB_INVALID)


def test_longest_valid_database_name(node, db):
    name = (db + "x" * 63)[:63]
    api = node.api(name)
    assert_ok(api.post("c", {"Id": "a"}))
    assert name in node.databases()


def test_database_name_is_trimmed_and_lowercased(node, db):
    shouting = "  " + db.upper() + "  "
    wr = assert_ok(node.api(shouting).post("c", {"Id": "a", "v": 1}))
    assert wr["EntityId"] == "a"
    assert node.api(db).must_get("c", "a") == {"Id": "a", "v": 1}
    assert db in node.databases()
    assert db.upper() not in node.databases()


def test_key_is_trimmed(node, db):
    assert_ok(node.api(db, key="  " + ROOT_KEY + "  ").post("c", {"Id": "a"}))


def test_known_key_without_roles_gets_403_not_401(node, db):
    node.api(db).must_post("c", {"Id": "a"})
    r = node.api(db, key=KEY_NONE).get("c", "a")
    assert_error(r, 403, "ApiKey is not allowed to read documents.")


def test_limited_key_reaches_its_own_database(node):
    api = node.api(LIMITED_DBS[0], key=KEY_LIMITED)
    assert_ok(api.post("c", {"Id": "a"}))
    assert api.must_get("c", "a") == {"Id": "a"}
