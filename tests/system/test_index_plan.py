"""The planner over indexes (docs/query.md "Planner and EXPLAIN"): EXPLAIN's rows, and a property
test: random documents with random types per field, random predicates (AND, OR, IN, BETWEEN,
ranges, IS NULL, ORDER BY with Take, LIMIT/OFFSET, COUNT(*), UPDATE/DELETE), each run on a
collection with indexes and on an identical one without, which must answer exactly the same
rows in the same order. The suite runs once per storage backend."""

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import assert_error, assert_ok

DOCS = 300
PREDICATES = 200
SEED = 18

ROW_FIELDS = ["MatchedCount", "AppliedCount", "ReturnedRows", "Rows"]


def query(api, q, take=None):
    body = {"Query": q}
    if take is not None:
        body["Take"] = take
    return api.call("POST", "/api/query", body=body)


def answer(api, q, take=None):
    return assert_ok(query(api, q, take))


def explain(api, q):
    return answer(api, "EXPLAIN " + q)["Rows"]


def wait_planned(api, q, index, timeout=20.0):
    """Polls EXPLAIN until q's first step uses `index` (it is READY in the query's snapshot)."""
    deadline = time.monotonic() + timeout
    for _ in range(2000):
        step = explain(api, q)[0]
        if step["Index"] == index:
            return step
        assert time.monotonic() < deadline, f"{index} never planned for {q}: {step}"
        time.sleep(0.02)
    raise AssertionError(f"{index} never planned for {q}")


@pytest.fixture(scope="module")
def fast_node(build, storage, tmp_path_factory):
    """One server for the module; Sync off: these tests check answers, not durability."""
    from conftest import NodeFactory
    factory = NodeFactory(build, storage, tmp_path_factory.mktemp("plan"))
    yield factory(overrides={"Storage": {"Sync": "off"}}, name="plan")
    factory.close()


# ------------------------------------------------------------------------------------------------
# EXPLAIN
# ------------------------------------------------------------------------------------------------

def test_explain_names_the_index_bounds_and_residual(fast_node, db):
    api = fast_node.api(db)
    for i in range(1, 6):
        api.must_post("orders", {"Id": f"o{i}", "Total": i * 100, "Tag": "k" if i % 2 else "j"})
    q = "SELECT $ FROM orders WHERE $.Total > 310 AND $.Tag = 'k'"
    assert explain(api, q) == [{"Step": 1, "Operation": "scan", "Index": None,
                                "Collection": "orders", "Paths": [], "Bounds": [],
                                "Residual": "$.Total > 310 AND $.Tag = 'k'"}]
    answer(api, "CREATE INDEX by_total ON orders ($.Total)")
    step = wait_planned(api, q, "by_total")
    assert step == {"Step": 1, "Operation": "index range", "Index": "by_total",
                    "Collection": "orders", "Paths": ["$.Total"],
                    "Bounds": ["$.Total > 310"], "Residual": "$.Tag = 'k'"}
    # EXPLAIN runs nothing: the rows are the plan, MatchedCount counts them
    body = answer(api, "EXPLAIN " + q)
    assert (body["MatchedCount"], body["ReturnedRows"]) == (1, 1)
    assert answer(api, q)["Rows"] == [{"Id": "o5", "Total": 500, "Tag": "k"}]

    assert explain(api, "SELECT $ FROM orders WHERE $.Total IN (100, 300)")[0]["Bounds"] == [
        "$.Total = 100", "$.Total = 300"]
    assert explain(api, "SELECT $ FROM orders WHERE $.Total = 200")[0]["Operation"] == "index eq"
    order = explain(api, "SELECT $ FROM orders ORDER BY $.Total LIMIT 2")
    assert [s["Operation"] for s in order] == ["index order"]
    # DESC ranked from the keys when the index answers the whole WHERE; else the heap sorts
    desc = explain(api, "SELECT $ FROM orders WHERE $.Total >= 200 ORDER BY $.Total DESC")
    assert [(s["Operation"], s["Index"]) for s in desc] == [("index order", "by_total")]
    desc = explain(api, "SELECT $ FROM orders WHERE $.Total >= 200 AND $.Tag = 'k' "
                        "ORDER BY $.Total DESC")
    assert [(s["Operation"], s["Index"]) for s in desc] == [("index range", "by_total"),
                                                            ("sort", None)]
    assert desc[1]["Paths"] == ["$.Total DESC"]
    assert [r["Id"] for r in answer(api, "SELECT $ FROM orders WHERE $.Total >= 200 "
                                         "ORDER BY $.Total DESC LIMIT 2")["Rows"]] == ["o5", "o4"]
    # EXPLAIN of a write changes nothing
    delete = explain(api, "DELETE FROM orders WHERE $.Total = 100")
    assert delete[0]["Operation"] == "index eq"
    assert answer(api, "SELECT COUNT(*) AS n FROM orders")["Rows"] == [{"n": 5}]
    # a database that does not exist: the scan, nothing created
    other = fast_node.api(db[:58] + "-none")  # names are at most 63 characters
    assert explain(other, "SELECT $ FROM x WHERE $.a = 1")[0]["Operation"] == "scan"


