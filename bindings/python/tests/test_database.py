"""The high-level API: Database, DatabaseSnapshot, database(...), time travel."""

import datetime
import time
import uuid

import pytest

from datahike import (
    Database,
    DatabaseSnapshot,
    DatahikeException,
    database,
    database_exists,
    edn,
    kw,
)

from conftest import SCHEMA, eid, memory_config


def test_issue_example_file_store(tmp_path):
    db = Database.file(str(tmp_path / "people"), schema_flexibility=":read")
    db.create()
    db.transact([{"name": "Alice", "age": 30}, {"name": "Bob", "age": 25}])
    rows = db.q('[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]')
    assert sorted(rows) == [["Alice", 30], ["Bob", 25]]
    assert db.pull('[:name :age]', 1) == {":name": "Alice", ":age": 30}
    db.delete()
    assert not db.exists()


def test_memory_factory_and_dict_config():
    db = Database.memory(str(uuid.uuid4()))
    assert db.config.startswith("{:store {:backend :memory")
    assert not db.exists()
    db.create()
    assert db.exists()
    db.delete()
    d = Database({"store": {"backend": ":memory", "id": str(uuid.uuid4())},
                  "schema-flexibility": ":read", "keep-history?": True})
    assert ":schema-flexibility :read" in d.config and ":keep-history? true" in d.config
    k = Database(backend=":memory", id="kw-config")
    assert k.config == '{:store {:backend :memory, :id "kw-config"}}'
    with pytest.raises(ValueError):
        Database()


def test_edn_string_config_kept_as_given(mem_config):
    assert Database(mem_config).config == mem_config
    assert repr(Database(mem_config)) == f"Database({mem_config})"


def test_context_manager_kwargs():
    db_id = str(uuid.uuid4())
    with database(backend=":memory", id=db_id) as tmp:
        assert isinstance(tmp, Database)
        assert tmp.exists()
        config = tmp.config
    assert not database_exists(config)


def test_context_manager_config(mem_config_flexible):
    with database(mem_config_flexible) as db:
        assert db.config == mem_config_flexible
        db.transact({"name": "Solo"})
        assert db.q('[:find ?n :where [?e :name ?n]]') == [["Solo"]]
    assert not database_exists(mem_config_flexible)
    with pytest.raises(ValueError):
        with database():
            pass


def test_database_as_context_manager(mem_config):
    with Database(mem_config) as db:
        assert db.exists()
    assert not Database(mem_config).exists()


def test_explicit_schema_and_json_coercion(mem_config):
    """JSON data read against the schema, as Datahike's binding reads it: keyword-typed
    values given as strings become keywords."""
    with database(mem_config) as db:
        db.transact(SCHEMA, input_format="edn")
        db.transact([{"name": "Dora", "age": 41, "tags": ["admin"]}])
        assert db.q('[:find ?t . :where [?e :tags ?t]]') == ":admin"
        assert db.schema(output_format="json")["age"]["db/valueType"] == ["!kw", "db.type/long"]


def test_schema_with_edn_helpers(mem_config):
    with database(mem_config) as db:
        db.transact([{
            kw.DB_IDENT: edn.keyword("person/name"),
            kw.DB_VALUE_TYPE: kw.STRING,
            kw.DB_CARDINALITY: kw.ONE,
            kw.DB_DOC: "Person's full name",
            kw.DB_UNIQUE: kw.UNIQUE_IDENTITY,
        }, {
            "db/ident": ":person/born",
            "db/valueType": kw.INSTANT,
            "db/cardinality": kw.ONE,
        }])
        born = datetime.datetime(1990, 5, 17, 12, 0, tzinfo=datetime.timezone.utc)
        db.transact([{"person/name": "Eve", "person/born": born}])
        assert db.pull("[:person/name :person/born]", '[:person/name "Eve"]') == {
            ":person/name": "Eve", ":person/born": born}
        assert db.schema()[":person/name"][":db/doc"] == "Person's full name"


def test_methods_from_the_api_description(people):
    alice, bob = eid(people, "Alice"), eid(people, "Bob")
    assert people.pull("[:name]", alice) == {":name": "Alice"}
    assert people.pull_many("[:name]", [alice, bob]) == [{":name": "Alice"}, {":name": "Bob"}]
    assert people.entity(bob)[":friend"] == [{":db/id": alice}]
    assert [d[2] for d in people.datoms(":avet", [":age"])] == [25, 30, 35]
    assert people.seek_datoms(":avet", [":age", 35])[0][2] == 35
    assert people.rseek_datoms(":avet", [":age", 26])[0][2] == 25
    assert sorted(d[2] for d in people.index_range(":age", 20, 31)) == [25, 30]
    assert ":name" in people.schema()
    assert people.reverse_schema()
    assert people.metrics()[":count"] > 0
    assert people.branches() == {":db"}
    assert isinstance(people.commit_id(), uuid.UUID)
    assert isinstance(people.parent_commit_ids(), set)
    assert people.with_([{"name": "Zed"}])[":tx-data"]
    assert isinstance(people.gc_storage(), (set, list))


