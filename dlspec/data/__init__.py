"""The data a spec trains on, split into train/val/test.

    DataConfig ─read─▶ Mapped: numpy samples per input (or files to read them from:
               │        samples.py, shards.py), targets per output (sources.py: builtin.py,
               │        files.py, tables.py, pairs.py)
               ─cache─▶ files decoded into memory, or left to be read as needed (data.cache)
               ─fit─▶ tensors (or LazyColumns, lazy.py) shaped for the network's inputs and
               │       outputs and the task (fit.py)
               ─split, normalise─▶ DataSplits

Training indexes batches of data held in memory straight out of the tensors with a
permutation, so no sample passes through Python on its own; data read as needed goes
through torch's DataLoader a batch at a time (lazy.py). Mismatches between the data and the
network (names, sample shapes and dtypes, number of classes, output sizes) are SpecErrors
raised before training starts, located at the data key that caused them.

Targets are keyed by the network's output names (`outputs`); a caller that does not give
them gets the one target keyed "target" (`TARGET`). `TensorSet.target` is the sole target,
for code that trains one output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dlspec.data.builtin import DATASETS
from dlspec.data.fit import (
    IGNORE_INDEX,
    Mapped,
    check_classes,
    check_outputs,
    fit_inputs,
    fit_output_target,
    fit_target,
    resize_images,
)
from dlspec.data.lazy import LazyColumn, streaming_statistics
from dlspec.data.samples import BAD_FILE_HINT, WRONG_SIZE_HINT, SampleFiles
from dlspec.data.sources import read_mapped
from dlspec.data.splits import split_indices
from dlspec.data.tables import TARGET
from dlspec.errors import Path as SpecPath
from dlspec.errors import Problem, SpecError
from dlspec.graph import InputDecl
from dlspec.layers.registry import Shape
from dlspec.memory import format_bytes, physical_memory
from dlspec.runtime.untrusted import Unreadable
from dlspec.spec.sections import DataConfig, NormalizeStats, TaskConfig
from dlspec.spec.sections.data import mapping_problems

_FLAT_STD = 1e-8  # a feature this flat is left unscaled rather than divided by ~0
# data.cache auto holds decoded samples in memory up to this much
CACHE_BUDGET = min(2 * 1024 ** 3, physical_memory() // 8)



@dataclass
class TensorSet:
    """Samples as whole tensors along axis 0: inputs by input name, targets by output name.

    A network with one output has one target; `target` returns it.
    """

    # name → (N, *input shape), or the samples read from files as needed
    inputs: dict[str, torch.Tensor | LazyColumn]
    # output name → (N,) class indices, (N, k) values, (N, T) / (N, H, W) classes per
    # position, or (N, 0) when there are none
    targets: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counts = {len(t) for t in (*self.inputs.values(), *self.targets.values())}
        if len(counts) > 1:
            raise ValueError(f"a TensorSet's tensors differ in length: {sorted(counts)}")

    @property
    def target(self) -> torch.Tensor:
        """The targets of the one output; ValueError when there are several (or none)."""
        if len(self.targets) != 1:
            names = ", ".join(self.targets) or "none"
            raise ValueError(f"this data has targets for {len(self.targets)} outputs "
                             f"({names}), not one: read data.targets[name]")
        return next(iter(self.targets.values()))

    def __len__(self) -> int:
        for tensor in (*self.inputs.values(), *self.targets.values()):
            return len(tensor)
        return 0

    def tensors(self) -> dict[str, torch.Tensor]:
        """The inputs as tensors, those read from files read now (for a few samples: the
        test split an export is checked on, say)."""
        return {name: column.materialize() if isinstance(column, LazyColumn) else column
                for name, column in self.inputs.items()}

    def subset(self, index: torch.Tensor) -> TensorSet:
        """The samples at `index` (a 1-D tensor of positions or a boolean mask)."""
        return TensorSet({k: v[index] for k, v in self.inputs.items()},
                         {k: v[index] for k, v in self.targets.items()})


@dataclass
class DataSplits:
    """The data of one run: its splits and what is known about it."""

    train: TensorSet
    val: TensorSet | None
    test: TensorSet | None
    # the classes of the one target (or of the one target of classes, among several)
    num_classes: int | None
    labels: list[str] | None
    # input name → {"mean": [...], "std": [...]}, computed on the training split and already
    # applied to every split; empty when the spec asks for no normalisation
    normalization: dict[str, dict[str, list[float]]]
    source: str  # "digits (scikit-learn), 1797 samples"
    # image targets (digits_pair's second domain) are normalised like images too
    target_normalization: dict[str, list[float]] | None = None
    image_inputs: list[str] = field(default_factory=list)  # inputs read from images
    # per target (output name): its number of classes (None: values) and class names
    target_classes: dict[str, int | None] = field(default_factory=dict)
    target_labels: dict[str, list[str] | None] = field(default_factory=dict)


def load_data(data: DataConfig, task: TaskConfig | None, inputs: dict[str, InputDecl], *,
              seed: int, base_dir: Path, outputs: dict[str, Shape] | None = None,
              streamable: bool = False, workers: int = 0) -> DataSplits:
    """Read, fit, split and normalise the data of a spec for a network with `inputs`.

    `outputs` (output name → per-sample shape) keys the targets by output name and, with
    several outputs, shapes each target for its output (class indices for logits, values
    otherwise); without it the one target is keyed "target" and shaped for the task. `seed`
    (train.seed) is used unless the data section has its own; `base_dir` is the spec file's
    folder, against which file paths are resolved. A `streamable` caller trains batch by
    batch and can take inputs read from files as needed (`data.cache`); `workers` processes
    then compute their normalisation statistics.

    Example:
        >>> config = DataConfig(dataset="digits", resize=[32, 32], normalize="auto")
        >>> splits = load_data(config, TaskConfig(type="classification"),
        ...                    {"image": InputDecl((1, 32, 32))}, seed=0, base_dir=Path("."))
        >>> splits.train.inputs["image"].shape, splits.num_classes
        (torch.Size([1437, 1, 32, 32]), 10)
        >>> multi = load_data(DataConfig(dataset="listings"), None,
        ...                   {"image": InputDecl((3, 64, 64)), "features": InputDecl((12,))},
        ...                   seed=0, base_dir=Path("."),
        ...                   outputs={"category": (5,), "price": (1,)})
        >>> multi.train.targets["category"].shape, multi.train.targets["price"].shape
        (torch.Size([800]), torch.Size([800, 1]))
    """
    outputs = dict(outputs) if outputs else None
    problems = mapping_problems(data, inputs, outputs)
    if problems:
        raise SpecError(problems)
    seed = data.seed if data.seed is not None else seed
    mapped = read_mapped(data, task, inputs, outputs, seed, base_dir)
    reading = choose_cache(mapped, data, streamable)
    count = _count(mapped)
    if count == 0:
        raise SpecError(Problem(("data",), f"{mapped.source} holds no samples"))
    if data.resize is not None:
        _resize(mapped, data.resize)
    x = {name: fit_inputs(feed.x, name, inputs[name], feed.images, feed.where)
         for name, feed in mapped.feeds.items()}
    targets, classes = _fit_targets(mapped, task, outputs)
    labels = _target_labels(mapped, task, classes)
    num_classes, class_labels = _the_classes(classes, labels, task, mapped.source)
    train, val, test = mapped.splits or split_indices(count, data.split, seed)
    normalization = _normalize_inputs(x, train, data, inputs, workers)
    target_normalization = None
    imaged = [k for k, raw in mapped.targets.items() if raw.target_images]
    if data.normalize is not None and imaged:
        (key,) = imaged
        targets[key], target_normalization = normalize(targets[key], train, data.normalize,
                                                       "target")
    whole = TensorSet(x, targets)
    return DataSplits(
        train=whole.subset(train),
        val=whole.subset(val) if val is not None else None,
        test=whole.subset(test) if test is not None else None,
        num_classes=num_classes,
        labels=class_labels,
        normalization=normalization,
        source=f"{mapped.source}, {count} {mapped.unit}{reading}",
        target_normalization=target_normalization,
        image_inputs=[name for name, feed in mapped.feeds.items() if feed.images],
        target_classes=classes,
        target_labels=labels,
    )


def _count(mapped: Mapped) -> int:
    """The number of samples, the same in every array; SpecError where one differs."""
    arrays: list[tuple[str, np.ndarray | SampleFiles, SpecPath]] = [
        (name, feed.x, feed.where) for name, feed in mapped.feeds.items()]
    arrays += [(name, raw.y, mapped.target_where[name]) for name, raw in mapped.targets.items()
               if raw.y is not None]
    first, values, _ = arrays[0]
    for name, array, where in arrays:
        counted = not isinstance(array, np.ndarray) or array.ndim > 0
        if not counted or len(array) != len(values):
            raise SpecError(Problem(where, f"the data of {name} has "
                                    f"{len(array) if counted else 'no'} samples but that "
                                    f"of {first} has {len(values)}", "every array needs one "
                                    "entry per sample along its first axis"))
    return len(values)


def choose_cache(mapped: Mapped, data: DataConfig, streamable: bool) -> str:
    """Read the inputs that come from files into memory, or leave them to be read as
    needed, as `data.cache` says; what was chosen, as the data's source reports it."""
    files = {name: feed.x for name, feed in mapped.feeds.items()
             if isinstance(feed.x, SampleFiles)}
    where = ("data", "cache")
    if not files:
        if data.cache == "none":
            raise SpecError(Problem(where, f"{data.source} {getattr(data, data.source)} is "
                                    "read into memory whole: cache none applies to images "
                                    "(image_folder, images beside a csv, shards) and arrays "
                                    "stored uncompressed in an .npz", "remove cache: none, or "
                                    "store the inputs in an .npz with numpy.savez"))
        return ""
    total = sum(f.decoded_bytes for f in files.values())
    size = format_bytes(total)
    if data.cache == "none" and not streamable:
        raise SpecError(Problem(where, "this task reads its data whole (pairs, GANs, "
                                "CycleGAN, metric learning and reconstruction): it cannot read "
                                "it as needed", "remove cache: none"))
    if data.cache == "none" or (data.cache == "auto" and streamable and total > CACHE_BUDGET):
        why = ("cache none" if data.cache == "none" else
               f"cache auto: {size} decoded is over the {format_bytes(CACHE_BUDGET)} budget")
        return f"; read from the files batch by batch ({why})"
    skipped: dict[int, str] | None = {} if data.bad_files == "skip" else None
    for feed in mapped.feeds.values():
        if isinstance(feed.x, SampleFiles):
            feed.x = feed.x.materialize(skipped)
    said = f"; held in memory ({size}{', cache auto' if data.cache == 'auto' else ''})"
    if skipped:
        _drop_unreadable(mapped, skipped)
        said += f"; {skipped_files(skipped.values())}"
    return said


