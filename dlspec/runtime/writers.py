"""Predictions as a table, written as CSV or JSON.

Classifiers: `sample`, `class` (its label), `probability` (of that class), then `p_<label>`
for every class. Other outputs: `sample`, then `<output>` (one value per sample) or
`<output>_<i>` (the flattened values). With several outputs every column but `sample` is
prefixed by its output's name. JSON holds the same table as a list of objects, one per sample.

Sample names (file names) and labels come from files nobody vouches for, so every text cell
of the CSV is neutralised (OWASP's rule against formula injection): control and invisible
characters (bidi overrides too) are written as their escapes (`\\x1b`, `\\u202e`), and a
cell starting with `=`, `+`, `-` or `@` gets a leading `'` unless it reads as a plain number.
Numbers stay numbers: a probability of -0.5 is written as -0.5.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TextIO

import numpy as np

from dlspec.errors import Problem, SpecError, WorkError
from dlspec.runtime.untrusted import has_hidden, printable

if TYPE_CHECKING:
    from dlspec.runtime.predictor import Classification, Predictor

Value = str | int | float | bool | None
FORMATS = {".csv": "csv", ".json": "json", ".npy": "npy", ".npz": "npz"}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Table:
    """Named columns of equal length, one row per sample."""

    columns: dict[str, list[Value]]

    def rows(self) -> list[tuple[Value, ...]]:
        """The table row by row, in column order."""
        return list(zip(*self.columns.values(), strict=True))


def output_format(path: Path | None) -> str:
    """"csv" or "json" from the file's extension (CSV for stdout); SpecError for others."""
    if path is None:
        return "csv"
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise SpecError(Problem((), f"cannot write predictions to {path}: unknown extension "
                                f"{path.suffix or '(none)'}", "name the output file .csv, "
                                ".json, .npy or .npz, or leave out -o to print CSV"))
    return found


def prediction_table(predictor: Predictor, outputs: Mapping[str, np.ndarray],
                     names: Sequence[str] | None = None) -> Table:
    """The table of `outputs`; rows named by `names` (default: sample indices from 0)."""
    count = len(next(iter(outputs.values())))
    columns: dict[str, list[Value]] = {
        "sample": list(names) if names is not None else list(range(count))}
    several = len(outputs) > 1
    for name, values in outputs.items():
        prefix = f"{name}_" if several else ""
        if name == predictor.classified_output:
            columns.update(classifier_columns(predictor.classify_outputs(outputs), prefix))
        else:
            columns.update(value_columns(name, values))
    return Table(columns)


def classifier_columns(result: Classification, prefix: str = "") -> dict[str, list[Value]]:
    """`class`, `probability` and one `p_<label>` column per class."""
    columns: dict[str, list[Value]] = {
        f"{prefix}class": list(result.classes),
        f"{prefix}probability": _values(result.confidence),
    }
    for i, label in enumerate(result.labels):
        columns[f"{prefix}p_{label}"] = _values(result.probabilities[:, i])
    return columns


def value_columns(name: str, values: np.ndarray) -> dict[str, list[Value]]:
    """`<name>` for one value per sample, else `<name>_<i>` over the flattened values."""
    flat = values.reshape(len(values), -1)
    if flat.shape[1] == 1:
        return {name: _values(flat[:, 0])}
    return {f"{name}_{i}": _values(flat[:, i]) for i in range(flat.shape[1])}


def _values(column: np.ndarray) -> list[Value]:
    """Python values; float32 as its shortest round-tripping decimal (0.1, not 0.100000001)."""
    if column.dtype == np.float32 or column.dtype == np.float16:
        return [float(text) for text in column.astype(str)]
    return list(column.tolist())


def check_arrays_output(path: Path, outputs: Sequence[str]) -> None:
    """SpecError, before the model runs, when the outputs cannot be written to `path`."""
    if output_format(path) == "npy" and len(outputs) != 1:
        raise SpecError(Problem((), f"cannot write {len(outputs)} outputs "
                                f"({', '.join(outputs)}) to one .npy file",
                                "name the output file .npz: one array per output"))
    check_output(path, folder=False)


def write_arrays(outputs: Mapping[str, np.ndarray], path: Path) -> None:
    """The raw outputs as arrays: FILE.npz holds one array per output, named after it;
    FILE.npy the one output of a model with one."""
    check_arrays_output(path, list(outputs))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            if path.suffix.lower() == ".npy":
                np.save(file, next(iter(outputs.values())), allow_pickle=False)
            else:
                np.savez(file, **dict(outputs))  # type: ignore[arg-type]
    except OSError as error:
        raise output_error(path, error) from None


