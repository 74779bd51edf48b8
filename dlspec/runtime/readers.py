"""Inputs read from files for `dlspec predict`: .npy, .npz, .csv, or a folder of images.

Every reader returns raw values (normalisation is the Predictor's job) as `Samples`; images
are loaded as in training: Pillow, "L" or "RGB", bilinear resize, scaled to [0, 1], C×H×W.
"""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlspec.errors import Problem, SpecError
from dlspec.runtime.metadata import ImageSpec, TensorInfo

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_KINDS_HINT = "give an .npy, .npz or .csv file, or a folder of images"


@dataclass
class Samples:
    """Arrays by input name, one row per sample; `names` label the rows (images: their paths)."""

    arrays: dict[str, np.ndarray]
    names: list[str] | None = None

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


def read_inputs(path: Path, inputs: Sequence[TensorInfo],
                images: Mapping[str, ImageSpec]) -> Samples:
    """The samples in `path` for a model with `inputs` (and image loading `images`)."""
    if not path.exists():
        raise SpecError(Problem((), f"input not found: {path}", _KINDS_HINT))
    if path.is_dir():
        name, spec = image_input(path, inputs, images)
        files, pixels = read_image_folder(path, spec)
        return Samples({name: pixels}, files)
    readers: dict[str, Callable[[Path, Sequence[TensorInfo]], Samples]] = {
        ".npy": read_npy, ".npz": read_npz, ".csv": read_csv}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        what = f"{path.suffix} files" if path.suffix else "files without an extension"
        raise SpecError(Problem((), f"{path}: cannot read {what}", _KINDS_HINT))
    return reader(path, inputs)


def read_npy(path: Path, inputs: Sequence[TensorInfo]) -> Samples:
    """One array from an .npy file, for a single-input model."""
    names = [info.name for info in inputs]
    if len(names) != 1:
        raise SpecError(Problem((), f"{path} holds one array, but the model has {len(names)} "
                                f"inputs ({', '.join(names)})", "save one array per input in an "
                                f".npz: numpy.savez(path, {', '.join(f'{n}=...' for n in names)})"))
    loaded = _load(path)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        loaded.close()
        return read_npz(path, inputs)
    return Samples({names[0]: loaded})


def read_npz(path: Path, inputs: Sequence[TensorInfo]) -> Samples:
    """Arrays named after the model's inputs (any single array for a single-input model)."""
    loaded = _load(path)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return Samples({inputs[0].name: loaded}) if len(inputs) == 1 else read_npy(path, inputs)
    names = [info.name for info in inputs]
    with loaded as archive:
        keys = list(archive.files)
        if len(names) == 1 and len(keys) == 1:
            chosen = {names[0]: keys[0]}
        else:
            missing = [name for name in names if name not in keys]
            if missing:
                raise SpecError(Problem((), f"{path} has no array named {missing[0]!r} (it "
                                        f"holds {', '.join(keys) or 'no arrays'})", "name each "
                                        "array after the model's input: numpy.savez(path, "
                                        f"{', '.join(f'{n}=...' for n in names)})"))
            chosen = {name: name for name in names}
        try:
            return Samples({name: archive[key] for name, key in chosen.items()})
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise SpecError(Problem((), f"cannot read {path}: {error}")) from None


