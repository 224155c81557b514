"""The Redis-protocol listener of the cache (docs/resp.md), against a 2-node cluster with
redis-cli and a real client library (python3-redis): the same replicated cache as /api/cache
(a key set over RESP on A is read over HTTP and RESP on B), the TTL family, SET's options,
MGET/MSET/DEL/EXISTS, SCAN across pages, AUTH and roles as Redis errors, pipelining, Redis's
error texts and the protocol's own errors."""

import signal
import socket
import subprocess
import threading
import time

import pytest
import redis

from conftest import (ROOT_KEY, KEY_LIMITED, NodeFactory, api_key_entry, assert_ok, free_port,
                      key_only, key_without, seg)
from test_replication import REPL_KEY, add_peer, wait_for

WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
NOAUTH = "NOAUTH Authentication required."


def resp_overrides():
    return {"Node": {"ReplicationApiKey": REPL_KEY, "AntiEntropyIntervalSeconds": 1,
                     "ReplicationTimeoutSeconds": 2, "LogLevel": "info"},
            "Resp": {"Enabled": True, "Port": free_port()}}


@pytest.fixture(scope="module")
def cluster(build, storage, tmp_path_factory):
    factory = NodeFactory(build, storage, tmp_path_factory.mktemp("resp"))
    a = factory(overrides=resp_overrides(), node_id="a", name="a")
    b = factory(overrides=resp_overrides(), node_id="b", name="b")
    add_peer(a, b)
    add_peer(b, a)
    yield a, b
    factory.close()


def rport(node):
    return node.config["Resp"]["Port"]


def client(node, db, key=ROOT_KEY, **kw):
    """A python3-redis client logged in to db with an ApiKey (AUTH <database> <apikey>)."""
    return redis.Redis(host="127.0.0.1", port=rport(node), username=db, password=key,
                       decode_responses=True, socket_timeout=10, **kw)


def cli(node, *args, db=None, key=ROOT_KEY):
    """redis-cli's answer (text) to one command."""
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(rport(node))]
    if db:
        cmd += ["--user", db, "--pass", key, "--no-auth-warning"]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=20)
    return r.stdout.strip()


def raw(node, data, expect_close=False):
    """Sends bytes on a fresh connection and reads replies until the server closes or stays
    quiet for 0.5 s (bounded)."""
    s = socket.create_connection(("127.0.0.1", rport(node)), timeout=5)
    try:
        s.sendall(data)
        s.settimeout(0.5 if not expect_close else 5)
        got = b""
        for _ in range(100):
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            got += d
        return got
    finally:
        s.close()


def http_get(node, db, key):
    return node.request("GET", "/api/cache/" + seg(key), headers={"Database": db,
                                                                  "ApiKey": ROOT_KEY})


# ------------------------------------------------------------------------------------------------
# The same replicated cache
# ------------------------------------------------------------------------------------------------

def test_set_on_a_is_read_over_http_and_resp_on_b(cluster, db):
    a, b = cluster
    assert cli(a, "SET", "greeting", "hello world", "EX", "600", db=db) == "OK"
    assert cli(a, "GET", "greeting", db=db) == "hello world"
    wait_for(lambda: http_get(b, db, "greeting").status == 200, what="the key on b over HTTP")
    got = http_get(b, db, "greeting")
    assert got.body["Value"] == "hello world"  # a RESP value is a JSON string
    rb = client(b, db)
    assert rb.get("greeting") == "hello world"
    assert 590 <= rb.ttl("greeting") <= 600
    # Values written over HTTP read as their JSON text; strings as their contents.
    a.request("PUT", "/api/cache/obj?ttl=1m", raw='{"n": 1.10, "s": "x"}',
              headers={"Database": db, "ApiKey": ROOT_KEY})
    assert client(a, db).get("obj") == '{"n": 1.10, "s": "x"}'
    ra = client(a, db)
    ra.set("num", "5")
    assert ra.get("num") == "5"
    assert assert_ok(http_get(a, db, "num"))["Value"] == "5"
    # Any UTF-8, control characters and quotes included, round-trips.
    odd = 'line1\nline2\t"q" \\ ключ \x00 end'
    ra.set("odd", odd)
    assert ra.get("odd") == odd
    assert assert_ok(http_get(a, db, "odd"))["Value"] == odd
    with pytest.raises(redis.ResponseError, match="value is not UTF-8 text"):
        redis.Redis(port=rport(a), username=db, password=ROOT_KEY).set("bin", b"\xff\xfe")
    # A key with JSON's special characters is escaped in the entry (its Id and Key) and read back.
    qkey = 'say "hi" \\ ключ'
    ra.set(qkey, "q")
    assert ra.get(qkey) == "q"
    got = assert_ok(http_get(a, db, qkey))
    assert got["Key"] == qkey and got["Value"] == "q"


