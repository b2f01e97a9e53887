"""input_format and output_format: EDN, Datahike's tagged JSON, CBOR."""

import base64
import json

import pytest

import datahike
from datahike import DatahikeException, commit_id, pull, q, transact

from conftest import eid


def test_json_output_conventions(people):
    cfg = people.config
    rows = q('[:find ?n :where [?e :age 25] [?e :name ?n]]', [("db", cfg)], output_format="json")
    assert rows == ["!set", [["Bob"]]]
    assert pull(cfg, "[:name :tags]", eid(people, "Carol"), output_format="json") == {
        "name": "Carol", "tags": [["!kw", "admin"], ["!kw", "dev"]]}
    assert datahike.branches(cfg, output_format="json") == ["!set", [["!kw", "db"]]]
    tag, value = commit_id(cfg, output_format="json")
    assert tag == "!uuid" and len(value) == 36
    assert datahike.database_exists(cfg, output_format="json") is True
    meta = transact(cfg, [{"name": "J"}], output_format="json")
    assert meta["db/txInstant"][0] == "!date"


def test_edn_output(people):
    cfg = people.config
    assert pull(cfg, "[:name :age]", eid(people, "Alice"), output_format="edn") == '{:name "Alice", :age 30}'
    assert datahike.branches(cfg, output_format="edn") == "#{:db}"


def test_cbor_output(people):
    cfg = people.config
    raw = pull(cfg, "[:name :age]", eid(people, "Alice"), output_format="cbor-bytes")
    assert isinstance(raw, bytes)
    cbor2 = pytest.importorskip("cbor2")

    def identifier(*args):
        # cbor2 versions call the hook with different arguments; the tag is among them.
        tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
        return tag.value if tag.tag == 39 else tag

    decoded = cbor2.loads(raw, tag_hook=identifier)
    assert decoded == {":name": "Alice", ":age": 30}
    assert pull(cfg, "[:name]", eid(people, "Alice"), output_format="python") == {":name": "Alice"}


def test_json_input(mem_config_flexible):
    datahike.create_database(mem_config_flexible)
    transact(mem_config_flexible, json.dumps([{"name": "Ada", "kind": ["!kw", "person"]},
                                              ["db/add", -1, "name", "Bea"]]), input_format="json")
    assert sorted(q('[:find [?n ...] :where [?e :name ?n]]', [("db", mem_config_flexible)])) == ["Ada", "Bea"]
    assert q('[:find ?k . :where [?e :kind ?k]]', [("db", mem_config_flexible)]) == ":person"
    assert q('[:find ?e . :in $ ?n :where [?e :name ?n]]',
             [("db", mem_config_flexible), ("json", '"Ada"')]) is not None
    datahike.delete_database(mem_config_flexible)


def test_json_input_read_against_the_schema(mem_config):
    datahike.create_database(mem_config)
    transact(mem_config, json.dumps([
        {"db/ident": "kind", "db/valueType": "db.type/keyword", "db/cardinality": "db.cardinality/one"},
        {"db/ident": "sku", "db/valueType": "db.type/string", "db/cardinality": "db.cardinality/one",
         "db/unique": "db.unique/identity"},
        {"db/ident": "n", "db/valueType": "db.type/long", "db/cardinality": "db.cardinality/one"}]),
        input_format="json")
    transact(mem_config, json.dumps([{"sku": "A", "kind": "fruit", "n": 3}]), input_format="json")
    transact(mem_config, json.dumps([["db/add", ["sku", "A"], "kind", "veg"]]), input_format="json")
    assert pull(mem_config, "[:kind :n]", '[:sku "A"]') == {":kind": ":veg", ":n": 3}
    datahike.delete_database(mem_config)


def test_cbor_input(mem_config_flexible):
    cbor2 = pytest.importorskip("cbor2")
    datahike.create_database(mem_config_flexible)
    payload = cbor2.dumps([{cbor2.CBORTag(39, ":name"): "Cy"}])
    transact(mem_config_flexible, payload, input_format="cbor")
    transact(mem_config_flexible, base64.b64encode(cbor2.dumps([{cbor2.CBORTag(39, ":name"): "Di"}])).decode(),
             input_format="cbor")
    assert sorted(q('[:find [?n ...] :where [?e :name ?n]]', [("db", mem_config_flexible)])) == ["Cy", "Di"]
    rows = q('[:find ?n :in $ ?n]', [("db", mem_config_flexible), ("cbor", cbor2.dumps("Cy"))])
    assert rows == [["Cy"]]
    datahike.delete_database(mem_config_flexible)


def test_bad_formats(people):
    with pytest.raises(DatahikeException) as err:
        q('[:find ?e :where [?e :name]]', [("db", people.config)], output_format="xml")
    assert "output format" in str(err.value)
    with pytest.raises(DatahikeException) as err:
        transact(people.config, "[]", input_format="yaml")
    assert "input format" in str(err.value)
    with pytest.raises(DatahikeException):
        pull(people.config, "[:name]", 1, input_format="yesterday")
    # A failed output format never runs the operation.
    with pytest.raises(DatahikeException):
        transact(people.config, [{"name": "Ghost"}], output_format="xml")
    assert people.q('[:find ?e :where [?e :name "Ghost"]]') == []
