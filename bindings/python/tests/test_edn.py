"""Python values to EDN and back: Datahike's conversion rule, the helpers, the types."""

import datetime
import decimal
import uuid

import pytest

from datahike import Database, DatahikeException, edn, kw
from datahike.database import _dict_to_edn, _key_to_keyword, _python_to_edn, _value_to_edn


def test_keys_are_keywords():
    assert _key_to_keyword("name") == ":name"
    assert _key_to_keyword(":db/id") == ":db/id"
    assert edn.dumps({"name": 1, ":db/id": 2, "keep-history?": True, "person/name": 3}) == \
        "{:name 1, :db/id 2, :keep-history? true, :person/name 3}"


def test_values_by_the_rule():
    assert _value_to_edn("Alice") == '"Alice"'
    assert _value_to_edn(":active") == ":active"
    assert _value_to_edn(":db.type/string") == ":db.type/string"
    assert _value_to_edn("\\:literal") == '":literal"'
    assert _value_to_edn(edn.string(":literal")) == '":literal"'
    assert _value_to_edn('say "hello"') == '"say \\"hello\\""'
    assert _value_to_edn("C:\\path") == '"C:\\\\path"'
    assert _value_to_edn(42) == "42"
    assert _value_to_edn(3.14) == "3.14"
    assert _value_to_edn(True) == "true" and _value_to_edn(False) == "false"
    assert _value_to_edn(None) == "nil"
    assert _value_to_edn([1, [2, 3]]) == "[1 [2 3]]"
    assert _value_to_edn((1, 2)) == "[1 2]"
    assert _value_to_edn(2 ** 70) == "1180591620717411303424N"
    assert _dict_to_edn({}) == "{}"
    assert _python_to_edn([{"status": ":a"}]) == "[{:status :a}]"


def test_other_python_types():
    u = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
    assert edn.dumps(u) == '#uuid "550e8400-e29b-41d4-a716-446655440000"'
    assert edn.dumps(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)) == \
        '#inst "2024-01-01T00:00:00.000-00:00"'
    assert edn.dumps(datetime.datetime(2024, 1, 1)) == '#inst "2024-01-01T00:00:00.000-00:00"'
    assert edn.dumps(datetime.date(2024, 1, 2)) == '#inst "2024-01-02T00:00:00.000-00:00"'
    assert edn.dumps(decimal.Decimal("1.50")) == "1.50M"
    assert edn.dumps({1, 2}) in ("#{1 2}", "#{2 1}")
    assert edn.dumps(b"\x01\xff").startswith("#bytes")
    with pytest.raises(TypeError):
        edn.dumps(object())
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        edn.dumps(cyclic)


def test_helpers():
    assert edn.keyword("name").to_edn() == ":name"
    assert edn.keyword("name", "person").to_edn() == ":person/name"
    assert edn.symbol("my-fn").to_edn() == "my-fn"
    assert edn.symbol("assoc", "clojure.core").to_edn() == "clojure.core/assoc"
    assert edn.uuid("550e8400-e29b-41d4-a716-446655440000").to_edn() == \
        '#uuid "550e8400-e29b-41d4-a716-446655440000"'
    assert edn.uuid('#uuid "550e8400-e29b-41d4-a716-446655440000"').value == \
        "550e8400-e29b-41d4-a716-446655440000"
    assert edn.inst("2024-01-01T00:00:00Z").to_edn() == '#inst "2024-01-01T00:00:00Z"'
    assert edn.string(":x").startswith("<STRING>")
    assert edn.dumps({"db/ident": edn.keyword("person/name"), "db/valueType": kw.STRING}) == \
        "{:db/ident :person/name, :db/valueType :db.type/string}"
    assert edn.dumps([edn.symbol("?e"), edn.inst("2024-01-01T00:00:00Z")]) == \
        '[?e #inst "2024-01-01T00:00:00.000-00:00"]'
    assert edn.keyword("a") == edn.keyword("a") and len({edn.keyword("a"), edn.keyword("a")}) == 1
    assert repr(edn.keyword("a")) == "Keyword('a')"


def test_constants():
    assert kw.DB_ID == ":db/id" and kw.DB_IDENT == ":db/ident"
    assert kw.STRING == ":db.type/string" and kw.LONG == ":db.type/long"
    assert kw.ONE == ":db.cardinality/one" and kw.MANY == ":db.cardinality/many"
    assert kw.UNIQUE_IDENTITY == ":db.unique/identity" and kw.UNIQUE_VALUE == ":db.unique/value"
    assert kw.SCHEMA_READ == ":read" and kw.SCHEMA_WRITE == ":write"


def test_loads_gives_result_values():
    assert edn.loads('{:name "Alice" :age 30}') == {":name": "Alice", ":age": 30}
    assert edn.loads("#{:a :b}") == {":a", ":b"}
    assert edn.loads("#{[1 2] [3 4]}") == [[1, 2], [3, 4]]
    assert edn.loads("[a/b \\c nil true 1.5 12345678901234567890N 1.5M]") == [
        "a/b", "c", None, True, 1.5, 12345678901234567890, decimal.Decimal("1.5")]
    assert edn.loads('#inst "2024-01-01T00:00:00.000-00:00"') == \
        datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    assert edn.loads('#uuid "550e8400-e29b-41d4-a716-446655440000"') == \
        uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
    assert edn.loads("{[1 2] :v}") == {(1, 2): ":v"}
    with pytest.raises(DatahikeException) as err:
        edn.loads("{:a")
    assert err.value.code == "edn/syntax"


def test_values_round_trip_through_a_database(mem_config):
    """Every type that a database stores comes back as the Python value it went in as."""
    schema = [
        {"db/ident": ":v/" + name, "db/valueType": ":db.type/" + name, "db/cardinality": kw.ONE}
        for name in ("string", "long", "double", "boolean", "keyword", "symbol", "uuid",
                     "instant", "bigint", "bigdec", "bytes")
    ]
    values = {
        "v/string": "text", "v/long": 7, "v/double": 2.5, "v/boolean": True,
        "v/keyword": ":k", "v/symbol": edn.symbol("s"),
        "v/uuid": uuid.UUID("550e8400-e29b-41d4-a716-446655440000"),
        "v/instant": datetime.datetime(2024, 2, 3, 4, 5, 6, 7000, tzinfo=datetime.timezone.utc),
        "v/bigint": 2 ** 80, "v/bigdec": decimal.Decimal("3.25"), "v/bytes": b"\x00\x01\xfe",
    }
    expected = dict(values, **{"v/symbol": "s"})
    db = Database(mem_config)
    db.create()
    db.transact(schema)
    db.transact([dict(values, **{"db/id": -1})])
    pulled = db.pull("[*]", db.q('[:find ?e . :where [?e :v/string "text"]]'))
    for key, value in expected.items():
        assert pulled[":" + key] == value, key
    db.delete()
