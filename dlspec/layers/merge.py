"""Merge kinds: element-wise functions of inputs that broadcast (add, multiply, subtract,
divide, maximum, minimum) and concat, over several inputs named with `from:`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

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

BROADCAST_RULE = "sizes equal or 1, axes aligned from the right"
_GATE_HINT = ("make the sizes agree or one of them 1 (`adaptive_avgpool2d: 1` makes a C×H×W map "
              "C×1×1, `reshape: [C, 1, 1]` a C-vector)")


def broadcast(kind: str, shapes: Sequence[Shape]) -> tuple[Shape, tuple[int, ...]]:
    """The per-sample shape inputs of `shapes` broadcast to, by PyTorch's rule, and per input
    the axes it lacks (they count as size 1).

    The batch axis is not part of the rule: every input brings the same samples, so a
    lower-rank input gains its missing axes after the batch axis (PyTorch alone would align
    its batch axis with a sample axis of the others).
    """
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis in range(rank):
        sizes = [p[axis] for p in padded]
        target = next((size for size in sizes if size != 1), 1)
        wrong = next((i for i, size in enumerate(sizes) if size not in (1, target)), None)
        if wrong is not None:
            first = sizes.index(target)
            hint = _GATE_HINT if rank > 1 else "make the branches produce the same shape"
            raise ShapeProblem(
                f"{kind} needs inputs of one shape, or of shapes that broadcast "
                f"({BROADCAST_RULE}), but axis {axis + 1} is {target} in input {first + 1} "
                f"({format_shape(shapes[first])}) and {sizes[wrong]} in input {wrong + 1} "
                f"({format_shape(shapes[wrong])})", hint + ", or use concat")
        out.append(target)
    lift = tuple(rank - len(s) for s in shapes)
    return tuple(out), lift if any(lift) else ()


class _Broadcasting(LayerKind):
    """An element-wise function of inputs that broadcast (PyTorch's rule, per sample)."""

    Params = NoParams
    arity: ClassVar[int | tuple[int, None]] = (2, None)
    accepts = "any"
    #: the torch function's name (torch.add ...), looked up when building
    function: ClassVar[str] = ""
    #: applied pairwise over 3+ inputs; binary kinds take exactly two
    fold: ClassVar[bool] = True

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        shape, lift = broadcast(self.name, shapes)
        return Function(getattr(torch, self.function), fold=self.fold, output=shape, lift=lift)


@register("add", family="merge")
class Add(_Broadcasting):
    """Element-wise sum of two or more inputs whose shapes broadcast.

    Shapes broadcast as in PyTorch, per sample (the batch axis is not part of it): aligned
    from the right, each pair of sizes is equal or one of them is 1, and an input with fewer
    axes counts its missing leading ones as 1; the output takes the larger size on every axis.
    So a 16×1×1 gate multiplies a 16×8×8 map, and an 8-vector adds along the last axis of a
    16×8×8 map. multiply, subtract, divide, maximum and minimum follow the same rule.
    """

    example = Example(None, {"a": (16,), "b": (16,)}, name="total")
    function = "add"


@register("multiply", family="merge")
class Multiply(_Broadcasting):
    """Element-wise product of two or more inputs whose shapes broadcast, as for add.

    Gating, e.g. a C×1×1 squeeze-and-excitation gate times the C×H×W map it came from."""

    example = Example(None, {"features": (16, 8, 8), "gate": (16, 1, 1)}, name="gated")
    function = "mul"


@register("subtract", family="merge")
class Subtract(_Broadcasting):
    """The first input minus the second, in `from:` order; shapes broadcast as for add."""

    example = Example(None, {"a": (16,), "b": (16,)}, name="difference")
    arity = 2
    function = "sub"
    fold = False


@register("divide", family="merge")
class Divide(_Broadcasting):
    """The first input divided by the second, in `from:` order; shapes broadcast as for add.

    Dividing by 0 gives inf or NaN, as in PyTorch."""

    example = Example(None, {"a": (16, 4), "b": (16, 1)}, name="ratio")
    arity = 2
    accepts = "float"  # integer inputs would divide into floats; x / 0 gives inf, as in PyTorch
    function = "div"
    fold = False


@register("maximum", family="merge")
class Maximum(_Broadcasting):
    """Element-wise maximum of two or more inputs whose shapes broadcast."""

    example = Example(None, {"a": (16,), "b": (16,)}, name="larger")
    function = "maximum"


@register("minimum", family="merge")
class Minimum(_Broadcasting):
    """Element-wise minimum of two or more inputs whose shapes broadcast."""

    example = Example(None, {"a": (16,), "b": (16,)}, name="smaller")
    function = "minimum"


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
