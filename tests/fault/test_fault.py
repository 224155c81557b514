"""Fault-injection convergence test (issue 9, item 1): three real litedistd nodes on 127.0.0.1,
replicating through TCP proxies written here, six client workers writing to random nodes while a
nemesis injects one fault at a time (kill -9 and restart, SIGSTOP, a link cut or slowed in one
direction, a skewed clock); then everything is healed and the nodes must agree within 60 s on
(VV, digest) and on their dumps, keep every acknowledged write, invent nothing, keep per-origin
sequences and stamps rising across restarts, hide every expired cache key, and a restarted node
must move again at most one batch. Op-log pruning is on throughout: every 2 s each node's log is
read and then pruned down to its 500 most recent entries (tests/fault/fault_prune.py), and the
checker reads each node's state through the snapshot route.

Seeded (LD_FAULT_SEED, default 9) and bounded: each topology runs its workload until
LD_FAULT_OPS operations (default 10000) are done, every fault kind was injected and
LD_FAULT_MIN_SECONDS (default 50) have passed, or LD_FAULT_SECONDS (default 75) have passed.
On failure the history, the logs, the dumps and the fault timeline are written to
LD_FAULT_ARTIFACTS (ctest: <build>/tests/fault/artifacts) or the test's tmp directory, named in
the failure message.
"""

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

import fault_workload
from fault_check import Checker, wait_converged
from fault_nemesis import KINDS, Nemesis, repl_status
from fault_prune import SETTINGS as PRUNE_SETTINGS
from fault_prune import LogRecorder, Pruner
from fault_proxy import ProxySet

SEED = int(os.environ.get("LD_FAULT_SEED", "9"))
OPS_TARGET = int(os.environ.get("LD_FAULT_OPS", "10000"))
MIN_WORKLOAD_SECONDS = float(os.environ.get("LD_FAULT_MIN_SECONDS", "50"))
MAX_WORKLOAD_SECONDS = float(os.environ.get("LD_FAULT_SECONDS", "75"))
CONVERGE_TIMEOUT = 60.0
WORKERS = 6
BATCH = 200  # Node.ReplicationBatchSize: a restarted node may move again at most this many ops
DBS = ("fault-one", "fault-two")
NAMES = ("a", "b", "c")

# Directed replication links (the connections src opens to dst), each through its own proxy.
TOPOLOGIES = {
    "mesh": [(s, d) for s in NAMES for d in NAMES if s != d],
    "chain": [("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")],
}

FIGURES = []  # one dict per run, printed at the end of the session (conftest.py)
CACHE_RESULTS = []  # (topology, cache acks, cache keys checked)


def node_id(name):
    return f"fault-{name}"


def artifacts_dir(tmp_path, topology):
    base = os.environ.get("LD_FAULT_ARTIFACTS")
    root = Path(base) if base else tmp_path / "artifacts"
    d = root / f"{topology}-seed{SEED}-{int(time.time())}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_artifacts(d, history, nemesis, checker, nodes, snapshot, figures, problems):
    (d / "problems.txt").write_text("\n".join(problems) + "\n")
    (d / "history.json").write_text(json.dumps(history.ops, indent=1))
    (d / "faults.json").write_text(json.dumps({"events": nemesis.events,
                                               "resumes": nemesis.resumes,
                                               "repulls": nemesis.repulls}, indent=1))
    (d / "figures.json").write_text(json.dumps(figures, indent=1))
    (d / "vv-digest.json").write_text(json.dumps(snapshot, indent=1))
    if checker is not None:
        for (name, db), rows in checker.dumps.items():
            (d / f"dump-{name}-{db}.json").write_text(json.dumps(rows, indent=1))
        for (name, db), log in checker.logs.items():
            (d / f"oplog-{name}-{db}.json").write_text(json.dumps(log, indent=1))
    for n in nodes:
        (d / f"status-{n.name}.json").write_text(json.dumps(repl_status(n), indent=1))
        (d / f"litedistd-{n.name}.log").write_text(n.log_text())


