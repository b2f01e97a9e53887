"""The module-level functions, one test or more per function, on both backends."""

import datetime
import json
import uuid

import pytest

import datahike
from datahike import (
    DatahikeException,
    create_database,
    database_exists,
    datoms,
    delete_database,
    entity,
    explain,
    export_db,
    gc_storage,
    import_db,
    index_range,
    load_entities,
    metrics,
    pull,
    pull_many,
    q,
    query_stats,
    reverse_schema,
    rseek_datoms,
    schema,
    seek_datoms,
    transact,
    with_,
)

from conftest import SCHEMA, eid, file_config, memory_config


def test_lifecycle(backend_config):
    assert database_exists(backend_config) is False
    created = create_database(backend_config)
    assert created[":store"][":backend"] in (":memory", ":file")
    assert database_exists(backend_config) is True
    with pytest.raises(DatahikeException):
        create_database(backend_config)
    assert delete_database(backend_config) is None
    assert database_exists(backend_config) is False


def test_lifecycle_with_dict_config(tmp_path):
    config = {"store": {"backend": ":file", "path": str(tmp_path / "d")}, "keep-history?": True}
    create_database(config)
    assert database_exists(config)
    delete_database(config)
    assert not database_exists(config)


def test_transact_returns_tx_meta_like_datahike(db):
    meta = transact(db.config, '[{:name "Ada"}]', input_format="edn")
    assert set(meta) == {":db/txInstant", ":db/commitId"}
    assert isinstance(meta[":db/txInstant"], datetime.datetime)
    assert isinstance(meta[":db/commitId"], uuid.UUID)


def test_transact_report(db):
    report = transact(db.config, [{"db/id": -1, "name": "Ada"}], report=True)
    assert set(report) == {":db-before", ":db-after", ":tx-data", ":tempids", ":tx-meta"}
    ada = report[":tempids"][-1]
    assert [ada, ":name", "Ada"] in [d[:3] for d in report[":tx-data"]]
    assert report[":db-after"][":max-tx"] == report[":db-before"][":max-tx"] + 1


def test_transact_text_formats(db):
    transact(db.config, json.dumps([{"name": "J"}]), input_format="json")
    transact(db.config, '[{:name "E"}]', input_format="edn")
    transact(db.config, '[{"name": "auto-json"}]')
    transact(db.config, '[{:name "auto-edn"}]')
    names = {r[0] for r in q('[:find ?n :where [?e :name ?n]]', [("db", db.config)])}
    assert names == {"J", "E", "auto-json", "auto-edn"}


def test_transact_map_with_tx_meta(db):
    transact(db.config, {"tx-data": [{"name": "M"}], "tx-meta": {"source": "test"}})
    assert q('[:find ?s . :where [?t :source ?s]]', [("db", db.config)]) == "test"


def test_load_entities(db):
    load_entities(db.config, '[[1 :name "Loaded" 536870913 true]]', input_format="edn")
    assert pull(db.config, "[:name]", 1) == {":name": "Loaded"}


def test_with_does_not_change_the_database(db):
    report = with_(db.config, [{"name": "Hypothetical"}])
    assert any(d[2] == "Hypothetical" for d in report[":tx-data"])
    assert q('[:find ?n :where [?e :name ?n]]', [("db", db.config)]) == []


def test_q_inputs(people):
    cfg = people.config
    assert q('[:find ?a . :in $ ?n :where [?e :name ?n] [?e :age ?a]]', [("db", cfg), ("edn", '"Bob"')]) == 25
    assert q('[:find ?a . :in $ ?n :where [?e :name ?n] [?e :age ?a]]', [("db", cfg), ("param", '"Bob"')]) == 25
    assert q('[:find ?a . :in $ ?n :where [?e :name ?n] [?e :age ?a]]', [("db", cfg), "Bob"]) == 25
    assert q('[:find ?a . :in $ ?n :where [?e :name ?n] [?e :age ?a]]', [("db", cfg), ("json", '"Bob"')]) == 25
    assert sorted(q('[:find [?n ...] :in $ [?a ...] :where [?e :age ?a] [?e :name ?n]]',
                    [("db", cfg), [25, 35]])) == ["Bob", "Carol"]
    assert q('[:find ?x :in ?x]', [42]) == [[42]]
    assert q('[:find (count ?e) . :where [?e :name]]', [("db", cfg)]) == 3


def test_q_two_databases(people, mem_config_flexible):
    create_database(mem_config_flexible)
    transact(mem_config_flexible, [{"name": "Alice", "active": True}])
    rows = q('[:find ?a :in $ $2 :where [$ ?e :name ?n] [$ ?e :age ?a] [$2 ?x :name ?n] [$2 ?x :active true]]',
             [("db", people.config), ("db", mem_config_flexible)])
    assert rows == [[30]]
    delete_database(mem_config_flexible)


def test_query_stats_and_explain(people):
    stats = query_stats('[:find ?n :where [?e :name ?n] [?e :age 25]]', [("db", people.config)])
    assert stats[":ret"] == [["Bob"]]
    assert isinstance(stats[":stats"], list)
    plan = explain('[:find ?n :where [?e :name ?n] [?e :age 25]]', [("db", people.config)])
    assert isinstance(plan, str) and ":age" in plan