def _drop_unreadable(mapped: Mapped, skipped: dict[int, str]) -> None:
    """Leave the samples that could not be read out of every array."""
    keep = np.ones(_count(mapped), dtype=bool)
    keep[list(skipped)] = False
    for feed in mapped.feeds.values():
        assert isinstance(feed.x, np.ndarray)
        feed.x = feed.x[keep]
    for raw in mapped.targets.values():
        if raw.y is not None:
            raw.y = raw.y[keep]


def skipped_files(failures: Iterable[str]) -> str:
    """What bad_files: skip left out, as the report says it."""
    shown = sorted(failures)
    return (f"{len(shown)} unreadable file{'s' if len(shown) != 1 else ''} skipped "
            f"({'; '.join(shown[:3])}{'; …' if len(shown) > 3 else ''})")


def _resize(mapped: Mapped, size: list[int]) -> None:
    """Images (and image targets) resized to `size` = [height, width], in place."""
    for feed in mapped.feeds.values():
        if feed.images and isinstance(feed.x, np.ndarray):  # files are resized as read
            feed.x = resize_images(torch.from_numpy(feed.x), size).numpy()
    for raw in mapped.targets.values():
        if raw.target_images and raw.y is not None:
            raw.y = resize_images(torch.from_numpy(raw.y), size).numpy()