def test_ddl_is_planned_at_once_through_the_shared_definitions(fast_node, db):
    """The query threads share one parsed copy of the definitions per generation: every DDL
    commit is a new generation, so the very next query plans with it (no stale copy)."""
    api = fast_node.api(db)
    for i in range(1, 4):
        api.must_post("shared", {"Id": f"s{i}", "a": i, "b": -i})
    qa = "SELECT $ FROM shared WHERE $.a = 2"
    qb = "SELECT $ FROM shared WHERE $.b = -2"
    answer(api, "CREATE INDEX by_a ON shared ($.a)")
    wait_planned(api, qa, "by_a")
    assert explain(api, qb)[0]["Operation"] == "scan"
    assert answer(api, qa)["Rows"] == [{"Id": "s2", "a": 2, "b": -2}]
    # DROP: the query right after it scans; the rows stay the same
    answer(api, "DROP INDEX by_a ON shared")
    assert explain(api, qa)[0]["Operation"] == "scan"
    assert answer(api, qa)["Rows"] == [{"Id": "s2", "a": 2, "b": -2}]
    # a redefinition under the same name on another path: planned for that path only
    answer(api, "CREATE INDEX by_a ON shared ($.b)")
    assert explain(api, qa)[0]["Operation"] == "scan"
    wait_planned(api, qb, "by_a")
    assert explain(api, qa)[0]["Operation"] == "scan"
    assert answer(api, qb)["Rows"] == [{"Id": "s2", "a": 2, "b": -2}]


def test_explain_errors(fast_node, db):
    api = fast_node.api(db)
    assert_error(query(api, "EXPLAIN INSERT INTO c VALUES {\"Id\": \"x\"}"), 400,
                 contains="EXPLAIN needs a SELECT, UPDATE or DELETE statement")


# ------------------------------------------------------------------------------------------------
# Property: the indexed plan answers exactly what the scan answers
# ------------------------------------------------------------------------------------------------

STRINGS = ["", "a", "ab", "b", "k", "é", "A", "a b", "zz"]


def rand_value(rng, depth=0):
    """A JSON value of a random type; numbers cluster so that ints and reals collide."""
    t = rng.random()
    if t < 0.08:
        return None
    if t < 0.16:
        return rng.choice([True, False])
    if t < 0.40:
        return rng.randint(-3, 6)
    if t < 0.55:
        return rng.choice([0.5, 1.0, 2.0, 2.5, -0.0, 3.25, -1.5, 1e20])
    if t < 0.62:
        return rng.choice([2**53, 2**53 + 1, 2**63 - 1, -2**63, 2**53 - 1])
    if t < 0.82:
        return rng.choice(STRINGS)
    if t < 0.91 and depth < 2:
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    if depth < 2:
        return {rng.choice("xy"): rand_value(rng, depth + 1) for _ in range(rng.randint(0, 2))}
    return rng.randint(0, 3)


