"""`export.onnx.dynamic_axes`: which axes of an exported model may vary, and what they are called.

    dynamic_axes: [batch, seq]                        # the batch; every sequence input's length
    dynamic_axes: [batch, {image: [3, height, width]}]
    dynamic_axes: [batch, {waveform: [1, samples]}, {mask: [1, samples]}]

A list of `batch`, `seq` and mappings input → its axes. A mapping writes one entry per axis of
one sample, like the input's `shape:`: a number is that axis's fixed size (it must be the
declared one), a name makes the axis dynamic under that name in the ONNX file. One name is
one size: axes named alike (an image's `[3, side, side]`, or two inputs' `samples`) always
have the same size. `seq` names axis 0 of every sequence input that no mapping names (`seq`,
or `seq_<input>` when there are several).

Syntax is checked by `DynamicAxes` (here, without the inputs); `resolve_axes` checks the
axes against the inputs' shapes (the spec's validator and the exporter call it).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from dlspec.spec.sections.base import fail

AXIS_WORDS = ("batch", "seq")
_AXIS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXAMPLE = "e.g. [batch, seq] or [batch, {image: [3, height, width]}]"
_ONE_PER_AXIS = ("one entry per axis of one sample, as in the input's shape: its size to keep "
                 "it fixed, a name to let it vary, e.g. [3, height, width]")

InputAxes = list[int | str]
DynamicAxis = Literal["batch", "seq"] | dict[str, InputAxes]


def _check_syntax(value: Any) -> Any:
    """One error at the item, input or axis that is wrong; the value itself when all is well."""
    if not isinstance(value, list):
        fail(f"expected a list of axes, {_EXAMPLE}", value=value)
    named: set[str] = set()
    for i, item in enumerate(value):
        if isinstance(item, str):
            if item not in AXIS_WORDS:
                fail(f"unknown axis {item!r}: a word here is batch or seq; other axes are "
                     "named under their input, e.g. {image: [3, height, width]}", i,
                     value=item, kind="unknown_choice", context={"choices": list(AXIS_WORDS)})
            if item in value[:i]:
                fail(f"{item} is listed twice", i, value=item)
        elif isinstance(item, dict) and item:
            for name, axes in item.items():
                if name in named:
                    fail(f"the axes of {name} are given twice", i, name, value=axes)
                named.add(name)
                _check_input_axes(name, axes, i)
        else:
            fail(f"expected batch, seq or a mapping input → its axes, {_EXAMPLE}", i,
                 value=item)
    return value


def _check_input_axes(name: Any, axes: Any, i: int) -> None:
    if not isinstance(axes, list) or not axes:
        fail(f"the axes of {name}: expected a list, {_ONE_PER_AXIS}", i, name, value=axes)
    for k, axis in enumerate(axes):
        if isinstance(axis, bool) or not isinstance(axis, int | str):
            fail(f"an axis is a size or a name, not {axis!r}", i, name, k, value=axis)
        if isinstance(axis, int) and axis < 1:
            fail(f"an axis size is at least 1, not {axis}", i, name, k, value=axis)
        if isinstance(axis, str) and not _AXIS_NAME.match(axis):
            fail(f"an axis name is letters, digits and _, not starting with a digit; found "
                 f"{axis!r}", i, name, k, value=axis)
        if axis == "batch":
            fail("batch is the batch axis, before these per-sample axes: list `batch` on its "
                 f"own, e.g. [batch, {{{name}: [...]}}]", i, name, k, value=axis)
    if not any(isinstance(axis, str) for axis in axes):
        fail(f"the axes of {name} name no axis, so none may vary: name the ones that vary, "
             "e.g. [3, height, width]", i, name, value=axes)


DynamicAxes = Annotated[list[DynamicAxis], BeforeValidator(_check_syntax)]


class AxisProblem(Exception):
    """A dynamic axis that does not fit the inputs; `loc` is relative to dynamic_axes."""

    def __init__(self, loc: tuple[str | int, ...], message: str, hint: str | None = None,
                 choices: list[str] | None = None):
        super().__init__(message)
        self.loc, self.message, self.hint, self.choices = loc, message, hint, choices


@dataclass(frozen=True)
class InputShape:
    """What `resolve_axes` needs of an input: its per-sample shape and whether it is a
    sequence (token ids, or steps × features)."""

    shape: tuple[int, ...]
    sequence: bool


def resolve_axes(dynamic: Sequence[str | Mapping[str, Sequence[int | str]]],
                 inputs: Mapping[str, InputShape],
                 elsewhere: Collection[str] = ()) -> dict[str, dict[int, str]]:
    """The dynamic per-sample axes of each input: input → {axis (0: the first per-sample
    axis): name}. AxisProblem for an axis that does not fit its input; `elsewhere` are the
    inputs of the spec's other networks, skipped here.

    Example:
        >>> resolve_axes(["batch", {"image": [3, "height", "width"]}],
        ...              {"image": InputShape((3, 32, 32), False)})
        {'image': {1: 'height', 2: 'width'}}
    """
    resolved: dict[str, dict[int, str]] = {}
    sizes: dict[str, tuple[int, str, int]] = {}  # name → (size, input, axis) that set it
    for i, item in enumerate(dynamic):
        if not isinstance(item, Mapping):
            continue
        for name, axes in item.items():
            if name not in inputs:
                if name in elsewhere:
                    continue
                raise AxisProblem((i, name), f"unknown input {name!r}", choices=list(inputs))
            resolved[name] = _input_axes(name, inputs[name].shape, axes, i, sizes)
    if "seq" in dynamic:
        _sequence_axes(dynamic, inputs, elsewhere, resolved, sizes)
    return resolved


def _input_axes(name: str, shape: tuple[int, ...], axes: Sequence[int | str], i: int,
                sizes: dict[str, tuple[int, str, int]]) -> dict[int, str]:
    shown = "×".join(map(str, shape))
    if len(axes) != len(shape):
        raise AxisProblem((i, name), f"{name} has {len(shape)} axes per sample ({shown}), "
                          f"but {len(axes)} are given", f"write {_ONE_PER_AXIS}")
    found: dict[int, str] = {}
    for k, (axis, size) in enumerate(zip(axes, shape, strict=True)):
        if isinstance(axis, int):
            if axis != size:
                raise AxisProblem((i, name, k), f"axis {k} of {name} is {size} ({shown}), "
                                  f"not {axis}", f"give its size {size} to keep it fixed, "
                                  "or a name to let it vary")
            continue
        _tie(axis, size, name, k, (i, name, k), sizes)
        found[k] = axis
    return found


def _tie(axis: str, size: int, name: str, k: int, loc: tuple[str | int, ...],
         sizes: dict[str, tuple[int, str, int]]) -> None:
    """One name, one size: the traced example gives tied axes the same size."""
    first = sizes.setdefault(axis, (size, name, k))
    if first[0] != size:
        raise AxisProblem(loc, f"{axis} names axis {k} of {name} ({size}) and axis "
                          f"{first[2]} of {first[1]} ({first[0]}): axes named alike always "
                          "have the same size", "give them different names")


def _sequence_axes(dynamic: Sequence[Any], inputs: Mapping[str, InputShape],
                   elsewhere: Collection[str], resolved: dict[str, dict[int, str]],
                   sizes: dict[str, tuple[int, str, int]]) -> None:
    """`seq`: axis 0 of each sequence input no mapping names."""
    sequences = [name for name, info in inputs.items() if info.sequence]
    if not sequences:
        if elsewhere:
            return  # another network's inputs may be the sequences
        raise AxisProblem((), "`seq` asks for a dynamic sequence axis, but no input is a "
                          "sequence (steps × features, or token ids)",
                          "use dynamic_axes: [batch], or name the axis that varies under "
                          "its input, e.g. [batch, {waveform: [1, samples]}]")
    where = list(dynamic).index("seq")
    for name in sequences:
        if name in resolved:
            continue  # its own mapping says which of its axes vary
        axis = "seq" if len(sequences) == 1 else f"seq_{name}"
        _tie(axis, inputs[name].shape[0], name, 0, (where,), sizes)
        resolved[name] = {0: axis}


__all__ = ["AXIS_WORDS", "AxisProblem", "DynamicAxes", "InputShape", "resolve_axes"]
