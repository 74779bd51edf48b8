"""Activation kinds: element-wise non-linearities, (log-)softmax, element-wise math
(abs, exp, log, sqrt, neg, scale, clamp) and the perceptron's thresholds (sign, step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, ValidationInfo, field_validator, model_validator

from dlspec.layers.registry import (
    Call,
    Example,
    Function,
    LayerKind,
    LayerParams,
    NoParams,
    Shape,
    ShapeProblem,
    register,
)


class Activation(LayerKind):
    """An activation: `torch_name` is the nn class, built from the params' fields."""

    preserves_shape = True

    torch_name: str = ""

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        rank = len(shapes[0]) + 1  # with the batch axis, as PyTorch counts `dim`
        if "dim" in p.model_fields_set and not -rank <= p.dim < rank:
            raise ShapeProblem(f"dim {p.dim} is out of range for {rank}-D tensors (the batch "
                               f"axis is 0, so dims run from {-rank} to {rank - 1})")
        channels = shapes[0][0] if shapes[0] else 1
        if self.name == "prelu" and p.num_parameters not in (1, channels):
            raise ShapeProblem(f"prelu num_parameters must be 1 or the {channels} channels of "
                               f"its input, not {p.num_parameters}")
        return Call(getattr(nn, self.torch_name), **p.model_dump())

    def describe(self, p: Any) -> str:
        return ", ".join(f"{k}={v}" for k, v in p.model_dump(exclude_defaults=True).items())


def _activation(name: str, torch_name: str, example: Example,
                params: type[LayerParams] = NoParams, main: str | None = None) -> None:
    cls = type(torch_name, (Activation,), {"torch_name": torch_name, "Params": params,
                                           "example": example,
                                           "__doc__": f"`nn.{torch_name}` as a layer."})
    register(name, family="activation", main=main)(cls)


class _Slope(LayerParams):
    negative_slope: float = 0.01


class _Alpha(LayerParams):
    alpha: float = 1.0


class _Gelu(LayerParams):
    approximate: Literal["none", "tanh"] = "none"


class _Dim(LayerParams):
    dim: int = -1


class _Softplus(LayerParams):
    beta: PositiveFloat = 1.0
    threshold: float = 20.0


class _PRelu(LayerParams):
    num_parameters: int = 1
    init: float = 0.25


for _name, _torch in [("relu", "ReLU"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"),
                      ("silu", "SiLU"), ("relu6", "ReLU6"), ("mish", "Mish"),
                      ("hardswish", "Hardswish"), ("hardsigmoid", "Hardsigmoid"),
                      ("softsign", "Softsign"), ("selu", "SELU")]:
    _activation(_name, _torch, Example())
_activation("leaky_relu", "LeakyReLU", Example({"negative_slope": 0.2}), _Slope,
            "negative_slope")
_activation("elu", "ELU", Example({"alpha": 0.5}), _Alpha, "alpha")
_activation("celu", "CELU", Example({"alpha": 0.5}), _Alpha, "alpha")
_activation("gelu", "GELU", Example({"approximate": "tanh"}), _Gelu, "approximate")
_activation("softmax", "Softmax", Example({"dim": -1}, (10,), name="probabilities"), _Dim,
            "dim")
_activation("log_softmax", "LogSoftmax", Example({"dim": -1}, (10,), name="log_probabilities"),
            _Dim, "dim")
_activation("softplus", "Softplus", Example({"beta": 2.0}), _Softplus, "beta")
_activation("prelu", "PReLU", Example({"num_parameters": 16}, (16, 8, 8), name="act"), _PRelu,
            "num_parameters")


# --- element-wise math: torch functions of one input, compiled to call_function nodes -----

class Elementwise(LayerKind):
    """A torch function of one input applied element-wise: `torch.<function>(x, **kwargs)`."""

    preserves_shape = True
    function: ClassVar[str] = ""

    def build(self, p: Any, shapes: Sequence[Shape]) -> Function:
        import torch

        return Function(getattr(torch, self.function), self.kwargs(p), output=shapes[0])

    def kwargs(self, p: Any) -> dict[str, Any]:
        """The function's keyword arguments from the validated params."""
        return {}


def _elementwise(name: str, function: str, doc: str) -> None:
    cls = type(name.capitalize(), (Elementwise,), {"function": function, "example": Example(),
                                                  "__doc__": doc})
    register(name, family="activation")(cls)


_elementwise("abs", "abs", "`torch.abs`: the absolute value |x|.")
_elementwise("exp", "exp", "`torch.exp`: e to the power x (inf beyond about 88 in float32).")
_elementwise("log", "log", "`torch.log`: the natural logarithm; as in PyTorch, 0 gives -inf and "
                           "a negative input NaN (training stops at a NaN loss).")
_elementwise("sqrt", "sqrt", "`torch.sqrt`: the square root; as in PyTorch, a negative input "
                             "gives NaN (training stops at a NaN loss).")
_elementwise("neg", "neg", "`torch.neg`: -x.")
_elementwise("sign", "sign",
             "`torch.sign`: 1 for x > 0, -1 for x < 0, 0 at 0 — a threshold unit for hand-set "
             "perceptrons. Its gradient is 0 everywhere, so layers before it do not learn: not "
             "for training (use tanh or softsign there).")


# --- thresholds: for hand-set perceptrons, not for training ----------------------------------

class _AtZero(LayerParams):
    at_zero: float = Field(0.0, description="the output at exactly 0: 0 (the perceptron's "
                           "rule, fire only above the threshold), 1 (x ≥ 0 fires) or 0.5")


@register("step", family="activation", main="at_zero")
class Step(LayerKind):
    """The Heaviside step: 1 where x > 0, 0 where x < 0, and `at_zero` (default 0) at 0.

    The classic perceptron's unit: a linear layer with hand-set weights followed by `step`
    computes a logic gate (`linear` weights -2, -2 and bias 3 make NAND of 0/1 inputs). Its
    gradient is 0 wherever it exists, so the layers before it do not learn: it is for
    hand-set perceptrons, not for training (use sigmoid there, and `step` after training).
    """

    example = Example(None, (4,), name="fire")

    preserves_shape = True

    Params = _AtZero

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        return Call(modules.Step, **({"at_zero": p.at_zero} if p.at_zero else {}))


class _Factor(LayerParams):
    factor: float


@register("scale", family="activation", main="factor")
class Scale(Elementwise):
    """Multiply by a constant `factor` (a fixed number, not learned): `torch.mul(x, factor)`."""

    example = Example(0.5)
    Params = _Factor
    function = "mul"

    def kwargs(self, p: Any) -> dict[str, Any]:
        return {"other": p.factor}


class _Bounds(LayerParams):
    min: float | None = Field(None, description="the lower bound (none: unbounded below)")
    max: float | None = Field(None, description="the upper bound (none: unbounded above)")

    @field_validator("max", mode="after")
    @classmethod
    def _not_below_min(cls, value: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if value is not None and low is not None and value < low:
            raise ValueError(f"max {value:g} is below min {low:g}: clamp needs min ≤ max")
        return value

    @model_validator(mode="after")
    def _some_bound(self) -> _Bounds:
        if self.min is None and self.max is None:
            raise ValueError("clamp needs min, max or both")
        return self


@register("clamp", family="activation")
class Clamp(Elementwise):
    """Limit every value to [min, max] (either bound may be left out): `torch.clamp`."""

    example = Example({"min": 0, "max": 6})
    Params = _Bounds
    function = "clamp"

    def kwargs(self, p: Any) -> dict[str, Any]:
        return p.model_dump(exclude_none=True)