def test_ttl_family(cluster, db):
    a, _ = cluster
    r = client(a, db)
    assert r.set("t", "v", ex=100)
    assert 99 <= r.ttl("t") <= 100 and 98000 <= r.pttl("t") <= 100000
    assert r.set("d", "v")
    assert 299 <= r.ttl("d") <= 300  # the cache's default ttl, as PUT without ?ttl
    assert r.ttl("missing") == -2 and r.pttl("missing") == -2
    assert r.expire("t", 50) is True and 49 <= r.ttl("t") <= 50
    # EXPIRE is a write like any other: the new expiry replicates, the value stays.
    rb = client(cluster[1], db)
    wait_for(lambda: 0 < rb.ttl("t") <= 50, what="the new expiry on b")
    assert rb.get("t") == "v"
    assert r.pexpire("t", 20000) is True and 19000 <= r.pttl("t") <= 20000
    assert r.expire("missing", 50) is False
    assert r.execute_command("EXPIRE", "t", 10, "GT") == 0  # 10 s is not later than 20 s
    assert r.execute_command("EXPIRE", "t", 30, "GT") == 1
    assert r.execute_command("EXPIRE", "t", 40, "LT") == 0
    assert r.execute_command("EXPIRE", "t", 40, "NX") == 0  # every cache key has an expiry
    with pytest.raises(redis.ResponseError, match="^Unsupported option ZZ$"):
        r.execute_command("EXPIRE", "t", 40, "ZZ")
    assert r.persist("missing") is False
    with pytest.raises(redis.ResponseError, match="always expire"):
        r.persist("t")
    with pytest.raises(redis.ResponseError, match="^invalid expire time in 'set' command$"):
        r.set("t", "v", ex=0)
    with pytest.raises(redis.ResponseError, match=r"^ttl cannot exceed 2592000000ms\.$"):
        r.set("t", "v", ex=31 * 86400)
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("SET", "t", "v", "EX", "soon")
    # EXPIRE 0 leaves the key expired: gone for reads, as Redis deletes it.
    assert r.expire("t", 0) is True
    assert r.get("t") is None and r.ttl("t") == -2 and r.exists("t") == 0
    # PX/EXAT/PXAT
    assert r.set("p", "v", px=1500) and 1000 <= r.pttl("p") <= 1500
    at = int(time.time()) + 200
    assert r.set("p", "v", exat=at) and 190 <= r.ttl("p") <= 200
    assert r.set("p", "v", pxat=int(time.time() * 1000) - 1000)  # in the past: expired at once
    assert r.get("p") is None


def test_set_options_nx_xx_get_keepttl(cluster, db):
    a, _ = cluster
    r = client(a, db)
    assert r.set("k", "1", nx=True) is True
    assert r.set("k", "2", nx=True) is None and r.get("k") == "1"
    assert r.set("absent", "2", xx=True) is None and r.get("absent") is None
    assert r.set("k", "3", xx=True) is True and r.get("k") == "3"
    assert r.set("k", "4", get=True) == "3" and r.get("k") == "4"
    assert r.set("new", "x", get=True) is None and r.get("new") == "x"
    assert r.set("k", "5", ex=1000)
    assert r.set("k", "6", keepttl=True) and 990 <= r.ttl("k") <= 1000 and r.get("k") == "6"
    assert r.set("k", "7") and r.ttl("k") <= 300  # a SET without options takes the default
    for bad in (["NX", "XX"], ["EX", "10", "PX", "10"], ["KEEPTTL", "EX", "10"], ["ZZ"]):
        with pytest.raises(redis.ResponseError, match="^syntax error$"):
            r.execute_command("SET", "k", "v", *bad)
    with pytest.raises(redis.ResponseError, match=r"^Cache key cannot exceed 256 characters\.$"):
        r.set("x" * 257, "v")


