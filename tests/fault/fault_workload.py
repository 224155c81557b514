"""The client side of the fault test: worker threads that write to random nodes and record every
request and its answer (the history the checker judges).

Each worker has its own seeded random generator, so a run is repeatable up to timing. Every value
written carries a unique token ("<run>-w<worker>-<n>"); every answer is recorded: acked (200 with
its Version, Hlc, origin NodeId and Sequence), refused (a 4xx such as a 409 on a stale
parentVersion: nothing written), or unknown (timeout, reset, 5xx: it may or may not have been
applied, so its token may appear but need not).
"""

import http.client
import json
import random
import threading
import time
import urllib.parse

ROOT_KEY = "root"
REQUEST_TIMEOUT = 2.0  # short: a SIGSTOPped node must not hold a worker for its whole pause

COLLECTIONS = ("items", "orders")
KEYS_PER_COLLECTION = 40  # few keys: concurrent writers collide on purpose
CACHE_KEYS = 30
CACHE_TTLS = ("500ms", "1s", "2s", "3s", "5m")  # 5m: some keys are still live at the check

# Operation mix (weights): put = POST upsert, update = PUT with the worker's last known version
# as parentVersion, delete, cache = PUT /api/cache/{key}?ttl=..., cache-delete = DELETE of one.
MIX = (("put", 40), ("update", 28), ("delete", 14), ("cache", 15), ("cache-delete", 3))
DELETES = ("delete", "cache-delete")  # kinds that write no value


class History:
    """Every operation attempted and its outcome, appended by the workers (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []

    def add(self, rec):
        with self.lock:
            self.ops.append(rec)

    def counts(self):
        with self.lock:
            out = {"attempted": len(self.ops), "acked": 0, "refused": 0, "unknown": 0}
            for r in self.ops:
                out[r["outcome"]] += 1
            return out


class Worker(threading.Thread):
    def __init__(self, idx, run_id, seed, nodes, dbs, history, stop_event, max_ops):
        super().__init__(name=f"fault-worker-{idx}", daemon=True)
        self.idx, self.run_id = idx, run_id
        self.rng = random.Random(f"{seed}-worker-{idx}")
        self.nodes, self.dbs = nodes, dbs
        self.history, self.stop_event, self.max_ops = history, stop_event, max_ops
        self.conns = {}
        self.versions = {}  # (db, coll, id) -> the last Version this worker saw acked
        self.n = 0
        self.error = None

    # --- HTTP ------------------------------------------------------------------------------------

    def _conn(self, node):
        c = self.conns.get(node.name)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=REQUEST_TIMEOUT)
            self.conns[node.name] = c
        return c

    def _request(self, node, method, path, db, body):
        """(status, parsed body) or raises OSError / http.client.HTTPException."""
        headers = {"Database": db, "ApiKey": ROOT_KEY, "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        c = self._conn(node)
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
        except BaseException:
            c.close()
            self.conns.pop(node.name, None)
            raise
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return r.status, parsed

    # --- operations ------------------------------------------------------------------------------

    def _pick_kind(self):
        total = sum(w for _, w in MIX)
        x = self.rng.uniform(0, total)
        for kind, w in MIX:
            if x < w:
                return kind
            x -= w
        return MIX[-1][0]

    def run(self):
        try:
            while not self.stop_event.is_set() and self.n < self.max_ops:
                self.one()
        except Exception as e:  # a bug in the harness itself: reported by the test
            self.error = repr(e)
        finally:
            for c in self.conns.values():
                c.close()

    def one(self):
        kind = self._pick_kind()
        node = self.rng.choice(self.nodes)
        db = self.rng.choice(self.dbs)
        self.n += 1
        token = f"{self.run_id}-w{self.idx}-{self.n}"
        rec = {"kind": kind, "db": db, "node": node.name, "token": token, "worker": self.idx}
        if kind == "cache":
            key = f"c{self.rng.randrange(CACHE_KEYS)}"
            ttl = self.rng.choice(CACHE_TTLS)
            rec.update(coll="cache", id=key, ttl=ttl)
            path = f"/api/cache/{urllib.parse.quote(key)}?ttl={ttl}"
            method, body = "PUT", {"Token": token, "Worker": self.idx}
        elif kind == "cache-delete":
            key = f"c{self.rng.randrange(CACHE_KEYS)}"
            rec.update(coll="cache", id=key)
            method, path, body = "DELETE", f"/api/cache/{urllib.parse.quote(key)}", None
        else:
            coll = self.rng.choice(COLLECTIONS)
            doc_id = f"k{self.rng.randrange(KEYS_PER_COLLECTION)}"
            rec.update(coll=coll, id=doc_id)
            base = f"/api/documents/{coll}"
            if kind == "put":
                method, path = "POST", base
                body = {"Id": doc_id, "Token": token, "Worker": self.idx, "N": self.n}
            elif kind == "update":
                method, path = "PUT", f"{base}/{doc_id}"
                body = {"Token": token, "Worker": self.idx, "N": self.n}
                parent = self.versions.get((db, coll, doc_id))
                if parent:
                    path += "?parentVersion=" + parent
                    rec["parent"] = parent
            else:
                method, path, body = "DELETE", f"{base}/{doc_id}", None
        rec["t0"] = time.time()
        try:
            status, answer = self._request(node, method, path, db, body)
        except (OSError, http.client.HTTPException) as e:
            rec.update(outcome="unknown", error=type(e).__name__, t1=time.time())
            self.history.add(rec)
            return
        rec["t1"] = time.time()
        rec["status"] = status
        if status == 200 and isinstance(answer, dict):
            rec["outcome"] = "acked"
            if kind == "cache":
                rec.update(version=answer.get("Version"), expires=answer.get("ExpiresAtUtc"))
            else:
                op = answer.get("Operation") or {}
                rec.update(version=answer.get("Version"), hlc=int(op.get("Hlc", 0)),
                           origin=op.get("NodeId"), seq=op.get("Sequence"),
                           deleted=answer.get("IsDeleted"))
                self.versions[(db, rec["coll"], rec["id"])] = answer.get("Version")
        elif 400 <= status < 500:
            rec["outcome"] = "refused"
            rec["error"] = answer.get("Error") if isinstance(answer, dict) else str(answer)
            if status == 409:
                # A stale parentVersion: the next update of this key is unconditional.
                self.versions.pop((db, rec["coll"], rec["id"]), None)
        else:
            rec["outcome"] = "unknown"
            rec["error"] = f"HTTP {status}"
        self.history.add(rec)
