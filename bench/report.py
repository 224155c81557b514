#!/usr/bin/env python3
# bench/run's report: aggregates the wrk runs into the table, writes bench/results/<stamp>.json and
# (for a full run without errors) regenerates docs/benchmarks.md. Standard library only.
import argparse
import json
import statistics
import sys
import textwrap

# (workload, target, connections or None for the --connections value, label)
ROWS = [
    ("B0", "ceiling", None, "B0 GET /health"),
    ("B0", "litedist", None, "B0 GET /health"),
    ("B1-preload", "litedist", None, "B1 preload: POST 200 B docs"),
    ("B1", "ceiling", None, "B1 GET document by id"),
    ("B1", "litedist", None, "B1 GET document by id"),
    ("B2", "litedist", None, "B2 durable insert (Sync full)"),
    ("B2", "litedist", 1, "B2 durable insert (Sync full)"),
]

TARGET_NAMES = {"ceiling": "evhttp ceiling", "litedist": "litedistd (SQLite)"}


def error_count(wrk):
    e = wrk.get("errors", {})
    return sum(e.get(k, 0) for k in ("connect", "read", "write", "status", "timeout")) + (
        1 if wrk.get("wrk_failed") else 0)


def writes_per_sync(runs):
    """Median over the runs of requests per fdatasync (commits), when perf counted them."""
    ratios = [r["wrk"].get("requests", 0) / r["syncs"] for r in runs if r.get("syncs")]
    return statistics.median(ratios) if ratios else None


def summarize(records, conns_default):
    rows = []
    for workload, target, conns, label in ROWS:
        c = conns if conns is not None else conns_default
        runs = [r for r in records
                if r["workload"] == workload and r["target"] == target and r["connections"] == c]
        if not runs:
            continue
        if workload == "B1-preload":
            rps = [r["wrk"].get("docs_per_s", 0.0) for r in runs]
        else:
            rps = [r["wrk"].get("rps", 0.0) for r in runs]
        lat = [r["wrk"].get("latency_us", {}) for r in runs]
        rows.append({
            "workload": workload,
            "label": label,
            "target": target,
            "connections": c,
            "runs": len(runs),
            "rps_median": statistics.median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "rps_all": rps,
            "p50_ms": statistics.median(x.get("p50", 0) for x in lat) / 1e3,
            "p99_ms": statistics.median(x.get("p99", 0) for x in lat) / 1e3,
            "server_cpu_pct": statistics.median(r["server_cpu_pct"] for r in runs),
            "wrk_cpu_pct": statistics.median(r["cpu1_busy_pct"] for r in runs),
            "errors": sum(error_count(r["wrk"]) for r in runs),
            "requests": sum(r["wrk"].get("requests", 0) for r in runs),
            "writes_per_sync": writes_per_sync(runs),
        })
    def rps_by_repeat(workload, target, conns):
        return {r["repeat"]: r["wrk"].get("rps", 0.0) for r in records
                if r["workload"] == workload and r["target"] == target
                and r["connections"] == conns}

    # Ratios are paired: repeat r of one row over repeat r of the other, which ran next to it,
    # so that drift of the machine during the run cancels out; the median and range over repeats.
    for r in rows:
        r["vs"] = None
        if r["target"] == "litedist" and r["workload"] in ("B0", "B1"):
            base = ("ceiling", rps_by_repeat(r["workload"], "ceiling", r["connections"]))
        elif r["workload"] == "B2" and r["connections"] != 1:
            base = ("1 connection", rps_by_repeat("B2", "litedist", 1))
        else:
            continue
        mine = rps_by_repeat(r["workload"], "litedist", r["connections"])
        ratios = [mine[k] / base[1][k] for k in sorted(mine) if base[1].get(k)]
        if ratios:
            r["vs"] = (base[0], statistics.median(ratios))
            r["vs_min"], r["vs_max"], r["vs_all"] = min(ratios), max(ratios), ratios
    return rows


def fmt_rps(x):
    return f"{x:,.0f}"


