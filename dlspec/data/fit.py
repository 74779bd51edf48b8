"""Fitting data to the network that reads it: the data as read (`RawData`), its samples checked
against the network's input, its targets shaped for the task, and the network's output checked
against the targets.

Every mismatch is a `SpecError` naming both sides, raised before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlspec.data.lazy import LazyColumn
from dlspec.data.samples import SampleFiles
from dlspec.errors import Path, Problem, SpecError
from dlspec.graph import InputDecl
from dlspec.layers.registry import Shape, format_shape
from dlspec.runtime.untrusted import first_nonfinite
from dlspec.spec.sections import TaskConfig
from dlspec.tasks import classifying_tasks, task_has
from dlspec.tasks.token_classification import PADDING

if TYPE_CHECKING:
    from dlspec.data import DataSplits

CLASSIFYING = classifying_tasks()  # the task table says which tasks classify
# the class index of a position that has none (past a sentence's end): PyTorch's
# cross_entropy ignores it by default (ignore_index=-100), as Hugging Face's tokenizers pad
IGNORE_INDEX = PADDING  # the token_classification task owns it
DATA: Path = ("data",)
_TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64, "int32": torch.int32,
                 "bool": torch.bool}


@dataclass
class RawData:
    """Samples as a source delivered them, before they are fitted to a network."""

    x: np.ndarray | SampleFiles  # (N, *sample_shape), or files read as needed
    y: np.ndarray | None  # (N,) class indices or labels, (N, ...) values; None: no targets
    source: str  # "digits (scikit-learn)"
    num_classes: int | None = None  # set when y holds class indices of a known set
    labels: list[str] | None = None  # class names in index order
    images: bool = False  # x holds (C, H, W) images with values in [0, 1]
    target_images: bool = False  # y holds images too (a second domain, for CycleGAN)
    measured: bool = False  # y holds measured values, even where they look like whole numbers


@dataclass
class Feed:
    """One network input's samples as a source delivered them."""

    x: np.ndarray | SampleFiles  # (N, *sample_shape), or files read as needed
    where: Path  # the spec key that named them, where a mismatch is reported
    images: bool = False  # (C, H, W) images with values in [0, 1]


@dataclass
class Mapped:
    """Data read for a network by name: samples per input, targets per output (each a
    RawData whose `y` holds them) and, for pairs, the splits already made."""

    feeds: dict[str, Feed]
    targets: dict[str, RawData]
    target_where: dict[str, Path]
    source: str
    unit: str = "samples"  # what one of them is called: samples, or pairs
    splits: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None = None


def classifies_positions(kind: str | None) -> bool:
    """Whether task `kind` wants a class per position (a pixel, a time step)."""
    return task_has(kind, "classifies_positions")


def predicts_values(kind: str | None) -> bool:
    """Whether task `kind` wants values (regression, forecasting)."""
    return task_has(kind, "predicts_values")


def resize_images(images: torch.Tensor, size: list[int]) -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to `size` = [height, width], bilinearly."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    # antialias: shrinking without it aliases; it is a no-op when enlarging
    resized = torch.nn.functional.interpolate(images, size=tuple(size), mode="bilinear",
                                              align_corners=False, antialias=True)
    return resized.clamp_(0.0, 1.0)  # (N, C, height, width)


def fit_inputs(x: np.ndarray | SampleFiles, name: str, decl: InputDecl, images: bool,
               where: Path = DATA) -> torch.Tensor | LazyColumn:
    """The samples as a tensor of the input's dtype (or, from files read as needed, a
    LazyColumn); SpecError at `where` when their shape differs or their values do not fit
    the dtype."""
    sample = tuple(x.shape[1:]) if isinstance(x, np.ndarray) else tuple(x.sample_shape)
    if sample != tuple(decl.shape):
        raise SpecError(Problem(
            where, f"the data's samples are {format_shape(sample)} but input {name} is "
            f"{format_shape(tuple(decl.shape))}", _shape_hint(sample, tuple(decl.shape), images)))
    if isinstance(x, SampleFiles):
        if decl.dtype != "float32" and x.dtype.kind not in "biu":
            raise SpecError(Problem(where, f"input {name} is {decl.dtype} but {x.shown} "
                                    f"holds {x.dtype} values", "token inputs need whole numbers"))
        return LazyColumn(x, _TORCH_DTYPES[decl.dtype])
    if decl.dtype == "float32":
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below
            values = np.ascontiguousarray(x, dtype=np.float32)
        check_finite(values, "the inputs" if where == DATA else f"the inputs of {name}", where)
        return torch.from_numpy(values)
    if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_) and \
            not np.array_equal(x, np.round(x)):
        raise SpecError(Problem(where, f"input {name} is {decl.dtype} but the data holds "
                                "non-integer values", "token inputs need whole numbers"))
    return torch.from_numpy(np.ascontiguousarray(x)).to(_TORCH_DTYPES[decl.dtype])