def test_mget_mset_del_exists(cluster, db):
    a, b = cluster
    r = client(a, db)
    assert r.mset({"m1": "a", "m2": "b", "m3": "c"}) is True
    assert r.mget("m1", "nope", "m3") == ["a", None, "c"]
    assert r.exists("m1", "m2", "m1", "nope") == 3
    assert r.delete("m1", "nope", "m2") == 2
    assert r.mget("m1", "m2", "m3") == [None, None, "c"]
    assert r.delete("m1") == 0
    wait_for(lambda: client(b, db).get("m3") == "c", what="m3 on b")
    wait_for(lambda: client(b, db).exists("m2") == 0, what="the delete on b")
    with pytest.raises(redis.ResponseError,
                       match="^wrong number of arguments for 'mset' command$"):
        r.execute_command("MSET", "a", "1", "b")


def test_scan_match_count_across_pages(cluster, db):
    a, _ = cluster
    r = client(a, db)
    r.mset({f"s:{i:02}": str(i) for i in range(23)})
    r.mset({f"other:{i}": "x" for i in range(5)})
    cursor, keys, pages = 0, [], 0
    for _ in range(50):
        cursor, page = r.scan(cursor=cursor, match="s:*", count=5)
        assert len(page) <= 5
        keys += page
        pages += 1
        if cursor == 0:
            break
    assert keys == [f"s:{i:02}" for i in range(23)] and pages >= 5
    assert sorted(r.scan_iter(match="other:[0-2]")) == ["other:0", "other:1", "other:2"]
    assert len(list(r.scan_iter(count=3))) == 28
    assert r.scan(0, _type="hash") == (0, [])
    with pytest.raises(redis.ResponseError, match="^invalid cursor$"):
        r.scan(cursor=123456)
    # redis-cli --scan pages the same way.
    out = cli(a, "--scan", "--pattern", "s:1*", db=db).split()
    assert out == [f"s:{i}" for i in range(10, 20)]


# ------------------------------------------------------------------------------------------------
# Auth and roles
# ------------------------------------------------------------------------------------------------

