"""Pooling kinds: max/avg pooling and adaptive pooling in 1, 2 and 3 dimensions.

Inputs are channels-first per sample: maxpool2d reads (channels, height, width).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import PositiveInt, model_validator

from dlspec.layers.conv import (
    Offsets,
    Sizes,
    SpatialParams,
    is_default,
    layout_hint,
    plain,
    spatial,
    text,
)
from dlspec.layers.registry import (
    Call,
    Example,
    LayerKind,
    Shape,
    ShapeProblem,
    format_shape,
    register,
    require_rank,
)


class _PoolParams(SpatialParams):
    kernel_size: Sizes
    stride: Sizes | None = None  # PyTorch's default: the kernel_size
    padding: Offsets = 0
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _padding_at_most_half(self) -> _PoolParams:
        n = self.spatial_dims
        for k, q in zip(spatial(self.kernel_size, n), spatial(self.padding, n), strict=True):
            if q > k // 2:
                raise ValueError(
                    f"padding {text(self.padding)} is more than half of kernel_size "
                    f"{text(self.kernel_size)}: PyTorch allows at most {k // 2} here")
        return self


class _MaxPoolParams(_PoolParams):
    dilation: Sizes = 1


class _AvgPoolParams(_PoolParams):
    count_include_pad: bool = True


def _pooled_size(size: int, k: int, s: int, q: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape."""
    out = (size + 2 * q - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + q:
        out -= 1
    return out


class _Pool(LayerKind):
    """Shared build for max/avg pooling."""

    torch_name: ClassVar[str]
    dims: ClassVar[int]

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        n = self.dims
        shape = require_rank(shapes[0], n + 1, self.name, hint=layout_hint(self.name, n))
        size = shape[1:]
        kernel = spatial(p.kernel_size, n)
        stride = spatial(p.stride if p.stride is not None else p.kernel_size, n)
        padding = spatial(p.padding, n)
        dilation = spatial(getattr(p, "dilation", 1), n)
        out = tuple(_pooled_size(*a, p.ceil_mode) for a in zip(
            size, kernel, stride, padding, dilation, strict=True))
        if any(o < 1 for o in out):
            span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
            padded = tuple(i + 2 * q for i, q in zip(size, padding, strict=True))
            what = f"kernel_size {text(p.kernel_size)}"
            if not all(d == 1 for d in dilation):
                what += f" (spanning {text(list(span))} with dilation {text(p.dilation)})"
            where = f"the {format_shape(size)} input"
            if padded != size:
                where += f" (padded to {format_shape(padded)})"
            raise ShapeProblem(f"{what} is larger than {where}",
                               "use a smaller kernel_size, or downsample less before it")
        kwargs: dict[str, Any] = {}
        if p.stride is not None and spatial(p.stride, n) != kernel:
            kwargs["stride"] = plain(p.stride)
        if not is_default(p.padding, 0):
            kwargs["padding"] = plain(p.padding)
        if not is_default(getattr(p, "dilation", 1), 1):
            kwargs["dilation"] = plain(p.dilation)
        if p.ceil_mode:
            kwargs["ceil_mode"] = True
        if not getattr(p, "count_include_pad", True):
            kwargs["count_include_pad"] = False
        return Call(getattr(nn, self.torch_name), plain(p.kernel_size),
                    **kwargs).producing((shape[0], *out))

    def describe(self, p: Any) -> str:
        parts = [text(list(spatial(p.kernel_size, self.dims)))]
        if p.stride is not None and spatial(p.stride, self.dims) != spatial(p.kernel_size,
                                                                             self.dims):
            parts.append(f"stride {text(p.stride)}")
        if not is_default(p.padding, 0):
            parts.append(f"pad {text(p.padding)}")
        if not is_default(getattr(p, "dilation", 1), 1):  # max pooling only
            parts.append(f"dilation {text(p.dilation)}")
        return ", ".join(parts)


@register("maxpool1d", family="pooling", main="kernel_size")
class MaxPool1d(_Pool):
    """Max pooling over (channels, length) (`nn.MaxPool1d`)."""

    example = Example({"kernel_size": 2}, (16, 100), name="pool")

    torch_name, dims = "MaxPool1d", 1

    class Params(_MaxPoolParams):
        spatial_dims = 1


@register("maxpool2d", family="pooling", main="kernel_size")
class MaxPool2d(_Pool):
    """Max pooling over (channels, height, width) (`nn.MaxPool2d`)."""

    example = Example({"kernel_size": 3, "stride": 2, "padding": 1}, (64, 112, 112),
                      name="pool")

    torch_name, dims = "MaxPool2d", 2

    class Params(_MaxPoolParams):
        spatial_dims = 2


@register("maxpool3d", family="pooling", main="kernel_size")
class MaxPool3d(_Pool):
    """Max pooling over (channels, depth, height, width) (`nn.MaxPool3d`)."""

    example = Example({"kernel_size": 2}, (8, 16, 16, 16), name="pool")

    torch_name, dims = "MaxPool3d", 3

    class Params(_MaxPoolParams):
        spatial_dims = 3


@register("avgpool1d", family="pooling", main="kernel_size")
class AvgPool1d(_Pool):
    """Average pooling over (channels, length) (`nn.AvgPool1d`)."""

    example = Example({"kernel_size": 4}, (16, 100), name="pool")

    torch_name, dims = "AvgPool1d", 1

    class Params(_AvgPoolParams):
        spatial_dims = 1


@register("avgpool2d", family="pooling", main="kernel_size")
class AvgPool2d(_Pool):
    """Average pooling over (channels, height, width) (`nn.AvgPool2d`)."""

    example = Example({"kernel_size": 2}, (6, 28, 28), name="s2")

    torch_name, dims = "AvgPool2d", 2

    class Params(_AvgPoolParams):
        spatial_dims = 2


@register("avgpool3d", family="pooling", main="kernel_size")
class AvgPool3d(_Pool):
    """Average pooling over (channels, depth, height, width) (`nn.AvgPool3d`)."""

    example = Example({"kernel_size": [1, 2, 2]}, (8, 4, 16, 16), name="pool")

    torch_name, dims = "AvgPool3d", 3

    class Params(_AvgPoolParams):
        spatial_dims = 3


# --- adaptive pooling -----------------------------------------------------------------

class _AdaptiveParams(SpatialParams):
    #: the output's spatial size; in a list, None keeps that axis's input size
    output_size: PositiveInt | list[PositiveInt | None]


class _Adaptive(LayerKind):
    """Shared build for adaptive avg/max pooling."""

    torch_name: ClassVar[str]
    dims: ClassVar[int]

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        shape = require_rank(shapes[0], self.dims + 1, self.name,
                             hint=layout_hint(self.name, self.dims))
        out = tuple(size if wanted is None else wanted for size, wanted in
                    zip(shape[1:], spatial(p.output_size, self.dims), strict=True))
        return Call(getattr(nn, self.torch_name), plain(p.output_size)).producing(
            (shape[0], *out))

    def describe(self, p: Any) -> str:
        return "→ " + text(list(spatial(p.output_size, self.dims)))


def _adaptive(name: str, torch_name: str, dims: int, what: str, example: Example) -> None:
    params = type("Params", (_AdaptiveParams,), {"spatial_dims": dims,
                                                  "__module__": __name__})
    cls = type(torch_name, (_Adaptive,), {
        "torch_name": torch_name, "dims": dims, "Params": params, "example": example,
        "__module__": __name__,
        "__doc__": f"Adaptive {what} pooling to a fixed output_size (`nn.{torch_name}`)."})
    register(name, family="pooling", main="output_size")(cls)


# The examples are exported by the tests: torch's ONNX exporter takes adaptive max pooling
# only into even bins, and 3-D adaptive averaging only to one bin.
_adaptive("adaptive_avgpool1d", "AdaptiveAvgPool1d", 1, "average",
          Example({"output_size": 1}, (64, 50), name="gap"))
_adaptive("adaptive_avgpool2d", "AdaptiveAvgPool2d", 2, "average",
          Example({"output_size": 1}, (512, 7, 7), name="gap"))
_adaptive("adaptive_avgpool3d", "AdaptiveAvgPool3d", 3, "average",
          Example({"output_size": 1}, (16, 4, 8, 8), name="gap"))
_adaptive("adaptive_maxpool1d", "AdaptiveMaxPool1d", 1, "max",
          Example({"output_size": 4}, (32, 32), name="pool"))
_adaptive("adaptive_maxpool2d", "AdaptiveMaxPool2d", 2, "max",
          Example({"output_size": [2, 2]}, (32, 8, 8), name="pool"))
_adaptive("adaptive_maxpool3d", "AdaptiveMaxPool3d", 3, "max",
          Example({"output_size": 1}, (16, 4, 4, 4), name="pool"))
