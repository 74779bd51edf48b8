"""Data read from files: a CSV table, an .npz archive of arrays, or a folder of images with one
sub-folder per class.

Paths are relative to the spec file's folder. Everything that can be wrong with a file — it is
missing, a column is not numeric, a folder holds no images — is a SpecError located at the
`data` key that names the file, with a hint.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
from pathlib import Path

import numpy as np

from dlspec.data.fit import RawData
from dlspec.data.samples import ImageFiles, StoredRows
from dlspec.errors import Path as SpecPath
from dlspec.errors import Problem, SpecError
from dlspec.runtime.untrusted import (
    IMAGE_SUFFIXES,
    Unreadable,
    array_names,
    excerpt,
    excerpts,
    first_nonfinite,
    has_hidden,
    load_array,
    printable,
    read_csv_text,
    stored_array,
)
from dlspec.spec.paths import resolve_inside
from dlspec.spec.sections import DataConfig


def resolve(base_dir: Path, written: str, key: str | SpecPath, *, folder: bool = False) -> Path:
    """The path `written` in the spec, relative to `base_dir`; SpecError when it is missing.

    `key` is the data option that names it (`csv`), or the whole path to it in the spec."""
    where = ("data", key) if isinstance(key, str) else key
    path = resolve_inside(base_dir, written, where)  # not through a link elsewhere
    what = "folder" if folder else "file"
    if not path.exists():
        raise SpecError(Problem(where, f"{what} not found: {written}",
                                f"paths are relative to the spec's folder, here {base_dir}"))
    if folder != path.is_dir() or (not folder and not path.is_file()):
        # a FIFO or a device is not a file: reading one could block forever or never end
        raise SpecError(Problem(where, f"{written} is not a "
                                f"{what if folder or path.is_dir() else 'regular file'}"))
    return path


def did_you_mean(name: str, names: list[str], what: str = "columns") -> str:
    """A hint for a name another file lacks: the closest of `names`, and `names` (escaped)."""
    close = difflib.get_close_matches(name, names, n=1)
    listed = f"the {what} are {excerpts(names)}"  # from another file: short and escaped
    return f"did you mean {excerpt(close[0])}? {listed}" if close else listed


# --------------------------------------------------------------------------- CSV


def read_csv(written: str, data: DataConfig, base_dir: Path,
             class_order: list[str] | None) -> RawData:
    """A CSV table with a header row: feature columns → inputs, the target column → targets.

    The target defaults to the last column, the features to every other column. A target of
    names (`cat`, `dog`) becomes class indices: in `class_order` (task.labels) when given,
    else sorted.
    """
    header, rows = csv_rows(resolve(base_dir, written, "csv"), written, data.delimiter)
    target = data.target or header[-1]
    if target not in header:
        raise SpecError(Problem(("data", "target"), f"{written} has no column "
                                f"{excerpt(target)}", did_you_mean(target, header)))
    features = data.features or [c for c in header if c != target]
    for name in features:
        if name not in header:
            raise SpecError(Problem(("data", "features"), f"{written} has no column "
                                    f"{excerpt(name)}", did_you_mean(name, header)))
    if target in features:
        raise SpecError(Problem(("data", "features"), f"the target column {excerpt(target)} is "
                                "also listed as a feature"))
    if not features:
        raise SpecError(Problem(("data", "csv"), f"{written} has no feature columns"))
    where = ("data", "features") if data.features else ("data", "csv")
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    x = np.stack([numeric(columns[n], n, written, where) for n in features], axis=1)
    source = f"{written} (CSV, {len(features)} features, target {excerpt(target)})"
    labels = columns[target]
    if not all(is_number(v) for v in labels):
        return named_classes(x, labels, target, source, class_order)
    y = numeric(labels, target, written, ("data", "target"))
    return RawData(x, y, source)


def csv_rows(path: Path, shown: str, delimiter: str) -> tuple[list[str], list[list[str]]]:
    try:
        text = read_csv_text(path)
        lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except Unreadable as error:
        raise SpecError(Problem(("data", "csv"), f"{shown} {error}")) from None
    except csv.Error as error:
        raise SpecError(Problem(("data", "csv"), f"{shown} is not a CSV file ({error})")) \
            from None
    lines = [row for row in lines if any(cell.strip() for cell in row)]
    if not lines:
        raise SpecError(Problem(("data", "csv"), f"{shown} is empty",
                                "the first row names the columns"))
    header, rows = [c.strip() for c in lines[0]], lines[1:]
    if len(header) < 2:
        # one column cannot hold features and a target; quoting it would echo a whole line
        raise SpecError(Problem(("data", "csv"), f"{shown} is not a CSV file with delimiter "
                                f"{delimiter!r}: its first row has no {delimiter!r}",
                                "a CSV file names its feature and target columns in its "
                                "first row; set `delimiter` if it is not a comma"))
    if len(set(header)) != len(header):
        twice = sorted({c for c in header if header.count(c) > 1})
        raise SpecError(Problem(("data", "csv"), f"{shown} names column(s) "
                                f"{excerpts(twice)} twice"))
    if not rows:
        raise SpecError(Problem(("data", "csv"), f"{shown} has a header row but no samples"))
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise SpecError(Problem(("data", "csv"), f"{shown} row {number} has {len(row)} "
                                    f"fields but the header names {len(header)} columns",
                                    f"is the delimiter {delimiter!r} right?"))
    return header, [[cell.strip() for cell in row] for row in rows]


def numeric(values: list[str], column: str, shown: str, where: SpecPath) -> np.ndarray:
    """A CSV column as float32; SpecError at `where` naming the first cell that is not a
    finite number (escaped)."""
    try:
        with np.errstate(over="ignore"):  # beyond float32's range: refused just below
            numbers = np.array([float(v) for v in values], dtype=np.float32)
    except ValueError:
        row, bad = next((i, v) for i, v in enumerate(values, start=2) if not is_number(v))
        said = "is empty" if not bad else f"is {excerpt(bad)}"
        raise SpecError(Problem(where, f"column {excerpt(column)} of {shown} is not numeric: "
                                f"row {row} {said}", "encode it as numbers, or leave it out "
                                "of `features`")) from None
    finite = np.isfinite(numbers)
    if not finite.all():
        index = int(np.argmin(finite))
        raise SpecError(Problem(where, f"column {excerpt(column)} of {shown} holds "
                                f"{excerpt(values[index])} in row {index + 2}, which is not a "
                                "finite float32 number", "fill or drop missing values; NaN "
                                "and infinity cannot be trained on"))
    return numbers


def is_number(value: str) -> bool:
    """Whether a CSV cell reads as a number."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def named_classes(x: np.ndarray, labels: list[str], target: str, source: str,
                  class_order: list[str] | None,
                  where: SpecPath = ("data", "target")) -> RawData:
    """A column of class names as class indices: in `class_order` when given, else sorted."""
    if "" in labels:
        row = labels.index("") + 2
        raise SpecError(Problem(where, f"column {excerpt(target)} is empty in "
                                f"row {row}"))
    hidden = next((i for i, v in enumerate(labels) if has_hidden(v)), None)
    if hidden is not None:
        raise SpecError(Problem(where, f"column {excerpt(target)} holds "
                                f"{excerpt(labels[hidden])} in row {hidden + 2}: a class name "
                                "with control or invisible characters",
                                "class names end up in reports and predictions; rename it"))
    names = class_order or sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise SpecError(Problem(where, f"column {excerpt(target)} holds "
                                f"{excerpts(unknown)}, not in task.labels "
                                f"{excerpts(names)}", "list every class in task.labels"))
    y = np.array([index[v] for v in labels], dtype=np.int64)
    return RawData(x, y, source, num_classes=len(names), labels=list(names))


