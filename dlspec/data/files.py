"""Data read from files: a CSV table, an .npz archive of arrays, or a folder of images with one
sub-folder per class.

Paths are relative to the spec file's folder. Everything that can be wrong with a file — it is
missing, a column is not numeric, a folder holds no images — is a SpecError located at the
`data` key that names the file, with a hint.
"""

from __future__ import annotations

import csv
import difflib
import zipfile
from pathlib import Path

import numpy as np

from dlspec.data.fit import RawData
from dlspec.errors import Problem, SpecError
from dlspec.spec.sections import DataConfig

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def resolve(base_dir: Path, written: str, key: str, *, folder: bool = False) -> Path:
    """The path `written` in the spec, relative to `base_dir`; SpecError when it is missing."""
    path = base_dir / written
    what = "folder" if folder else "file"
    if not path.exists():
        raise SpecError(Problem(("data", key), f"{what} not found: {written}",
                                f"paths are relative to the spec's folder, here {base_dir}"))
    if folder != path.is_dir():
        raise SpecError(Problem(("data", key), f"{written} is not a {what}"))
    return path


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    listed = f"the columns are {', '.join(names)}"
    return f"did you mean {close[0]!r}? {listed}" if close else listed


# --------------------------------------------------------------------------- CSV


def read_csv(written: str, data: DataConfig, base_dir: Path,
             class_order: list[str] | None) -> RawData:
    """A CSV table with a header row: feature columns → inputs, the target column → targets.

    The target defaults to the last column, the features to every other column. A target of
    names (`cat`, `dog`) becomes class indices: in `class_order` (task.labels) when given,
    else sorted.
    """
    header, rows = _csv_rows(resolve(base_dir, written, "csv"), written, data.delimiter)
    target = data.target or header[-1]
    if target not in header:
        raise SpecError(Problem(("data", "target"), f"{written} has no column {target!r}",
                                _did_you_mean(target, header)))
    features = data.features or [c for c in header if c != target]
    for name in features:
        if name not in header:
            raise SpecError(Problem(("data", "features"), f"{written} has no column {name!r}",
                                    _did_you_mean(name, header)))
    if target in features:
        raise SpecError(Problem(("data", "features"), f"the target column {target!r} is also "
                                "listed as a feature"))
    if not features:
        raise SpecError(Problem(("data", "csv"), f"{written} has no feature columns"))
    where = ("data", "features") if data.features else ("data", "csv")
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    x = np.stack([_numeric(columns[n], n, written, where) for n in features], axis=1)
    source = f"{written} (CSV, {len(features)} features, target {target!r})"
    labels = columns[target]
    try:
        y = np.array([float(v) for v in labels])
    except ValueError:
        return _named_classes(x, labels, target, source, class_order)
    return RawData(x, y, source)


def _csv_rows(path: Path, shown: str, delimiter: str) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            lines = [row for row in csv.reader(file, delimiter=delimiter)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise SpecError(Problem(("data", "csv"), f"cannot read {shown} as CSV: {error}")) from None
    lines = [row for row in lines if any(cell.strip() for cell in row)]
    if not lines:
        raise SpecError(Problem(("data", "csv"), f"{shown} is empty",
                                "the first row names the columns"))
    header, rows = [c.strip() for c in lines[0]], lines[1:]
    if len(set(header)) != len(header):
        twice = sorted({c for c in header if header.count(c) > 1})
        raise SpecError(Problem(("data", "csv"), f"{shown} names column(s) "
                                f"{', '.join(map(repr, twice))} twice"))
    if not rows:
        raise SpecError(Problem(("data", "csv"), f"{shown} has a header row but no samples"))
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise SpecError(Problem(("data", "csv"), f"{shown} row {number} has {len(row)} "
                                    f"fields but the header names {len(header)} columns",
                                    f"is the delimiter {delimiter!r} right?"))
    return header, [[cell.strip() for cell in row] for row in rows]


def _numeric(values: list[str], column: str, shown: str,
             where: tuple[str, ...]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float32)
    except ValueError:
        row, bad = next((i, v) for i, v in enumerate(values, start=2) if not _is_number(v))
        said = "is empty" if not bad else f"is {bad!r}"
        raise SpecError(Problem(where, f"column {column!r} of {shown} is not numeric: row "
                                f"{row} {said}", "encode it as numbers, or leave it out of "
                                "`features`")) from None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _named_classes(x: np.ndarray, labels: list[str], target: str, source: str,
                   class_order: list[str] | None) -> RawData:
    if "" in labels:
        row = labels.index("") + 2
        raise SpecError(Problem(("data", "target"), f"column {target!r} is empty in row {row}"))
    names = class_order or sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise SpecError(Problem(("data", "target"), f"column {target!r} holds "
                                f"{', '.join(map(repr, unknown))}, not in task.labels "
                                f"{names}", "list every class in task.labels"))
    y = np.array([index[v] for v in labels], dtype=np.int64)
    return RawData(x, y, source, num_classes=len(names), labels=list(names))


# --------------------------------------------------------------------------- NPZ


def read_npz(written: str, data: DataConfig, base_dir: Path) -> RawData:
    """Arrays from an .npz archive: `x_key` → inputs, `y_key` → targets (none when null)."""
    path = resolve(base_dir, written, "npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise SpecError(Problem(("data", "npz"), f"{written} holds a single array",
                                        "save inputs and targets together: "
                                        "numpy.savez(path, x=inputs, y=targets)"))
            keys = list(archive.keys())
            x = _array(archive, data.x_key, "x_key", written, keys)
            y = _array(archive, data.y_key, "y_key", written, keys) if data.y_key else None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise SpecError(Problem(("data", "npz"), f"cannot read {written}: {error}")) from None
    if x.ndim == 0 or (y is not None and (y.ndim == 0 or len(y) != len(x))):
        raise SpecError(Problem(("data", "npz"), f"{written}: {data.x_key} has shape "
                                f"{x.shape} but {data.y_key} has shape "
                                f"{None if y is None else y.shape}",
                                "both need one entry per sample along the first axis"))
    if not np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.bool_):
        raise SpecError(Problem(("data", "x_key"), f"{written}: {data.x_key} holds "
                                f"{x.dtype} values, not numbers"))
    return RawData(x, y, f"{written} (NPZ)")


