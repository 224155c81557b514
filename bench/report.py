#!/usr/bin/env python3
# bench/run's report: aggregates the wrk runs into the table, writes bench/results/<stamp>.json and
# (for a full run without errors) regenerates docs/benchmarks.md, whose storage section comes from
# bench/storage/run's bench/results/storage-<stamp>.json. Standard library only.
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Targets as the table names them.
TARGET_NAMES = {
    "ceiling": "evhttp ceiling", "litedist": "litedistd (SQLite)",
    "litedist-lmdb": "litedistd (LMDB)", "litedist-sqlite": "litedistd (SQLite)",
    "pouchdb": "pouchdb-server 4.2.0", "redis": "redis-server (no persistence)",
    "redis-aof": "redis-server (AOF everysec)", "sqlite-raw": "raw SQLite",
    "lmdb-raw": "raw LMDB",
    "litedist-plain": "litedistd, http:// peers", "litedist-tls": "litedistd, https:// peers",
    "litedist-sync-off": "litedistd (SQLite, Sync off)",
    "litedist-indexed": "litedistd (SQLite), index on $.Total",
    "pouchdb-indexed": "pouchdb-server 4.2.0, _find with an index on Total",
    "litedist-index-point": "litedistd (SQLite), WHERE $.Customer = ... via its index",
    "litedist-get": "litedistd (SQLite), GET by id",
}
TARGET_ORDER = list(TARGET_NAMES)

# (workload, label) in table order.
WORKLOADS = [
    ("B0", "B0 GET /health"),
    ("B1-preload", "B1 preload, 200 B docs"),
    ("B1", "B1 GET document by id"),
    ("B2", "B2 durable insert"),
    ("B2-2idx", "B2 durable insert, 2 indexes"),
    ("B3", "B3 single-client durable insert"),
    ("B4-put", "B4 cache PUT 100 B"),
    ("B4-get", "B4 cache GET 100 B"),
    ("B5", "B5 WHERE scan"),
    ("B6", "B6 time until visible on B"),
    ("B7-200B", "B7 catch-up, 200 B docs"),
    ("B7-1KB", "B7 catch-up, 1 KB docs"),
    ("B7", "B7 raw catch-up shape"),
    ("B8", "B8 3 nodes x 1k writes/s: lag"),
    ("B9-idle", "B9 RSS idle"),
    ("B9-docs", "B9 RSS after the documents"),
    ("B10-load", "B10 loading the joined database"),
    ("B10", "B10 new node joins the database"),
    ("B11", "B11 time until visible, plain vs TLS"),
    ("B11-handshakes", "B11 TLS handshakes after warm-up"),
    ("B12", "B12 event loop's longest lag, peer walking a covered log"),
    ("B12-get", "B12 GET p99 walking / idle"),
    ("B13", "B13 commit to a changes-feed subscriber"),
    ("B14-insert", "B14 bytes written per document insert"),
    ("B14-cache", "B14 bytes written per cache PUT"),
    ("B15-p99", "B15 churn: write p99 during a prune / without"),
    ("B15-disk", "B15 churn: disk per live document / its JSON and key"),
    ("B16", "B16 GET /metrics, 100 databases x 3 peers"),
    ("B17", "B17 indexed point lookup vs GET by id"),
    ("B18-get", "B18 RESP GET 100 B (redis-benchmark -c 32)"),
    ("B18-set", "B18 RESP SET 100 B (redis-benchmark -c 32)"),
    ("B18-get-P16", "B18 RESP GET 100 B, -P 16"),
    ("B18-set-P16", "B18 RESP SET 100 B, -P 16"),
]
LABELS = dict(WORKLOADS)


def error_count(wrk):
    e = wrk.get("errors", {})
    return sum(e.get(k, 0) for k in ("connect", "read", "write", "status", "timeout")) + (
        1 if wrk.get("wrk_failed") else 0)


def writes_per_sync(runs):
    """Median over the runs of requests per fdatasync (commits), when perf counted them."""
    ratios = [r["wrk"].get("requests", 0) / r["syncs"] for r in runs if r.get("syncs")]
    return statistics.median(ratios) if ratios else None


def flat(r):
    """One record as (value, unit, p50 ms, p99 ms, errors): a wrk run's rate and latencies, or a
    scenario's own figure."""
    if "wrk" in r:
        w = r["wrk"]
        lat = w.get("latency_us", {})
        if r["workload"].endswith("preload"):
            v, unit = w.get("docs_per_s", 0.0), "docs/s"
        else:
            v, unit = w.get("rps", 0.0), "req/s"
        return v, unit, lat.get("p50", 0) / 1e3, lat.get("p99", 0) / 1e3, error_count(w)
    return r.get("value"), r.get("unit", ""), r.get("p50_ms"), r.get("p99_ms"), 0


def summarize(records, conns_default):
    """One row per (workload, target, connections): median, min and max of the runs' figures."""
    groups = {}
    for r in records:
        if r["workload"] not in LABELS:
            continue
        groups.setdefault((r["workload"], r["target"], r.get("connections")), []).append(r)
    order = {w: i for i, (w, _) in enumerate(WORKLOADS)}
    rows = []
    for (w, t, c), runs in sorted(groups.items(), key=lambda kv: (
            order[kv[0][0]], TARGET_ORDER.index(kv[0][1]) if kv[0][1] in TARGET_ORDER else 99,
            -(kv[0][2] or 0))):
        row = {"workload": w, "label": LABELS[w], "target": t, "connections": c,
               "runs": len(runs)}
        if any("na" in r for r in runs):
            row.update(na=runs[0]["na"], value_median=None)
            rows.append(row)
            continue
        fl = [flat(r) for r in runs]
        vals = [x[0] for x in fl]
        row.update({
            "unit": fl[0][1], "value_median": statistics.median(vals), "value_min": min(vals),
            "value_max": max(vals), "value_all": vals,
            "by_repeat": {r["repeat"]: x[0] for r, x in zip(runs, fl)},
            "p50_ms": statistics.median(x[2] for x in fl) if fl[0][2] is not None else None,
            "p99_ms": statistics.median(x[3] for x in fl) if fl[0][3] is not None else None,
            "errors": sum(x[4] for x in fl),
            "server_cpu_pct": (statistics.median(r["server_cpu_pct"] for r in runs)
                               if "server_cpu_pct" in runs[0] else None),
            "writes_per_sync": writes_per_sync(runs) if "wrk" in runs[0] else None,
            "extra": {k: v for k, v in runs[-1].items()
                      if k not in ("workload", "target", "connections", "repeat", "value",
                                   "unit", "p50_ms", "p99_ms", "wrk")},
        })
        rows.append(row)
    return rows


def fmt_rps(x):
    return f"{x:,.0f}"


def fmt(x, unit=""):
    if x is None:
        return ""
    if unit in ("ms", "MiB") or abs(x) < 100:
        return f"{x:,.2f}"
    return f"{x:,.0f}"


def table(rows):
    out = ["| Workload | Target | Conns | median | min - max | unit | p50 ms | p99 ms | server CPU "
           "| errors |", "|---|---|--:|--:|--:|---|--:|--:|--:|--:|"]
    for r in rows:
        name = TARGET_NAMES.get(r["target"], r["target"])
        conns = r["connections"] if r["connections"] is not None else ""
        if r.get("na"):
            out.append(f"| {r['label']} | {name} | {conns} | n/a ({r['na']}) | | | | | | |")
            continue
        u = r["unit"]
        rng = "" if r["runs"] == 1 else f"{fmt(r['value_min'], u)} - {fmt(r['value_max'], u)}"
        cpu = "" if r["server_cpu_pct"] is None else f"{r['server_cpu_pct']:.0f}%"
        out.append(f"| {r['label']} | {name} | {conns} | {fmt(r['value_median'], u)} | {rng} "
                   f"| {u} | {fmt(r['p50_ms'], 'ms')} | {fmt(r['p99_ms'], 'ms')} | {cpu} "
                   f"| {r['errors']} |")
    return "\n".join(out)