def test_auth_errors(cluster, db):
    a, _ = cluster
    assert raw(a, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") == f"-{NOAUTH}\r\n".encode()
    assert raw(a, b"PING\r\n") == f"-{NOAUTH}\r\n".encode()
    anon = redis.Redis(port=rport(a), decode_responses=True)
    # redis-py 4.3 maps WRONGPASS to AuthenticationError only while connecting.
    with pytest.raises(redis.ResponseError, match=f"^{WRONGPASS}$"):
        anon.execute_command("AUTH", db, "not-a-key")
    with pytest.raises(redis.ResponseError, match="needs a database and an ApiKey"):
        anon.execute_command("AUTH", ROOT_KEY)
    # A key without access to the database named is refused alike.
    with pytest.raises(redis.ResponseError, match=f"^{WRONGPASS}$"):
        anon.execute_command("AUTH", db, KEY_LIMITED)
    with pytest.raises(redis.ResponseError, match="Database name contains invalid characters"):
        anon.execute_command("AUTH", "Bad Name!", ROOT_KEY)
    with pytest.raises(redis.AuthenticationError, match="^Authentication required"):
        anon.get("k")  # NOAUTH: every refusal left the connection logged out
    assert anon.execute_command("AUTH", db, ROOT_KEY) is True
    assert anon.ping() is True
    # A refused AUTH keeps the earlier login, as in Redis.
    with pytest.raises(redis.ResponseError, match=f"^{WRONGPASS}$"):
        anon.execute_command("AUTH", db, "not-a-key")
    assert anon.ping() is True
    # The client library's own login, and redis-cli's.
    with pytest.raises((redis.AuthenticationError, redis.ResponseError), match="WRONGPASS"):
        client(a, db, key="nope").ping()
    assert cli(a, "GET", "k") == NOAUTH
    r = subprocess.run(["redis-cli", "-p", str(rport(a)), "--user", db, "--pass", "nope",
                        "--no-auth-warning", "GET", "k"], capture_output=True, text=True,
                       timeout=20)
    assert WRONGPASS in r.stdout + r.stderr


def test_roles_are_refused_as_over_http(cluster, db):
    a, _ = cluster
    client(a, db).set("live", "v")
    ro = client(a, db, key=key_only("READ_DOCUMENT"))
    assert ro.get("live") == "v"
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match=r"^ApiKey is not allowed to write documents\.$"):
        ro.set("x", "1")
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match=r"^ApiKey is not allowed to delete documents\.$"):
        ro.delete("live")
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match=r"^ApiKey is not allowed to update documents\.$"):
        ro.expire("live", 10)
    wo = client(a, db, key=key_only("WRITE_DOCUMENT"))
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match=r"^ApiKey is not allowed to read documents\.$"):
        wo.get("live")
    assert wo.set("fresh", "1") is True  # creating needs WRITE_DOCUMENT only
    # Overwriting a live key needs UPDATE_DOCUMENT: the writer finds out, as for PUT.
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match=r"^ApiKey is not allowed to update documents\.$"):
        wo.set("fresh", "2")
    nu = client(a, db, key=key_without("UPDATE_DOCUMENT"))
    with pytest.raises(redis.exceptions.NoPermissionError, match="update documents"):
        nu.set("live", "2")
    assert client(a, db).get("live") == "v" and client(a, db).get("fresh") == "1"
    # A database that does not exist needs ADD_DB, as on HTTP.
    ro_new = client(a, db + "-new", key=key_only("READ_DOCUMENT"))
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match=f"^ApiKey is not allowed to create database '{db}-new'\\.$"):
        ro_new.get("k")


def exchange(sock, data, want):
    """Sends data on an open connection and reads until len(want) bytes came (bounded), so
    pipelined commands arrive together and their replies can be compared as one."""
    sock.sendall(data)
    got = b""
    deadline = time.monotonic() + 10
    while len(got) < len(want) and time.monotonic() < deadline:
        d = sock.recv(65536)
        if not d:
            break
        got += d
    return got


def resp_cmd(*args):
    """One command as a RESP array of bulk strings."""
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out += f"${len(b)}\r\n".encode() + b + b"\r\n"
    return out


def test_kept_roles_do_not_widen_a_pipeline(cluster, db):
    """A connection reuses the chain's answer for its key (docs/resp.md): a read-only key's
    pipelined GET, SET, GET, DEL, GET get the reads and the refusals in order, in one batch and
    the next; an AUTH inside a pipeline applies to the commands after it, not before."""
    a, _ = cluster
    client(a, db).set("v", "1")
    nope_w = b"-NOPERM ApiKey is not allowed to write documents.\r\n"
    nope_d = b"-NOPERM ApiKey is not allowed to delete documents.\r\n"
    s = socket.create_connection(("127.0.0.1", rport(a)), timeout=10)
    try:
        assert exchange(s, resp_cmd("AUTH", db, key_only("READ_DOCUMENT")), b"+OK\r\n") == \
            b"+OK\r\n"
        batch = (resp_cmd("GET", "v") + resp_cmd("SET", "v", "2") + resp_cmd("GET", "v") +
                 resp_cmd("DEL", "v") + resp_cmd("GET", "v"))
        want = b"$1\r\n1\r\n" + nope_w + b"$1\r\n1\r\n" + nope_d + b"$1\r\n1\r\n"
        for _ in range(2):  # the second batch finds the answers kept by the first
            assert exchange(s, batch, want) == want
        # Root, then the read-only key again, in one pipeline: each command has its login's roles.
        batch = (resp_cmd("AUTH", db, ROOT_KEY) + resp_cmd("SET", "w", "x") +
                 resp_cmd("AUTH", db, key_only("READ_DOCUMENT")) + resp_cmd("SET", "w", "y") +
                 resp_cmd("GET", "w") + resp_cmd("AUTH", db, key_only("WRITE_DOCUMENT")) +
                 resp_cmd("GET", "w"))
        want = (b"+OK\r\n+OK\r\n+OK\r\n" + nope_w + b"$1\r\nx\r\n+OK\r\n" +
                b"-NOPERM ApiKey is not allowed to read documents.\r\n")
        assert exchange(s, batch, want) == want
    finally:
        s.close()
    assert client(a, db).get("v") == "1"


