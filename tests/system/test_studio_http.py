"""The Studio over HTTP: GET / and /studio/ redirects, static files (content types, ETag and 304,
HEAD, no listing, no path traversal, methods), Studio.Root, and CORS (Studio.CorsOrigins, the
localhost default, preflights allowed and refused)."""

import os
import shutil
from pathlib import Path

import pytest

from conftest import (REPO, ROOT_KEY, Build, Node, NodeFactory, assert_error, base_config,
                      free_port)

SECRET = "top-secret-outside-the-studio"

# name below the Studio root -> (bytes, expected Content-Type)
FILES = {
    "index.html": (b"<!doctype html><title>t</title><script type=module src=js/app.js></script>",
                   "text/html; charset=utf-8"),
    "js/app.js": (b"export const x = 1;\n", "text/javascript; charset=utf-8"),
    "js/lib/mod.mjs": (b"export default 2;\n", "text/javascript; charset=utf-8"),
    "css/studio.css": (b"body { color: red }\n", "text/css; charset=utf-8"),
    "data.json": (b'{"a": 1}', "application/json; charset=utf-8"),
    "logo.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
    "img.png": (b"\x89PNG\r\n\x1a\n", "image/png"),
    "favicon.ico": (b"\x00\x00\x01\x00", "image/x-icon"),
    "notes.txt": (b"plain", "text/plain; charset=utf-8"),
    "blob.bin": (b"\x00\x01\x02", "application/octet-stream"),
    "no-extension": (b"?", "application/octet-stream"),
}


def make_studio_root(base):
    """A Studio directory with one file of each type, plus things that must never be served: a
    dot file, a symbolic link to a file outside, and a secret beside the directory."""
    root = base / "studio"
    for name, (data, _) in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (base / "secret.txt").write_text(SECRET)
    (root / ".hidden").write_text(SECRET)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text(SECRET)
    os.symlink(base / "secret.txt", root / "link-out.txt")
    os.symlink(base, root / "dir-link")
    (root / "bad name.txt").write_text(SECRET)
    return root


@pytest.fixture
def studio_root(tmp_path):
    """A Studio directory of this test's own, which it may change."""
    return make_studio_root(tmp_path)


@pytest.fixture
def studio_node(make_node, studio_root):
    """A node serving studio_root."""
    return make_node(overrides={"Studio": {"Root": str(studio_root)}})


@pytest.fixture(scope="module")
def shared_studio(build, storage, tmp_path_factory):
    """One node per module serving a Studio directory that no test changes."""
    base = tmp_path_factory.mktemp("studio")
    factory = NodeFactory(build, storage, base)
    yield factory(overrides={"Studio": {"Root": str(make_studio_root(base))}}, name="studio")
    factory.close()


# ------------------------------------------------------------------------------------------------
# Landing and redirects
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_root_lands_on_the_dashboard(node, method):
    r = node.request(method, "/")
    assert r.status == 302, r
    assert r.headers.get("Location") == "/studio/#/dashboard"


def test_studio_without_slash_redirects(node):
    r = node.request("GET", "/studio")
    assert r.status == 301, r
    assert r.headers.get("Location") == "/studio/"


def test_default_studio_is_the_source_tree(node):
    """Without Studio.Root the build finds the Studio beside the binary (the build tree links
    share/litedist/studio to the sources): what is served is the committed file."""
    r = node.request("GET", "/studio/")
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == "text/html; charset=utf-8"
    assert r.raw == (REPO / "studio" / "index.html").read_bytes()
    assert b'type="module"' in r.raw
    js = node.request("GET", "/studio/js/app.js")
    assert js.status == 200, js
    assert js.headers.get("Content-Type") == "text/javascript; charset=utf-8"
    assert js.raw == (REPO / "studio" / "js" / "app.js").read_bytes()


# ------------------------------------------------------------------------------------------------
# Files, types, caching
# ------------------------------------------------------------------------------------------------

def test_every_file_with_its_content_type(shared_studio):
    for name, (data, ctype) in FILES.items():
        r = shared_studio.request("GET", "/studio/" + name)
        assert r.status == 200, (name, r)
        assert r.raw == data, name
        assert r.headers.get("Content-Type") == ctype, name
        assert r.headers.get("X-Content-Type-Options") == "nosniff", name
        assert r.headers.get("Content-Length") == str(len(data)), name
    index = shared_studio.request("GET", "/studio/")
    assert index.raw == FILES["index.html"][0]


