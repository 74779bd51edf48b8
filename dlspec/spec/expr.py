"""Block-parameter references: `$name` and `$(arithmetic)`, evaluated without `eval`.

The grammar is numbers, parameter names, `+ - * / // %`, unary minus and
parentheses. Python's parser builds the tree; this module walks only those
node types and refuses everything else, so no attribute, call or subscript can
ever run.
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
    if not (text.startswith("$(") and text.endswith(")")):
        raise ExpressionError(
            f"{text!r} is not a parameter reference; write $name or $(expression)")
    source = text[2:-1]
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        raise ExpressionError(f"cannot parse expression {source!r}") from None
    return _normalise(_walk(tree.body, params))


def _lookup(name: str, params: Mapping[str, Any]) -> Any:
    if name not in params:
        known = ", ".join(sorted(params)) or "none"
        raise ExpressionError(f"unknown parameter ${name} (parameters here: {known})")
    return params[name]


def _walk(node: ast.AST, params: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return _bounded(node.value, "a number in the expression")
    if isinstance(node, ast.Name):
        value = _lookup(node.id, params)
        if type(value) not in (int, float):
            raise ExpressionError(f"parameter {node.id} is {_show(value)}, not a number")
        return _bounded(value, f"parameter {node.id}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _walk(node.operand, params)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _walk(node.left, params), _walk(node.right, params)
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExpressionError(f"division by zero in {ast.unparse(node)!r}") from None
        except OverflowError:  # unreachable while operands are bounded; kept as a guard
            raise ExpressionError(f"{ast.unparse(node)!r} overflows") from None
        return _bounded(result, repr(ast.unparse(node)[:60]))
    raise ExpressionError(
        f"{ast.unparse(node)!r} is not allowed: expressions may use numbers, parameter "
        "names, + - * / // % and parentheses")


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
