"""Normalization kinds: batchnorm, layernorm, groupnorm and instancenorm.

Channel counts (`num_features`, `num_channels`) are inferred from the incoming shape, and
so is layernorm's `normalized_shape` on a 1-D or 2-D input.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Annotated, Any, ClassVar

from pydantic import Field, PositiveFloat, PositiveInt

from dlspec.layers.registry import (
    Call,
    Example,
    LayerKind,
    LayerParams,
    Shape,
    ShapeProblem,
    format_shape,
    infer_field,
    register,
    require_rank,
)

Momentum = Annotated[float, Field(ge=0.0, le=1.0)]

_LAYOUT = {1: "(channels,) or (channels, length)", 2: "(channels, height, width)",
           3: "(channels, depth, height, width)"}


def _defaults(p: Any, **torch_defaults: Any) -> dict[str, Any]:
    """The params that differ from PyTorch's defaults, as constructor keywords."""
    return {k: getattr(p, k) for k, d in torch_defaults.items() if getattr(p, k) != d}


class _BatchNormParams(LayerParams):
    eps: PositiveFloat = 1e-5
    momentum: Momentum | None = 0.1
    affine: bool = True
    track_running_stats: bool = True
    num_features: PositiveInt | None = None


class _BatchNorm(LayerKind):
    """Shared build for batchnorm1d/2d/3d: normalizes each channel over the batch."""

    preserves_shape = True

    torch_name: ClassVar[str]
    ranks: ClassVar[tuple[int, ...]]
    inferred = ("num_features",)
    Params = _BatchNormParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        dims = self.ranks[-1] - 1
        shape = require_rank(shapes[0], self.ranks, self.name, hint=_hint(self.name, dims))
        channels = infer_field(p, "num_features", shape[0])
        kwargs = _defaults(p, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)
        return Call(getattr(nn, self.torch_name), channels, **kwargs)

    def describe(self, p: Any) -> str:
        return "" if p.affine else "no affine"


def _hint(kind: str, dims: int) -> str:
    hint = f"{kind} reads {_LAYOUT[dims]} per sample"
    if dims == 1:
        hint += "; for a (seq, features) sequence use `layernorm`"
    return hint + "; use the norm of matching dimension, or `reshape` before it"


@register("batchnorm1d", family="normalization")
class BatchNorm1d(_BatchNorm):
    """Batch normalization of (channels,) or (channels, length) (`nn.BatchNorm1d`)."""

    example = Example(None, (64,), name="bn")

    torch_name, ranks = "BatchNorm1d", (1, 2)


@register("batchnorm2d", family="normalization")
class BatchNorm2d(_BatchNorm):
    """Batch normalization of (channels, height, width) (`nn.BatchNorm2d`)."""

    example = Example({"momentum": 0.01}, (16, 32, 32), name="bn1")

    torch_name, ranks = "BatchNorm2d", (3,)


@register("batchnorm3d", family="normalization")
class BatchNorm3d(_BatchNorm):
    """Batch normalization of (channels, depth, height, width) (`nn.BatchNorm3d`)."""

    example = Example(None, (8, 4, 4, 4), name="bn")

    torch_name, ranks = "BatchNorm3d", (4,)


class _LayerNormParams(LayerParams):
    normalized_shape: PositiveInt | list[PositiveInt] | None = Field(
        None, description="the sizes of the trailing axes normalized over (checked against the "
        "input); default: the last axis of a 1-D or 2-D input; a 3-D or larger input needs it "
        "or `channels_first`")
    channels_first: bool = Field(
        False, description="normalize over the channels (axis 1) at every position of a "
        "C×L, C×H×W ... map, as ConvNeXt's LayerNorm2d")
    eps: PositiveFloat = 1e-5
    elementwise_affine: bool = True
    bias: bool = True


