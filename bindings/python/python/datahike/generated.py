"""The module-level functions, one per operation of the library's API description.

Nothing here names an operation: at import, this module asks the native module for
the operations (``datahike._native.ops()``, the library's ``datahike::api::OPS``) and
makes one function for each that the binding offers, with its parameters, defaults and
docstring. An operation added to the library is a function here without a line of Python.

The conventions are Datahike's Python binding's:

- configs are EDN strings (or dicts, converted by ``datahike.edn``'s rules);
- a database argument is a config with ``input_format`` naming the view (``'db'``,
  ``'history'``, ``'asof:MS'``, ``'since:MS'``, ``'branch:NAME'``, ``'commit:UUID'``), or
  an input tuple such as ``('history', cfg)``; query ``inputs`` are a list of such tuples,
  ``('edn', text)`` (alias ``'param'``), ``('json', text)``, ``('cbor', bytes)`` or Python
  values;
- transaction data is text in ``input_format`` (``'json'``, read against the schema as
  Datahike reads JSON, ``'edn'`` or ``'cbor'``; without one, JSON when it parses, else EDN)
  or Python values;
- ``output_format`` is ``'cbor'`` (the default: Python values, keywords as ``':name'``
  strings), ``'json'`` (Datahike's tagged JSON, parsed: ``['!kw', 'db']``,
  ``['!set', [...]]``), ``'edn'`` (text) or ``'cbor-bytes'`` (the CBOR itself).
"""

import inspect
from typing import Any, Callable, Dict, List

from . import _native

__all__: List[str] = []

#: The operations as the native module describes them.
OPERATIONS: List[Dict[str, Any]] = _native.ops()

#: The operations the binding offers no function for, and why.
EXCLUDED: Dict[str, str] = {
    op["python_name"]: op["excluded"] for op in OPERATIONS if op["excluded"]
}

_P = inspect.Parameter
_TX_KINDS = ("TxData", "TxVector", "Entities")


def _as_argument(value: Any) -> Any:
    """A ``Database`` as its config, a ``DatabaseSnapshot`` as its input tuple."""
    convert = getattr(value, "_datahike_argument", None)
    return convert() if convert is not None else value


def _as_input(value: Any) -> Any:
    """A ``Database`` or ``DatabaseSnapshot`` as a query input tuple."""
    convert = getattr(value, "_datahike_input", None)
    return convert() if convert is not None else value


def _rest(value: Any) -> Any:
    """A rest argument (query inputs, index components): a list, or one item."""
    one_input = isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
    if isinstance(value, list) or (isinstance(value, tuple) and not one_input):
        return [_as_input(x) for x in value]
    return _as_input(value)


def _longest(op: Dict[str, Any]) -> List[Dict[str, Any]]:
    return max(op["arities"], key=len)


def _required(op: Dict[str, Any]) -> int:
    return min(len(a) - (1 if a and a[-1]["rest"] else 0) for a in op["arities"])


def _docstring(op: Dict[str, Any], slots: List[Dict[str, Any]],
               input_format: bool, report: bool) -> str:
    lines = [op["doc"], "", f"Datahike: ``{op['api']}``.", "", "Args:"]
    for slot in slots:
        doc = slot["doc"]
        if slot["rest"]:
            doc = f"a list, each {doc}"
        lines.append(f"    {slot['name']}: {doc}")
    if input_format:
        if any(s["kind"] in _TX_KINDS for s in slots):
            lines.append("    input_format: the format of transaction data text: 'json', "
                         "'edn' or 'cbor' (default: JSON when it parses, else EDN)")
        else:
            lines.append("    input_format: the view of the database: 'db', 'history', "
                         "'asof:MS', 'since:MS', 'branch:NAME' or 'commit:UUID'")
    lines.append("    output_format: 'cbor' (Python values), 'json', 'edn' or 'cbor-bytes'")
    if report:
        lines.append("    report: return the whole transaction report, not Datahike's "
                     "binding result")
    lines += ["", "Returns:", f"    {op['returns']}"]
    return "\n".join(lines)


def make_function(op: Dict[str, Any]) -> Callable[..., Any]:
    """The Python function of one operation described by ``_native.ops()``."""
    slots = _longest(op)
    required = _required(op)
    takes_tx = any(s["kind"] in _TX_KINDS for a in op["arities"] for s in a)
    input_format = op["takes_input_format"]
    report = op["returns_kind"] == "TxReport"
    params = [
        _P(s["name"], _P.POSITIONAL_OR_KEYWORD, default=_P.empty if i < required else None)
        for i, s in enumerate(slots)
    ]
    if input_format:
        params.append(_P("input_format", _P.POSITIONAL_OR_KEYWORD,
                         default=None if takes_tx else "db"))
    params.append(_P("output_format", _P.POSITIONAL_OR_KEYWORD, default="cbor"))
    if report:
        params.append(_P("report", _P.KEYWORD_ONLY, default=False))
    signature = inspect.Signature(params)
    names = [s["name"] for s in slots]
    rest = [s["rest"] for s in slots]
    name = op["python_name"]

    default_input = None if takes_tx else ("db" if input_format else None)

    def function(*args: Any, **kwargs: Any) -> Any:
        if not kwargs and required <= len(args) <= len(names):
            # The common call, positional operation arguments only: no binding needed.
            values = list(args)
            fmt, output, full = default_input, "cbor", False
        else:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = [bound.arguments[n] for n in names]
            fmt = bound.arguments.get("input_format")
            output = bound.arguments["output_format"]
            full = bound.arguments.get("report", False)
        while len(values) > required and values[-1] is None:
            values.pop()
        values = [_rest(v) if is_rest else _as_argument(v) for v, is_rest in zip(values, rest)]
        return _native.call(name, values, fmt, output, full)

    function.__name__ = name
    function.__qualname__ = name
    function.__module__ = __name__
    function.__doc__ = _docstring(op, slots, input_format, report)
    function.__signature__ = signature  # type: ignore[attr-defined]
    function.datahike_operation = op  # type: ignore[attr-defined]
    return function


#: The functions by Python name.
FUNCTIONS: Dict[str, Callable[..., Any]] = {}

for _op in OPERATIONS:
    if _op["excluded"] is None:
        _fn = make_function(_op)
        FUNCTIONS[_op["python_name"]] = _fn
        globals()[_op["python_name"]] = _fn
        __all__.append(_op["python_name"])
del _op, _fn