def start_cluster(make_node, proxies, topology):
    """Three nodes whose peers are the proxies of their links. The mesh learns its peers from
    Node.SeedPeers, the chain through POST /api/cluster/peers: both ways are exercised."""
    overrides = {"Node": {"ReplicationBatchSize": BATCH, "ReplicationTimeoutSeconds": 4,
                          "AntiEntropyIntervalSeconds": 5, "PeerProbeIntervalSeconds": 0,
                          "LogLevel": "info", **PRUNE_SETTINGS}}
    nodes = {name: make_node(overrides, node_id=node_id(name), name=name, start=False)
             for name in NAMES}
    urls = {}
    for src, dst in TOPOLOGIES[topology]:
        urls[(src, dst)] = f"http://127.0.0.1:{proxies.add(src, dst, nodes[dst].port)}"
    if topology == "mesh":
        for name, n in nodes.items():
            n.config["Node"]["SeedPeers"] = [
                {"NodeId": node_id(dst), "BaseUrl": url, "IsActive": True}
                for (src, dst), url in urls.items() if src == name]
            n.write_config()
    for n in nodes.values():
        n.start()
    if topology == "chain":
        for (src, dst), url in urls.items():
            r = nodes[src].request("POST", "/api/cluster/peers",
                                   body={"NodeId": node_id(dst), "BaseUrl": url,
                                         "IsActive": True},
                                   headers={"ReplicationApiKey": "I_AM_ONE_OF_YOU"})
            assert r.status == 200, r
    return [nodes[name] for name in NAMES]