# --------------------------------------------------------------------------- NPZ


def read_npz(written: str, data: DataConfig, base_dir: Path) -> RawData:
    """Arrays from an .npz archive: `x_key` → inputs, `y_key` → targets (none when null).

    Headers are checked before anything is read (see dlspec.runtime.untrusted): no array
    larger than its file or half the memory, no Python objects, only numbers. Inputs stored
    uncompressed (numpy.savez) are memory-mapped, to be read as needed (`StoredRows`).
    """
    path = resolve(base_dir, written, "npz")
    keys = npz_keys(path, written)
    x = npz_input(path, data.x_key, ("data", "x_key"), written, keys)
    y = npz_array(path, data.y_key, ("data", "y_key"), written, keys) if data.y_key else None
    if (isinstance(x, np.ndarray) and x.ndim == 0) or (
            y is not None and (y.ndim == 0 or len(y) != len(x))):
        raise SpecError(Problem(("data", "npz"), f"{written}: {data.x_key} has shape "
                                f"{x.shape} but {data.y_key} has shape "
                                f"{None if y is None else y.shape}",
                                "both need one entry per sample along the first axis"))
    for array, key, option in ((x, data.x_key, "x_key"), (y, data.y_key, "y_key")):
        if isinstance(array, np.ndarray) and array.dtype.kind == "f":
            check_finite_array(array, f"{written}: array {excerpt(str(key))}", ("data", option))
    return RawData(x, y, f"{written} (NPZ)")


def npz_input(path: Path, key: str, where: SpecPath, shown: str,
              keys: list[str]) -> np.ndarray | StoredRows:
    """The inputs in array `key` of an .npz archive: memory-mapped rows when the array is
    stored uncompressed, else the array read whole."""
    _check_key(key, where, shown, keys)
    try:
        stored = stored_array(path, key)
    except Unreadable as error:
        raise SpecError(Problem(where, f"{shown} {error}")) from None
    if stored is None:
        return npz_array(path, key, where, shown, keys)
    offset, dtype, shape = stored
    return StoredRows(path, offset, dtype, shape, f"{shown}: array {excerpt(key)}", where)