FIELDS = ["a", "b", "c"]


def rand_doc(rng, i):
    doc = {"Id": f"d{i:04}"}
    for f in FIELDS:
        if rng.random() < 0.85:  # else missing
            doc[f] = rand_value(rng)
    if rng.random() < 0.7:
        doc["o"] = {"x": rand_value(rng)} if rng.random() < 0.8 else rand_value(rng)
    return doc


def lit(v):
    """v as a LiteQL literal."""
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, float):
        return repr(v) if v == v else "0"
    return json.dumps(v)


PATHS = ["$.a", "$.b", "$.c", "$.o.x"]


def rand_atom(rng):
    p = rng.choice(PATHS)
    k = rng.random()
    v = rand_value(rng, 1)
    if k < 0.35:
        op = rng.choice(["=", "<", "<=", ">", ">=", "!="])
        return f"{lit(v)} {op} {p}" if rng.random() < 0.2 else f"{p} {op} {lit(v)}"
    if k < 0.55:
        vals = ", ".join(lit(rand_value(rng, 1)) for _ in range(rng.randint(1, 4)))
        return f"{p} {'NOT ' if rng.random() < 0.15 else ''}IN ({vals})"
    if k < 0.75:
        lo, hi = rand_value(rng, 1), rand_value(rng, 1)
        return f"{p} BETWEEN {lit(lo)} AND {lit(hi)}"
    if k < 0.9:
        return f"{p} IS {'NOT ' if rng.random() < 0.5 else ''}NULL"
    return f"{p} = {p}"  # no constant side: never indexed


def rand_where(rng, depth=0):
    k = rng.random()
    if depth < 2 and k < 0.45:
        return " AND ".join(rand_where(rng, depth + 1) for _ in range(rng.randint(2, 3)))
    if depth < 2 and k < 0.6:
        return "(" + " OR ".join(rand_where(rng, depth + 1) for _ in range(2)) + ")"
    return rand_atom(rng)


def rand_query(rng, coll):
    where = rand_where(rng)
    shape = rng.random()
    if shape < 0.1:
        return f"SELECT COUNT(*) FROM {coll} WHERE {where}", None
    q = f"SELECT $ FROM {coll} WHERE {where}"
    if shape < 0.55:
        p = rng.choice(PATHS)
        q += f" ORDER BY {p}{' DESC' if rng.random() < 0.3 else ''}"
    if rng.random() < 0.4:
        q += f" LIMIT {rng.randint(0, 20)}"
        if rng.random() < 0.5:
            q += f" OFFSET {rng.randint(0, 10)}"
    take = rng.choice([None, 1, 3, 10, 50])
    return q, take


def same_answer(api, q_ix, q_scan, take):
    a, b = query(api, q_ix, take), query(api, q_scan, take)
    assert a.status == b.status, (q_ix, a.status, b.status, a.raw, b.raw)
    if a.status != 200:
        return None
    ja, jb = a.body, b.body
    got = {k: ja[k] for k in ROW_FIELDS}
    want = {k: jb[k] for k in ROW_FIELDS}
    assert got == want, q_ix
    return explain(api, q_ix)[0]