def run_workload(nodes, history, nemesis, pruner, stop, rng_seed, run_id, log):
    workers = [fault_workload.Worker(i, run_id, rng_seed, nodes, list(DBS), history, stop,
                                     max_ops=10 * OPS_TARGET)
               for i in range(WORKERS)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    nemesis.start()
    pruner.start()
    while time.monotonic() - t0 < MAX_WORKLOAD_SECONDS:
        done = sum(w.n for w in workers)
        if done >= OPS_TARGET and all(nemesis.injected[k] > 0 for k in KINDS) and \
                time.monotonic() - t0 >= MIN_WORKLOAD_SECONDS:
            break
        if nemesis.error or pruner.error or any(w.error for w in workers) or \
                not nemesis.is_alive():
            break
        time.sleep(0.2)
    stop.set()
    for w in workers:
        w.join(fault_workload.REQUEST_TIMEOUT * 3)
    nemesis.join(60)
    pruner.join(60)
    elapsed = time.monotonic() - t0
    log(f"workload: {sum(w.n for w in workers)} ops in {elapsed:.1f} s")
    errors = [w.error for w in workers if w.error] + \
        [t.error for t in (nemesis, pruner) if t.error]
    stuck = [t.name for t in workers + [nemesis, pruner] if t.is_alive()]
    return elapsed, errors, stuck


@pytest.mark.parametrize("topology", ["mesh", "chain"])
def test_converges_under_faults(topology, make_node, tmp_path):
    rng = random.Random(f"{SEED}-{topology}")
    lines = []

    def log(text):
        lines.append(f"{time.strftime('%H:%M:%S')} {text}")

    proxies = ProxySet()
    history = fault_workload.History()
    stop = threading.Event()
    nemesis = checker = pruner = None
    snapshot = None
    try:
        nodes = start_cluster(make_node, proxies, topology)
        nemesis = Nemesis(rng, nodes, TOPOLOGIES[topology], proxies, stop, log, BATCH)
        recorder = LogRecorder(nodes, DBS)
        pruner = Pruner(nodes, DBS, recorder, nemesis, stop)
        elapsed, errors, stuck = run_workload(nodes, history, nemesis, pruner, stop, SEED,
                                              f"{topology[0]}{SEED}", log)
        nemesis.heal_all()
        log("healed everything")
        converge_s, snapshot = wait_converged(nodes, DBS, CONVERGE_TIMEOUT)
        checker = Checker(nodes, DBS, history, cache_checked=True, recorder=recorder)
        problems = []
        problems += [f"harness: {e}" for e in errors]
        problems += [f"harness: thread {t} did not stop" for t in stuck]
        if converge_s is None:
            problems.append(f"no convergence of (VV, digest) within {CONVERGE_TIMEOUT:.0f} s")
        # Also without convergence: the dumps and logs it reads are the artifacts.
        problems += checker.run()
        for n in nodes:
            st = repl_status(n) or {}
            if st.get("DivergenceCount"):
                problems.append(f"{n.name}: DivergenceCount {st['DivergenceCount']}")
        for r in nemesis.resumes:
            if "error" in r:
                problems.append(f"restart of {r['node']} ({r['db']}, {r['peer']}): {r['error']}")
            elif r["push_gap"] > BATCH or r["pull_gap"] > BATCH:
                problems.append(f"restart of {r['node']}: its link to {r['peer']} ({r['db']}) "
                                f"resumed {r['push_gap']} entries behind on push and "
                                f"{r['pull_gap']} on pull: more than one batch ({BATCH})")
        problems += [f"restart of {r['node']}: {r['error']}" for r in nemesis.repulls
                     if "error" in r]
        # Any other refusal fails the run, a cache route answering "No route" included (a
        # routing regression must not pass as a skipped part).
        refused = [r for r in history.ops if r["outcome"] == "refused" and r.get("status") != 409]
        for r in refused[:5]:
            problems.append(f"unexpected refusal: {r}")
        counts = history.counts()
        by_kind = {}
        for r in history.ops:
            by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
        cache_keys = sum(1 for (name, db), rows in checker.dumps.items()
                         if name == nodes[0].name for row in rows
                         if row["Collection"] == "cache")
        figures = {
            "topology": topology, "seed": SEED, "workload_seconds": round(elapsed, 1),
            "operations": counts["attempted"], "acked": counts["acked"],
            "refused_409": sum(1 for r in history.ops if r.get("status") == 409),
            "unknown_outcome": counts["unknown"], "by_kind": by_kind,
            "faults": dict(nemesis.injected),
            "converge_seconds": None if converge_s is None else round(converge_s, 1),
            "acked_present": checker.figures.get("acked_present", 0),
            "acked_superseded": checker.figures.get("acked_superseded", 0),
            "lost": checker.figures.get("lost", 0),
            "max_resume_gap_entries": max([max(r.get("push_gap", 0), r.get("pull_gap", 0))
                                           for r in nemesis.resumes] or [0]),
            "max_duplicates_received_after_restart": max(
                [r.get("PulledDuplicates", 0) for r in nemesis.repulls] or [0]),
            "cache_keys_checked": cache_keys,
            "cache_gets_served_live": checker.figures.get("cache_served", 0),
            "cache_gets_hidden": checker.figures.get("cache_hidden", 0),
            "prune_calls": pruner.prune_calls, "entries_pruned": pruner.pruned,
            "snapshot_records_checked": checker.figures.get("snapshot_records_checked", 0),
            "log_entries_left": {n.name: sum(d.get("OperationLogEntries", 0)
                                             for d in (repl_status(n) or {}).get("Databases", []))
                                 for n in nodes},
        }
        FIGURES.append(figures)
        CACHE_RESULTS.append((topology,
                              sum(1 for r in history.ops
                                  if r["kind"] == "cache" and r["outcome"] == "acked"),
                              cache_keys))
        if counts["attempted"] < OPS_TARGET:
            problems.append(f"only {counts['attempted']} operations in "
                            f"{MAX_WORKLOAD_SECONDS:.0f} s (target {OPS_TARGET})")
        # Pruning must have happened for the run to say anything about it.
        if pruner.pruned == 0:
            problems.append(f"pruning removed no entry ({pruner.prune_calls} prune calls)")
        missing = [k for k in KINDS if nemesis.injected[k] == 0]
        if missing:
            problems.append(f"fault kinds never injected: {missing}")
        if problems:
            d = artifacts_dir(tmp_path, topology)
            save_artifacts(d, history, nemesis, checker, nodes, snapshot, figures, problems)
            pytest.fail(f"{len(problems)} problems ({topology}, seed {SEED}); artifacts in {d}\n"
                        + "\n".join(problems[:40]) + "\n--- timeline ---\n"
                        + "\n".join(lines[-60:]))
    finally:
        stop.set()
        if nemesis is not None and nemesis.is_alive():
            nemesis.join(60)
        if pruner is not None and pruner.is_alive():
            pruner.join(60)
        proxies.stop()


def test_cache_expiry_under_faults():
    """The cache part of the runs above: cache puts with short TTLs were acknowledged, and after
    the heal no node served an expired key (checked inside each run)."""
    if not CACHE_RESULTS:
        pytest.skip("no fault run happened in this session")
    for topology, acks, keys in CACHE_RESULTS:
        assert acks > 0, f"{topology}: no cache put was acknowledged"
        assert keys > 0, f"{topology}: no cache key reached the dumps"
