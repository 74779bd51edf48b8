"""A CSV table read for a network by name: column groups per input, a column (or columns) per
output, and images beside the table — each row names its image file in a column, read from a
folder and joined to the row.

Every column a spec names is checked against the header (with a "did you mean"), every cell
and file name taken from the table is escaped before it is shown, and image files stay inside
their folder: a row cannot lead the reader elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlspec.data.files import (
    csv_rows,
    did_you_mean,
    is_number,
    named_classes,
    numeric,
    resolve,
)
from dlspec.data.fit import Feed, Mapped, RawData
from dlspec.data.samples import ImageFiles
from dlspec.errors import Path as SpecPath
from dlspec.errors import Problem, SpecError
from dlspec.graph import InputDecl
from dlspec.layers.registry import Shape
from dlspec.runtime.untrusted import IMAGE_SUFFIXES, excerpt, has_hidden
from dlspec.spec.paths import path_problem
from dlspec.spec.sections import DataConfig

TARGET = "target"  # the key of the one target when the network's outputs are not given


class Table:
    """A CSV file's columns by name, and what the spec called it."""

    def __init__(self, written: str, data: DataConfig, base_dir: Path):
        self.shown = written
        header, rows = csv_rows(resolve(base_dir, written, "csv"), written, data.delimiter)
        self.header = header
        self.cells = {name: [row[i] for row in rows] for i, name in enumerate(header)}

    def column(self, name: str, where: SpecPath) -> list[str]:
        """The cells of column `name`; SpecError at `where` when the table has none."""
        if name not in self.cells:
            raise SpecError(Problem(where, f"{self.shown} has no column {excerpt(name)}",
                                    did_you_mean(name, self.header)))
        return self.cells[name]

    def numbers(self, names: list[str], where: SpecPath, listed: bool) -> np.ndarray:
        """Columns `names` as float32 (N, len(names)); errors at `where` (+ the position in
        the list when the spec gave a list)."""
        return np.stack([numeric(self.column(name, (*where, i) if listed else where), name,
                                 self.shown, (*where, i) if listed else where)
                         for i, name in enumerate(names)], axis=1)


def read_table(data: DataConfig, inputs: dict[str, InputDecl], outputs: dict[str, Shape] | None,
               class_order: list[str] | None, base_dir: Path) -> Mapped:
    """The CSV of `data` mapped to the network's `inputs` and `outputs` by name.

    Outputs: `targets` maps each to a column (or columns); without it one output reads
    `target` (default: the last column other than the images' file column) and several read
    the columns named like them. Inputs: `images.input` reads the images; `inputs` maps the
    others to their columns; one input left over reads `features` (default: every column not
    used otherwise).
    """
    assert data.csv is not None
    table = Table(data.csv, data, base_dir)
    targets, target_where, used = _targets(table, data, outputs, class_order)
    feeds: dict[str, Feed] = {}
    file_column = data.images.column if data.images is not None else None
    if data.images is not None:
        name = _image_input(data, inputs)
        feeds[name] = Feed(_images(table, data, base_dir), ("data", "images"), images=True)
        used.append(data.images.column)
    rest = [name for name in inputs if name not in feeds]
    unmapped = [name for name in rest if name not in (data.inputs or {})]
    if len(unmapped) > 1 or (unmapped and data.inputs and data.features is None):
        raise SpecError(Problem(("data", "inputs") if data.inputs else ("data", "csv"),
                                f"input {unmapped[0]} has no columns of {data.csv}",
                                f"name each input's columns, e.g. inputs: {{{unmapped[0]}: "
                                "[a, b, c]}"))
    if data.features is not None and not unmapped:
        raise SpecError(Problem(("data", "features"), "every input has its data already; "
                                "`features` names the columns of the one input left",
                                "remove `features`, or its input from `inputs`"))
    for name in rest:
        feeds[name] = _columns(table, data, name, used, file_column)
    return Mapped(feeds, targets, target_where, f"{data.csv} (CSV"
                  f"{', images from ' + data.images.folder if data.images else ''})")


def _columns(table: Table, data: DataConfig, name: str, used: list[str],
             file_column: str | None) -> Feed:
    """The columns of input `name`: mapped in `inputs`, else `features`, else every column
    that is neither a target nor the images' file names."""
    mapped = (data.inputs or {}).get(name)
    if mapped is not None:
        where: SpecPath = ("data", "inputs", name)
        names, listed = ([mapped], False) if isinstance(mapped, str) else (mapped, True)
    elif data.features is not None:
        where, names, listed = ("data", "features"), data.features, True
    else:
        where, listed = ("data", "csv"), False
        names = [c for c in table.header if c not in used]
        if not names:
            raise SpecError(Problem(where, f"{data.csv} has no feature columns"))
    for i, column in enumerate(names):
        at = (*where, i) if listed else where
        table.column(column, at)
        if column in used:
            what = "the images' file names" if column == file_column else "a target"
            raise SpecError(Problem(at, f"column {excerpt(column)} is {what}, not a feature "
                                    f"of input {name}"))
    return Feed(table.numbers(names, where, listed), where)