def table(rows):
    head = ("| Workload | Target | Conns | req/s median | min - max | p50 ms | p99 ms | ratio | "
            "server CPU | errors |")
    out = [head, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        if r["vs"] is None:
            ratio = ""
        elif r["vs"][0] == "ceiling":
            ratio = f"{r['vs'][1]:.2f} x ceiling"
        else:
            ratio = f"{r['vs'][1]:.1f} x c=1"
        unit = " docs/s" if r["workload"] == "B1-preload" else ""
        rng = ("" if r["runs"] == 1
               else f"{fmt_rps(r['rps_min'])} - {fmt_rps(r['rps_max'])}")
        out.append(
            f"| {r['label']} | {TARGET_NAMES.get(r['target'], r['target'])} | {r['connections']} "
            f"| {fmt_rps(r['rps_median'])}{unit} | {rng} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {ratio} | {r['server_cpu_pct']:.0f}% | {r['errors']} |")
    return "\n".join(out)


def machine_line(m):
    return (f"{m['cpu_model']}, {m['nproc']} CPUs, {m['memory_mb'] // 1024} GiB, "
            f"Linux {m['kernel']} ({m['os']}), data on {m['data_fs']}; {m['pinning']}; "
            f"{m['wrk']}, libevent {m['libevent']}, SQLite {m['sqlite']}, "
            f"{m['compiler']}, {m['build_type']}; litedist {m['git_commit']}"
            f"{' (uncommitted changes)' if m['git_dirty'] else ''}")


def wrap(text, indent=""):
    return textwrap.fill(text, width=100, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def docs(meta, rows, result_name):
    s = meta["settings"]
    by = {(r["workload"], r["target"], r["connections"]): r for r in rows}
    c = s["connections"]
    lines = []
    add = lines.append

    def par(text):
        add(wrap(text))
        add("")

    def bullet(text):
        add(wrap("- " + text, "  "))

    def ratio_of(w, t="litedist", conns=c):
        r = by.get((w, t, conns))
        return r["vs"][1] if r and r["vs"] else None

    def ratio_range(w, t="litedist", conns=c):
        r = by.get((w, t, conns))
        if not r or not r["vs"] or len(r.get("vs_all", [])) < 2:
            return ""
        return f" (runs: {r['vs_min']:.2f} - {r['vs_max']:.2f})"

    add("# Benchmarks")
    add("")
    add(f"<!-- Generated by bench/run from bench/results/{result_name};")
    add("     edit bench/report.py, not this file. -->")
    add("")
    par("litedistd measured against a bare libevent evhttp server (`bench/evhttp_ceiling.c`, same "
        "libevent, same build flags) that answers every request with a fixed 49-byte JSON body "
        "(as long as litedistd's `/health` answer) and the same headers: the most a server built "
        "on evhttp can do on this machine. The ratios are what to compare across machines; the "
        "absolute figures belong to this one.")
    par(f"**Machine:** {machine_line(meta)}.")
    par(f"**Run:** {meta['started_utc']} UTC, {s['duration_s']} s per run, {s['repeats']} runs per "
        f"row (median, and min - max), {s['warmup_s']} s unmeasured warm-up per workload and "
        f"target, wrk with 1 thread and {c} connections unless the row says otherwise; storage "
        "SQLite with `Sync: full`.")
    add(table(rows))
    add("")
    par("Latencies are wrk's (medians over the runs of each run's p50 and p99). *ratio* is the "
        "median over the runs of each run's rate divided by the rate of the run next to it (the "
        "targets alternate run by run). *server CPU* is the server process's CPU time over the "
        "run's wall time (100% = the one core it is pinned to).")
    add("## What the figures say")
    add("")
    b0, b1 = ratio_of("B0"), ratio_of("B1")
    if b0 is not None:
        bullet(f"**B0, `GET /health`:** litedistd serves {b0:.2f} x the ceiling's request rate"
               f"{ratio_range('B0')}. The route does no storage work, so the gap is litedist's "
               "own per-request path (routing, request context, JSON encoding, headers).")
    if b1 is not None:
        bullet(f"**B1, `GET` a document by id** (random among {s['preload_documents']:,} "
               f"preloaded): {b1:.2f} x the ceiling{ratio_range('B1')}; the ceiling answers the "
               "same requests, headers included, with its fixed body. The difference is the "
               "storage read (a SQLite read transaction and lookup, on the event loop) and the "
               "document reply.")
    pre = by.get(("B1-preload", "litedist", c))
    if pre:
        bullet(f"**Preload:** {s['preload_documents']:,} documents of about 200 bytes written by "
               f"{c} concurrent POSTs at {fmt_rps(pre['rps_median'])} documents/s (one run, "
               "durable, group commit).")
    g = ratio_of("B2")
    one = by.get(("B2", "litedist", 1))
    many = by.get(("B2", "litedist", c))
    if g is not None and one and many:
        text = (f"**B2, durable insert:** one client gets {fmt_rps(one['rps_median'])} inserts/s "
                f"at p50 {one['p50_ms']:.2f} ms / p99 {one['p99_ms']:.2f} ms: each write waits "
                f"for its own commit and fsync. {c} clients get {fmt_rps(many['rps_median'])}/s, "
                f"{g:.1f} x as many{ratio_range('B2')}, because concurrent writes share a commit "
                f"(group commit), at the price of p50 {many['p50_ms']:.2f} ms / p99 "
                f"{many['p99_ms']:.2f} ms.")
        if many.get("writes_per_sync") and one.get("writes_per_sync"):
            text += (f" perf counted {many['writes_per_sync']:.1f} writes per fdatasync at {c} "
                     f"connections and {one['writes_per_sync']:.2f} at 1 (SQLite in WAL mode: "
                     "one fdatasync per commit, plus checkpoints).")
        bullet(text)
    add("")
    add("## Reproduce")
    add("")
    add("```sh")
    add("make bench                 # builds, then bench/run with the defaults (10 s x 3 runs)")
    add("bench/run --only B1        # one workload; B0, B1, B2, comma-separated")
    add("bench/run --duration 5 --repeats 3 --connections 64")
    add("```")
    add("")
    par("`bench/run` installs `wrk` when it is missing (`apt-get install wrk`), builds what "
        "changed, starts `evhttp_ceiling` and `litedistd` on free loopback ports with a fresh "
        "temporary data directory, pins the servers to CPU 0 and wrk to CPU 1 (`taskset`), runs "
        "the workloads, stops the servers and removes its temporary files. It prints the table, "
        "keeps every raw figure with the machine's description in "
        "`bench/results/<UTC date>-<time>.json`, and regenerates this page after a full run (all "
        "workloads) without errors. Any failed request (a status above 399, a socket error or a "
        "timeout) is reported and makes `bench/run` exit non-zero.")
    add("## Workloads")
    add("")
    bullet("**B0:** `GET /health` (no key) with `bench/wrk/health.lua`, against litedistd and the "
           "ceiling.")
    bullet(f"**B1:** first `bench/wrk/preload.lua` POSTs `doc-0` .. "
           f"`doc-{s['preload_documents'] - 1}` into `bench/items` over the benchmark's "
           "connections, ending once every id was acknowledged (a missing document would show "
           "as a 404, a failure, in B1); then `bench/wrk/get_doc.lua` GETs "
           "`/api/documents/items/doc-<random>` with `Database` and `ApiKey` headers, against "
           "litedistd and the ceiling.")
    bullet(f"**B2:** `bench/wrk/insert.lua` POSTs new documents of about 200 bytes to "
           f"`bench/inserts`, ids unique per run, wrk thread and request, at {c} connections and "
           "at 1; every answer comes after the commit (`Sync: full`: fsync'd).")
    add("")
    spread = [r["rps_max"] / r["rps_min"] - 1 for r in rows if r["runs"] > 1 and r["rps_min"] > 0]
    ratio_spread = [r["vs_max"] / r["vs_min"] - 1 for r in rows if r.get("vs_all")]
    noise = ""
    if spread and ratio_spread:
        noise = (f" In this run the rates of one row varied by up to {100 * max(spread):.0f}% "
                 f"(max / min) from run to run, the paired ratios by up to "
                 f"{100 * max(ratio_spread):.0f}%: the host's load moves both targets alike, so "
                 "read the ratios rather than the absolute rates.")
    par("Notes: the machine has two cores, so litedistd's event loop and its database writer "
        "thread share CPU 0. The data directory is on the machine's own disk, whose fsync "
        "latency bounds the single-client insert rate. The `inserts` collection grows over the "
        "B2 runs." + noise)
    return "\n".join(lines).rstrip("\n") + "\n"


def main():
    ap = argparse.ArgumentParser(
        description="Aggregate bench/run's records; or, with --from, re-render a stored result.")
    ap.add_argument("--meta", help="machine and settings JSON written by bench/run")
    ap.add_argument("--records", help="one JSON record per wrk run, from bench/run")
    ap.add_argument("--from", dest="source", help="a bench/results/*.json to re-render")
    ap.add_argument("--out", help="the result JSON to write (default with --from: that file)")
    ap.add_argument("--docs", help="regenerate this Markdown page (only when nothing failed)")
    ap.add_argument("--failed", default="0", help="non-zero when bench/run saw a failure")
    a = ap.parse_args()
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
        ap.error("give --meta, --records and --out, or --from")
    rows = summarize(records, meta["settings"]["connections"])
    failed = failed or any(r["errors"] for r in rows)
    result = {"machine": meta, "failed": failed, "summary": rows, "runs": records}
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print()
    print(f"Machine: {machine_line(meta)}")
    print()
    print(table(rows))
    print()
    for r in rows:
        if r.get("writes_per_sync"):
            print(f"{r['label']}, {r['connections']} connection(s): "
                  f"{r['writes_per_sync']:.2f} writes per fdatasync")
    if failed:
        print("FAILED: some requests failed (see the errors column and the log above).")
    if a.docs and not failed:
        name = out.rsplit("/", 1)[-1]
        with open(a.docs, "w") as f:
            f.write(docs(meta, rows, name))
        print(f"wrote {a.docs}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