def test_q_extra_inputs(people):
    q = '[:find ?a . :in $ ?n :where [?e :name ?n] [?e :age ?a]]'
    assert people.q(q, "Carol") == 35
    assert people.q(q, '"Carol"') == 35
    assert people.q(q, ("edn", '"Carol"')) == 35
    assert people.q('[:find ?n . :in $ ?a :where [?e :age ?a] [?e :name ?n]]', 25) == "Bob"
    assert people.q('[:find ?n :in $ ?t :where [?e :tags ?t] [?e :name ?n]]', ":dev") == [["Carol"]]
    assert people.q('[:find ?x :in ?x]', inputs=[7]) == [[7]]


def test_q_other_database(people, mem_config_flexible):
    with database(mem_config_flexible) as other:
        other.transact([{"name": "Bob", "active": True}])
        rows = people.q('[:find ?a :in $ $2 :where [$ ?e :name ?n] [$ ?e :age ?a] '
                        '[$2 ?x :name ?n] [$2 ?x :active true]]', other)
        assert rows == [[25]]


def test_q_output_formats(people):
    query = '[:find ?n :where [?e :age 25] [?e :name ?n]]'
    assert people.q(query) == [["Bob"]]
    assert people.q(query, output_format="json") == [["Bob"]]
    assert people.q(query, output_format="json", unwrap=False) == ["!set", [["Bob"]]]
    assert people.q(query, output_format="edn") == '#{["Bob"]}'


def test_time_travel(tmp_path):
    db = Database.file(tmp_path / "tt", schema_flexibility="read")
    db.create()
    db.transact({"name": "Alice", "status": ":active"})
    time.sleep(0.02)
    t1 = int(time.time() * 1000)
    time.sleep(0.02)
    db.transact({"name": "Bob", "status": ":inactive"})
    query = '[:find ?n :where [?e :name ?n]]'
    assert sorted(db.q(query)) == [["Alice"], ["Bob"]]
    past = db.as_of(t1)
    assert isinstance(past, DatabaseSnapshot)
    assert past.q(query) == [["Alice"]]
    assert db.since(t1).q(query) == [["Bob"]]
    assert db.as_of(datetime.datetime.fromtimestamp(t1 / 1000, datetime.timezone.utc)).q(query) == [["Alice"]]
    assert db.q('[:find ?s . :where [?e :name "Alice"] [?e :status ?s]]') == ":active"
    bob = db.q('[:find ?e . :where [?e :name "Bob"]]')
    db.transact([[":db/retract", bob, "name", "Bob"]])
    assert db.q(query) == [["Alice"]]
    assert sorted(db.history.q('[:find ?n ?added :where [?e :name ?n _ ?added]]')) == [
        ["Alice", True], ["Bob", False], ["Bob", True]]
    # Every read of a snapshot: pull, entity, datoms...
    assert past.pull("[:name]", bob) is None
    assert [d[2] for d in db.history.datoms(":eavt", [bob]) if d[1] == ":name"] == ["Bob", "Bob"]
    assert past.entity(1)[":name"] == "Alice"
    assert db.since(t1).datoms(":eavt", [bob])
    assert "asof:" in repr(past)
    db.delete()


def test_snapshot_in_q_inputs(tmp_path):
    with database(Database.file(tmp_path / "s", schema_flexibility="read").config) as db:
        db.transact({"name": "Old"})
        time.sleep(0.02)
        t = int(time.time() * 1000)
        time.sleep(0.02)
        db.transact({"name": "New"})
        rows = db.q('[:find ?n :in $ $past :where [$ ?e :name ?n] (not [$past ?e :name ?n])]', db.as_of(t))
        assert rows == [["New"]]


def test_transact_errors_keep_the_database(people):
    with pytest.raises(DatahikeException) as err:
        people.transact([{"name": "Alice", "age": "thirty"}])
    assert err.value.code == "transact/schema"
    assert people.q('[:find ?a . :where [?e :name "Alice"] [?e :age ?a]]') == 30


def test_release_and_reopen(tmp_path):
    db = Database.file(tmp_path / "r", schema_flexibility="read")
    db.create()
    db.transact({"name": "Kept"})
    db.release()
    assert db.q('[:find ?n . :where [?e :name ?n]]') == "Kept"
    db.delete()


def test_equality(mem_config):
    assert Database(mem_config) == Database(mem_config)
    assert len({Database(mem_config), Database(mem_config)}) == 1
    assert Database(memory_config()) != Database(mem_config)
