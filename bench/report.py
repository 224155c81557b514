#!/usr/bin/env python3
# bench/run's report: aggregates the wrk runs into the table, writes bench/results/<stamp>.json and
# (for a full run without errors) regenerates docs/benchmarks.md, whose storage section comes from
# bench/storage/run's bench/results/storage-<stamp>.json. Standard library only.
import argparse
import glob
import json
import os
import re
import statistics
import sys
import textwrap

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

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


def docs(meta, rows, result_name, storage=None):
    """The whole page: the HTTP benchmark, then the storage section when storage is given as
    (result, file name)."""
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
    if storage:
        add(f"<!-- Generated by bench/report.py from bench/results/{result_name}")
        add(f"     and bench/results/{storage[1]}; edit bench/report.py, not this file. -->")
    else:
        add(f"<!-- Generated by bench/report.py from bench/results/{result_name};")
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
        if not storage and newest_result(True):
            storage = load_storage(newest_result(True))
        name = out.rsplit("/", 1)[-1]
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
