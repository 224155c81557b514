"""System-test harness for litedistd: real server processes on loopback, plain HTTP (HTTPS for a
node given an ssl_context, see test_tls.py).

Only the standard library and pytest are used. The build is found through LD_BIN_DIR (default
<repo>/build/bin): the server at $LD_BIN_DIR/litedistd, its plugins in plugins/, the test-only
plugins in test-plugins/. The storage backend comes from --storage (or LD_STORAGE; default sqlite)
and is written as Storage.Plugin into every generated config, so the suite runs once per backend.

Tests get servers from two fixtures:
  node        one server per test module with the standard key set (STANDARD_KEYS); tests share
              it and use their own database names (see `db`)
  make_node   a factory for servers with their own config; every one is stopped at teardown

Helpers that test modules import (`from conftest import ...`): Node, Api, Response, the key
names, assert_error, check_write_result and the regular expressions.
"""

import ctypes
import hashlib
import http.client
import http.server
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

# What AddressSanitizer, LeakSanitizer and UBSan print when they find something.
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")

import pytest

REPO = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------------------------
# Constants of the contract
# ------------------------------------------------------------------------------------------------

ROLES = ["ADD_DB", "DELETE_DB", "READ_DOCUMENT", "WRITE_DOCUMENT", "UPDATE_DOCUMENT",
         "DELETE_DOCUMENT"]

HEX32 = re.compile(r"^[0-9a-f]{32}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
DIGITS = re.compile(r"^[0-9]+$")

MSG_DB_REQUIRED = "Database header is required."
MSG_DB_INVALID = ("Database name contains invalid characters. Use lowercase letters, numbers, "
                  "'-' or '_' only.")
MSG_KEY_REQUIRED = "ApiKey header is required."
MSG_KEY_INVALID = "ApiKey is invalid."
MSG_INVALID_COLLECTION = "Invalid collection name."
MSG_INVALID_ID = "Invalid document id."
MSG_CACHE_RESERVED = "Collection 'cache' is reserved. Use '/api/cache' endpoints."
MSG_POST_NO_ID = "POST body must include an 'Id' string field."
MSG_PUT_NOT_OBJECT = "PUT body must be a JSON object."
MSG_BAD_JSON_PREFIX = "Request body is not valid JSON"


def msg_no_access(db):
    return f"ApiKey does not have access to database '{db}'."


def msg_no_create(db):
    return f"ApiKey is not allowed to create database '{db}'."


def msg_not_allowed(action):
    return f"ApiKey is not allowed to {action}."


def msg_version_mismatch(coll, doc_id, expected, current):
    return (f"Version mismatch for {coll}/{doc_id}. Expected '{expected}', "
            f"current is '{current if current is not None else '<null>'}'.")


# ------------------------------------------------------------------------------------------------
# The standard key set every `node` fixture server is configured with
# ------------------------------------------------------------------------------------------------

ROOT_KEY = "root"
KEY_ALL = "k-all-roles"             # every role, every database, but not the root key
KEY_LIMITED = "k-limited"           # every role, only LIMITED_DBS
LIMITED_DBS = ["lim-alpha", "lim-gamma"]
KEY_ADD_WRITE = "k-add-and-write"   # ADD_DB + WRITE_DOCUMENT
KEY_NONE = "k-no-roles"             # every database, no role at all


def key_without(role):
    """Name of the standard key holding every role except `role`, on every database."""
    return "k-no-" + role.lower().replace("_", "-")


def key_only(role):
    """Name of the standard key holding just `role`, on every database."""
    return "k-only-" + role.lower().replace("_", "-")


def api_key_entry(key, roles, databases=("*",), name=None, hashed=False):
    """One Auth.ApiKeys entry in auth-config's shape."""
    entry = {"Name": name or key, "Databases": list(databases),
             "Roles": {r: (r in roles) for r in ROLES}}
    if hashed:
        entry["KeyHash"] = "blake2b:" + hashlib.blake2b(key.encode(), digest_size=32).hexdigest()
    else:
        entry["Key"] = key
    return entry


def standard_keys():
    keys = [api_key_entry(KEY_ALL, ROLES),
            api_key_entry(KEY_LIMITED, ROLES, LIMITED_DBS),
            api_key_entry(KEY_ADD_WRITE, ["ADD_DB", "WRITE_DOCUMENT"]),
            api_key_entry(KEY_NONE, [])]
    for role in ROLES:
        keys.append(api_key_entry(key_without(role), [r for r in ROLES if r != role]))
        keys.append(api_key_entry(key_only(role), [role]))
    return keys


# ------------------------------------------------------------------------------------------------
# Command line and build location
# ------------------------------------------------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption("--storage", action="store", default=None,
                     help="storage plugin for every generated config (default: $LD_STORAGE or "
                          "sqlite)")