def test_reload_reaches_open_connections(make_node, db):
    """A key's roles changed or the key removed by a reload (SIGHUP) apply to an open
    connection's next command, though it kept the chain's earlier answers."""
    rw = ["ADD_DB", "READ_DOCUMENT", "WRITE_DOCUMENT", "UPDATE_DOCUMENT"]
    n = make_node(keys=[api_key_entry("k-rw", rw), api_key_entry("k-gone", rw)],
                  overrides={"Resp": {"Enabled": True, "Port": free_port()}})
    conns = {}
    try:
        for k in ("k-rw", "k-gone"):
            conns[k] = socket.create_connection(("127.0.0.1", rport(n)), timeout=10)
            # The second SET asks what the SET after the reload asks (the database exists).
            want = b"+OK\r\n+OK\r\n+OK\r\n$1\r\na\r\n"
            assert exchange(conns[k], resp_cmd("AUTH", db, k) + resp_cmd("SET", k, "a") +
                            resp_cmd("SET", k, "a") + resp_cmd("GET", k), want) == want
        n.config["Auth"]["ApiKeys"] = [api_key_entry("k-rw", ["READ_DOCUMENT"])]
        n.write_config()
        n.send_signal(signal.SIGHUP)

        def reloaded():
            try:
                client(n, db, key="k-rw").set("probe", "1")
            except redis.exceptions.NoPermissionError:
                return True
            return False
        wait_for(reloaded, what="the reload's new roles on a new connection")
        want = (b"-NOPERM ApiKey is not allowed to write documents.\r\n" +
                b"$1\r\na\r\n")
        assert exchange(conns["k-rw"], resp_cmd("SET", "k-rw", "b") + resp_cmd("GET", "k-rw"),
                        want) == want
        want = f"-{WRONGPASS}\r\n".encode() * 2
        assert exchange(conns["k-gone"], resp_cmd("GET", "k-gone") + resp_cmd("SET", "x", "1"),
                        want) == want
    finally:
        for c in conns.values():
            c.close()


def test_a_chain_beyond_auth_config_is_asked_each_batch(make_node, build, db, tmp_path):
    """With a plugin other than auth-config in the chain (auth-probe logs each decide), a
    connection reuses an answer only within a pipelined batch: ten GETs sent together ask
    once or twice (TCP may split them), the next batch asks again."""
    dump = tmp_path / "probe.txt"
    n = make_node(overrides={"Resp": {"Enabled": True, "Port": free_port()},
                             "Auth": {"Plugins": ["auth-config",
                                                  str(build.test_plugin("auth-probe.so"))],
                                      "auth-probe": {"Dump": str(dump)}}})
    client(n, db).set("k", "v")  # root (auth-config) creates the database; probe lacks ADD_DB

    def reads():
        return dump.read_text().count("decide cache.read ")
    s = socket.create_connection(("127.0.0.1", rport(n)), timeout=10)
    try:
        assert exchange(s, resp_cmd("AUTH", db, "probe"), b"+OK\r\n") == b"+OK\r\n"
        batch = resp_cmd("GET", "k") * 10
        want = b"$1\r\nv\r\n" * 10
        assert exchange(s, batch, want) == want
        first = reads()
        assert 1 <= first <= 2
        assert exchange(s, batch, want) == want
        assert first + 1 <= reads() <= first + 2
    finally:
        s.close()


