"""EDN helpers: explicit EDN types, keyword constants, and conversion both ways.

Python values become EDN by Datahike's rule for bindings: *keys are always keywordized;
values starting with ``:`` become keywords, everything else remains literal*::

    {"name": "Alice", "status": ":active"}   ->  {:name "Alice" :status :active}

``"\\\\:text"`` and ``string(":text")`` stay strings; ``keyword``, ``symbol``, ``uuid`` and
``inst`` build values the rule cannot express. ``uuid.UUID``, ``datetime``,
``decimal.Decimal``, ``bytes`` and sets convert to their EDN counterparts.

Results come back as Python values: keywords as ``':name'`` strings, instants as
``datetime`` in UTC, uuids as ``uuid.UUID``, sets as ``set`` (a set of tuples, such as a
query's relation, as a list of lists).

>>> from datahike import edn
>>> edn.dumps({"name": "Alice", "tags": [":a", ":b"]})
'{:name "Alice", :tags [:a :b]}'
>>> edn.loads('{:name "Alice" :age 30}')
{':name': 'Alice', ':age': 30}
"""

import datetime as _datetime
import uuid as _uuid
from typing import Any, Optional, Union

from . import _native

#: The marker ``string()`` puts before text that must stay a string.
STRING_MARKER: str = _native.STRING_MARKER


class EDNType:
    """An explicit EDN value: ``to_edn()`` gives its EDN text."""

    value: Any

    def __init__(self, value: Any):
        self.value = value

    def to_edn(self) -> str:
        """The EDN text of this value."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_edn()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.value == other.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))


def _qualified(name: str, namespace: Optional[str]) -> str:
    return f"{namespace}/{name}" if namespace else name


class Keyword(EDNType):
    """An EDN keyword: ``Keyword("name", "person")`` is ``:person/name``."""

    def __init__(self, name: str, namespace: Optional[str] = None):
        super().__init__(_qualified(name.lstrip(":") if namespace is None else name, namespace))

    def to_edn(self) -> str:
        return f":{self.value}"

    def __repr__(self) -> str:
        return f"Keyword('{self.value}')"


class Symbol(EDNType):
    """An EDN symbol: ``Symbol("assoc", "clojure.core")`` is ``clojure.core/assoc``."""

    def __init__(self, name: str, namespace: Optional[str] = None):
        super().__init__(_qualified(name, namespace))

    def to_edn(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Symbol('{self.value}')"


def _untag(value: str, tag: str) -> str:
    if value.startswith(tag):
        value = value[len(tag):].strip().strip('"')
    return value


class UUID(EDNType):
    """An EDN uuid, from text (with or without ``#uuid``) or a ``uuid.UUID``."""

    def __init__(self, value: Union[str, _uuid.UUID]):
        super().__init__(_untag(str(value), "#uuid"))

    def to_edn(self) -> str:
        return f'#uuid "{self.value}"'

    def __repr__(self) -> str:
        return f"UUID('{self.value}')"


class Inst(EDNType):
    """An EDN instant, from RFC 3339 text (with or without ``#inst``) or a ``datetime``."""

    def __init__(self, value: Union[str, _datetime.datetime]):
        if isinstance(value, _datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_datetime.timezone.utc)
            value = value.isoformat()
        super().__init__(_untag(value, "#inst"))

    def to_edn(self) -> str:
        return f'#inst "{self.value}"'

    def __repr__(self) -> str:
        return f"Inst('{self.value}')"


def keyword(name: str, namespace: Optional[str] = None) -> Keyword:
    """An EDN keyword: ``keyword("name", "person")`` is ``:person/name``."""
    return Keyword(name, namespace)


def symbol(name: str, namespace: Optional[str] = None) -> Symbol:
    """An EDN symbol."""
    return Symbol(name, namespace)


def uuid(value: Union[str, _uuid.UUID]) -> UUID:
    """An EDN uuid."""
    return UUID(value)


def inst(value: Union[str, _datetime.datetime]) -> Inst:
    """An EDN instant."""
    return Inst(value)


def string(value: str) -> str:
    """Text that stays a string even when it starts with ``:``."""
    return f"{STRING_MARKER}{value}"


def dumps(value: Any, mode: str = "value") -> str:
    """The EDN text of a Python value by the conversion rule (``mode='pattern'``: strings
    name attributes; ``mode='query'``: ``'?x'`` strings are symbols)."""
    return _native.to_edn(value, mode)


def loads(text: str) -> Any:
    """The Python value of EDN text, as results come back."""
    return _native.from_edn(text)


class Keywords:
    """Datahike's common keywords, as the ``':name'`` strings the conversion reads as
    keywords."""

    DB_ID = ":db/id"
    DB_IDENT = ":db/ident"
    DB_VALUE_TYPE = ":db/valueType"
    DB_CARDINALITY = ":db/cardinality"
    DB_DOC = ":db/doc"
    DB_UNIQUE = ":db/unique"
    DB_IS_COMPONENT = ":db/isComponent"
    DB_NO_HISTORY = ":db/noHistory"
    DB_INDEX = ":db/index"
    DB_FULLTEXT = ":db/fulltext"
    DB_TUPLE_ATTRS = ":db/tupleAttrs"

    STRING = ":db.type/string"
    BOOLEAN = ":db.type/boolean"
    LONG = ":db.type/long"
    BIGINT = ":db.type/bigint"
    FLOAT = ":db.type/float"
    DOUBLE = ":db.type/double"
    BIGDEC = ":db.type/bigdec"
    INSTANT = ":db.type/instant"
    UUID_TYPE = ":db.type/uuid"
    KEYWORD_TYPE = ":db.type/keyword"
    SYMBOL_TYPE = ":db.type/symbol"
    REF = ":db.type/ref"
    BYTES = ":db.type/bytes"
    TUPLE = ":db.type/tuple"

    ONE = ":db.cardinality/one"
    MANY = ":db.cardinality/many"

    UNIQUE_VALUE = ":db.unique/value"
    UNIQUE_IDENTITY = ":db.unique/identity"

    TX = ":db/tx"
    TX_INSTANT = ":db/txInstant"

    SCHEMA_READ = ":read"
    SCHEMA_WRITE = ":write"


#: The keyword constants: ``kw.DB_IDENT``, ``kw.STRING``, ``kw.ONE``...
kw = Keywords()

__all__ = [
    "EDNType", "Keyword", "Symbol", "UUID", "Inst",
    "keyword", "symbol", "uuid", "inst", "string", "dumps", "loads",
    "Keywords", "kw", "STRING_MARKER",
]