class Build:
    """Paths of the build under test."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.litedistd = bin_dir / "litedistd"
        self.plugin_dir = bin_dir / "plugins"
        self.test_plugin_dir = bin_dir / "test-plugins"

    def plugin(self, file_name):
        return self.plugin_dir / file_name

    def test_plugin(self, file_name):
        path = self.test_plugin_dir / file_name
        if not path.exists():
            pytest.fail(f"test plugin {path} is missing: build the 'test-plugins' target")
        return path


@pytest.fixture(scope="session")
def build():
    b = Build(Path(os.environ.get("LD_BIN_DIR", REPO / "build" / "bin")).resolve())
    if not os.access(b.litedistd, os.X_OK):
        pytest.fail(f"no litedistd at {b.litedistd}: build first or set LD_BIN_DIR")
    return b


@pytest.fixture(scope="session")
def storage(request):
    return request.config.getoption("--storage") or os.environ.get("LD_STORAGE") or "sqlite"


# ------------------------------------------------------------------------------------------------
# Small utilities
# ------------------------------------------------------------------------------------------------

def free_port():
    """A loopback port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def seg(text):
    """Percent-encodes one path segment (UTF-8; '/' becomes %2F). A segment that is all dots
    ("." or "..") is sent as %2E..., as a careful client does so that no URL library folds it."""
    if text and set(text) == {"."}:
        return "%2E" * len(text)
    return urllib.parse.quote(text, safe="$")


DROP = object()  # in a config override: remove this key


def deep_merge(base, override):
    """Returns base updated with override, recursively; a value of DROP removes the key."""
    out = dict(base)
    for k, v in override.items():
        if v is DROP:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _die_with_parent():
    """preexec_fn: the server gets SIGKILL if pytest dies, so no process outlives a run."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_litedistd(build, args, timeout=10, cwd=None, env=None):
    """Runs a short litedistd command (keygen, --plugin-info, --help); returns CompletedProcess
    with stdout and stderr as text."""
    return subprocess.run([str(build.litedistd), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, preexec_fn=_die_with_parent)


# ------------------------------------------------------------------------------------------------
# Responses and assertions
# ------------------------------------------------------------------------------------------------

class Response:
    """An HTTP answer. Unpacks as (status, headers, body): body is the parsed JSON when the
    answer parses as JSON, else the text. `.raw` holds the bytes, `.text` the decoded text."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get()
        self.raw = raw
        self.text = raw.decode("utf-8", errors="replace")
        try:
            self.body = json.loads(self.text) if raw else None
        except ValueError:
            self.body = self.text

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return f"<Response {self.status} {self.text[:400]!r}>"


def assert_error(resp, status, message=None, startswith=None, contains=None):
    """Asserts an error answer: the status and a JSON body {"Error": "<message>"}."""
    assert resp.status == status, f"expected {status}, got {resp!r}"
    assert isinstance(resp.body, dict) and isinstance(resp.body.get("Error"), str), \
        f"error body is not {{\"Error\": ...}}: {resp!r}"
    err = resp.body["Error"]
    if message is not None:
        assert err == message, f"Error message: {err!r} != {message!r}"
    if startswith is not None:
        assert err.startswith(startswith), f"Error message {err!r} does not start {startswith!r}"
    if contains is not None:
        assert contains in err, f"Error message {err!r} does not contain {contains!r}"
    return err


def assert_ok(resp, status=200):
    assert resp.status == status, f"expected {status}, got {resp!r}"
    return resp.body