def test_indexed_plans_answer_exactly_what_the_scan_answers(fast_node, db):
    rng = random.Random(SEED)
    api = fast_node.api(db)
    docs = [rand_doc(rng, i) for i in range(DOCS)]

    def post_both(doc):
        api.must_post("ix", doc)
        api.must_post("plain", doc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post_both, docs))
    for name, paths in [("ia", "$.a"), ("ib", "$.b"), ("ica", "$.c, $.a"), ("iox", "$.o.x")]:
        answer(api, f"CREATE INDEX {name} ON ix ({paths})")
    for name, p in [("ia", "$.a"), ("ib", "$.b"), ("ica", "$.c"), ("iox", "$.o.x")]:
        wait_planned(api, f"SELECT $ FROM ix WHERE {p} = 1", name)

    used = {}
    for i in range(PREDICATES):
        q, take = rand_query(rng, "ix")
        step = same_answer(api, q, q.replace(" FROM ix ", " FROM plain "), take)
        if step:
            used[step["Operation"]] = used.get(step["Operation"], 0) + 1
        if i % 20 == 19:
            # a write through the planner, then the same on the plain copy: both stay equal
            where = rand_where(rng)
            # (a DELETE takes the first 3 matches only: the collection stays large)
            verb, take = rng.choice([("UPDATE {} SET {{\"u\": %d}} WHERE " % i, 1000),
                                     ("DELETE FROM {} WHERE ", 3)])
            a = answer(api, verb.format("ix") + where, take=take)
            b = answer(api, verb.format("plain") + where, take=take)
            assert (a["MatchedCount"], a["AppliedCount"]) == (b["MatchedCount"],
                                                               b["AppliedCount"]), where
            assert [r["id"] for r in a["Rows"]] == [r["id"] for r in b["Rows"]]
    # ORDER BY each indexed path, both ways, without a WHERE and with one the index answers
    for p in PATHS:
        for tail in ["", " DESC", " LIMIT 7", " DESC LIMIT 7 OFFSET 3", " DESC LIMIT 400"]:
            for where in ["", f" WHERE {p} IS NOT NULL", f" WHERE {p} <= 2"]:
                q = f"SELECT $ FROM ix{where} ORDER BY {p}{tail}"
                for take in (5, 1000):
                    same_answer(api, q, q.replace(" FROM ix", " FROM plain"), take)
    assert answer(api, "SELECT COUNT(*) AS n FROM ix")["Rows"][0]["n"] >= DOCS - 30
    # the random predicates exercised each kind of plan
    for op in ["scan", "index eq", "index range", "index order"]:
        assert used.get(op, 0) > 0, used
    # and the two collections still hold the same documents
    whole = "SELECT $ FROM {} ORDER BY _id"
    assert answer(api, whole.format("ix"), 10000)["Rows"] == answer(
        api, whole.format("plain"), 10000)["Rows"]


def test_order_by_index_stops_at_take_and_counts_all(fast_node, db):
    """ORDER BY an indexed path with Take: the top rows in order (ties by id), every match
    counted; null and missing values sort first together, by id."""
    api = fast_node.api(db)
    docs = [{"Id": "m1"}, {"Id": "n1", "v": None}, {"Id": "m0"}, {"Id": "n0", "v": None}]
    docs += [{"Id": f"v{i:03}", "v": (i * 7) % 50} for i in range(100)]
    for d in docs:
        api.must_post("t", d)
    answer(api, "CREATE INDEX by_v ON t ($.v)")
    wait_planned(api, "SELECT $ FROM t ORDER BY $.v", "by_v")
    body = answer(api, "SELECT $ FROM t ORDER BY $.v", take=6)
    assert body["MatchedCount"] == 104 and body["ReturnedRows"] == 6
    assert [r["Id"] for r in body["Rows"]] == ["m0", "m1", "n0", "n1", "v000", "v050"]
    # DESC from the keys: null and missing last, together, by id
    assert explain(api, "SELECT $ FROM t ORDER BY $.v DESC")[0]["Operation"] == "index order"
    body = answer(api, "SELECT $ FROM t ORDER BY $.v DESC LIMIT 6 OFFSET 100", take=10)
    assert body["MatchedCount"] == 4
    assert [r["Id"] for r in body["Rows"]] == ["m0", "m1", "n0", "n1"]
    body = answer(api, "SELECT $ FROM t ORDER BY $.v DESC", take=3)
    assert body["MatchedCount"] == 104
    assert [r["Id"] for r in body["Rows"]] == ["v007", "v057", "v014"]
    body = answer(api, "SELECT $ FROM t WHERE $.v >= 48 ORDER BY $.v LIMIT 3 OFFSET 1")
    assert body["MatchedCount"] == 3
    expect = sorted((d for d in docs if isinstance(d.get("v"), int) and d["v"] >= 48),
                    key=lambda d: (d["v"], d["Id"]))[1:4]
    assert body["Rows"] == expect


