"""Block-parameter references: `$name` and `$(expression)`, evaluated without `eval`.

The grammar is numbers, parameter names, `+ - * / // %`, unary minus, parentheses,
comparisons (`== != < <= > >=`), `and`/`or`/`not`, the functions `min max round floor
ceil`, and a block input's shape: `in.channels`, `in.features`, `in.rank`, `in.shape[i]`
(`in` is the block's first input; a block with several inputs also names each:
`skip.channels`). Python's parser builds the tree; this module walks only those node
types and refuses everything else, so no other attribute, call or subscript can ever run.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

MAX_EXPRESSION_LENGTH = 200
# Every number an expression reads or makes stays within what a float holds exactly, so no
# product of parameters can overflow into inf, a huge int or an OverflowError later on.
MAX_MAGNITUDE = 2**53

_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_SHAPE_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
# `$name` written inside `$( ... )` means the parameter, as it does outside
_INNER_DOLLAR = re.compile(r"\$(?=[A-Za-z_])")
# `in` is a Python keyword: `in.channels` is read as this name's attributes
_IN = re.compile(r"(?<![A-Za-z0-9_.])in(?![A-Za-z0-9_])")
IN_NAME = "in"
_IN_IDENTIFIER = "in__"
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int | None]] = {  # name → (function, arity)
    "min": (min, None), "max": (max, None), "round": (round, 1), "floor": (math.floor, 1),
    "ceil": (math.ceil, 1),
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


class ExpressionError(ValueError):
    """A `$...` reference that cannot be evaluated; the message says why."""


class TensorShape:
    """A block input's per-sample shape, as `$in.channels` and `$in.shape[1]` read it.

    `lookup` is asked only when an expression reads the shape: working it out means
    inferring the shapes of the layers before the block (which imports torch).
    """

    ATTRIBUTES = ("channels", "features", "rank", "shape")

    def __init__(self, name: str, lookup: Callable[[], tuple[int, ...] | None]):
        self.name, self._lookup = name, lookup

    def attribute(self, attribute: str) -> Any:
        """`channels` (the first per-sample axis), `features` (the last), `rank` or `shape`."""
        if attribute not in self.ATTRIBUTES:
            raise ExpressionError(f"{self.name}.{attribute} is not known: a block input has "
                                  f"{', '.join(self.ATTRIBUTES)}")
        shape = self._lookup()
        if shape is None:
            raise ExpressionError(f"the shape of {self.name} is unknown here (a layer before "
                                  "it has a problem, reported on its own line)")
        if attribute == "rank":
            return len(shape)
        if attribute == "shape":
            return list(shape)
        if not shape:
            raise ExpressionError(f"{self.name} is a scalar per sample: it has no {attribute}")
        return shape[0] if attribute == "channels" else shape[-1]


def is_reference(value: Any) -> bool:
    """True for strings of the form `$name` or `$(...)`."""
    return isinstance(value, str) and value.startswith("$")


def evaluate(text: str, params: Mapping[str, Any]) -> Any:
    """Evaluate `$name` or `$(expr)` against block parameters.

    Example:
        >>> evaluate("$(channels * 4)", {"channels": 16})
        64
    """
    match = _NAME.match(text)
    if match:
        return _lookup(match.group(1), params)
    match = _SHAPE_REFERENCE.match(text)
    if match:
        return _shape_of(match.group(1), params).attribute(match.group(2))
    if text.startswith("$(") and text.count("(") > text.count(")"):
        raise ExpressionError(
            f"{text!r} is cut short: inside {{ }} or [ ], YAML ends a value at a comma, so "
            f"`$(max(a, b))` arrives in two pieces; quote the expression: \"$(max(a, b))\"")
    if not (text.startswith("$(") and text.endswith(")")):
        raise ExpressionError(
            f"{text!r} is not a parameter reference; write $name or $(expression)")
    source = text[2:-1]
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    parsed = _IN.sub(_IN_IDENTIFIER, _INNER_DOLLAR.sub("", source)).strip()
    try:
        tree = ast.parse(parsed, mode="eval")
    except SyntaxError:
        raise ExpressionError(f"cannot parse expression {source!r}") from None
    return _normalise(_walk(tree.body, params))


def _lookup(name: str, params: Mapping[str, Any]) -> Any:
    if name == _IN_IDENTIFIER:
        name = IN_NAME
    if name not in params:
        known = ", ".join(sorted(params)) or "none"
        raise ExpressionError(f"unknown parameter ${name} (parameters here: {known})")
    return params[name]


def _shape_of(name: str, params: Mapping[str, Any]) -> TensorShape:
    value = _lookup(name, params)
    if not isinstance(value, TensorShape):
        raise ExpressionError(f"{name} is a parameter ({_show(value)}), not a block input: "
                              "only inputs have a shape")
    return value


def _walk(node: ast.AST, params: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return _bounded(node.value, "a number in the expression")
    if isinstance(node, ast.Name):
        value = _lookup(node.id, params)
        if isinstance(value, TensorShape):
            raise ExpressionError(f"{value.name} is a block input: read its size as "
                                  f"{value.name}.channels or {value.name}.shape[1]")
        if type(value) not in (int, float, bool):
            raise ExpressionError(f"parameter {node.id} is {_show(value)}, not a number")
        return value if type(value) is bool else _bounded(value, f"parameter {node.id}")
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return _shape_of(node.value.id, params).attribute(node.attr)
    if isinstance(node, ast.Subscript):
        return _subscript(node, params)
    if isinstance(node, ast.Call):
        return _call(node, params)
    if isinstance(node, ast.Compare):
        return _compare(node, params)
    if isinstance(node, ast.BoolOp):
        values = [_truth(_walk(v, params), v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _truth(_walk(node.operand, params), node.operand)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(_walk(node.operand, params), node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _number(_walk(node.left, params), node.left)
        right = _number(_walk(node.right, params), node.right)
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExpressionError(f"division by zero in {ast.unparse(node)!r}") from None
        except OverflowError:  # unreachable while operands are bounded; kept as a guard
            raise ExpressionError(f"{ast.unparse(node)!r} overflows") from None
        return _bounded(result, repr(ast.unparse(node)[:60]))
    raise ExpressionError(
        f"{_text(node)!r} is not allowed: expressions may use numbers, parameter names, "
        "+ - * / // %, comparisons, and/or/not, min max round floor ceil, in.channels "
        "and parentheses")


def _text(node: ast.AST) -> str:
    return ast.unparse(node).replace(_IN_IDENTIFIER, IN_NAME)[:60]


def _number(value: Any, node: ast.AST) -> int | float:
    if type(value) not in (int, float):
        raise ExpressionError(f"{_text(node)!r} is {_show(value)}, not a number")
    return value  # type: ignore[no-any-return]


def _truth(value: Any, node: ast.AST) -> bool:
    if type(value) is not bool:
        raise ExpressionError(f"{_text(node)!r} is {_show(value)}, not true or false: "
                              "and/or/not combine comparisons such as `stride != 1`")
    return value


def _compare(node: ast.Compare, params: Mapping[str, Any]) -> bool:
    left = _walk(node.left, params)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        if type(op) not in _COMPARE:
            raise ExpressionError(f"{_text(node)!r} is not allowed: compare with "
                                  "== != < <= > >=")
        right = _walk(right_node, params)
        if not isinstance(op, ast.Eq | ast.NotEq):
            left, right = _number(left, node.left), _number(right, right_node)
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True


def _call(node: ast.Call, params: Mapping[str, Any]) -> Any:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in _FUNCTIONS or node.keywords:
        raise ExpressionError(f"{_text(node)!r} is not allowed: the functions are "
                              f"{', '.join(_FUNCTIONS)}, called with plain arguments")
    function, arity = _FUNCTIONS[name]
    args = [_number(_walk(a, params), a) for a in node.args]
    if (arity is not None and len(args) != arity) or not args:
        wanted = f"{arity} argument" if arity else "one or more arguments"
        raise ExpressionError(f"{name} takes {wanted}, found {len(args)} in {_text(node)!r}")
    if name in ("min", "max") and len(args) == 1:
        raise ExpressionError(f"{name} compares two or more numbers: {_text(node)!r}")
    return _bounded(function(*args), repr(_text(node)))


def _subscript(node: ast.Subscript, params: Mapping[str, Any]) -> int:
    base = node.value
    index = node.slice
    position: Any
    if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub) \
            and isinstance(index.operand, ast.Constant) and type(index.operand.value) is int:
        position = -index.operand.value
    else:
        position = index.value if isinstance(index, ast.Constant) else None
    if not (isinstance(base, ast.Attribute) and base.attr == "shape"
            and isinstance(base.value, ast.Name)) or type(position) is not int:
        raise ExpressionError(f"{_text(node)!r} is not allowed: only an input's shape is "
                              "indexed, by a whole number (in.shape[0], in.shape[-1])")
    shape = _shape_of(base.value.id, params).attribute("shape")
    if not -len(shape) <= position < len(shape):
        raise ExpressionError(f"{_text(node)!r}: the input is {len(shape)}-D per sample "
                              f"(shape {shape}), so the index runs 0..{len(shape) - 1}")
    return int(shape[position])


def _bounded(value: int | float, what: str) -> int | float:
    """`value`, or an ExpressionError when it is not finite or too large to be exact."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{what} is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ExpressionError(f"{what} is {_show(value)}, beyond the largest number an "
                              f"expression may use (±2**53 = {MAX_MAGNITUDE:,})")
    return value


def _show(value: Any) -> str:
    """A value for a message, never thousands of digits long."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"a number of about {int(abs(value).bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _normalise(value: Any) -> Any:
    """`$(c / 2)` with c = 64 is the integer 32, as a user means it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def substitute(value: Any, params: Mapping[str, Any],
               on_error: Callable[[tuple[Any, ...], str], None],
               path: tuple[Any, ...] = ()) -> Any:
    """Replace every reference inside nested lists/dicts; report failures via `on_error`."""
    if is_reference(value):
        try:
            return evaluate(value, params)
        except ExpressionError as exc:
            on_error(path, str(exc))
            return value
    if isinstance(value, dict):
        return {k: substitute(v, params, on_error, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params, on_error, (*path, i)) for i, v in enumerate(value)]
    return value