def _fit_targets(mapped: Mapped, task: TaskConfig | None, outputs: dict[str, Shape] | None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, int | None]]:
    """Targets per output, and their classes: one target as the task wants it; several, each
    as its output wants it."""
    targets, classes = {}, {}
    if len(mapped.targets) == 1:
        ((name, raw),) = mapped.targets.items()
        targets[name], classes[name] = fit_target(raw, task, mapped.target_where[name])
        return targets, classes
    for name, raw in mapped.targets.items():
        shape = outputs.get(name) if outputs is not None else None
        targets[name], classes[name] = fit_output_target(raw, name, shape,
                                                         mapped.target_where[name])
    return targets, classes


def _target_labels(mapped: Mapped, task: TaskConfig | None,
                   classes: dict[str, int | None]) -> dict[str, list[str] | None]:
    """The class names of each target of classes: task.labels for the one such target,
    else the data's own (when they name every class)."""
    with_classes = [name for name, count in classes.items() if count is not None]
    labels: dict[str, list[str] | None] = {}
    for name, count in classes.items():
        own = mapped.targets[name].labels
        if count is None:
            labels[name] = None
        elif task is not None and task.labels and with_classes == [name]:
            labels[name] = list(task.labels)
        else:
            labels[name] = list(own) if own is not None and len(own) == count else None
    return labels


def _the_classes(classes: dict[str, int | None], labels: dict[str, list[str] | None],
                 task: TaskConfig | None, source: str) -> tuple[int | None, list[str] | None]:
    """The number of classes and labels of the data: those of its one target of classes,
    checked against the task's num_classes and labels."""
    with_classes = [name for name, count in classes.items() if count is not None]
    if len(with_classes) != 1:
        return None, None
    (name,) = with_classes
    check_classes(classes[name], task, source)
    return classes[name], labels[name]


