"""Op-log pruning during the fault test, and the log recorder that keeps the checker's view whole.

The nodes run with pruning on, both retention windows at their smallest (OperationLogRetentionDays
0, OperationLogRetainRecentOperations RETAIN_RECENT): every PRUNE_EVERY s this thread reads the
new entries of each node's op log (POST /api/replication/pull after the last one it read) and then
prunes that node (POST /api/replication/operation-log/prune). Reading before pruning, in one
thread, is what lets the checker still see every op a node ever logged: the checks on per-origin
sequences and on acked writes need each op, and a pruned one is gone from every route. The
snapshot route gives the state (fault_check.read_snapshot); the recorded logs give the history.

The configured interval (OperationLogPruningIntervalMinutes, at least 1 minute) is set beyond the
run so that only this thread prunes: a timer prune between two reads could drop entries the
recorder had not read yet. A pass prunes only entries that were in the log when it was asked for
(a paced pass lasts seconds), so what can slip past the recorder is what lands between a read and
the prune request that follows it; the recent window keeps that: RETAIN_RECENT is above what can
land at once (a batch of 200 from each of two peers, and with the pull pipeline a second one
right behind it, and the six workers' writes). A node the nemesis paused (SIGSTOP) is neither read nor pruned, and
the nemesis does not stop a node while its read-then-prune runs (Nemesis.stop_signal): a prune
left queued in a stopped node's socket would run after the pushes that queued with it. A log
pruned past what the recorder read is still reported (a gap the checks would otherwise trip on
without saying why).
"""

import http.client
import json
import threading
import time

from fault_nemesis import REPLICATION_KEY

PRUNE_EVERY = 2.0
RETAIN_RECENT = 1000
REQUEST_TIMEOUT = 3.0
PRUNE_TIMEOUT = 10.0
PULL_BATCH = 2000

SETTINGS = {"OperationLogPruningEnabled": True, "OperationLogRetentionDays": 0,
            "OperationLogRetainRecentOperations": RETAIN_RECENT,
            "OperationLogPruningIntervalMinutes": 10080}


def _post(node, path, db, body, timeout=REQUEST_TIMEOUT):
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        headers = {"ReplicationApiKey": REPLICATION_KEY, "Content-Type": "application/json"}
        if db is not None:
            headers["Database"] = db
        c.request("POST", path, body=json.dumps(body).encode() if body is not None else b"",
                  headers=headers)
        r = c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)
    finally:
        c.close()


def stopped(node):
    """Whether the node's process is stopped (SIGSTOP) or gone: then it is left alone."""
    proc = node.proc
    if proc is None or proc.poll() is not None:
        return True
    pid = proc.pid
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X")
    except OSError:
        return True


class LogRecorder:
    """Every op-log entry each node held, read in LogSequence order before pruning removed it."""

    def __init__(self, nodes, dbs):
        self.nodes, self.dbs = nodes, dbs
        self.logs = {(n.name, db): [] for n in nodes for db in dbs}
        self.after = {(n.name, db): 0 for n in nodes for db in dbs}
        self.floor_vv = {(n.name, db): None for n in nodes for db in dbs}
        self.gaps = []  # text per entry range pruned before it was read
        self.lock = threading.Lock()

    def read(self, node, db, timeout=REQUEST_TIMEOUT):
        """Reads node's entries of db after the last one read. Returns False when the node did not
        answer (paused, killed, restarting): nothing is lost, the next read starts there."""
        k = (node.name, db)
        with self.lock:
            for _ in range(1000):  # bounded: batches of PULL_BATCH, far beyond any run
                body = {"RequestingNodeId": "fault-checker", "AfterLogSequence": self.after[k],
                        "BatchSize": PULL_BATCH}
                if self.floor_vv[k] is not None:
                    # The pruned part is below the floor: a VV that covers it lets the pull
                    # answer; it skips no retained entry (per origin, ingest is in order).
                    body["VersionVector"] = self.floor_vv[k]
                try:
                    status, ans = _post(node, "/api/replication/pull", db, body, timeout)
                except (OSError, http.client.HTTPException, ValueError):
                    return False
                if status == 404:  # the database is not on this node yet
                    return True
                if status == 410:
                    oldest = ans["OldestAvailableLogSequence"]
                    if oldest - 1 > self.after[k]:
                        self.gaps.append(f"{node.name}/{db}: entries {self.after[k] + 1}.."
                                         f"{oldest - 1} were pruned before the recorder read them")
                        self.after[k] = oldest - 1
                    self.floor_vv[k] = ans["LogFloorVersionVector"]
                    continue
                if status != 200:
                    return False
                self.logs[k].extend(ans["Operations"])
                last = ans["LastLogSequence"]
                if not ans.get("HasMore") or last <= self.after[k]:
                    self.after[k] = max(self.after[k], last)
                    return True
                self.after[k] = last
            return False

    def read_all(self, nodes, timeout=15.0):
        """The final read after the heal, of every node and database; False if one failed."""
        return all(self.read(n, db, timeout) for n in nodes for db in self.dbs)


class Pruner(threading.Thread):
    """Reads, then prunes, each node every PRUNE_EVERY s until stop is set."""

    def __init__(self, nodes, dbs, recorder, nemesis, stop_event):
        super().__init__(name="fault-pruner", daemon=True)
        self.nodes, self.dbs, self.recorder, self.stop_event = nodes, dbs, recorder, stop_event
        self.nemesis = nemesis
        self.pruned = 0       # entries the prune route reported removed, all nodes
        self.prune_calls = 0  # prune requests answered
        self.error = None

    def run(self):
        try:
            while not self.stop_event.wait(PRUNE_EVERY):
                for n in self.nodes:
                    with self.nemesis.stop_signal:
                        if stopped(n) or not all(self.recorder.read(n, db) for db in self.dbs):
                            continue
                        try:
                            # Waits out a slow node: a prune the node runs after the answer
                            # was given up on could meet entries landed meanwhile.
                            status, rows = _post(n, "/api/replication/operation-log/prune", None,
                                                 None, timeout=PRUNE_TIMEOUT)
                        except (OSError, http.client.HTTPException, ValueError):
                            continue
                    if status != 200:
                        raise AssertionError(f"{n.name}: prune answered {status} {rows}")
                    self.prune_calls += 1
                    self.pruned += sum(r.get("PrunedCount") or 0 for r in rows)
        except Exception as e:  # noqa: BLE001 - reported by the test as a harness problem
            self.error = f"pruner: {type(e).__name__}: {e}"