# ------------------------------------------------------------------------------------------------
# Protocol
# ------------------------------------------------------------------------------------------------

def test_pipeline_of_1000_commands_answers_in_order(cluster, db):
    a, _ = cluster
    r = client(a, db)
    p = r.pipeline(transaction=False)
    for i in range(250):
        p.set(f"p{i}", str(i))
        p.get(f"p{i}")
        p.exists(f"p{i}", "nope")
        p.ttl(f"p{i}")
    res = p.execute()
    assert len(res) == 1000
    for i in range(250):
        s, g, e, t = res[4 * i:4 * i + 4]
        assert s is True and g == str(i) and e == 1 and 0 < t <= 300


def resp_cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def test_pipelined_writes_in_one_read_answer_each_in_order(cluster, db):
    """Writes sent in one packet go to the writer together (docs/resp.md): a write the writer
    refuses in the middle (overwriting a live key without UPDATE_DOCUMENT), one refused before it
    is queued (a bad key) and a skipped one (NX on a live key) each get their own answer, in
    place, and the others are stored."""
    a, _ = cluster
    client(a, db).set("held", "old")
    wo = key_only("WRITE_DOCUMENT")
    cmds = [resp_cmd("AUTH", db, wo)]
    expect = [b"+OK\r\n"]
    for i in range(12):
        if i == 4:
            cmds.append(resp_cmd("SET", "held", "new"))
            expect.append(b"-NOPERM ApiKey is not allowed to update documents.\r\n")
        elif i == 7:
            cmds.append(resp_cmd("SET", " blank-edged ", "x"))
            expect.append(b"-ERR Cache key must be UTF-8 text without control characters.\r\n")
        elif i == 9:
            cmds.append(resp_cmd("SET", "held", "nx", "NX"))
            expect.append(b"$-1\r\n")
        else:
            cmds.append(resp_cmd("SET", f"pl{i}", f"v{i}"))
            expect.append(b"+OK\r\n")
    cmds.append(resp_cmd("MSET", "pm1", "a", "pm2", "b"))
    expect.append(b"+OK\r\n")
    assert raw(a, b"".join(cmds)) == b"".join(expect)
    r = client(a, db)
    assert r.get("held") == "old"
    assert r.mget([f"pl{i}" for i in range(12) if i not in (4, 7, 9)] + ["pm1", "pm2"]) == \
        [f"v{i}" for i in range(12) if i not in (4, 7, 9)] + ["a", "b"]


def test_redis_error_texts(cluster, db):
    a, _ = cluster
    r = client(a, db)
    cases = [
        (["FOO", "a", "b"], "unknown command 'FOO', with args beginning with: 'a' 'b' "),
        (["GET"], "wrong number of arguments for 'get' command"),
        (["SET", "a"], "wrong number of arguments for 'set' command"),
        (["TTL", "a", "b"], "wrong number of arguments for 'ttl' command"),
        (["PING", "a", "b"], "wrong number of arguments for 'ping' command"),
        (["CLIENT", "SETNAME", "a b"],
         "Client names cannot contain spaces, newlines or special characters."),
        (["CLIENT", "FOO"], "unknown subcommand 'FOO'. Try CLIENT HELP."),
        (["SCAN", "x"], "invalid cursor"),
        (["SCAN", "0", "COUNT", "0"], "syntax error"),
        (["HELLO", "4"], "NOPROTO unsupported protocol version"),
    ]
    for args, text in cases:
        with pytest.raises(redis.ResponseError) as e:
            r.execute_command(*args)
        assert str(e.value) == text, args
    assert r.client_setname("worker-1") is True and r.client_getname() == "worker-1"
    assert r.ping() is True and cli(a, "PING", "hi", db=db) == "hi"
    assert r.command_count() == 18
    cmds = r.command()  # COMMAND: what client libraries ask to find the keys of a command
    assert cmds["mset"]["arity"] == -3 and cmds["mset"]["step_count"] == 2
    assert (cmds["get"]["first_key_pos"], cmds["del"]["last_key_pos"]) == (1, -1)
    assert cmds["ping"]["first_key_pos"] == 0
    docs = r.execute_command("COMMAND DOCS", "get", "nope")  # RESP2: a flat name, doc list
    assert docs[0] == "get" and "summary" in docs[1] and len(docs) == 2
    # redis-cli starts with COMMAND DOCS in interactive mode; in one-shot mode it just runs.
    assert cli(a, "PING", db=db) == "PONG"