def check_write_result(wr, collection, entity_id, op_type, node_id=None, doc=None):
    """Checks the shape of a WriteResult and returns it. op_type: 1 insert, 2 update, 3 delete.
    doc, when given, is the document the Payload must hold (parsed)."""
    assert isinstance(wr, dict), wr
    for field in ("Collection", "EntityId", "Version", "CommittedUtc", "IsDeleted", "Operation"):
        assert field in wr, f"WriteResult lacks {field}: {wr}"
    assert wr["Collection"] == collection
    assert wr["EntityId"] == entity_id
    assert HEX32.match(wr["Version"]), wr["Version"]
    assert ISO_Z.match(wr["CommittedUtc"]), wr["CommittedUtc"]
    assert wr["IsDeleted"] is (op_type == 3)
    op = wr["Operation"]
    for field in ("Id", "NodeId", "TimestampUtc", "Collection", "EntityId", "OperationType",
                  "Payload", "Sequence", "LogSequence", "GlobalSequence", "ParentVersion",
                  "IsTombstone", "IsSynced", "Hlc"):
        assert field in op, f"Operation lacks {field}: {op}"
    assert op["Id"] == wr["Version"]
    if node_id is not None:
        assert op["NodeId"] == node_id
    assert ISO_Z.match(op["TimestampUtc"]), op["TimestampUtc"]
    assert op["Collection"] == collection
    assert op["EntityId"] == entity_id
    assert op["OperationType"] == op_type
    assert isinstance(op["Payload"], str), f"Payload must be a string: {op['Payload']!r}"
    payload = json.loads(op["Payload"])
    if doc is not None:
        assert payload == doc
    assert isinstance(op["LogSequence"], int) and op["LogSequence"] >= 1
    assert op["Sequence"] == op["LogSequence"]
    assert op["GlobalSequence"] is None
    assert op["ParentVersion"] is None or HEX32.match(op["ParentVersion"]), op["ParentVersion"]
    assert op["IsTombstone"] is (op_type == 3)
    assert op["IsSynced"] is False
    assert isinstance(op["Hlc"], str) and DIGITS.match(op["Hlc"]), op["Hlc"]
    return wr


# ------------------------------------------------------------------------------------------------
# Node: one litedistd process
# ------------------------------------------------------------------------------------------------

ACTIVE_NODES = []  # nodes whose log tail is attached to a failing test's report

START_TRIES = 400        # x START_INTERVAL: at most 10 s for a server to answer /health
START_INTERVAL = 0.025
# A module's shared node ends up with a few hundred databases; closing them one by one takes
# ~0.8 s in a release build but 5-10 s under ASan on a busy 2-core machine (measured: 230 LMDB
# databases, 4.8 s). A hang still fails the test, later.
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 15.0


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """A request handler for the servers tests play (a fake peer, a port's impostor): answer()
    sends a JSON document, and nothing is logged."""

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class PortTaken(Exception):
    """The node could not listen: another process holds its port."""


