"""Inputs read from files for `dlspec predict`: .npy, .npz, .csv, or a folder of images.

Every reader returns raw values (normalisation is the Predictor's job) as `Samples`; images
are loaded as in training: Pillow, "L" or "RGB", bilinear resize, scaled to [0, 1], C×H×W.

A file may still hold its labels: a CSV column or an NPZ array named in `label_columns`.
`dlspec predict` leaves such a CSV column out when the rows are one column too wide without
it; `dlspec evaluate` (`labelled=True`) always takes it out, and keeps it as `Samples.labels`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlspec.contract import ImageSpec, TensorInfo
from dlspec.errors import Problem, SpecError
from dlspec.memory import format_bytes
from dlspec.runtime.untrusted import (
    IMAGE_SUFFIXES,
    MAX_ARRAY_BYTES,
    Unreadable,
    array_names,
    excerpt,
    excerpts,
    first_nonfinite,
    load_array,
    printable,
    read_csv_text,
    read_image,
)

# what a label column is usually called, after the one a run names
LABEL_COLUMNS = ("label", "target", "y")
_RESOLVED_SPEC = "spec.resolved.yaml"  # in a run folder: the spec the run trained
_MAX_RESOLVED_SPEC_BYTES = 4 * 2**20
_KINDS_HINT = "give an .npy, .npz or .csv file, or a folder of images"
_FINITE_HINT = "predictions of NaN or infinity mean nothing: fill or drop those values"


@dataclass
class Labels:
    """The labels a file of inputs held beside them: a CSV column or an NPZ array."""

    column: str  # the CSV column or NPZ array they came from
    values: list[str] | np.ndarray  # CSV cells, or the array
    lines: list[int] | None = None  # each CSV cell's line in the file


@dataclass
class Samples:
    """Arrays by input name, one row per sample; `names` label the rows (images: their paths)."""

    arrays: dict[str, np.ndarray]
    names: list[str] | None = None
    labels: Labels | None = None  # labels taken out of the file (see the module's doc)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


def read_inputs(path: Path, inputs: Sequence[TensorInfo], images: Mapping[str, ImageSpec], *,
                label_columns: Sequence[str] = (), labelled: bool = False) -> Samples:
    """The samples in `path` for a model with `inputs` (and image loading `images`).

    `label_columns` names the columns (NPZ: arrays) that may hold labels, the first found
    counting; with `labelled` it is always taken out (an NPZ's too), else only from a CSV
    whose rows are one column too wide with it.
    """
    if not path.exists():
        raise SpecError(Problem((), f"input not found: {_shown(path)}", _KINDS_HINT))
    if path.is_dir():
        name, spec = image_input(path, inputs, images)
        files, pixels = read_image_folder(path, spec)
        return Samples({name: pixels}, files)
    if not path.is_file():  # a FIFO or a device: reading it could block or never end
        raise SpecError(Problem((), f"{_shown(path)} is not a regular file", _KINDS_HINT))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, inputs, label_columns, labelled)
    if suffix == ".npz" and labelled:
        return _read_labelled_npz(path, inputs, label_columns)
    readers: dict[str, Callable[[Path, Sequence[TensorInfo]], Samples]] = {
        ".npy": read_npy, ".npz": read_npz}
    reader = readers.get(suffix)
    if reader is None:
        shown = printable(path.suffix)
        what = f"{shown} files" if shown else "files without an extension"
        raise SpecError(Problem((), f"{_shown(path)}: cannot read {what}", _KINDS_HINT))
    return reader(path, inputs)


def label_columns_beside(model: Path) -> list[str]:
    """The columns that may hold labels for the model at `model`: the one the run it lies in
    trained on (its spec.resolved.yaml's `data.target`, or the one column of `data.targets`),
    then the usual names (`LABEL_COLUMNS`).

    The run folder is only a hint here: a resolved spec that cannot be read is passed over.
    """
    return list(dict.fromkeys([*_run_label_column(model.parent / _RESOLVED_SPEC),
                               *LABEL_COLUMNS]))


def _run_label_column(path: Path) -> list[str]:
    import yaml

    try:
        if not path.is_file() or path.stat().st_size > _MAX_RESOLVED_SPEC_BYTES:
            return []
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError):
        return []
    data = spec.get("data") if isinstance(spec, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("csv"), str):
        return []
    targets = data.get("targets")
    if isinstance(targets, dict) and len(targets) == 1:
        (column,) = targets.values()
        return [column] if isinstance(column, str) else []
    target = data.get("target")
    return [target] if isinstance(target, str) and target else []


def read_npy(path: Path, inputs: Sequence[TensorInfo]) -> Samples:
    """One array from an .npy file, for a single-input model."""
    names = [info.name for info in inputs]
    if len(names) != 1:
        raise SpecError(Problem((), f"{_shown(path)} holds one array, but the model has "
                                f"{len(names)} inputs ({', '.join(names)})", "save one array "
                                "per input in an .npz: numpy.savez(path, "
                                f"{', '.join(f'{n}=...' for n in names)})"))
    keys = _names(path)
    if keys is not None:
        return _read_archive(path, inputs, keys)
    return Samples({names[0]: _load(path, None)})


def read_npz(path: Path, inputs: Sequence[TensorInfo]) -> Samples:
    """Arrays named after the model's inputs (any single array for a single-input model)."""
    keys = _names(path)
    if keys is None:
        if len(inputs) == 1:
            return Samples({inputs[0].name: _load(path, None)})
        return read_npy(path, inputs)
    return _read_archive(path, inputs, keys)


def _read_archive(path: Path, inputs: Sequence[TensorInfo], keys: list[str]) -> Samples:
    """The arrays of an .npz archive holding `keys`, by input name."""
    names = [info.name for info in inputs]
    if len(names) == 1 and len(keys) == 1:
        chosen = {names[0]: keys[0]}
    else:
        missing = [name for name in names if name not in keys]
        if missing:
            raise SpecError(Problem((), f"{_shown(path)} has no array named {missing[0]!r} "
                                    f"(it holds {excerpts(keys) or 'no arrays'})", "name each "
                                    "array after the model's input: numpy.savez(path, "
                                    f"{', '.join(f'{n}=...' for n in names)})"))
        chosen = {name: name for name in names}
    return Samples({name: _load(path, key) for name, key in chosen.items()})


def _read_labelled_npz(path: Path, inputs: Sequence[TensorInfo],
                       label_columns: Sequence[str]) -> Samples:
    """An .npz archive of inputs and labels: the first array named in `label_columns` is the
    labels (None found: no labels), the others feed the inputs."""
    keys = _names(path)
    if keys is None:
        return read_npz(path, inputs)
    key = next((k for k in label_columns if k in keys), None)
    if key is None:
        return _read_archive(path, inputs, keys)
    samples = _read_archive(path, inputs, [k for k in keys if k != key])
    samples.labels = Labels(key, _load(path, key))
    return samples


def _names(path: Path) -> list[str] | None:
    try:
        return array_names(path)
    except Unreadable as error:
        raise SpecError(Problem((), f"{_shown(path)} {error}")) from None


def _load(path: Path, key: str | None) -> np.ndarray:
    """An array checked before it is read, and refused when it holds NaN or infinity."""
    try:
        array = load_array(path, key)
    except Unreadable as error:
        raise SpecError(Problem((), f"{_shown(path)} {error}",
                                "write arrays with numpy.save / numpy.savez")) from None
    sample = first_nonfinite(array) if array.dtype.kind == "f" and array.ndim else None
    if sample is not None:
        named = "" if key is None else f" array {excerpt(key)}"
        raise SpecError(Problem((), f"{_shown(path)}{named}: sample {sample} "
                                "(counting from 0) holds NaN or infinite values", _FINITE_HINT))
    return array


def read_csv(path: Path, inputs: Sequence[TensorInfo], label_columns: Sequence[str] = (),
             labelled: bool = False) -> Samples:
    """A numeric table, one row per sample, for a single-input model.

    A first row that is not all numbers is a header and skipped; the columns are the
    sample's values in order (a 1×8×8 input takes 64 columns, row-major). A header column
    named in `label_columns` is taken out as the labels: always when `labelled`, else when the
    rows are one column too wide with it.
    """
    if len(inputs) != 1:
        raise SpecError(Problem((), f"{_shown(path)}: a CSV file feeds one input, but the "
                                f"model has {len(inputs)} ({', '.join(i.name for i in inputs)})",
                                "give an .npz with one array per input"))
    info = inputs[0]
    header, rows = _csv_rows(path)
    labels = None
    column = next((c for c in label_columns if c in header), None) if header else None
    if header is not None and column is not None and (
            labelled or (_fitted(info, len(header) - 1) is not None
                         and _fitted(info, len(header)) is None)):
        at = header.index(column)
        labels = Labels(column, [row[at] for _, row in rows], [line for line, _ in rows])
        header = header[:at] + header[at + 1:]
        rows = [(line, row[:at] + row[at + 1:]) for line, row in rows]
        if not header:
            raise SpecError(Problem((), f"{_shown(path)} holds only its label column "
                                    f"{excerpt(column)}", "give the inputs' columns too"))
    elif labelled:  # before the values are read: a label column of names is no number
        named = (f"no column {excerpt(label_columns[0])}" if len(label_columns) == 1 else
                 f"no label column ({', '.join(excerpt(c) for c in label_columns)})")
        raise SpecError(Problem((), f"{_shown(path)} has {named}", "name its label column "
                                "with --label-column (a header row names the columns)"))
    values = _numbers(rows, header, path)
    shape = _row_shape(info, values.shape[1], path)
    return Samples({info.name: _as_dtype(values, info, rows, path).reshape(len(rows), *shape)},
                   labels=labels)


def _csv_rows(path: Path) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """The header (None when the first row is numbers) and the rows with their line numbers."""
    try:
        reader = csv.reader(io.StringIO(read_csv_text(path), newline=""))
        rows = [(reader.line_num, [cell.strip() for cell in row]) for row in reader]
    except Unreadable as error:
        raise SpecError(Problem((), f"{_shown(path)} {error}")) from None
    except csv.Error as error:
        raise SpecError(Problem((), f"{_shown(path)} is not a CSV file ({error})")) from None
    rows = [(line, row) for line, row in rows if any(row)]
    header = None
    if rows and not all(_is_number(cell) for cell in rows[0][1]):
        header = rows.pop(0)[1]
    if not rows:
        raise SpecError(Problem((), f"{_shown(path)} has no rows of values",
                                "one row per sample, one column per value"))
    width = len(header) if header is not None else len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise SpecError(Problem((), f"{_shown(path)}:{line}: {len(row)} values, but "
                                    f"{'the header names' if header else 'the first row has'} "
                                    f"{width}", "every row needs one value per column"))
    return header, rows


def _numbers(rows: list[tuple[int, list[str]]], header: list[str] | None,
             path: Path) -> np.ndarray:
    try:
        values = np.array([row for _, row in rows], dtype=str).astype(np.float64)
    except ValueError:
        for line, row in rows:
            if not any(_is_number(cell) for cell in row):
                # a line without a single number: another kind of file, not worth quoting
                raise SpecError(Problem((), f"{_shown(path)} is not a table of numbers: line "
                                        f"{line} holds none", "one row per sample, one "
                                        "number per column; a header row is allowed")) from None
            for column, cell in enumerate(row, start=1):
                if not _is_number(cell):
                    named = f" ({excerpt(header[column - 1])})" if header else ""
                    said = "is empty" if not cell else f"{excerpt(cell)} is not a number"
                    raise SpecError(Problem((), f"{_shown(path)}:{line}: column {column}{named} "
                                            f"{said}", "every value must be a number; a header "
                                            "row is allowed")) from None
        raise
    finite = np.isfinite(values)
    if not finite.all():
        at, column = (int(i) for i in np.argwhere(~finite)[0])
        raise SpecError(Problem((), f"{_shown(path)}:{rows[at][0]}: column {column + 1} is "
                                f"{excerpt(rows[at][1][column])}, not a finite number",
                                _FINITE_HINT))
    return values


def _fitted(info: TensorInfo, columns: int) -> tuple[int, ...] | None:
    """One sample's shape for rows of `columns` values (one axis of any size is inferred);
    None when they do not fit the input."""
    dims = list(info.per_sample)
    free = [i for i, d in enumerate(dims) if d is None]
    known = math.prod(d for d in dims if d is not None)
    if not free and columns == known:
        return tuple(d for d in dims if d is not None)
    if len(free) == 1 and known and columns and columns % known == 0:
        dims[free[0]] = columns // known
        return tuple(d for d in dims if d is not None)
    return None


def _row_shape(info: TensorInfo, columns: int, path: Path) -> tuple[int, ...]:
    """One sample's shape for rows of `columns` values; SpecError when they do not fit."""
    shape = _fitted(info, columns)
    if shape is not None:
        return shape
    dims = list(info.per_sample)
    free = [i for i, d in enumerate(dims) if d is None]
    known = math.prod(d for d in dims if d is not None)
    wanted = f"{known} values" if not free else f"a multiple of {known} values"
    raise SpecError(Problem((), f"{_shown(path)} has {columns} columns, but input "
                            f"{info.name} takes {wanted} per sample ({info.describe()})",
                            "one row per sample with just its values: leave out label and "
                            "id columns"))


def _as_dtype(values: np.ndarray, info: TensorInfo, rows: list[tuple[int, list[str]]],
              path: Path) -> np.ndarray:
    """Parsed values as the input's kind: whole numbers for integer inputs, 0/1 for bool."""
    if info.dtype.startswith(("int", "uint")) or info.dtype == "bool":
        allowed = np.isin(values, (0, 1)) if info.dtype == "bool" else values == np.round(values)
        if not allowed.all():
            row, column = (int(i) for i in np.argwhere(~allowed)[0])
            what = "0 or 1" if info.dtype == "bool" else "a whole number"
            raise SpecError(Problem((), f"{_shown(path)}:{rows[row][0]}: column {column + 1} "
                                    f"{excerpt(rows[row][1][column])} is not {what}",
                                    f"input {info.name} takes {info.dtype} values"))
        return values.astype(info.dtype)
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def image_input(folder: Path, inputs: Sequence[TensorInfo],
                images: Mapping[str, ImageSpec]) -> tuple[str, ImageSpec]:
    """The input a folder of images feeds, and how to load them for it."""
    names = [info.name for info in inputs]
    if len(names) != 1:
        raise SpecError(Problem((), f"{_shown(folder)} is a folder of images, but the model has "
                                f"{len(names)} inputs ({', '.join(names)})",
                                "give an .npz with one array per input"))
    info = inputs[0]
    spec = images.get(info.name) or _image_spec(info)
    if spec is None:
        raise SpecError(Problem((), f"{_shown(folder)} is a folder of images, but the model "
                                f"does not say how to load images for input {info.name} (per "
                                f"sample {info.describe()})", "export the model with `dlspec "
                                "export`, which records the image size, or give an .npy of the "
                                "pixels"))
    return info.name, spec


def _image_spec(info: TensorInfo) -> ImageSpec | None:
    """Image loading read off a fixed C×H×W input shape (C 1 or 3), for foreign models."""
    if len(info.per_sample) != 3:
        return None
    channels, height, width = info.per_sample
    if channels in (1, 3) and isinstance(channels, int) and height and width:
        return ImageSpec(channels, (height, width))
    return None


def read_image_folder(folder: Path, spec: ImageSpec) -> tuple[list[str], np.ndarray]:
    """Every image under `folder` (recursively, sorted) as (N, C, H, W) float32 in [0, 1]."""
    files = image_files(folder)
    height, width = spec.size
    # uint8 pixels, then float32 of them: 5 bytes a value, counted before allocating
    needed = len(files) * height * width * spec.channels * 5
    if needed > MAX_ARRAY_BYTES:
        raise SpecError(Problem((), f"{len(files):,} images of {height}×{width} need "
                                f"{format_bytes(needed)} of memory, more than the "
                                f"{format_bytes(MAX_ARRAY_BYTES)} dlspec uses at once",
                                "predict on smaller folders of images"))
    pixels = np.empty((len(files), height, width, spec.channels), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            image = read_image(folder / path, spec.channels, spec.size)
        except Unreadable as error:
            raise SpecError(Problem((), f"{_shown(folder / path)} {error}")) from None
        pixels[i] = image.reshape(height, width, spec.channels)
    return files, pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)


def image_files(folder: Path) -> list[str]:
    """Relative paths of the images under `folder`, sorted; hidden files and folders skipped."""
    found = sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts))
    if not found:
        raise SpecError(Problem((), f"{_shown(folder)} holds no images", "expected files ending "
                                f"in {', '.join(sorted(IMAGE_SUFFIXES))} (sub-folders are "
                                "searched)"))
    return found


def _shown(path: Path) -> str:
    """A path as a message shows it: control and invisible characters escaped."""
    return printable(str(path))
