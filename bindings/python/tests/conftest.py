"""Fixtures: fresh databases on the memory and the file backend (in a temporary
directory), with and without a schema."""

import uuid

import pytest

from datahike import Database

SCHEMA = """[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one
             :db/unique :db.unique/identity}
            {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one
             :db/index true}
            {:db/ident :friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
            {:db/ident :tags :db/valueType :db.type/keyword :db/cardinality :db.cardinality/many}]"""


def memory_config(flexible=False):
    extra = " :schema-flexibility :read" if flexible else ""
    return f'{{:store {{:backend :memory :id #uuid "{uuid.uuid4()}"}}{extra}}}'


def file_config(path, flexible=False):
    extra = " :schema-flexibility :read" if flexible else ""
    return f'{{:store {{:backend :file :path "{path}"}}{extra}}}'


@pytest.fixture
def mem_config():
    """A config of a memory database that does not exist yet (schema on write)."""
    return memory_config()


@pytest.fixture
def mem_config_flexible():
    """A config of a memory database that does not exist yet (schema on read)."""
    return memory_config(flexible=True)


@pytest.fixture(params=["memory", "file"])
def backend_config(request, tmp_path):
    """A schema-on-read config on each backend; the database does not exist yet."""
    if request.param == "memory":
        return memory_config(flexible=True)
    return file_config(tmp_path / "db", flexible=True)


@pytest.fixture
def db(backend_config):
    """A created schema-on-read database on each backend, deleted afterwards."""
    database = Database(backend_config)
    database.create()
    yield database
    database.delete()


@pytest.fixture(params=["memory", "file"])
def people(request, tmp_path):
    """A database with SCHEMA and three people on each backend: Alice (30), Bob (25,
    friend of Alice), Carol (35, tags :admin :dev)."""
    config = memory_config() if request.param == "memory" else file_config(tmp_path / "people")
    database = Database(config)
    database.create()
    database.transact(SCHEMA, input_format="edn")
    database.transact('[{:db/id -1 :name "Alice" :age 30} {:name "Bob" :age 25 :friend [-1]}'
                      ' {:name "Carol" :age 35 :tags [:admin :dev]}]', input_format="edn")
    yield database
    database.delete()


def eid(database, name):
    """The entity id of the person called ``name``."""
    return database.q('[:find ?e . :in $ ?n :where [?e :name ?n]]', name)