class Node:
    """One litedistd process with its own data directory, config file and log file."""

    def __init__(self, build, workdir: Path, config: dict, args=(), env=None, port=None,
                 name="node"):
        self.build = build
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = workdir / "litedist.json"
        self.log_path = workdir / "litedistd.log"
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.port = port if port is not None else config.get("Node", {}).get("Port")
        self.name = name
        self.config_flag = "--config"  # or "-c"
        self.ssl_context = None  # an ssl.SSLContext: talk HTTPS to a node with Node.Tls
        self.proc = None
        self.returncode = None
        self._log_file = None
        self.write_config()

    # --- process control ---------------------------------------------------------------------

    def write_config(self):
        self.config_path.write_text(json.dumps(self.config, indent=2))

    @property
    def data_dir(self):
        return Path(self.config.get("Node", {}).get("DataDirectory", self.workdir / "data"))

    def command(self):
        return [str(self.build.litedistd), self.config_flag, str(self.config_path), *self.args]

    def spawn(self):
        """Starts the process without waiting for it to answer."""
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        env = dict(os.environ)
        env = {k: v for k, v in env.items() if not k.startswith("LITEDIST_")}
        env.update(self.extra_env)
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"=== harness: starting {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT,
                                     cwd=str(self.workdir), env=env,
                                     preexec_fn=_die_with_parent)
        self.returncode = None
        if self not in ACTIVE_NODES:
            ACTIVE_NODES.append(self)
        return self

    def start(self, port_retries=0):
        """Starts the process and waits until it answers GET /health 200. With port_retries, a
        port another process took between free_port() and the bind is traded for a new one
        (only for a node no one else knows the port of yet)."""
        for attempt in range(port_retries + 1):
            self.spawn()
            try:
                self.wait_healthy()
                return self
            except PortTaken:
                if attempt == port_retries:
                    pytest.fail(f"{self.name}: port {self.port} taken at every try\n"
                                f"{self.log_tail()}")
                self.port = free_port()
                self.config["Node"]["Port"] = self.port
                self.write_config()
        return self

    def _this_start(self):
        """The log since the harness last started the process."""
        text = self.log_text()
        return text[max(text.rfind("=== harness: starting"), 0):]

    def _listening(self):
        """Whether this process holds the listening socket on self.port (Linux's /proc): a
        /health answer alone may come from another test's server that took the port first."""
        pid = self.proc.pid
        try:
            inodes = set()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
            for table in ("/proc/net/tcp", "/proc/net/tcp6"):
                with open(table) as f:
                    next(f)  # the header
                    for line in f:
                        col = line.split()
                        # local address "HEX_IP:HEX_PORT", state 0A is LISTEN, column 9 the inode
                        if (col[3] == "0A" and int(col[1].rsplit(":", 1)[1], 16) == self.port
                                and col[9] in inodes):
                            return True
        except OSError:
            return False
        return False

    def wait_healthy(self):
        for _ in range(START_TRIES):
            if self.proc.poll() is not None:
                self._close_log()
                if "Address already in use" in self._this_start():
                    raise PortTaken(self.port)
                pytest.fail(f"{self.name}: litedistd exited with {self.proc.returncode} during "
                            f"start-up\n{self.log_tail()}")
            try:
                r = self.request("GET", "/health", timeout=1.0)
                if r.status == 200 and self._listening():
                    return
            except OSError:
                pass
            time.sleep(START_INTERVAL)
        pytest.fail(f"{self.name}: /health did not answer 200 within "
                    f"{START_TRIES * START_INTERVAL:.0f} s\n{self.log_tail()}")

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits for the process to end; returns its exit code, or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close_log()
        return self.returncode

    def send_signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends `sig`, waits up to `timeout` s, then SIGKILLs. Returns the exit code (negative
        when killed by a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait_exit(timeout) is None:
                self.proc.kill()
                self.wait_exit(timeout)
        self.returncode = self.proc.returncode
        self._close_log()
        return self.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        return self.wait_exit()

    def restart(self):
        """Stops the process if it runs (SIGTERM), then starts it again with the same config,
        arguments, environment, port and data directory."""
        if self.running():
            self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _close_log(self):
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # --- logs ------------------------------------------------------------------------------------

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} log lines of {self.name} ({self.log_path}) ---\n" + \
            "\n".join(tail)

    # --- HTTP ------------------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, raw=None, timeout=REQUEST_TIMEOUT):
        """One request on a fresh connection to 127.0.0.1:port. `body` is JSON-encoded; `raw`
        (bytes or str) is sent as is. Returns a Response."""
        assert self.port, "node has no known port"
        data = None
        hdrs = dict(headers or {})
        if raw is not None:
            data = raw.encode("utf-8") if isinstance(raw, str) else raw
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        if self.ssl_context is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return Response(resp.status, resp.msg, payload)
        finally:
            conn.close()

    def api(self, db, key=ROOT_KEY):
        return Api(self, db, key)

    def node_info(self):
        r = self.request("GET", "/node")
        assert r.status == 200, r
        return r.body

    def node_id(self):
        return self.node_info()["NodeId"]

    def databases(self, key=ROOT_KEY):
        r = self.request("GET", "/api/databases", headers={"ApiKey": key})
        assert r.status == 200, r
        return r.body


class Api:
    """Document routes for one database and key."""

    def __init__(self, node, db, key=ROOT_KEY):
        self.node, self.db, self.key = node, db, key

    def headers(self):
        h = {"Accept": "application/json"}
        if self.db is not None:
            h["Database"] = self.db
        if self.key is not None:
            h["ApiKey"] = self.key
        return h

    def call(self, method, path, params=None, **kw):
        if params:
            path += "?" + urllib.parse.urlencode(params)
        return self.node.request(method, path, headers={**self.headers(), **kw.pop("headers", {})},
                                 **kw)

    def list_collections(self, **params):
        return self.call("GET", "/api/documents", params)

    def list_docs(self, coll, **params):
        return self.call("GET", f"/api/documents/{seg(coll)}", params)

    def get(self, coll, doc_id, **params):
        return self.call("GET", f"/api/documents/{seg(coll)}/{seg(doc_id)}", params)

    def post(self, coll, doc=None, raw=None, **params):
        return self.call("POST", f"/api/documents/{seg(coll)}", params, body=doc, raw=raw)

    def put(self, coll, doc_id, doc=None, raw=None, **params):
        return self.call("PUT", f"/api/documents/{seg(coll)}/{seg(doc_id)}", params, body=doc,
                         raw=raw)

    def delete(self, coll, doc_id, **params):
        return self.call("DELETE", f"/api/documents/{seg(coll)}/{seg(doc_id)}", params)

    def register(self, coll):
        return self.call("POST", f"/api/documents/{seg(coll)}/register")

    def drop_database(self, name=None):
        return self.call("DELETE", f"/api/databases/{seg(name or self.db)}")

    # Checked shortcuts for test set-up: they fail the test when the server does not answer 200.
    def must_post(self, coll, doc):
        r = self.post(coll, doc)
        assert r.status == 200, r
        return r.body

    def must_put(self, coll, doc_id, doc):
        r = self.put(coll, doc_id, doc)
        assert r.status == 200, r
        return r.body

    def must_delete(self, coll, doc_id):
        r = self.delete(coll, doc_id)
        assert r.status == 200, r
        return r.body

    def must_get(self, coll, doc_id):
        r = self.get(coll, doc_id)
        assert r.status == 200, r
        return r.body

    def absent(self, coll, doc_id):
        r = self.get(coll, doc_id)
        assert r.status == 404, r
        return True


