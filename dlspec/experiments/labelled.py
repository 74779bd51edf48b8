"""Labelled data for a model, read without torch: inputs through the runtime's readers, and
the labels beside them.

    CSV           the inputs' columns and a label column: `--label-column`, else the one the
                  run trained on, else `label`, `target` or `y` (a header row names them)
    NPZ           the inputs' arrays and a label array (the same names; `y` usually)
    image folder  one sub-folder per class, named after it

A classifier's labels are its class names (or class indices, 0 to C−1); a name the model
does not know is refused naming the file and line (or sub-folder). A regressor's labels are
numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlspec.contract import ImageSpec, TensorInfo
from dlspec.errors import Problem, SpecError
from dlspec.runtime.readers import LABEL_COLUMNS, Labels, Samples, read_inputs
from dlspec.runtime.untrusted import excerpt, excerpts, printable


@dataclass
class Reading:
    """How to read labelled data for a model."""

    inputs: Sequence[TensorInfo]
    images: Mapping[str, ImageSpec]
    classes: list[str] | None  # a classifier's class names by index; None: a regressor
    label_columns: Sequence[str] = LABEL_COLUMNS  # where labels may be, the first found


@dataclass
class Labelled:
    """Samples and their labels: class indices (N,) or values (N, k)."""

    samples: Samples
    truth: np.ndarray
    source: str  # where the labels came from, as a message says it


def read_labelled(path: Path, reading: Reading, label_column: str | None = None) -> Labelled:
    """The samples in `path` and their labels, for a model read as `reading` says.

    Example:
        >>> labelled = read_labelled(Path("test.csv"), Reading(inputs, {}, ["cat", "dog"]))
        >>> labelled.truth[:3], labelled.source
        (array([0, 1, 1]), "column 'label'")
    """
    shown = printable(str(path))
    if path.is_dir():
        if reading.classes is None:
            raise SpecError(Problem((), f"{shown} is a folder of images, whose sub-folders "
                                    "name classes, but the model predicts values",
                                    "give a CSV or NPZ with the true values"))
        samples = read_inputs(path, reading.inputs, reading.images)
        return Labelled(samples, _folder_classes(path, samples, reading.classes),
                        "its sub-folders")
    columns = [label_column] if label_column is not None else list(reading.label_columns)
    samples = read_inputs(path, reading.inputs, reading.images, label_columns=columns,
                          labelled=True)
    if samples.labels is None:
        raise _no_labels(path, columns, label_column is not None)
    labels = samples.labels
    if len(labels.values) != len(samples):
        raise SpecError(Problem((), f"{shown}: {len(labels.values):,} labels in "
                                f"{excerpt(labels.column)} for {len(samples):,} samples",
                                "give one label per sample"))
    truth = (_classes(path, labels, reading.classes) if reading.classes is not None
             else _values(path, labels))
    what = "array" if path.suffix.lower() == ".npz" else "column"
    return Labelled(samples, truth, f"{what} {excerpt(labels.column)}")


def _no_labels(path: Path, columns: list[str], named: bool) -> SpecError:
    """The error for an .npy or .npz without labels (a CSV's reader says its own)."""
    shown = printable(str(path))
    if path.suffix.lower() != ".npz":
        return SpecError(Problem((), f"{shown} holds one array, the inputs, and no labels",
                                 "give an .npz with the labels beside the inputs: "
                                 "numpy.savez(path, x=inputs, y=labels), or a CSV"))
    said = (f"no array {excerpt(columns[0])}" if named
            else f"no array of labels ({', '.join(excerpt(c) for c in columns)})")
    return SpecError(Problem((), f"{shown} has {said}",
                             "name its array of labels with --label-column"))


def _folder_classes(path: Path, samples: Samples, classes: list[str]) -> np.ndarray:
    """Each image's class: the sub-folder it lies in."""
    names = samples.names or []
    index = {name: i for i, name in enumerate(classes)}
    truth = []
    for name in names:
        folder, _, rest = name.partition("/")
        if not rest:
            raise SpecError(Problem((), f"{printable(str(path / name))} lies in no class "
                                    "sub-folder", "put each image in a sub-folder named after "
                                    "its class"))
        if folder not in index:
            raise SpecError(Problem((), f"{printable(str(path / folder))}: the sub-folder "
                                    f"{excerpt(folder)} is not a class of the model",
                                    f"its classes are {excerpts(classes)}"))
        truth.append(index[folder])
    return np.array(truth, dtype=np.int64)


def _classes(path: Path, labels: Labels, classes: list[str]) -> np.ndarray:
    """Class indices of the labels: class names, or whole numbers 0 to C−1."""
    values = labels.values
    if isinstance(values, np.ndarray):
        return _array_classes(path, labels, values, len(classes))
    index = {name: i for i, name in enumerate(classes)}
    if all(cell in index for cell in values):
        return np.array([index[cell] for cell in values], dtype=np.int64)
    numbers = [_whole(cell) for cell in values]
    if all(n is not None and 0 <= n < len(classes) for n in numbers):
        return np.array(numbers, dtype=np.int64)
    unknown = [cell for cell in values if cell not in index]
    at = values.index(unknown[0])
    line = f":{labels.lines[at]}" if labels.lines else ""
    others = len(set(unknown)) - 1
    more = f" (and {others:,} other unknown label{'s' * (others > 1)})" if others else ""
    raise SpecError(Problem((), f"{printable(str(path))}{line}: column "
                            f"{excerpt(labels.column)} holds {excerpt(unknown[0])}, which is "
                            f"not a class of the model{more}",
                            f"its classes are {excerpts(classes)}"
                            + ("" if classes == [str(i) for i in range(len(classes))] else
                               f" (or their indices 0 to {len(classes) - 1})")))


def _array_classes(path: Path, labels: Labels, values: np.ndarray, count: int) -> np.ndarray:
    """Class indices from an NPZ array: whole numbers 0 to count−1, one per sample."""
    shown = f"{printable(str(path))}: array {excerpt(labels.column)}"
    flat = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
    if values.ndim == 0 or flat.shape[1] != 1:
        raise SpecError(Problem((), f"{shown} has shape {values.shape}, not one class index "
                                "per sample", "give class indices of shape (N,)"))
    flat = flat[:, 0]
    if values.dtype.kind == "b":
        flat = flat.astype(np.int64)
    whole = flat == np.round(flat) if flat.dtype.kind == "f" else np.ones(len(flat), bool)
    wrong = ~whole | (flat < 0) | (flat >= count)
    if wrong.any():
        sample = int(np.argmax(wrong))
        raise SpecError(Problem((), f"{shown}: sample {sample} (counting from 0) is "
                                f"{flat[sample].item()!r}, not a class index of the model",
                                f"the model has {count} classes: indices 0 to {count - 1}"))
    return flat.astype(np.int64)


def _values(path: Path, labels: Labels) -> np.ndarray:
    """A regressor's true values, (N, k) float64."""
    values = labels.values
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            raise SpecError(Problem((), f"{printable(str(path))}: array "
                                    f"{excerpt(labels.column)} is a single value",
                                    "give one value (or row of values) per sample"))
        return values.reshape(len(values), -1).astype(np.float64)
    numbers = []
    for i, cell in enumerate(values):
        number = _number(cell)
        if number is None:
            line = f":{labels.lines[i]}" if labels.lines else ""
            raise SpecError(Problem((), f"{printable(str(path))}{line}: column "
                                    f"{excerpt(labels.column)} holds {excerpt(cell)}, not a "
                                    "finite number", "a regressor's labels are its true "
                                    "values"))
        numbers.append(number)
    return np.array(numbers, dtype=np.float64).reshape(-1, 1)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _whole(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value.is_integer() else None
