"""The judge of the fault test: reads every node's state after the heal and checks it against
docs/architecture.md §5 and the client history.

What a node's "dump" is: its records as the snapshot route serves them (POST
/api/replication/snapshot, every document, tombstone and cache entry with its stamp, version and
body), which stays whole when the op log is pruned. It must equal the fold of the node's op log
to the max-(Hlc, NodeId) op per key; the log is the one fault_prune.LogRecorder read entry by
entry before each prune (without pruning, the same reads from 0 give the whole log). The live
documents the node serves (GET /api/documents/{c}, GET /api/cache/{key}) must be exactly the live
part of its dump, and the dumps of all nodes must be identical.
"""

import base64
import http.client
import json
import struct
import time
import urllib.parse

from fault_nemesis import REPLICATION_KEY, repl_status
from fault_workload import DELETES

ROOT_KEY = "root"


def _call(node, method, path, headers, body=None, timeout=15.0, with_headers=False):
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data, headers={**headers, "Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        parsed = json.loads(raw) if raw else None
        return (r.status, parsed, r.headers) if with_headers else (r.status, parsed)
    finally:
        c.close()


def _snapshot_page(node, db, after):
    body = {"ProtocolVersion": 1, "RequestingNodeId": "fault-checker"}
    if after is not None:
        body["AfterKey"] = base64.b64encode(after).decode()
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=15.0)
    try:
        c.request("POST", "/api/replication/snapshot", body=json.dumps(body).encode(),
                  headers={"Database": db, "ReplicationApiKey": REPLICATION_KEY,
                           "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def decode_record(key, raw):
    """One snapshot record (docs/replication.md: key `collection \0 id`, value the stored record
    of core/db/record.c: format 1, flags, hlc, expires_ms, version, origin, JSON) as a dump row
    keyed (collection, id)."""
    coll, _, doc_id = key.partition(b"\0")
    assert raw[0] == 1, f"record format {raw[0]}"
    flags = raw[1]
    hlc, expires = struct.unpack(">QQ", raw[2:18])
    version = raw[18:34].hex()
    olen = raw[34]
    origin = raw[35:35 + olen].decode()
    body = raw[35 + olen:]
    tomb, swept = bool(flags & 0x01), bool(flags & 0x04)
    return (coll.decode(), doc_id.decode()), {
        "Hlc": hlc, "NodeId": origin, "Version": version, "IsTombstone": tomb, "Swept": swept,
        "ExpiresAtMs": expires or None,
        "Payload": None if tomb or swept else json.loads(body)}


def read_snapshot(node, db):
    """Every record of db on node through the snapshot route: {(collection, id): row}."""
    out, after = {}, None
    for _ in range(10000):  # bounded: pages of 4 MiB, far beyond any run
        status, raw = _snapshot_page(node, db, after)
        assert status == 200, f"{node.name}: snapshot of {db}: {status} {raw[:200]!r}"
        assert raw[:8] == b"LDSNAP1\n", f"{node.name}: snapshot of {db}: not a snapshot page"
        (hl,) = struct.unpack(">I", raw[8:12])
        hdr = json.loads(raw[12:12 + hl])
        p = 12 + hl
        for _ in range(hdr["Count"]):
            (kl,) = struct.unpack(">I", raw[p:p + 4])
            key = raw[p + 4:p + 4 + kl]
            p += 4 + kl
            (vl,) = struct.unpack(">I", raw[p:p + 4])
            k, row = decode_record(key, raw[p + 4:p + 4 + vl])
            p += 4 + vl
            out[k] = row
            after = key
        assert p == len(raw), f"{node.name}: snapshot page of {db} has trailing bytes"
        if hdr["Done"]:
            return out
    raise AssertionError(f"{node.name}: the snapshot of {db} did not end")


def read_docs(node, db, coll):
    """The live documents of coll as node serves them: {Id: document}. Keyset pages: each
    answer that stopped early says where the next starts (X-Next-After)."""
    out, after = {}, None
    for _ in range(1000):  # bounded: far beyond any run's documents
        params = {"take": 10000, **({"after": after} if after is not None else {})}
        status, body, headers = _call(node, "GET",
                                      f"/api/documents/{coll}?{urllib.parse.urlencode(params)}",
                                      {"Database": db, "ApiKey": ROOT_KEY}, with_headers=True)
        if status == 404:
            return out
        assert status == 200, f"{node.name}: list {db}/{coll}: {status} {body}"
        for d in body:
            out[d["Id"]] = d
        nxt = headers.get("X-Next-After")
        if nxt is None:
            return out
        after = urllib.parse.unquote(nxt)
    raise AssertionError(f"{node.name}: listing {db}/{coll} did not end")


def read_cache(node, db, key):
    """(status, body, ms before the request, ms after it) of GET /api/cache/{key}."""
    t0 = int(time.time() * 1000)
    status, body = _call(node, "GET", f"/api/cache/{urllib.parse.quote(key)}",
                         {"Database": db, "ApiKey": ROOT_KEY})
    return status, body, t0, int(time.time() * 1000)


def vv_digest(node, dbs):
    """{db: (VersionVector, Digest)} of node, or None when it does not answer."""
    st = repl_status(node)
    if st is None:
        return None
    have = {d["DatabaseName"]: (d["VersionVector"], d["Digest"]) for d in st["Databases"]}
    return {db: have.get(db) for db in dbs}


def wait_converged(nodes, dbs, timeout):
    """Seconds until every node reports the same (VV, digest) for every database, twice in a
    row 0.5 s apart (a pair of equal snapshots taken while ops still flow would be luck), or None
    after `timeout` s. Also returns the last snapshot seen."""
    t0 = time.monotonic()
    last, stable = None, 0
    while time.monotonic() - t0 < timeout:
        snap = [vv_digest(n, dbs) for n in nodes]
        same = all(s is not None for s in snap) and all(s == snap[0] for s in snap) and \
            all(snap[0][db] is not None for db in dbs)
        if same and snap == last:
            stable += 1
            if stable >= 1:
                return time.monotonic() - t0, snap
        else:
            stable = 0
        last = snap
        time.sleep(0.5)
    return None, last


def stamp(op):
    return (int(op["Hlc"]), op["NodeId"].encode())


def fold(log):
    """The max-stamp op per (collection, id): the state docs/architecture.md §5 says every node holds."""
    state = {}
    for op in log:
        k = (op["Collection"], op["EntityId"])
        if k not in state or stamp(op) > stamp(state[k]):
            state[k] = op
    return state


def dump_of(snap):
    """A comparable, JSON-able form of a snapshot's records: one row per key, sorted."""
    return [{"Collection": coll, "EntityId": doc_id, **row}
            for (coll, doc_id), row in sorted(snap.items())]


def comparable(rows):
    """{key: row} of a dump for comparing nodes. Each node's sweeper frees the bodies of expired
    cache entries on its own schedule (a local change, no op): an expired entry is compared by
    its stamp, version and expiry, not by whether its body is still there."""
    now = int(time.time() * 1000)
    out = {}
    for r in rows:
        r = dict(r)
        if r.pop("Swept") or (r["ExpiresAtMs"] and r["ExpiresAtMs"] <= now):
            r["Payload"] = None
        out[(r.pop("Collection"), r.pop("EntityId"))] = r
    return out


def fold_row(op):
    """The record a folded op must have left: what the snapshot route shows for its key."""
    return {"Hlc": int(op["Hlc"]), "NodeId": op["NodeId"], "Version": op["Id"],
            "IsTombstone": op["IsTombstone"], "ExpiresAtMs": op.get("ExpiresAtMs") or None,
            "Payload": None if op["IsTombstone"] else json.loads(op["Payload"])}


class Checker:
    """Collects the nodes' state once converged and lists every violated property."""

    def __init__(self, nodes, dbs, history, cache_checked, recorder):
        """recorder: a fault_prune.LogRecorder that read the logs as they grew (it reads what is
        left here)."""
        self.nodes, self.dbs, self.history = nodes, dbs, history
        self.cache_checked, self.recorder = cache_checked, recorder
        self.problems = []
        self.logs = {}   # (node, db) -> op list
        self.dumps = {}  # (node, db) -> dump rows
        self.figures = {}

    def fail(self, text):
        if len(self.problems) < 200:  # enough to diagnose; the artifacts hold the rest
            self.problems.append(text)

    def run(self):
        if not self.recorder.read_all(self.nodes):
            self.fail("the recorder could not read every node's op log after the heal")
        self.problems += self.recorder.gaps
        for db in self.dbs:
            states = {}
            for n in self.nodes:
                log = self.recorder.logs[(n.name, db)]
                self.logs[(n.name, db)] = log
                self.check_log(n, db, log)
                states[n.name] = fold(log)
                snap = read_snapshot(n, db)
                self.dumps[(n.name, db)] = dump_of(snap)
                self.check_snapshot(n, db, snap, states[n.name])
                self.check_served(n, db, states[n.name])
            first = self.nodes[0].name
            ids = {n.name: {op["Id"] for op in self.logs[(n.name, db)]} for n in self.nodes}
            for n in self.nodes[1:]:
                if ids[n.name] != ids[first]:
                    self.fail(f"{db}: the logs of {first} and {n.name} hold different ops "
                              f"({len(ids[first] - ids[n.name])} only on {first}, "
                              f"{len(ids[n.name] - ids[first])} only on {n.name})")
                a = comparable(self.dumps[(first, db)])
                b = comparable(self.dumps[(n.name, db)])
                if a != b:
                    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
                    self.fail(f"{db}: dumps of {first} and {n.name} differ on {len(diff)} keys, "
                              f"e.g. " + "; ".join(f"{k}: {a.get(k)} / {b.get(k)}"
                                                   for k in diff[:3]))
            self.check_history(db, states[first], self.logs[(first, db)])
        return self.problems

    def check_snapshot(self, n, db, snap, state):
        """The records the node holds are the fold of every op it logged: the same keys, and per
        key the winning op's stamp, version, tombstone, expiry and body (an expired cache entry
        the sweeper emptied keeps all but its body)."""
        keys = set(snap) | set(state)
        bad = []
        for k in sorted(keys):
            if k not in snap or k not in state:
                bad.append((k, "only in the " + ("log" if k in state else "snapshot")))
                continue
            want, got = fold_row(state[k]), dict(snap[k])
            if got.pop("Swept"):
                want["Payload"] = None
            if got != want:
                bad.append((k, f"snapshot {got} != fold {want}"))
        for k, why in bad[:5]:
            self.fail(f"{n.name}/{db}: record {k}: {why}")
        if len(bad) > 5:
            self.fail(f"{n.name}/{db}: {len(bad)} records differ from the log's fold")
        self.figures["snapshot_records_checked"] = \
            self.figures.get("snapshot_records_checked", 0) + len(snap)

    def check_log(self, n, db, log):
        """Per origin: Sequence exactly 1..max once each, Hlc strictly increasing with it (across
        restarts too); op ids unique; no value that was never written."""
        by_origin, ids = {}, set()
        for op in log:
            by_origin.setdefault(op["NodeId"], []).append(op)
            if op["Id"] in ids:
                self.fail(f"{n.name}/{db}: op {op['Id']} twice in the log")
            ids.add(op["Id"])
        for origin, ops in by_origin.items():
            ops.sort(key=lambda o: o["Sequence"])
            seqs = [o["Sequence"] for o in ops]
            if seqs != list(range(1, len(ops) + 1)):
                self.fail(f"{n.name}/{db}: origin {origin} sequences are not 1..{len(ops)} "
                          f"once each (first bad index "
                          f"{next(i for i, s in enumerate(seqs) if s != i + 1)})")
            for a, b in zip(ops, ops[1:]):
                if int(b["Hlc"]) <= int(a["Hlc"]):
                    self.fail(f"{n.name}/{db}: origin {origin} seq {b['Sequence']} stamp "
                              f"{b['Hlc']} is not above seq {a['Sequence']}'s {a['Hlc']}")
        tokens = self.history_tokens(db)
        for op in log:
            if op["IsTombstone"]:
                continue
            body = json.loads(op["Payload"])
            tok = (body.get("Value") or {}).get("Token") if op["Collection"] == "cache" \
                else body.get("Token")
            key = (op["Collection"], op["EntityId"])
            if tokens.get(tok) != key:
                self.fail(f"{n.name}/{db}: {key} holds token {tok!r}, never written there")

    def history_tokens(self, db):
        """Token -> (collection, id) of every write on db that may have happened: acked, or
        unknown (timed out, reset, 5xx). A refused one (409 on a stale parentVersion) must not
        appear anywhere."""
        return {r["token"]: (r["coll"], r["id"]) for r in self.history.ops
                if r["db"] == db and r["kind"] not in DELETES and r["outcome"] != "refused"}

    def check_served(self, n, db, state):
        """What the node serves equals the live part of its dump; no expired cache key."""
        colls = sorted({c for (c, _) in state if c != "cache"})
        for coll in colls:
            served = read_docs(n, db, coll)
            expected = {i: json.loads(op["Payload"]) for (c, i), op in state.items()
                        if c == coll and not op["IsTombstone"]}
            if served != expected:
                diff = sorted(set(served) ^ set(expected)) + \
                    sorted(k for k in set(served) & set(expected) if served[k] != expected[k])
                self.fail(f"{n.name}/{db}/{coll}: served documents differ from the log's fold "
                          f"on {diff[:5]}")
        if not self.cache_checked:
            return
        for (c, key), op in sorted(state.items()):
            if c != "cache":
                continue
            status, body, t0, t1 = read_cache(n, db, key)
            exp = op.get("ExpiresAtMs") or 0
            kind = "cache_served" if status == 200 else "cache_hidden"
            self.figures[kind] = self.figures.get(kind, 0) + 1
            if status == 200:
                if op["IsTombstone"] or exp <= t0:
                    self.fail(f"{n.name}/{db}: cache key {key} visible though "
                              f"{'deleted' if op['IsTombstone'] else f'expired at {exp} < {t0}'}")
                elif body.get("Value") != json.loads(op["Payload"]).get("Value"):
                    self.fail(f"{n.name}/{db}: cache key {key} serves {body.get('Value')!r}, "
                              f"not its winning op's value")
            elif status == 404:
                if not op["IsTombstone"] and exp > t1 + 1000:
                    self.fail(f"{n.name}/{db}: live cache key {key} (expires {exp}) answers 404")
            else:
                self.fail(f"{n.name}/{db}: GET cache {key}: {status} {body}")

    def check_history(self, db, state, log):
        """Every acked write is in the log with the stamp it was acked with, and the key's final
        stamp is that one or greater; per origin, acked stamps rise with the sequence."""
        by_version = {op["Id"]: op for op in log}
        acked = [r for r in self.history.ops if r["db"] == db and r["outcome"] == "acked"]
        lost, superseded, present = 0, 0, 0
        per_origin = {}
        for r in acked:
            op = by_version.get(r["version"])
            if op is None:
                lost += 1
                self.fail(f"{db}: acked {r['kind']} of {r['coll']}/{r['id']} (version "
                          f"{r['version']}, token {r['token']}) is in no log: lost")
                continue
            if r["kind"] != "cache":
                if int(op["Hlc"]) != r["hlc"] or op["NodeId"] != r["origin"] or \
                        op["Sequence"] != r["seq"]:
                    self.fail(f"{db}: acked {r['version']} was acked as ({r['hlc']}, "
                              f"{r['origin']}, seq {r['seq']}) but logged as ({op['Hlc']}, "
                              f"{op['NodeId']}, seq {op['Sequence']})")
            if r["kind"] not in DELETES:
                body = json.loads(op["Payload"])
                tok = (body.get("Value") or {}).get("Token") if r["kind"] == "cache" \
                    else body.get("Token")
                if tok != r["token"]:
                    self.fail(f"{db}: acked {r['version']} carries token {tok!r}, "
                              f"sent {r['token']!r}")
            final = state.get((r["coll"], r["id"]))
            if final is None or stamp(final) < stamp(op):
                lost += 1
                self.fail(f"{db}: {r['coll']}/{r['id']} ends below acked {r['version']}")
            elif final["Id"] == op["Id"]:
                present += 1
            else:
                superseded += 1
            per_origin.setdefault(op["NodeId"], []).append(op)
        for origin, ops in per_origin.items():
            ops.sort(key=lambda o: o["Sequence"])
            for a, b in zip(ops, ops[1:]):
                if b["Sequence"] == a["Sequence"] and b["Id"] != a["Id"]:
                    self.fail(f"{db}: origin {origin} acked two ops with sequence "
                              f"{a['Sequence']} (a restart reused it)")
                elif b["Sequence"] > a["Sequence"] and int(b["Hlc"]) <= int(a["Hlc"]):
                    self.fail(f"{db}: origin {origin} acked seq {b['Sequence']} with a stamp "
                              f"not above seq {a['Sequence']}'s")
        f = self.figures.setdefault("acked_present", 0)
        self.figures["acked_present"] = f + present
        self.figures["acked_superseded"] = self.figures.get("acked_superseded", 0) + superseded
        self.figures["lost"] = self.figures.get("lost", 0) + lost
        self.figures["log_entries_per_node"] = self.figures.get("log_entries_per_node", 0) + \
            len(log)
