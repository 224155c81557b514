#!/usr/bin/env python3
# bench/run's multi-process workloads B5-B13 (query scan, visibility, catch-up, three-node load,
# memory, a new node joining, visibility over TLS, the changes feed): starts litedistd nodes,
# pouchdb-server peers and the raw engines, appends one JSON record per measurement to the records file that
# bench/report.py reads.
# Standard library only.
import argparse
import bisect
import datetime
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import visibility_probe  # noqa: E402  (tools/: the probe B6 uses against litedist)

REPL_KEY = "I_AM_ONE_OF_YOU"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --- processes --------------------------------------------------------------------------------

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """One server process, pinned to the server CPU; stopped (TERM, then KILL after 10 s) by
    stop(), which every scenario calls in a finally block."""

    def __init__(self, name, argv, work, pin, cwd=None, env=None):
        self.name, self.port = name, None
        self.log_path = os.path.join(work, name + ".log")
        self.logf = open(self.log_path, "wb")
        self.p = subprocess.Popen(pin + argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                  cwd=cwd, env=env)

    def alive(self):
        return self.p.poll() is None

    def rss_kib(self):
        """VmRSS and VmHWM of the process, from /proc (KiB)."""
        out = {}
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0])
        return out

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()

    def tail(self, n=20):
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")


class Ctx:
    def __init__(self, a):
        self.a = a
        self.procs = []
        self.server_pin = ["taskset", "-c", a.server_cpu] if a.server_cpu else []
        self.client_pin = ["taskset", "-c", a.client_cpu] if a.client_cpu else []

    def record(self, **rec):
        with open(self.a.records, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def wait_up(self, proc, path="/health", timeout=30, tls=None):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited at start:\n{proc.tail()}")
            try:
                c = (http.client.HTTPSConnection("127.0.0.1", proc.port, timeout=1,
                                                 context=tls.client_context()) if tls else
                     http.client.HTTPConnection("127.0.0.1", proc.port, timeout=1))
                c.request("GET", path)
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"{proc.name} did not answer on port {proc.port}")

    def litedist(self, name, plugin="sqlite", sync="full", peers=(), node_id=None, port=None,
                 data=None, tls=None, node_extra=None, storage_extra=None, resp_port=None):
        """tls: a Pki; the node then serves HTTPS with mutual TLS and its peers are https://.
        node_extra, storage_extra: more keys of the Node and Storage sections. resp_port: the
        RESP listener's port (Resp.Enabled)."""
        port = port or free_port()
        data = data or os.path.join(self.a.work, name)
        os.makedirs(data, exist_ok=True)
        scheme = "https" if tls else "http"
        node = {"Port": port, "DataDirectory": data, "LogLevel": "warn",
                "NodeId": node_id or name, "PeerProbeIntervalSeconds": 0,
                "SeedPeers": [{"NodeId": pid, "BaseUrl": f"{scheme}://127.0.0.1:{pp}",
                               "IsActive": True} for pid, pp in peers]}
        if tls:
            node["Tls"] = {"CertificateFile": tls.node_cert, "KeyFile": tls.node_key,
                           "PeerCaFile": tls.ca, "ClientCaFile": tls.ca}
        node.update(node_extra or {})
        cfg = os.path.join(self.a.work, name + ".json")
        conf = {"Node": node, "Storage": {"Plugin": plugin, "Sync": sync, **(storage_extra or {})}}
        if resp_port:
            conf["Resp"] = {"Enabled": True, "Port": resp_port}
        with open(cfg, "w") as f:
            json.dump(conf, f)
        p = Proc(name, [self.a.litedistd, "--config", cfg], self.a.work, self.server_pin)
        p.port = port
        self.procs.append(p)
        self.wait_up(p, tls=tls)
        return p

    def pouchdb(self, name, port=None):
        port = port or free_port()
        d = os.path.join(self.a.work, name)
        os.makedirs(d, exist_ok=True)
        p = Proc(name, [self.a.pouchdb, "-p", str(port), "-o", "127.0.0.1", "-d", d, "-c",
                        os.path.join(d, "config.json"), "-n"], self.a.work, self.server_pin,
                 cwd=d)
        p.port = port
        self.procs.append(p)
        self.wait_up(p, "/")
        return p

    def stop_all(self):
        for p in self.procs:
            p.stop()
        self.procs = []

    def stop(self, p):
        p.stop()
        self.procs.remove(p)


def call(port, method, path, body=None, headers=None, timeout=600, tls=None):
    c = (http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                     context=tls.client_context()) if tls else
         http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, out


def doc(i, pad=24):
    """The document of bench/wrk/common.lua's document() for n = i, id doc-<i>, Note padded."""
    return {"Customer": f"customer-{i % 100000:05d}", "Email": f"customer-{i % 100000:05d}@example.com",
            "Status": "shipped", "Items": [{"Sku": f"sku-{i % 997:03d}", "Qty": 1 + i % 5,
                                            "Price": 19.95},
                                           {"Sku": f"sku-{(i * 7) % 997:03d}", "Qty": 1,
                                            "Price": 5.5}],
            "Total": 20 + i % 300 + 0.45, "Note": "x" * pad}


def wrk_preload(ctx, port, n, collection, database="bench", conns=32, pad=None):
    """POSTs doc-0 .. doc-<n-1> with bench/wrk/preload.lua; returns its figures."""
    argv = ctx.client_pin + ["wrk", "-t1", f"-c{conns}", "-d3600s", "--timeout", "10s", "-s",
                             os.path.join(ROOT, "bench/wrk/preload.lua"),
                             f"http://127.0.0.1:{port}", "--", str(n), collection, database]
    env = dict(os.environ)
    if pad:
        env["BENCH_DOC_PAD"] = str(pad)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=3600, env=env).stdout
    line = [x for x in out.splitlines() if x.startswith("BENCH_JSON ")]
    if not line or "BENCH_ERRORS" in out:
        raise BenchError(f"preload of {n} documents failed:\n{out[-2000:]}")
    j = json.loads(line[-1][len("BENCH_JSON "):])
    if j.get("documents_acked") != n:
        raise BenchError(f"preload acknowledged {j.get('documents_acked')} of {n}")
    return j


def couch_load(port, db, n, pad=24, batch=1000):
    st, _ = call(port, "PUT", f"/{db}")
    if st not in (201, 412):
        raise BenchError(f"pouchdb-server: PUT /{db} answered {st}")
    t0 = time.monotonic()
    for s in range(0, n, batch):
        docs = []
        for i in range(s, min(n, s + batch)):
            d = doc(i, pad)
            d["_id"] = f"doc-{i}"
            docs.append(d)
        st, body = call(port, "POST", f"/{db}/_bulk_docs", {"docs": docs})
        if st != 201 or b'"error"' in body:
            raise BenchError(f"pouchdb-server: _bulk_docs answered {st} {body[:200]!r}")
    return n / (time.monotonic() - t0)


def timed_loop(seconds, fn, min_runs=1):
    """Calls fn() again and again for `seconds` (at least min_runs times, at most 100000);
    returns the per-call latencies in seconds."""
    lat = []
    t_end = time.monotonic() + seconds
    while (time.monotonic() < t_end or len(lat) < min_runs) and len(lat) < 100000:
        t0 = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t0)
    return lat


# --- B5: LiteQL WHERE scan ---------------------------------------------------------------------

B5_QUERY = "SELECT $ FROM orders WHERE $.Total > 310"
B5_TAKE = 10000


def kept_request(conn, method, path, body, headers):
    """One request on a kept-alive client connection, reopened once when the server closed it
    while it idled (pouchdb-server, on Node.js, closes a connection idle for 5 s: the other
    targets' measured runs last longer). Returns the response, read."""
    for attempt in (1, 2):
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            conn.close()
            if attempt == 2:
                raise