def test_html_carries_a_content_security_policy(shared_studio):
    r = shared_studio.request("GET", "/studio/index.html")
    csp = r.headers.get("Content-Security-Policy") or ""
    assert "script-src 'self'" in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    assert "unsafe-inline" not in csp, csp


def test_etag_and_conditional_requests(studio_node):
    r = studio_node.request("GET", "/studio/js/app.js")
    etag = r.headers.get("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"'), etag
    assert r.headers.get("Cache-Control") == "no-cache"
    assert studio_node.request("GET", "/studio/").headers.get("Cache-Control") == "no-cache"
    for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
        c = studio_node.request("GET", "/studio/js/app.js", headers={"If-None-Match": inm})
        assert c.status == 304, (inm, c)
        assert c.raw == b""
        assert c.headers.get("ETag") == etag
        assert c.headers.get("Cache-Control") == "no-cache"
    for inm in ('"other"', etag[:-2] + '"', ""):
        c = studio_node.request("GET", "/studio/js/app.js", headers={"If-None-Match": inm})
        assert c.status == 200, (inm, c)
        assert c.raw == FILES["js/app.js"][0]
    # Another file has another tag.
    assert studio_node.request("GET", "/studio/data.json").headers.get("ETag") != etag


def test_an_edited_file_is_served_new_without_restart(studio_node, studio_root):
    first = studio_node.request("GET", "/studio/js/app.js")
    (studio_root / "js" / "app.js").write_bytes(b"export const x = 2; // edited\n")
    second = studio_node.request("GET", "/studio/js/app.js")
    assert second.status == 200, second
    assert second.raw == b"export const x = 2; // edited\n"
    assert second.headers.get("ETag") != first.headers.get("ETag")
    stale = studio_node.request("GET", "/studio/js/app.js",
                                headers={"If-None-Match": first.headers.get("ETag")})
    assert stale.status == 200, stale
    (studio_root / "js" / "app.js").unlink()
    assert_error(studio_node.request("GET", "/studio/js/app.js"), 404)
    # A file replaced by a link to a file outside is not followed.
    os.symlink(studio_root.parent / "secret.txt", studio_root / "js" / "app.js")
    gone = studio_node.request("GET", "/studio/js/app.js")
    assert_error(gone, 404)
    assert SECRET not in gone.text


def test_head_has_the_headers_and_no_body(shared_studio):
    g = shared_studio.request("GET", "/studio/css/studio.css")
    h = shared_studio.request("HEAD", "/studio/css/studio.css")
    assert h.status == 200, h
    assert h.raw == b""
    for name in ("Content-Type", "ETag", "Cache-Control", "Content-Length"):
        assert h.headers.get(name) == g.headers.get(name), name


# ------------------------------------------------------------------------------------------------
# What is never served
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/studio/../secret.txt",
    "/studio/js/../../secret.txt",
    "/studio/%2e%2e/secret.txt",
    "/studio/%2E%2E/%2E%2E/secret.txt",
    "/studio/..%2fsecret.txt",
    "/studio/..%2Fsecret.txt",
    "/studio/js%2f..%2f..%2fsecret.txt",
    "/studio/%2e%2e%2fsecret.txt",
    "/studio/%252e%252e/secret.txt",
    "/studio/..%5csecret.txt",
    "/studio/.%2e/secret.txt",
    "/studio/js%2fapp.js",
    "/studio/%2fetc%2fpasswd",
    "/studio//etc/passwd",
    "/studio/index.html%00",
    "/studio/index.html%00.js",
    "/studio/%00",
    "/studio/.hidden",
    "/studio/.git/config",
    "/studio/link-out.txt",
    "/studio/dir-link/secret.txt",
    "/studio/bad%20name.txt",
    "/studio/nope.js",
    "/studio/./index.html",
])
def test_traversal_and_hidden_files_are_404(shared_studio, path):
    r = shared_studio.request("GET", path)
    assert_error(r, 404)
    assert SECRET not in r.text
    assert "root:" not in r.text


@pytest.mark.parametrize("path", ["/studio/js/", "/studio/js", "/studio/js/lib/",
                                  "/studio/index.html/"])
def test_no_directory_listing(shared_studio, path):
    r = shared_studio.request("GET", path)
    assert_error(r, 404)
    assert "app.js" not in r.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_and_head(shared_studio, method):
    r = shared_studio.request(method, "/studio/index.html", raw=b"x")
    assert_error(r, 405)
    assert "GET" in (r.headers.get("Allow") or "")


def test_options_without_cors_headers_is_not_a_preflight(shared_studio):
    assert_error(shared_studio.request("OPTIONS", "/studio/index.html"), 405)


