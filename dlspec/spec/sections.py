"""The spec's training sections: task, loss, optimizer, schedule, data, augment, train,
transfer and export — validated here, before any training code exists.

Every section rejects unknown keys and is strict (`true`/`false` only for booleans, no
string-to-number coercion), so a typo anywhere is an error. This module imports no torch:
`dlspec check --no-shapes` validates through it.

Three kinds of flexible values, each validated so that errors stay clean (one error, at the
key the user wrote, never pydantic's list of every union member that failed):

* Variants (`Loss`, `Optimizer`, `Schedule`): a discriminated union on `type`; a bare
  string is shorthand for `{type: NAME}`. `Variants` picks the variant by its tag and
  validates with that class alone, so an error inside one is located at
  `("optimizer", "momentum")`, not pydantic's `("optimizer", "adam", "momentum")`.
* Per-network sections (`OptimizerSection`, `ScheduleSection`): one variant, or a mapping
  network name -> variant for multi-network tasks (GANs).
* Short forms (`Shorthand`): e.g. `resize: 32` for `[32, 32]`, `horizontal_flip: true`
  for `0.5`, `onnx: false` to disable export.

The declared types still give the JSON Schema (editors' completion), with the short forms
listed beside the full ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NoReturn, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

# --------------------------------------------------------------------------- helpers


def fail(message: str, *loc: str | int, value: Any = None, kind: str = "spec",
         context: dict[str, Any] | None = None) -> NoReturn:
    """Raise one validation error at `loc` (relative to the value being validated)."""
    error = {"type": PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"),
                                         context),
             "loc": loc, "input": value}
    raise ValidationError.from_exception_data("dlspec", [error])  # type: ignore[list-item]


def _unknown(what: str, name: object, names: list[str], *loc: str) -> NoReturn:
    """An unknown variant name; dlspec.spec.validation adds the "did you mean"."""
    fail(f"unknown {what} '{name}'", *loc, value=name, kind="unknown_choice",
         context={"choices": names})


@dataclass(frozen=True, eq=False)
class Shorthand:
    """Also accept a short form: `expand` turns it into the full form before validation, and
    the JSON Schema lists `schema` beside the full form's."""

    expand: Callable[[Any], Any]
    schema: dict[str, Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_before_validator_function(self.expand, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [self.schema, handler(schema)]}


def _tag(model: type[BaseModel]) -> str:
    return get_args(model.model_fields["type"].annotation)[0]


@dataclass(frozen=True)
class Variants:
    """Validation of a discriminated union of `Section`s on `type`, `NAME` meaning `{type: NAME}`.

    The union (with `Field(discriminator="type")`) gives the JSON Schema; validation picks the
    variant by its tag and validates with that class alone, keeping error locations clean.
    """

    what: str

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        by_tag = {_tag(m): m for m in get_args(source)}

        def validate(value: Any, _handler: Any, info: Any) -> Any:
            if isinstance(value, tuple(by_tag.values())):
                return value
            names = list(by_tag)
            if isinstance(value, str):
                if value not in by_tag:
                    _unknown(self.what, value, names)
                value = {"type": value}
            if not isinstance(value, dict):
                fail(f"expected the {self.what}'s name or a mapping with `type`, "
                     f"got {type(value).__name__}", value=value, kind="variant_type")
            if "type" not in value:
                fail(f"missing `type`: which {self.what}, one of {', '.join(names)}",
                     value=value, kind="missing_type")
            tag = value["type"]
            if not isinstance(tag, str) or tag not in by_tag:
                _unknown(self.what, tag, names, "type")
            return by_tag[tag].model_validate(value, context=info.context)

        return core_schema.with_info_wrap_validator_function(
            validate, handler(source), metadata={"dlspec_tags": list(by_tag)})

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        tags = list(schema["metadata"]["dlspec_tags"])
        short = {"type": "string", "enum": tags, "description": "NAME: short for {type: NAME}"}
        return {"anyOf": [short, handler(schema)]}


@dataclass(frozen=True)
class PerNetwork:
    """One variant, or a mapping network name -> variant (multi-network tasks, e.g. GANs).

    A mapping without `type` whose values are all names or mappings is read per network;
    anything else as one variant, so `{lr: 0.1}` reports the missing `type`.
    """

    what: str

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        single_type, mapping_type = get_args(source)
        single, mapping = TypeAdapter(single_type), TypeAdapter(mapping_type)

        def validate(value: Any, _handler: Any, info: Any) -> Any:
            per_network = (
                isinstance(value, dict)
                and "type" not in value
                and all(isinstance(v, str | dict | BaseModel) for v in value.values())
            )
            if per_network and not value:
                fail(f"expected one {self.what} or a mapping network name -> {self.what}, "
                     "got an empty mapping", value=value)
            adapter = mapping if per_network else single
            return adapter.validate_python(value, context=info.context)

        return core_schema.with_info_wrap_validator_function(validate, handler(source))


def _pair(value: Any) -> Any:
    return [value, value] if isinstance(value, int) and not isinstance(value, bool) else value


def _flip(value: Any) -> Any:
    return (0.5 if value else 0.0) if isinstance(value, bool) else value


def _scalar_list(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


Fraction = Annotated[float, Field(ge=0, le=1)]
Size2d = Annotated[
    list[PositiveInt], Field(min_length=2, max_length=2),
    Shorthand(_pair, {"type": "integer", "exclusiveMinimum": 0, "description": "square size"}),
]
FlipProbability = Annotated[
    Fraction, Shorthand(_flip, {"type": "boolean", "description": "true: probability 0.5"}),
]
Patterns = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, types are strict."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _exactly_one(model: BaseModel, keys: tuple[str, ...], what: str) -> None:
    """Check that exactly one of `keys` is set (not None); the error names what was found."""
    found = [k for k in keys if getattr(model, k) is not None]
    if len(found) != 1:
        given = f"got {' and '.join(found)}" if found else "got none"
        fail(f"{what} needs exactly one of {', '.join(keys)}; {given}", value=found)


# --------------------------------------------------------------------------- task

TaskType = Literal[
    "classification", "regression", "sequence_classification", "forecasting", "gan", "cyclegan"
]
_CLASSIFYING = ("classification", "sequence_classification")


class TaskConfig(Section):
    """What the network is trained to do; `task: NAME` is short for `{type: NAME}`."""

    type: TaskType = Field(description="the training objective's family")
    num_classes: PositiveInt | None = Field(
        None, description="number of classes (default: inferred from the data)")
    labels: list[str] | None = Field(
        None, min_length=1, description="class names, in class-index order")
    threshold: float | None = Field(
        None, gt=0, lt=1, description="decision threshold of a binary classifier (0.5)")

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        for key in ("num_classes", "labels", "threshold"):
            if getattr(self, key) is not None and self.type not in _CLASSIFYING:
                fail(f"`{key}` applies to classification tasks, not {self.type}", key)
        if self.labels and self.num_classes and len(self.labels) != self.num_classes:
            fail(f"{len(self.labels)} labels given for num_classes {self.num_classes}",
                 "labels", value=self.labels)
        if self.threshold is not None and self.num_classes not in (None, 2):
            fail(f"threshold applies to binary classification, not {self.num_classes} classes",
                 "threshold", value=self.threshold)
        if self.labels and len(set(self.labels)) != len(self.labels):
            fail("labels must be distinct", "labels", value=self.labels)
        return self


def _task_shorthand(value: Any) -> Any:
    names = list(get_args(TaskType))
    if isinstance(value, str) and value not in names:
        _unknown("task", value, names)
    return {"type": value} if isinstance(value, str) else value


Task = Annotated[
    TaskConfig, Shorthand(_task_shorthand, {"type": "string", "enum": list(get_args(TaskType))}),
]

# --------------------------------------------------------------------------- loss


class Regularization(Section):
    """Penalties added to the loss (distinct from the optimizer's weight_decay)."""

    l1: NonNegativeFloat = Field(0.0, description="λ of the L1 penalty on the weights")
    l2: NonNegativeFloat = Field(0.0, description="λ of the L2 penalty on the weights")


class LossBase(Section):
    regularization: Regularization | None = Field(
        None, description="L1/L2 penalties added to this loss")


class _Reduced(LossBase):
    reduction: Literal["mean", "sum"] = Field("mean", description="how per-sample losses combine")


ClassWeights = Annotated[list[NonNegativeFloat], Field(min_length=1)]


class CrossEntropyLoss(_Reduced):
    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Fraction = Field(0.0, description="label smoothing, 0 (off) to 1")
    weight: ClassWeights | None = Field(None, description="a weight per class")
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
    weight: ClassWeights | None = Field(None, description="a weight per class")
    ignore_index: int = Field(-100, description="target value that contributes no loss")


class KlDivLoss(LossBase):
    type: Literal["kl_div"] = "kl_div"
    reduction: Literal["batchmean", "mean", "sum"] = Field(
        "batchmean", description="how per-sample losses combine (batchmean is the true KL)")
    log_target: bool = Field(False, description="the target is given as log-probabilities")


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
    | NllLoss | KlDivLoss | _GanLosses | CycleGanLoss,
    Field(discriminator="type"), Variants("loss"),
]

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

# --------------------------------------------------------------------------- schedule


class Warmup(Section):
    """Linear warm-up in front of a schedule, from start_factor × lr to lr."""

    epochs: PositiveInt | None = Field(None, description="warm-up length in epochs")
    steps: PositiveInt | None = Field(None, description="warm-up length in batches")
    start_factor: float = Field(0.1, gt=0, le=1, description="fraction of lr to start from")

    @model_validator(mode="after")
    def _check(self) -> Warmup:
        _exactly_one(self, ("epochs", "steps"), "warmup")
        return self


Interval = Literal["epoch", "batch"]


class ScheduleBase(Section):
    default_interval: ClassVar[Interval] = "epoch"

    warmup: Warmup | None = Field(None, description="linear warm-up before the schedule")

    @property
    def effective_interval(self) -> Interval:
        """Whether the schedule steps after every epoch or every batch."""
        return getattr(self, "interval", None) or self.default_interval


class _Stepped(ScheduleBase):
    interval: Interval | None = Field(
        None, description="step per epoch or per batch (default depends on the schedule)")


class ConstantSchedule(_Stepped):
    type: Literal["constant"] = "constant"


class StepSchedule(_Stepped):
    type: Literal["step"] = "step"
    step_size: PositiveInt = Field(description="intervals between two decays")
    gamma: PositiveFloat = Field(0.1, description="factor applied at each decay")


class MultiStepSchedule(_Stepped):
    type: Literal["multistep"] = "multistep"
    milestones: list[PositiveInt] = Field(min_length=1, description="intervals at which to decay")
    gamma: PositiveFloat = Field(0.1, description="factor applied at each milestone")

    @model_validator(mode="after")
    def _check(self) -> MultiStepSchedule:
        if any(a >= b for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            fail("milestones must increase", "milestones", value=self.milestones)
        return self


class ExponentialSchedule(_Stepped):
    type: Literal["exponential"] = "exponential"
    gamma: PositiveFloat = Field(description="factor applied every interval")


class PolynomialSchedule(_Stepped):
    type: Literal["polynomial"] = "polynomial"
    total_iters: PositiveInt | None = Field(None, description="decay length (default: epochs)")
    power: PositiveFloat = Field(1.0, description="power of the polynomial")


class CosineSchedule(_Stepped):
    type: Literal["cosine"] = "cosine"
    T_max: PositiveInt | None = Field(None, description="half-period (default: epochs)")
    eta_min: NonNegativeFloat = Field(0.0, description="lowest learning rate")


class CosineRestartsSchedule(_Stepped):
    type: Literal["cosine_restarts"] = "cosine_restarts"
    T_0: PositiveInt = Field(10, description="length of the first cycle")
    T_mult: PositiveInt = Field(1, description="factor by which each cycle grows")
    eta_min: NonNegativeFloat = Field(0.0, description="lowest learning rate")


class CyclicSchedule(_Stepped):
    default_interval: ClassVar[Interval] = "batch"
    type: Literal["cyclic"] = "cyclic"
    base_lr: PositiveFloat = Field(description="lower bound of the cycle")
    max_lr: PositiveFloat = Field(description="upper bound of the cycle")
    step_size_up: PositiveInt = Field(2000, description="intervals from base_lr to max_lr")
    step_size_down: PositiveInt | None = Field(
        None, description="intervals from max_lr back (default: step_size_up)")
    mode: Literal["triangular", "triangular2", "exp_range"] = Field(
        "triangular", description="amplitude policy")
    gamma: PositiveFloat = Field(1.0, description="amplitude decay of exp_range")

    @model_validator(mode="after")
    def _check(self) -> CyclicSchedule:
        if self.max_lr <= self.base_lr:
            fail(f"max_lr {self.max_lr} must exceed base_lr {self.base_lr}", "max_lr",
                 value=self.max_lr)
        return self


class OneCycleSchedule(_Stepped):
    default_interval: ClassVar[Interval] = "batch"
    type: Literal["one_cycle"] = "one_cycle"
    max_lr: PositiveFloat = Field(description="peak learning rate")
    pct_start: float = Field(0.3, gt=0, lt=1, description="fraction of the cycle spent rising")
    anneal_strategy: Literal["cos", "linear"] = Field("cos", description="shape of the anneal")
    div_factor: PositiveFloat = Field(25.0, description="initial lr = max_lr / div_factor")
    final_div_factor: PositiveFloat = Field(1e4, description="final lr = initial lr / this")
    three_phase: bool = Field(False, description="anneal back symmetrically before the end")

    @model_validator(mode="after")
    def _check(self) -> OneCycleSchedule:
        if self.warmup is not None:
            fail("one_cycle warms up by itself (pct_start); remove warmup", "warmup")
        return self


class ReduceOnPlateauSchedule(ScheduleBase):
    type: Literal["reduce_on_plateau"] = "reduce_on_plateau"
    metric: str = Field("val_loss", min_length=1, description="metric watched, e.g. val_accuracy")
    mode: Literal["min", "max"] = Field("min", description="whether the metric should fall or rise")
    factor: float = Field(0.1, gt=0, lt=1, description="factor applied on a plateau")
    patience: NonNegativeInt = Field(10, description="epochs without improvement before reducing")
    threshold: NonNegativeFloat = Field(1e-4, description="smallest change that counts")
    threshold_mode: Literal["rel", "abs"] = Field("rel", description="rel or abs threshold")
    cooldown: NonNegativeInt = Field(0, description="epochs to wait after a reduction")
    min_lr: NonNegativeFloat = Field(0.0, description="lowest learning rate")


class Phase(Section):
    """One schedule of a sequence, run for `epochs` epochs."""

    schedule: Schedule = Field(description="the schedule of this phase")
    epochs: PositiveInt | None = Field(None, description="length (the last phase runs to the end)")


class SequentialSchedule(ScheduleBase):
    type: Literal["sequential"] = "sequential"
    phases: list[Phase] = Field(min_length=2, description="schedules run one after another")

    @model_validator(mode="after")
    def _check(self) -> SequentialSchedule:
        for i, phase in enumerate(self.phases):
            if isinstance(phase.schedule, ReduceOnPlateauSchedule):
                fail("reduce_on_plateau cannot be a phase", "phases", i, "schedule")
            if phase.epochs is None and i < len(self.phases) - 1:
                fail("every phase but the last needs `epochs`", "phases", i)
        return self


Schedule = Annotated[
    ConstantSchedule | StepSchedule | MultiStepSchedule | ExponentialSchedule
    | PolynomialSchedule | CosineSchedule | CosineRestartsSchedule | CyclicSchedule
    | OneCycleSchedule | ReduceOnPlateauSchedule | SequentialSchedule,
    Field(discriminator="type"), Variants("schedule"),
]
ScheduleSection = Annotated[Schedule | dict[str, Schedule], PerNetwork("schedule")]
Phase.model_rebuild()
SequentialSchedule.model_rebuild()

# --------------------------------------------------------------------------- data

BuiltinDataset = Literal[
    "digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "circles", "blobs", "xor",
    "and", "nand", "spirals", "sine", "sequence_sum", "parity", "eight_gaussians", "digits_pair",
]
IMAGE_DATASETS = frozenset({"digits", "digits_pair"})
SEQUENCE_DATASETS = frozenset({"sine", "sequence_sum", "parity"})
SYNTHETIC_DATASETS = frozenset({"moons", "circles", "blobs", "xor", "and", "nand", "spirals",
                                "eight_gaussians"}) | SEQUENCE_DATASETS


class NormalizeStats(Section):
    """Fixed per-channel normalisation statistics."""

    mean: list[float] = Field(min_length=1, description="per-channel mean")
    std: list[PositiveFloat] = Field(min_length=1, description="per-channel standard deviation")

    @model_validator(mode="after")
    def _check(self) -> NormalizeStats:
        if len(self.mean) != len(self.std):
            fail(f"mean has {len(self.mean)} values, std {len(self.std)}", "std", value=self.std)
        return self


def _normalize(value: Any) -> Any:
    if isinstance(value, bool):
        return "auto" if value else None
    if isinstance(value, dict):
        return NormalizeStats.model_validate(value)
    if value not in (None, "auto") and not isinstance(value, NormalizeStats):
        fail("expected true, false, auto or {mean: [...], std: [...]}", value=value)
    return value


class Split(Section):
    """Fractions of the data for training, validation and test; they sum to 1."""

    train: Fraction = Field(0.8, description="fraction for training")
    val: Fraction = Field(0.1, description="fraction for validation (0 if split omits it)")
    test: Fraction = Field(0.1, description="fraction for the final test (0 if split omits it)")

    @model_validator(mode="before")
    @classmethod
    def _unset_is_zero(cls, data: Any) -> Any:
        if isinstance(data, dict) and data:
            return {"train": 0.0, "val": 0.0, "test": 0.0, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> Split:
        total = self.train + self.val + self.test
        if abs(total - 1) > 1e-6:
            fail(f"split fractions must sum to 1, got {total:g} "
                 f"(train {self.train:g} + val {self.val:g} + test {self.test:g})", value=total)
        return self


_SOURCES = ("dataset", "csv", "npz", "image_folder")
# Options that only some sources take: option -> (does the source take it?, which do).
_Applies = tuple[Callable[["DataConfig"], bool], str]
_CSV: _Applies = (lambda d: d.csv is not None, "csv")
_NPZ: _Applies = (lambda d: d.npz is not None, "npz")
_IMAGES: _Applies = (lambda d: d.image_folder is not None or d.dataset in IMAGE_DATASETS,
                     "image data (image_folder, digits, digits_pair)")
_SYNTHETIC: _Applies = (lambda d: d.dataset in SYNTHETIC_DATASETS, "synthetic datasets")
_SEQUENCES: _Applies = (lambda d: d.dataset in SEQUENCE_DATASETS,
                        f"sequence datasets ({', '.join(sorted(SEQUENCE_DATASETS))})")
_OPTION_SOURCES = {"target": _CSV, "features": _CSV, "delimiter": _CSV, "x_key": _NPZ,
                   "y_key": _NPZ, "resize": _IMAGES, "grayscale": _IMAGES,
                   "num_samples": _SYNTHETIC, "noise": _SYNTHETIC, "seq_len": _SEQUENCES}


class DataConfig(Section):
    """Where the samples come from (exactly one source) and how they are prepared."""

    dataset: BuiltinDataset | None = Field(None, description="a built-in dataset (no download)")
    csv: str | None = Field(None, min_length=1, description="path of a CSV file, one row a sample")
    npz: str | None = Field(None, min_length=1, description="path of an .npz file of arrays")
    image_folder: str | None = Field(
        None, min_length=1, description="folder with one sub-folder of images per class")
    target: str | None = Field(None, min_length=1, description="csv: the label column")
    features: list[str] | None = Field(
        None, min_length=1, description="csv: the feature columns (default: all but target)")
    delimiter: str = Field(",", min_length=1, max_length=1, description="csv: field separator")
    x_key: str = Field("x", min_length=1, description="npz: the array of inputs")
    y_key: str | None = Field("y", description="npz: the array of targets (null: none)")
    resize: Size2d | None = Field(None, description="resize images to [height, width]")
    grayscale: bool = Field(False, description="convert images to one channel")
    normalize: Annotated[
        Literal["auto"] | NormalizeStats | None,
        Shorthand(_normalize, {"type": "boolean", "description": "true: auto; false: none"}),
    ] = Field(None, description="auto: statistics computed on the training split; or fixed ones")
    split: Split = Field(default_factory=Split, description="train/val/test fractions")
    num_samples: PositiveInt | None = Field(None, description="samples to generate")
    noise: NonNegativeFloat | None = Field(None, description="noise added to generated samples")
    seq_len: PositiveInt | None = Field(None, description="length of generated sequences")
    seed: NonNegativeInt | None = Field(
        None, description="seed of the split and generated data (default: train.seed)")
    shuffle: bool = Field(True, description="shuffle the training samples every epoch")

    @property
    def source(self) -> str:
        """The key naming the data source: dataset, csv, npz or image_folder."""
        return next(k for k in _SOURCES if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        _exactly_one(self, _SOURCES, "data")
        for option in sorted(self.model_fields_set & _OPTION_SOURCES.keys()):
            applies, sources = _OPTION_SOURCES[option]
            if not applies(self):
                fail(f"`{option}` applies to {sources}, not to {self.source} "
                     f"{getattr(self, self.source)}", option)
        return self


# --------------------------------------------------------------------------- augment


class RandomCrop(Section):
    size: Size2d | None = Field(None, description="crop [height, width] (default: input size)")
    padding: NonNegativeInt = Field(0, description="pixels of zero padding added before cropping")


class ColorJitter(Section):
    brightness: NonNegativeFloat = Field(0.0, description="brightness jitter amount")
    contrast: NonNegativeFloat = Field(0.0, description="contrast jitter amount")
    saturation: NonNegativeFloat = Field(0.0, description="saturation jitter amount")
    hue: float = Field(0.0, ge=0, le=0.5, description="hue jitter amount, at most 0.5")


class ImageAugment(Section):
    random_crop: RandomCrop | None = Field(None, description="random crop, after padding")
    horizontal_flip: FlipProbability = Field(0.0, description="probability of a mirror flip")
    vertical_flip: FlipProbability = Field(0.0, description="probability of an upside-down flip")
    rotation: float | None = Field(
        None, gt=0, le=180, description="rotate by a random angle within ±degrees")
    color_jitter: ColorJitter | None = Field(None, description="random colour changes")


class SequenceAugment(Section):
    noise: PositiveFloat | None = Field(None, description="std of Gaussian noise added")
    time_shift: PositiveInt | None = Field(None, description="largest random shift, in steps")
    time_scale: Annotated[
        list[PositiveFloat], Field(min_length=2, max_length=2)
    ] | None = Field(None, description="[low, high] range of random time stretching")

    @model_validator(mode="after")
    def _check(self) -> SequenceAugment:
        if self.time_scale and self.time_scale[0] > self.time_scale[1]:
            fail("time_scale is [low, high]; low exceeds high", "time_scale",
                 value=self.time_scale)
        return self


class AugmentConfig(Section):
    """Random changes to training samples (never to validation or test samples)."""

    images: ImageAugment | None = Field(None, description="augmentation of image inputs")
    sequences: SequenceAugment | None = Field(None, description="augmentation of sequences")


# --------------------------------------------------------------------------- train

Metric = Literal[
    "accuracy", "top5_accuracy", "precision", "recall", "f1", "mae", "mse", "rmse", "r2"
]


class EarlyStopping(Section):
    metric: str = Field("val_loss", min_length=1, description="metric watched, e.g. val_accuracy")
    mode: Literal["min", "max"] = Field("min", description="whether the metric should fall or rise")
    patience: PositiveInt = Field(5, description="epochs without improvement before stopping")
    min_delta: NonNegativeFloat = Field(0.0, description="smallest change that counts")


class GradClip(Section):
    """Gradient clipping: by total norm or by value, exactly one."""

    norm: PositiveFloat | None = Field(None, description="clip the gradients' total L2 norm")
    value: PositiveFloat | None = Field(None, description="clip every gradient to ±value")

    @model_validator(mode="after")
    def _check(self) -> GradClip:
        _exactly_one(self, ("norm", "value"), "grad_clip")
        return self


class TrainConfig(Section):
    """How the training loop runs."""

    epochs: PositiveInt = Field(10, description="passes over the training data")
    batch_size: PositiveInt = Field(32, description="samples per batch")
    seed: NonNegativeInt = Field(0, description="seed of every random generator")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    amp: bool = Field(False, description="mixed precision in the device's default low precision")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast precision; fp16 adds a gradient scaler")
    compile: bool = Field(False, description="compile the model with torch.compile")
    early_stopping: EarlyStopping | None = Field(None, description="stop when a metric stalls")
    grad_clip: GradClip | None = Field(None, description="gradient clipping")
    checkpoint_every: PositiveInt = Field(1, description="epochs between checkpoints")
    metrics: list[Metric] | None = Field(
        None, description="metrics computed each epoch (default: the task's)")
    log_grad_norms: bool = Field(False, description="log gradient norms per layer group")
    num_workers: NonNegativeInt = Field(0, description="data-loading worker processes")
    n_critic: PositiveInt = Field(1, description="GAN: discriminator steps per generator step")
    ema: float | None = Field(
        None, gt=0, lt=1, description="decay of an exponential moving average of the weights")
    deterministic: bool = Field(False, description="use deterministic algorithms only")

    @property
    def mixed_precision(self) -> bool:
        """Whether training runs under autocast."""
        return self.amp or self.precision != "fp32"

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.metrics and len(set(self.metrics)) != len(self.metrics):
            fail("metrics are listed twice", "metrics", value=self.metrics)
        return self


# --------------------------------------------------------------------------- transfer, export


class TransferConfig(Section):
    """Start from a trained checkpoint's weights."""

    init_from: str = Field(min_length=1, description="path of the checkpoint to load")
    layers: Patterns = Field(["*"], description="glob patterns of the layers to load")
    freeze: list[Annotated[str, Field(min_length=1)]] = Field(
        [], description="glob patterns of the layers not to train")
    strict: bool = Field(False, description="fail when a matching weight cannot be loaded")


class OnnxExport(Section):
    opset: int = Field(18, ge=14, le=21, description="ONNX opset version")
    dynamic_axes: list[str] = Field(["batch"], description="axes whose size may vary")
    atol: NonNegativeFloat = Field(1e-4, description="absolute tolerance of the verification")
    rtol: NonNegativeFloat = Field(1e-3, description="relative tolerance of the verification")
    optimize: bool = Field(False, description="optimise the exported graph")
    file: str | None = Field(None, min_length=1, description="file name (default: model.onnx)")


def _onnx(value: Any) -> Any:
    return ({} if value else None) if isinstance(value, bool) else value


class ExportConfig(Section):
    onnx: Annotated[
        OnnxExport | None,
        Shorthand(_onnx, {"type": "boolean", "description": "true: defaults; false: no export"}),
    ] = Field(default_factory=OnnxExport, description="ONNX export, verified in ONNX Runtime")


# --------------------------------------------------------------------------- all together


class TrainingSections(Section):
    """The spec's top-level training sections; the full Spec model inherits these fields."""

    task: Task | None = Field(None, description="what the network is trained to do")
    loss: Loss | None = Field(None, description="the objective minimised")
    optimizer: OptimizerSection | None = Field(
        None, description="the optimizer, or one per network (GANs)")
    schedule: ScheduleSection | None = Field(
        None, description="the learning-rate schedule, or one per network (GANs)")
    data: DataConfig | None = Field(None, description="the data and how it is prepared")
    augment: AugmentConfig | None = Field(None, description="random changes to training samples")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the training loop")
    transfer: TransferConfig | None = Field(None, description="start from trained weights")
    export: ExportConfig | None = Field(None, description="exports of the trained model")
