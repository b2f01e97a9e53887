"""Branches and commits: branch!, branches, delete-branch!, force-branch!, merge-db,
commit-id, parent-commit-ids, and the 'branch:NAME' / 'commit:UUID' inputs."""

import uuid

import pytest

from datahike import (
    Database,
    DatahikeException,
    branch,
    branches,
    commit_id,
    create_database,
    delete_branch,
    delete_database,
    force_branch,
    merge_db,
    parent_commit_ids,
    q,
    transact,
)

SKU = ('[{:db/ident :widget/sku :db/valueType :db.type/string :db/cardinality :db.cardinality/one'
       ' :db/unique :db.unique/identity}]')
SKUS = '[:find ?s :where [?e :widget/sku ?s]]'


@pytest.fixture(params=["memory", "file"])
def cfg(request, tmp_path):
    if request.param == "memory":
        config = '{:store {:backend :memory :id #uuid "' + str(uuid.uuid4()) + '"}}'
    else:
        config = '{:store {:backend :file :path "' + str(tmp_path / "v") + '"}}'
    create_database(config)
    transact(config, SKU, input_format="edn")
    transact(config, '[{:widget/sku "A"}]', input_format="edn")
    yield config
    delete_database(config)


def skus(result):
    return {row[0] for row in result}


def test_branch_lifecycle(cfg):
    assert branches(cfg) == {":db"}
    assert branch(cfg, "db", "feature") is None
    assert branches(cfg) == {":db", ":feature"}
    branch(cfg, ":db", ":other")
    assert ":other" in branches(cfg)
    delete_branch(cfg, "feature")
    delete_branch(cfg, ":other")
    assert branches(cfg) == {":db"}


def test_branch_from_commit(cfg):
    cid = commit_id(cfg)
    assert isinstance(cid, uuid.UUID)
    json_cid = commit_id(cfg, output_format="json")
    assert json_cid == ["!uuid", str(cid)]
    branch(cfg, str(cid), "snapshot")
    branch(cfg, cid, "snapshot2")
    assert {":snapshot", ":snapshot2"} <= branches(cfg)


def test_branch_and_commit_inputs(cfg):
    branch(cfg, "db", "feature")
    transact(("branch:feature", cfg), '[{:widget/sku "B"}]', input_format="edn")
    feature_cfg = cfg[:-1] + " :branch :feature}"
    transact(feature_cfg, [{"widget/sku": "C"}])
    assert skus(q(SKUS, [("branch:feature", cfg)])) == {"A", "B", "C"}
    assert skus(q(SKUS, [("db", cfg)])) == {"A"}
    before = commit_id(cfg)
    transact(cfg, '[{:widget/sku "D"}]', input_format="edn")
    assert skus(q(SKUS, [("commit:" + str(before), cfg)])) == {"A"}
    assert skus(q(SKUS, [("db", cfg)])) == {"A", "D"}
    db = Database(cfg)
    assert skus(db.branch_as_db("feature").q(SKUS)) == {"A", "B", "C"}
    assert skus(db.commit_as_db(before).q(SKUS)) == {"A"}
    assert db.commit_as_db(before).commit_id() == before
    with pytest.raises(DatahikeException):
        q(SKUS, [("commit:" + str(uuid.uuid4()), cfg)])


def test_merge_records_both_parents(cfg):
    branch(cfg, "db", "feature")
    transact(("branch:feature", cfg), '[{:widget/sku "B"}]', input_format="edn")
    merged = merge_db(cfg, ["feature"], '[{:widget/sku "B"}]', input_format="edn")
    assert isinstance(merged, uuid.UUID)
    assert merged == commit_id(cfg)
    assert skus(q(SKUS, [("db", cfg)])) == {"A", "B"}
    parents = parent_commit_ids(cfg)
    assert len(parents) == 2
    json_parents = parent_commit_ids(cfg, output_format="json")
    assert json_parents[0] == "!set" and len(json_parents[1]) == 2


def test_merge_report_and_python_data(cfg):
    branch(cfg, "db", "feature")
    report = merge_db(cfg, {"feature"}, [{"widget/sku": "M"}], report=True)
    assert ":tx-data" in report
    db = Database(cfg)
    assert db.merge_db(["feature"], [{"widget/sku": "N"}]) == db.commit_id()


def test_force_branch(cfg):
    branch(cfg, "db", "feature")
    old = commit_id(cfg)
    transact(cfg, '[{:widget/sku "Z"}]', input_format="edn")
    force_branch(("commit:" + str(old), cfg), "feature", ["db"])
    assert skus(q(SKUS, [("branch:feature", cfg)])) == {"A"}


def test_delete_releases_every_branch(tmp_path):
    from datahike import _native, release_connections

    cfg = '{:store {:backend :file :path "' + str(tmp_path / "del") + '"}}'
    create_database(cfg)
    transact(cfg, SKU, input_format="edn")
    branch(cfg, "db", "feature")
    transact(("branch:feature", cfg), '[{:widget/sku "F"}]', input_format="edn")
    before = _native.open_connections()
    delete_database(cfg)
    assert _native.open_connections() == before - 2
    create_database(cfg)
    assert branches(cfg) == {":db"}
    with pytest.raises(DatahikeException):
        q(SKUS, [("branch:feature", cfg)])
    delete_database(cfg)
    release_connections()