@register("layernorm", family="normalization")
class LayerNorm(LayerKind):
    """Layer normalization over the last axis, the trailing axes of `normalized_shape`, or the
    channels of a C×H×W map at every position (`channels_first`).

    A (seq, features) input is normalized over its features by default. On a 3-D or larger
    input the default would normalize over the last axis alone (W of a C×H×W map), which is
    rarely meant, so it is refused: say `channels_first: true` (ConvNeXt), `normalized_shape:
    [C, H, W]` (the whole sample) or `normalized_shape: W` (the last axis).
    """

    example = Example({"eps": 1.0e-6}, (10, 64), name="norm")

    preserves_shape = True

    Params = _LayerNormParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        shape = shapes[0]
        if not shape:
            raise ShapeProblem("layernorm needs at least a 1-D input per sample, but receives "
                               "a scalar per sample", "give the input a shape like [1]")
        kwargs = _defaults(p, eps=1e-5, elementwise_affine=True, bias=True)
        if p.channels_first:
            return self._channels_first(p, shape, kwargs)
        given = p.normalized_shape
        wanted = [given] if isinstance(given, int) else given
        if wanted is None and len(shape) > 2:
            raise ShapeProblem(
                f"layernorm on a {format_shape(shape)} input must be told what to normalize: "
                f"by default it would normalize over the last axis ({shape[-1]}) alone",
                f"`channels_first: true` normalizes the {shape[0]} channels at every position "
                f"(ConvNeXt's LayerNorm2d), `normalized_shape: {list(shape)}` the whole sample, "
                f"`normalized_shape: {shape[-1]}` the last axis")
        if wanted is not None and (len(wanted) > len(shape)
                                   or tuple(wanted) != shape[len(shape) - len(wanted):]):
            raise ShapeProblem(
                f"normalized_shape {format_shape(tuple(wanted))} does not match the last "
                f"axes of the {format_shape(shape)} input",
                "remove normalized_shape to normalize over the last axis "
                f"({shape[-1]}), or give trailing sizes of the input" if len(shape) <= 2 else
                f"give trailing sizes of the input, or `channels_first: true` to normalize "
                f"its {shape[0]} channels")
        normalized: Any = shape[-1] if wanted is None or len(wanted) == 1 else list(wanted)
        return Call(nn.LayerNorm, normalized, **kwargs)

    @staticmethod
    def _channels_first(p: Any, shape: Shape, kwargs: dict[str, Any]) -> Call:
        from dlspec.layers import modules

        given = p.normalized_shape
        if given is not None and given not in (shape[0], [shape[0]]):
            raise ShapeProblem(
                f"with channels_first, layernorm normalizes the {shape[0]} channels of the "
                f"{format_shape(shape)} input, but normalized_shape is "
                f"{format_shape(tuple(given) if isinstance(given, list) else (given,))}",
                "remove normalized_shape: the channel count is inferred")
        return Call(modules.ChannelsFirstLayerNorm, shape[0], **kwargs)

    def describe(self, p: Any) -> str:
        parts = ["channels first"] if p.channels_first else []
        if not p.elementwise_affine:
            parts.append("no affine")
        return ", ".join(parts)


@register("groupnorm", family="normalization", main="num_groups")
class GroupNorm(LayerKind):
    """Group normalization: channels split into `num_groups` groups (`nn.GroupNorm`)."""

    example = Example({"num_groups": 8}, (32, 16, 16), name="norm")

    preserves_shape = True

    inferred = ("num_channels",)

    class Params(LayerParams):
        num_groups: PositiveInt
        eps: PositiveFloat = 1e-5
        affine: bool = True
        num_channels: PositiveInt | None = None

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        shape = shapes[0]
        if not shape:
            raise ShapeProblem("groupnorm needs a (channels, ...) input per sample, but "
                               "receives a scalar per sample")
        channels = infer_field(p, "num_channels", shape[0])
        if channels % p.num_groups:
            divisors = [g for g in range(1, channels + 1) if channels % g == 0]
            raise ShapeProblem(
                f"num_groups {p.num_groups} does not divide {channels} channels",
                f"choose num_groups from the divisors of {channels}: "
                f"{', '.join(map(str, divisors))}")
        kwargs = _defaults(p, eps=1e-5, affine=True)
        return Call(nn.GroupNorm, p.num_groups, channels, **kwargs)

    def describe(self, p: Any) -> str:
        return f"{p.num_groups} groups"


class _InstanceNormParams(LayerParams):
    eps: PositiveFloat = 1e-5
    momentum: Momentum | None = 0.1
    affine: bool = False
    track_running_stats: bool = False
    num_features: PositiveInt | None = None


class _InstanceNorm(LayerKind):
    """Shared build for instancenorm1d/2d/3d: normalizes each sample's channel."""

    preserves_shape = True

    torch_name: ClassVar[str]
    dims: ClassVar[int]
    inferred = ("num_features",)
    Params = _InstanceNormParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        layout = {1: "(channels, length)", 2: _LAYOUT[2], 3: _LAYOUT[3]}[self.dims]
        shape = require_rank(shapes[0], self.dims + 1, self.name,
                             hint=f"{self.name} reads {layout} per sample")
        channels = infer_field(p, "num_features", shape[0])
        if prod(shape[1:]) == 1:
            raise ShapeProblem(
                f"{self.name} needs more than one spatial element per channel to normalize, "
                f"but the input is {format_shape(shape)}",
                "normalize before pooling the input down to one value, or use `batchnorm`")
        kwargs = _defaults(p, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False)
        return Call(getattr(nn, self.torch_name), channels, **kwargs)

    def describe(self, p: Any) -> str:
        return "affine" if p.affine else ""


@register("instancenorm1d", family="normalization")
class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (channels, length) (`nn.InstanceNorm1d`)."""

    example = Example(None, (16, 50), name="norm")

    torch_name, dims = "InstanceNorm1d", 1


@register("instancenorm2d", family="normalization")
class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (channels, height, width) (`nn.InstanceNorm2d`)."""

    example = Example({"affine": True}, (3, 64, 64), name="norm")

    torch_name, dims = "InstanceNorm2d", 2


@register("instancenorm3d", family="normalization")
class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of (channels, depth, height, width) (`nn.InstanceNorm3d`)."""

    example = Example(None, (4, 8, 8, 8), name="norm")

    torch_name, dims = "InstanceNorm3d", 3