def check_finite(values: np.ndarray, what: str, where: Path = DATA) -> None:
    """SpecError naming the first sample of `values` (float32) with NaN or infinity; the
    readers of files name the file, row and column before this catch-all is reached."""
    sample = first_nonfinite(values) if len(values) else None
    if sample is None:
        return
    raise SpecError(Problem(where, f"{what} hold NaN or infinite values (or values beyond "
                            f"float32's range), first in sample {sample} (counting from 0)",
                            "fill or drop missing values; NaN and infinity cannot be trained "
                            "on"))


def _shape_hint(sample: Shape, wanted: Shape, images: bool) -> str | None:
    if not images or len(sample) != 3 or len(wanted) != 3:
        return None
    hints = []
    if sample[1:] != wanted[1:]:
        hints.append(f"add `resize: [{wanted[1]}, {wanted[2]}]`")
    if sample[0] != wanted[0]:
        hints.append("add `grayscale: true`" if wanted[0] == 1 else
                     f"the network wants {wanted[0]} channels")
    return " and ".join(hints) or None


def fit_target(raw: RawData, task: TaskConfig | None,
               where: Path = DATA) -> tuple[torch.Tensor, int | None]:
    """Targets as the task needs them, and the number of classes when there are classes.

    Classification: int64 class indices (N,). Regression and forecasting: float32 (N, k) — a
    target of one value per sample becomes (N, 1); image-shaped targets keep their shape. A
    class per position (segmentation, tagging): int64 (N, H, W) or (N, T). Without a task (or
    for GANs) targets keep their natural kind.
    """
    kind = task.type if task is not None else None
    y = raw.y
    if y is None:
        if kind in CLASSIFYING or predicts_values(kind) or classifies_positions(kind) \
                or task_has(kind, "embeds"):
            raise SpecError(Problem(where, f"task {kind} needs targets, but "
                                    f"{raw.source} has none", "set `y_key` to the targets"))
        return torch.zeros((len(raw.x), 0)), None
    # metric learning's classes say which samples belong together
    if kind is not None and (kind in CLASSIFYING or task_has(kind, "embeds")):
        return _class_indices(raw, y, kind, where)
    if kind is not None and classifies_positions(kind):
        return _class_maps(raw, y, kind, where)
    if predicts_values(kind):
        if raw.num_classes is not None:
            raise SpecError(Problem(where, f"{raw.source} has classes as targets, not "
                                    f"values for task {kind}", "use task: classification"))
        return _values(y, where), None
    if raw.num_classes is not None:  # GANs and task-less data: classes stay classes
        return torch.from_numpy(y.astype(np.int64)), raw.num_classes
    return _values(y, where), None


def fit_output_target(raw: RawData, name: str, output: Shape | None,
                      where: Path = DATA) -> tuple[torch.Tensor, int | None]:
    """The targets of output `name`, one of several, shaped by what the output is; and the
    number of classes when they are classes.

    An output of C ≥ 2 logits read against one whole number a sample (or against classes the
    data names) is a classifier: int64 indices (N,). Logits per position — (T, C) over (T,)
    targets, or (C, H, W) over (H, W) masks — classify positions: int64 (N, T) or (N, H, W).
    Anything else is values: float32, (N, k), shaped like the output. Without the output's
    shape (None) targets keep their natural kind.
    """
    y = raw.y
    assert y is not None  # outputs without targets get none
    sample = tuple(y.shape[1:])
    if output is None:
        if raw.num_classes is not None:
            return torch.from_numpy(y.astype(np.int64)), raw.num_classes
        return _values(y, where), None
    output = tuple(output)
    if len(output) == 1 and sample in ((), (1,)) and not raw.measured and (
            output[0] >= 2 or raw.num_classes is not None):
        return _output_classes(raw, y.reshape(-1), name, output, where)
    positions = (output[:-1] == sample or output[1:] == sample) and len(output) == len(sample) + 1
    if positions and sample and not raw.measured and whole_numbers(y):
        classes = output[-1] if output[:-1] == sample else output[0]
        indices, found = _class_maps(raw, y, "classifying positions", where)
        if found > classes:
            raise SpecError(Problem(where, f"the targets of output {name} hold class "
                                    f"{found - 1} but the output has {classes} logits per "
                                    "position"))
        return indices, classes
    values = _values(y, where)
    wanted = tuple(values.shape[1:])
    if wanted != output and not (wanted == (1,) and output == ()):
        raise SpecError(Problem(where, f"the targets of output {name} are "
                                f"{format_shape(wanted)} per sample but the output is "
                                f"{format_shape(output)}"))
    return values, None


