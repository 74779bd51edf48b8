"""The `loss` section: supervised losses, GAN objectives and the CycleGAN loss."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, model_validator

from dlspec.spec.sections.base import (
    Fraction,
    PerNetwork,
    Section,
    Shorthand,
    Variants,
    fail,
)


def _scalar_list(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


# --------------------------------------------------------------------------- loss


class Regularization(Section):
    """Penalties added to the loss (distinct from the optimizer's weight_decay)."""

    l1: NonNegativeFloat = Field(0.0, description="λ of the L1 penalty on the weights")
    l2: NonNegativeFloat = Field(0.0, description="λ of the L2 penalty on the weights")


class LossBase(Section):
    regularization: Regularization | None = Field(
        None, description="L1/L2 penalties added to this loss")


OUTPUT_SHARE = "this output's share of the total loss, in a network with several outputs"


class SupervisedLossBase(LossBase):
    weight: PositiveFloat | None = Field(None, description=f"{OUTPUT_SHARE} (default 1)")

    @property
    def share(self) -> float:
        """The weight of this loss in the sum over a network's outputs."""
        return self.weight if isinstance(self.weight, float | int) else 1.0


class _Reduced(SupervisedLossBase):
    reduction: Literal["mean", "sum"] = Field("mean", description="how per-sample losses combine")


ClassWeights = Annotated[list[NonNegativeFloat], Field(min_length=1)]
# cross_entropy's and nll's `weight` is PyTorch's (one per class) when it is a list
ClassWeightsOrShare = ClassWeights | PositiveFloat
_CLASS_WEIGHT = f"a list: a weight per class; a number: {OUTPUT_SHARE}"


def class_weights(section: LossBase) -> list[float] | None:
    """The per-class weights of a loss, when its `weight` is a list."""
    weight = getattr(section, "weight", None)
    return weight if isinstance(weight, list) else None


class CrossEntropyLoss(_Reduced):
    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Fraction = Field(0.0, description="label smoothing, 0 (off) to 1")
    weight: ClassWeightsOrShare | None = Field(None, description=_CLASS_WEIGHT)  # type: ignore[assignment]
    ignore_index: int = Field(-100, description="target value that contributes no loss")


class BinaryCrossEntropyLoss(_Reduced):
    type: Literal["binary_cross_entropy"] = "binary_cross_entropy"
    pos_weight: Annotated[
        list[PositiveFloat], Field(min_length=1),
        Shorthand(_scalar_list, {"type": "number", "exclusiveMinimum": 0}),
    ] | None = Field(None, description="weight of positive examples (one, or one per output)")


class MseLoss(_Reduced):
    type: Literal["mse"] = "mse"


class L1Loss(_Reduced):
    type: Literal["l1"] = "l1"


class SmoothL1Loss(_Reduced):
    type: Literal["smooth_l1"] = "smooth_l1"
    beta: NonNegativeFloat = Field(1.0, description="where the loss turns from quadratic to L1")


class HuberLoss(_Reduced):
    type: Literal["huber"] = "huber"
    delta: PositiveFloat = Field(1.0, description="where the loss turns from quadratic to linear")


class NllLoss(_Reduced):
    type: Literal["nll"] = "nll"
    weight: ClassWeightsOrShare | None = Field(None, description=_CLASS_WEIGHT)  # type: ignore[assignment]
    ignore_index: int = Field(-100, description="target value that contributes no loss")


class KlDivLoss(SupervisedLossBase):
    type: Literal["kl_div"] = "kl_div"
    reduction: Literal["batchmean", "mean", "sum"] = Field(
        "batchmean", description="how per-sample losses combine (batchmean is the true KL)")
    log_target: bool = Field(False, description="the target is given as log-probabilities")


# ----------------------------------------------------------------- metric learning
# These compare the embeddings of two or three samples (task: metric_learning), not an output
# with its target: the session draws each sample's partners from the training split.


class ContrastiveLoss(_Reduced):
    """HingeEmbeddingLoss on the L2 distance of a pair: same-class pairs (y = 1) are pulled
    together, different-class ones (y = -1) pushed beyond `margin`."""

    type: Literal["contrastive"] = "contrastive"
    margin: PositiveFloat = Field(
        1.0, description="the distance different-class pairs are pushed beyond")


class CosineEmbeddingLoss(_Reduced):
    """CosineEmbeddingLoss of a pair: 1 - cos for same-class pairs, max(0, cos - margin) for
    different-class ones."""

    type: Literal["cosine_embedding"] = "cosine_embedding"
    margin: float = Field(0.0, ge=-1, le=1, description="the cosine similarity different-class "
                          "pairs are pushed below (-1 to 1; 0 to 0.5 is usual)")


class TripletLoss(_Reduced):
    """TripletMarginLoss of (anchor, positive of its class, negative of another class)."""

    type: Literal["triplet"] = "triplet"
    margin: PositiveFloat = Field(
        1.0, description="how much nearer the positive must be than the negative")
    p: PositiveFloat = Field(2.0, description="the norm degree of the pairwise distance")
    eps: PositiveFloat = Field(1e-6, description="added to differences, against a zero norm")
    swap: bool = Field(False, description="use the positive-negative distance when it is "
                       "smaller (the distance swap of Balntas et al.)")


_MetricLosses = ContrastiveLoss | CosineEmbeddingLoss | TripletLoss


class MinimaxLoss(LossBase):
    type: Literal["minimax"] = "minimax"


class NonSaturatingLoss(LossBase):
    type: Literal["non_saturating"] = "non_saturating"


class LeastSquaresLoss(LossBase):
    type: Literal["least_squares"] = "least_squares"


class HingeLoss(LossBase):
    type: Literal["hinge"] = "hinge"


class WassersteinLoss(LossBase):
    type: Literal["wasserstein"] = "wasserstein"
    clip_value: PositiveFloat = Field(0.01, description="critic weights are clipped to ±this")


class WassersteinGpLoss(LossBase):
    type: Literal["wasserstein_gp"] = "wasserstein_gp"
    gp_weight: NonNegativeFloat = Field(10.0, description="λ of the gradient penalty")


_GanLosses = (
    MinimaxLoss | NonSaturatingLoss | LeastSquaresLoss | HingeLoss | WassersteinLoss
    | WassersteinGpLoss
)
GanLoss = Annotated[_GanLosses, Field(discriminator="type"), Variants("GAN objective")]


class CycleGanLoss(LossBase):
    type: Literal["cyclegan"] = "cyclegan"
    adversarial: GanLoss = Field(
        default_factory=LeastSquaresLoss, description="the GAN objective of both domains")
    cycle_weight: NonNegativeFloat = Field(10.0, description="λ of the cycle-consistency loss")
    identity_weight: NonNegativeFloat = Field(
        0.5, description="identity loss weight, relative to cycle_weight")
    pool_size: NonNegativeInt = Field(
        50, description="past generated samples kept for the discriminators (0: none)")

    @model_validator(mode="after")
    def _check(self) -> CycleGanLoss:
        if self.adversarial.regularization is not None:
            fail("set regularization on the cyclegan loss itself",
                 "adversarial", "regularization")
        return self


Loss = Annotated[
    CrossEntropyLoss | BinaryCrossEntropyLoss | MseLoss | L1Loss | SmoothL1Loss | HuberLoss
    | NllLoss | KlDivLoss | _MetricLosses | _GanLosses | CycleGanLoss,
    Field(discriminator="type"), Variants("loss"),
]
# one loss, or one per output of a network with several: {category: cross_entropy,
# price: {type: mse, weight: 0.5}}
LossSection = Annotated[Loss | dict[str, Loss], PerNetwork("loss", by="output")]