# ------------------------------------------------------------------------------------------------
# Config and fixtures
# ------------------------------------------------------------------------------------------------

def base_config(port, data_dir, storage, node_id="test-node", keys=None, max_body=1048576):
    return {
        # Every test client is 127.0.0.1, so the per-address delay for wrong keys would make
        # each refusal a test asserts slower than the last; test_limits.py checks it on its own.
        "Node": {"NodeId": node_id, "ListenAddress": "127.0.0.1", "Port": port,
                 "DataDirectory": str(data_dir), "MaxBodyBytes": max_body, "LogLevel": "debug",
                 "AuthFailureDelayMilliseconds": 0},
        "Auth": {"Plugins": ["auth-config"], "RootApiKey": ROOT_KEY,
                 "ApiKeys": standard_keys() if keys is None else keys},
        "Storage": {"Plugin": storage, "Sync": "full"},
    }


class NodeFactory:
    """Makes Nodes under one directory and stops every one of them at close()."""

    def __init__(self, build, storage, root: Path):
        self.build, self.storage, self.root = build, storage, root
        self.nodes = []
        self.counter = itertools.count(1)

    def __call__(self, overrides=None, mutate=None, args=(), env=None, start=True, keys=None,
                 node_id="test-node", name=None):
        """A new node. overrides: deep-merged into the base config (DROP removes a key);
        mutate: a function that edits the config dict in place; start=False returns it
        unstarted (call .start() or .spawn())."""
        n = next(self.counter)
        workdir = self.root / f"node{n}"
        port = free_port()
        cfg = base_config(port, workdir / "data", self.storage, node_id=node_id, keys=keys)
        if overrides:
            cfg = deep_merge(cfg, overrides)
        if mutate:
            mutate(cfg)
        node = Node(self.build, workdir, cfg, args=args, env=env, port=port,
                    name=name or f"node{n}")
        self.nodes.append(node)
        if start:
            # The port was free a moment ago; another shard's node may take it first.
            node.start(port_retries=2)
        return node

    def close(self):
        """Stops every node still running and checks it stopped cleanly: exit code 0 and no
        sanitizer report in its log (this is what makes the ASan/UBSan run catch leaks and
        undefined behaviour in the system tests)."""
        problems = []
        for node in self.nodes:
            try:
                was_running = node.proc is not None and node.proc.poll() is None
                code = node.stop()
                log = node.log_text()
                if was_running and code != 0:
                    problems.append(f"{node.name}: exit code {code} on SIGTERM")
                if SANITIZER_REPORT.search(log):
                    problems.append(f"{node.name}: sanitizer report in its log")
            finally:
                if node in ACTIVE_NODES:
                    ACTIVE_NODES.remove(node)
        if problems:
            pytest.fail("; ".join(problems) + "\n" + "\n".join(n.log_tail() for n in self.nodes))


@pytest.fixture
def make_node(build, storage, tmp_path):
    factory = NodeFactory(build, storage, tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def node(build, storage, tmp_path_factory):
    """One server per module, standard keys; tests use their own databases on it."""
    factory = NodeFactory(build, storage, tmp_path_factory.mktemp("shared"))
    yield factory(name="shared")
    factory.close()


_db_counter = itertools.count(1)


@pytest.fixture
def db(request):
    """A database name unique to this test (valid, lowercase, at most 63 characters)."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    return f"t{next(_db_counter)}-{digest}-{base}"[:63].rstrip("-_")


@pytest.fixture
def new_db(db):
    """Returns a function making further unique database names: new_db('x') -> '<db>-x'."""
    def make(suffix):
        return f"{db[:50]}-{suffix}"[:63]
    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the log tail of every running server to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for n in ACTIVE_NODES:
            report.sections.append((f"litedistd log: {n.name}", n.log_tail()))