def write_table(table: Table, path: Path | None, stream: TextIO | None = None) -> None:
    """Write `table` to `path` as CSV or JSON by its extension, or as CSV to `stream`."""
    text = to_json(table) if output_format(path) == "json" else to_csv(table)
    if path is None:
        (stream or sys.stdout).write(text)
        return
    check_output(path, folder=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise output_error(path, error) from None


def check_output(path: Path, *, folder: bool) -> None:
    """SpecError, before any work, when `path` cannot be written as a file (or a folder):
    it exists as the other kind, or a parent is a file or not writable."""
    shown = printable(str(path))
    if folder and path.exists() and not path.is_dir():
        raise SpecError(Problem((), f"cannot write to {shown}: it is a file, not a folder",
                                "give -o a folder, or a file name ending in .npy"))
    if not folder and path.is_dir():
        raise SpecError(Problem((), f"cannot write to {shown}: it is a folder",
                                "give -o a file name, such as predictions.csv"))
    parent = path if folder else path.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise SpecError(Problem((), f"cannot write to {shown}: {printable(str(existing))} is a "
                                "file, not a folder"))
    target = path if path.exists() else existing
    if not os.access(target, os.W_OK | (os.X_OK if target.is_dir() else 0)):
        raise SpecError(Problem((), f"cannot write to {shown}: "
                                f"{printable(str(target))} is not writable"))


def output_error(path: Path, error: OSError) -> SpecError | WorkError:
    """An error writing `path`: WorkError when the disk is full, else SpecError."""
    reason = error.strerror or type(error).__name__
    problem = Problem((), f"cannot write {printable(str(path))}: {reason}")
    return WorkError(problem) if error.errno in (errno.ENOSPC, errno.EDQUOT) else \
        SpecError(problem)


def to_csv(table: Table) -> str:
    """The table as CSV text with a header row; text cells neutralised (see module doc)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([safe_cell(name) for name in table.columns])
    writer.writerows([safe_cell(value) for value in row] for row in table.rows())
    return buffer.getvalue()


def safe_cell(value: Value) -> Value:
    """A text cell that no spreadsheet runs as a formula and no terminal or editor reorders
    or obeys; other values unchanged."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    if text.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def to_json(table: Table) -> str:
    """The table as a JSON list of objects, one per line; NaN and infinities become null;
    control and invisible characters (bidi overrides) as `\\u` escapes, the same strings."""
    keys = list(table.columns)
    records = [_escaped(json.dumps(dict(zip(keys, map(_finite, row), strict=True)),
                                   ensure_ascii=False)) for row in table.rows()]
    return "[\n" + ",\n".join(records) + "\n]\n" if records else "[]\n"


def _escaped(record: str) -> str:
    if record.isprintable():
        return record
    return "".join(json.dumps(c)[1:-1] if has_hidden(c) else c for c in record)


def _finite(value: Value) -> Value:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def image_paths(folder: Path, names: Sequence[str] | None, count: int,
                default: str) -> list[Path]:
    """Where `count` PNG files go in `folder`: `default` + index without `names`, else each
    input's path below its folder with the suffix .png (`a/1.jpg` → `a/1.png`) — and
    `a/1.jpg.png` when that is taken by `a/1.png`. Never outside `folder`: `..`, `.` and
    absolute anchors in a name are dropped."""
    if names is None:
        return [folder / f"{default}_{i:04d}.png" for i in range(count)]
    paths: list[Path] = []
    taken: set[str] = set()
    for i, name in enumerate(names[:count]):
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts
                 if p not in ("", ".", "..", "/") and not p.endswith(":")]
        relative = PurePosixPath(*parts) if parts else PurePosixPath(f"{default}_{i:04d}")
        chosen = relative.with_suffix(".png") if relative.suffix else \
            relative.with_name(relative.name + ".png")
        if str(chosen).casefold() in taken:
            chosen = relative.with_name(relative.name + ".png")
        while str(chosen).casefold() in taken:  # only for names that clash twice
            chosen = chosen.with_name(f"{chosen.stem}_{i:04d}.png")
        taken.add(str(chosen).casefold())
        paths.append(folder.joinpath(*chosen.parts))
    return paths
