"""The exception every failed operation raises."""

from typing import Any, Dict, Optional


class DatahikeException(Exception):
    """An operation of the database failed.

    Attributes:
        message: the library's message, a sentence naming the input at fault.
        code: Datahike's stable error code, e.g. ``'transact/unique'``,
            ``'edn/syntax'``, ``'query/where'``, ``'argument/invalid'``.
        data: the error's data (Datahike's ``ex-data``) as Python values, e.g.
            ``{':error': ':transact/unique', ':attribute': ':email', ...}``.
    """

    def __init__(self, message: str, code: Optional[str] = None,
                 data: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data if data is not None else {}

    def __repr__(self) -> str:
        return f"DatahikeException({self.message!r}, code={self.code!r})"