def test_values_too_long_for_a_key_are_found_and_ordered_by_their_whole_value(fast_node, db):
    """An index key holds a long value cut to its first ~250 bytes (docs/query.md "Indexes"), so
    values sharing a long prefix share their key bytes: equality and ranges on such values still
    find exactly the scan's rows, and ORDER BY (ASC and DESC from the keys) still orders them by
    the whole value, not by id. The ids run against the values' order."""
    api = fast_node.api(db)
    prefix = "p" * 400
    letters = "abcdefghijklmnopqrst"
    docs = [{"Id": f"d{i:02}", "s": prefix + letters[19 - i], "n": i % 3} for i in range(20)]
    docs += [{"Id": "e00", "s": "p" * 300 + "z", "n": 1}, {"Id": "e01", "s": "short", "n": 2},
             {"Id": "e02", "s": prefix, "n": 0}, {"Id": "e03"}]
    for coll in ("ix", "plain"):
        for d in docs:
            api.must_post(coll, d)
    answer(api, "CREATE INDEX by_s ON ix ($.s)")
    answer(api, "CREATE INDEX by_s_n ON ix ($.s, $.n)")
    k = prefix + "j"
    wait_planned(api, f"SELECT $ FROM ix WHERE $.s = '{k}'", "by_s")
    queries = [
        f"SELECT $ FROM {{c}} WHERE $.s = '{k}'",
        f"SELECT COUNT(*) AS n FROM {{c}} WHERE $.s = '{k}'",
        f"SELECT $ FROM {{c}} WHERE $.s > '{k}'",
        f"SELECT $ FROM {{c}} WHERE $.s >= '{k}'",
        f"SELECT $ FROM {{c}} WHERE $.s < '{k}'",
        f"SELECT COUNT(*) AS n FROM {{c}} WHERE $.s <= '{k}'",
        f"SELECT $ FROM {{c}} WHERE $.s BETWEEN '{prefix + 'c'}' AND '{k}'",
        f"SELECT $ FROM {{c}} WHERE $.s IN ('{k}', 'short', '{prefix}')",
        f"SELECT $ FROM {{c}} WHERE $.s = '{k}' AND $.n = 1",
        f"SELECT $ FROM {{c}} WHERE $.s > '{prefix}' AND $.n >= 1",
        "SELECT $ FROM {c} ORDER BY $.s LIMIT 5",
        "SELECT $ FROM {c} ORDER BY $.s DESC LIMIT 5",
        "SELECT $ FROM {c} ORDER BY $.s DESC LIMIT 4 OFFSET 3",
        f"SELECT $ FROM {{c}} WHERE $.s >= '{prefix + 'e'}' ORDER BY $.s LIMIT 4",
        f"SELECT $ FROM {{c}} WHERE $.s < '{prefix + 'q'}' ORDER BY $.s DESC LIMIT 4",
    ]
    for q in queries:
        step = explain(api, q.format(c="ix"))[0]
        assert step["Index"] in ("by_s", "by_s_n"), (q, step)
        got, want = answer(api, q.format(c="ix"), 100), answer(api, q.format(c="plain"), 100)
        assert {f: got[f] for f in ROW_FIELDS} == {f: want[f] for f in ROW_FIELDS}, q
    # the cut rows are really in value order, not id order
    rows = answer(api, "SELECT $ FROM ix ORDER BY $.s DESC LIMIT 3")["Rows"]
    assert [r["Id"] for r in rows] == ["e01", "e00", "d00"]  # "short" sorts after "ppp..."
