"""Predictions as a table, written as CSV or JSON.

Classifiers: `sample`, `class` (its label), `probability` (of that class), then `p_<label>`
for every class. Other outputs: `sample`, then `<output>` (one value per sample) or
`<output>_<i>` (the flattened values). With several outputs every column but `sample` is
prefixed by its output's name. JSON holds the same table as a list of objects, one per sample.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from dlspec.errors import Problem, SpecError

if TYPE_CHECKING:
    from dlspec.runtime.predictor import Classification, Predictor

Value = str | int | float | bool | None
FORMATS = {".csv": "csv", ".json": "json"}


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
                                f"{path.suffix or '(none)'}", "name the output file .csv or "
                                ".json, or leave out -o to print CSV"))
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


def write_table(table: Table, path: Path | None, stream: TextIO | None = None) -> None:
    """Write `table` to `path` as CSV or JSON by its extension, or as CSV to `stream`."""
    text = to_json(table) if output_format(path) == "json" else to_csv(table)
    if path is None:
        (stream or sys.stdout).write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def to_csv(table: Table) -> str:
    """The table as CSV text with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows())
    return buffer.getvalue()


def to_json(table: Table) -> str:
    """The table as a JSON list of objects, one per line; NaN and infinities become null."""
    keys = list(table.columns)
    records = [json.dumps(dict(zip(keys, map(_finite, row), strict=True)), ensure_ascii=False)
               for row in table.rows()]
    return "[\n" + ",\n".join(records) + "\n]\n" if records else "[]\n"


def _finite(value: Value) -> Value:
    return None if isinstance(value, float) and not math.isfinite(value) else value
