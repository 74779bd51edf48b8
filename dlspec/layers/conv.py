"""Convolution kinds: conv1d/2d/3d, their transposes, and upsample.

Inputs are channels-first per sample: conv2d reads (channels, height, width).
The spatial helpers here (`spatial`, `SpatialParams`, `layout_hint`) are shared
with the pooling family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

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

Sizes = PositiveInt | list[PositiveInt]
Offsets = NonNegativeInt | list[NonNegativeInt]

_AXES = {1: "channels, length", 2: "channels, height, width",
         3: "channels, depth, height, width"}


def layout_hint(kind: str, dims: int) -> str:
    """The hint for an input of the wrong rank for an n-D spatial kind."""
    return (f"{kind} reads ({_AXES[dims]}) per sample; add `reshape` (or `permute` for a "
            f"(seq, features) sequence) before it to give the input that layout")


def spatial(value: Any, dims: int) -> tuple[int, ...]:
    """A number-or-list parameter as one value per spatial axis."""
    return tuple(value) if isinstance(value, list | tuple) else (value,) * dims


def text(value: Any) -> str:
    """A parameter as written for messages: `3`, or `3×5` for a list."""
    if isinstance(value, list | tuple):
        return "×".join(text(v) for v in value)
    if value is None:
        return "·"
    return f"{value:g}" if isinstance(value, float) else str(value)


def plain(value: Any) -> Any:
    """A parameter as passed to PyTorch: lists become tuples (what nn modules store)."""
    return tuple(value) if isinstance(value, list) else value


def is_default(value: Any, default: int) -> bool:
    """True for `1` or `[1, 1]` when the default is 1."""
    return all(v == default for v in value) if isinstance(value, list) else value == default


class SpatialParams(LayerParams):
    """Params whose list-valued fields hold one value per spatial axis."""

    spatial_dims: ClassVar[int] = 0

    @model_validator(mode="after")
    def _one_value_per_axis(self) -> SpatialParams:
        for name, value in self:
            if isinstance(value, list) and len(value) != self.spatial_dims:
                raise ValueError(
                    f"{name} has {len(value)} values but this kind has {self.spatial_dims} "
                    f"spatial axes; give one number, or a list of {self.spatial_dims}")
        return self


# --- convolutions ---------------------------------------------------------------------

class _ConvParams(SpatialParams):
    out_channels: PositiveInt
    kernel_size: Sizes
    stride: Sizes = 1
    padding: Offsets | Literal["same", "valid"] = 0
    dilation: Sizes = 1
    groups: PositiveInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    in_channels: PositiveInt | None = None

    @model_validator(mode="after")
    def _same_needs_stride_one(self) -> _ConvParams:
        if self.padding == "same" and not is_default(self.stride, 1):
            raise ValueError(f"padding 'same' needs stride 1 (PyTorch does not support it for "
                             f"strided convolutions), but stride is {text(self.stride)}")
        return self


class _Conv(LayerKind):
    """Shared build for conv1d/2d/3d."""

    torch_name: ClassVar[str]
    dims: ClassVar[int]
    inferred = ("in_channels",)

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        n = self.dims
        shape = require_rank(shapes[0], n + 1, self.name, hint=layout_hint(self.name, n))
        c_in = infer_field(p, "in_channels", shape[0])
        _check_groups(p.groups, c_in, p.out_channels)
        size = shape[1:]
        kernel, dilation = spatial(p.kernel_size, n), spatial(p.dilation, n)
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
        if p.padding == "same":
            pads = tuple(((s - 1) // 2, s - 1 - (s - 1) // 2) for s in span)
        elif p.padding == "valid":
            pads = ((0, 0),) * n
        else:
            pads = tuple((q, q) for q in spatial(p.padding, n))
        padded = tuple(s + a + b for s, (a, b) in zip(size, pads, strict=True))
        if any(sp > pd for sp, pd in zip(span, padded, strict=True)):
            raise ShapeProblem(
                f"{_kernel_text(p.kernel_size, p.dilation, span)} is larger than the "
                f"{format_shape(size)} input{_padded_text(size, padded)}",
                "use a smaller kernel_size, add padding, or downsample less before it")
        if p.padding_mode in ("reflect", "circular"):
            for s, (a, b) in zip(size, pads, strict=True):
                limit_ok = max(a, b) < s if p.padding_mode == "reflect" else max(a, b) <= s
                if not limit_ok:
                    relation = "smaller than" if p.padding_mode == "reflect" else "at most"
                    raise ShapeProblem(
                        f"padding_mode '{p.padding_mode}' needs the padding ({max(a, b)}) to "
                        f"be {relation} the input size, but the input is {format_shape(size)}",
                        "use padding_mode 'zeros' or 'replicate', or less padding")
        kwargs: dict[str, Any] = {"kernel_size": plain(p.kernel_size)}
        if not is_default(p.stride, 1):
            kwargs["stride"] = plain(p.stride)
        if isinstance(p.padding, str) or not is_default(p.padding, 0):
            kwargs["padding"] = plain(p.padding)
        if not is_default(p.dilation, 1):
            kwargs["dilation"] = plain(p.dilation)
        if p.groups != 1:
            kwargs["groups"] = p.groups
        if not p.bias:
            kwargs["bias"] = False
        if p.padding_mode != "zeros":
            kwargs["padding_mode"] = p.padding_mode
        out = tuple((pd - sp) // st + 1 for pd, sp, st in
                    zip(padded, span, spatial(p.stride, n), strict=True))
        return Call(getattr(nn, self.torch_name), c_in, p.out_channels,
                    **kwargs).producing((p.out_channels, *out))

    def describe(self, p: Any) -> str:
        return _describe(p, self.dims)


def _check_groups(groups: int, c_in: int, c_out: int) -> None:
    for count, what in ((c_in, "input"), (c_out, "output")):
        if count % groups:
            raise ShapeProblem(f"groups {groups} does not divide the {count} {what} channels",
                               "groups must divide both in_channels and out_channels")


def _kernel_text(kernel: Any, dilation: Any, span: tuple[int, ...]) -> str:
    if is_default(dilation, 1):
        return f"kernel_size {text(kernel)}"
    return f"kernel_size {text(kernel)} (spanning {text(list(span))} with dilation " \
           f"{text(dilation)})"


def _padded_text(size: tuple[int, ...], padded: tuple[int, ...]) -> str:
    return "" if padded == size else f" (padded to {format_shape(padded)})"


def _describe(p: Any, dims: int) -> str:
    parts = [text(list(spatial(p.kernel_size, dims))), f"{p.out_channels} ch"]
    if not is_default(p.stride, 1):
        parts.append(f"stride {text(p.stride)}")
    padding = getattr(p, "padding", 0)
    if isinstance(padding, str):
        parts.append(f"padding {padding}")
    elif not is_default(padding, 0):
        parts.append(f"pad {text(padding)}")
    if not is_default(p.dilation, 1):
        parts.append(f"dilation {text(p.dilation)}")
    if p.groups != 1:
        parts.append(f"groups {p.groups}")
    if not p.bias:
        parts.append("no bias")
    return ", ".join(parts)


@register("conv1d", family="convolution", main="out_channels")
class Conv1d(_Conv):
    """1-D convolution over (channels, length) (`nn.Conv1d`)."""

    example = Example({"out_channels": 32, "kernel_size": 5, "padding": "same"}, (8, 100),
                      name="conv")

    torch_name, dims = "Conv1d", 1

    class Params(_ConvParams):
        spatial_dims = 1


@register("conv2d", family="convolution", main="out_channels")
class Conv2d(_Conv):
    """2-D convolution over (channels, height, width) (`nn.Conv2d`)."""

    example = Example({"out_channels": 16, "kernel_size": 3, "padding": 1}, (3, 32, 32),
                      name="conv1")

    torch_name, dims = "Conv2d", 2

    class Params(_ConvParams):
        spatial_dims = 2


@register("conv3d", family="convolution", main="out_channels")
class Conv3d(_Conv):
    """3-D convolution over (channels, depth, height, width) (`nn.Conv3d`)."""

    example = Example({"out_channels": 8, "kernel_size": 3, "bias": False}, (1, 16, 16, 16),
                      name="conv")

    torch_name, dims = "Conv3d", 3

    class Params(_ConvParams):
        spatial_dims = 3


# --- transposed convolutions ----------------------------------------------------------

class _ConvTransposeParams(SpatialParams):
    out_channels: PositiveInt
    kernel_size: Sizes
    stride: Sizes = 1
    padding: Offsets = 0
    output_padding: Offsets = 0
    dilation: Sizes = 1
    groups: PositiveInt = 1
    bias: bool = True
    in_channels: PositiveInt | None = None

    @model_validator(mode="after")
    def _output_padding_small(self) -> _ConvTransposeParams:
        n = self.spatial_dims
        for op, s, d in zip(spatial(self.output_padding, n), spatial(self.stride, n),
                            spatial(self.dilation, n), strict=True):
            if op >= s and op >= d:
                raise ValueError(
                    f"output_padding {text(self.output_padding)} must be smaller than stride "
                    f"{text(self.stride)} or dilation {text(self.dilation)}")
        return self


class _ConvTranspose(LayerKind):
    """Shared build for conv_transpose1d/2d/3d."""

    torch_name: ClassVar[str]
    dims: ClassVar[int]
    inferred = ("in_channels",)

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        n = self.dims
        shape = require_rank(shapes[0], n + 1, self.name, hint=layout_hint(self.name, n))
        c_in = infer_field(p, "in_channels", shape[0])
        _check_groups(p.groups, c_in, p.out_channels)
        size = shape[1:]
        out = tuple(
            (i - 1) * s - 2 * q + d * (k - 1) + op + 1
            for i, k, s, q, op, d in zip(
                size, spatial(p.kernel_size, n), spatial(p.stride, n), spatial(p.padding, n),
                spatial(p.output_padding, n), spatial(p.dilation, n), strict=True))
        if any(o < 1 for o in out):
            raise ShapeProblem(
                f"padding {text(p.padding)} is too large for the {format_shape(size)} input: "
                f"the output would be {format_shape(out)}",
                "use less padding, or a larger kernel_size or stride")
        kwargs: dict[str, Any] = {"kernel_size": plain(p.kernel_size)}
        for name in ("stride", "padding", "output_padding", "dilation"):
            value = getattr(p, name)
            if not is_default(value, 1 if name in ("stride", "dilation") else 0):
                kwargs[name] = plain(value)
        if p.groups != 1:
            kwargs["groups"] = p.groups
        if not p.bias:
            kwargs["bias"] = False
        return Call(getattr(nn, self.torch_name), c_in, p.out_channels,
                    **kwargs).producing((p.out_channels, *out))

    def describe(self, p: Any) -> str:
        return _describe(p, self.dims)


@register("conv_transpose1d", family="convolution", main="out_channels")
class ConvTranspose1d(_ConvTranspose):
    """1-D transposed convolution (`nn.ConvTranspose1d`), e.g. learned upsampling."""

    example = Example({"out_channels": 8, "kernel_size": 4, "stride": 2, "padding": 1},
                      (16, 25), name="up")

    torch_name, dims = "ConvTranspose1d", 1

    class Params(_ConvTransposeParams):
        spatial_dims = 1


@register("conv_transpose2d", family="convolution", main="out_channels")
class ConvTranspose2d(_ConvTranspose):
    """2-D transposed convolution (`nn.ConvTranspose2d`), e.g. a decoder's upsampling."""

    example = Example({"out_channels": 32, "kernel_size": 4, "stride": 2, "padding": 1},
                      (64, 8, 8), name="up")

    torch_name, dims = "ConvTranspose2d", 2

    class Params(_ConvTransposeParams):
        spatial_dims = 2