def b5(ctx):
    a = ctx.a
    n = a.scan_docs
    expect = sum(1 for i in range(n) if 20 + i % 300 + 0.45 > 310)
    ld = ctx.litedist("b5-litedist", sync="off")
    log(f"B5: loading {n:,} documents into litedistd")
    wrk_preload(ctx, ld.port, n, "orders")
    pd = ctx.pouchdb("b5-pouchdb")
    log(f"B5: loading {n:,} documents into pouchdb-server")
    couch_load(pd.port, "bench", n)
    raw_path = os.path.join(a.work, "b5-raw.sqlite")
    con = sqlite3.connect(raw_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE docs (k BLOB PRIMARY KEY, v TEXT) WITHOUT ROWID")
    with con:
        con.executemany("INSERT INTO docs VALUES (?, ?)",
                        ((f"orders\0doc-{i}".encode(), json.dumps(dict(Id=f"doc-{i}", **doc(i))))
                         for i in range(n)))

    hdr = {"Database": "bench", "ApiKey": "root"}
    conn_l = http.client.HTTPConnection("127.0.0.1", ld.port, timeout=600)
    conn_p = http.client.HTTPConnection("127.0.0.1", pd.port, timeout=600)
    body_l = json.dumps({"Query": B5_QUERY, "Take": B5_TAKE})
    body_p = json.dumps({"selector": {"Total": {"$gt": 310}}, "limit": B5_TAKE})

    def q_litedist():
        status, body = kept_request(conn_l, "POST", "/api/query", body_l,
                                    dict(hdr, **{"Content-Type": "application/json"}))
        # The count from the answer's head: the client does not parse the rows (nor does raw).
        m = re.search(rb'"ReturnedRows":\s*(\d+)', body[:4096])
        if status != 200 or not m or int(m.group(1)) != expect:
            raise BenchError(f"B5 litedist query: {status}, {body[:300]!r}, wanted {expect}")

    def q_pouch():
        status, body = kept_request(conn_p, "POST", "/bench/_find", body_p,
                                    {"Content-Type": "application/json"})
        if status != 200 or body.count(b'"_id":') != expect:
            raise BenchError(f"B5 pouchdb _find: {status}, {body.count(b'_id')} docs")

    def q_raw():
        rows = con.execute("SELECT v FROM docs WHERE k >= ? AND k < ? AND "
                           "json_extract(v, '$.Total') > 310", (b"orders\0", b"orders\1")).fetchall()
        if len(rows) != expect:
            raise BenchError(f"B5 raw sqlite: {len(rows)} rows")

    def measure(targets):
        for target, fn in targets:
            fn()  # warm-up: caches filled, every target's answer checked once
        for r in range(1, a.repeats + 1):
            for target, fn in targets:
                lat = timed_loop(a.duration, fn)
                ctx.record(workload="B5", target=target, repeat=r, value=len(lat) / sum(lat),
                           unit="queries/s", p50_ms=1e3 * statistics.median(lat), runs=len(lat),
                           documents=n, matched=expect)
                log(f"B5 {target} #{r}: {len(lat) / sum(lat):.2f} queries/s "
                    f"({1e3 * statistics.median(lat):.1f} ms each)")

    measure((("litedist", q_litedist), ("pouchdb", q_pouch), ("sqlite-raw", q_raw)))

    # The same query with an index on $.Total on both servers (issue 18): litedist's planner
    # picks it by itself (EXPLAIN says so); pouchdb-server's _find is told to use its index.
    log("B5: CREATE INDEX on $.Total (litedist) and _index on Total (pouchdb-server)")
    ld_index(ld.port, "bench", "orders", "b5_total", "$.Total", B5_QUERY)
    st, body = call(pd.port, "POST", "/bench/_index",
                    {"index": {"fields": ["Total"]}, "ddoc": "b5-total", "name": "b5-total"})
    if st not in (200, 201):
        raise BenchError(f"B5 pouchdb _index: {st} {body[:200]!r}")
    body_pi = json.dumps({"selector": {"Total": {"$gt": 310}}, "limit": B5_TAKE,
                          "use_index": ["b5-total", "b5-total"]})

    def q_pouch_indexed():
        status, body = kept_request(conn_p, "POST", "/bench/_find", body_pi,
                                    {"Content-Type": "application/json"})
        if status != 200 or body.count(b'"_id":') != expect or b'"warning"' in body:
            raise BenchError(f"B5 pouchdb indexed _find: {status}, {body[:300]!r}")

    measure((("litedist-indexed", q_litedist), ("pouchdb-indexed", q_pouch_indexed)))
    conn_l.close()
    conn_p.close()
    con.close()


def ld_index(port, database, coll, name, path, probe, timeout=1800):
    """CREATE INDEX name ON coll (path) on a litedistd, then waits (bounded) until EXPLAIN of
    `probe` names it: the online build has committed and the planner uses it."""
    hdr = {"Database": database, "ApiKey": "root"}
    st, body = call(port, "POST", "/api/query",
                    {"Query": f"CREATE INDEX {name} ON {coll} ({path})"}, hdr)
    if st != 200:
        raise BenchError(f"CREATE INDEX {name}: {st} {body[:300]!r}")
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        st, body = call(port, "POST", "/api/query", {"Query": "EXPLAIN " + probe}, hdr)
        if st != 200:
            raise BenchError(f"EXPLAIN {probe}: {st} {body[:300]!r}")
        if json.loads(body)["Rows"][0]["Index"] == name:
            return
        time.sleep(0.2)
    raise BenchError(f"index {name} not ready after {timeout} s")


# --- B17: a point lookup through an index against GET by id (issue 18) -----------------------------

def b17(ctx):
    """One litedistd with --scan-docs documents and an index on $.Customer (unique per document
    up to 100,000): SELECT $ ... WHERE $.Customer = '<one>' against GET /api/documents/orders/<id>
    of the same document, alternating, one client connection each, over random documents."""
    a = ctx.a
    n = a.scan_docs
    ld = ctx.litedist("b17-litedist", sync="off")
    log(f"B17: loading {n:,} documents into litedistd")
    wrk_preload(ctx, ld.port, n, "orders")
    ld_index(ld.port, "bench", "orders", "b17_customer", "$.Customer",
             "SELECT $ FROM orders WHERE $.Customer = 'customer-00001'")
    hdr = {"Database": "bench", "ApiKey": "root", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", ld.port, timeout=600)
    rng = random.Random(17)
    distinct = min(n, 100000)

    def q_index():
        i = rng.randrange(distinct)
        q = json.dumps({"Query": f"SELECT $ FROM orders WHERE $.Customer = 'customer-{i:05d}'",
                        "Take": 1})
        conn.request("POST", "/api/query", body=q, headers=hdr)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or b'"ReturnedRows":1' not in body[:4096]:
            raise BenchError(f"B17 indexed lookup: {r.status}, {body[:300]!r}")

    def q_get():
        i = rng.randrange(distinct)
        conn.request("GET", f"/api/documents/orders/doc-{i}", headers=hdr)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise BenchError(f"B17 GET by id: {r.status}, {body[:300]!r}")

    targets = (("litedist-index-point", q_index), ("litedist-get", q_get))
    for _, fn in targets:
        fn()
    for r in range(1, a.repeats + 1):
        for target, fn in targets:
            lat = timed_loop(a.duration, fn)
            ctx.record(workload="B17", target=target, repeat=r, value=len(lat) / sum(lat),
                       unit="lookups/s", p50_ms=1e3 * statistics.median(lat),
                       p99_ms=1e3 * pct(sorted(lat), 99), runs=len(lat), documents=n)
            log(f"B17 {target} #{r}: {len(lat) / sum(lat):.0f} lookups/s "
                f"(p50 {1e3 * statistics.median(lat):.3f} ms)")
    conn.close()


# --- B6: time until a write on A is visible on B ------------------------------------------------

def couch_probe(a_port, b_port, db, n, prefix, poll_ms=0.2, timeout_s=10.0):
    """visibility_probe's loop over the CouchDB API: PUT a token on A (with the current _rev),
    poll B until it has it. Returns the latencies (ms) and the number lost. Each call writes
    its own ids (`prefix`): an id written by an earlier repeat has a _rev this call does not
    know, and CouchDB refuses a PUT without it (409 conflict)."""
    ca = http.client.HTTPConnection("127.0.0.1", a_port, timeout=10)
    cb = http.client.HTTPConnection("127.0.0.1", b_port, timeout=10)
    revs, samples, lost = {}, [], 0
    h = {"Content-Type": "application/json"}
    for i in range(n):
        token = uuid.uuid4().hex
        did = f"{prefix}p{i % 50}"
        body = {"token": token}
        if did in revs:
            body["_rev"] = revs[did]
        ca.request("PUT", f"/{db}/{did}", body=json.dumps(body), headers=h)
        r = ca.getresponse()
        j = json.loads(r.read())
        if r.status not in (200, 201):
            raise BenchError(f"pouchdb write failed: {r.status} {j}")
        revs[did] = j["rev"]
        t0 = time.perf_counter()
        while True:
            cb.request("GET", f"/{db}/{did}")
            r = cb.getresponse()
            got = r.read()
            if r.status == 200 and json.loads(got).get("token") == token:
                samples.append((time.perf_counter() - t0) * 1e3)
                break
            if time.perf_counter() - t0 > timeout_s:
                lost += 1
                break
            time.sleep(poll_ms / 1e3)
    ca.close()
    cb.close()
    return samples, lost


def pct(sorted_ms, p):
    return visibility_probe.percentile(sorted_ms, p)


def wait_visible(port, path, headers=None, timeout_s=30.0, what="a write"):
    """Polls GET path on port until it answers 200 (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st, _ = call(port, "GET", path, headers=headers, timeout=10)
        if st == 200:
            return
        time.sleep(0.05)
    raise BenchError(f"B6: {what} was not visible on port {port} within {timeout_s:.0f} s")


def b6(ctx):
    a = ctx.a
    n = a.probe_writes
    pa, pb = free_port(), free_port()
    A = ctx.litedist("b6-a", peers=[("b6-b", pb)], port=pa)
    B = ctx.litedist("b6-b", peers=[("b6-a", pa)], port=pb)
    lh = {"Database": "probe", "ApiKey": "root"}
    st, body = call(A.port, "PUT", "/api/documents/probe/warm", {"x": 1}, lh)
    if st != 200:
        raise BenchError(f"B6: litedist warm-up write failed: {st} {body[:200]!r}")
    # Both sides have the database and their links before the clock starts: A's write is on B.
    wait_visible(B.port, "/api/documents/probe/warm", lh, what="litedist's warm-up write")
    PA, PB = ctx.pouchdb("b6-pouch-a"), ctx.pouchdb("b6-pouch-b")
    for p in (PA, PB):
        st, body = call(p.port, "PUT", "/probe")
        if st not in (201, 412):  # 412: it exists already
            raise BenchError(f"pouchdb-server: PUT /probe answered {st} {body[:200]!r}")
    st, body = call(PB.port, "POST", "/_replicate",
                    {"source": f"http://127.0.0.1:{PA.port}/probe", "target": "probe",
                     "continuous": True})
    if st not in (200, 202):
        raise BenchError(f"pouchdb continuous replication did not start: {st} {body[:200]!r}")
    # Likewise: the continuous replication runs once a write on PA reaches PB.
    st, body = call(PA.port, "PUT", "/probe/warm", {"x": 1})
    if st not in (200, 201):
        raise BenchError(f"pouchdb warm-up write failed: {st} {body[:200]!r}")
    wait_visible(PB.port, "/probe/warm", what="pouchdb's warm-up write")
    for r in range(1, a.repeats + 1):
        out = subprocess.run(ctx.client_pin + [sys.executable, os.path.join(ROOT,
                             "tools/visibility_probe.py"), "--a", f"http://127.0.0.1:{A.port}",
                             "--b", f"http://127.0.0.1:{B.port}", "-n", str(n), "--json"],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise BenchError(f"visibility_probe failed: {out.stdout} {out.stderr}")
        j = json.loads(out.stdout)
        ctx.record(workload="B6", target="litedist", repeat=r, value=j["p50_ms"], unit="ms",
                   p50_ms=j["p50_ms"], p99_ms=j["p99_ms"], max_ms=j["max_ms"], lost=j["lost"],
                   writes=n)
        log(f"B6 litedist #{r}: p50 {j['p50_ms']:.2f} ms, p99 {j['p99_ms']:.2f} ms")
        samples, lost = couch_probe(PA.port, PB.port, "probe", n, prefix=f"r{r}-")
        s = sorted(samples)
        ctx.record(workload="B6", target="pouchdb", repeat=r, value=pct(s, 50), unit="ms",
                   p50_ms=pct(s, 50), p99_ms=pct(s, 99), max_ms=s[-1] if s else None,
                   lost=lost, writes=n)
        log(f"B6 pouchdb #{r}: p50 {pct(s, 50):.2f} ms, p99 {pct(s, 99):.2f} ms")
        if j["lost"] or lost:
            raise BenchError(f"B6: writes never visible (litedist {j['lost']}, pouchdb {lost})")


# --- B13: a commit reaching a subscribed changes-feed client ---------------------------------------

def feed_latency(port, n, prefix, follow, write):
    """n sequential writes, each timed from sending it until `follow` (a thread reading the feed
    into `seen`) saw its id. Returns (sorted latencies ms, sorted write latencies ms, sorted
    feed-after-answer ms (negative: the change arrived before the write's own answer), lost)."""
    seen, cv, stop = {}, threading.Condition(), threading.Event()

    def run():
        try:
            follow(seen, cv, stop)
        except (OSError, http.client.HTTPException, ValueError) as e:
            if not stop.is_set():  # after the last write the feed may end any way it likes
                log(f"B13: the feed reader failed: {e}")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    lat, wlat, after, lost = [], [], [], 0
    try:
        for i in range(n):
            k = f"{prefix}{i}"
            t0 = time.monotonic()
            write(k)
            t1 = time.monotonic()
            with cv:
                if not cv.wait_for(lambda: k in seen, timeout=10):
                    lost += 1
                    continue
            lat.append((seen[k] - t0) * 1e3)
            wlat.append((t1 - t0) * 1e3)
            after.append((seen[k] - t1) * 1e3)
    finally:
        stop.set()
    t.join(timeout=15)
    return sorted(lat), sorted(wlat), sorted(after), lost


def b13_litedist(port, n, prefix):
    h = {"Database": "feed", "ApiKey": "root"}
    ready = threading.Event()

    def follow(seen, cv, stop):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/api/changes?feed=continuous&since=now&heartbeat=1000", headers=h)
        resp = c.getresponse()
        ready.set()
        while not stop.is_set():
            line = resp.readline()
            if not line:
                break
            if line.strip():
                ch = json.loads(line)
                with cv:
                    seen[ch["Id"]] = time.monotonic()
                    cv.notify_all()
        c.close()

    wc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def write(k):
        if not ready.wait(10):
            raise BenchError("B13: the litedist feed did not open")
        wc.request("PUT", f"/api/documents/items/{k}", body=json.dumps({"k": k}),
                   headers=dict(h, **{"Content-Type": "application/json"}))
        r = wc.getresponse()
        r.read()
        if r.status != 200:
            raise BenchError(f"B13 litedist write answered {r.status}")

    try:
        return feed_latency(port, n, prefix, follow, write)
    finally:
        wc.close()


def b13_pouchdb(port, n, prefix):
    st, body = call(port, "GET", "/feed")
    if st != 200:
        raise BenchError(f"B13 pouchdb GET /feed answered {st}")
    since = [json.loads(body)["update_seq"]]

    def follow(seen, cv, stop):
        # CouchDB-style: one longpoll after another, each from the last_seq of the one before.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            c.request("GET", f"/feed/_changes?feed=longpoll&timeout=1000&since={since[0]}")
            r = c.getresponse()
            j = json.loads(r.read())
            now = time.monotonic()
            with cv:
                for ch in j.get("results", []):
                    seen.setdefault(ch["id"], now)
                cv.notify_all()
            since[0] = j.get("last_seq", since[0])
        c.close()

    wc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def write(k):
        wc.request("PUT", f"/feed/{k}", body=json.dumps({"k": k}),
                   headers={"Content-Type": "application/json"})
        r = wc.getresponse()
        r.read()
        if r.status not in (200, 201):
            raise BenchError(f"B13 pouchdb write answered {r.status}")

    try:
        return feed_latency(port, n, prefix, follow, write)
    finally:
        wc.close()


def b13(ctx):
    a = ctx.a
    n = a.probe_writes
    # Sync full is the durable figure; Sync off leaves out the fsync, so that sending a write to
    # receiving its change comes close to the feed's own part (commit to subscriber).
    nodes = {"litedist": ctx.litedist("b13-litedist"),
             "litedist-sync-off": ctx.litedist("b13-litedist-off", sync="off")}
    for node in nodes.values():
        st, body = call(node.port, "PUT", "/api/documents/items/warm", {"x": 1},
                        {"Database": "feed", "ApiKey": "root"})
        if st != 200:
            raise BenchError(f"B13: litedist warm-up write failed: {st} {body[:200]!r}")
    P = ctx.pouchdb("b13-pouchdb")
    st, body = call(P.port, "PUT", "/feed")
    if st not in (201, 412):
        raise BenchError(f"pouchdb-server: PUT /feed answered {st} {body[:200]!r}")
    targets = [(t, b13_litedist, node.port) for t, node in nodes.items()]
    targets.append(("pouchdb", b13_pouchdb, P.port))
    for r in range(1, a.repeats + 1):
        for target, fn, port in targets:
            s, w, aft, lost = fn(port, n, f"r{r}-")
            if lost or not s:
                raise BenchError(f"B13 {target}: {lost} of {n} writes never reached the feed")
            ctx.record(workload="B13", target=target, repeat=r, value=pct(s, 50), unit="ms",
                       p50_ms=pct(s, 50), p99_ms=pct(s, 99), max_ms=s[-1],
                       write_p50_ms=pct(w, 50), write_p99_ms=pct(w, 99),
                       after_answer_p50_ms=pct(aft, 50), after_answer_p99_ms=pct(aft, 99),
                       writes=n, loadavg=loadavg())
            log(f"B13 {target} #{r}: write sent -> change received p50 {pct(s, 50):.2f} ms, "
                f"p99 {pct(s, 99):.2f} ms (the write alone: p50 {pct(w, 50):.2f} ms, "
                f"p99 {pct(w, 99):.2f} ms; change received after the write's answer: p50 "
                f"{pct(aft, 50):.2f} ms, p99 {pct(aft, 99):.2f} ms); load {loadavg()}")


# --- B11: write-to-visible over https:// peers against http:// ones; handshakes per minute -----

class Pki:
    """A throw-away CA and one certificate (IP 127.0.0.1, server and client use) that every B11
    node serves, presents to its peers and that the probe presents as a client; the openssl
    command line makes them."""

    def __init__(self, d):
        os.makedirs(d, exist_ok=True)

        def openssl(*args):
            subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True,
                           timeout=60)

        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=litedist bench CA")
        with open(os.path.join(d, "node.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        openssl("req", *ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=node")
        openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "node.ext")
        self.ca, self.node_cert, self.node_key = (os.path.join(d, f) for f in
                                                  ("ca.pem", "node.pem", "node.key"))

    def client_context(self):
        return visibility_probe.tls_context(self.ca, self.node_cert, self.node_key)

    def probe_args(self):
        return ["--cafile", self.ca, "--cert", self.node_cert, "--cert-key", self.node_key]


def handshakes(port, pki):
    st, body = call(port, "GET", "/api/replication/status",
                    headers={"ReplicationApiKey": REPL_KEY}, timeout=10, tls=pki)
    if st != 200:
        raise BenchError(f"replication status answered {st}")
    h = json.loads(body)["TlsClientHandshakes"]
    return h["Full"], h["Resumed"]


def b11(ctx):
    """Two pairs of litedistd (SQLite, Sync full), each node the other's seed peer: one pair
    over http://, one over https:// with mutual TLS. Per repeat, visibility_probe on each pair
    in turn (p50 of time until visible). Then, on the TLS pair after that warm-up, a steady
    10 writes/s on A for --b11-seconds: the client handshakes both nodes made meanwhile (status
    TlsClientHandshakes), per minute. Probes are off (PeerProbeIntervalSeconds 0, as in every
    workload here): each dashboard probe's WebSocket is a connection of its own."""
    a = ctx.a
    pki = Pki(os.path.join(a.work, "pki"))
    pairs = {}
    for target, tls in (("litedist-plain", None), ("litedist-tls", pki)):
        pa, pb = free_port(), free_port()
        na, nb = f"b11-{target}-a", f"b11-{target}-b"
        A = ctx.litedist(na, peers=[(nb, pb)], port=pa, tls=tls)
        B = ctx.litedist(nb, peers=[(na, pa)], port=pb, tls=tls)
        st, body = call(A.port, "PUT", "/api/documents/probe/warm", {"x": 1},
                        {"Database": "probe", "ApiKey": "root"}, timeout=10, tls=tls)
        if st != 200:
            raise BenchError(f"B11 {target}: the first write answered {st} {body[:200]!r}")
        pairs[target] = (A, B, tls)
    time.sleep(1)  # both pairs have the database and their links before the clock starts
    for r in range(1, a.repeats + 1):
        for target, (A, B, tls) in pairs.items():
            scheme = "https" if tls else "http"
            out = subprocess.run(ctx.client_pin + [
                sys.executable, os.path.join(ROOT, "tools/visibility_probe.py"),
                "--a", f"{scheme}://127.0.0.1:{A.port}", "--b", f"{scheme}://127.0.0.1:{B.port}",
                "-n", str(a.probe_writes), "--json", *(tls.probe_args() if tls else [])],
                capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise BenchError(f"visibility_probe ({target}) failed: {out.stdout} {out.stderr}")
            j = json.loads(out.stdout)
            ctx.record(workload="B11", target=target, repeat=r, value=j["p50_ms"], unit="ms",
                       p50_ms=j["p50_ms"], p99_ms=j["p99_ms"], max_ms=j["max_ms"],
                       lost=j["lost"], writes=a.probe_writes)
            log(f"B11 {target} #{r}: p50 {j['p50_ms']:.2f} ms, p99 {j['p99_ms']:.2f} ms")
            if j["lost"]:
                raise BenchError(f"B11 {target}: {j['lost']} writes never visible")
    A, B, _ = pairs["litedist-tls"]
    before = [handshakes(n.port, pki) for n in (A, B)]
    writer = visibility_probe.Client(f"https://127.0.0.1:{A.port}", "probe", "root",
                                     pki.client_context())
    t_end = time.monotonic() + a.b11_seconds
    i = 0
    while time.monotonic() < t_end:
        st, body = writer.call("PUT", f"/api/documents/steady/s{i % 100}", {"i": i})
        if st != 200:
            raise BenchError(f"B11 steady write {i} answered {st} {body[:200]!r}")
        i += 1
        time.sleep(0.1)
    after = [handshakes(n.port, pki) for n in (A, B)]
    minutes = a.b11_seconds / 60
    full = sum(x[0] - y[0] for x, y in zip(after, before)) / minutes
    resumed = sum(x[1] - y[1] for x, y in zip(after, before)) / minutes
    ctx.record(workload="B11-handshakes", target="litedist-tls", repeat=1,
               value=full + resumed, unit="/min", full_per_min=full, resumed_per_min=resumed,
               writes=i, seconds=a.b11_seconds, nodes=2)
    log(f"B11 handshakes after warm-up, both nodes: {full:.1f} full + {resumed:.1f} resumed "
        f"per minute ({i} writes in {a.b11_seconds} s)")


# --- B7: catch-up of a node that missed N ops ---------------------------------------------------

def repl_status(port):
    st, body = call(port, "GET", "/api/replication/status", headers={"ReplicationApiKey": REPL_KEY})
    if st != 200:
        raise BenchError(f"replication status answered {st}")
    return json.loads(body)


def db_status(port, db):
    s = repl_status(port)
    dbs = s.get("Databases", s) if isinstance(s, dict) else s
    for d in dbs:
        if d.get("DatabaseName") == db:
            return d
    return None


def wait_converged(ports, db, timeout):
    """Until every node's VersionVector of db is the same (and non-empty): returns the seconds
    waited and the nodes' statuses, or raises after timeout."""
    t0 = time.monotonic()
    while True:
        sts = [db_status(p, db) for p in ports]
        vvs = [json.dumps(s.get("VersionVector"), sort_keys=True) if s else None for s in sts]
        if all(vvs) and len(set(vvs)) == 1:
            return time.monotonic() - t0, sts
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"{db}: version vectors still differ after {timeout} s: {vvs}")
        time.sleep(0.02)


def b7(ctx):
    a = ctx.a
    n = a.catchup_ops
    for size, pad in (("200B", 24), ("1KB", 850)):
        for r in range(1, a.repeats + 1):
            pa, pb = free_port(), free_port()
            tag = f"b7-{size}-{r}"
            A = ctx.litedist(tag + "-a", peers=[(tag + "-b", pb)], port=pa)
            B = ctx.litedist(tag + "-b", peers=[(tag + "-a", pa)], port=pb)
            # B is a member that knew the database and then went down: a node that never saw a
            # database does not pull it, it waits for the other side's push (backing off).
            call(A.port, "PUT", "/api/documents/items/warm", {"x": 1},
                 {"Database": "bench", "ApiKey": "root"})
            wait_converged([A.port, B.port], "bench", 60)
            ctx.stop(B)
            log(f"B7 {size} #{r}: writing {n:,} documents on A while B is down")
            wrk_preload(ctx, A.port, n, "items", pad=pad)
            t0 = time.monotonic()
            B = ctx.litedist(tag + "-b", peers=[(tag + "-a", pa)], port=pb)
            _, sts = wait_converged([A.port, B.port], "bench", 1800)
            secs = time.monotonic() - t0  # from B's start: its start-up is part of catching up
            d = [s.get("Digest") for s in sts]
            # The ops B took: the preload's few re-sent upserts are ops too.
            ops = sum(sts[1]["VersionVector"].values()) - 1
            ctx.record(workload=f"B7-{size}", target="litedist", repeat=r, value=ops / secs,
                       unit="ops/s", seconds=secs, ops=ops, digests_equal=d[0] == d[1])
            log(f"B7 {size} litedist #{r}: {ops / secs:,.0f} ops/s ({ops:,} ops in {secs:.2f} s)")
            if d[0] != d[1]:
                raise BenchError(f"B7: equal version vectors, different digests {d}")
            ctx.stop(A)
            ctx.stop(B)
            shutil.rmtree(os.path.join(a.work, tag + "-a"), ignore_errors=True)
            shutil.rmtree(os.path.join(a.work, tag + "-b"), ignore_errors=True)

            PA, PB = ctx.pouchdb(tag + "-pa"), ctx.pouchdb(tag + "-pb")
            couch_load(PA.port, "bench", n, pad)
            t0 = time.monotonic()
            st, body = call(PB.port, "POST", "/_replicate",
                            {"source": f"http://127.0.0.1:{PA.port}/bench", "target": "bench",
                             "create_target": True}, timeout=3600)
            secs = time.monotonic() - t0
            j = json.loads(body)
            written = j.get("docs_written", 0)
            if st != 200 or written != n:
                raise BenchError(f"B7 pouchdb replication: {st} {body[:300]!r}")
            ctx.record(workload=f"B7-{size}", target="pouchdb", repeat=r, value=n / secs,
                       unit="ops/s", seconds=secs, ops=n)
            log(f"B7 {size} pouchdb #{r}: {n / secs:,.0f} docs/s ({secs:.2f} s)")
            ctx.stop(PA)
            ctx.stop(PB)


# --- B8: three nodes, 1k writes/s each, lag and divergence --------------------------------------

def b8(ctx):
    a = ctx.a
    ports = [free_port() for _ in range(3)]
    names = [f"b8-n{i + 1}" for i in range(3)]
    nodes = []
    for i in range(3):
        peers = [(names[j], ports[j]) for j in range(3) if j != i]
        nodes.append(ctx.litedist(names[i], peers=peers, port=ports[i]))
    for p in ports:  # the database and its links exist on every node before the load
        call(p, "PUT", "/api/documents/probe/warm", {"x": 1},
             {"Database": "bench", "ApiKey": "root"})
    time.sleep(1)
    secs = a.b8_seconds
    rate = a.b8_rate
    log(f"B8: 3 nodes x {rate} writes/s for {secs} s, lag probed meanwhile")
    wrks = []
    for i, p in enumerate(ports):
        argv = ctx.client_pin + ["wrk", "-t1", "-c32", f"-d{secs}s", "--timeout", "10s",
                                 "--latency", "-s", os.path.join(ROOT, "bench/wrk/paced_insert.lua"),
                                 f"http://127.0.0.1:{p}", "--", f"b8-n{i + 1}", str(rate),
                                 "items", "bench"]
        wrks.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True))
    # The lag probe: a marker written on one node (in turn), polled on the other two until both
    # have it; its time to visible on both is that write's lag.
    lags, lost = [], 0
    hdr = {"Database": "bench", "ApiKey": "root", "Content-Type": "application/json"}
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
    t_end = time.monotonic() + secs - 1
    k = 0
    while time.monotonic() < t_end and k < 100000:
        src = k % 3
        token = uuid.uuid4().hex
        path = f"/api/documents/lag/m{k % 20}"
        conns[src].request("PUT", path, body=json.dumps({"token": token}), headers=hdr)
        r = conns[src].getresponse()
        r.read()
        if r.status != 200:
            raise BenchError(f"B8 marker write answered {r.status}")
        t0 = time.perf_counter()
        pending = {j for j in range(3) if j != src}
        while pending:
            for j in list(pending):
                conns[j].request("GET", path, headers=hdr)
                r = conns[j].getresponse()
                body = r.read()
                if r.status == 200 and json.loads(body).get("token") == token:
                    pending.discard(j)
            if time.perf_counter() - t0 > 10:
                lost += 1
                break
            time.sleep(0.0005)
        if not pending:
            lags.append((time.perf_counter() - t0) * 1e3)
        k += 1
        time.sleep(0.02)
    for c in conns:
        c.close()
    sent, errors = 0, 0
    for w in wrks:
        out, _ = w.communicate(timeout=secs + 120)
        line = [x for x in out.splitlines() if x.startswith("BENCH_JSON ")]
        if not line or "BENCH_ERRORS" in out:
            raise BenchError(f"B8 load failed:\n{out[-2000:]}")
        sent += json.loads(line[-1][len("BENCH_JSON "):])["requests"]
    conv_s, sts = wait_converged(ports, "bench", 300)
    digests = [s.get("Digest") for s in sts]
    div = sum(int(s.get("DivergenceCount", 0) or 0) for s in sts)
    s = sorted(lags)
    # What the links moved: in a mesh an op can reach a node by more than one path, and every
    # copy beyond the first is a duplicate the receiver decoded for nothing.
    moved = {"PushedOperations": 0, "PushedDuplicates": 0, "PulledOperations": 0,
             "PulledDuplicates": 0}
    for st in sts:
        for peer in st.get("Peers", []):
            for k in moved:
                moved[k] += int(peer.get(k) or 0)
    ctx.record(workload="B8", target="litedist", repeat=1, value=pct(s, 99), unit="ms",
               p50_ms=pct(s, 50), p99_ms=pct(s, 99), max_ms=s[-1] if s else None,
               probes=len(s), lost=lost, writes=sent, writes_per_s=sent / secs,
               converged_after_s=conv_s, digests_equal=len(set(digests)) == 1,
               digest=digests[0], divergence_count=div,
               ops_moved=moved["PushedOperations"] + moved["PulledOperations"],
               duplicates=moved["PushedDuplicates"] + moved["PulledDuplicates"])
    log(f"B8 links: {moved}")
    log(f"B8: {sent:,} writes ({sent / secs:,.0f}/s), lag p50 {pct(s, 50):.2f} ms, "
        f"p99 {pct(s, 99):.2f} ms over {len(s)} probes; converged {conv_s:.2f} s after the load; "
        f"digests {'equal' if len(set(digests)) == 1 else 'DIFFER'}")
    if len(set(digests)) != 1 or lost:
        raise BenchError(f"B8: divergence (digests {digests}) or {lost} markers never seen")


# --- B9: memory ---------------------------------------------------------------------------------

def b9(ctx):
    a = ctx.a
    for plugin in ("sqlite", "lmdb"):
        p = ctx.litedist(f"b9-idle-{plugin}", plugin=plugin)
        time.sleep(2)
        m = p.rss_kib()
        ctx.record(workload="B9-idle", target=f"litedist-{plugin}", repeat=1,
                   value=m["VmRSS"] / 1024, unit="MiB", **m)
        log(f"B9 idle litedist ({plugin}): RSS {m['VmRSS'] / 1024:.1f} MiB")
        ctx.stop(p)
    pd = ctx.pouchdb("b9-idle-pouchdb")
    time.sleep(2)
    m = pd.rss_kib()
    ctx.record(workload="B9-idle", target="pouchdb", repeat=1, value=m["VmRSS"] / 1024,
               unit="MiB", **m)
    ctx.stop(pd)
    rport = free_port()
    rd = Proc("b9-redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", a.work], a.work,
              ctx.server_pin)
    ctx.procs.append(rd)
    time.sleep(1)
    m = rd.rss_kib()
    ctx.record(workload="B9-idle", target="redis", repeat=1, value=m["VmRSS"] / 1024,
               unit="MiB", **m)
    ctx.stop(rd)

    n = a.mem_docs
    p = ctx.litedist("b9-docs-lmdb", plugin="lmdb", sync="off")
    log(f"B9: writing {n:,} documents into litedistd on LMDB")
    wrk_preload(ctx, p.port, n, "items")
    time.sleep(1)
    m = p.rss_kib()
    ctx.record(workload="B9-docs", target="litedist-lmdb", repeat=1, value=m["VmRSS"] / 1024,
               unit="MiB", documents=n, **m)
    log(f"B9 {n:,} docs litedist (LMDB): RSS {m['VmRSS'] / 1024:.1f} MiB "
        f"(anon {m.get('RssAnon', 0) / 1024:.1f}, file {m.get('RssFile', 0) / 1024:.1f}), "
        f"peak {m['VmHWM'] / 1024:.1f}")
    ctx.stop(p)

