"""Learned tensors that are not layers: `parameter`, for ViT's class token and position
embedding and ConvNeXt's layer scale.

A `parameter` reads one input only for its batch size and gives every sample the same learned
tensor, so the existing merges combine it with the data: `concat` prepends a class token,
`add` adds a position embedding, `multiply` scales a C×H×W map by a C×1×1 layer scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from dlspec.layers.registry import (
    Call,
    Example,
    LayerKind,
    LayerParams,
    Shape,
    format_shape,
    register,
)

InitScheme = Literal["zeros", "ones", "normal", "trunc_normal"]


class _ParameterParams(LayerParams):
    shape: Annotated[list[PositiveInt], Field(min_length=1)] = Field(
        description="the tensor's shape per sample (the batch axis excluded), e.g. [1, 768]")
    init: float | InitScheme = Field(
        "trunc_normal", description="a constant (1.0e-6 for a layer scale), or zeros, ones, "
        "normal (N(0, std²)) or trunc_normal (N(0, std²) redrawn beyond ±2 std, as ViT's class "
        "token and position embedding)")
    std: PositiveFloat = Field(0.02, description="the standard deviation of normal and "
                               "trunc_normal")

    @model_validator(mode="after")
    def _std_only_when_drawn(self) -> _ParameterParams:
        if "std" in self.model_fields_set and self.init not in ("normal", "trunc_normal"):
            raise ValueError(f"std is used only by init normal or trunc_normal, not by init "
                             f"{self.init!r}")
        return self


@register("parameter", family="embedding", main="shape")
class Parameter(LayerKind):
    """A learned tensor of `shape`, the same for every sample (its input gives only the batch
    size).

    The output is the tensor expanded over the input's batch (a view, no copy); its state_dict
    key is `NAME.weight`. Combine it with merges: `concat` along dim 1 prepends ViT's class
    token (`shape: [1, 768]`), `add` adds its position embedding (`[197, 768]`), `multiply`
    applies ConvNeXt's layer scale (`{shape: [C, 1, 1], init: 1.0e-6}`: shapes broadcast per
    sample). Reading token ids (int64) for the batch size is fine; the output is float.
    """

    example = Example({"shape": [1, 64]}, (16, 64), name="cls_token")

    accepts = "any"  # only the batch size is read

    Params = _ParameterParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        kwargs: dict[str, Any] = {}
        if p.init != "trunc_normal":
            kwargs["init"] = p.init
        if p.std != 0.02:
            kwargs["std"] = p.std
        # no declared output: its dtype is the parameter's, not the input's (token ids), so
        # shape inference runs the module on the meta device
        return Call(modules.LearnedTensor, tuple(p.shape), **kwargs)

    def describe(self, p: Any) -> str:
        init = p.init if isinstance(p.init, str) else f"{p.init:g}"
        return f"{format_shape(tuple(p.shape))}, {init}"