def _output_classes(raw: RawData, y: np.ndarray, name: str, output: tuple[int, ...],
                    where: Path) -> tuple[torch.Tensor, int | None]:
    if not whole_numbers(y):
        raise SpecError(Problem(where, f"output {name} gives {output[0]} logits, so its "
                                f"targets are class indices, but those of {raw.source} are "
                                "not whole numbers", f"end {name} with `linear: 1` to predict "
                                "a value"))
    classes = raw.num_classes or output[0]
    if output == (1,):  # a binary logit: the two classes as 0.0 and 1.0, as BCE wants
        return torch.from_numpy(y.astype(np.float32)).reshape(-1, 1), None
    indices = y.astype(np.int64)
    low, high = (int(indices.min()), int(indices.max())) if len(indices) else (0, 0)
    if classes != output[0] or low < 0 or high >= classes:
        said = (f"{classes} classes" if raw.num_classes is not None
                else f"classes {low} to {high}")
        raise SpecError(Problem(where, f"the targets of output {name} hold {said} but it "
                                f"gives {output[0]} logits",
                                f"end {name} with `linear: {max(classes, high + 1)}`"))
    return torch.from_numpy(indices), classes


def _values(y: np.ndarray, where: Path = DATA) -> torch.Tensor:
    if not np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_):
        raise SpecError(Problem(where, f"the targets are {y.dtype} values, not numbers"))
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        array = np.ascontiguousarray(y, dtype=np.float32)
    check_finite(array, "the targets", where)
    values = torch.from_numpy(array)
    return values.reshape(-1, 1) if values.ndim == 1 else values  # (N, k) or (N, ...)


def _class_indices(raw: RawData, y: np.ndarray, kind: str,
                   where: Path = DATA) -> tuple[torch.Tensor, int]:
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise SpecError(Problem(where, f"task {kind} needs one class per sample, but the "
                                f"targets are {format_shape(tuple(y.shape[1:]))} per sample"))
    y = y.reshape(-1)
    if raw.measured:
        raise SpecError(Problem(where, f"{raw.source} has values as targets, not classes "
                                f"for task {kind}", "use task: regression"))
    if raw.num_classes is not None:
        return torch.from_numpy(y.astype(np.int64)), raw.num_classes
    if not whole_numbers(y):
        raise SpecError(Problem(where, f"task {kind} needs class labels, but the targets "
                                f"of {raw.source} are not whole numbers",
                                "use task: regression for continuous targets"))
    indices = y.astype(np.int64)
    if len(indices) and indices.min() < 0:
        raise SpecError(Problem(where, f"class indices must be 0 or more; {raw.source} "
                                f"has {indices.min()}"))
    return torch.from_numpy(indices), int(indices.max()) + 1 if len(indices) else 0


def _class_maps(raw: RawData, y: np.ndarray, kind: str,
                where: Path = DATA) -> tuple[torch.Tensor, int]:
    """A class index per position: masks (N, H, W) int64 (those of (N, 1, H, W) lose their
    channel axis) or sequences (N, T), where IGNORE_INDEX marks a position without a class."""
    if y.ndim == 4 and y.shape[1] == 1:
        y = y[:, 0]
    if task_has(kind, "classifies_pixels") and y.ndim != 3:
        raise SpecError(Problem(where, "task segmentation needs a mask per sample (height "
                                f"× width, a class index per pixel), but {raw.source} has "
                                f"targets of {format_shape(tuple(y.shape[1:]))} per sample"))
    if y.ndim not in (2, 3):
        raise SpecError(Problem(where, f"task {kind} needs a class per position (steps, or "
                                f"height × width), but {raw.source} has targets of "
                                f"{format_shape(tuple(y.shape[1:]))} per sample"))
    sequences = y.ndim == 2
    valid = y[y != IGNORE_INDEX] if sequences else y
    if not whole_numbers(y) or (valid.size and valid.min() < 0):
        if not sequences:
            raise SpecError(Problem(where, f"the masks of {raw.source} must hold class "
                                    "indices (0, 1, ...) per pixel", "threshold soft masks, "
                                    "e.g. y > 0.5"))
        raise SpecError(Problem(where, f"the targets of {raw.source} must hold a class index "
                                f"(0, 1, ...) per step, or {IGNORE_INDEX} where a sequence "
                                "has ended"))
    indices = y.astype(np.int64)
    found = int(valid.max()) + 1 if valid.size else 0
    classes = raw.num_classes or (max(found, 2) if not sequences else found)
    return torch.from_numpy(np.ascontiguousarray(indices)), classes