# --- the goals of issue 7 (B0-B9) and issue 14 (B10) ------------------------------------------

def goals(rows, conns):
    """Every goal of the issue's table as {id, goal, measured, ratio, need, holds, score}; score
    is how far the figure is from the goal as a factor (>= 1 holds), for the chart."""
    by = {}
    for r in rows:
        by.setdefault((r["workload"], r["target"]), []).append(r)

    def row(w, t, c=None):
        for r in by.get((w, t), []):
            if c is None or r["connections"] == c:
                return r
        return None

    def paired(a, b):
        """Median over repeats of a's figure over b's of the same repeat (they ran next to each
        other); the medians' ratio when the repeats do not pair."""
        if not a or not b or a.get("na") or b.get("na") or not b["value_median"]:
            return None
        ra, rb = a["by_repeat"], b["by_repeat"]
        pairs = [ra[k] / rb[k] for k in ra if rb.get(k)]
        return statistics.median(pairs) if pairs else a["value_median"] / b["value_median"]

    out = []

    def add(gid, goal, measured, value, need, higher=True, na=None):
        if na or value is None:
            out.append({"id": gid, "goal": goal, "measured": na or "not measured", "value": None,
                        "need": need, "holds": None, "score": None})
            return
        holds = value >= need if higher else value <= need
        score = value / need if higher else (need / value if value else float("inf"))
        out.append({"id": gid, "goal": goal, "measured": measured, "value": value, "need": need,
                    "holds": holds, "score": score})

    for t, n in (("litedist", "SQLite"), ("litedist-lmdb", "LMDB")):
        x = paired(row("B0", t, conns), row("B0", "ceiling", conns))
        add(f"B0 {n}", ">= 0.8 x evhttp ceiling", f"{x:.2f} x" if x else "", x, 0.8)
    for t, n in (("litedist", "SQLite"), ("litedist-lmdb", "LMDB")):
        x = paired(row("B1", t, conns), row("B1", "ceiling", conns))
        add(f"B1 {n}", ">= 0.6 x evhttp ceiling", f"{x:.2f} x" if x else "", x, 0.6)
        x = paired(row("B1", t, conns), row("B1", "pouchdb", conns))
        add(f"B1 {n}", ">= 30 x pouchdb-server", f"{x:.1f} x" if x else "", x, 30)
    for t, raw, n in (("litedist", "sqlite-raw", "SQLite"), ("litedist-lmdb", "lmdb-raw", "LMDB")):
        x = paired(row("B2", t, conns), row("B2", "pouchdb", conns))
        add(f"B2 {n}", ">= 25 x pouchdb-server", f"{x:.1f} x" if x else "", x, 25)
        a, b = row("B2", t, conns), row("B2", raw)
        x = a["value_median"] / b["value_median"] if a and b else None
        add(f"B2 {n}", f">= 0.3 x raw {n} batched commit", f"{x:.2f} x" if x else "", x, 0.3)
        a = row("B2-2idx", t, conns)
        if a:  # issue 18: two indexes cost at most 15% of durable insert throughput
            x = paired(a, row("B2", t, conns))
            add(f"B2 {n}", ">= 0.85 x without indexes, with 2 indexes (issue 18)",
                f"{x:.2f} x" if x else "", x, 0.85)
    for t, raw, n in (("litedist", "sqlite-raw", "SQLite"), ("litedist-lmdb", "lmdb-raw", "LMDB")):
        a, b = row("B3", t, 1), row("B3", raw)
        if a and b:
            over = a["p50_ms"] - b["value_median"]
            add(f"B3 {n}", f"p50 <= raw {n} durable commit + 0.2 ms",
                f"p50 {a['p50_ms']:.2f} ms, raw {b['value_median']:.2f} ms: +{over:.2f} ms",
                over, 0.2, higher=False)
        else:
            add(f"B3 {n}", f"p50 <= raw {n} durable commit + 0.2 ms", "", None, 0.2)
    for w, op in (("B4-put", "SET"), ("B4-get", "GET")):
        for t, n in (("litedist", "SQLite"), ("litedist-lmdb", "LMDB")):
            a = row(w, t, conns)
            na = "n/a (route missing)" if a and a.get("na") else None
            x = None if na else paired(a, row(w, "redis", conns))
            add(f"B4 {n}", f">= 0.5 x Redis {op}", f"{x:.2f} x" if x else "", x, 0.5, na=na)
    # Issue 20 item 4: over RESP, GET >= 0.7 x Redis GET, SET >= 0.5 x Redis SET (AOF everysec).
    for w, op, need in (("B18-get", "GET", 0.7), ("B18-set", "SET", 0.5),
                        ("B18-get-P16", "GET -P 16", 0.7), ("B18-set-P16", "SET -P 16", 0.5)):
        for t, n in (("litedist", "SQLite"), ("litedist-lmdb", "LMDB")):
            a, b = row(w, t, 32), row(w, "redis-aof", 32)
            if not a and not b:
                continue
            x = paired(a, b)
            add(f"B18 {n}", f">= {need} x Redis {op} (AOF everysec)", f"{x:.2f} x" if x else "",
                x, need)
    a = row("B5", "litedist")
    x = paired(a, row("B5", "pouchdb"))
    add("B5", ">= 10 x pouchdb-server _find", f"{x:.1f} x" if x else "", x, 10)
    x = paired(a, row("B5", "sqlite-raw"))
    add("B5", ">= 0.2 x sqlite3 json_extract scan", f"{x:.2f} x" if x else "", x, 0.2)
    # Issue 18: the same query through an index on $.Total.
    a = row("B5", "litedist-indexed")
    x = paired(a, row("B5", "litedist"))
    add("B5 index", ">= 50 x the scan (index on $.Total, issue 18)", f"{x:.1f} x" if x else "",
        x, 50)
    x = paired(a, row("B5", "pouchdb-indexed"))
    add("B5 index", ">= 100 x pouchdb-server _find with an index on Total (issue 18)",
        f"{x:.1f} x" if x else "", x, 100)
    a, p = row("B6", "litedist"), row("B6", "pouchdb")
    if a:
        add("B6", "p50 <= 2 ms", f"{a['p50_ms']:.2f} ms", a["p50_ms"], 2, higher=False)
        add("B6", "p99 <= 10 ms", f"{a['p99_ms']:.2f} ms", a["p99_ms"], 10, higher=False)
    x = p["p50_ms"] / a["p50_ms"] if a and p and a["p50_ms"] else None
    add("B6", ">= 10 x faster than pouchdb continuous replication (p50)",
        f"{x:.1f} x" if x else "", x, 10)
    for w, n in (("B7-200B", "200 B"), ("B7-1KB", "1 KB")):
        a, b = row(w, "litedist"), row("B7", "sqlite-raw")
        x = a["value_median"] / b["value_median"] if a and b else None
        add(f"B7 {n}", ">= 0.5 x raw engine catch-up shape", f"{x:.2f} x" if x else "", x, 0.5)
        x = paired(a, row(w, "pouchdb"))
        add(f"B7 {n}", ">= 20 x pouchdb", f"{x:.1f} x" if x else "", x, 20)
    a = row("B8", "litedist")
    if a:
        add("B8", "replication lag p99 <= 50 ms", f"{a['p99_ms']:.2f} ms", a["p99_ms"], 50,
            higher=False)
        e = a["extra"]
        ok = e.get("digests_equal") and not e.get("divergence_count") and not e.get("lost")
        out.append({"id": "B8", "goal": "zero divergence",
                    "measured": "digests equal, 0 divergences" if ok else "DIVERGED",
                    "value": 1 if ok else 0, "need": 1, "holds": bool(ok),
                    "score": 1 if ok else 0.01})
    else:
        add("B8", "replication lag p99 <= 50 ms", "", None, 50)
    for t, n in (("litedist-sqlite", "SQLite"), ("litedist-lmdb", "LMDB")):
        a = row("B9-idle", t)
        add(f"B9 {n}", "idle RSS <= 8 MiB", f"{a['value_median']:.1f} MiB" if a else "",
            a["value_median"] if a else None, 8, higher=False)
    a = row("B9-docs", "litedist-lmdb")
    docs_n = a["extra"].get("documents", 0) if a else 0
    peak = a["extra"].get("VmHWM", 0) / 1024 if a else 0
    add("B9 LMDB", "1M docs <= 64 MiB RSS",
        f"{a['value_median']:.1f} MiB after {docs_n:,} docs (peak while writing "
        f"{peak:.0f} MiB)" if a else "",
        a["value_median"] if a else None, 64, higher=False)
    p = row("B10", "pouchdb")
    for t, n in (("litedist-sqlite", "SQLite"), ("litedist-lmdb", "LMDB")):
        a = row("B10", t)
        how = ""
        if a:
            e = a["extra"]
            how = f" of {e.get('documents', 0):,} docs"
            if e.get("mode") != "discovery":
                how += f", {e.get('mode')}"
        add(f"B10 {n}", ">= 100,000 docs/s joining by snapshot",
            f"{a['value_median']:,.0f} docs/s{how}" if a else "",
            a["value_median"] if a else None, 100000)
        x = paired(a, p)
        pn = f" (pouchdb on {p['extra'].get('documents', 0):,} docs)" if p else ""
        add(f"B10 {n}", ">= 50 x pouchdb-server one-shot replication",
            f"{x:.1f} x{pn}" if x else "", x, 50)
    # Issue 21: replication over TLS costs little more than plain once connections are kept.
    t, p = row("B11", "litedist-tls"), row("B11", "litedist-plain")
    x = paired(t, p)
    add("B11", "TLS p50 <= 1.5 x plain p50 (issue 21)",
        f"{x:.2f} x ({t['p50_ms']:.2f} ms against {p['p50_ms']:.2f} ms)" if x else "", x, 1.5,
        higher=False)
    a = row("B11-handshakes", "litedist-tls")
    e = a["extra"] if a else {}
    add("B11", "TLS handshakes after warm-up ~0 per minute (<= 1, issue 21)",
        f"{a['value_median']:.1f}/min ({e.get('full_per_min', 0):.1f} full, "
        f"{e.get('resumed_per_min', 0):.1f} resumed)" if a else "",
        a["value_median"] if a else None, 1, higher=False)
    # Issue 17: a peer walking a long log it already holds costs the event loop nothing visible.
    for n in ("sqlite", "lmdb"):
        a, g = row("B12", f"litedist-{n}"), row("B12-get", f"litedist-{n}")
        add(f"B12 {n}", "longest loop lag <= 5 ms (issue 17)",
            f"{a['value_median']:.2f} ms of the loop's own (highest lag bucket within the walk "
            f"{a['extra'].get('worst_bucket_ms', a['value_median']):g} ms; the rest of a stall "
            f"is the core running nothing, seen by bench/stallprobe)"
            if a else "", a["value_median"] if a else None, 5,
            higher=False)
        add(f"B12 {n}", "GET p99 while walking <= 2 x idle (issue 17)",
            f"{g['value_median']:.2f} x (the GETs clear of the core's own gaps, as idle; "
            f"{g['extra'].get('ratio_all_gets', g['value_median']):.2f} x every GET)"
            if g else "", g["value_median"] if g else None, 2, higher=False)
    # Issue 18: a commit reaches a subscribed changes-feed client quickly.
    # Sync off: sending a write to receiving its change, with little besides the feed's own part.
    a, o, p = row("B13", "litedist"), row("B13", "litedist-sync-off"), row("B13", "pouchdb")
    add("B13", "changes feed p50 <= 1 ms, write sent to change received, Sync off (issue 18)",
        f"{o['p50_ms']:.2f} ms" if o else "", o["p50_ms"] if o else None, 1, higher=False)
    add("B13", "changes feed p99 <= 5 ms, likewise (issue 18)",
        f"{o['p99_ms']:.2f} ms" if o else "", o["p99_ms"] if o else None, 5, higher=False)
    x = paired(p, a)
    add("B13", "faster than pouchdb-server's _changes longpoll (p50, Sync full)",
        f"{x:.1f} x ({p['p50_ms']:.2f} ms)" if x else "", x, 1)
    # Issue 15: bounded storage under churn.
    for t, n in (("litedist-sqlite", "SQLite"), ("litedist-lmdb", "LMDB")):
        a = row("B15-disk", t + "-a")
        e = a["extra"] if a else {}
        add(f"B15 {n}", "disk per live document at rest <= 3 x its JSON and key (issue 15)",
            f"{a['value_median']:.1f} x ({e.get('per_doc_at_rest', 0):,.0f} B against "
            f"{e.get('doc_json_and_key_bytes', 0):,.0f} B; running "
            f"{e.get('per_doc_running', 0):,.0f} B)" if a else "",
            a["value_median"] if a else None, 3, higher=False)
        a = row("B15-p99", t)
        e = a["extra"] if a else {}
        add(f"B15 {n}", "write p99 during a prune <= 2 x without (issue 15)",
            f"{a['value_median']:.2f} x ({e.get('p99_during_ms', 0):.2f} ms against "
            f"{e.get('p99_without_ms', 0):.2f} ms, {e.get('pruned', 0):,} entries pruned)"
            if a else "", a["value_median"] if a else None, 2, higher=False)
    # Issue 16: a scrape stays cheap with 100 databases of 3 peers each.
    a = row("B16", "litedist")
    add("B16", "GET /metrics <= 5 ms per scrape, 100 databases x 3 peers (issue 16)",
        f"{a['value_median']:.2f} ms of the node's CPU per scrape "
        f"(client wall p50 {a['extra'].get('p50_ms', 0):.1f} ms)" if a else "",
        a["value_median"] if a else None, 5, higher=False)
    # Issue 18: a lookup by an indexed field against GET by id.
    x = paired(row("B17", "litedist-index-point"), row("B17", "litedist-get"))
    add("B17", "point lookup by an indexed field >= 0.5 x GET by id (issue 18)",
        f"{x:.2f} x" if x else "", x, 0.5)
    return out


