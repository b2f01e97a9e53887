#!/usr/bin/env python3
"""The shared Datalog benchmark (``../shared/bench/WORKLOAD.md``) driven from Python through
this package: every op goes through the public Python API (``Database``, ``q``, ``pull_many``,
``datoms``...), so the times include converting Python values to EDN and results back.

Durable file store in a fresh directory per load, ``:keep-history? false`` as the workload
asks; each transaction is fsynced before ``transact`` returns. Usage (``run.sh`` drives it)::

    python run.py --bench ../shared/bench --data DIR [--ops q1,q2] [--out FILE] [--dir TMP]
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
    sys.exit("run.py: --bench DIR (the shared benchmark folder with tools/harness.py) is needed")
sys.path.insert(0, os.path.join(known.bench, "tools"))
import harness  # noqa: E402

from datahike import Database, DatahikeException  # noqa: E402

args = harness.parse_args("datahike-py", extra=[(("--bench",), {"default": known.bench})])
meta, people, params = harness.load_data(args.data)
N = meta["n"]
ROOT = args.dir or tempfile.mkdtemp(prefix="datahike-py-bench-")
os.makedirs(ROOT, exist_ok=True)
VERSION = "datahike (Python) %s" % importlib.metadata.version("datahike")

SCHEMA = """[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :last-name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :sex :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :salary :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :follows :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"""
ATTRS = (":name", ":last-name", ":sex", ":age", ":salary", ":email", ":follows")

counter = [0]


def fresh():
    """A new empty database with the schema (untimed)."""
    counter[0] += 1
    path = os.path.join(ROOT, "db-%d" % counter[0])
    shutil.rmtree(path, ignore_errors=True)
    db = Database.file(path, keep_history=False)
    db.create()
    db.transact(SCHEMA, input_format="edn")
    return db


def drop(db):
    db.delete()


def person_datoms(db):
    counts = db.metrics()[":per-attr-counts"]
    return sum(counts.get(a, 0) for a in ATTRS)


MAIN = [None]


def load_bulk(_):
    db = fresh()
    db.transact(people)
    if MAIN[0]:
        drop(MAIN[0])
    MAIN[0] = db
    return db


def load_chunked(_):
    db = fresh()
    for i in range(0, len(people), 100):
        db.transact(people[i:i + 100])
    n = person_datoms(db)
    drop(db)
    return n


RULES_HOPS = """[[(hop1 ?x ?y) [?x :follows ?y]]
 [(hop2 ?x ?y) (hop1 ?x ?y)]
 [(hop2 ?x ?y) [?x :follows ?t] (hop1 ?t ?y)]
 [(hop3 ?x ?y) (hop2 ?x ?y)]
 [(hop3 ?x ?y) [?x :follows ?t] (hop2 ?t ?y)]
 [(hop4 ?x ?y) (hop3 ?x ?y)]
 [(hop4 ?x ?y) [?x :follows ?t] (hop3 ?t ?y)]]"""
RULES_DEPTH = """[[(reach ?x ?y ?d) [?x :follows ?y]]
 [(reach ?x ?y ?d) [(> ?d 1)] [(dec ?d) ?d2] [?x :follows ?t] (reach ?t ?y ?d2)]]"""
RULES_REACH = """[[(follows ?x ?y) [?x :follows ?y]]
 [(follows ?x ?y) [?x :follows ?t] (follows ?t ?y)]]"""
START = params["rule_start"]

Q = {
    "q1": ('[:find ?e :where [?e :name "Ivan"]]', ()),
    "q2": ('[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a]]', ()),
    "q3": ('[:find ?e ?a :where [?e :name "Ivan"] [?e :age ?a] [?e :sex :male]]', ()),
    "q4": ('[:find ?e ?l ?a :where [?e :name "Ivan"] [?e :last-name ?l] [?e :age ?a] [?e :sex :male]]', ()),
    "qpred": ('[:find ?e ?s :where [?e :salary ?s] [(> ?s 50000)]]', ()),
    "qpred-join": ('[:find ?e ?f :where [?e :name "Ivan"] [?e :age ?a] [(> ?a 18)] '
                   '[?e :follows ?f] [?f :sex :female]]', ()),
    "qagg": ('[:find ?a (count ?e) (max ?s) (avg ?s) :where [?e :age ?a] [?e :salary ?s]]', ()),
    "rule-hops": ('[:find ?y :in $ % ?start :where (hop4 ?start ?y)]', (("edn", RULES_HOPS), START)),
    "rule-depth": ('[:find ?y :in $ % ?start ?depth :where (reach ?start ?y ?depth)]',
                   (("edn", RULES_DEPTH), START, 4)),
    "rule-reach": ('[:find ?y :in $ % ?start :where (follows ?start ?y)]', (("edn", RULES_REACH), START)),
}


def query(name):
    text, inputs = Q[name]
    return lambda _: MAIN[0].q(text, *inputs)


EIDS = params["pull_eids"]


def pull_wildcard(_):
    return MAIN[0].pull_many("[*]", EIDS)


def pull_nested(_):
    return MAIN[0].pull_many("[:name {:follows [:name]}]", EIDS)


def lookup_email(_):
    db = MAIN[0]
    found = total = 0
    for email in params["lookup_emails"]:
        m = db.pull("[:salary]", [":email", email])
        if m:
            found += 1
            total += m[":salary"]
    return found, total


def datoms_eavt(_):
    db = MAIN[0]
    found = total = 0
    for e in params["datom_eids"]:
        ds = db.datoms(":eavt", [e, ":salary"])
        if ds:
            found += 1
            total += ds[0][2]
    return found, total


def tx_small(it):
    db = MAIN[0]
    for p in params["new_people"]:
        db.transact([dict(p, email="r%d.%s" % (it, p["email"]))])
    return len(params["new_people"])


def follows_count(maps):
    return sum(len(m.get(":follows", ())) for m in maps)


def nested_count(maps):
    return sum(1 for m in maps for f in m.get(":follows", ()) if ":name" in f)


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
                b.run(op, "query", pull_wildcard, len, follows_count)
            elif op == "pull-nested":
                b.run(op, "query", pull_nested, len, nested_count)
            elif op == "lookup-email":
                b.run(op, "query", lookup_email, lambda r: r[0], lambda r: r[1])
            elif op == "datoms-eavt":
                b.run(op, "query", datoms_eavt, lambda r: r[0], lambda r: r[1])
            elif op == "tx-small":
                b.run(op, "load", tx_small, lambda n: n)
        except DatahikeException as e:
            b.emit({"peer": args.peer, "op": op, "n": N, "median_ms": None, "min_ms": None,
                    "max_ms": None, "result_count": None, "error": str(e), "version": VERSION})
finally:
    if MAIN[0]:
        drop(MAIN[0])
    if not args.dir:
        shutil.rmtree(ROOT, ignore_errors=True)