def npz_keys(path: Path, written: str) -> list[str]:
    """The arrays of the .npz archive at `path`; SpecError when it is not one."""
    try:
        keys = array_names(path)
    except Unreadable as error:
        raise SpecError(Problem(("data", "npz"), f"{written} {error}")) from None
    if keys is None:
        raise SpecError(Problem(("data", "npz"), f"{written} holds a single array",
                                "save inputs and targets together: "
                                "numpy.savez(path, x=inputs, y=targets)"))
    return keys


def npz_array(path: Path, key: str, where: SpecPath, shown: str, keys: list[str]) -> np.ndarray:
    """The array `key` of an .npz archive, checked before it is read; SpecError at `where`."""
    _check_key(key, where, shown, keys)
    try:
        return load_array(path, key)
    except Unreadable as error:
        raise SpecError(Problem(where, f"{shown} {error}")) from None


def _check_key(key: str, where: SpecPath, shown: str, keys: list[str]) -> None:
    """SpecError at `where` when the archive holds no array `key`."""
    if key not in keys:
        close = difflib.get_close_matches(key, keys, n=1)
        held = f"it holds {excerpts(keys) or 'no arrays'}"
        raise SpecError(Problem(where, f"{shown} has no array {excerpt(key)}",
                                f"did you mean {excerpt(close[0])}? {held}" if close else held))


def check_finite_array(array: np.ndarray, shown: str, where: SpecPath) -> None:
    """SpecError at `where` when `array` holds NaN or infinity, naming the first sample."""
    sample = first_nonfinite(array)
    if sample is not None:
        raise SpecError(Problem(where, f"{shown} holds NaN or infinite values, first in "
                                f"sample {sample} (counting from 0)", "fill or drop missing "
                                "values; NaN and infinity cannot be trained on"))


# --------------------------------------------------------------------------- image folder


def read_image_folder(written: str, data: DataConfig, base_dir: Path,
                      class_order: list[str] | None) -> RawData:
    """Images in one sub-folder per class, read as (C, H, W) float32 in [0, 1] (see
    `ImageFiles`: when, is data.cache's choice).

    Classes are the sub-folders, in `class_order` (task.labels) when given, else sorted.
    Images become RGB (or one channel with `grayscale`) and are resized to `resize` when given;
    without it they must all have one size.
    """
    shown = written
    root = resolve(base_dir, shown, "image_folder", folder=True)
    classes = _classes(root, shown, class_order)
    inside = base_dir.resolve()
    files = []
    for label, name in enumerate(classes):
        folder = root / name
        _check_inside(folder, root, shown, inside)  # a linked class folder
        for path, linked in _images_of(folder, f"{shown}/{name}"):
            if linked:  # only a link can lead elsewhere: the others need no resolving
                _check_inside(path, root, shown, inside)
            files.append((label, path))
    channels = 1 if data.grayscale else 3
    size = None if data.resize is None else (data.resize[0], data.resize[1])
    x = ImageFiles([path for _, path in files], root, shown, ("data", "image_folder"),
                   channels, size)  # read as needed, or all at once (data.cache)
    y = np.array([label for label, _ in files], dtype=np.int64)
    return RawData(x, y, f"image folder {shown} ({len(classes)} classes)",
                   num_classes=len(classes), labels=classes, images=True)


def _classes(root: Path, shown: str, class_order: list[str] | None) -> list[str]:
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise SpecError(Problem(("data", "image_folder"), f"{shown} has no class sub-folders",
                                f"put each class's images in a sub-folder named after it, "
                                f"e.g. {shown}/cat/1.png"))
    hidden = [name for name in found if has_hidden(name)]
    if hidden:
        raise SpecError(Problem(("data", "image_folder"), f"{shown} has a class sub-folder "
                                f"named {excerpt(hidden[0], 40)}, with control or invisible "
                                "characters", "class names end up in reports and predictions; "
                                "rename the folder"))
    if class_order is not None:
        if sorted(class_order) != found:
            raise SpecError(Problem(("data", "image_folder"), f"the sub-folders of {shown} "
                                    f"({excerpts(found)}) are not task.labels "
                                    f"({excerpts(class_order)})", "make them name the same "
                                    "classes"))
        return list(class_order)
    return found


def _images_of(folder: Path, shown: str) -> list[tuple[Path, bool]]:
    """The image files of a class folder in name order, each with whether it is a link
    (os.scandir: a plain file needs no stat of its own, which counts at 100,000 files)."""
    with os.scandir(folder) as entries:
        images = sorted((Path(entry.path), entry.is_symlink()) for entry in entries
                        if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
                        and entry.is_file())
    if not images:
        raise SpecError(Problem(("data", "image_folder"), f"{printable(shown)} holds no images",
                                f"expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))}"))
    return images


def _check_inside(path: Path, root: Path, shown: str, inside: Path) -> None:
    """SpecError when `path` (through a symbolic link) leads outside the spec's folder."""
    if not path.resolve().is_relative_to(inside):
        raise SpecError(Problem(("data", "image_folder"), f"{shown}/"
                                f"{printable(path.relative_to(root).as_posix())} leads "
                                f"outside the spec's folder {inside} (through a symbolic "
                                "link)", "copy the image into the folder"))
