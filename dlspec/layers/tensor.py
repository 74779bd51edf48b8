"""Tensor plumbing kinds: select, slice, expand, tile, transpose, pad, channel_shuffle, and the
reductions mean, sum and max over axes.

Axes are numbered as PyTorch numbers them (and as `concat` and `permute` do): 0 is the batch
axis, which no kind here may touch; a sample's axes are 1..rank; a negative dim counts from
the end. Indices and slice bounds go to PyTorch as written, so a negative one still counts
from the end when an exported model's sequence axis is dynamic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from dlspec.layers.registry import (
    Call,
    Example,
    Function,
    LayerKind,
    LayerParams,
    Shape,
    ShapeProblem,
    format_shape,
    register,
)


def sample_axis(kind: str, dim: int, shape: Shape, field: str = "dim") -> int:
    """`dim` (PyTorch's numbering) as a per-sample axis 1..rank; the batch axis is refused."""
    rank = len(shape)
    axis = dim if dim >= 0 else dim + rank + 1
    if axis == 0:
        raise ShapeProblem(f"{kind} {field} {dim} is the batch axis, which {kind} cannot take",
                           f"a sample's axes are 1..{rank} (or -1..-{rank}, from the end)"
                           if rank else "the input has no axis besides the batch")
    if not 1 <= axis <= rank:
        raise ShapeProblem(f"{kind} {field} {dim} is out of range for a "
                           f"{format_shape(shape)} input ({rank}-D per sample: dims 1..{rank}, "
                           f"or -1..-{rank} from the end; 0 is the batch axis)")
    return axis


def _without(shape: Shape, axes: Sequence[int]) -> Shape:
    return tuple(d for i, d in enumerate(shape, start=1) if i not in axes)


def _replaced(shape: Shape, axis: int, size: int) -> Shape:
    return (*shape[:axis - 1], size, *shape[axis:])


@register("select", family="reshape", main="index")
class Select(LayerKind):
    """Take one position along `dim`, dropping that axis (`torch.select`): token 0 of (T, D)."""

    example = Example({"dim": 1, "index": 0}, (5, 8), name="class_token")

    accepts = "any"

    class Params(LayerParams):
        dim: int = 1
        index: int

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        axis = sample_axis("select", p.dim, shapes[0])
        size = shapes[0][axis - 1]
        if not -size <= p.index < size:
            raise ShapeProblem(f"select index {p.index} is out of range for axis {p.dim} of "
                               f"size {size} (indices 0..{size - 1}, or -1..-{size} from the "
                               "end)")
        return Function(torch.select, {"dim": axis, "index": p.index},
                        output=_without(shapes[0], [axis]))


@register("slice", family="reshape")
class Slice(LayerKind):
    """`start:end:step` along `dim` with Python's slice rules (`x[:, start:end:step]`)."""

    example = Example({"dim": 1, "start": 0, "end": 4}, (8, 6), name="first_half")

    accepts = "any"

    class Params(LayerParams):
        dim: int = 1
        start: int | None = None
        end: int | None = None
        step: PositiveInt = 1  # PyTorch tensors cannot be sliced backwards

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        axis = sample_axis("slice", p.dim, shapes[0])
        size = shapes[0][axis - 1]
        length = len(range(size)[slice(p.start, p.end, p.step)])
        if length == 0:
            bounds = ":".join("" if v is None else str(v) for v in (p.start, p.end, p.step))
            raise ShapeProblem(f"slice {bounds} of axis {p.dim} (size {size}) is empty",
                               f"positions run 0..{size - 1}; start must come before end")
        return Call(modules.Slice, axis, p.start, p.end, p.step).producing(
            _replaced(shapes[0], axis, length))

    def describe(self, p: Any) -> str:
        bounds = ":".join("" if v is None else str(v) for v in (p.start, p.end))
        return f"dim {p.dim}, [{bounds}" + (f":{p.step}]" if p.step != 1 else "]")


@register("expand", family="reshape")
class Expand(LayerKind):
    """Broadcast a size-1 axis to `size` without copying (`torch.Tensor.expand`)."""

    example = Example({"dim": 2, "size": 8}, (4, 1), name="broadcast")

    accepts = "any"

    class Params(LayerParams):
        dim: int
        size: PositiveInt

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        axis = sample_axis("expand", p.dim, shapes[0])
        if shapes[0][axis - 1] != 1:
            raise ShapeProblem(f"expand can only broadcast an axis of size 1, but axis {p.dim} "
                               f"of {format_shape(shapes[0])} has size {shapes[0][axis - 1]}",
                               "use tile to repeat an axis of any size")
        # -1 keeps an axis as it is, the batch axis included
        sizes = tuple(p.size if i == axis else -1 for i in range(len(shapes[0]) + 1))
        return Function(torch.broadcast_to, {"size": sizes},
                        output=_replaced(shapes[0], axis, p.size))


# Named `tile`, not `repeat` (torch.Tensor.repeat): `repeat` beside a kind already means
# "stack this layer N times" in a spec.
@register("tile", family="reshape")
class Tile(LayerKind):
    """Repeat the whole input `times` times along `dim` (`torch.tile`, `Tensor.repeat`)."""

    example = Example({"dim": 1, "times": 3}, (2, 4), name="tiled")

    accepts = "any"

    class Params(LayerParams):
        dim: int
        times: PositiveInt

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        axis = sample_axis("tile", p.dim, shapes[0])
        dims = tuple(p.times if i == axis else 1 for i in range(len(shapes[0]) + 1))
        return Function(torch.tile, {"dims": dims},
                        output=_replaced(shapes[0], axis, shapes[0][axis - 1] * p.times))


@register("transpose", family="reshape")
class Transpose(LayerKind):
    """Swap two axes (`torch.transpose`): (C, T) → (T, C) with `{dim0: 1, dim1: 2}`."""

    example = Example({"dim0": 1, "dim1": 2}, (16, 50), name="time_major")

    accepts = "any"

    class Params(LayerParams):
        dim0: int
        dim1: int

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        first = sample_axis("transpose", p.dim0, shapes[0], "dim0")
        second = sample_axis("transpose", p.dim1, shapes[0], "dim1")
        if first == second:
            raise ShapeProblem(f"transpose dim0 {p.dim0} and dim1 {p.dim1} are the same axis: "
                               "it would do nothing", "name two different axes")
        out = list(shapes[0])
        out[first - 1], out[second - 1] = out[second - 1], out[first - 1]
        return Function(torch.transpose, {"dim0": first, "dim1": second}, output=tuple(out))


@register("channel_shuffle", family="reshape", main="groups")
class ChannelShuffle(LayerKind):
    """ShuffleNet's channel shuffle over `groups` (`nn.ChannelShuffle`): C×... stays C×..."""

    example = Example(2, (8, 4, 4), name="shuffle")

    accepts = "any"

    class Params(LayerParams):
        groups: PositiveInt

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        if len(shapes[0]) < 2:
            raise ShapeProblem(f"channel_shuffle expects channels and at least one more axis "
                               f"per sample (C×L, C×H×W ...), but receives "
                               f"{format_shape(shapes[0])}", "reshape it to C×1 first")
        channels = shapes[0][0]
        if channels % p.groups:
            raise ShapeProblem(f"channel_shuffle groups {p.groups} must divide the {channels} "
                               "channels coming in")
        return Call(nn.ChannelShuffle, p.groups).producing(shapes[0])


class _PadParams(LayerParams):
    pad: list[NonNegativeInt] = Field(min_length=2)
    mode: Literal["constant", "reflect", "replicate"] = "constant"
    value: float = 0.0


@register("pad", family="reshape", main="pad")
class Pad(LayerKind):
    """Pad the last axes (`F.pad`; `pad` lists the last axis first: [left, right, top, ...])."""

    example = Example({"pad": [1, 1, 2, 0]}, (3, 4, 4), name="padded")

    accepts = "any"

    Params = _PadParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch.nn.functional as F  # noqa: N812  (PyTorch's own spelling)

        shape, axes = shapes[0], len(p.pad) // 2
        if len(p.pad) % 2:
            raise ShapeProblem(f"pad {p.pad} needs two numbers per axis (before, after), "
                               "last axis first")
        if axes > len(shape):
            raise ShapeProblem(f"pad {p.pad} pads {axes} axes, but a {format_shape(shape)} "
                               f"input has {len(shape)} per sample (the batch axis is never "
                               "padded)")
        kwargs: dict[str, Any] = {"pad": tuple(p.pad), "mode": p.mode}
        if p.mode == "constant":
            kwargs["value"] = p.value
        else:
            _check_edge_padding(p, shape, axes)
        out = list(shape)
        for i in range(axes):  # pairs run from the last axis backwards
            out[len(shape) - 1 - i] += p.pad[2 * i] + p.pad[2 * i + 1]
        return Function(F.pad, kwargs, output=tuple(out))


def _check_edge_padding(p: Any, shape: Shape, axes: int) -> None:
    """PyTorch's rules for reflect/replicate: 1-3 trailing axes, at most one axis before them
    besides the batch axis, and reflection no wider than the axis it mirrors."""
    if p.value != 0.0:
        raise ShapeProblem(f"pad value {p.value} is used only by mode constant, not {p.mode}")
    if axes > 3 or len(shape) > axes + 1:
        raise ShapeProblem(f"pad mode {p.mode} pads the last 1, 2 or 3 axes of a sample with "
                           f"at most one axis (channels) before them, but {p.pad} pads {axes} "
                           f"of {format_shape(shape)}", "use mode constant, or reshape first")
    if p.mode == "reflect":
        for i in range(axes):
            size = shape[len(shape) - 1 - i]
            if max(p.pad[2 * i], p.pad[2 * i + 1]) >= size:
                raise ShapeProblem(f"pad mode reflect needs each pad smaller than the axis it "
                                   f"mirrors, but {p.pad[2 * i]}, {p.pad[2 * i + 1]} pad an "
                                   f"axis of size {size}", "use mode replicate or constant")


class _ReduceParams(LayerParams):
    dim: int | Annotated[list[int], Field(min_length=1)]
    keepdim: bool = False


class _Reduction(LayerKind):
    """Shared by mean, sum and max: reduce `dim` (one axis or several) of each sample."""

    Params = _ReduceParams

    def reduce(self, p: Any, shapes: Sequence[Shape], target: Any) -> Function:
        """The Function applying `target(x, dim=..., keepdim=...)` after checking the axes."""
        dims = [p.dim] if isinstance(p.dim, int) else list(p.dim)
        axes = [sample_axis(self.name, d, shapes[0]) for d in dims]
        if len(set(axes)) != len(axes):
            raise ShapeProblem(f"{self.name} dim {p.dim} names an axis twice")
        shape = shapes[0]
        out = (tuple(1 if i in axes else d for i, d in enumerate(shape, start=1))
               if p.keepdim else _without(shape, axes))
        return Function(target, {"dim": sorted(axes), "keepdim": p.keepdim}, output=out)


@register("mean", family="reduction", main="dim")
class Mean(_Reduction):
    """Average over one or more axes (`torch.mean`): `mean: [2, 3]` pools C×H×W to C."""

    example = Example({"dim": [2, 3]}, (8, 4, 4), name="pooled")

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        return self.reduce(p, shapes, torch.mean)


@register("sum", family="reduction", main="dim")
class Sum(_Reduction):
    """Sum over one or more axes (`torch.sum`)."""

    # floats only: torch.sum turns int32 into int64, which the declared output would miss
    example = Example({"dim": 1, "keepdim": True}, (5, 8), name="total")

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        return self.reduce(p, shapes, torch.sum)


@register("max", family="reduction", main="dim")
class Max(_Reduction):
    """Largest value over one or more axes, values only (`torch.amax`)."""

    example = Example({"dim": -1}, (4, 6), name="strongest")

    accepts = "any"

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        return self.reduce(p, shapes, torch.amax)


@register("split_part", family="reshape")
class SplitPart(LayerKind):
    """One part of a `split` or `chunk` (made by expansion, one node per part): positions
    `start:start+length` along `dim` (`torch.narrow`, a view)."""

    hidden = True
    accepts = "any"

    class Params(LayerParams):
        dim: int = 1
        index: NonNegativeInt
        chunks: PositiveInt | None = None  # equal parts ...
        sizes: list[PositiveInt] | None = None  # ... or these sizes

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        kind = "chunk" if p.chunks is not None else "split"
        axis = sample_axis(kind, p.dim, shapes[0])
        size = shapes[0][axis - 1]
        if p.chunks is not None:
            if size % p.chunks:
                raise ShapeProblem(
                    f"chunk cannot cut axis {p.dim} of size {size} into {p.chunks} equal parts",
                    "give the sizes instead: split: {sizes: [...], dim: ...}")
            sizes = [size // p.chunks] * p.chunks
        else:
            sizes = list(p.sizes or [])
            if sum(sizes) != size:
                raise ShapeProblem(
                    f"split sizes {sizes} add up to {sum(sizes)}, but axis {p.dim} of "
                    f"{format_shape(shapes[0])} has {size}",
                    f"make the sizes add up to {size}")
        start = sum(sizes[:p.index])
        return Function(torch.narrow, {"dim": axis, "start": start, "length": sizes[p.index]},
                        output=_replaced(shapes[0], axis, sizes[p.index]))

    def describe(self, p: Any) -> str:
        of = f"{p.chunks} equal" if p.chunks is not None else f"sizes {p.sizes}"
        return f"part {p.index} of {of}, dim {p.dim}"