def _normalize_inputs(x: dict[str, torch.Tensor | LazyColumn], train: torch.Tensor,
                      data: DataConfig, inputs: dict[str, InputDecl], workers: int,
                      ) -> dict[str, dict[str, list[float]]]:
    """Every float input standardised in place with its own statistics (see `normalize`;
    those of inputs read from files in one streaming pass, `normalize_lazy`).

    One input must be float to be normalised; of several, token ids are left as they are."""
    how = data.normalize
    if how is None:
        return {}
    floats = [name for name, tensor in x.items() if tensor.is_floating_point()]
    if not floats:
        name = next(iter(x))
        said = (f"input {name} is {inputs[name].dtype}" if len(x) == 1
                else f"the inputs {', '.join(x)} are not float")
        raise SpecError(Problem(("data", "normalize"), f"{said}; normalisation applies to "
                                "float inputs"))
    normalization = {}
    for name in floats:
        column = x[name]
        if isinstance(column, LazyColumn):
            normalization[name] = normalize_lazy(column, train, how, name, data, workers)
        else:
            x[name], normalization[name] = normalize(column, train, how, name)
    return normalization


def normalize_lazy(column: LazyColumn, train: torch.Tensor, how: str | NormalizeStats,
                   name: str, data: DataConfig, workers: int) -> dict[str, list[float]]:
    """`column` standardised as it is read: with fixed statistics, or with those of the
    training split's samples computed in one streaming pass (float64)."""
    axis = 1 if column.ndim >= 4 else column.ndim - 1 if column.ndim >= 2 else None
    if isinstance(how, NormalizeStats):
        mean = torch.tensor(how.mean, dtype=torch.float64)
        std = torch.tensor(how.std, dtype=torch.float64)
        channels = column.shape[axis] if axis is not None else 1
        if len(mean) != channels:
            raise SpecError(Problem(("data", "normalize"), f"normalize gives {len(mean)} "
                                    f"values but {name} has {channels} "
                                    f"{'channels' if column.ndim >= 4 else 'features'}"))
    else:
        try:
            mean, std, failures, refused = streaming_statistics(column[train], axis,
                                                                workers=workers)
        except Unreadable as error:
            raise SpecError(Problem(("data", data.source), str(error))) from None
        if refused:
            raise SpecError(Problem(("data", data.source), refused[0], WRONG_SIZE_HINT))
        if failures and data.bad_files == "refuse":
            raise SpecError(Problem(("data", data.source), failures[0], BAD_FILE_HINT))
        std = torch.where(std < _FLAT_STD, torch.ones_like(std), std)
    view = [1] * column.ndim
    if axis is not None:
        view[axis] = -1
    column.stats = (mean.float().reshape(view), std.float().reshape(view))
    return {"mean": mean.tolist(), "std": std.tolist()}


def normalize(x: torch.Tensor, train: torch.Tensor, how: str | NormalizeStats,
              name: str) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """`x` standardised per channel (images) or per feature (tables, sequences).

    `how` is "auto" (mean and std of the samples at `train`) or fixed statistics.
    """
    axis = _channel_axis(x)
    channels = x.shape[axis] if axis is not None else 1
    if isinstance(how, NormalizeStats):
        if len(how.mean) != channels:
            raise SpecError(Problem(("data", "normalize"), f"normalize gives {len(how.mean)} "
                                    f"values but {name} has {channels} "
                                    f"{'channels' if x.ndim >= 4 else 'features'}"))
        mean = torch.tensor(how.mean, dtype=torch.float64)
        std = torch.tensor(how.std, dtype=torch.float64)
    else:
        sample = x[train].double()
        dims = [d for d in range(sample.ndim) if d != axis]
        mean = sample.mean(dim=dims).reshape(channels)
        std = sample.std(dim=dims, correction=0).reshape(channels)
        std = torch.where(std < _FLAT_STD, torch.ones_like(std), std)
    view = [1] * x.ndim
    if axis is not None:
        view[axis] = channels
    scaled = (x - mean.reshape(view).float()) / std.reshape(view).float()
    return scaled, {"mean": mean.tolist(), "std": std.tolist()}


def _channel_axis(x: torch.Tensor) -> int | None:
    """The axis statistics are kept per: channels of (N, C, H, W) / (N, C, D, H, W) images,
    the last axis of (N, features) tables and (N, steps, features) sequences."""
    if x.ndim >= 4:
        return 1
    return x.ndim - 1 if x.ndim >= 2 else None


__all__ = [
    "BAD_FILE_HINT",
    "WRONG_SIZE_HINT",
    "DATASETS",
    "IGNORE_INDEX",
    "TARGET",
    "DataSplits",
    "LazyColumn",
    "TensorSet",
    "check_outputs",
    "load_data",
    "mapping_problems",
    "skipped_files",
    "normalize",
    "split_indices",
]
