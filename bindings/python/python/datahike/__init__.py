"""Datahike for Python: a durable Datalog database, native (datahike-rs), no JVM.

The API of Datahike's Python binding:

>>> import uuid
>>> from datahike import Database
>>> db = Database.memory(str(uuid.uuid4())); db.create()
>>> db.transact([{"name": "Alice", "age": 30}, {"name": "Bob", "age": 25}])
>>> db.q('[:find ?n ?a :where [?e :name ?n] [?e :age ?a]]')
[['Alice', 30], ['Bob', 25]]
>>> db.pull('[:name :age]', 1)
{':name': 'Alice', ':age': 30}
>>> db.delete()

The module-level functions (``create_database``, ``transact``, ``q``, ``pull``,
``datoms``, ``branches``, ``merge_db``...) are made at import from the library's API
description; see ``datahike.generated``. ``Database``, ``DatabaseSnapshot`` and the
``database(...)`` context manager are the high-level API; ``datahike.edn`` converts
between Python values and EDN. Every failure raises ``DatahikeException`` with the
library's error code and data.

The process holds one connection per database, shared by all threads; operations release
the GIL while they run. ``release_connections()`` (run at exit) releases them all.
"""

import atexit as _atexit

from . import _native
from ._errors import DatahikeException
from . import generated
from .generated import *  # noqa: F401,F403  (the functions, one per operation)
from .database import Database, DatabaseSnapshot, database
from . import edn
from .edn import (
    Keyword,
    Symbol,
    UUID,
    Inst,
    keyword,
    symbol,
    uuid,
    inst,
    string,
    Keywords,
    kw,
)

try:
    from importlib.metadata import version as _version

    __version__ = _version("datahike")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0.1.0"

# Datahike's binding imports the exception from its native module.
_native.DatahikeException = DatahikeException  # type: ignore[attr-defined]


def release_connections() -> None:
    """Releases every connection this process holds; calls reopen them as needed."""
    _native.release_all()


def _release_at_exit() -> None:
    # A connection to a database deleted meanwhile (say, one of its branches) fails to
    # release; at exit there is nobody left to tell.
    try:
        _native.release_all()
    except DatahikeException:
        pass


_atexit.register(_release_at_exit)

__all__ = [
    "__version__",
    "DatahikeException",
    "Database",
    "DatabaseSnapshot",
    "database",
    "edn",
    "Keyword",
    "Symbol",
    "UUID",
    "Inst",
    "keyword",
    "symbol",
    "uuid",
    "inst",
    "string",
    "Keywords",
    "kw",
    "release_connections",
    "generated",
] + list(generated.__all__)
