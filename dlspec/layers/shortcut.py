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
        stride = _strides(source, target)
        if not stride:
            return Call(nn.Linear, source[0], target[0], bias=False).producing(target)
        dims = len(source) - 1
        conv, norm = getattr(nn, f"Conv{dims}d"), getattr(nn, f"BatchNorm{dims}d")
        kernel_stride = stride[0] if len(set(stride)) == 1 else stride
        return Call(nn.Sequential,
                    Call(conv, source[0], target[0], kernel_size=1, stride=kernel_stride,
                         bias=False),
                    Call(norm, target[0])).producing(target)

    def describe(self, p: Any) -> str:
        return "projection"

    def describe_shapes(self, p: Any, inputs: Sequence[Shape], output: Shape) -> str:
        """What the projection of `inputs[0]` onto `output` is, for summaries and diagrams:
        `linear projection, 64 units`, `1-wide projection, 6 ch`, `1×1 projection, 128 ch,
        stride 2`, `1×1×1 projection, 8 ch, stride 2` (the kernel has the maps' rank)."""
        source = inputs[0]
        if source == output:
            return "identity"
        stride = _strides(source, output)
        if not stride:
            return f"linear projection, {output[0]} units"
        kernel = "×".join("1" * len(stride)) if len(stride) > 1 else "1-wide"
        parts = [f"{kernel} projection", f"{output[0]} ch"]
        if set(stride) != {1}:
            parts.append("stride " + ("×".join(map(str, stride)) if len(set(stride)) > 1
                                      else str(stride[0])))
        return ", ".join(parts)


def _strides(source: Shape, target: Shape) -> tuple[int, ...]:
    """The per-axis strides of the 1×1 convolution from `source` to `target`; () for 1-D
    features, which a linear map projects."""
    if len(source) != len(target):
        raise ShapeProblem(f"cannot project the shortcut from {format_shape(source)} to "
                           f"the body's {format_shape(target)}: their ranks differ")
    if len(source) == 1:
        return ()
    if len(source) > 4:
        raise ShapeProblem(f"cannot project a {len(source)}-D shortcut")
    return tuple(_stride(a, b, source, target)
                 for a, b in zip(source[1:], target[1:], strict=True))


def _stride(size: int, wanted: int, source: Shape, target: Shape) -> int:
    """The stride s with ceil(size / s) == wanted, as a strided 3×3 body produces."""
    for stride in range(1, size + 1):
        if (size - 1) // stride + 1 == wanted:
            return stride
    raise ShapeProblem(f"no 1×1 projection maps the shortcut {format_shape(source)} to the "
                       f"body's {format_shape(target)}",
                       "give the residual an explicit `shortcut:` list of layers")