def test_hello_3_and_inline_and_protocol_errors(cluster, db):
    a, _ = cluster
    hello = f"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n${len(db)}\r\n{db}\r\n$4\r\nroot\r\n"
    got = raw(a, hello.encode() + b"*2\r\n$3\r\nGET\r\n$4\r\nnone\r\n")
    assert got.startswith(b"%7\r\n$6\r\nserver\r\n$8\r\nlitedist\r\n")
    assert b"$5\r\nproto\r\n:3\r\n" in got
    assert got.endswith(b"_\r\n")  # RESP3's null
    assert raw(a, b"HELLO 3\r\n").startswith(b"-NOAUTH HELLO must be called with the client "
                                             b"already authenticated")
    # Inline commands, quoting as redis-cli's, and several commands in one packet.
    got = raw(a, f'AUTH {db} root\r\nSET "in line" "a\\tb"\r\nGET "in line"\r\nQUIT\r\nPING\r\n'
              .encode(), expect_close=True)
    assert got == b"+OK\r\n+OK\r\n$3\r\na\tb\r\n+OK\r\n"  # nothing after QUIT
    assert raw(a, b'PING "a\r\n', expect_close=True) == \
        b"-ERR Protocol error: unbalanced quotes in request\r\n"
    for data, text in [(b"*x\r\n", b"invalid multibulk length"),
                       (b"*1\r\n$-1\r\n", b"invalid bulk length"),
                       (b"*1\r\nx\r\n", b"expected '$', got 'x'")]:
        assert raw(a, data, expect_close=True) == b"-ERR Protocol error: " + text + b"\r\n"
    big = 1048576 + 1  # above the test nodes' Node.MaxBodyBytes
    assert raw(a, f"*1\r\n${big}\r\n".encode(), expect_close=True) == \
        b"-ERR Protocol error: invalid bulk length\r\n"


def test_held_refusal_and_closing_with_work_in_flight(make_node, db):
    """An unknown key's refusal is held (Node.AuthFailureDelayMilliseconds) with the commands
    after it waiting in order; a client that leaves while its refusal or its writes are pending
    leaves the node serving (the sanitizer run checks nothing is used after it is freed)."""
    n = make_node(overrides={"Node": {"AuthFailureDelayMilliseconds": 300},
                             "Resp": {"Enabled": True, "Port": free_port()}})
    auth_bad = f"AUTH {db} wrong\r\n".encode()
    t0 = time.monotonic()
    got = raw(n, auth_bad + b"PING\r\n" + f"AUTH {db} root\r\nPING\r\n".encode())
    assert got == f"-{WRONGPASS}\r\n-{NOAUTH}\r\n+OK\r\n+PONG\r\n".encode()
    assert time.monotonic() - t0 >= 0.25
    # Leave while the refusal is held, and while 300 pipelined writes are in the writer.
    s = socket.create_connection(("127.0.0.1", rport(n)), timeout=5)
    s.sendall(auth_bad)
    s.close()
    s = socket.create_connection(("127.0.0.1", rport(n)), timeout=5)
    s.sendall(f"AUTH {db} root\r\n".encode() +
              b"".join(f"SET gone{i} v\r\n".encode() for i in range(300)))
    s.close()
    r = client(n, db)
    wait_for(lambda: r.exists(*[f"gone{i}" for i in range(300)]) == 300,
             what="the writes of the client that left")
    assert r.get("gone299") == "v"