# --- B14: write amplification (issue 15 item 3) -----------------------------------------------

def proc_io(p):
    """/proc/<pid>/io of a process as a dict: wchar (bytes handed to write()/pwrite()) and
    write_bytes (bytes the process caused to be sent to the block layer, page-cache writeback
    included)."""
    with open(f"/proc/{p.p.pid}/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def parallel_requests(port, n, conns, make):
    """n requests over `conns` kept-alive connections (one thread each); make(i) returns
    (method, path, body, headers) of request i. Raises on any non-2xx answer."""
    errors, lock, nxt = [], threading.Lock(), [0]

    def work():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= n or errors:
                    return
                method, path, body, headers = make(i)
                c.request(method, path, body=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json", **headers})
                r = c.getresponse()
                r.read()
                if not 200 <= r.status < 300:
                    with lock:
                        errors.append(f"{method} {path}: {r.status}")
                    return
        except OSError as e:
            with lock:
                errors.append(str(e))
        finally:
            c.close()

    ts = [threading.Thread(target=work) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise BenchError(f"{len(errors)} requests failed, e.g. {errors[0]}")


def b14(ctx):
    """B14: bytes written to disk per committed document insert and per cache PUT (100-byte
    value, TTL 10 min), one client and 32 clients, each backend with Sync full. A fresh node per
    case; the node's /proc/<pid>/io counters (wchar: bytes passed to write(); write_bytes: bytes
    sent towards the disk) across N requests, divided by N; then the files at rest after a clean
    shutdown (the SQLite WAL is checkpointed and removed at close)."""
    a = ctx.a
    n = a.wamp_writes
    hdr = {"Database": "bench", "ApiKey": "root"}
    cases = {
        "insert": lambda i: ("POST", "/api/documents/items", {"Id": f"doc-{i}", **doc(i)}, hdr),
        "cache": lambda i: ("PUT", f"/api/cache/key-{i}?ttl=10m", "v" * 98, hdr),
    }
    for plugin in ("sqlite", "lmdb"):
        for what, make in cases.items():
            for conns in (1, 32):
                tag = f"b14-{plugin}-{what}-c{conns}"
                p = ctx.litedist(tag, plugin=plugin)
                parallel_requests(p.port, 50, 4, lambda i: make(n + 1000 + i))  # the files exist
                time.sleep(0.5)
                io0, t0 = proc_io(p), time.monotonic()
                parallel_requests(p.port, n, conns, make)
                secs = time.monotonic() - t0
                io1 = proc_io(p)
                running = disk_bytes(os.path.join(a.work, tag))[1]
                ctx.stop(p)
                rest = disk_bytes(os.path.join(a.work, tag))[1]
                wchar = (io1["wchar"] - io0["wchar"]) / n
                wbytes = (io1["write_bytes"] - io0["write_bytes"]) / n
                payload = len(json.dumps(make(0)[2]))
                ctx.record(workload=f"B14-{what}", target=f"litedist-{plugin}", connections=conns,
                           repeat=1, value=wchar, unit="bytes/write", write_bytes_per=wbytes,
                           writes=n, rate=n / secs, payload_bytes=payload,
                           disk_running=running, disk_at_rest=rest, loadavg=loadavg())
                log(f"B14 {what} {plugin} c={conns}: {wchar:,.0f} B written per write "
                    f"(block layer {wbytes:,.0f}), {n / secs:,.0f}/s; files {running:,} B "
                    f"running, {rest:,} B at rest ({(rest / n):,.0f} B per write, payload "
                    f"{payload} B)")
                shutil.rmtree(os.path.join(a.work, tag), ignore_errors=True)


# --- B15: churn on two replicating nodes, pruning with short windows (issue 15 item 6) -------

def latencies(port, n, make, stop=None):
    """Sequential requests (one client, one kept-alive connection): the latency of each in ms,
    until n are done or stop() says so."""
    out = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for i in range(n):
            if stop is not None and stop():
                break
            method, path, body, headers = make(i)
            t0 = time.perf_counter()
            c.request(method, path, body=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json", **headers})
            r = c.getresponse()
            r.read()
            out.append((time.perf_counter() - t0) * 1000)
            if not 200 <= r.status < 300:
                raise BenchError(f"{method} {path}: {r.status}")
    finally:
        c.close()
    return sorted(out)


def prune_now(port, timeout=3600):
    st, body = call(port, "POST", "/api/replication/operation-log/prune",
                    headers={"ReplicationApiKey": REPL_KEY}, timeout=timeout)
    if st != 200:
        raise BenchError(f"prune answered {st} {body[:200]!r}")
    return json.loads(body)


def free_bytes(path):
    """Bytes of free pages inside the stopped node's database files: SQLite's freelist (a file
    does not shrink when pages are freed), LMDB's free-page DB (mdb_stat -f). None when an LMDB
    environment is there and mdb_stat (Debian: lmdb-utils) is not."""
    free = 0
    for d, dirs, files in os.walk(path):
        for f in files:
            fp = os.path.join(d, f)
            if f.endswith(".db"):
                c = sqlite3.connect(f"file:{fp}?mode=ro", uri=True)
                try:
                    free += (c.execute("PRAGMA freelist_count").fetchone()[0] *
                             c.execute("PRAGMA page_size").fetchone()[0])
                finally:
                    c.close()
            elif f == "data.mdb":
                if not shutil.which("mdb_stat"):
                    return None
                out = subprocess.run(["mdb_stat", "-f", d], capture_output=True, text=True).stdout
                m = re.search(r"Free pages:\s+(\d+)", out)
                if not m:
                    return None
                free += int(m.group(1)) * 4096
    return free


def churn_load(ctx, A, n, rw, puts, keys, prune_every=None):
    """Writes every document rw times (16 connections) while 16 more PUT the cache entries, all
    on A, from two wrk processes (bench/wrk/churn.lua; Python's clients could not keep up with
    the full scale). With prune_every, both nodes of ctx's pair are pruned every that many
    seconds meanwhile (the short windows a churning node would run with). Returns the seconds
    it took."""
    script = os.path.join(ROOT, "bench/wrk/churn.lua")

    def wrk(mode, count, modulus):
        argv = ctx.client_pin + ["wrk", "-t1", "-c16", "-d3600s", "--timeout", "30s", "-s",
                                 script, f"http://127.0.0.1:{A.port}", "--", mode, str(count),
                                 str(modulus), "bench"]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

    done = threading.Event()
    errors = []

    def pruner():
        while not done.wait(prune_every):
            for p in ctx.churn_pair:
                try:
                    prune_now(p.port)
                except (BenchError, OSError) as e:
                    errors.append(e)
                    return

    t0 = time.monotonic()
    procs = [wrk("docs", n * rw, n), wrk("cache", puts, keys)]
    th = threading.Thread(target=pruner) if prune_every else None
    if th:
        th.start()
    outs = []
    try:
        for pr in procs:
            outs.append(pr.communicate(timeout=7200)[0])
    finally:
        done.set()
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
        if th:
            th.join()
    secs = time.monotonic() - t0
    for want, out in zip((n * rw, puts), outs):
        line = [x for x in out.splitlines() if x.startswith("BENCH_JSON ")]
        if not line or "BENCH_ERRORS" in out:
            raise BenchError(f"churn load failed:\n{out[-2000:]}")
        j = json.loads(line[-1][len("BENCH_JSON "):])
        if (j.get("answered_2xx") or 0) < want or j.get("failed_responses"):
            raise BenchError(f"churn load: {j.get('answered_2xx')} of {want} answered 2xx, "
                             f"{j.get('failed_responses')} failed")
    if errors:
        raise errors[0]
    return secs


def b15(ctx):
    """B15: churn. Two nodes replicating both ways, pruning on with both retention windows short
    (OperationLogRetentionDays 0, OperationLogRetainRecentOperations 1000); the timer is set
    beyond the run so that prunes happen where the workload says. N documents are each written
    R times (16 clients) while 16 more clients PUT P cache entries with a 10 s TTL over K keys,
    all on node A. Two phases on fresh pairs:
    - disk: the load runs with both nodes pruned every 2 s; then the cache entries expire and
      are swept, the nodes converge and are pruned once more: the databases' bytes on disk per
      live document, running and at rest after a clean shutdown, against its JSON and key;
    - p99: the same load with no prune, so that the log holds N*R + P entries; after
      convergence, the write p99 of one client (sequential document updates) without a prune,
      then while one prune removes them all."""
    a = ctx.a
    n, rw, puts, keys = a.churn_docs, a.churn_rewrites, a.churn_cache_puts, a.churn_cache_keys
    hdr = {"Database": "bench", "ApiKey": "root"}
    node = {"OperationLogRetentionDays": 0, "OperationLogRetainRecentOperations": 1000,
            "OperationLogPruningIntervalMinutes": 10080,
            "CacheCleanupIntervalSeconds": 1, "CacheCleanupMaxScanPages": 1000,
            "AntiEntropyIntervalSeconds": 5}
    key_json = sum(len(json.dumps({"Id": f"doc-{i}", **doc(i), "Round": rw - 1},
                              separators=(",", ":"))) +
                   len("items") + len(f"doc-{i}") for i in range(n)) / n

    def pair(tag, plugin):
        pa, pb = free_port(), free_port()
        A = ctx.litedist(tag + "-a", plugin=plugin, peers=[(tag + "-b", pb)], port=pa,
                         node_extra=node)
        B = ctx.litedist(tag + "-b", plugin=plugin, peers=[(tag + "-a", pa)], port=pb,
                         node_extra=node)
        return A, B

    phases = set(a.churn_phases.split(","))
    for plugin in ("sqlite", "lmdb"):
        if "disk" in phases:
            b15_disk(ctx, plugin, pair, key_json)
        if "p99" in phases:
            b15_p99(ctx, plugin, pair)


def b15_disk(ctx, plugin, pair, key_json):
    """B15's first phase: disk per live document under churn with pruning every 2 s."""
    a = ctx.a
    n, rw, puts, keys = a.churn_docs, a.churn_rewrites, a.churn_cache_puts, a.churn_cache_keys
    hdr = {"Database": "bench", "ApiKey": "root"}
    tag = f"b15-{plugin}-disk"
    load0 = loadavg()
    A, B = ctx.churn_pair = pair(tag, plugin)
    log(f"B15 {plugin}: {n:,} documents x {rw} writes and {puts:,} cache PUTs "
        f"(TTL 10 s, {keys:,} keys) on A, B replicating, both pruned every 2 s")
    load_s = churn_load(ctx, A, n, rw, puts, keys, prune_every=2)
    conv_s, _ = wait_converged([A.port, B.port], "bench", 3600)
    log(f"B15 {plugin}: written in {load_s:.0f} s, B converged {conv_s:.0f} s later; "
        f"letting the cache entries expire and be swept")
    time.sleep(12)
    for _ in range(60):  # bounded: the sweeper runs every second
        st, _ = call(A.port, "GET", f"/api/cache/c-{keys - 1}", headers=hdr)
        if st == 404:
            break
        time.sleep(1)
    time.sleep(3)
    wait_converged([A.port, B.port], "bench", 600)
    for p in (A, B):
        prune_now(p.port)
    live = doc_count(A.port)
    if live != n or doc_count(B.port) != n:
        raise BenchError(f"B15 {plugin}: A holds {live:,} documents, B "
                         f"{doc_count(B.port):,}, not {n:,}")
    sa = db_status(A.port, "bench")
    running = {p.name: disk_bytes(os.path.join(a.work, p.name, "databases"))[0]
               for p in (A, B)}
    ctx.stop(A)
    ctx.stop(B)
    for name in running:
        d = os.path.join(a.work, name, "databases")
        rest, free = disk_bytes(d)[0], free_bytes(d)
        ratio = rest / live / key_json
        ctx.record(workload="B15-disk", target=f"litedist-{plugin}-{name[-1]}", repeat=1,
                   value=ratio, unit="x", live_documents=live,
                   doc_json_and_key_bytes=key_json, bytes_at_rest=rest,
                   bytes_running=running[name], free_page_bytes=free,
                   per_doc_at_rest=rest / live, per_doc_running=running[name] / live,
                   per_doc_without_free_pages=None if free is None else (rest - free) / live,
                   log_entries_left=sa.get("OperationLogEntries"), load_seconds=load_s,
                   converge_seconds=conv_s, documents=n, rewrites=rw, cache_puts=puts,
                   cache_keys=keys, loadavg_start=load0, loadavg_end=loadavg())
        log(f"B15 {plugin} node {name[-1]}: {rest / live:,.0f} B per live document at "
            f"rest ({ratio:.1f} x its JSON and key, {key_json:.0f} B; free pages "
            f"{'unknown' if free is None else f'{free / live:,.0f} B'} of it), "
            f"{running[name] / live:,.0f} B running")
        shutil.rmtree(os.path.join(a.work, name), ignore_errors=True)



def b15_p99(ctx, plugin, pair):
    """B15's second phase: the write p99 while one prune removes the whole load's log."""
    a = ctx.a
    n, rw, puts, keys = a.churn_docs, a.churn_rewrites, a.churn_cache_puts, a.churn_cache_keys
    hdr = {"Database": "bench", "ApiKey": "root"}
    tag = f"b15-{plugin}-p99"
    A, B = ctx.churn_pair = pair(tag, plugin)
    log(f"B15 {plugin}: the same load without pruning, then the p99 during one prune")
    churn_load(ctx, A, n, rw, puts, keys)
    wait_converged([A.port, B.port], "bench", 3600)
    entries = db_status(A.port, "bench").get("OperationLogEntries")
    upd = lambda i: ("PUT", f"/api/documents/items/doc-{i % n}",  # noqa: E731
                     {**doc(i % n), "Probe": i}, hdr)
    base = latencies(A.port, a.churn_probe_writes, upd)
    result, err = {}, []

    def run_prune():
        try:
            t = time.monotonic()
            result["rows"] = prune_now(A.port)
            result["secs"] = time.monotonic() - t
        except (BenchError, OSError) as e:
            err.append(e)

    pt = threading.Thread(target=run_prune)
    pt.start()
    during = latencies(A.port, 10 ** 9, upd, stop=lambda: not pt.is_alive())
    pt.join()
    if err:
        raise err[0]
    pruned = sum(r.get("PrunedCount") or 0 for r in result["rows"])
    p99a = pct(base, 99)
    p99b = pct(during, 99) if during else float("nan")
    ctx.record(workload="B15-p99", target=f"litedist-{plugin}", repeat=1, value=p99b / p99a,
               unit="x", p99_without_ms=p99a, p99_during_ms=p99b, p50_without_ms=pct(base, 50),
               p50_during_ms=pct(during, 50) if during else None, samples_during=len(during),
               samples_without=len(base), pruned=pruned, prune_seconds=result["secs"],
               log_entries_before=entries, loadavg=loadavg())
    log(f"B15 {plugin}: write p99 {p99a:.2f} ms without a prune, {p99b:.2f} ms during the "
        f"prune of {pruned:,} entries ({result['secs']:.1f} s, {len(during)} writes)")
    ctx.stop(A)
    ctx.stop(B)
    shutil.rmtree(os.path.join(a.work, tag + "-a"), ignore_errors=True)
    shutil.rmtree(os.path.join(a.work, tag + "-b"), ignore_errors=True)


# --- B10: a new node joins a database of N documents ------------------------------------------

def disk_bytes(path):
    """(allocated, apparent) bytes of every file under path: what the data takes on the disk
    (st_blocks, so a sparse LMDB map counts only its written pages) and the files' sizes."""
    used = size = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(d, f))
            except FileNotFoundError:
                continue  # a WAL or lock file removed while we walk
            used += st.st_blocks * 512
            size += st.st_size
    return used, size


def proc_cpu_s(p):
    """User + system CPU seconds of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{p.p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def doc_count(port, collection="items", database="bench"):
    st, body = call(port, "POST", "/api/query",
                    {"Query": f"SELECT COUNT(*) AS n FROM {collection}", "Take": 1},
                    {"Database": database, "ApiKey": "root"})
    if st != 200:
        raise BenchError(f"COUNT(*) answered {st} {body[:200]!r}")
    return json.loads(body)["Rows"][0]["n"]


def db_state(port, db="bench"):
    s = db_status(port, db)
    return (json.dumps(s.get("VersionVector"), sort_keys=True), s.get("Digest")) if s else None


def b10_source(ctx, plugin, n):
    """A node holding n documents of 200 bytes in bench/items. Loaded through the client API as
    fast as it goes on this machine: 64 concurrent POST writers (wrk, group commit) into a node
    running Sync off; then stopped cleanly and started again with Sync full, the setting the join
    is measured with, after checking that the restart kept every op (same VV and digest)."""
    name = f"b10-{plugin}-source"
    src = ctx.litedist(name, plugin=plugin, sync="off")
    log(f"B10 {plugin}: loading {n:,} documents into the source (Sync off, 64 writers)")
    j = wrk_preload(ctx, src.port, n, "items", conns=64)
    ctx.record(workload="B10-load", target=f"litedist-{plugin}", repeat=1,
               value=j["docs_per_s"], unit="docs/s", documents=n, connections=64,
               note="POST /api/documents, Sync off")
    log(f"B10 {plugin}: loaded at {j['docs_per_s']:,.0f} docs/s")
    before = db_state(src.port)
    ctx.stop(src)
    src = ctx.litedist(name, plugin=plugin, sync="full", port=src.port)
    if db_state(src.port) != before:
        raise BenchError(f"B10 {plugin}: the source lost ops in its restart: {before} -> "
                         f"{db_state(src.port)}")
    got = doc_count(src.port)
    if got != n:
        raise BenchError(f"B10 {plugin}: the source holds {got:,} documents, not {n:,}")
    return src


def b10_join(ctx, plugin, src, n, r):
    """Starts a new node seeded with the source and times it until its VV and digest of bench
    equal the source's. The newcomer should learn the database by itself (database discovery,
    issue 14); when it has not listed it after the discovery wait, the source is told about the
    newcomer (POST /api/cluster/peers on the source: the hand registration issue 14 removes) and
    the time counts from that call, so that the wait does not pollute the figure."""
    a = ctx.a
    src_id = f"b10-{plugin}-source"
    jid = f"b10-{plugin}-joiner-{r}"
    hdr = {"ReplicationApiKey": REPL_KEY}
    want = db_state(src.port)
    src_cpu0 = proc_cpu_s(src)
    load0 = loadavg()
    timeout = 120 + n / 500
    t0 = time.monotonic()
    j = ctx.litedist(jid, plugin=plugin, sync="full", peers=[(src_id, src.port)])
    mode, t_from = "discovery", t0
    t_wait = time.monotonic() + a.join_discovery_wait
    while db_status(j.port, "bench") is None:
        if time.monotonic() > t_wait:
            mode = "registered by hand"
            t_from = time.monotonic()
            st, body = call(src.port, "POST", "/api/cluster/peers",
                            {"NodeId": jid, "BaseUrl": f"http://127.0.0.1:{j.port}",
                             "IsActive": True}, hdr)
            if st != 200:
                raise BenchError(f"B10: registering the newcomer answered {st} {body[:200]!r}")
            break
        time.sleep(0.05)
    while True:
        if db_state(j.port) == want:
            break
        if not j.alive():
            raise BenchError(f"B10 {plugin}: the newcomer died:\n{j.tail()}")
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"B10 {plugin}: the newcomer did not converge in {timeout:.0f} s: "
                             f"{db_status(j.port, 'bench')}")
        time.sleep(0.1)
    t1 = time.monotonic()
    secs = t1 - t_from
    # Log replay writes one op-log entry per op on the newcomer, a snapshot none: the newcomer's
    # log length tells which path it took.
    joiner_log = db_status(j.port, "bench").get("LocalMaxLogSequence")
    mem = j.rss_kib()
    joiner_cpu = proc_cpu_s(j)
    src_cpu = proc_cpu_s(src) - src_cpu0
    used, size = disk_bytes(os.path.join(a.work, jid))
    got = doc_count(j.port)
    if got != n:
        raise BenchError(f"B10 {plugin}: the newcomer converged holding {got:,} documents, "
                         f"not {n:,}")
    ctx.stop(j)
    with open(j.log_path, "rb") as f:
        errors = [x for x in f.read().decode(errors="replace").splitlines() if " ERROR " in x]
    if errors:
        raise BenchError(f"B10 {plugin}: the newcomer logged errors:\n" + "\n".join(errors[:20]))
    used_stopped, size_stopped = disk_bytes(os.path.join(a.work, jid))
    src_used, _ = disk_bytes(os.path.join(a.work, src_id))
    # The source forgets the newcomer, which is gone for good (it may have registered it by hand
    # or, with two-way registration, by itself); 404 when it never knew it.
    st, _ = call(src.port, "DELETE", f"/api/cluster/peers/{jid}", headers=hdr)
    if st not in (200, 204, 404):
        raise BenchError(f"B10: DELETE /api/cluster/peers/{jid} answered {st}")
    shutil.rmtree(os.path.join(a.work, jid), ignore_errors=True)
    ctx.record(workload="B10", target=f"litedist-{plugin}", repeat=r, value=n / secs,
               unit="docs/s", seconds=secs, seconds_from_start=t1 - t0, documents=n,
               mode=mode, ops=sum(json.loads(want[0]).values()), joiner_log_entries=joiner_log,
               peak_rss_kib=mem["VmHWM"], rss_kib=mem["VmRSS"],
               rss_anon_kib=mem.get("RssAnon"), rss_file_kib=mem.get("RssFile"), disk_bytes=used,
               disk_apparent_bytes=size, disk_bytes_stopped=used_stopped,
               disk_apparent_bytes_stopped=size_stopped, source_disk_bytes=src_used,
               joiner_cpu_s=joiner_cpu, source_cpu_s=src_cpu, loadavg_before=load0,
               loadavg_after=loadavg())
    log(f"B10 {plugin} #{r}: {n / secs:,.0f} docs/s ({n:,} documents in {secs:.2f} s, "
        f"{mode}; {t1 - t0:.2f} s from the newcomer's start); peak RSS "
        f"{mem['VmHWM'] / 1024:.1f} MiB, {used / 2**20:.0f} MiB on disk "
        f"({used_stopped / 2**20:.0f} MiB stopped; the source {src_used / 2**20:.0f} MiB); "
        f"CPU newcomer {joiner_cpu:.1f} s, source {src_cpu:.1f} s")


def b10_pouch(ctx, pa, n, r):
    """pouchdb-server's one-shot replication of the same documents into a fresh database on a
    fresh second pouchdb-server: POST /_replicate, which answers when it is done."""
    pb = ctx.pouchdb(f"b10-pouch-target-{r}")
    load0 = loadavg()
    t0 = time.monotonic()
    st, body = call(pb.port, "POST", "/_replicate",
                    {"source": f"http://127.0.0.1:{pa.port}/bench", "target": "bench",
                     "create_target": True}, timeout=600 + n / 100)
    secs = time.monotonic() - t0
    j = json.loads(body)
    if st != 200 or not j.get("ok") or j.get("docs_written") != n:
        raise BenchError(f"B10 pouchdb replication: {st} {body[:300]!r}")
    mem = pb.rss_kib()
    used, size = disk_bytes(os.path.join(ctx.a.work, f"b10-pouch-target-{r}"))
    ctx.stop(pb)
    shutil.rmtree(os.path.join(ctx.a.work, f"b10-pouch-target-{r}"), ignore_errors=True)
    ctx.record(workload="B10", target="pouchdb", repeat=r, value=n / secs, unit="docs/s",
               seconds=secs, documents=n, peak_rss_kib=mem["VmHWM"], rss_kib=mem["VmRSS"],
               disk_bytes=used, disk_apparent_bytes=size, loadavg_before=load0,
               loadavg_after=loadavg())
    log(f"B10 pouchdb #{r}: {n / secs:,.0f} docs/s ({n:,} documents in {secs:.2f} s); peak RSS "
        f"{mem['VmHWM'] / 1024:.1f} MiB, {used / 2**20:.0f} MiB on disk")


def b10(ctx):
    """B10: a node joins a database of N documents (issue 14). Both litedist sources and the
    pouchdb source are loaded first and stay up; each repeat then runs every target's join right
    after the other, so that drift on a shared machine hits them alike."""
    a = ctx.a
    n, pn = a.join_docs, min(a.join_pouch_docs, a.join_docs)
    sources = {plugin: b10_source(ctx, plugin, n) for plugin in ("sqlite", "lmdb")}
    pa = ctx.pouchdb("b10-pouch-source")
    log(f"B10: loading {pn:,} documents into pouchdb-server (_bulk_docs of 1,000)")
    rate = couch_load(pa.port, "bench", pn)
    ctx.record(workload="B10-load", target="pouchdb", repeat=1, value=rate, unit="docs/s",
               documents=pn, connections=1, note="_bulk_docs of 1,000")
    for r in range(1, a.repeats + 1):
        for plugin, src in sources.items():
            b10_join(ctx, plugin, src, n, r)
        b10_pouch(ctx, pa, pn, r)


# --- the raw engines and the pouchdb-server preload ---------------------------------------------

# --- B12: the event loop while a peer walks a long log it already holds ---------------------------

def node_loop(port):
    """GET /node's EventLoop figures (the loop-lag monitor)."""
    st, body = call(port, "GET", "/node")
    if st != 200:
        raise BenchError(f"GET /node answered {st}")
    return json.loads(body)["EventLoop"]


def window(before, after):
    """The lag samples between two GET /node EventLoop figures: their count, how many were over
    5 ms, and the bound of the highest non-empty bucket (ms; None: above the last bound)."""
    b, a = before["LagHistogram"], after["LagHistogram"]
    d = [x - y for x, y in zip(a["Counts"], b["Counts"])]
    bounds = a["BoundsMs"]
    over5 = sum(c for i, c in enumerate(d) if i >= len(bounds) or bounds[i] > 5)
    top = max((i for i, c in enumerate(d) if c), default=0)
    return {"samples": sum(d), "over_5ms": over5,
            "worst_bucket_ms": bounds[top] if top < len(bounds) else None}


def get_timed(port, n, count, until=None):
    """GETs of random documents by id over one kept-alive connection, one at a time: `count` of
    them, or as long as until() is true (at least `count`). Each GET's (start, end) on the
    monotonic clock, which other processes read too."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    hdr = {"Database": "bench", "ApiKey": "root"}
    out, rnd = [], random.Random(12)
    while len(out) < count or (until and until()):
        t0 = time.monotonic()
        c.request("GET", f"/api/documents/items/doc-{rnd.randrange(n)}", headers=hdr)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise BenchError(f"B12: GET answered {r.status}")
        out.append((t0, time.monotonic()))
    c.close()
    return out


def get_latencies(port, n, count, until=None):
    """get_timed's GETs as sorted latencies in ms."""
    return sorted((b - a) * 1e3 for a, b in get_timed(port, n, count, until))


def overlapping_spans(gets, spans):
    """The GETs (start, end) that overlap one of spans: sorted and disjoint (one walk at a time),
    so only the last span starting before a GET ends can."""
    starts = [a for a, _ in spans]
    out = []
    for g0, g1 in gets:
        i = bisect.bisect_left(starts, g1) - 1
        if i >= 0 and spans[i][1] > g0:
            out.append((g0, g1))
    return out


def gets_ms(gets):
    """The GETs' latencies in ms, sorted (B15's latencies() times writes)."""
    return sorted((b - a) * 1e3 for a, b in gets)


def b12_walk(port, vv, batch, res, min_secs, pause_s=0.0):
    """Pulls the whole log as a peer whose version vector covers it, from LogSequence 0, again
    and again until min_secs have passed, pause_s apart: every answer is empty, and the node
    walks the log in bounded steps (on its worker threads). A walk takes milliseconds now (the
    log's marks), so it is repeated to time enough GETs beside it for a p99; res["spans"] holds
    each walk's (start, end) on the monotonic clock."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hdr = {"ReplicationApiKey": REPL_KEY, "Database": "bench",
           "Content-Type": "application/json"}
    t0 = time.monotonic()
    res["walks"], res["pulls"], res["ops"], res["spans"] = 0, 0, 0, []
    try:
        while res["walks"] == 0 or time.monotonic() - t0 < min_secs:
            if res["walks"] and pause_s:
                time.sleep(pause_s)
            after, t1 = 0, time.monotonic()
            while True:
                body = {"ProtocolVersion": 1, "AfterLogSequence": after, "BatchSize": batch,
                        "VersionVector": vv, "RequestingNodeId": "b12-peer"}
                c.request("POST", "/api/replication/pull", json.dumps(body), hdr)
                r = c.getresponse()
                text = r.read()
                if r.status != 200:
                    raise BenchError(f"B12: pull answered {r.status} {text[:200]!r}")
                j = json.loads(text)
                res["pulls"] += 1
                res["ops"] += len(j["Operations"])
                after = j["LastLogSequence"]
                if not j["HasMore"]:
                    break
            res["walks"] += 1
            res["last"] = after
            res["spans"].append((t1, time.monotonic()))
            res["walk_s"] = res.get("walk_s", 0.0) + time.monotonic() - t1
            if res["walks"] >= 100000:
                break
    except (BenchError, OSError, ValueError, KeyError) as e:
        res["error"] = str(e)
    finally:
        res["secs"] = time.monotonic() - t0
        c.close()


def b12_walk_proc(port, vv, batch, min_secs, pause_s, q, done):
    # The walker stands for a peer on another machine; here it shares the client core with the
    # process that times the GETs, and at SCHED_IDLE it runs only when that one waits, so the
    # GETs measure the server and not the wait for the walker's Python to yield the core.
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    res = {}
    b12_walk(port, vv, batch, res, min_secs, pause_s)
    # Said before the put: the result can outgrow the pipe, and then the process does not end
    # until the parent reads it, so the parent's GETs must not wait for the process's end.
    done.set()
    q.put(res)


B12_MIN_WALK_S = 5.0  # the walks are repeated for at least this long


class StallProbe:
    """bench/stallprobe on the server's core at SCHED_FIFO for one phase: the times that core ran
    nothing at all (a wake-up the probe got late), to tell the event loop's own stalls from the
    machine's. None of its figures when it cannot run at SCHED_FIFO (self.error says why)."""

    def __init__(self, ctx, name):
        self.path = os.path.join(ctx.a.work, name + ".stalls.json")
        self.error, self.p, self.t0 = None, None, time.time()
        if not ctx.a.stallprobe:
            self.error = "no --stallprobe"
            return
        self.p = subprocess.Popen(ctx.server_pin + [ctx.a.stallprobe, self.path],
                                  stderr=subprocess.PIPE)
        time.sleep(0.05)
        if self.p.poll() is not None:
            self.error = self.p.stderr.read().decode().strip() or f"exit {self.p.returncode}"
            self.p = None

    def stop(self):
        """The probe's late wake-ups as [(start, end)] in Unix seconds, or None."""
        self.t1 = time.time()
        if not self.p:
            return None
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise BenchError("B12: stallprobe did not stop")
        if self.p.returncode != 0:
            raise BenchError(f"B12: stallprobe failed: {self.p.stderr.read().decode()[-300:]}")
        with open(self.path) as f:
            j = json.load(f)
        self.wakeups = j["wakeups"]
        return [(due / 1e6, (due + late) / 1e6) for due, late in j["late"]]


def utc_seconds(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


B12_CORE_GAP_S = 0.001  # a probe wake-up this late: the core ran nothing for a millisecond


def clear_of_core_gaps(gets, core_gaps):
    """The GETs (monotonic spans) that overlapped no core gap (Unix spans) of B12_CORE_GAP_S or
    more: what the node did, without the moments the machine ran nothing at all. Applied alike
    to the idle GETs and to the GETs beside walks."""
    off = time.time() - time.monotonic()
    gaps = sorted((a - off, b - off) for a, b in core_gaps or [] if b - a >= B12_CORE_GAP_S)
    return [g for g in gets if not overlapping_spans([g], gaps)]


def own_stalls(loop_after, core_gaps, t0, t1):
    """The event loop's stalls (GET /node RecentStalls) that ended between t0 and t1, each split
    into the time the probe saw the whole core idle-less and unavailable (core_ms) and the rest,
    the loop's own (own_ms). A probe wake-up is late from its due time on, so its gap is a lower
    bound of the core's: the split never flatters the loop."""
    out = []
    for st in loop_after.get("RecentStalls", []):
        end = utc_seconds(st["AtUtc"])
        if not t0 <= end <= t1:
            continue
        start = end - st["LagMs"] / 1e3
        core = sum(max(0.0, min(end, b) - max(start, a)) for a, b in core_gaps or [])
        out.append({"at": st["AtUtc"], "lag_ms": st["LagMs"], "core_ms": core * 1e3,
                    "own_ms": st["LagMs"] - core * 1e3})
    return out
B12_PAUSE_S = 0.02    # between two walks of the paced phase


def b12(ctx):
    """B12 (issue 17): a node with a log of N entries that a peer's version vector already covers;
    the peer pulls from 0 (BatchSize 1,000: each answer looks at up to 4,000 entries or log
    marks), walk after walk for B12_MIN_WALK_S. Figures: the event loop's longest lag within the
    walks (GET /node's EventLoop histogram) and GET p99 during the walks against idle. Goals:
    lag <= 5 ms, GET p99 <= 2 x idle."""
    n = ctx.a.b12_entries
    for plugin in ("sqlite", "lmdb"):
        name = f"b12-{plugin}"
        node = ctx.litedist(name, plugin=plugin, sync="off")
        log(f"B12 {plugin}: writing {n:,} documents (a log of {n:,} entries), load {loadavg()}")
        wrk_preload(ctx, node.port, n, "items", conns=64)
        ctx.stop(node)
        node = ctx.litedist(name, plugin=plugin, sync="full", port=node.port)
        vv = db_status(node.port, "bench")["VersionVector"]
        get_latencies(node.port, n, 2000)  # warm: the idle figure is not a cold start's
        for r in range(1, ctx.a.repeats + 1):
            start = node_loop(node.port)
            probe = StallProbe(ctx, f"{name}-{r}-idle")
            idle_gets = get_timed(node.port, n, 3000)
            gaps = probe.stop()
            idle = gets_ms(idle_gets)
            p_idle = pct(idle, 99)
            p_idle_clear = pct(gets_ms(clear_of_core_gaps(idle_gets, gaps)), 99) \
                if gaps is not None else None
            end = node_loop(node.port)
            w_idle = window(start, end)
            s_idle = own_stalls(end, gaps, probe.t0, probe.t1)
            # Paced: a walk every B12_PAUSE_S, the GETs that overlapped one against idle (the
            # goal's case: a peer walks a log it holds while clients read). Storm: walks back to
            # back, ~2,000 pulls a second on the loop beside the GETs (stress, no goal).
            for phase, pause in (("paced", B12_PAUSE_S), ("storm", 0.0)):
                before = node_loop(node.port)
                # The walk runs in a process of its own: as a thread it shared this process's
                # GIL with the GET client, whose latencies then measured the walker's parsing.
                q, done = multiprocessing.Queue(), multiprocessing.Event()
                t = multiprocessing.Process(
                    target=b12_walk_proc,
                    args=(node.port, vv, 1000, B12_MIN_WALK_S, pause, q, done))
                load = loadavg()
                probe = StallProbe(ctx, f"{name}-{r}-{phase}")
                t.start()
                gets = get_timed(node.port, n, 200,
                                 until=lambda: not done.is_set() and t.is_alive())
                res = q.get(timeout=600)
                t.join(timeout=60)
                gaps = probe.stop()
                after = node_loop(node.port)
                stalls = own_stalls(after, gaps, probe.t0, probe.t1)
                if "error" in res:
                    raise BenchError(res["error"])
                if res.get("ops"):
                    raise BenchError(f"B12: the walk sent {res['ops']} ops the peer holds")
                if res.get("last", 0) < n:
                    raise BenchError(f"B12: the walk stopped at {res.get('last')} of {n}")
                busy_gets = overlapping_spans(gets, res["spans"])
                busy = gets_ms(busy_gets)
                if len(busy) < 100:
                    raise BenchError(f"B12 {phase}: only {len(busy)} GETs overlapped a walk")
                p_busy = pct(busy, 99)
                # The ratio both ways: every GET, and the GETs clear of the core's own gaps
                # (the goal's figure when the probe ran: a vCPU the host did not run for 5-25
                # ms holds up whichever GETs it falls on, walking or not).
                busy_clear = gets_ms(clear_of_core_gaps(busy_gets, gaps))
                p_busy_clear = pct(busy_clear, 99) if gaps is not None else None
                ratio_raw = p_busy / p_idle
                ratio = p_busy_clear / p_idle_clear if gaps is not None else ratio_raw
                w_walk = window(before, after)
                if len(stalls) < w_walk["over_5ms"]:
                    raise BenchError(f"B12 {phase}: {w_walk['over_5ms']} lags over 5 ms, "
                                     f"{len(stalls)} listed (RecentStalls overflowed)")
                # The lag figure: the longest stall of the loop's own (its lag less the time the
                # probe saw the core run nothing), or with no probe the bound of the highest
                # histogram bucket any sample of the phase fell in.
                worst = w_walk["worst_bucket_ms"]
                worst = worst if worst is not None else float("inf")
                # (the samples that were no stall are <= 5 ms: the bucket bound stands for them)
                value = max([min(worst, 5.0)] + [x["own_ms"] for x in stalls]) \
                    if gaps is not None else worst
                tag = "B12" if phase == "paced" else "B12-storm"
                walk_ms = res["walk_s"] / res["walks"] * 1e3
                ctx.record(workload=tag, target=f"litedist-{plugin}", repeat=r,
                           value=value, unit="ms", worst_bucket_ms=worst, stalls=stalls,
                           probe=probe.error or {"wakeups": probe.wakeups, "gaps": len(gaps),
                                                 "gaps_over_1ms": sum(b - a > 1e-3
                                                                      for a, b in gaps),
                                                 "longest_gap_ms": max(
                                                     ((b - a) * 1e3 for a, b in gaps),
                                                     default=0.0)},
                           idle_stalls=s_idle,
                           loop_max_since_restart_ms=after["MaxLagMs"], entries=n,
                           pulls=res["pulls"], walks=res["walks"], walk_ms=walk_ms,
                           pause_s=pause, window_s=res["secs"], loop_p99_ms=after["P99LagMs"],
                           get_p99_idle_ms=p_idle, get_p99_walk_ms=p_busy,
                           gets_overlapping=len(busy), gets=len(gets), loadavg=load,
                           idle_window=w_idle, walk_window=w_walk)
                ctx.record(workload=tag + "-get", target=f"litedist-{plugin}", repeat=r,
                           value=ratio, unit="x", get_p99_idle_ms=p_idle,
                           get_p99_walk_ms=p_busy, ratio_all_gets=ratio_raw,
                           get_p99_idle_clear_ms=p_idle_clear,
                           get_p99_walk_clear_ms=p_busy_clear,
                           gets_walk_clear=len(busy_clear), loadavg=load)
                log(f"B12 {plugin} #{r} {phase}: {res['walks']} walks of {n:,} entries in "
                    f"{res['secs']:.1f} s ({res['pulls'] / res['walks']:.0f} pulls, "
                    f"{walk_ms:.1f} ms a walk); GET p99 {p_busy:.2f} ms over {len(busy)} GETs "
                    f"overlapping a walk, {p_idle:.2f} ms idle; lag samples over 5 ms: "
                    f"{w_walk['over_5ms']} of {w_walk['samples']} (worst bucket "
                    f"{w_walk['worst_bucket_ms']} ms), idle {w_idle['over_5ms']} of "
                    f"{w_idle['samples']} (worst {w_idle['worst_bucket_ms']} ms); load {load}")
                if gaps is not None:
                    log(f"  clear of the core's gaps of {B12_CORE_GAP_S * 1e3:g} ms or more: "
                        f"GET p99 {p_busy_clear:.2f} ms over {len(busy_clear)} GETs, "
                        f"{p_idle_clear:.2f} ms idle: {ratio:.2f} x ({ratio_raw:.2f} x every GET)")
                for x in stalls:
                    log(f"  stall at {x['at']}: {x['lag_ms']:.2f} ms, the core unavailable "
                        f"{x['core_ms']:.2f} ms of it, the loop's own {x['own_ms']:.2f} ms")
                if gaps is None:
                    log(f"  no stall probe: {probe.error}")
        ctx.stop(node)



def raw(ctx):
    """storage_bench's raw arms doing the server's write shape (document read and write, op-log
    append, meta record; Sync full): with 1,000 ops per commit, the batched commit of B2 and the
    catch-up shape of B7; with one op per commit, B3's durable commit (1 / rate is its latency)."""
    a = ctx.a
    runs = (("batched", ["--keys", "20000", "--phase-ms", "100"]),
            ("single", ["--keys", "2000", "--txn", "1", "--ws-ops", "500", "--phase-ms", "50"]))
    for shape, extra in runs:
        out = os.path.join(a.work, f"storage-{shape}.json")
        p = subprocess.run(ctx.server_pin + [a.storage_bench, "--repeats", str(a.repeats),
                                             "--json", out, "--dir", a.work] + extra,
                           capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            raise BenchError(f"storage_bench failed:\n{p.stdout[-1000:]}{p.stderr[-1000:]}")
        with open(out) as f:
            res = json.load(f)
        for r in res["results"]:
            if r["workload"] != "ws_full":
                continue
            for i, rate in enumerate(r["raw"]["rate"], 1):
                t = f"{r['backend']}-raw"
                if shape == "batched":
                    ctx.record(workload="B2", target=t, repeat=i, value=rate, unit="ops/s",
                               ops_per_commit=1000)
                    ctx.record(workload="B7", target=t, repeat=i, value=rate, unit="ops/s",
                               ops_per_commit=1000)
                else:
                    ctx.record(workload="B3", target=t, repeat=i, value=1e3 / rate, unit="ms",
                               p50_ms=1e3 / rate, ops_per_commit=1, commits_per_s=rate)
            log(f"raw {r['backend']} write shape, Sync full, {shape}: "
                f"{statistics.median(r['raw']['rate']):,.0f} ops/s")


def couch_preload(ctx):
    rate = couch_load(ctx.a.port, "bench", ctx.a.docs)
    ctx.record(workload="B1-preload", target="pouchdb", repeat=1, value=rate, unit="docs/s",
               connections=1, note="_bulk_docs of 1,000")
    log(f"B1 preload pouchdb-server: {ctx.a.docs:,} documents by _bulk_docs at {rate:,.0f}/s")


# --- B16: the cost of one GET /metrics scrape with 100 databases of 3 peers each (issue 16) ------

def b16(ctx):
    """One node holding B16_DBS databases, each with the 3 node-wide peers (addresses nothing
    listens on, so every link is populated, failing and backing off, and no replication traffic
    competes with the scrape); then sequential scrapes on one keep-alive connection. The value
    is the node's CPU time per scrape (the cost a scrape puts on the node, which the wait for a
    core on a shared machine does not blur); the client's wall times are kept beside it. Goal:
    <= 5 ms per scrape."""
    a = ctx.a
    dead = [free_port() for _ in range(3)]
    A = ctx.litedist("b16", peers=[(f"peer{i}", p) for i, p in enumerate(dead)])
    h = {"ApiKey": "root"}
    for i in range(a.b16_dbs):
        st, body = call(A.port, "PUT", f"/api/documents/c/d{i}", {"i": i},
                        dict(h, Database=f"db{i:03d}"))
        if st != 200:
            raise BenchError(f"B16: write {i} answered {st} {body[:200]!r}")
    # Every database's links exist once a scrape lists them (3 per database).
    t_end = time.monotonic() + 60
    while True:
        st, body = call(A.port, "GET", "/metrics")
        links = body.decode().count("litedist_replication_pending_push_ops{")
        if links >= 3 * a.b16_dbs:
            break
        if time.monotonic() > t_end:
            raise BenchError(f"B16: {links} links listed, want {3 * a.b16_dbs}")
        time.sleep(0.2)
    size = len(body)
    for r in range(1, a.repeats + 1):
        c = http.client.HTTPConnection("127.0.0.1", A.port, timeout=30)
        times = []
        cpu0 = proc_cpu_s(A)
        for _ in range(a.b16_scrapes):
            t0 = time.perf_counter()
            c.request("GET", "/metrics")
            resp = c.getresponse()
            resp.read()
            times.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200:
                raise BenchError(f"B16: GET /metrics answered {resp.status}")
        # The server's CPU per scrape: on a loaded machine the wall time mostly measures the
        # wait for a core; the CPU the node spent is what a scrape costs it.
        cpu_ms = (proc_cpu_s(A) - cpu0) * 1000 / len(times)
        c.close()
        s = sorted(times)
        load = loadavg()
        ctx.record(workload="B16", target="litedist", repeat=r, value=cpu_ms, unit="ms",
                   p50_ms=pct(s, 50), p99_ms=pct(s, 99), mean_ms=sum(s) / len(s),
                   cpu_ms=cpu_ms, scrapes=len(s), databases=a.b16_dbs, links=links, bytes=size,
                   loadavg=load)
        log(f"B16 #{r}: p50 {pct(s, 50):.2f} ms, p99 {pct(s, 99):.2f} ms, mean "
            f"{sum(s) / len(s):.2f} ms wall, {cpu_ms:.2f} ms of the node's CPU per scrape "
            f"({size:,} bytes, {links} links, load {load})")


# --- B18: the cache over the Redis protocol against Redis (issue 20 item 4) --------------------

B18_CONNS = 32


def redis_benchmark(ctx, port, test, n, pipeline, auth=()):
    """One redis-benchmark run (-c 32 -d 100, 10,000 random keys): (req/s, p50 ms, p99 ms)."""
    argv = ctx.client_pin + ["redis-benchmark", "-p", str(port), "-c", str(B18_CONNS), "-d", "100",
                             "-r", "10000", "-t", test, "-n", str(n), "-P", str(pipeline),
                             "--csv", *auth]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=max(600, n // 100))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('"')]
    if out.returncode != 0 or len(lines) < 2:
        raise BenchError(f"redis-benchmark {test} on {port} failed: {out.stderr.strip()[-300:]}")
    import csv
    f = next(csv.reader([lines[1]]))
    return float(f[1]), float(f[4]), float(f[6])


def b18(ctx):
    """redis-benchmark -c 32 -d 100 GET and SET, plain and -P 16, against litedistd's RESP port
    (SQLite and LMDB, Sync full, Node.CacheDurability everysec: the goal compares it with Redis's
    AOF everysec) and redis-server with AOF everysec, the targets side by side in each repeat.
    SET first in each repeat fills the keys GET reads."""
    a = ctx.a
    rport = free_port()
    rd = Proc("b18-redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                            "--dir", a.work], a.work, ctx.server_pin)
    rd.port = rport
    ctx.procs.append(rd)
    targets = [("redis-aof", rport, ())]
    for plugin, t in (("sqlite", "litedist"), ("lmdb", "litedist-lmdb")):
        port = free_port()
        ctx.litedist(f"b18-{plugin}", plugin=plugin, resp_port=port,
                     node_extra={"CacheDurability": "everysec"})
        targets.append((t, port, ("--user", "bench", "-a", "root")))
    for _ in range(100):  # redis-server answers within a second of its start
        if subprocess.run(["redis-cli", "-p", str(rport), "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    # Sized to last about --duration at a rough rate; every target gets the same n.
    for pipeline in (1, 16):
        n = int(a.duration * (20000 if pipeline == 1 else 100000))
        for r in range(1, a.repeats + 1):
            for test in ("set", "get"):
                for t, port, auth in targets:
                    v, p50, p99 = redis_benchmark(ctx, port, test, n, pipeline, auth)
                    w = f"B18-{test}" + ("-P16" if pipeline > 1 else "")
                    ctx.record(workload=w, target=t, connections=B18_CONNS, repeat=r, value=v,
                               unit="req/s", p50_ms=p50, p99_ms=p99, tool="redis-benchmark",
                               pipeline=pipeline)
                    log(f"{w} {t} #{r}: {v:,.0f} req/s (p50 {p50} ms, p99 {p99} ms)")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("workload", choices=["B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B13",
                                         "B14", "B15", "B16", "B17", "B18", "raw", "couch-load"])
    ap.add_argument("--records", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--litedistd", required=True)
    ap.add_argument("--pouchdb", required=True)
    ap.add_argument("--server-cpu", default="")
    ap.add_argument("--client-cpu", default="")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scan-docs", type=int, default=100000)
    ap.add_argument("--probe-writes", type=int, default=500)
    ap.add_argument("--catchup-ops", type=int, default=100000)
    ap.add_argument("--b8-seconds", type=int, default=60)
    ap.add_argument("--b8-rate", type=int, default=1000)
    ap.add_argument("--mem-docs", type=int, default=1000000)
    ap.add_argument("--join-docs", type=int, default=1000000,
                    help="B10: documents the new node joins")
    ap.add_argument("--join-pouch-docs", type=int, default=100000,
                    help="B10: documents pouchdb-server replicates (at most --join-docs)")
    ap.add_argument("--join-discovery-wait", type=float, default=5,
                    help="B10: seconds the newcomer has to list the database by itself before "
                         "the source is told about it by hand")
    ap.add_argument("--b11-seconds", type=int, default=60,
                    help="B11: seconds of steady writes over which handshakes are counted")
    ap.add_argument("--b12-entries", type=int, default=1000000,
                    help="B12: entries of the log the peer already holds")
    ap.add_argument("--wamp-writes", type=int, default=5000,
                    help="B14: writes measured per backend, kind and client count")
    ap.add_argument("--churn-docs", type=int, default=100000, help="B15: documents")
    ap.add_argument("--churn-rewrites", type=int, default=10, help="B15: writes per document")
    ap.add_argument("--churn-cache-puts", type=int, default=1000000, help="B15: cache PUTs")
    ap.add_argument("--churn-cache-keys", type=int, default=100000, help="B15: cache keys")
    ap.add_argument("--churn-phases", default="disk,p99",
                    help="B15: which phases run, disk and/or p99")
    ap.add_argument("--churn-probe-writes", type=int, default=2000,
                    help="B15: single-client writes whose p99 is the baseline")
    ap.add_argument("--b16-dbs", type=int, default=100, help="B16: databases on the node")
    ap.add_argument("--b16-scrapes", type=int, default=200, help="B16: scrapes per repeat")
    ap.add_argument("--storage-bench", help="raw: bench/storage's storage_bench binary")
    ap.add_argument("--stallprobe", help="B12: bench/stallprobe, run on the server's core")
    ap.add_argument("--port", type=int, help="couch-load: pouchdb-server's port")
    ap.add_argument("--docs", type=int, default=10000, help="couch-load: documents")
    a = ap.parse_args()
    a.litedistd, a.pouchdb = os.path.abspath(a.litedistd), os.path.abspath(a.pouchdb)
    os.makedirs(a.work, exist_ok=True)
    ctx = Ctx(a)
    try:
        {"B5": b5, "B6": b6, "B7": b7, "B8": b8, "B9": b9, "B10": b10, "B11": b11, "B12": b12,
         "B13": b13, "B14": b14, "B15": b15, "B16": b16, "B17": b17, "B18": b18, "raw": raw,
         "couch-load": couch_preload}[a.workload](ctx)
    except (BenchError, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        log(f"{a.workload} failed: {e}")
        for p in ctx.procs:
            if not p.alive():
                log(f"{p.name} died:\n{p.tail()}")
        return 1
    finally:
        ctx.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
