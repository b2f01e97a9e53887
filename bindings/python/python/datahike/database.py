"""The high-level API: ``Database``, ``DatabaseSnapshot`` and ``database(...)``.

A ``Database`` is a config (an EDN string, a dict, or keyword arguments for the store) and
the operations on it as methods: ``create``, ``delete``, ``exists``, ``transact``, ``q``,
``pull``, ``pull_many``, ``entity``, ``datoms``, ``schema``... Time travel gives a
``DatabaseSnapshot``, a read-only view that every read accepts::

    db = Database.memory(str(uuid.uuid4())); db.create()
    db.transact([{"name": "Alice", "age": 30}])
    db.q('[:find ?n :where [?e :name ?n]]')          # [['Alice']]
    db.as_of(t).q('[:find ?n :where [?e :name ?n]]')

Besides the methods written here, every operation of ``datahike.generated`` whose first
argument is a database is a method of ``Database`` (and, for reads, of
``DatabaseSnapshot``), made at import: an operation the library adds is a method too.
"""

import datetime as _datetime
import inspect
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from . import _native
from . import generated as _gen
from .edn import EDNType  # noqa: F401  (Datahike's binding defines it here)

InputFormat = str
OutputFormat = str


# ---------------------------------------------------------------------------
# Conversion helpers (Datahike's binding exposes these; they print EDN text)
# ---------------------------------------------------------------------------

def _key_to_keyword(key: str) -> str:
    """The EDN keyword of a dict key: ``"name"`` is ``:name``, ``":db/id"`` ``:db/id``."""
    return key if key.startswith(":") else f":{key}"


def _value_to_edn(value: Any) -> str:
    """The EDN text of a Python value by the conversion rule, printed as Datahike's binding
    prints it (no commas between map entries)."""
    if isinstance(value, dict):
        return _dict_to_edn(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_value_to_edn(x) for x in value) + "]"
    return _native.to_edn(value)


def _dict_to_edn(value: Dict[Any, Any]) -> str:
    """The EDN text of a dict: keys keywordized, values by the rule."""
    entries = (
        f"{_key_to_keyword(k) if isinstance(k, str) else _native.to_edn(k)} {_value_to_edn(v)}"
        for k, v in value.items()
    )
    return "{" + " ".join(entries) + "}"


def _python_to_edn(value: Any) -> str:
    """The EDN text of a Python value by the conversion rule."""
    return _value_to_edn(value)


def _unwrap_set(result: Any) -> Any:
    """A JSON query result without its ``['!set', [...]]`` wrapper."""
    if isinstance(result, list) and len(result) == 2 and result[0] == "!set":
        return result[1]
    return result