def whole_numbers(y: np.ndarray) -> bool:
    """Whether every target is a whole number (of an integer, boolean or float array)."""
    return np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_) or (
        np.issubdtype(y.dtype, np.floating) and bool(np.all(y == np.round(y))))


def check_classes(num_classes: int | None, task: TaskConfig | None, source: str) -> None:
    """SpecError when the data's number of classes differs from the task's (num_classes, or
    the number of labels)."""
    if task is None or num_classes is None:
        return
    if task.num_classes is not None and num_classes != task.num_classes:
        raise SpecError(Problem(
            ("data",), f"the data ({source}) has {num_classes} classes but task.num_classes is "
            f"{task.num_classes}", "make them agree"))
    if task.labels is not None and num_classes != len(task.labels):
        raise SpecError(Problem(
            ("data",), f"the data ({source}) has {num_classes} classes but task.labels names "
            f"{len(task.labels)}", "list one label per class"))


def check_outputs(splits: DataSplits, output_shape: tuple[int, ...],
                  task: TaskConfig | None) -> None:
    """SpecError when the network's per-sample output cannot be compared with the targets.

    Classification with C classes wants C outputs (or 1 when C is 2: a binary logit);
    regression and forecasting want the targets' per-sample shape; a class per step (T,)
    wants (T, C) logits, a class per pixel (C, H, W). GAN tasks are not checked: their
    networks' outputs are checked against each other.

    Example:
        >>> check_outputs(splits, (3,), task)   # digits: 10 classes
        Traceback (most recent call last):
        dlspec.errors.SpecError: task: the data has 10 classes but the network's output is 3
    """
    output_shape = tuple(output_shape)
    kind = task.type if task is not None else (
        "classification" if splits.num_classes is not None else "regression")
    if kind in CLASSIFYING:
        classes = splits.num_classes or 0
        if output_shape == (classes,) or (classes == 2 and output_shape in ((1,), ())):
            return
        where = ("task",) if task is not None and task.num_classes is not None else ("data",)
        hint = (f"end the network with `linear: {classes}`"
                + (" (or `linear: 1` with binary_cross_entropy)" if classes == 2 else ""))
        raise SpecError(Problem(where, f"the data has {classes} classes but the network's "
                                f"output is {format_shape(output_shape)}", hint))
    if classifies_positions(kind) and splits.train.target.ndim == 2:
        _check_step_outputs(splits, output_shape, task)
        return
    if classifies_positions(kind):
        _check_mask_outputs(splits, output_shape, task)
        return
    if predicts_values(kind):
        wanted = tuple(splits.train.target.shape[1:])
        if output_shape == wanted or (wanted == (1,) and output_shape == ()):
            return
        raise SpecError(Problem(("data",), f"the data's targets are {format_shape(wanted)} per "
                                f"sample but the network's output is "
                                f"{format_shape(output_shape)}",
                                f"end the network with `linear: {wanted[0]}`"
                                if len(wanted) == 1 else None))


def _check_mask_outputs(splits: DataSplits, output_shape: tuple[int, ...],
                        task: TaskConfig | None) -> None:
    """Segmentation wants (classes, H, W) logits per sample — or (1, H, W) for two classes,
    a binary logit per pixel — over the masks' H × W."""
    classes = splits.num_classes or 2
    mask = tuple(splits.train.target.shape[1:])
    channels = (classes,) if classes != 2 else (1, 2)
    if len(output_shape) == 3 and output_shape[1:] == mask and output_shape[0] in channels:
        return
    wanted = " or ".join(format_shape((c, *mask)) for c in channels)
    where = ("task",) if task is not None and task.num_classes is not None else ("data",)
    raise SpecError(Problem(where, f"the masks are {format_shape(mask)} with {classes} "
                            f"classes, so the network's output should be {wanted} (a logit "
                            f"per class and pixel), but it is {format_shape(output_shape)}",
                            "end the network with a 1×1 conv2d of "
                            f"{classes if classes != 2 else 1} output channels"))


def _check_step_outputs(splits: DataSplits, output_shape: tuple[int, ...],
                        task: TaskConfig | None) -> None:
    """A class per step of (T,) targets wants (T, classes) logits per sample."""
    classes = splits.num_classes or 2
    steps = tuple(splits.train.target.shape[1:])
    if output_shape == (*steps, classes):
        return
    where = ("task",) if task is not None and task.num_classes is not None else ("data",)
    raise SpecError(Problem(where, f"the targets are a class per step ({steps[0]} steps, "
                            f"{classes} classes), so the network's output should be "
                            f"{format_shape((*steps, classes))} (a logit per class and step), "
                            f"but it is {format_shape(output_shape)}",
                            f"end the network with `linear: {classes}` on the whole sequence"))
