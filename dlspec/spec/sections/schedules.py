"""The `schedule` section: learning-rate schedules, warm-up and sequences of phases."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from dlspec.spec.sections.base import PerNetwork, Section, Variants, _exactly_one, fail

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
