"""Merge kinds: add, multiply and concat several inputs named with `from:`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlspec.layers.registry import (
    Example,
    Function,
    LayerKind,
    LayerParams,
    NoParams,
    Shape,
    ShapeProblem,
    format_shape,
    register,
)


def _same_shapes(kind: str, shapes: Sequence[Shape]) -> None:
    first = shapes[0]
    for i, other in enumerate(shapes[1:], start=1):
        if other != first:
            raise ShapeProblem(
                f"{kind} needs inputs of one shape, but input 1 is {format_shape(first)} "
                f"and input {i + 1} is {format_shape(other)}",
                "make the branches produce the same shape, or use concat")


@register("add", family="merge")
class Add(LayerKind):
    """Element-wise sum of two or more inputs of the same shape."""

    example = Example(None, {"a": (16,), "b": (16,)}, name="total")

    Params = NoParams
    arity = (2, None)
    accepts = "any"

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        _same_shapes("add", shapes)
        return Function(torch.add, fold=True, output=shapes[0])


@register("multiply", family="merge")
class Multiply(LayerKind):
    """Element-wise product of two or more inputs of the same shape (gating)."""

    example = Example(None, {"a": (16,), "b": (16,)}, name="gated")

    Params = NoParams
    arity = (2, None)
    accepts = "any"

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        _same_shapes("multiply", shapes)
        return Function(torch.mul, fold=True, output=shapes[0])


class _ConcatParams(LayerParams):
    dim: int = 1


@register("concat", family="merge", main="dim")
class Concat(LayerKind):
    """Concatenate inputs along `dim` (PyTorch's: the batch axis is 0, channels 1)."""

    example = Example({"dim": 1}, {"a": (16, 8, 8), "b": (8, 8, 8)}, name="joined")

    Params = _ConcatParams
    arity = (2, None)
    accepts = "any"

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            listed = ", ".join(format_shape(s) for s in shapes)
            raise ShapeProblem(f"concat needs inputs of one rank, but receives {listed}")
        axis = p.dim if p.dim >= 0 else p.dim + rank + 1
        if not 1 <= axis <= rank:
            raise ShapeProblem(f"concat dim {p.dim} is out of range for {rank}-D samples "
                               f"(dims 1..{rank}; 0 is the batch axis)")
        for i, other in enumerate(shapes[1:], start=1):
            rest = [d for j, d in enumerate(other) if j != axis - 1]
            first_rest = [d for j, d in enumerate(shapes[0]) if j != axis - 1]
            if rest != first_rest:
                raise ShapeProblem(
                    f"concat along dim {p.dim} needs every other axis to match, but input 1 "
                    f"is {format_shape(shapes[0])} and input {i + 1} is {format_shape(other)}")
        joined = sum(s[axis - 1] for s in shapes)
        out = (*shapes[0][:axis - 1], joined, *shapes[0][axis:])
        return Function(torch.cat, {"dim": p.dim}, pack_inputs=True, output=out)