def test_sigterm_answers_the_writes_in_flight_then_closes(make_node, db):
    """Shutdown drains RESP as it does HTTP: a client streams pipelined SETs through SIGTERM;
    the node stops reading commands, sends the replies of the writes it started, closes the
    connection and exits 0 at once (not at Node.ShutdownTimeoutSeconds, though the client
    would go on sending); every acknowledged SET is there after the restart."""
    n = make_node(overrides={"Node": {"ShutdownTimeoutSeconds": 10},
                             "Resp": {"Enabled": True, "Port": free_port()}})
    s = socket.create_connection(("127.0.0.1", rport(n)), timeout=10)
    sent = {"chunks": 0, "error": None}

    def stream():
        # Bounded: at most 400 chunks of 50 SETs, one every 20 ms (8 s), or until the close.
        try:
            s.sendall(f"AUTH {db} root\r\n".encode())
            for c in range(400):
                s.sendall(b"".join(f"SET burst{c * 50 + i} v\r\n".encode() for i in range(50)))
                sent["chunks"] += 1
                time.sleep(0.02)
        except OSError as e:  # the node closed the connection
            sent["error"] = e

    sender = threading.Thread(target=stream)
    sender.start()
    got = b""
    t0 = None
    try:
        for _ in range(100000):  # bounded: ends at the node's close (recv timeout 10 s)
            try:
                d = s.recv(65536)
            except ConnectionResetError:  # closed with commands unread: a reset after the data
                break
            if not d:
                break
            got += d
            if t0 is None and got.count(b"+OK\r\n") > 200:  # the stream is running
                t0 = time.monotonic()
                n.send_signal(signal.SIGTERM)
    finally:
        sender.join(timeout=15)
        s.close()
    assert t0 is not None, got[-200:]
    assert n.wait_exit() == 0, n.log_tail()
    assert time.monotonic() - t0 < 5, "the shutdown waited for its timeout"
    assert sent["error"] is not None and sent["chunks"] < 400, sent  # cut, not finished
    # Replies are in command order and whole: the acknowledged SETs are the first ones.
    acked = got.count(b"+OK\r\n") - 1
    assert got == b"+OK\r\n" * (acked + 1), got[-200:]
    assert acked >= 200
    n.start()
    r = client(n, db)
    keys = [f"burst{i}" for i in range(acked)]
    for at in range(0, acked, 500):
        assert r.exists(*keys[at:at + 500]) == len(keys[at:at + 500])
    # and no command read after the signal ran: the next ones were never started
    assert r.exists(*[f"burst{i}" for i in range(acked, acked + 500)]) == 0


def test_connection_cap_and_idle_timeout(make_node, db):
    """Resp.MaxConnections counts RESP connections apart from HTTP's: one more is answered as
    Redis does at maxclients; Resp.IdleTimeoutSeconds closes a silent connection."""
    n = make_node(overrides={"Resp": {"Enabled": True, "Port": free_port(), "MaxConnections": 1,
                                      "IdleTimeoutSeconds": 1}})
    first = socket.create_connection(("127.0.0.1", rport(n)), timeout=5)
    try:
        first.sendall(b"QUIT_NOT\r\n")  # any reply proves the connection is accepted and counted
        assert first.recv(200).startswith(b"-ERR unknown command 'QUIT_NOT'")
        # Sent nothing: bytes arriving after the node's close would reset the connection
        # before the answer is read.
        assert raw(n, b"", expect_close=True) == b"-ERR max number of clients reached\r\n"
        assert n.request("GET", "/health").status == 200  # HTTP has its own connections
        # Silent for 1 s: closed by the node (recv sees the end of stream), within 5 s.
        first.settimeout(5)
        assert first.recv(200) == b""
    finally:
        first.close()
    # The slot is free again (bounded wait: the close is seen at once, the count follows).
    def served():
        try:
            return raw(n, f"AUTH {db} root\r\nPING\r\n".encode()) == b"+OK\r\n+PONG\r\n"
        except ConnectionResetError:  # still over the cap: answered, closed, reset
            return False
    wait_for(served, what="a connection after the idle one went")