def _targets(table: Table, data: DataConfig, outputs: dict[str, Shape] | None,
             class_order: list[str] | None) -> tuple[dict[str, RawData], dict[str, SpecPath],
                                                     list[str]]:
    """The targets per output, where each was named, and the columns they take."""
    file_column = data.images.column if data.images is not None else None
    wanted: dict[str, tuple[str | list[str], SpecPath]] = {}
    if data.targets is not None:
        wanted = {name: (columns, ("data", "targets", name))
                  for name, columns in data.targets.items()}
    elif outputs is None or len(outputs) == 1:
        key = TARGET if outputs is None else next(iter(outputs))
        last = [c for c in table.header if c != file_column][-1]
        wanted[key] = (data.target or last,
                       ("data", "target") if data.target else ("data", "csv"))
    else:
        for name in outputs:
            if name not in table.cells:
                raise SpecError(Problem(("data", "csv"), f"{data.csv} has no column for "
                                        f"output {name}", f"map each output to its column(s): "
                                        f"targets: {{{name}: COLUMN}}; "
                                        + did_you_mean(name, table.header)))
            wanted[name] = (name, ("data", "csv"))
    named = sum(isinstance(c, str) and not _numeric_column(table, c) for c, _ in wanted.values())
    targets, where, used = {}, {}, []
    for name, (columns, at) in wanted.items():
        where[name] = at
        if isinstance(columns, list):
            values = table.numbers(columns, at, listed=True)
            targets[name] = RawData(_rows(values), values, f"{data.csv} (CSV)", measured=True)
            used += columns
            continue
        cells = table.column(columns, at)
        used.append(columns)
        if columns == file_column:
            raise SpecError(Problem(at, f"column {excerpt(columns)} holds the images' file "
                                    "names, not targets"))
        if all(is_number(v) for v in cells):
            targets[name] = RawData(_rows(cells), numeric(cells, columns, table.shown, at),
                                    f"{data.csv} (CSV)")
        else:  # task.labels orders the classes of the one column of class names
            targets[name] = named_classes(_rows(cells), cells, columns, f"{data.csv} (CSV)",
                                          class_order if named == 1 else None, at)
    return targets, where, used


def _numeric_column(table: Table, name: str) -> bool:
    return all(is_number(v) for v in table.cells.get(name, []))


def _rows(values: list[str] | np.ndarray) -> np.ndarray:
    """A placeholder of one empty row per sample: RawData's inputs, for targets alone."""
    return np.empty((len(values), 0), dtype=np.float32)


def _image_input(data: DataConfig, inputs: dict[str, InputDecl]) -> str:
    """The input the images feed: `images.input`, else the one C×H×W float input."""
    assert data.images is not None
    if data.images.input is not None:
        return data.images.input
    candidates = [name for name, decl in inputs.items()
                  if len(decl.shape) == 3 and decl.dtype == "float32"
                  and name not in (data.inputs or {})]
    if len(candidates) != 1:
        found = ", ".join(candidates) if candidates else "none"
        raise SpecError(Problem(("data", "images"), "which input do the images feed? The "
                                "network's channels × height × width inputs not mapped in "
                                f"`inputs`: {found}", "say it: images: {input: NAME, ...}"))
    return candidates[0]


def _images(table: Table, data: DataConfig, base_dir: Path) -> ImageFiles:
    """The image each row names, read as (C, H, W) float32 in [0, 1]."""
    images = data.images
    assert images is not None
    at: SpecPath = ("data", "images", "column")
    names = table.column(images.column, at)
    root = resolve(base_dir, images.folder, ("data", "images", "folder"), folder=True)
    inside = root.resolve()
    paths = []
    for row, name in enumerate(names, start=2):
        said = f"row {row} of {data.csv}: column {excerpt(images.column)}"
        if not name:
            raise SpecError(Problem(at, f"{said} is empty", "name each row's image file"))
        problem = path_problem(name) or ("it holds control or invisible characters"
                                         if has_hidden(name) else None)
        if problem is not None:
            raise SpecError(Problem(at, f"{said} names {excerpt(name)}, which is not a file "
                                    f"name inside {images.folder}",
                                    "give file names relative to the image folder"))
        path = inside / name
        if not path.resolve().is_relative_to(inside):
            raise SpecError(Problem(at, f"{said}: {excerpt(name)} leads outside "
                                    f"{images.folder} (through a symbolic link)",
                                    "copy the image into the folder"))
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SpecError(Problem(at, f"{said} names {excerpt(name)}, not an image file",
                                    f"expected names ending in "
                                    f"{', '.join(sorted(IMAGE_SUFFIXES))}"))
        if not path.is_file():
            raise SpecError(Problem(at, f"{said} names {excerpt(name)}, which is not a file "
                                    f"in {images.folder}"))
        paths.append(path)
    channels = 1 if data.grayscale else 3
    size = None if data.resize is None else (data.resize[0], data.resize[1])
    return ImageFiles(paths, inside, images.folder, ("data", "images", "folder"), channels,
                      size)  # read as needed, or all at once (data.cache)
