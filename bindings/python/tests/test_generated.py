"""The functions come from the library's API description, not from hand-written glue."""

import inspect

import pytest

import datahike
from datahike import Database, DatabaseSnapshot, generated
from datahike import _native


def test_every_offered_operation_is_a_function_with_its_doc():
    for op in _native.ops():
        name = op["python_name"]
        if op["excluded"]:
            assert name not in generated.FUNCTIONS
            assert op["excluded"]
            continue
        fn = generated.FUNCTIONS[name]
        assert fn.__name__ == name
        assert op["doc"] in fn.__doc__
        assert op["api"] in fn.__doc__
        params = list(inspect.signature(fn).parameters)
        assert params[: len(max(op["arities"], key=len))] == [s["name"] for s in max(op["arities"], key=len)]
        assert "output_format" in params


def test_excluded_operations_say_why():
    excluded = generated.EXCLUDED
    for name in ("connect", "db", "release", "history", "as_of", "since", "commit_as_db", "branch_as_db"):
        assert name in excluded and "handle" in excluded[name]


def test_signatures_follow_datahike():
    sig = lambda f: list(inspect.signature(f).parameters)  # noqa: E731
    assert sig(datahike.q) == ["query", "inputs", "output_format"]
    assert sig(datahike.transact) == ["config", "tx_data", "input_format", "output_format", "report"]
    assert sig(datahike.pull)[:3] == ["config", "selector", "eid"]
    assert sig(datahike.index_range)[:4] == ["config", "attrid", "start", "end"]
    assert sig(datahike.branch)[:3] == ["config", "from_", "new_branch"]
    assert sig(datahike.gc_storage)[:2] == ["config", "before_timestamp_ms"]
    assert sig(datahike.create_database) == ["config", "output_format"]
    assert inspect.signature(datahike.pull).parameters["input_format"].default == "db"


def test_a_described_operation_becomes_a_function(people):
    """make_function turns any description into a working function: what happens to an
    operation the library adds."""
    op = next(o for o in _native.ops() if o["name"] == "rseek-datoms")
    renamed = dict(op, python_name="rseek-datoms")
    fn = generated.make_function(renamed)
    assert fn(people.config, ":avet", [":age", 26])[0][2] == 25


def test_methods_come_from_the_description():
    for name, fn in generated.FUNCTIONS.items():
        first = {a[0]["kind"] for a in fn.datahike_operation["arities"] if a}
        if first & {"Db", "Conn"}:
            assert callable(getattr(Database, name)), name
        if first == {"Db"}:
            assert callable(getattr(DatabaseSnapshot, name)), name
    assert list(inspect.signature(Database.pull).parameters)[:3] == ["self", "selector", "eid"]


def test_call_by_any_name(people):
    for name in ("pull", "pull"):
        assert _native.call(name, [people.config, "[:name]", '[:name "Bob"]']) == {":name": "Bob"}
    assert _native.call("database-exists?", [people.config]) is True
    assert _native.call("database-exists", [people.config]) is True


def test_open_connections_and_release(mem_config_flexible):
    db = Database(mem_config_flexible)
    db.create()
    db.transact([{"a": 1}])
    before = _native.open_connections()
    assert before >= 1
    db.release()
    assert _native.open_connections() == before - 1
    assert db.q('[:find ?a . :where [_ :a ?a]]') == 1
    db.delete()
    datahike.release_connections()
    assert _native.open_connections() == 0


@pytest.mark.parametrize("name", sorted(generated.FUNCTIONS))
def test_function_is_exported(name):
    assert name in datahike.__all__ and getattr(datahike, name) is generated.FUNCTIONS[name]
