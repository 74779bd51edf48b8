"""Activation kinds: element-wise non-linearities and (log-)softmax."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import PositiveFloat

from dlspec.layers.registry import (
    Call,
    Example,
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
