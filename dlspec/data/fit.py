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

from dlspec.errors import Problem, SpecError
from dlspec.graph import InputDecl
from dlspec.layers.registry import Shape, format_shape
from dlspec.runtime.untrusted import first_nonfinite
from dlspec.spec.sections import TaskConfig

if TYPE_CHECKING:
    from dlspec.data import DataSplits

CLASSIFYING = ("classification", "sequence_classification")
PREDICTING_VALUES = ("regression", "forecasting")
SEGMENTING = "segmentation"  # a class per pixel
_TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64, "int32": torch.int32,
                 "bool": torch.bool}


@dataclass
class RawData:
    """Samples as a source delivered them, before they are fitted to a network."""

    x: np.ndarray  # (N, *sample_shape)
    y: np.ndarray | None  # (N,) class indices or labels, (N, ...) values; None: no targets
    source: str  # "digits (scikit-learn)"
    num_classes: int | None = None  # set when y holds class indices of a known set
    labels: list[str] | None = None  # class names in index order
    images: bool = False  # x holds (C, H, W) images with values in [0, 1]
    target_images: bool = False  # y holds images too (a second domain, for CycleGAN)
    measured: bool = False  # y holds measured values, even where they look like whole numbers


def resize_images(images: torch.Tensor, size: list[int]) -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to `size` = [height, width], bilinearly."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    # antialias: shrinking without it aliases; it is a no-op when enlarging
    resized = torch.nn.functional.interpolate(images, size=tuple(size), mode="bilinear",
                                              align_corners=False, antialias=True)
    return resized.clamp_(0.0, 1.0)  # (N, C, height, width)


def fit_inputs(x: np.ndarray, name: str, decl: InputDecl, images: bool) -> torch.Tensor:
    """The samples as a tensor of the input's dtype; SpecError when their shape differs."""
    sample = tuple(x.shape[1:])
    if sample != tuple(decl.shape):
        raise SpecError(Problem(
            ("data",), f"the data's samples are {format_shape(sample)} but input {name} is "
            f"{format_shape(tuple(decl.shape))}", _shape_hint(sample, tuple(decl.shape), images)))
    if decl.dtype == "float32":
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below
            values = np.ascontiguousarray(x, dtype=np.float32)
        check_finite(values, "the inputs")
        return torch.from_numpy(values)
    if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_) and \
            not np.array_equal(x, np.round(x)):
        raise SpecError(Problem(("data",), f"input {name} is {decl.dtype} but the data holds "
                                "non-integer values", "token inputs need whole numbers"))
    return torch.from_numpy(np.ascontiguousarray(x)).to(_TORCH_DTYPES[decl.dtype])


def check_finite(values: np.ndarray, what: str) -> None:
    """SpecError naming the first sample of `values` (float32) with NaN or infinity; the
    readers of files name the file, row and column before this catch-all is reached."""
    sample = first_nonfinite(values) if len(values) else None
    if sample is None:
        return
    raise SpecError(Problem(("data",), f"{what} hold NaN or infinite values (or values beyond "
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


def fit_target(raw: RawData, task: TaskConfig | None) -> tuple[torch.Tensor, int | None]:
    """Targets as the task needs them, and the number of classes when there are classes.

    Classification: int64 class indices (N,). Regression and forecasting: float32 (N, k) — a
    target of one value per sample becomes (N, 1); image-shaped targets keep their shape.
    Without a task (or for GANs) targets keep their natural kind.
    """
    kind = task.type if task is not None else None
    y = raw.y
    if y is None:
        if kind in CLASSIFYING or kind in PREDICTING_VALUES or kind == SEGMENTING:
            raise SpecError(Problem(("data",), f"task {kind} needs targets, but "
                                    f"{raw.source} has none", "set `y_key` to the targets"))
        return torch.zeros((len(raw.x), 0)), None
    if kind in CLASSIFYING:
        return _class_indices(raw, y, kind)
    if kind == SEGMENTING:
        return _class_maps(raw, y)
    if kind in PREDICTING_VALUES:
        if raw.num_classes is not None:
            raise SpecError(Problem(("data",), f"{raw.source} has classes as targets, not "
                                    f"values for task {kind}", "use task: classification"))
        return _values(y), None
    if raw.num_classes is not None:  # GANs and task-less data: classes stay classes
        return torch.from_numpy(y.astype(np.int64)), raw.num_classes
    return _values(y), None


def _values(y: np.ndarray) -> torch.Tensor:
    if not np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_):
        raise SpecError(Problem(("data",), f"the targets are {y.dtype} values, not numbers"))
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        array = np.ascontiguousarray(y, dtype=np.float32)
    check_finite(array, "the targets")
    values = torch.from_numpy(array)
    return values.reshape(-1, 1) if values.ndim == 1 else values  # (N, k) or (N, ...)


def _class_indices(raw: RawData, y: np.ndarray, kind: str) -> tuple[torch.Tensor, int]:
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise SpecError(Problem(("data",), f"task {kind} needs one class per sample, but the "
                                f"targets are {format_shape(tuple(y.shape[1:]))} per sample"))
    y = y.reshape(-1)
    if raw.measured:
        raise SpecError(Problem(("data",), f"{raw.source} has values as targets, not classes "
                                f"for task {kind}", "use task: regression"))
    if raw.num_classes is not None:
        return torch.from_numpy(y.astype(np.int64)), raw.num_classes
    if not _whole_numbers(y):
        raise SpecError(Problem(("data",), f"task {kind} needs class labels, but the targets "
                                f"of {raw.source} are not whole numbers",
                                "use task: regression for continuous targets"))
    indices = y.astype(np.int64)
    if len(indices) and indices.min() < 0:
        raise SpecError(Problem(("data",), f"class indices must be 0 or more; {raw.source} "
                                f"has {indices.min()}"))
    return torch.from_numpy(indices), int(indices.max()) + 1 if len(indices) else 0


def _class_maps(raw: RawData, y: np.ndarray) -> tuple[torch.Tensor, int]:
    """Segmentation targets: a class index per pixel, (N, H, W) int64 (masks of (N, 1, H, W)
    lose their channel axis)."""
    if y.ndim == 4 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 3:
        raise SpecError(Problem(("data",), "task segmentation needs a mask per sample (height "
                                f"× width, a class index per pixel), but {raw.source} has "
                                f"targets of {format_shape(tuple(y.shape[1:]))} per sample"))
    if not _whole_numbers(y) or (y.size and y.min() < 0):
        raise SpecError(Problem(("data",), f"the masks of {raw.source} must hold class indices "
                                "(0, 1, ...) per pixel", "threshold soft masks, e.g. y > 0.5"))
    indices = y.astype(np.int64)
    classes = raw.num_classes or (max(int(indices.max()) + 1, 2) if indices.size else 2)
    return torch.from_numpy(np.ascontiguousarray(indices)), classes


def _whole_numbers(y: np.ndarray) -> bool:
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
    regression and forecasting want the targets' per-sample shape. GAN tasks are not checked:
    their networks' outputs are checked against each other.

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
    if kind == SEGMENTING:
        _check_mask_outputs(splits, output_shape, task)
        return
    if kind in PREDICTING_VALUES:
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