def _time_ms(point: Union[int, float, str, _datetime.datetime]) -> str:
    """A point in time as the text of an input format: epoch milliseconds (a ``datetime``
    is converted, a naive one read as UTC) or RFC 3339 text as given."""
    if isinstance(point, _datetime.datetime):
        if point.tzinfo is None:
            point = point.replace(tzinfo=_datetime.timezone.utc)
        epoch = _datetime.datetime(1970, 1, 1, tzinfo=_datetime.timezone.utc)
        return str((point - epoch) // _datetime.timedelta(milliseconds=1))
    if isinstance(point, float):
        return str(int(point))
    return str(point)


#: Config keys whose EDN name ends in ``?``.
_FLAGS = {"keep_history": "keep-history?", "attribute_refs": "attribute-refs?"}


def _options(options: Dict[str, Any]) -> Dict[str, Any]:
    """Config keys in Python spelling (``schema_flexibility='read'``) as EDN keys."""
    out = {}
    for key, value in options.items():
        name = _FLAGS.get(key, key.replace("_", "-"))
        if name == "schema-flexibility" and isinstance(value, str) and not value.startswith(":"):
            value = ":" + value
        out[name] = value
    return out


def _query_input(value: Any) -> Any:
    """An extra argument of ``q``: a database as its input tuple; anything else as it is."""
    convert = getattr(value, "_datahike_input", None)
    return convert() if convert is not None else value


# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

class Database:
    """A database named by its config.

    Args:
        config: an EDN string (kept as given), or a dict converted by the EDN rules
            (``{"store": {"backend": ":memory", "id": "..."}, "schema-flexibility": ":read"}``).
        **kwargs: the store config alone: ``Database(backend=':memory', id='...')``.
    """

    def __init__(self, config: Union[str, Dict[str, Any], None] = None, **kwargs: Any):
        if isinstance(config, str):
            self._config = config
        elif isinstance(config, dict):
            self._config = _native.to_edn(config)
        elif kwargs:
            self._config = _native.to_edn({"store": kwargs})
        else:
            raise ValueError("Must provide config as dict, EDN string, or keyword arguments")

    @property
    def config(self) -> str:
        """The config as an EDN string (what the module-level functions take)."""
        return self._config

    @staticmethod
    def memory(id: str, **options: Any) -> "Database":
        """An in-memory database named ``id`` (Datahike wants a uuid string here).

        ``options`` are more config keys in Python spelling:
        ``Database.memory(id, schema_flexibility=':read', keep_history=False)``.
        """
        return Database(dict({"store": {"backend": ":memory", "id": id}}, **_options(options)))

    @staticmethod
    def file(path: Any, **options: Any) -> "Database":
        """A database in the directory ``path``; ``options`` as for ``memory``."""
        return Database(dict({"store": {"backend": ":file", "path": str(path)}}, **_options(options)))

    def _datahike_argument(self) -> str:
        return self._config

    def _datahike_input(self) -> Tuple[str, str]:
        return ("db", self._config)

    # Lifecycle

    def create(self) -> None:
        """Creates the database."""
        _gen.create_database(self._config)

    def delete(self) -> None:
        """Deletes the database (and releases this process's connection to it)."""
        _gen.delete_database(self._config)

    def exists(self) -> bool:
        """Whether the database exists."""
        return _gen.database_exists(self._config)

    def release(self) -> None:
        """Releases this process's connection to the database; the next call reopens it."""
        _native.release(self._config)

    # Reads

    def q(self, query: Any, *args: Any, inputs: Optional[List[Any]] = None,
          output_format: OutputFormat = "cbor", unwrap: bool = True) -> Any:
        """Runs a Datalog query with this database as its first input (``$``).

        Args:
            query: the query, EDN text (or Python data).
            *args: more inputs, in the order of ``:in``: other databases or snapshots,
                input tuples (``('edn', '"Alice"')``, ``('json', ...)``), or values
                (``'Alice'``, ``30``, ``':kw'``; ``'"Alice"'`` is read as EDN).
            inputs: the whole input list instead (this database not included).
            output_format: 'cbor' (Python values), 'json', 'edn' or 'cbor-bytes'.
            unwrap: drop JSON's ``['!set', ...]`` wrapper around a set result.
        """
        if inputs is None:
            inputs = [self._datahike_input()] + [_query_input(a) for a in args]
        result = _gen.q(query, inputs, output_format=output_format)
        return _unwrap_set(result) if unwrap else result

    # Time travel and branches

    def as_of(self, timestamp_ms: Union[int, str, _datetime.datetime]) -> "DatabaseSnapshot":
        """The database as it was at a point in time (epoch ms, a ``datetime``, RFC 3339
        text), included."""
        return DatabaseSnapshot(self._config, f"asof:{_time_ms(timestamp_ms)}")

    def since(self, timestamp_ms: Union[int, str, _datetime.datetime]) -> "DatabaseSnapshot":
        """The facts added after a point in time, excluded."""
        return DatabaseSnapshot(self._config, f"since:{_time_ms(timestamp_ms)}")

    @property
    def history(self) -> "DatabaseSnapshot":
        """Every assertion and retraction ever made."""
        return DatabaseSnapshot(self._config, "history")

    def branch_as_db(self, name: str) -> "DatabaseSnapshot":
        """The database at the head of branch ``name``."""
        return DatabaseSnapshot(self._config, f"branch:{name.lstrip(':')}")

    def commit_as_db(self, commit_uuid: Any) -> "DatabaseSnapshot":
        """The database at commit ``commit_uuid``."""
        return DatabaseSnapshot(self._config, f"commit:{commit_uuid}")

    # Context manager: create on entry, delete on exit

    def __enter__(self) -> "Database":
        self.create()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            self.delete()
        except Exception:
            pass
        return False

    def __repr__(self) -> str:
        return f"Database({self._config})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Database) and other._config == self._config

    def __hash__(self) -> int:
        return hash(self._config)


# ---------------------------------------------------------------------------
# DatabaseSnapshot
# ---------------------------------------------------------------------------

class DatabaseSnapshot:
    """A read-only view of a database: ``input_format`` is ``'history'``,
    ``'asof:MS'``, ``'since:MS'``, ``'branch:NAME'`` or ``'commit:UUID'``."""

    def __init__(self, config: str, input_format: str):
        self._config = config
        self._input_format = input_format

    @property
    def config(self) -> str:
        """The config of the database viewed."""
        return self._config

    @property
    def input_format(self) -> str:
        """The view."""
        return self._input_format

    def _datahike_argument(self) -> Tuple[str, str]:
        return (self._input_format, self._config)

    def _datahike_input(self) -> Tuple[str, str]:
        return (self._input_format, self._config)

    def q(self, query: Any, *args: Any, output_format: OutputFormat = "cbor",
          unwrap: bool = True) -> Any:
        """Runs a Datalog query with this view as its first input; see ``Database.q``."""
        inputs = [self._datahike_input()] + [_query_input(a) for a in args]
        result = _gen.q(query, inputs, output_format=output_format)
        return _unwrap_set(result) if unwrap else result

    def pull(self, pattern: Any, eid: Any, output_format: OutputFormat = "cbor") -> Any:
        """Pulls an entity from this view."""
        return _gen.pull(self._datahike_argument(), pattern, eid, output_format=output_format)

    def __repr__(self) -> str:
        return f"DatabaseSnapshot({self._input_format}, {self._config})"


# ---------------------------------------------------------------------------
# Methods from the API description
# ---------------------------------------------------------------------------

def _method(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with its first argument (the database) bound to ``self``."""
    signature = inspect.signature(function)
    params = list(signature.parameters.values())

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return function(self._datahike_argument(), *args, **kwargs)

    method.__name__ = function.__name__
    method.__qualname__ = function.__name__
    method.__doc__ = function.__doc__
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params[1:])
    return method


def _add_methods() -> None:
    for op in _gen.OPERATIONS:
        name = op["python_name"]
        if op["excluded"] or name not in _gen.FUNCTIONS:
            continue
        first = {a[0]["kind"] for a in op["arities"] if a}
        if first & {"Db", "Conn"} and name not in Database.__dict__:
            setattr(Database, name, _method(_gen.FUNCTIONS[name]))
        if first == {"Db"} and name not in DatabaseSnapshot.__dict__:
            setattr(DatabaseSnapshot, name, _method(_gen.FUNCTIONS[name]))


_add_methods()


@contextmanager
def database(config: Union[str, Dict[str, Any], None] = None, **kwargs: Any) -> Iterator[Database]:
    """A database created on entry and deleted on exit::

        with database(backend=':memory', id=str(uuid.uuid4())) as db:
            db.transact([{"name": "Alice"}])
    """
    if not config and not kwargs:
        raise ValueError("Must provide config")
    db = Database(config, **kwargs)
    db.create()
    try:
        yield db
    finally:
        try:
            db.delete()
        except Exception:
            pass
