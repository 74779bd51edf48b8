"""The spec's training sections: task, loss, optimizer, schedule, data, augment, train,
transfer and export — validated here, before any training code exists.

Every section rejects unknown keys and is strict (`true`/`false` only for booleans, no
string-to-number coercion), so a typo anywhere is an error. This package imports no torch:
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

Layout: `base` (the `Section` base, `fail`, `Variants`, `PerNetwork`, `Shorthand`), `losses`,
`optimizers`, `schedules`, `data` (data and augment), `loggers` (train.log); the small
sections (task, train, transfer, export) and `TrainingSections` are here, and every public
name is re-exported, so `from dlspec.spec.sections import X` works for all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from dlspec.spec.paths import ReadPath, WritePath
from dlspec.spec.sections.axes import AxisProblem, DynamicAxes, InputShape, resolve_axes
from dlspec.spec.sections.base import (
    ByName,
    Fraction,
    Patterns,
    PerNetwork,
    Section,
    Shorthand,
    Variants,
    _exactly_one,
    _unknown,
    fail,
)
from dlspec.spec.sections.data import (
    IMAGE_DATASETS,
    SEQUENCE_DATASETS,
    SYNTHETIC_DATASETS,
    AugmentConfig,
    BuiltinDataset,
    ColorJitter,
    DataConfig,
    FlipProbability,
    ImageAugment,
    NormalizeStats,
    RandomCrop,
    SequenceAugment,
    Size2d,
    Split,
)
from dlspec.spec.sections.loggers import LOGGERS, Log, LogConfig, MlflowLog, TensorBoardLog
from dlspec.spec.sections.losses import (
    BinaryCrossEntropyLoss,
    ClassWeights,
    ContrastiveLoss,
    CosineEmbeddingLoss,
    CrossEntropyLoss,
    CycleGanLoss,
    GanLoss,
    HingeLoss,
    HuberLoss,
    KlDivLoss,
    L1Loss,
    LeastSquaresLoss,
    Loss,
    LossBase,
    LossSection,
    MinimaxLoss,
    MseLoss,
    NllLoss,
    NonSaturatingLoss,
    Regularization,
    SmoothL1Loss,
    SupervisedLossBase,
    TripletLoss,
    WassersteinGpLoss,
    WassersteinLoss,
    class_weights,
)
from dlspec.spec.sections.optimizers import (
    AdadeltaOptimizer,
    AdagradOptimizer,
    AdamaxOptimizer,
    AdamOptimizer,
    AdamWOptimizer,
    Betas,
    NadamOptimizer,
    Optimizer,
    OptimizerBase,
    OptimizerSection,
    ParamGroup,
    RadamOptimizer,
    RmspropOptimizer,
    SgdOptimizer,
)
from dlspec.spec.sections.schedules import (
    ConstantSchedule,
    CosineRestartsSchedule,
    CosineSchedule,
    CyclicSchedule,
    ExponentialSchedule,
    Interval,
    MultiStepSchedule,
    OneCycleSchedule,
    Phase,
    PolynomialSchedule,
    ReduceOnPlateauSchedule,
    Schedule,
    ScheduleBase,
    ScheduleSection,
    SequentialSchedule,
    StepSchedule,
    Warmup,
)
from dlspec.tasks import classifying_tasks, task_names, tasks_with_classes

# --------------------------------------------------------------------------- task

# the task names are the task registry's (dlspec.tasks): a new task file adds its name here
if TYPE_CHECKING:
    TaskType = str
else:
    TaskType = Literal[tuple(task_names())]
_CLASSIFYING = classifying_tasks()
_WITH_CLASSES = tasks_with_classes()  # a class per sample, or per position


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
        for key, tasks in (("num_classes", _WITH_CLASSES), ("labels", _WITH_CLASSES),
                           ("threshold", _CLASSIFYING)):
            if getattr(self, key) is not None and self.type not in tasks:
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

# --------------------------------------------------------------------------- train

Metric = Literal[
    "accuracy", "top5_accuracy", "precision", "recall", "f1", "mae", "mse", "rmse", "r2",
    "pixel_accuracy", "iou", "dice", "knn_accuracy",
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
    checkpoint_steps: PositiveInt | None = Field(
        None, description="batches between checkpoints within an epoch too (for long "
        "epochs): --resume continues from the last one as if never stopped")
    metrics: Annotated[list[Metric] | dict[str, list[Metric]], ByName()] | None = Field(
        None, description="metrics computed each epoch (default: the task's); with several "
        "outputs, each metric on every output it suits, or a list per output")
    log_grad_norms: bool = Field(False, description="log gradient norms per layer group")
    num_workers: Annotated[int, Field(ge=0, le=64)] = Field(
        0, description="data-loading worker processes for data read from files as needed "
        "(data.cache none, or auto on data too large to hold); 0 reads in the main process")
    n_critic: PositiveInt = Field(1, description="GAN: discriminator steps per generator step")
    ema: float | None = Field(
        None, gt=0, lt=1, description="decay of an exponential moving average of the weights")
    deterministic: bool = Field(False, description="use deterministic algorithms only")
    log: Log | None = Field(
        None, description="loggers that hear every epoch: tensorboard, mlflow, a list of them, "
        "or a mapping with their settings")

    @property
    def mixed_precision(self) -> bool:
        """Whether training runs under autocast."""
        return self.amp or self.precision != "fp32"

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        lists = (self.metrics.items() if isinstance(self.metrics, dict)
                 else [(None, self.metrics or [])])
        for output, names in lists:
            if len(set(names)) != len(names):
                fail("metrics are listed twice", "metrics", *([output] if output else []),
                     value=names)
        return self


# --------------------------------------------------------------------------- transfer, export


class TransferConfig(Section):
    """Start from trained weights: a dlspec run's, or a file from torchvision, timm and the like.

    `rename` rewrites the file's tensor names before they are matched with the network's:
    each pattern is a Python regular expression applied with `re.sub` to every name, in the
    order written (as mmengine's `revise_keys`). Patterns are kept simple so that matching
    stays fast on any name: at most 200 characters, no back-references, and no repetition
    nested in a repetition (the forms that backtrack exponentially).
    """

    init_from: ReadPath = Field(
        min_length=1, description="the weights to load, relative to the spec's folder: a run "
        "folder, a .safetensors file, or a PyTorch state_dict file (.pth, .pt: "
        "torch.save(model.state_dict()), read weights-only)")
    rename: Annotated[list[dict[str, str]] | dict[str, str], ByName()] = Field(
        default_factory=dict, description="rewrite the file's tensor names before matching: "
        "regular expression → replacement (re.sub, \\1 for a group), applied in order; a "
        "list of such mappings to use a pattern twice")
    layers: Patterns = Field(["*"], description="glob patterns of the layers to load")
    freeze: list[Annotated[str, Field(min_length=1)]] = Field(
        [], description="glob patterns of the layers not to train")
    strict: bool = Field(False, description="fail when a matching weight cannot be loaded")

    @property
    def rename_rules(self) -> list[tuple[str, str]]:
        """`rename` as (pattern, replacement) pairs, in the order they apply."""
        mappings = self.rename if isinstance(self.rename, list) else [self.rename]
        return [pair for mapping in mappings for pair in mapping.items()]

    @model_validator(mode="after")
    def _check_rename(self) -> TransferConfig:
        mappings = self.rename if isinstance(self.rename, list) else [self.rename]
        where = [("rename", i) if isinstance(self.rename, list) else ("rename",)
                 for i in range(len(mappings))]
        if sum(len(m) for m in mappings) > 100:
            fail("rename has more than 100 patterns", "rename")
        for loc, mapping in zip(where, mappings, strict=True):
            for pattern, replacement in mapping.items():
                if problem := self._rename_problem(pattern, replacement):
                    fail(problem, *loc, pattern, value=pattern)
        return self

    @classmethod
    def _rename_problem(cls, pattern: str, replacement: str) -> str | None:
        """Why `pattern → replacement` cannot rename tensors, or None when it can."""
        import re

        for text, what in ((pattern, "pattern"), (replacement, "replacement")):
            if len(text) > 200:
                return f"a {what} of {len(text)} characters is too long (at most 200)"
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            return f"not a regular expression: {exc.msg} at position {exc.pos}"
        if risk := cls._backtracking_risk(re._parser.parse(pattern)):  # type: ignore[attr-defined]
            example = (", e.g. `^layer(\\d+)\\.` rather than `^(layer\\d+)+\\.`"
                       if "repetition" in risk else "")
            return (f"the pattern holds {risk}, which can make matching take exponential "
                    f"time; write it without{example}")
        try:  # a bad group reference in the replacement is found when it is compiled
            compiled.sub(replacement, "")
        except (re.error, IndexError) as exc:
            return f"bad replacement '{replacement}': {exc}"
        return None

    @classmethod
    def _backtracking_risk(cls, items: Any, repeated: bool = False) -> str | None:
        """The construct of a parsed pattern (re._parser) that may backtrack exponentially:
        a back-reference, or a repetition or alternatives inside a repetition."""
        for op, value in items:
            name, inside = str(op), repeated
            if name in ("GROUPREF", "GROUPREF_EXISTS"):
                return "a back-reference"
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                _, most, body = value
                if most > 1 and repeated:
                    return "a repetition inside a repetition"
                parts, inside = [body], repeated or most > 1
            elif name == "BRANCH":
                if repeated:
                    return "alternatives inside a repetition"
                parts = list(value[1])
            elif name == "SUBPATTERN":
                parts = [value[3]]
            elif name in ("ASSERT", "ASSERT_NOT"):
                parts = [value[1]]
            elif name == "ATOMIC_GROUP":
                parts = [value]
            else:
                continue
            for part in parts:
                if risk := cls._backtracking_risk(part, inside):
                    return risk
        return None


class OnnxExport(Section):
    opset: int = Field(18, ge=14, le=21, description="ONNX opset version")
    dynamic_axes: DynamicAxes | None = Field(
        None, description="axes whose size may vary: batch, seq (every sequence input's "
        "length), and mappings input → its axes, a size for a fixed axis and a name for one "
        "that varies, e.g. [batch, {image: [3, height, width]}] (default: batch, and seq "
        "where an input is a sequence and the network allows it)")
    atol: NonNegativeFloat = Field(1e-4, description="absolute tolerance of the verification")
    rtol: NonNegativeFloat = Field(1e-3, description="relative tolerance of the verification")
    optimize: bool = Field(False, description="optimise the exported graph")
    file: OnnxFile | None = Field(
        None, min_length=1, description="file name in the run folder (default: model.onnx)")


def _onnx_suffix(value: str) -> str:
    if not value.endswith(".onnx"):
        raise ValueError(f"an ONNX file name ends in .onnx; found {value!r}")
    return value


# written into the run folder, beside the checkpoint: never elsewhere, never over its other files
OnnxFile = Annotated[WritePath, AfterValidator(_onnx_suffix)]


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
    loss: LossSection | None = Field(
        None, description="the objective minimised, or one loss per output (with weights) "
        "for a network with several")
    optimizer: OptimizerSection | None = Field(
        None, description="the optimizer, or one per network (GANs)")
    schedule: ScheduleSection | None = Field(
        None, description="the learning-rate schedule, or one per network (GANs)")
    data: DataConfig | None = Field(None, description="the data and how it is prepared")
    augment: AugmentConfig | None = Field(None, description="random changes to training samples")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the training loop")
    transfer: TransferConfig | None = Field(None, description="start from trained weights")
    export: ExportConfig | None = Field(None, description="exports of the trained model")


__all__ = [
    "AdadeltaOptimizer",
    "AdagradOptimizer",
    "AdamaxOptimizer",
    "AdamOptimizer",
    "AdamWOptimizer",
    "AugmentConfig",
    "AxisProblem",
    "Betas",
    "BinaryCrossEntropyLoss",
    "BuiltinDataset",
    "ClassWeights",
    "ColorJitter",
    "ConstantSchedule",
    "ContrastiveLoss",
    "CosineEmbeddingLoss",
    "CosineRestartsSchedule",
    "CosineSchedule",
    "CrossEntropyLoss",
    "CycleGanLoss",
    "CyclicSchedule",
    "DataConfig",
    "DynamicAxes",
    "EarlyStopping",
    "ExponentialSchedule",
    "ExportConfig",
    "fail",
    "FlipProbability",
    "Fraction",
    "GanLoss",
    "GradClip",
    "HingeLoss",
    "HuberLoss",
    "IMAGE_DATASETS",
    "ImageAugment",
    "InputShape",
    "Interval",
    "KlDivLoss",
    "L1Loss",
    "LOGGERS",
    "LeastSquaresLoss",
    "Log",
    "LogConfig",
    "Loss",
    "LossBase",
    "LossSection",
    "Metric",
    "MinimaxLoss",
    "MlflowLog",
    "MseLoss",
    "MultiStepSchedule",
    "NadamOptimizer",
    "NllLoss",
    "NonSaturatingLoss",
    "NormalizeStats",
    "OneCycleSchedule",
    "OnnxExport",
    "Optimizer",
    "OptimizerBase",
    "OptimizerSection",
    "ParamGroup",
    "Patterns",
    "PerNetwork",
    "Phase",
    "PolynomialSchedule",
    "RadamOptimizer",
    "RandomCrop",
    "ReduceOnPlateauSchedule",
    "Regularization",
    "resolve_axes",
    "RmspropOptimizer",
    "Schedule",
    "ScheduleBase",
    "ScheduleSection",
    "Section",
    "SEQUENCE_DATASETS",
    "SequenceAugment",
    "SequentialSchedule",
    "SgdOptimizer",
    "Shorthand",
    "Size2d",
    "SmoothL1Loss",
    "SupervisedLossBase",
    "Split",
    "StepSchedule",
    "SYNTHETIC_DATASETS",
    "Task",
    "TaskConfig",
    "TaskType",
    "TensorBoardLog",
    "TrainConfig",
    "TrainingSections",
    "TransferConfig",
    "TripletLoss",
    "Variants",
    "Warmup",
    "WassersteinGpLoss",
    "WassersteinLoss",
    "class_weights",
]