def _load(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise SpecError(Problem((), f"cannot read {path}: {error}",
                                "write arrays with numpy.save / numpy.savez")) from None


def read_csv(path: Path, inputs: Sequence[TensorInfo]) -> Samples:
    """A numeric table, one row per sample, for a single-input model.

    A first row that is not all numbers is a header and skipped; the columns are the
    sample's values in order (a 1×8×8 input takes 64 columns, row-major).
    """
    if len(inputs) != 1:
        raise SpecError(Problem((), f"{path}: a CSV file feeds one input, but the model has "
                                f"{len(inputs)} ({', '.join(i.name for i in inputs)})",
                                "give an .npz with one array per input"))
    info = inputs[0]
    header, rows = _csv_rows(path)
    values = _numbers(rows, header, path)
    shape = _row_shape(info, values.shape[1], path)
    return Samples({info.name: _as_dtype(values, info, rows, path).reshape(len(rows), *shape)})


def _csv_rows(path: Path) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """The header (None when the first row is numbers) and the rows with their line numbers."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            rows = [(reader.line_num, [cell.strip() for cell in row]) for row in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise SpecError(Problem((), f"cannot read {path} as CSV: {error}")) from None
    rows = [(line, row) for line, row in rows if any(row)]
    header = None
    if rows and not all(_is_number(cell) for cell in rows[0][1]):
        header = rows.pop(0)[1]
    if not rows:
        raise SpecError(Problem((), f"{path} has no rows of values",
                                "one row per sample, one column per value"))
    width = len(header) if header is not None else len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise SpecError(Problem((), f"{path}:{line}: {len(row)} values, but "
                                    f"{'the header names' if header else 'the first row has'} "
                                    f"{width}", "every row needs one value per column"))
    return header, rows


def _numbers(rows: list[tuple[int, list[str]]], header: list[str] | None,
             path: Path) -> np.ndarray:
    try:
        return np.array([row for _, row in rows], dtype=str).astype(np.float64)
    except ValueError:
        for line, row in rows:
            for column, cell in enumerate(row, start=1):
                if not _is_number(cell):
                    named = f" ({header[column - 1]!r})" if header else ""
                    said = "is empty" if not cell else f"{cell!r} is not a number"
                    raise SpecError(Problem((), f"{path}:{line}: column {column}{named} {said}",
                                            "every value must be a number; a header row is "
                                            "allowed")) from None
        raise


def _row_shape(info: TensorInfo, columns: int, path: Path) -> tuple[int, ...]:
    """One sample's shape for rows of `columns` values; one axis of any size is inferred."""
    dims = list(info.per_sample)
    free = [i for i, d in enumerate(dims) if d is None]
    known = math.prod(d for d in dims if d is not None)
    if not free and columns == known:
        return tuple(d for d in dims if d is not None)
    if len(free) == 1 and known and columns % known == 0:
        dims[free[0]] = columns // known
        return tuple(d for d in dims if d is not None)
    wanted = f"{known} values" if not free else f"a multiple of {known} values"
    raise SpecError(Problem((), f"{path} has {columns} columns, but input {info.name} takes "
                            f"{wanted} per sample ({info.describe()})",
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
            raise SpecError(Problem((), f"{path}:{rows[row][0]}: column {column + 1} "
                                    f"{rows[row][1][column]!r} is not {what}",
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
        raise SpecError(Problem((), f"{folder} is a folder of images, but the model has "
                                f"{len(names)} inputs ({', '.join(names)})",
                                "give an .npz with one array per input"))
    info = inputs[0]
    spec = images.get(info.name) or _image_spec(info)
    if spec is None:
        raise SpecError(Problem((), f"{folder} is a folder of images, but the model does not "
                                f"say how to load images for input {info.name} (per sample "
                                f"{info.describe()})", "export the model with `dlspec export`, "
                                "which records the image size, or give an .npy of the pixels"))
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
    pixels = np.empty((len(files), height, width, spec.channels), dtype=np.uint8)
    for i, path in enumerate(files):
        pixels[i] = _read_image(folder / path, path, spec).reshape(height, width, spec.channels)
    return files, pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)


def image_files(folder: Path) -> list[str]:
    """Relative paths of the images under `folder`, sorted; hidden files and folders skipped."""
    found = sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts))
    if not found:
        raise SpecError(Problem((), f"{folder} holds no images", "expected files ending in "
                                f"{', '.join(sorted(IMAGE_SUFFIXES))} (sub-folders are searched)"))
    return found


def _read_image(path: Path, shown: str, spec: ImageSpec) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    height, width = spec.size
    try:
        with Image.open(path) as image:
            converted = image.convert("L" if spec.channels == 1 else "RGB")
            if converted.size != (width, height):
                converted = converted.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(converted, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise SpecError(Problem((), f"cannot read image {shown}: {error}")) from None