# ------------------------------------------------------------------------------------------------
# Studio.Root
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["missing", "file", "no-index"])
def test_a_bad_studio_root_stops_start_up(make_node, tmp_path, what):
    bad = tmp_path / "bad-root"
    if what == "file":
        bad.write_text("not a directory")
    elif what == "no-index":
        bad.mkdir()
        (bad / "app.js").write_text("x")
    n = make_node(overrides={"Studio": {"Root": str(bad)}}, start=False)
    n.spawn()
    assert n.wait_exit() == 1
    log = n.log_text()
    assert "Studio.Root" in log and str(bad) in log, log


def installed_node(build, storage, prefix, name):
    """A copy of litedistd at <prefix>/bin, as cmake --install lays it out, using the build's
    plugins; the caller stops it."""
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(build.litedistd, prefix / "bin" / "litedistd")
    port = free_port()
    cfg = base_config(port, prefix / "data", storage)
    cfg["Node"]["PluginDirectory"] = str(build.plugin_dir)
    return Node(Build(prefix / "bin"), prefix / "run", cfg, port=port, name=name)


def test_studio_found_beside_an_installed_binary(build, storage, tmp_path):
    """Without Studio.Root, <bin>/../share/litedist/studio is where cmake --install puts it."""
    prefix = tmp_path / "prefix"
    studio = prefix / "share" / "litedist" / "studio"
    studio.mkdir(parents=True)
    (studio / "index.html").write_text("<!doctype html><title>installed</title>")
    n = installed_node(build, storage, prefix, "installed")
    try:
        n.start()
        r = n.request("GET", "/studio/")
        assert r.status == 200, r
        assert r.text == "<!doctype html><title>installed</title>"
    finally:
        assert n.stop() == 0


@pytest.mark.skipif(Path("/usr/local/share/litedist/studio/index.html").exists(),
                    reason="a Studio is installed on this machine")
def test_without_a_studio_the_api_still_runs(build, storage, tmp_path):
    n = installed_node(build, storage, tmp_path / "bare", "bare")
    try:
        n.start()
        assert_error(n.request("GET", "/studio/"), 404, contains="Studio.Root")
        assert n.request("GET", "/").status == 302
        assert n.request("GET", "/health").status == 200
        assert "no Studio files found" in n.log_text()
    finally:
        assert n.stop() == 0


def test_studio_root_from_the_environment(make_node, studio_root):
    n = make_node(env={"LITEDIST_Studio__Root": str(studio_root)})
    assert n.request("GET", "/studio/notes.txt").raw == b"plain"


# ------------------------------------------------------------------------------------------------
# CORS
# ------------------------------------------------------------------------------------------------

API_HEADERS = {"ApiKey": ROOT_KEY, "Database": "cors-db"}


def preflight(node, origin, method="PUT", headers="apikey,content-type,database", path=None,
              extra=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    h.update(extra or {})
    return node.request("OPTIONS", path or "/api/documents/orders/o-1", headers=h)


def assert_no_cors_grant(r):
    for name in ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
                 "Access-Control-Allow-Headers", "Access-Control-Allow-Credentials"):
        assert r.headers.get(name) is None, (name, r.headers.get(name))


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:8080",
                                    "https://localhost", "http://localhost"])
def test_localhost_origins_are_allowed_by_default(node, origin):
    r = node.request("GET", "/api/documents", headers={**API_HEADERS, "Origin": origin})
    assert r.status == 200, r
    assert r.headers.get("Access-Control-Allow-Origin") == origin
    assert "Origin" in (r.headers.get("Vary") or "")
    p = preflight(node, origin)
    assert p.status == 204, p
    assert p.headers.get("Access-Control-Allow-Origin") == origin
    methods = {m.strip() for m in p.headers.get("Access-Control-Allow-Methods").split(",")}
    assert {"GET", "POST", "PUT", "DELETE"} <= methods, methods
    allowed = {h.strip().lower() for h in p.headers.get("Access-Control-Allow-Headers").split(",")}
    assert {"database", "apikey", "replicationapikey", "content-type", "accept"} <= allowed
    assert int(p.headers.get("Access-Control-Max-Age")) > 0
    assert p.raw == b""


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example",
                                    "http://127.0.0.1.nip.io", "null", "http://127.0.0.2:80",
                                    "http://localhost:5173/path", "file://"])