def goals_table(gs):
    out = ["| Goal | measured | holds |", "|---|---|---|"]
    for g in gs:
        h = {True: "yes", False: "**no**", None: "n/a"}[g["holds"]]
        out.append(f"| {g['id']}: {g['goal']} | {g['measured']} | {h} |")
    return "\n".join(out)


def chart(gs, png):
    """A gnuplot bar chart of every measured goal's factor (>= 1: the goal holds), log scale.
    Returns False when gnuplot is missing or fails."""
    pts = [g for g in gs if g["score"] is not None]
    if not pts or not shutil.which("gnuplot"):
        return False
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "goals.dat")
        with open(data, "w") as f:
            for i, g in enumerate(pts):
                label = (g["id"] + " " + g["goal"]).replace('"', "'")[:40]
                s = max(min(g["score"], 1000), 0.001)
                f.write(f'{i} {s:.6g} {1 if g["holds"] else 0} "{label}"\n')
        script = "\n".join([
            "set terminal pngcairo size 1100,700 font ',9'" if gnuplot_has("pngcairo")
            else "set terminal png size 1100,700",
            f"set output '{png}'",
            "set title 'litedist against the goals of issues 7 and 14 (factor of the goal reached; "
            ">= 1 holds)'",
            "set termoption noenhanced", "set bmargin 19", "set lmargin 16",
            "set logscale y", "set yrange [0.01:1000]", "set grid ytics",
            "set style fill solid 0.8", "set boxwidth 0.7", "unset key",
            "set xtics rotate by 60 right",
            "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb '#333333'",
            f"plot '{data}' using 1:2:($3 == 1 ? 0x2e8b57 : 0xcc3333):xtic(4) "
            "with boxes lc rgb variable",
        ])
        p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        return p.returncode == 0 and os.path.exists(png)