@register("conv_transpose3d", family="convolution", main="out_channels")
class ConvTranspose3d(_ConvTranspose):
    """3-D transposed convolution (`nn.ConvTranspose3d`)."""

    example = Example({"out_channels": 4, "kernel_size": 2, "stride": 2}, (8, 4, 4, 4),
                      name="up")

    torch_name, dims = "ConvTranspose3d", 3

    class Params(_ConvTransposeParams):
        spatial_dims = 3


# --- upsample -------------------------------------------------------------------------

#: the per-sample ranks (channels + spatial axes) each mode accepts
_MODE_RANKS = {"nearest": (2, 3, 4), "linear": (2,), "bilinear": (3,), "bicubic": (3,),
               "trilinear": (4,)}


@register("upsample", family="resample", main="scale_factor")
class Upsample(LayerKind):
    """Resize the spatial axes by `scale_factor` or to `size` (`nn.Upsample`)."""

    example = Example({"scale_factor": 2, "mode": "bilinear"}, (16, 8, 8), name="up")

    class Params(LayerParams):
        scale_factor: PositiveFloat | list[PositiveFloat] | None = None
        size: PositiveInt | list[PositiveInt] | None = None
        mode: Literal["nearest", "linear", "bilinear", "bicubic", "trilinear"] = "nearest"
        align_corners: bool | None = Field(None, description="only for interpolating modes")

        @model_validator(mode="after")
        def _one_target(self) -> Any:
            if (self.scale_factor is None) == (self.size is None):
                raise ValueError("give exactly one of scale_factor and size")
            if self.align_corners is not None and self.mode == "nearest":
                raise ValueError("align_corners applies only to the interpolating modes "
                                 "(linear, bilinear, bicubic, trilinear), not 'nearest'")
            return self

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        ranks = _MODE_RANKS[p.mode]
        layout = " or ".join(f"({_AXES[r - 1]})" for r in ranks)
        shape = require_rank(shapes[0], ranks, f"upsample in mode '{p.mode}'",
                             hint=f"it reads {layout} per sample")
        size, n = shape[1:], len(shape) - 1
        target = p.scale_factor if p.scale_factor is not None else p.size
        name = "scale_factor" if p.scale_factor is not None else "size"
        if isinstance(target, list) and len(target) != n:
            raise ShapeProblem(f"{name} has {len(target)} values but the "
                               f"{format_shape(shape)} input has {n} spatial axes")
        if p.scale_factor is not None:
            out = tuple(int(i * f) for i, f in zip(size, spatial(p.scale_factor, n),
                                                   strict=True))
            if any(o < 1 for o in out):
                raise ShapeProblem(f"scale_factor {text(p.scale_factor)} shrinks the "
                                   f"{format_shape(size)} input to {format_shape(out)}")
        else:
            out = spatial(p.size, n)
        kwargs: dict[str, Any] = {name: plain(target)}
        if p.mode != "nearest":
            kwargs["mode"] = p.mode
        if p.align_corners is not None:
            kwargs["align_corners"] = p.align_corners
        return Call(nn.Upsample, **kwargs).producing((shape[0], *out))

    def describe(self, p: Any) -> str:
        target = f"×{text(p.scale_factor)}" if p.scale_factor is not None else \
            f"→ {text(p.size)}"
        return f"{target} {p.mode}"
