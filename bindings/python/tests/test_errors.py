"""Failures raise DatahikeException with the library's code, message and data."""

import pytest

import datahike
from datahike import DatahikeException, Database, create_database, pull, q, transact
from datahike._native import DatahikeException as NativeDatahikeException


def test_exception_is_importable_from_datahike_paths():
    assert NativeDatahikeException is DatahikeException
    assert issubclass(DatahikeException, Exception)
    e = DatahikeException("by hand")
    assert e.code is None and e.data == {} and str(e) == "by hand"


def test_bad_edn(people):
    with pytest.raises(DatahikeException) as err:
        people.q('[:find ?e :where [?e :name "x"')
    e = err.value
    assert e.code == "edn/syntax"
    assert e.data[":error"] == ":edn/syntax"
    assert e.data[":line"] == 1 and e.data[":column"] > 1
    with pytest.raises(DatahikeException) as err:
        transact(people.config, "[{:name }", input_format="edn")
    assert err.value.code == "edn/syntax"
    with pytest.raises(DatahikeException) as err:
        create_database("{:store")
    assert err.value.code == "edn/syntax"


def test_schema_violation_carries_data(people):
    with pytest.raises(DatahikeException) as err:
        people.transact([{"name": "Eve", "shoe-size": 42}])
    e = err.value
    assert e.code == "transact/schema"
    assert e.data[":error"] == ":transact/schema"
    assert "shoe-size" in e.message
    with pytest.raises(DatahikeException) as err:
        people.transact([{"name": "Eve", "age": "old"}])
    assert err.value.code == "transact/schema"
    assert err.value.data[":attribute"] == ":age" or ":age" in str(err.value.data)


def test_unique_violation(mem_config):
    db = Database(mem_config)
    db.create()
    db.transact('[{:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one'
                ' :db/unique :db.unique/value}]', input_format="edn")
    db.transact([{"email": "a@b.c"}])
    with pytest.raises(DatahikeException) as err:
        db.transact([{"email": "a@b.c"}])
    assert err.value.code == "transact/unique"
    assert err.value.data[":attribute"] == ":email"
    assert err.value.data[":value"] == "a@b.c"
    db.delete()


def test_query_errors(people):
    with pytest.raises(DatahikeException) as err:
        people.q('[:find ?x :where [?e :name ?n]]')
    assert err.value.code.startswith("query/")
    with pytest.raises(DatahikeException):
        q('[:find ?e :in $ ?n :where [?e :name ?n]]', [("db", people.config)])


def test_nonexistent_database(mem_config):
    with pytest.raises(DatahikeException) as err:
        q('[:find ?e :where [?e :name "test"]]', [("db", mem_config)])
    assert err.value.code == "database/state"
    with pytest.raises(DatahikeException):
        transact(mem_config, [{"name": "x"}])
    with pytest.raises(DatahikeException):
        datahike.delete_database("{:store {:backend :nope}}")


def test_argument_errors(people):
    with pytest.raises(TypeError):
        pull(people.config, "[:name]", 1, "db", "cbor", "extra")  # type: ignore[call-arg]
    with pytest.raises(DatahikeException) as err:
        datahike.index_range(people.config, ":age", 1, 2, input_format="commit:not-a-uuid")
    assert err.value.code == "argument/invalid"
    with pytest.raises(DatahikeException) as err:
        datahike.datoms(people.config, ":nope")
    assert err.value.code == "argument/invalid"
    with pytest.raises(TypeError):
        people.transact([{"name": object()}])
    with pytest.raises(DatahikeException) as err:
        datahike.generated._native.call("no-such-op", [])
    assert "no operation" in err.value.message


def test_history_of_a_database_without_history(tmp_path):
    db = Database.file(tmp_path / "nh", keep_history=False, schema_flexibility="read")
    db.create()
    with pytest.raises(DatahikeException) as err:
        db.history.q('[:find ?e :where [?e :name]]')
    assert err.value.code == "db/temporal"
    db.delete()
