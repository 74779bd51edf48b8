"""The projection a `residual` with `shortcut: project` puts on its skip path.

Not written by users: expansion creates it with two inputs, the residual's input
and (for its shape only) the body's output. When the shapes already match it
passes its input through; otherwise it is a 1×1 convolution with the stride
that matches the body's downsampling plus batch norm, as in torchvision's ResNet
(`downsample`), or a linear map for 1-D features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlspec.layers.registry import (
    Call,
    LayerKind,
    NoParams,
    Shape,
    ShapeProblem,
    format_shape,
    register,
)


@register("projection", family="convolution")
class Projection(LayerKind):
    """Match the skip path's shape to the body's output (identity when they agree)."""

    Params = NoParams
    hidden = True

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call | None:
        from torch import nn

        source, target = shapes[0], shapes[1]
        if source == target:
            return None
        if len(source) != len(target):
            raise ShapeProblem(f"cannot project the shortcut from {format_shape(source)} to "
                               f"the body's {format_shape(target)}: their ranks differ")
        if len(source) == 1:
            return Call(nn.Linear, source[0], target[0], bias=False).producing(target)
        if len(source) > 4:
            raise ShapeProblem(f"cannot project a {len(source)}-D shortcut")
        pairs = zip(source[1:], target[1:], strict=True)
        stride = tuple(_stride(a, b, source, target) for a, b in pairs)
        dims = len(source) - 1
        conv, norm = getattr(nn, f"Conv{dims}d"), getattr(nn, f"BatchNorm{dims}d")
        kernel_stride = stride[0] if len(set(stride)) == 1 else stride
        return Call(nn.Sequential,
                    Call(conv, source[0], target[0], kernel_size=1, stride=kernel_stride,
                         bias=False),
                    Call(norm, target[0])).producing(target)

    def describe(self, p: Any) -> str:
        return "1×1 projection"


def _stride(size: int, wanted: int, source: Shape, target: Shape) -> int:
    """The stride s with ceil(size / s) == wanted, as a strided 3×3 body produces."""
    for stride in range(1, size + 1):
        if (size - 1) // stride + 1 == wanted:
            return stride
    raise ShapeProblem(f"no 1×1 projection maps the shortcut {format_shape(source)} to the "
                       f"body's {format_shape(target)}",
                       "give the residual an explicit `shortcut:` list of layers")