def gnuplot_has(term):
    p = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return term in (p.stdout + p.stderr)


def machine_line(m):
    return (f"{m['cpu_model']}, {m['nproc']} CPUs, {m['memory_mb'] // 1024} GiB, "
            f"Linux {m['kernel']} ({m['os']}), data on {m['data_fs']}; {m['pinning']}; "
            f"{m['wrk']}, libevent {m['libevent']}, SQLite {m['sqlite']}, "
            f"{m['compiler']}, {m['build_type']}; litedist {m['git_commit']}"
            f"{' (uncommitted changes)' if m['git_dirty'] else ''}")


def wrap(text, indent=""):
    return textwrap.fill(text, width=100, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


# What measuring and profiling (perf) found where litedist misses a goal; written by hand from
# the runs of issue 7, rendered as the page's "Findings" section.
FINDINGS = [
    "**What this round changed, measured before and after on the same machine** (the run of "
    "2026-12-04-151653 against this one): (1) a node back from an outage received every missed "
    "op twice, once by its own pulls and once by the peer's pushes, which the outage's end had "
    "kicked and which walked the same log beside them (B7: 20,000 ops moved as 40,027 copies). "
    "A pull's `AfterLogSequence` is the requester's committed checkpoint, so the serving node "
    "now moves its push checkpoint there and pauses its pushes while the peer's pulls say "
    "`HasMore` (`ld_repl_peer_pulled`). (2) In a mesh a node relayed its whole log to each peer "
    "and every cycle also pulled what the peer was pushing: B8 moved 844,088 op copies for "
    "360,040 deliveries in 60 s. Pushes now skip what the peer's version vector covers (it "
    "comes with the peer's pulls and, new, with the answer to a push), and a cycle leaves out "
    "its pull while the peer's own pushes keep arriving (the sweep still pulls). (3) Op-log "
    "batches are written as JSON text straight into the evbuffer instead of a jansson tree "
    "dumped into a growing string and copied again (`bench/wire/wire_bench`: 200 B encode "
    "5.8 -> 3.0 us per op), and an op's 12 members are found in one pass instead of 12 "
    "case-insensitive scans. (4) GETs that arrive in the same event-loop pass share one read "
    "transaction per database (`core/db/snapshot.c`): on SQLite beginning and ending a read "
    "transaction (two statements, two `fcntl` locks on the WAL index) was ~15% of a GET; CPU "
    "per GET fell from 41-53 to 33-40 us, which is what moved B1 SQLite past 30 x "
    "pouchdb-server and B4 GET towards Redis.",
    "**B2 against the raw engine's batched commit:** the raw figure commits 1,000 ops per "
    "fsync; litedist can only put into one commit the writes that are in flight, at most the 32 "
    "connections' 32, and perf counts about 15 writes per `fdatasync` (see above). Its rate "
    "is writes-per-commit over the commit time, which is the disk's fsync plus the writer's "
    "turn on the shared core: the gap is the workload's concurrency, not a per-write cost "
    "(litedist's own write path matches its engine in the storage section below: 0.99-1.01 of "
    "raw SQLite at the same batch). The goal can hold only at ~100+ concurrent writers.",
    "**B2 against pouchdb-server** (goal 25 x): pouchdb-server answers a write before any fsync "
    "of its own (about 400 writes per `fdatasync` above, against litedist's ~15), so the two do "
    "not do the same work; litedist is bound by its durable group commit there, as above.",
    "**B3** moves with the shared virtual disk's `fdatasync` latency more than with litedist: "
    "in this run, right after B2 had filled the database, SQLite's p50 was 0.79 ms; run alone "
    "ten minutes later (`bench/run --only B3`) it was 0.46 ms against a raw commit of 0.31 ms "
    "(+0.15 ms, holds) and LMDB's 0.63 ms against 0.36 ms (+0.27 ms); the two previous full runs "
    "today measured +0.06 and +0.10 ms on SQLite. A single insert runs nothing this round "
    "changed but the reply's JSON writer (checked: 0.40-0.47 ms p50 for this build and the one "
    "before, alternating on an idle machine).",
    "**B0, B1 and B4 GET against the ceiling and Redis** moved by up to +-40% between the short "
    "development runs made while other agents loaded the machine: read them as ratios of one "
    "run only.",
    "**B7 before and after, controlled:** the single-repeat B7 rows swing by 30% between runs "
    "on this machine (14,507 and 20,584 ops/s for 200 B in two runs of the same build), so the "
    "fixes were measured back to back with the previous build on one idle machine, 20,000 ops: "
    "200 B 11,839 -> 18,010 ops/s, 1 KB 6,734 -> 14,221 ops/s; copies moved 40,027 -> 20,030.",
    "**B7 catch-up, what remains:** all three processes (serving node, catching-up node and its "
    "writer thread) share CPU 0, so the rate is the sum of their CPU per op. `wire_bench` per "
    "1 KB op: the receiver parses the answer (jansson lexes each of its ~1.4 KB byte by byte: "
    "~16 us), then validates the document by parsing it again (~11 us: a put's Payload must be "
    "a JSON object before it is stored and served as is); the sender encodes it (~9 us, mostly "
    "jansson escaping the Payload string). The raw-engine goal asks for ~20 us per op end to "
    "end, which JSON parsing alone exceeds; pulling the next batch while the previous one "
    "commits cannot add throughput on one shared core (it would on two). These figures are of "
    "the JSON encoding: two litedist nodes now use the compact one (docs/replication.md, \"The "
    "compact encoding\"), whose rows `wire_bench` prints beside them; the original keeps "
    "getting the contract's JSON.",
    "**B7, found on the way, fixed (earlier run):** a node that has *never* seen a database "
    "cannot pull it: links exist per known database, so it waited for the other side's push, "
    "which was in exponential back-off (1 s doubling to 30 s) from the failures while the node "
    "was down (131 s to receive 10,000 ops). Any push, pull, sync-request or probe health-check "
    "from a peer now runs every backed-off link to it at once (`ld_repl_peer_alive`).",
    "**B9 after 1M documents on LMDB:** RSS counts LMDB's memory-mapped file pages that were "
    "touched while they stay mapped. The anonymous (heap) memory after 1M documents is "
    "~1.6 MiB (`RssAnon`), the rest (`RssFile`, ~815 MiB here) is the database file itself, "
    "shared with the page cache and given back whenever the kernel needs it. In an earlier run "
    "of the same workload the kernel had reclaimed it and RSS settled at 7.7 MiB. By RSS the "
    "goal holds only when the kernel reclaims the map; by heap it holds by a factor of 40.",
    "**B4 cache PUT against Redis SET:** a cache PUT is a durable write (group commit with "
    "`fdatasync`, `Sync: full`) that is logged and replicated, while Redis SET with no "
    "persistence is a memory write: bound by commits as B2 is. docs/cache.md says when that "
    "trade is worth it.",
    "**B8 lag p99** (138 ms here, 335-344 ms in the runs before the duplicate traffic was "
    "removed; p50 87 ms): the three nodes are pinned to one core (CPU 0), and at 1,000 writes/s "
    "each that core stays saturated (top: ~30% of CPU 0 per node). Per node and second: ~530 group commits, each an `fdatasync` (1,000 local writes "
    "and 2,000 ingested ops, ~5.6 per commit), ~5,900 `pwrite`s, 3,300 `fcntl`s; perf: kernel "
    "39% (`fdatasync`, socket I/O, syscall entry under virtualization), libc 24% "
    "(`malloc`/`free`/`memmove`), SQLite 14%, jansson 13%. A marker so waits in the queue of a "
    "saturated core behind each hop's durable commit. Measured beside it earlier: at 300 "
    "writes/s per node p50 8.6 ms / p99 21 ms. Fewer, larger commits for replicated batches "
    "(an ingest that need not wait for its own fsync, since the sender re-sends what is not "
    "acknowledged) is the next lever; not done here, it changes what an acknowledgement "
    "promises. Convergence holds: equal version vectors and digests, no divergence counted.",
]


# Issue 15's workloads (docs/benchmarks.md, "Workloads").
B12_TEXT = (
    "**B14:** write amplification (issue 15). For each backend, kind (a 200-byte document POSTed "
    "with its `Id`; a cache PUT of a 100-byte value, TTL 10 min) and client count (1 and 32 "
    "kept-alive connections), a fresh litedistd with `Sync: full` takes N writes (`--wamp-writes`, "
    "5,000); the figure is the server process's `/proc/<pid>/io` `wchar` (bytes handed to "
    "`write()`, WAL checkpoints included) over the writes, divided by N, with `write_bytes` (what "
    "the kernel sent towards the disk) beside it; then the files' bytes while running and at rest "
    "after a clean shutdown.")
B13_TEXT = (
    "**B15:** churn with pruning (issue 15). Two litedistd replicating both ways, with "
    "`OperationLogRetentionDays: 0` and `OperationLogRetainRecentOperations: 1000`. On node A, 16 "
    "clients write each of N documents (`--churn-docs`, 100,000) R times (`--churn-rewrites`, 10) "
    "while 16 more PUT P cache entries (`--churn-cache-puts`, 1,000,000) with a 10 s TTL over "
    "min(N, 100,000) keys. Twice, on fresh pairs: (1) both nodes pruned every 2 s during the load; "
    "after convergence the cache entries expire and are swept and both nodes are pruned once "
    "more; the databases' allocated bytes per live document, running and at rest after a clean "
    "shutdown (free pages inside the files shown apart), against the document's JSON and key "
    "(goal <= 3 x); (2) the same load unpruned, then the p99 of one client's sequential document "
    "updates without a prune and while one prune removes the whole log (goal <= 2 x).")

# B10's description, also the workload's documentation (docs/benchmarks.md, "Workloads").
B10_TEXT = (
    "**B10:** a new node joins a database (issue 14), on each backend. A source litedistd gets N "
    "documents of about 200 bytes (B1's) through the client API, the quickest honest way "
    "measured: `bench/wrk/preload.lua` POSTing on 64 connections into the node running `Sync: "
    "off` (the row *B10 loading*; LiteQL `INSERT` takes one document per statement, so it costs "
    "a POST plus a parse; pushing made-up ops through `/api/replication/push` in batches of "
    "1,000 loaded about 1.5 x faster but invents an origin node and skips the client write "
    "path). The source is then stopped and started again with `Sync: full`; it "
    "must keep its version vector and digest, and `SELECT COUNT(*)` must count N. A new "
    "litedistd (empty data directory, same backend, `Sync: full`, a new NodeId) starts with "
    "`Node.SeedPeers` naming the source; the clock runs from its process start until its "
    "`/api/replication/status` shows the source's `VersionVector` and `Digest` for the database "
    "(polled every 0.1 s, at most 120 s + N / 500 s); then its `COUNT(*)` must be N and its "
    "log free of `ERROR` lines. The "
    "newcomer is meant to learn the database by itself (database discovery); when it has not "
    "listed it within 5 s, the source is told about the newcomer (`POST /api/cluster/peers`, the "
    "hand step issue 14 removes), the time counts from that call and the figures say so. "
    "Recorded: documents/s, the newcomer's peak RSS (VmHWM), its bytes on disk (allocated "
    "blocks) when it converged and after a clean stop, the length of its op log (log replay "
    "writes one entry per op, a snapshot none), the CPU seconds of both nodes, the load "
    "average before and after. pouchdb-server: `_bulk_docs` of 1,000 load the same documents "
    "into one server and a fresh second server runs a one-shot `POST /_replicate` "
    "(`create_target`) from it, timed until it answers. pouchdb replicates `--join-pouch-docs` "
    "documents (default 100,000: at B7's pouchdb rate, 1,000,000 would take it 10 to 15 "
    "minutes per repeat), so the 50 x goal compares rates measured on databases of "
    "different sizes unless `--join-pouch-docs` equals `--join-docs`. Each repeat runs SQLite, "
    "LMDB and pouchdb one after the other; the sources stay loaded, and each repeat's newcomer "
    "is removed from its source afterwards (`DELETE /api/cluster/peers/{id}`).")


def b10_note(r):
    """B10's figures beside the rate: how the newcomer got the database, its memory and disk."""
    x = r["extra"]
    name = TARGET_NAMES.get(r["target"], r["target"])
    text = (f"{r['label']}, {name}, last run: {x.get('documents', 0):,} documents in "
            f"{x.get('seconds', 0):.2f} s; peak RSS {x['peak_rss_kib'] / 1024:.1f} MiB")
    if x.get("rss_anon_kib") is not None:
        # LMDB's mapped file pages count in RSS (see B9): the heap is the anonymous part.
        text += (f" (at the end {x['rss_anon_kib'] / 1024:.1f} MiB anonymous, "
                 f"{(x.get('rss_file_kib') or 0) / 1024:.1f} MiB mapped file)")
    text += f"; {x.get('disk_bytes', 0) / 2**20:,.0f} MiB on disk"
    if r["target"].startswith("litedist"):
        text += (f" when it converged ({x.get('disk_bytes_stopped', 0) / 2**20:,.0f} MiB after "
                 f"a clean stop; the source's {x.get('source_disk_bytes', 0) / 2**20:,.0f} MiB);"
                 f" CPU {x.get('joiner_cpu_s', 0):.1f} s on the newcomer, "
                 f"{x.get('source_cpu_s', 0):.1f} s on the source; ")
        if x.get("joiner_log_entries") is not None:
            text += (f"its op log holds {x['joiner_log_entries']:,} entries for the source's "
                     f"{x.get('ops', 0):,} ops (log replay writes one per op, a snapshot none); ")
        if x.get("mode") == "discovery":
            text += (f"the newcomer found the database by itself, timed from its start "
                     f"({x.get('seconds_from_start', 0):.2f} s).")
        else:
            text += (f"the newcomer did not find the database by itself, so the source was told "
                     f"about it (`POST /api/cluster/peers`) and the time counts from that call "
                     f"({x.get('seconds_from_start', 0):.2f} s from the newcomer's start).")
    else:
        text += "."
    return text


def docs(meta, rows, result_name, storage=None):
    """The whole page: the comparative benchmark, then the storage section when storage is given
    as (result, file name). Draws docs/benchmarks.png beside it with gnuplot."""
    s = meta["settings"]
    c = s["connections"]
    gs = goals(rows, c)
    lines = []
    add = lines.append

    def par(text):
        add(wrap(text))
        add("")

    def bullet(text):
        add(wrap("- " + text, "  "))

    add("# Benchmarks")
    add("")
    if storage:
        add(f"<!-- Generated by bench/report.py from bench/results/{result_name}")
        add(f"     and bench/results/{storage[1]}; edit bench/report.py, not this file. -->")
    else:
        add(f"<!-- Generated by bench/report.py from bench/results/{result_name};")
        add("     edit bench/report.py, not this file. -->")
    add("")
    par("litedist measured against what users would pick instead, in one run on one machine, "
        "each workload against every target right after the other: a bare libevent evhttp "
        "server (`bench/evhttp_ceiling.c`, the HTTP ceiling), redis-server driven by "
        "redis-benchmark, pouchdb-server 4.2.0 (LevelDB) alone and two of them replicating "
        "continuously, and the raw SQLite and LMDB engines doing the server's own storage shape. "
        "The goals of issue 7 (issue 14 for B10) are ratios within the run, or rates on this "
        "machine; the absolute figures belong to this "
        "machine and this moment.")
    par(f"**Machine:** {machine_line(meta)}.")
    load = meta.get("loadavg_start")
    load_txt = ""
    if load:
        load_txt = (f" **Load:** the machine was shared with other agents building and testing "
                    f"at the same time: load average {load} at the start, "
                    f"{meta.get('loadavg_end', '?')} at the end (2 CPUs). Ratios within the run "
                    "stay meaningful, absolute rates and tail latencies are lower than on an idle "
                    "machine.")
    scale = ""
    if "join_documents" in s:
        scale = (f" B5 scans {s['scan_documents']:,} documents, B7's node missed "
                 f"{s['catchup_ops']:,} ops, B8 runs {s['b8_seconds']} s, B9 writes "
                 f"{s['memory_documents']:,} documents, B10's node joins "
                 f"{s['join_documents']:,} documents (pouchdb-server replicates "
                 f"{s['join_pouch_documents']:,}); B5-B7 and B10 run {s['scenario_repeats']} "
                 "time(s), B8 and B9 once.")
    elif "scan_documents" in s:
        scale = (f" B5 scans {s['scan_documents']:,} documents, B7's node missed "
                 f"{s['catchup_ops']:,} ops, B8 runs {s['b8_seconds']} s, B9 writes "
                 f"{s['memory_documents']:,} documents; B5-B7 run {s['scenario_repeats']} "
                 "time(s), B8 and B9 once."
                 + (f" B11 counts handshakes over {s['b11_seconds']} s."
                    if "b11_seconds" in s else ""))
    par(f"**Run:** {meta['started_utc']} UTC, {s['duration_s']} s per measured run, "
        f"{s['repeats']} runs per row (median, and min - max), {s['warmup_s']} s warm-up, "
        f"wrk with 1 thread and {c} connections unless the row says otherwise; litedist with "
        "`Sync: full`." + scale + load_txt)
    add("## Goals")
    add("")
    add(goals_table(gs))
    add("")
    held = sum(1 for g in gs if g["holds"])
    missed = [g for g in gs if g["holds"] is False]
    par(f"{held} of {len(gs)} goals hold"
        + (f"; {len(missed)} do not" if missed else "")
        + (f"; {sum(1 for g in gs if g['holds'] is None)} could not be measured"
           if any(g["holds"] is None for g in gs) else "") + ".")
    png = s.get("chart_path")
    if png:
        add(f"![Factor of each goal reached, log scale](benchmarks.png)")
        add("")
    add("## All figures")
    add("")
    add(table(rows))
    add("")
    par("Rates are per second (req/s from wrk or redis-benchmark, docs/s, ops/s, queries/s); "
        "latencies are the medians over runs of each run's p50 and p99. Ratios pair each run with "
        "the other target's run of the same repeat, which ran right next to it. *server CPU* is "
        "the server's CPU time over the run's wall time (100% = the one core it is pinned to).")
    for r in rows:
        if r.get("writes_per_sync"):
            par(f"{r['label']}, {TARGET_NAMES.get(r['target'], r['target'])}, "
                f"{r['connections']} connections: perf counted {r['writes_per_sync']:.1f} writes "
                "per fdatasync/fsync" + (" (group commit)." if r["target"].startswith("litedist")
                                         else ": its answers do not wait for an fsync of their "
                                         "own, so they are not durable in litedist's sense."))
    for r in rows:
        x = r.get("extra") or {}
        if x.get("ops_moved") is not None and x.get("writes"):
            par(f"{r['label']}: the links moved {x['ops_moved']:,} op copies to deliver "
                f"{x['writes']:,} writes to the two other nodes each ({2 * x['writes']:,} "
                f"deliveries); {x['duplicates']:,} of them arrived where the op already was.")
    for r in rows:
        if r["workload"] == "B10" and (r.get("extra") or {}).get("peak_rss_kib"):
            par(b10_note(r))
    if FINDINGS:
        add("## Findings: where litedist misses a goal, and why")
        add("")
        for f in FINDINGS:
            bullet(f)
        add("")
    add("## Reproduce")
    add("")
    add("```sh")
    add("make bench                 # builds, then bench/run with the defaults (10 s x 3 runs)")
    add("bench/run --only B0,B5     # some workloads, B0 .. B15, comma-separated")
    add("bench/run --duration 2 --repeats 1 --scan-docs 10000 --catchup-ops 10000 \\")
    add("          --b8-seconds 10 --mem-docs 20000          # a quick look, about 5 minutes")
    add("bench/run --only B10                # a new node joins 1,000,000 documents, 10-15 minutes")
    add("bench/run --only B10 --join-docs 20000 --join-pouch-docs 20000 --scenario-repeats 1")
    add("bench/run --only B14,B15          # issue 15: write amplification, churn (an hour or more)")
    add("bench/run --only B15 --churn-docs 3000 --churn-cache-puts 30000   # B15 in 5 minutes")
    add("```")
    add("")
    par("`bench/run` first runs `bench/deps.sh`, which installs what only the benchmark needs "
        "and only when missing: `wrk`, `redis-server`, `redis-tools`, `gnuplot-nox` from Debian "
        "and pouchdb-server 4.2.0 with `npm ci` into `bench/peers/` (pinned by its "
        "`package-lock.json`); `make test` never runs it. It then builds what changed, starts "
        "every target on free loopback ports with fresh temporary data, pins servers to CPU 0 "
        "and load generators to CPU 1 (`taskset`), stops everything it started and removes its "
        "temporary files. It prints the goal table and every figure, keeps the raw figures with "
        "the machine's description in `bench/results/<UTC date>-<time>.json`, and regenerates "
        "this page and `docs/benchmarks.png` after a run of all workloads without errors. A "
        "failed request (a status above 399, a socket error, a timeout), a lost replicated "
        "write or a divergence makes it exit non-zero.")
    add("## Workloads")
    add("")
    bullet("**B0:** `GET /health` with `bench/wrk/health.lua`; the ceiling answers every request "
           "with a fixed body as long as litedist's.")
    bullet(f"**B1:** `bench/wrk/preload.lua` POSTs `doc-0` .. `doc-{s['preload_documents'] - 1}` "
           "(about 200 bytes each) into each litedistd, `_bulk_docs` loads the same into "
           "pouchdb-server; then `bench/wrk/get_doc.lua` GETs random ids (`GET /{db}/{id}` on "
           "pouchdb-server).")
    bullet("**B2:** `bench/wrk/insert.lua` POSTs new documents, ids unique per run, "
           f"{c} connections; litedist answers after the fsync'd commit (group commit); "
           "pouchdb-server after LevelDB's write. Redis with `appendonly yes, appendfsync "
           "everysec` (SET, 100 B) is shown for context. *raw SQLite / LMDB* is "
           "`bench/storage/storage_bench`'s raw arm doing the server's write shape (document "
           "read and write, op-log append, meta) with 1,000 ops per fsync'd commit.")
    bullet("**B3:** the same insert from 1 connection: each write waits for its own commit; raw "
           "is the same write shape with one op per fsync'd commit (1 / its rate).")
    bullet(f"**B4:** `bench/wrk/cache.lua` PUTs `/api/cache/key-<i>?ttl=10m` with a 100-byte "
           f"JSON string over 10,000 keys, then GETs random keys, {c} connections, against "
           f"redis-benchmark `-t set,get -d 100 -c {c} -r 10000`. *n/a (route missing)* when "
           "the build answers 404 for the route.")
    bullet("**B5:** `bench/scenarios.py` loads the documents (a `Total` in 20.45 .. 319.45) and "
           "times `SELECT $ FROM orders WHERE $.Total > 310` (Take 10000, 3% of the documents "
           "match, every document is read), pouchdb-server's `_find` with `{\"Total\": {\"$gt\": "
           "310}}` and no index, and Python's sqlite3 doing `json_extract(v, '$.Total') > 310` "
           "over a `WITHOUT ROWID` table of the same JSON; one client, back to back.")
    bullet("**B6:** two litedistd seeded with each other; `tools/visibility_probe.py` PUTs a token "
           "on A and polls B every 0.2 ms until it reads it. The same loop against two "
           "pouchdb-servers, B pulling from A by a continuous `_replicate`.")
    bullet("**B11:** two pairs of litedistd, each node the other's seed peer: one pair over "
           "`http://`, one over `https://` with mutual TLS (a throw-away ECDSA P-256 CA); "
           "`tools/visibility_probe.py` as in B6 against each pair in turn (over HTTPS with a "
           "client certificate for the TLS pair). Then 10 writes/s on the TLS pair's A: the "
           "client handshakes (full and resumed) both nodes report in `TlsClientHandshakes` "
           "meanwhile, per minute. Probes off, as everywhere here.")
    bullet("**B7:** nodes A and B, each the other's seed peer, share the database; B stops, A "
           "takes the documents, B starts again: the time from B's start until both report the "
           "same version vector (and equal digests). The two litedistd move the batches in the "
           "compact node-to-node encoding (`application/x-litedist-ops`, docs/replication.md); "
           "`bench/wire/wire_bench` prints the CPU per op of each phase in both encodings, JSON "
           "and compact, for 200 B and 1 KB documents. pouchdb: a one-shot `_replicate` of the same documents into an empty "
           "pouchdb-server. Raw: the engine's batched write shape (as B2).")
    bullet("**B8:** three litedistd, each a seed peer of the others; `bench/wrk/paced_insert.lua` "
           "writes 1,000 documents/s into each for the duration; meanwhile a probe writes a "
           "marker on one node every 20 ms (in turn) and polls the two others until both have "
           "it: its lag. Afterwards every node must reach the same version vector and digest "
           "and report no divergence.")
    bullet("**B9:** VmRSS from `/proc/<pid>/status` of a fresh litedistd 2 s after start, of "
           "pouchdb-server and redis-server for context, and of litedistd on LMDB right after "
           "the documents were written (`Sync: off` to load faster; RSS includes LMDB's mapped "
           "pages that were touched).")
    bullet(B10_TEXT)
    bullet(B12_TEXT)
    bullet(B13_TEXT)
    add("")
    if storage:
        lines.extend(storage_docs(*storage))
    return "\n".join(lines).rstrip("\n") + "\n"


# --- the storage benchmark (bench/storage/storage_bench.c) -------------------------------------

STORAGE_NAMES = {"sqlite": "SQLite", "lmdb": "LMDB"}


def storage_rows(result):
    """One row per backend and workload: plugin and raw rates, and the ratio of each repeat's
    plugin rate to the raw rate measured right next to it (median, min, max)."""
    rows = []
    for r in result["results"]:
        p, q = r["plugin"], r.get("raw")
        row = {
            "backend": r["backend"], "workload": r["workload"], "label": r["label"],
            "unit": r["unit"], "ops": r["ops"],
            "plugin_median": statistics.median(p["rate"]),
            "plugin_min": min(p["rate"]), "plugin_max": max(p["rate"]),
            "plugin_busy": statistics.median(c / w for c, w in zip(p["cpu_s"], p["wall_s"]) if w),
            "ratio": None,
        }
        if q:
            ratios = [a / b for a, b in zip(p["rate"], q["rate"]) if b]
            row.update({
                "raw_median": statistics.median(q["rate"]),
                "raw_min": min(q["rate"]), "raw_max": max(q["rate"]),
                "raw_busy": statistics.median(c / w for c, w in zip(q["cpu_s"], q["wall_s"]) if w),
                "ratio": statistics.median(ratios), "ratio_min": min(ratios),
                "ratio_max": max(ratios), "ratios": ratios,
            })
        rows.append(row)
    return rows


def below_goal(row):
    """Below 0.8 as printed (two decimals), so that the text never calls 0.80 short of it."""
    return row["ratio"] is not None and round(row["ratio"], 2) < 0.8


def storage_table(rows):
    out = ["| Backend | Workload | plugin / raw | min - max | plugin | raw | CPU busy |",
           "|---|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        name = STORAGE_NAMES.get(r["backend"], r["backend"])
        if r["ratio"] is None:
            out.append(f"| {name} | {r['label']} ({r['unit']}) | | | "
                       f"{fmt_rps(r['plugin_median'])} | | {100 * r['plugin_busy']:.0f}% |")
            continue
        mark = " **< 0.8**" if below_goal(r) else ""
        out.append(
            f"| {name} | {r['label']} ({r['unit']}) | {r['ratio']:.2f}{mark} | "
            f"{r['ratio_min']:.2f} - {r['ratio_max']:.2f} | {fmt_rps(r['plugin_median'])} | "
            f"{fmt_rps(r['raw_median'])} | {100 * r['plugin_busy']:.0f}% / "
            f"{100 * r['raw_busy']:.0f}% |")
    return "\n".join(out)


def storage_machine_line(m):
    return (f"{m['cpu_model']}, {m['nproc']} CPUs, {m['memory_mb'] // 1024} GiB, "
            f"Linux {m['kernel']} ({m['os']}), data on {m['data_fs']} "
            f"({m['data_dir_parent']}); SQLite {m['sqlite']}, LMDB {m['lmdb']}, {m['compiler']}, "
            f"{m['build_type']}; litedist {m['git_commit']}"
            f"{' (uncommitted changes)' if m['git_dirty'] else ''}")


def storage_docs(result, result_name):
    m, s = result["machine"], result["settings"]
    rows = storage_rows(result)
    ops = {(r["backend"], r["workload"]): r["ops"] for r in rows}
    lines = []
    add = lines.append

    def par(text):
        add(wrap(text))
        add("")

    def bullet(text):
        add(wrap("- " + text, "  "))

    add("## Storage plugins against their engines")
    add("")
    par("`bench/storage/storage_bench` loads each storage plugin the way litedistd does (`dlopen`, "
        "the `ld_storage_v1` ABI of `include/litedist/storage.h`) and, in the same run, drives its "
        "engine through the engine's own C API doing the same work with the plugin's schema and "
        "settings: SQLite through `sqlite3_*` (a `WITHOUT ROWID` table per key space, WAL, 16 KiB "
        "pages, the same `synchronous`, a separate read-only connection for reads) and LMDB "
        "through `mdb_*` (the same environment flags, map size and limits; read transactions "
        "reset and renewed). Both arms call the same shared libraries. *plugin / raw* is the "
        "plugin's rate over the engine's: 1.00 means the plugin costs nothing; the goal is at "
        "least 0.80.")
    par(f"**Machine:** {storage_machine_line(m)}.")
    par(f"**Run:** {m['started_utc']} UTC; {s['keys']:,} keys of {s['key_bytes']} bytes with "
        f"{s['value_bytes']}-byte values, {s['txn_ops']:,} per transaction, `Sync: "
        f"{s['kv_sync']}` for the key/value workloads; {s['ws_ops']:,} write-shape ops per `Sync` "
        f"level; one warm-up, then {s['repeats']} repeats. In a repeat both arms' databases are "
        "open side by side and each phase runs on one arm right after the other (which goes "
        "first alternates), so every ratio compares runs made moments apart; the table gives "
        "the median ratio over the repeats and its range, and the median rates (per second). "
        f"{s['total_s']:.0f} s in all.")
    add(storage_table(rows))
    add("")
    par("*CPU busy* is the process's CPU time over the phase's wall time (plugin / raw). The "
        "key/value phases are CPU-bound, so a figure well under 100% there means other "
        "processes took the CPU during the run (re-run it); the write-shape phases wait for "
        "fsync and checkpoints by design.")
    add("### What the figures say")
    add("")
    low = [r for r in rows if below_goal(r)]
    rated = [r for r in rows if r["ratio"] is not None]
    if rated and not low:
        worst = min(rated, key=lambda r: r["ratio"])
        bullet(f"Every plugin stays at or above 0.80 of its engine; the lowest median is "
               f"{STORAGE_NAMES.get(worst['backend'], worst['backend'])} "
               f"*{worst['label']}* at {worst['ratio']:.2f}.")
    for r in low:
        bullet(f"**{STORAGE_NAMES.get(r['backend'], r['backend'])}, {r['label']}:** "
               f"{r['ratio']:.2f} of the engine, below the 0.80 goal.")
    for backend in dict.fromkeys(r["backend"] for r in rows):
        by = {r["workload"]: r for r in rows if r["backend"] == backend}
        full, normal = by.get("ws_full"), by.get("ws_normal")
        if full and normal:
            name = STORAGE_NAMES.get(backend, backend)
            text = (f"**{name}, the server's write shape:** {fmt_rps(full['plugin_median'])} "
                    f"ops/s with `Sync: full` and {fmt_rps(normal['plugin_median'])} with "
                    "`normal` through the plugin")
            if full["ratio"] is not None:
                text += (f" ({full['ratio']:.2f} and {normal['ratio']:.2f} of the engine doing "
                         "the same)")
            bullet(text + ".")
    add("")
    add("### Workloads")
    add("")
    bullet(f"**put, keys in order:** {s['keys']:,} keys in ascending order into an empty key "
           f"space, {s['txn_ops']:,} per write transaction; the warm-up sizes the phase to last "
           f"about {s['phase_ms']} ms, in rounds that each fill a new database (SQLite "
           f"{ops.get(('sqlite', 'put_seq'), 0):,} puts, LMDB "
           f"{ops.get(('lmdb', 'put_seq'), 0):,}).")
    bullet("**put, keys in random order:** the same keys in a random order into another empty "
           "space.")
    bullet("**get, random keys:** uniformly random keys (with repeats) of the randomly filled "
           f"space, {s['txn_ops']:,} gets per read transaction.")
    bullet("**get, one read txn per get:** the server's read shape: begin a read transaction, "
           "one get, end it.")
    bullet("**cursor scan:** whole passes over the randomly filled space, one read transaction "
           "each, touching every key and value. The get and scan phases are also sized by the "
           f"warm-up to about {s['phase_ms']} ms.")
    bullet("**server write shape** (as `core/db/apply.c` writes): per op, read the document's "
           f"record in `docs`, write its new one ({s['ws_doc_key_bytes']}-byte `collection\\0id` "
           f"key, {s['ws_doc_value_bytes']}-byte value) and append the op to `log` (big-endian "
           f"u64 key, {s['ws_log_value_bytes']}-byte entry); one `meta` record per transaction; "
           f"{s['txn_ops']:,} ops per transaction, about two thirds of them inserts; a fresh "
           "database per `Sync` level.")
    add("")
    par(f"The key/value workloads run with `Sync: {s['kv_sync']}` so that the disk's fsync "
        "latency, identical for both arms and noisy on a shared machine, does not hide what the "
        "plugin itself costs; the write shape shows both durable levels.")
    add("```sh")
    add("make bench-storage                     # builds, runs bench/storage/run, regenerates "
        "this page")
    add("bench/storage/run --keys 200000 --repeats 3 --no-docs   # options go to storage_bench")
    add("```")
    add("")
    par(f"Raw figures: `bench/results/{result_name}`.")
    return lines


def newest_result(storage):
    """The newest results file of one kind in bench/results (names sort by date), or None."""
    pattern = r"storage-\d{4}-\d\d-\d\d-\d{6}\.json" if storage else r"\d{4}-\d\d-\d\d-\d{6}\.json"
    names = sorted(n for n in map(os.path.basename, glob.glob(os.path.join(RESULTS_DIR, "*.json")))
                   if re.fullmatch(pattern, n))
    return os.path.join(RESULTS_DIR, names[-1]) if names else None


def load_storage(path):
    stored = json.load(open(path))
    if stored.get("kind") != "storage":
        sys.exit(f"{path} is not a storage_bench result")
    return stored, os.path.basename(path)


def main():
    ap = argparse.ArgumentParser(
        description="Aggregate bench/run's records; or, with --from, re-render a stored result; "
                    "or, with --storage alone, render a storage_bench result beside the newest "
                    "HTTP result.")
    ap.add_argument("--meta", help="machine and settings JSON written by bench/run")
    ap.add_argument("--records", help="one JSON record per wrk run, from bench/run")
    ap.add_argument("--from", dest="source", help="a bench/results/*.json to re-render")
    ap.add_argument("--out", help="the result JSON to write (default with --from: that file)")
    ap.add_argument("--storage", help="a bench/results/storage-*.json for the page's storage "
                    "section (default: the newest there)")
    ap.add_argument("--docs", help="regenerate this Markdown page (only when nothing failed)")
    ap.add_argument("--failed", default="0", help="non-zero when bench/run saw a failure")
    a = ap.parse_args()
    storage = load_storage(a.storage) if a.storage else None
    if storage and not a.source and not a.meta:
        return storage_main(storage, a.docs)
    if a.source:
        stored = json.load(open(a.source))
        meta, records = stored["machine"], stored["runs"]
        failed = a.failed != "0" or stored.get("failed", False)
        out = a.out or a.source
    elif a.meta and a.records and a.out:
        meta = json.load(open(a.meta))
        records = [json.loads(line) for line in open(a.records) if line.strip()]
        failed = a.failed != "0"
        out = a.out
    else:
        ap.error("give --meta, --records and --out, or --from, or --storage")
    if "loadavg_end" not in meta:
        with open("/proc/loadavg") as f:
            meta["loadavg_end"] = " ".join(f.read().split()[:3])
    rows = summarize(records, meta["settings"]["connections"])
    failed = failed or any(r.get("errors") for r in rows)
    gs = goals(rows, meta["settings"]["connections"])
    result = {"machine": meta, "failed": failed, "goals": gs, "summary": rows, "runs": records}
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print()
    print(f"Machine: {machine_line(meta)}")
    print()
    print(table(rows))
    print()
    print(goals_table(gs))
    print()
    for r in rows:
        if r.get("writes_per_sync"):
            print(f"{r['label']}, {r['target']}, {r['connections']} connection(s): "
                  f"{r['writes_per_sync']:.2f} writes per fdatasync")
    for r in rows:
        if r["workload"] == "B10" and (r.get("extra") or {}).get("peak_rss_kib"):
            print(wrap(b10_note(r)))
    if failed:
        print("FAILED: some requests failed (see the errors column and the log above).")
    if a.docs and not failed:
        if not storage and newest_result(True):
            storage = load_storage(newest_result(True))
        name = out.rsplit("/", 1)[-1]
        png = os.path.join(os.path.dirname(os.path.abspath(a.docs)), "benchmarks.png")
        if chart(gs, png):
            meta["settings"]["chart_path"] = "benchmarks.png"
        with open(a.docs, "w") as f:
            f.write(docs(meta, rows, name, storage))
        print(f"wrote {a.docs}")
    return 0


def storage_main(storage, docs_path):
    """--storage alone: print its table; with --docs, rewrite the page with the HTTP section
    rendered from the newest HTTP result (that file is left as it is)."""
    result, name = storage
    print()
    print(f"Machine: {storage_machine_line(result['machine'])}")
    print()
    print(storage_table(storage_rows(result)))
    print()
    if not docs_path:
        return 0
    http = newest_result(False)
    if http:
        stored = json.load(open(http))
        meta = stored["machine"]
        rows = summarize(stored["runs"], meta["settings"]["connections"])
        page = docs(meta, rows, os.path.basename(http), storage)
    else:
        page = "# Benchmarks\n\n<!-- Generated by bench/report.py from bench/results/" + name + \
            ";\n     edit bench/report.py, not this file. -->\n" + \
            "\n".join(storage_docs(result, name)).rstrip("\n") + "\n"
    with open(docs_path, "w") as f:
        f.write(page)
    print(f"wrote {docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
