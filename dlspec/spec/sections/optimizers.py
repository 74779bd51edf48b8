"""The `optimizer` section: the optimizers, one or one per network."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from dlspec.spec.sections.base import Patterns, PerNetwork, Section, Variants, fail

# --------------------------------------------------------------------------- optimizer


def _lr(default: float) -> Any:
    return Field(default, gt=0, description="learning rate")


Betas = Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)]


class ParamGroup(Section):
    """Parameters of the layers matching `layers`, trained with their own settings."""

    layers: Patterns = Field(description="glob patterns on layer names, e.g. [backbone.*]")
    lr: PositiveFloat | None = Field(None, description="learning rate of this group")
    weight_decay: NonNegativeFloat | None = Field(None, description="weight decay of this group")


class OptimizerBase(Section):
    lr: PositiveFloat = _lr(1e-3)
    weight_decay: NonNegativeFloat = Field(0.0, description="L2 weight decay")
    param_groups: list[ParamGroup] = Field(
        [], description="per-layer-pattern settings; the first matching group wins")


class SgdOptimizer(OptimizerBase):
    type: Literal["sgd"] = "sgd"
    lr: PositiveFloat = _lr(0.01)
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(0.0, description="momentum factor")
    dampening: NonNegativeFloat = Field(0.0, description="dampening of the momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0)")

    @model_validator(mode="after")
    def _check(self) -> SgdOptimizer:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            fail("nesterov needs momentum > 0 and dampening 0, got momentum "
                 f"{self.momentum} and dampening {self.dampening}", "nesterov", value=True)
        return self


class _AdamFamily(OptimizerBase):
    betas: Betas = Field([0.9, 0.999], description="decay rates of the moment estimates")
    eps: PositiveFloat = Field(1e-8, description="added to the denominator for stability")


class AdamOptimizer(_AdamFamily):
    type: Literal["adam"] = "adam"
    amsgrad: bool = Field(False, description="use the AMSGrad variant")


class AdamWOptimizer(AdamOptimizer):
    type: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: NonNegativeFloat = Field(0.01, description="decoupled weight decay")


class AdamaxOptimizer(_AdamFamily):
    type: Literal["adamax"] = "adamax"
    lr: PositiveFloat = _lr(2e-3)


class NadamOptimizer(_AdamFamily):
    type: Literal["nadam"] = "nadam"
    lr: PositiveFloat = _lr(2e-3)
    momentum_decay: NonNegativeFloat = Field(4e-3, description="momentum decay ψ")
    decoupled_weight_decay: bool = Field(False, description="AdamW-style weight decay")


class RadamOptimizer(_AdamFamily):
    type: Literal["radam"] = "radam"
    decoupled_weight_decay: bool = Field(False, description="AdamW-style weight decay")


class AdagradOptimizer(OptimizerBase):
    type: Literal["adagrad"] = "adagrad"
    lr: PositiveFloat = _lr(0.01)
    lr_decay: NonNegativeFloat = Field(0.0, description="learning-rate decay per step")
    initial_accumulator_value: NonNegativeFloat = Field(
        0.0, description="starting value of the squared-gradient sums")
    eps: PositiveFloat = Field(1e-10, description="added to the denominator for stability")


class RmspropOptimizer(OptimizerBase):
    type: Literal["rmsprop"] = "rmsprop"
    lr: PositiveFloat = _lr(0.01)
    alpha: Annotated[float, Field(ge=0, le=1)] = Field(0.99, description="smoothing constant")
    eps: PositiveFloat = Field(1e-8, description="added to the denominator for stability")
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(0.0, description="momentum factor")
    centered: bool = Field(False, description="normalise by the gradient's estimated variance")


class AdadeltaOptimizer(OptimizerBase):
    type: Literal["adadelta"] = "adadelta"
    lr: PositiveFloat = _lr(1.0)
    rho: float = Field(0.9, ge=0, le=1, description="decay of the running averages")
    eps: PositiveFloat = Field(1e-6, description="added to the denominator for stability")


Optimizer = Annotated[
    SgdOptimizer | AdamOptimizer | AdamWOptimizer | AdagradOptimizer | RmspropOptimizer
    | AdadeltaOptimizer | AdamaxOptimizer | NadamOptimizer | RadamOptimizer,
    Field(discriminator="type"), Variants("optimizer"),
]
OptimizerSection = Annotated[Optimizer | dict[str, Optimizer], PerNetwork("optimizer")]