def test_pull(people):
    alice = eid(people, "Alice")
    assert pull(people.config, "[:name :age]", alice) == {":name": "Alice", ":age": 30}
    assert pull(people.config, [":name", "age"], alice) == {":name": "Alice", ":age": 30}
    assert pull(people.config, "[:name]", '[:name "Bob"]') == {":name": "Bob"}
    assert pull(people.config, ["name"], [":name", "Bob"]) == {":name": "Bob"}
    bob = pull(people.config, "[:name {:friend [:name]}]", eid(people, "Bob"))
    assert bob == {":name": "Bob", ":friend": [{":name": "Alice"}]}
    assert pull(people.config, "[:name]", 999999) is None


def test_pull_many(people):
    ids = [eid(people, "Alice"), eid(people, "Bob")]
    assert pull_many(people.config, "[:name]", ids) == [{":name": "Alice"}, {":name": "Bob"}]
    assert pull_many(people.config, "[:name]", f"[{ids[0]} {ids[1]}]") == [{":name": "Alice"}, {":name": "Bob"}]


def test_entity(people):
    carol = entity(people.config, eid(people, "Carol"))
    assert carol[":name"] == "Carol"
    assert carol[":tags"] == {":admin", ":dev"}
    assert entity(people.config, '[:name "Nobody"]') is None


def test_datoms_seek_rseek(people):
    alice = eid(people, "Alice")
    ds = datoms(people.config, ":eavt", [alice])
    assert [d[1:3] for d in ds] == [[":name", "Alice"], [":age", 30]] or \
        sorted(d[1] for d in ds) == [":age", ":name"]
    assert all(len(d) == 5 and d[4] is True for d in ds)
    assert datoms(people.config, {"index": ":avet", "components": [":age", 25]})[0][0] == eid(people, "Bob")
    seek = seek_datoms(people.config, ":avet", [":age", 30])
    assert [d[2] for d in seek if d[1] == ":age"] == [30, 35]
    rseek = rseek_datoms(people.config, ":avet", [":age", 30])
    assert [d[2] for d in rseek if d[1] == ":age"][:2] == [30, 25]
    assert datoms(people.config, "eavt")  # a keyword without the colon


def test_index_range(people):
    rows = index_range(people.config, ":age", 26, 40)
    assert sorted(d[2] for d in rows) == [30, 35]
    names = index_range(people.config, "name", '"A"', '"Bz"')
    assert sorted(d[2] for d in names) == ["Alice", "Bob"]


def test_schema_and_reverse_schema(people):
    s = schema(people.config)
    assert s[":name"][":db/valueType"] == ":db.type/string"
    assert s[":friend"][":db/cardinality"] == ":db.cardinality/many"
    r = reverse_schema(people.config)
    assert ":name" in r[":db/unique"]
    assert r[":db.unique/identity"] == {":name"} or ":name" in r[":db/unique"]


def test_metrics(people):
    m = metrics(people.config)
    assert m[":count"] > 0
    assert m[":per-attr-counts"][":name"] == 3


def test_gc_storage(backend_config):
    create_database(backend_config)
    transact(backend_config, [{"name": "x"}])
    assert isinstance(gc_storage(backend_config), (set, list))
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
    assert isinstance(gc_storage(backend_config, now), (set, list))
    delete_database(backend_config)


def test_export_and_import(people, tmp_path):
    summary = export_db(people.config, tmp_path / "dump")
    assert isinstance(summary, dict)
    target = file_config(tmp_path / "copy")
    create_database(target)
    import_db(target, str(tmp_path / "dump"))
    assert sorted(q('[:find [?n ...] :where [?e :name ?n]]', [("db", target)])) == ["Alice", "Bob", "Carol"]
    delete_database(target)


def test_config_as_dict_everywhere(tmp_path):
    config = {"store": {"backend": ":memory", "id": str(uuid.uuid4())}, "schema-flexibility": ":read"}
    create_database(config)
    transact(config, [{"name": "D"}])
    assert q('[:find ?n . :where [_ :name ?n]]', [("db", config)]) == "D"
    assert pull(config, "[:name]", 1) == {":name": "D"}
    delete_database(config)


def test_every_operation_is_a_function():
    expected = {
        "create_database", "delete_database", "database_exists", "transact", "load_entities",
        "with_", "q", "query_stats", "explain", "pull", "pull_many", "entity", "datoms",
        "seek_datoms", "rseek_datoms", "index_range", "schema", "reverse_schema", "branches",
        "branch", "delete_branch", "force_branch", "merge_db", "commit_id", "parent_commit_ids",
        "metrics", "gc_storage", "export_db", "import_db",
    }
    assert set(datahike.generated.FUNCTIONS) == expected
    for name in expected:
        assert getattr(datahike, name) is datahike.generated.FUNCTIONS[name]
        assert name in datahike.__all__


def test_memory_config_helper_is_fresh():
    assert memory_config() != memory_config()
    assert SCHEMA.startswith("[")
