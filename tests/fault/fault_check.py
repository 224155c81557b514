"""The judge of the fault test: reads every node's state after the heal and checks it against
docs/architecture.md §5 and the client history.

What a node's "dump" is: its whole op log (POST /api/replication/pull from 0 with no version
vector returns every entry, local and relayed) folded to the max-(Hlc, NodeId) op per key: every
document and tombstone with its stamp, version (op Id) and body. The live documents the node
serves (GET /api/documents/{c}, GET /api/cache/{key}) must be exactly the live part of its dump,
and the dumps of all nodes must be identical.
"""

import http.client
import json
import time
import urllib.parse

from fault_nemesis import REPLICATION_KEY, repl_status
from fault_workload import DELETES

ROOT_KEY = "root"
PULL_BATCH = 10000


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


def read_log(node, db):
    """Every op-log entry of db on node, in LogSequence order."""
    ops, after = [], 0
    for _ in range(1000):  # bounded: 1000 batches of 10000 is far beyond any run
        status, body = _call(node, "POST", "/api/replication/pull",
                             {"Database": db, "ReplicationApiKey": REPLICATION_KEY},
                             {"RequestingNodeId": "fault-checker", "AfterLogSequence": after,
                              "BatchSize": PULL_BATCH})
        assert status == 200, f"{node.name}: pull {db} after {after}: {status} {body}"
        ops.extend(body["Operations"])
        if not body.get("HasMore") or body["LastLogSequence"] <= after:
            return ops
        after = body["LastLogSequence"]
    raise AssertionError(f"{node.name}: the op log of {db} did not end")


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


def dump_of(state):
    """A comparable, JSON-able form of a folded state: one row per key, sorted."""
    rows = []
    for (coll, doc_id), op in sorted(state.items()):
        rows.append({"Collection": coll, "EntityId": doc_id, "Hlc": op["Hlc"],
                     "NodeId": op["NodeId"], "Sequence": op["Sequence"], "Version": op["Id"],
                     "IsTombstone": op["IsTombstone"], "ExpiresAtMs": op.get("ExpiresAtMs"),
                     "Payload": None if op["IsTombstone"] else json.loads(op["Payload"])})
    return rows


class Checker:
    """Collects the nodes' state once converged and lists every violated property."""

    def __init__(self, nodes, dbs, history, cache_checked):
        self.nodes, self.dbs, self.history = nodes, dbs, history
        self.cache_checked = cache_checked
        self.problems = []
        self.logs = {}   # (node, db) -> op list
        self.dumps = {}  # (node, db) -> dump rows
        self.figures = {}

    def fail(self, text):
        if len(self.problems) < 200:  # enough to diagnose; the artifacts hold the rest
            self.problems.append(text)

    def run(self):
        for db in self.dbs:
            states = {}
            for n in self.nodes:
                log = read_log(n, db)
                self.logs[(n.name, db)] = log
                self.check_log(n, db, log)
                states[n.name] = fold(log)
                self.dumps[(n.name, db)] = dump_of(states[n.name])
                self.check_served(n, db, states[n.name])
            first = self.nodes[0].name
            ids = {n.name: {op["Id"] for op in self.logs[(n.name, db)]} for n in self.nodes}
            for n in self.nodes[1:]:
                if ids[n.name] != ids[first]:
                    self.fail(f"{db}: the logs of {first} and {n.name} hold different ops "
                              f"({len(ids[first] - ids[n.name])} only on {first}, "
                              f"{len(ids[n.name] - ids[first])} only on {n.name})")
                if self.dumps[(n.name, db)] != self.dumps[(first, db)]:
                    a = {(r["Collection"], r["EntityId"]): r for r in self.dumps[(first, db)]}
                    b = {(r["Collection"], r["EntityId"]): r for r in self.dumps[(n.name, db)]}
                    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
                    self.fail(f"{db}: dumps of {first} and {n.name} differ on {len(diff)} keys, "
                              f"e.g. {diff[:3]}")
            self.check_history(db, states[first], self.logs[(first, db)])
        return self.problems

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