def test_other_origins_get_no_grant(node, origin):
    r = node.request("GET", "/api/documents", headers={**API_HEADERS, "Origin": origin})
    assert r.status == 200, r  # the server answers; the browser keeps the page from reading it
    assert_no_cors_grant(r)
    p = preflight(node, origin)
    assert_error(p, 403, startswith="CORS preflight refused: origin")
    assert_no_cors_grant(p)


def test_errors_carry_the_grant_so_the_studio_can_show_them(node):
    origin = "http://localhost:5173"
    r = node.request("GET", "/api/documents", headers={"Origin": origin, "Database": "x"})
    assert_error(r, 401)
    assert r.headers.get("Access-Control-Allow-Origin") == origin
    r = node.request("GET", "/no/such/route", headers={"Origin": origin})
    assert_error(r, 404)
    assert r.headers.get("Access-Control-Allow-Origin") == origin


@pytest.mark.parametrize("method,headers,refused", [
    ("PATCH", "apikey", "method 'PATCH'"),
    ("TRACE", None, "method 'TRACE'"),
    ("GET", "apikey, x-evil", "header 'x-evil'"),
    ("GET", "authorization", "header 'authorization'"),
    ("POST", "Cookie", "header 'Cookie'"),
])
def test_preflight_for_what_the_api_does_not_take_is_refused(node, method, headers, refused):
    p = preflight(node, "http://localhost:5173", method=method, headers=headers)
    assert_error(p, 403, contains=refused)
    assert_no_cors_grant(p)


@pytest.mark.parametrize("method,headers", [
    ("GET", None), ("GET", ""), ("DELETE", "ApiKey, Database"), ("POST", "accept,apikey"),
    ("GET", "replicationapikey"),
])
def test_preflight_for_what_the_studio_sends_is_allowed(node, method, headers):
    p = preflight(node, "http://127.0.0.1:3000", method=method, headers=headers,
                  path="/dashboard/api/overview")
    assert p.status == 204, p
    assert p.headers.get("Access-Control-Allow-Origin") == "http://127.0.0.1:3000"


def test_private_network_preflight(node):
    p = preflight(node, "http://localhost:5173",
                  extra={"Access-Control-Request-Private-Network": "true"})
    assert p.status == 204, p
    assert p.headers.get("Access-Control-Allow-Private-Network") == "true"
    plain = preflight(node, "http://localhost:5173")
    assert plain.headers.get("Access-Control-Allow-Private-Network") is None


def test_configured_origins_replace_the_localhost_default(make_node):
    n = make_node(overrides={"Studio": {"CorsOrigins": ["https://studio.example.com/",
                                                        "http://localhost:5173"]}})
    for origin in ("https://studio.example.com", "http://localhost:5173"):
        r = n.request("GET", "/api/documents", headers={**API_HEADERS, "Origin": origin})
        assert r.headers.get("Access-Control-Allow-Origin") == origin
        assert preflight(n, origin).status == 204
    for origin in ("http://localhost:5174", "http://127.0.0.1:5173", "http://studio.example.com",
                   "https://studio.example.com.evil.example"):
        r = n.request("GET", "/api/documents", headers={**API_HEADERS, "Origin": origin})
        assert_no_cors_grant(r)
        assert_error(preflight(n, origin), 403)


@pytest.mark.parametrize("bad", ["studio.example.com", "https://studio.example.com/app",
                                 "ftp://x.example", "*"])
def test_a_bad_cors_origin_stops_start_up(make_node, bad):
    n = make_node(overrides={"Studio": {"CorsOrigins": ["http://localhost:5173", bad]}},
                  start=False)
    n.spawn()
    assert n.wait_exit() == 1
    log = n.log_text()
    assert "Studio.CorsOrigins[1]" in log and bad in log, log


def test_the_studio_files_need_no_cors(shared_studio):
    """The node's own Studio is same-origin; its files carry no grant for other origins."""
    r = shared_studio.request("GET", "/studio/", headers={"Origin": "https://evil.example"})
    assert r.status == 200
    assert_no_cors_grant(r)
    assert "Origin" in (r.headers.get("Vary") or "")


def test_etag_follows_the_content_not_the_time(studio_node, studio_root):
    """Rewriting the same bytes (a new mtime) keeps the tag, so browsers keep their copy."""
    before = studio_node.request("GET", "/studio/data.json").headers.get("ETag")
    (studio_root / "data.json").write_bytes(FILES["data.json"][0])
    os.utime(studio_root / "data.json", (1, 1))
    after = studio_node.request("GET", "/studio/data.json")
    assert after.raw == FILES["data.json"][0]
    assert after.headers.get("ETag") == before