def _array(archive: np.lib.npyio.NpzFile, key: str, option: str, shown: str,
           keys: list[str]) -> np.ndarray:
    if key not in keys:
        raise SpecError(Problem(("data", option), f"{shown} has no array {key!r}",
                                f"it holds {', '.join(keys) or 'no arrays'}"))
    return np.asarray(archive[key])


# --------------------------------------------------------------------------- image folder


def read_image_folder(written: str, data: DataConfig, base_dir: Path,
                      class_order: list[str] | None) -> RawData:
    """Images in one sub-folder per class, as (C, H, W) float32 in [0, 1].

    Classes are the sub-folders, in `class_order` (task.labels) when given, else sorted.
    Images become RGB (or one channel with `grayscale`) and are resized to `resize` when given;
    without it they must all have one size.
    """
    shown = written
    root = resolve(base_dir, shown, "image_folder", folder=True)
    classes = _classes(root, shown, class_order)
    files = [(label, path) for label, name in enumerate(classes)
             for path in _images_of(root / name, f"{shown}/{name}")]
    pixels = [_read_image(path, root, shown, data) for _, path in files]
    odd = next((i for i, p in enumerate(pixels) if p.shape[:2] != pixels[0].shape[:2]), None)
    if odd is not None:
        first, other = (files[i][1].relative_to(root) for i in (0, odd))
        raise SpecError(Problem(("data", "image_folder"), f"images in {shown} differ in size: "
                                f"{_size(pixels[0])} ({first}) and {_size(pixels[odd])} "
                                f"({other})", "add `resize: [height, width]`"))
    stacked = np.stack(pixels)  # (N, H, W) or (N, H, W, 3), uint8
    images = stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)
    x = images.astype(np.float32) / 255.0  # (N, C, H, W) in [0, 1]
    y = np.array([label for label, _ in files], dtype=np.int64)
    return RawData(x, y, f"image folder {shown} ({len(classes)} classes)",
                   num_classes=len(classes), labels=classes, images=True)


def _classes(root: Path, shown: str, class_order: list[str] | None) -> list[str]:
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise SpecError(Problem(("data", "image_folder"), f"{shown} has no class sub-folders",
                                f"put each class's images in a sub-folder named after it, "
                                f"e.g. {shown}/cat/1.png"))
    if class_order is not None:
        if sorted(class_order) != found:
            raise SpecError(Problem(("data", "image_folder"), f"the sub-folders of {shown} "
                                    f"({', '.join(found)}) are not task.labels "
                                    f"({', '.join(class_order)})", "make them name the same "
                                    "classes"))
        return list(class_order)
    return found


def _images_of(folder: Path, shown: str) -> list[Path]:
    images = sorted(p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SpecError(Problem(("data", "image_folder"), f"{shown} holds no images",
                                f"expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))}"))
    return images


def _read_image(path: Path, root: Path, shown: str, data: DataConfig) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            converted = image.convert("L" if data.grayscale else "RGB")
            if data.resize is not None:
                height, width = data.resize
                converted = converted.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(converted, dtype=np.uint8)  # (H, W) or (H, W, 3)
    except (UnidentifiedImageError, OSError) as error:
        raise SpecError(Problem(("data", "image_folder"), f"cannot read image "
                                f"{shown}/{path.relative_to(root)}: {error}")) from None


def _size(pixels: np.ndarray) -> str:
    return f"{pixels.shape[0]}×{pixels.shape[1]}"

